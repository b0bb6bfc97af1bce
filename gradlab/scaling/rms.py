"""Block-RMS clipping: each tensor's update clipped to a root-mean-square, as in Adafactor.

Adafactor (Shazeer and Stern 2018) clips its update :math:`U` of each weight to
:math:`U / \\max(1, \\mathrm{RMS}(U) / d)` with :math:`d = 1`: Keras'
``Adafactor(clip_threshold=1.0)`` does it inside its update step, optax offers it as
``clip_by_block_rms(threshold)``. Here it is a transform on any list of gradients or updates.
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _checks
from gradlab.scaling.clipping import check_threshold
from gradlab.scaling.kernels import merge_duplicates, scale, values_of, with_values

__all__ = ["block_rms", "block_rms_factor", "clip_by_block_rms"]


def block_rms(g) -> tf.Tensor:
    """The root mean square of one gradient, float32.

    An ``IndexedSlices`` is measured as the dense tensor it stands for: repeated
    indices summed, divided by the number of entries of its dense shape.
    """
    if isinstance(g, tf.IndexedSlices):
        merged = merge_duplicates(g, tf.float32)
        size = tf.cast(tf.reduce_prod(merged.dense_shape), tf.float32)
        return tf.sqrt(tf.reduce_sum(tf.square(merged.values)) / size)
    g = tf.cast(g, tf.float32)
    return tf.sqrt(tf.reduce_mean(tf.square(g)))


def block_rms_factor(rms, threshold) -> tf.Tensor:
    """``1 / max(1, rms / threshold)``: Adafactor's and optax's factor (used by mode ``"block_rms"`` too)."""
    return 1.0 / tf.maximum(1.0, rms / threshold)


def clip_by_block_rms(grads, threshold) -> list:
    r"""Clip each tensor to a root mean square of at most ``threshold``.

    .. math:: g \leftarrow \frac{g}{\max(1, \mathrm{RMS}(g) / d)}, \qquad \mathrm{RMS}(g) = \sqrt{\mathrm{mean}(g^2)}

    Equal to ``optax.clip_by_block_rms(threshold)`` and to the update clipping in
    Keras' ``Adafactor(clip_threshold=threshold)`` (applied there to the update
    :math:`g / \sqrt{\hat v}`). Unlike clipping by norm, the bound does not grow
    with the tensor's size: a tensor of :math:`n` entries is clipped to a norm of
    :math:`d\sqrt{n}`.

    In a compiled step (a :class:`~gradlab.scaler.scaler.Scaler` in the Trainer or ``ScaledOptimizer``),
    mode ``"block_rms"`` does the same: its record ``MODES["block_rms"]`` in :mod:`gradlab.scaler.modes`
    decides, and :meth:`Scaler.plan <gradlab.scaler.scaler.Scaler.plan>` applies the decision.

    Args:
      grads: list of tensors, ``tf.IndexedSlices`` or ``None``.
      threshold: positive float :math:`d`; Adafactor uses 1.0.

    Returns:
      A list like ``grads``.

    References:
      Shazeer, Stern. "Adafactor: Adaptive Learning Rates with Sublinear Memory
      Cost". ICML 2018. https://arxiv.org/abs/1804.04235

    >>> out = clip_by_block_rms([tf.constant([3.0, 4.0, 0.0, 0.0]), tf.constant([0.1])], 1.0)
    >>> [g.numpy().round(4).tolist() for g in out]  # RMS 2.5 -> divided by 2.5; RMS 0.1 unchanged
    [[1.2, 1.6, 0.0, 0.0], [0.1]]
    """
    grads = _checks.grad_list(grads)
    threshold = check_threshold("threshold", threshold)
    out = []
    for g in grads:
        if g is None:
            out.append(None)
            continue
        out.append(with_values(g, scale(values_of(g), block_rms_factor(block_rms(g), threshold))))
    return out
