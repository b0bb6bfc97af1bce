"""The kernels under the scaling functions: how a gradient's values are read, written back,
multiplied and summed in squares.

:mod:`gradlab.scaling.clipping` is written with these; read it first. A gradient is a
tensor or a ``tf.IndexedSlices`` (whose ``values`` are what gets scaled and measured,
as ``tf.clip_by_norm`` does). :func:`squared_norm` picks the fastest form of the same sum
for the tensor's size and for XLA (``benchmarks/profile_step.py`` measures the choice).
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _internals

__all__ = ["FUSED_FROM", "XLA_ROW", "merge_duplicates", "scale", "squared_norm", "values_of", "with_values"]

FUSED_FROM = 1 << 18  # entries from which, outside XLA, the fused tf.nn.l2_loss is used
XLA_ROW = 8  # under XLA, sums of squares of this many entries first, then the sum of those


def values_of(g):
    """The dense values of a gradient (``g.values`` for IndexedSlices)."""
    return g.values if isinstance(g, tf.IndexedSlices) else g


def with_values(g, values):
    """A gradient like ``g`` carrying ``values``."""
    if isinstance(g, tf.IndexedSlices):
        return tf.IndexedSlices(values, g.indices, g.dense_shape)
    return values


def merge_duplicates(g, dtype=None):
    """``g`` with the rows of repeated indices summed into one (IndexedSlices only).

    Summed in ``dtype`` when given (float32 for statistics of float16 values).
    Any other gradient is returned as it is.
    """
    if not isinstance(g, tf.IndexedSlices):
        return g
    indices, positions = tf.unique(g.indices)
    values = g.values if dtype is None else tf.cast(g.values, dtype)
    return tf.IndexedSlices(
        tf.math.unsorted_segment_sum(values, positions, tf.shape(indices)[0]), indices, g.dense_shape
    )


def scale(values, factor):
    """``values * factor``; float16/bfloat16 values are multiplied in float32.

    A factor cast to float16 first would overflow (normalize: 1 / 1e-12) or fall
    to a subnormal or zero (clipping a norm above ~1e5 to 1).
    """
    if values.dtype in (tf.float16, tf.bfloat16):
        return tf.cast(tf.cast(values, tf.float32) * tf.cast(factor, tf.float32), values.dtype)
    return values * tf.cast(factor, values.dtype)


def squared_norm(t) -> tf.Tensor:
    """Sum of squares of ``t`` as a float32 scalar.

    Outside XLA, a tensor of at least :data:`FUSED_FROM` entries is summed by
    ``tf.nn.l2_loss`` (one fused pass, as ``tf.linalg.global_norm`` computes it), a
    smaller one by ``reduce_sum(square)``; under XLA, by :func:`_xla_squared_norm`.
    Each is the same sum, in another order of additions.
    """
    t = tf.cast(t, tf.float32)
    if _internals.in_xla_context():
        return _xla_squared_norm(t)
    n = t.shape.num_elements()
    if n is not None and n >= FUSED_FROM:
        return 2.0 * tf.nn.l2_loss(t)
    return tf.reduce_sum(tf.square(t))


def _xla_squared_norm(t) -> tf.Tensor:
    """Sum of squares of a float32 ``t`` under XLA: in rows of :data:`XLA_ROW` entries, then the rows.

    XLA's CPU backend runs a reduction of a whole large tensor to one number as a tree of
    reduce-windows; one that first reduces short rows is a loop over rows that it splits
    between threads. Same sum, other order of additions.
    """
    n = t.shape.num_elements()
    if n is None or n < 64 * XLA_ROW:  # unknown or small: one reduction
        return tf.reduce_sum(tf.square(t))
    flat = tf.reshape(t, [-1])
    head = n - n % XLA_ROW
    total = tf.reduce_sum(tf.reduce_sum(tf.square(tf.reshape(flat[:head], [-1, XLA_ROW])), axis=1))
    return total if head == n else total + tf.reduce_sum(tf.square(flat[head:]))
