"""Notebook 06 (adaptive clipping): AutoClip's bound and AGC's result, by hand.

Each check computes the right answer with gradlab itself (``AutoClip`` fed the
same norms, ``adaptive_clip`` on the same tensors) and, when the answer is wrong,
recognises the usual slips (leaving out this step's norm, no interpolation, rows
taken as units) and says which one it looks like.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gradlab.exercises._common import say
from gradlab.scaling import adaptive_clip
from gradlab.scaling.autoclip import AutoClip

__all__ = ["AGC_TASK", "AUTOCLIP_TASK", "check_agc", "check_autoclip_bound"]


# The tasks stated in the notebook: norms seen so far (the last one is this step's).
AUTOCLIP_TASK = {"norms": (3.0, 12.0, 5.0, 9.0, 7.0, 4.0), "percentile": 30.0}
AGC_TASK = {"W": ((3.0, 0.0), (4.0, 1.0)), "G": ((0.6, 0.0), (0.8, 2.0)), "clipping": 0.1}


def check_autoclip_bound(answer, norms=AUTOCLIP_TASK["norms"], percentile=AUTOCLIP_TASK["percentile"]) -> bool:
    """The bound AutoClip(percentile) clips to after seeing ``norms`` (the last is this step's)."""
    try:
        answer = float(answer)
    except (TypeError, ValueError):
        return say(False, f"the bound is one number. Received: {answer!r}")
    clip = AutoClip(percentile=percentile)
    for n in norms:
        clip([tf.constant([float(n)])])
    right = float(clip.bound.numpy())
    if np.isclose(answer, right, rtol=1e-3, atol=1e-4):
        fate = "is clipped to it" if norms[-1] > right else "is under it, so this step is not clipped"
        return say(True, f"AutoClip's bound is {right:.4g}: this step's global norm {norms[-1]:g} {fate}.")
    past = float(np.percentile(norms[:-1], percentile)) if len(norms) > 1 else None
    if past is not None and np.isclose(answer, past, rtol=1e-3):
        return say(False, f"{answer:g} is the percentile of the earlier norms only: include this step's norm too.")
    for method in ("lower", "higher", "nearest", "midpoint"):
        if np.isclose(answer, float(np.percentile(norms, percentile, method=method)), rtol=1e-3):
            return say(
                False,
                f"{answer:g} is a neighbour of the answer, not the answer: sort the {len(norms)} norms, find the "
                f"rank p/100 * (n - 1) = {percentile / 100 * (len(norms) - 1):g} and interpolate linearly "
                "between the two sorted norms around it (numpy.percentile's default).",
            )
    return say(
        False,
        f"{answer:g} is not the {percentile:g}th percentile of {list(norms)}. Sort the norms (this step's "
        "included), then interpolate at rank p/100 * (n - 1), counting from 0.",
    )


def check_agc(answer, W=AGC_TASK["W"], G=AGC_TASK["G"], clipping=AGC_TASK["clipping"]) -> bool:
    """AGC's result for the kernel ``W`` (shape (in, out)), its gradient ``G`` and ``clipping``."""
    W, G = np.asarray(W, np.float32), np.asarray(G, np.float32)
    try:
        answer = np.asarray(answer, np.float64)
    except (TypeError, ValueError):
        return say(False, f"the answer is a matrix (a list of rows). Received: {answer!r}")
    if answer.shape != G.shape:
        return say(False, f"the answer has the shape of G, {G.shape}. Received shape: {answer.shape}")
    right = adaptive_clip([tf.constant(G)], [tf.constant(W)], clipping=clipping)[0].numpy()
    if np.allclose(answer, right, atol=1e-3):
        return say(True, f"AGC gives {np.round(right.astype(np.float64), 4).tolist()}.")
    rows = adaptive_clip([tf.constant(G.T)], [tf.constant(W.T)], clipping=clipping)[0].numpy().T
    if np.allclose(answer, rows, atol=1e-3):
        return say(False, "you took the rows as units. A Keras kernel is (in, out): a unit is an output, a column.")
    whole = G * min(1.0, clipping * np.linalg.norm(W) / np.linalg.norm(G))
    if np.allclose(answer, whole, atol=1e-3):
        return say(False, "you clipped the whole matrix at once. AGC clips unit by unit (column by column).")
    return say(
        False,
        "for each column i: bound = clipping * max(||W[:, i]||, 1e-3); if ||G[:, i]|| is above it, "
        "multiply that column of G by bound / ||G[:, i]||, else keep it.",
    )
