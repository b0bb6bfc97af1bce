"""Notebook 00 (start here): the global norm of the update that Keras' clipnorm applies."""

from __future__ import annotations

import math

import numpy as np

from gradlab.exercises._common import say
from gradlab.explore.inspect import applied_gradient

__all__ = ["check_clipnorm_update"]

GRADS = ([3.0, 4.0], [0.3, 0.4])


def _applied(**clipping) -> list:
    """The gradient Keras applies (``SGD(1.0, **clipping)``, read from the weights it moves)."""
    return applied_gradient([list(g) for g in GRADS], **clipping)


def _global(tensors) -> float:
    return math.sqrt(sum(float(np.sum(np.square(t))) for t in tensors))


def check_clipnorm_update(answer) -> bool:
    """Two variables with gradients [3, 4] and [0.3, 0.4]; ``SGD(learning_rate=1.0, clipnorm=1.0)``.

    What is the global L2 norm of the update Keras applies? The check asks Keras.
    """
    try:
        answer = float(answer)
    except (TypeError, ValueError):
        return say(False, f"the answer is a number (a norm). Received: {answer!r}")
    truth = _global(_applied(clipnorm=1.0))
    if abs(answer - truth) < 1e-3:
        return say(
            True,
            f"Keras applies an update of global norm {truth:.4f}: the first gradient (norm 5) is cut "
            "to norm 1 on its own, the second (norm 0.5) is left as it is.",
        )
    if abs(answer - _global(_applied(global_clipnorm=1.0))) < 1e-3:
        return say(False, "1 is what global_clipnorm gives. clipnorm clips each variable's gradient on its own.")
    if abs(answer - _global([np.array(g) for g in GRADS])) < 1e-3:
        return say(False, "that is the norm before clipping: the first gradient has norm 5, above clipnorm=1.")
    if abs(answer - math.sqrt(2)) < 1e-3:
        return say(False, "the second gradient's norm is 0.5, already below 1: clipnorm leaves it as it is.")
    return say(False, "compute each variable's norm, cut those above 1 to 1, then take the norm of all of them.")
