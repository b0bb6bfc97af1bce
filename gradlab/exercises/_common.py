"""Helpers shared by the exercise checks."""

import textwrap

import numpy as np
import tensorflow as tf

from gradlab.scaling import clip_by_global_norm

WIDTH = 88  # JupyterLab breaks longer output lines mid-word in a 1000-px notebook


def say(ok: bool, text: str) -> bool:
    """Print the verdict (``Correct:`` or ``Not yet:`` and ``text``) in lines of at most
    :data:`WIDTH` characters, broken between words; return ``ok``."""
    verdict = "Correct: " if ok else "Not yet: "
    print("\n".join(textwrap.wrap(verdict + text, WIDTH, break_long_words=False, break_on_hyphens=False)))
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
