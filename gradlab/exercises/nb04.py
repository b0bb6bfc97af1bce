"""Notebook 04 (custom scaling functions): write a global-norm clip of your own."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gradlab.exercises._common import say

__all__ = ["check_global_clip"]


def _cases(seed: int = 0):
    """Gradient lists to test on: above the bound, below it, with a zero tensor, one tensor."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 2), (2,), (4,)]
    big = [tf.constant(rng.normal(size=s) * 3, tf.float32) for s in shapes]
    small = [g / 100.0 for g in big]
    with_zero = [big[0], tf.zeros([2]), big[2]]
    return [
        ("above the bound", big),
        ("below the bound", small),
        ("with a zero tensor", with_zero),
        ("a single tensor", [big[0]]),
    ]


def check_global_clip(fn, clip_norm: float = 1.0) -> bool:
    """``fn(grads, clip_norm)`` must return what ``tf.clip_by_global_norm(grads, clip_norm)[0]`` returns.

    The check calls ``fn`` on several lists of gradients (above and below the
    bound, one with a zero tensor, a single tensor) and compares with TensorFlow.
    """
    if not callable(fn):
        return say(False, f"pass your function itself, fn(grads, clip_norm). Received: {fn!r}")
    for name, grads in _cases():
        try:
            out = fn(list(grads), clip_norm)
        except Exception as err:  # the reader's code: report any error
            return say(False, f"on gradients {name} your function raised {type(err).__name__}: {err}")
        if not isinstance(out, (list, tuple)) or len(out) != len(grads):
            return say(False, f"return a list of {len(grads)} gradients, one per input. Received: {type(out).__name__}")
        want = tf.clip_by_global_norm(grads, clip_norm)[0]
        if all(np.allclose(np.asarray(o), w.numpy(), atol=1e-6) for o, w in zip(out, want)):
            continue
        per_tensor = [tf.clip_by_norm(g, clip_norm) for g in grads]
        if all(np.allclose(np.asarray(o), p.numpy(), atol=1e-6) for o, p in zip(out, per_tensor)):
            return say(
                False,
                f"on gradients {name}, this clips each tensor on its own (like the article's "
                "scale_gradients). Use one factor for all: the norm of all the gradients together.",
            )
        got = float(np.sqrt(sum(np.sum(np.square(np.asarray(o))) for o in out)))
        return say(
            False,
            f"on gradients {name}, the global norm after your function is {got:.4g}; "
            f"tf.clip_by_global_norm gives {float(tf.linalg.global_norm(want)):.4g}.",
        )
    return say(
        True,
        "your function equals tf.clip_by_global_norm on every case, including gradients below "
        "the bound (left unchanged) and a zero tensor.",
    )
