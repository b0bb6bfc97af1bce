"""Check functions for the notebooks' exercises.

Each ``check_*`` function computes the answer itself (nothing is hard-coded
that the reader could copy), prints a short verdict with a hint when the answer
is wrong, and returns ``True`` or ``False``. Solutions live in the notebooks,
in collapsed cells.
"""

from __future__ import annotations

import keras
import numpy as np

from gradlab.problems import deep_mlp
from gradlab.training import Trainer
from gradlab.transforms import Scaler

__all__ = ["check_rescue_threshold"]


def _say(ok: bool, text: str) -> bool:
    print(("Correct: " if ok else "Not yet: ") + text)
    return ok


def check_rescue_threshold(threshold, learning_rate: float = 0.5, steps: int = 150, target: float = 0.5) -> bool:
    """Notebook 05: a ``global_norm`` threshold that makes the exploding deep MLP train.

    Trains the deep tanh MLP (seed 0) with SGD at ``learning_rate`` for ``steps``
    steps and the given threshold; passes when the mean loss of the last 20
    steps is below ``target`` and no step was skipped.
    """
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        return _say(False, f"the threshold must be a number. Received: {threshold!r}")
    if not np.isfinite(threshold) or threshold <= 0:
        return _say(False, f"the threshold must be a positive number. Received: {threshold!r}")
    h = _rescue_run(threshold, learning_rate, steps)
    final = _score(h)
    if final < target:
        return _say(
            True,
            f"threshold {threshold:g} trains: mean loss of the last 20 steps {final:.3f} "
            f"(clip rate {h.clipped.mean():.0%}).",
        )
    # Which way helps? Measured, not guessed: try a third and three times the threshold.
    smaller, larger = (_score(_rescue_run(threshold * f, learning_rate, steps)) for f in (1 / 3, 3))
    direction = "smaller" if smaller <= larger else "larger"
    what = (
        "training blew up"
        if not np.isfinite(final) or h.skipped.any()
        else f"mean loss of the last 20 steps is {final:.3f}"
    )
    return _say(
        False,
        f"with threshold {threshold:g}, {what} (target: below {target}). "
        f"Try a {direction} threshold: {threshold * (1 / 3 if direction == 'smaller' else 3):.3g} "
        f"gives {min(smaller, larger):.3g}.",
    )


def _rescue_run(threshold, learning_rate, steps):
    p = deep_mlp(seed=0)
    t = Trainer(p.model(), p.loss, keras.optimizers.SGD(learning_rate), Scaler("global_norm", threshold))
    return t.fit(p.x, p.y, steps=steps, batch_size=32, progress=False)


def _score(h) -> float:
    """Mean loss of the last 20 steps (inf if any step was skipped or the loss is not finite)."""
    final = float(np.mean(h.loss[-20:]))
    return final if np.isfinite(final) and not h.skipped.any() else float("inf")
