"""Notebook 02 (Keras optimizer clipping): when do clipvalue and clipnorm agree?"""

from __future__ import annotations

import numpy as np

from gradlab.exercises._common import say
from gradlab.explore.inspect import applied_gradient

__all__ = ["check_same_clip"]


def _keras_clipped(gradient: np.ndarray, **clipping) -> np.ndarray:
    """The gradient Keras applies (``SGD(1.0, **clipping)``, read from the weight it moves)."""
    return applied_gradient(gradient, **clipping)


def check_same_clip(gradient, threshold: float = 1.0) -> bool:
    """A 2-D gradient that both ``clipvalue`` and ``clipnorm`` change, to the same vector.

    The check asks Keras: ``SGD(1.0, clipvalue=threshold)`` and
    ``SGD(1.0, clipnorm=threshold)`` must both change ``gradient`` and give the same update.
    """
    try:
        g = np.asarray(gradient, dtype="float32")
    except (TypeError, ValueError):
        return say(False, f"the answer is a gradient of 2 numbers, such as [0.5, 2.0]. Received: {gradient!r}")
    if g.shape != (2,) or not np.isfinite(g).all():
        return say(False, f"the answer is a gradient of 2 finite numbers, such as [0.5, 2.0]. Received: {gradient!r}")
    by_value = _keras_clipped(g, clipvalue=threshold)
    by_norm = _keras_clipped(g, clipnorm=threshold)
    changed_v, changed_n = not np.allclose(by_value, g), not np.allclose(by_norm, g)
    shown = f"clipvalue gives {np.round(by_value, 3).tolist()}, clipnorm gives {np.round(by_norm, 3).tolist()}"
    if changed_v and changed_n and np.allclose(by_value, by_norm, atol=1e-5):
        return say(True, f"{g.tolist()}: {shown}. Clipping by value keeps the direction only along an axis.")
    if not changed_v and not changed_n:
        return say(False, f"neither option changes {g.tolist()} (its norm is at most {threshold}): make it longer.")
    if changed_n and not changed_v:
        return say(False, f"{shown}: every entry is within the clipvalue, so clipvalue leaves it as it is.")
    return say(False, f"{shown}. Clipping by value changes the direction unless only one entry is non-zero.")
