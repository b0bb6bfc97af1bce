"""Notebook 10 (choose a threshold): recompute the advisor's global_norm threshold from its probe.

The check computes the answer from the advice's own record (the percentile of the
global norms after warm-up) and recognises the usual slips: the warm-up steps left
in, the median or the maximum instead of the percentile, a per-layer norm instead
of the global one.
"""

from __future__ import annotations

import math

import numpy as np

from gradlab.exercises._common import say
from gradlab.explore.advise import Advice

__all__ = ["check_advice_threshold"]


def check_advice_threshold(answer, advice: Advice) -> bool:
    """``answer``: the ``global_norm`` threshold ``advice`` recommends, computed from ``advice.history``."""
    if not isinstance(advice, Advice):
        return say(False, f"pass the Advice you got from advise(...) as the second argument. Received: {advice!r}")
    try:
        a = float(answer)
    except (TypeError, ValueError):
        return say(False, f"the answer is one number, a threshold. Received: {answer!r}")
    norms = np.asarray(advice.history.norm_before, np.float64)
    ok = np.isfinite(norms) & (advice.history.skipped == 0)
    rest = norms[advice.warmup :][ok[advice.warmup :]]
    p = advice.percentile
    right = float(np.percentile(rest, p))

    def near(value):
        return math.isfinite(value) and math.isclose(a, value, rel_tol=1e-4)

    if near(right):
        return say(
            True, f"the {p:g}th percentile of the {rest.size} global norms after the {advice.warmup} warm-up steps."
        )
    if near(float(np.percentile(norms[ok], p))):
        return say(False, f"that percentile includes the first {advice.warmup} steps; leave the warm-up out.")
    if near(float(np.median(rest))) or near(float(np.median(norms[ok]))):
        return say(False, f"that is the median; the rule takes the {p:g}th percentile.")
    if near(float(rest.max())) or near(float(norms[ok].max())):
        return say(False, "that is the largest norm: a threshold there would never clip.")
    layers = np.asarray(advice.history.layer_norm_before, np.float64)[advice.warmup :][ok[advice.warmup :]]
    if layers.size and any(near(float(np.percentile(layers[:, j], p))) for j in range(layers.shape[1])):
        return say(False, "that is one layer's norm; global_norm clips the norm of all the gradients together.")
    return say(
        False,
        f"take advice.history.norm_before from step advice.warmup on and its {p:g}th percentile (np.percentile).",
    )
