"""Notebook 09 (weight decay and clipping): an L2 penalty's gradient, and a decoupled decay step.

The checks compute the right answer with Keras itself (``GradientTape`` over
``keras.regularizers.L2``; one ``apply`` of ``keras.optimizers.SGD`` with
``weight_decay`` and ``global_clipnorm``) and recognise the usual slips: a
factor of 2 (Keras' L2 has no 1/2 in front), the decay clipped together with the
gradient, clipping forgotten, the learning rate left out of the decay.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from gradlab.exercises._common import as_vector as _vector
from gradlab.exercises._common import say

__all__ = ["DECAY_TASK", "L2_TASK", "check_decoupled_step", "check_l2_gradient"]


# The tasks stated in the notebook.
L2_TASK = {"w": (0.5, -2.0, 3.0), "l2": 0.05}
DECAY_TASK = {"w": (4.0, -2.0), "grad": (0.0, 6.0), "learning_rate": 0.5, "weight_decay": 0.1, "global_clipnorm": 2.0}


def check_l2_gradient(answer, w=L2_TASK["w"], l2=L2_TASK["l2"]) -> bool:
    """The gradient of ``keras.regularizers.L2(l2)`` at the weights ``w``."""
    w = tf.Variable(np.asarray(w, np.float32))
    a = _vector(answer, w.shape[0])
    if a is None:
        return say(False, f"the answer is a list of {w.shape[0]} numbers, one per weight. Received: {answer!r}")
    with tf.GradientTape() as tape:
        penalty = keras.regularizers.L2(l2)(w)
    right = tape.gradient(penalty, w).numpy().astype(np.float64)
    if np.allclose(a, right, atol=1e-5):
        return say(True, f"the penalty {float(penalty):.4g} has gradient {np.round(right, 4).tolist()} (2 * l2 * w).")
    wv = w.numpy().astype(np.float64)
    if np.allclose(a, l2 * wv, atol=1e-5):
        return say(False, "that is l2 * w. Keras' L2 is l2 * sum(w**2), with no 1/2 in front: differentiate it again.")
    if np.allclose(a, l2 * wv**2, atol=1e-5) or np.isclose(a.sum(), float(penalty), atol=1e-5):
        return say(False, "that is the penalty itself (or its terms). The question asks for its gradient.")
    return say(False, "the derivative of l2 * w_i**2 with respect to w_i is 2 * l2 * w_i; one number per weight.")


def check_decoupled_step(
    answer,
    w=DECAY_TASK["w"],
    grad=DECAY_TASK["grad"],
    learning_rate=DECAY_TASK["learning_rate"],
    weight_decay=DECAY_TASK["weight_decay"],
    global_clipnorm=DECAY_TASK["global_clipnorm"],
) -> bool:
    """The weights after one ``SGD(learning_rate, weight_decay=..., global_clipnorm=...)`` step on ``grad``."""
    w0, g = np.asarray(w, np.float64), np.asarray(grad, np.float64)
    a = _vector(answer, w0.size)
    if a is None:
        return say(False, f"the answer is the new weights, a list of {w0.size} numbers. Received: {answer!r}")
    var = keras.Variable(w0.astype(np.float32))
    opt = keras.optimizers.SGD(learning_rate, weight_decay=weight_decay, global_clipnorm=global_clipnorm)
    opt.apply([tf.constant(g, tf.float32)], [var])
    right = var.numpy().astype(np.float64)
    if np.allclose(a, right, atol=1e-3):
        return say(
            True, f"the new weights are {np.round(right, 4).tolist()}: decay at full strength, gradient clipped."
        )

    def clip(v):
        n = np.linalg.norm(v)
        return v * min(1.0, global_clipnorm / n) if n > 0 else v

    slips = [
        (w0 - learning_rate * clip(g + weight_decay * w0), "you clipped the decay together with the gradient. "),
        (w0 * (1 - learning_rate * weight_decay) - learning_rate * g, "you forgot to clip the gradient. "),
        (w0 * (1 - weight_decay) - learning_rate * clip(g), "the decay step is learning_rate * weight_decay * w. "),
        (w0 - learning_rate * clip(g), "you left out the weight decay. "),
    ]
    for value, text in slips:
        if np.allclose(a, value, atol=1e-3):
            return say(False, text + "Keras clips the gradient, then decays the weights, then updates.")
    return say(
        False,
        "Keras' order inside apply: clip the gradient to global norm global_clipnorm; decay "
        "w <- w - learning_rate * weight_decay * w; then w <- w - learning_rate * clipped gradient.",
    )
