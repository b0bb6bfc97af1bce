"""Helpers shared by the exercise checks."""

import numpy as np
import tensorflow as tf

from gradlab._text import wrap
from gradlab.scaling import clip_by_global_norm


def say(ok: bool, text: str) -> bool:
    """Print the verdict (``Correct:`` or ``Not yet:`` and ``text``) in lines of at most
    :data:`gradlab._text.WIDTH` (88) characters, broken between words; return ``ok``."""
    verdict = "Correct: " if ok else "Not yet: "
    print(wrap(verdict + text))
    return ok


def clipped(g, c) -> np.ndarray:
    """``g`` (array-like) clipped to global norm ``c`` by gradlab, as a float64 array."""
    return clip_by_global_norm([tf.constant(np.asarray(g, np.float64))], c)[0].numpy()


def as_vector(answer, n: int):
    """``answer`` as a float64 vector of ``n`` numbers, or ``None`` if it is not one."""
    try:
        a = np.asarray(answer, np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return a if a.shape == (n,) else None
