"""Notebook 07 (mixed precision and gradient accumulation): clip the right gradient.

Each check computes the right answer with gradlab itself (``clip_by_global_norm``
on the same gradients) and, when the answer is wrong, recognises the usual slips
(clipping the scaled gradient at the unscaled threshold, clipping each
micro-batch before averaging, no clipping, a flipped sign, no learning rate) and
says which one it looks like.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gradlab.exercises._common import clipped as _clip
from gradlab.exercises._common import say
from gradlab.scaling import global_norm

__all__ = ["ACCUMULATE_TASK", "SCALED_TASK", "check_accumulated_update", "check_scaled_threshold"]


# The tasks stated in the notebook.
SCALED_TASK = {"scale": 1024.0, "threshold": 0.5}
ACCUMULATE_TASK = {"grads": ((3.0, 0.0), (0.0, 1.0), (0.0, 2.0)), "threshold": 1.0, "learning_rate": 0.1}


def check_scaled_threshold(answer, scale=SCALED_TASK["scale"], threshold=SCALED_TASK["threshold"]) -> bool:
    """The threshold to clip the *scaled* gradient at so that, after unscaling, the update
    equals clipping the true gradient at ``threshold`` (loss scale ``scale``).

    The answer is tried on true gradients of many sizes (above and below the threshold).
    """
    try:
        answer = float(answer)
    except (TypeError, ValueError):
        return say(False, f"the threshold is one number. Received: {answer!r}")
    rng = np.random.default_rng(0)
    trials = [rng.normal(size=4) * size for size in (0.01, 0.1, 1.0, 10.0, 100.0)]
    right = [_clip(g, threshold) for g in trials]
    ok = answer > 0 and all(np.allclose(_clip(scale * g, answer) / scale, r, rtol=1e-6) for g, r in zip(trials, right))
    if ok:
        return say(
            True,
            f"clip the scaled gradient at S * c = {scale:g} * {threshold:g} = {scale * threshold:g}: its norm is "
            f"S times the true norm, so the bound must be S times larger too.",
        )
    if np.isclose(answer, threshold):
        return say(
            False,
            f"{answer:g} is the threshold for the true gradient. On the scaled gradient it acts like a bound of "
            f"{threshold / scale:g} on the true one: every update would shrink up to {scale:g} times.",
        )
    if np.isclose(answer, threshold / scale):
        return say(False, "the scaled gradient is S times larger than the true one, not S times smaller.")
    return say(False, "the scaled gradient is S times the true gradient. Which bound on it means c on the true one?")


def check_accumulated_update(
    answer,
    grads=ACCUMULATE_TASK["grads"],
    threshold=ACCUMULATE_TASK["threshold"],
    learning_rate=ACCUMULATE_TASK["learning_rate"],
) -> bool:
    """The SGD update (new weights minus old) after accumulating the micro-batch ``grads``,
    averaging them and clipping the average to global norm ``threshold`` once."""
    grads = np.asarray(grads, np.float64)
    try:
        answer = np.asarray(answer, np.float64)
    except (TypeError, ValueError):
        return say(False, f"the update is a vector (a list of numbers). Received: {answer!r}")
    if answer.shape != grads[0].shape:
        return say(False, f"the update has the shape of one gradient, {grads[0].shape}. Received: {answer.shape}")
    mean = grads.mean(axis=0)
    right = -learning_rate * _clip(mean, threshold)
    near = lambda x: np.allclose(answer, x, atol=1e-3)  # noqa: E731
    if near(right):
        norm = float(global_norm([tf.constant(mean)]))
        return say(
            True,
            f"the average {mean.round(4).tolist()} has norm {norm:.4g}; clipped to {threshold:g} and times "
            f"-{learning_rate:g} it gives {right.round(4).tolist()}.",
        )
    per_micro = -learning_rate * np.mean([_clip(g, threshold) for g in grads], axis=0)
    if near(per_micro):
        return say(False, "you clipped each micro-batch gradient before averaging. Average first, then clip once.")
    if near(-learning_rate * mean):
        return say(False, "that is the unclipped average: check the norm of the average against the threshold.")
    if near(-right):
        return say(False, "check the sign: SGD moves against the gradient, w_new - w_old = -lr * g.")
    if near(right / learning_rate):
        return say(False, "that is the clipped gradient; the update is it times -learning_rate.")
    return say(False, "average the micro-batch gradients, clip the average to the threshold, multiply by -lr.")
