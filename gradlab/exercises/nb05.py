"""Notebook 05 (live lab): a global-norm threshold that rescues an exploding run."""

from __future__ import annotations

import keras
import numpy as np

from gradlab import _checks
from gradlab.exercises._common import say
from gradlab.explore import compare
from gradlab.problems.builtin import deep_mlp

__all__ = ["check_rescue_threshold"]


def check_rescue_threshold(threshold, learning_rate: float = 0.5, steps: int = 150, target: float = 0.5) -> bool:
    """Notebook 05: a ``global_norm`` threshold that makes the exploding deep MLP train.

    Trains the deep tanh MLP (seed 0) with SGD at ``learning_rate`` for ``steps``
    steps and the given threshold; passes when the mean loss of the last 20
    steps is below ``target`` and no step was skipped.
    """
    # The exercise's settings (not the reader's answer) are checked first.
    _checks.python_number("learning_rate", learning_rate)
    _checks.size("steps", steps)
    _checks.python_number("target", target)
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        return say(False, f"the threshold must be a number. Received: {threshold!r}")
    if not np.isfinite(threshold) or threshold <= 0:
        return say(False, f"the threshold must be a positive number. Received: {threshold!r}")
    # The answer and, for the hint, a third and three times it: measured, not guessed.
    h, smaller, larger = compare(
        deep_mlp(seed=0),
        [("global_norm", threshold * f) for f in (1, 1 / 3, 3)],
        optimizer=lambda: keras.optimizers.SGD(learning_rate),
        steps=steps,
        batch_size=32,
    )
    final = _score(h)
    if final < target:
        return say(
            True,
            f"threshold {threshold:g} trains: mean loss of the last 20 steps {final:.3f} "
            f"(clip rate {h.clipped.mean():.0%}).",
        )
    # Only what holds with a wide margin: a run that explodes is chaotic, its exact
    # losses differ from one CPU to another (their float kernels round differently).
    if not np.isfinite(final):
        what = "training blew up (steps with non-finite gradients were skipped)"
    elif final > 10:
        what = "the mean loss of the last 20 steps is above 10: the run diverges"
    else:
        what = f"the mean loss of the last 20 steps is {final:.2g}"
    direction, better, worse = (
        ("smaller", smaller, larger) if _score(smaller) <= _score(larger) else ("larger", larger, smaller)
    )
    if _score(better) < _score(worse):
        compared = f"{better.threshold[0]:.3g} does better than {worse.threshold[0]:.3g}"
    else:
        compared = f"{better.threshold[0]:.3g} and {worse.threshold[0]:.3g} both fail the same way"
    return say(
        False,
        f"with threshold {threshold:g}, {what} (target: below {target}). Try a {direction} threshold: {compared}.",
    )


def _score(h) -> float:
    """Mean loss of the last 20 steps (inf if any step was skipped or the loss is not finite)."""
    final = float(np.mean(h.loss[-20:]))
    return final if np.isfinite(final) and not h.skipped.any() else float("inf")
