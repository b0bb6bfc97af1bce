"""Notebook 01 (exploding gradients): the global norm from the per-layer norms."""

from __future__ import annotations

import numbers

import numpy as np

from gradlab.exercises._common import say
from gradlab.training.history import History

__all__ = ["check_global_norm"]


def check_global_norm(history: History, step: int, answer) -> bool:
    """The global gradient norm at ``step``, computed from ``history.layer_norm_before[step]``.

    The check compares ``answer`` with the global norm the train step measured
    itself (``history.norm_before[step]``), and recognises the usual mistakes.
    """
    if not isinstance(history, History):
        return say(False, f"pass the History of a run (what Trainer.fit returns). Received: {type(history).__name__}")
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or not 0 <= step < len(history):
        return say(False, f"step must be an integer between 0 and {len(history) - 1}. Received: {step!r}")
    try:
        answer = float(answer)
    except (TypeError, ValueError):
        return say(False, f"the answer is a number (a norm). Received: {answer!r}")
    layers = np.asarray(history.layer_norm_before[step], float)
    truth = float(history.norm_before[step])
    if np.isclose(answer, truth, rtol=1e-4):
        return say(
            True,
            f"the global norm at step {step} is {truth:.4g}: the square root of the sum of the "
            f"{len(layers)} squared layer norms. The norms of independent pieces add in squares.",
        )
    if np.isclose(answer, layers.sum(), rtol=1e-4):
        return say(
            False,
            f"{answer:.4g} is the sum of the layer norms. Norms do not add: the squared norm of all the "
            "gradients is the sum of the squared norms of the pieces.",
        )
    if np.isclose(answer, np.square(layers).sum(), rtol=1e-4):
        return say(False, f"{answer:.4g} is the squared global norm: take its square root.")
    if np.isclose(answer, layers.max(), rtol=1e-4):
        return say(False, "that is the largest layer's norm; the global norm includes every layer.")
    return say(False, f"{answer:.4g} is not it. Square each layer's norm, add them up, take the square root.")
