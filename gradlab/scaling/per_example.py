"""Per-example clipping: DP-SGD's clipping step (Abadi et al. 2016), on per-example gradients.

Each gradient here has a leading batch axis: ``grads[i][b]`` is example ``b``'s gradient
of variable ``i`` (what ``tf.vectorized_map`` or a ``GradientTape.jacobian`` over the
per-example losses gives). Each example is clipped on its own, then the examples are
summed (as optax and TF Privacy do before adding noise) or averaged. Clipping the
average instead would let one outlier example set the scale of the whole batch.

Norms are float32 whatever the gradient dtype. ``None`` gradients stay ``None``;
``IndexedSlices`` have no per-example layout and are refused.
"""

from __future__ import annotations

import math
import numbers

import tensorflow as tf

from gradlab import _checks

__all__ = ["per_example_global_norm_clip", "per_example_layer_norm_clip", "per_example_norms"]

REDUCTIONS = ("sum", "mean")


def _check_batched(grads, where):
    grads = _checks.grad_list(grads)
    batch = None
    for i, g in enumerate(grads):
        if g is None:
            continue
        if isinstance(g, tf.IndexedSlices):
            raise ValueError(
                f"Argument `grads` must hold dense per-example gradients for {where} (one row per example); "
                f"IndexedSlices have no batch axis. Received: grads[{i}] of type IndexedSlices"
            )
        shape = g.shape
        if shape.rank is None or shape.rank < 1:
            raise ValueError(
                f"Argument `grads` must hold per-example gradients with a leading batch axis for {where} "
                f"(shape (batch, *variable_shape)). Received: grads[{i}] of shape {_shape(shape)}"
            )
        size = shape[0]
        if batch is None:
            batch, first = size, i
        elif size is not None and batch is not None and size != batch:
            raise ValueError(
                f"Argument `grads` must have the same batch size in every tensor for {where}. Received: "
                f"grads[{first}] with {batch} examples, grads[{i}] with {size}"
            )
    return grads


def _shape(shape):
    return tuple(shape.as_list()) if shape.rank is not None else "unknown"


def _clip_norm(name, value):
    """A clip norm in [0, inf]: 0 zeroes every example, inf clips none (as in optax's examples)."""
    if not _checks.is_symbolic(value) and isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isinf(value) and value > 0:
            return float("inf")
    value = _checks.number(name, value, low=0.0, low_open=False)
    return tf.cast(value, tf.float32) if _checks.is_symbolic(value) else value


def _reduction(reduction):
    return _checks.choice("reduction", reduction, REDUCTIONS, what="reduction")


def _example_squares(g):
    """Each example's sum of squares (float32, shape (batch,))."""
    g = tf.cast(g, tf.float32)
    return tf.reduce_sum(tf.reshape(tf.square(g), [tf.shape(g)[0], -1]), axis=1)


def per_example_norms(grads) -> tf.Tensor:
    """Each example's global L2 norm over all tensors: a float32 vector of shape (batch,).

    >>> per_example_norms([tf.constant([[3.0], [0.0]]), tf.constant([[4.0, 0.0], [0.0, 1.0]])]).numpy().tolist()
    [5.0, 1.0]
    """
    grads = _check_batched(grads, "per_example_norms")
    squares = [_example_squares(g) for g in grads if g is not None]
    if not squares:
        raise ValueError("Argument `grads` must hold at least one gradient that is not None. Received: only None")
    return tf.sqrt(tf.add_n(squares))


def _multipliers(norms, clip):
    """optax's ``nan_to_num(minimum(clip / norms, 1), nan=1)``: 0/0 and inf/inf clip nothing."""
    m = tf.minimum(tf.cast(clip, tf.float32) / norms, 1.0)
    return tf.where(tf.math.is_nan(m), tf.ones_like(m), m)


def _weighted_sum(multipliers, g, reduction):
    dtype = g.dtype
    out = tf.tensordot(multipliers, tf.cast(g, tf.float32), axes=1)
    if reduction == "mean":
        out = out / tf.cast(tf.shape(g)[0], tf.float32)
    return tf.cast(out, dtype)


def per_example_global_norm_clip(grads, l2_norm_clip, reduction="sum"):
    r"""Clip each example's gradient to a global L2 norm, then sum (or average) the examples.

    Example :math:`b`'s gradients :math:`g_b` (all tensors together) are scaled by
    :math:`\min(1, C / \|g_b\|)`, and :math:`\sum_b` of the results is returned, as
    ``optax.per_example_global_norm_clip`` does (a zero norm, or an infinite one
    with ``C = inf``, is left as it is). DP-SGD then adds Gaussian noise of standard
    deviation :math:`\sigma C` to the sum and divides by the batch size.

    Args:
      grads: list of per-example gradients, each of shape ``(batch, *variable_shape)``
        with the same batch size, or ``None``.
      l2_norm_clip: float in [0, inf]: the clip norm :math:`C` (0 zeroes every
        example; inf clips none).
      reduction: ``"sum"`` (optax, TF Privacy before noise) or ``"mean"`` (divided by
        the batch size).

    Returns:
      ``(clipped, num_clipped)``: a list like ``grads`` without the batch axis, and
      an int32 scalar, how many examples were clipped.

    References:
      Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang. "Deep Learning with
      Differential Privacy". CCS 2016. https://arxiv.org/abs/1607.00133

    >>> g = [tf.constant([[0.0, 0.0, 0.0], [0.0, 3.0, 4.0], [4.0, 0.0, 3.0], [3.0, 4.0, 0.0]])]
    >>> out, n = per_example_global_norm_clip(g, 1.25)  # optax's docstring example
    >>> out[0].numpy().tolist(), int(n)
    ([1.75, 1.75, 1.75], 3)
    """
    grads = _check_batched(grads, "per_example_global_norm_clip")
    clip = _clip_norm("l2_norm_clip", l2_norm_clip)
    reduction = _reduction(reduction)
    multipliers = _multipliers(per_example_norms(grads), clip)
    num_clipped = tf.reduce_sum(tf.cast(multipliers < 1.0, tf.int32))
    return [None if g is None else _weighted_sum(multipliers, g, reduction) for g in grads], num_clipped


def per_example_layer_norm_clip(grads, global_l2_norm_clip, uniform=True, reduction="sum"):
    r"""Clip each layer of each example on its own, then sum (or average) the examples.

    With :math:`K` tensors and :math:`C` = ``global_l2_norm_clip``, tensor :math:`i`
    of every example is clipped to :math:`C_i = C/\sqrt{K}` (``uniform=True``) or
    :math:`C\sqrt{D_i/D}` (``D_i`` entries of the tensor per example, ``D`` in all),
    so that the clipped example's global norm is at most :math:`C`, as
    ``optax.per_example_layer_norm_clip`` does (McMahan et al. 2018). ``None``
    gradients count neither in :math:`K` nor in :math:`D`.

    Args:
      grads: list of per-example gradients, each ``(batch, *variable_shape)``, or ``None``.
      global_l2_norm_clip: float in [0, inf], :math:`C`.
      uniform: bool, the uniform split (True) or by size (False).
      reduction: ``"sum"`` or ``"mean"``.

    Returns:
      ``(clipped, num_clipped)``: a list like ``grads`` without the batch axis, and a
      list with, for each tensor, how many examples had it clipped (int32; ``None``
      for ``None``).

    References:
      McMahan, Ramage, Talwar, Zhang. "Learning Differentially Private Recurrent
      Language Models". ICLR 2018. https://arxiv.org/abs/1710.06963

    >>> g = [tf.constant([[0.5], [1.5], [-2.0], [3.0]]), tf.ones([4, 3, 3, 2])]
    >>> out, n = per_example_layer_norm_clip(g, 2.0 ** 0.5)  # optax's test: per-layer clip 1.0
    >>> round(float(out[0][0]), 5), [int(c) for c in n]
    (1.5, [3, 4])
    """
    grads = _check_batched(grads, "per_example_layer_norm_clip")
    clip = _clip_norm("global_l2_norm_clip", global_l2_norm_clip)
    uniform = _checks.boolean("uniform", uniform)
    reduction = _reduction(reduction)
    present = [g for g in grads if g is not None]
    if not present:
        raise ValueError("Argument `grads` must hold at least one gradient that is not None. Received: only None")
    sizes = []
    for i, g in enumerate(grads):
        if g is None:
            sizes.append(None)
            continue
        per_example = g.shape[1:].num_elements()
        if per_example is None:
            raise ValueError(
                f"Argument `grads` must have known per-example shapes for per_example_layer_norm_clip. "
                f"Received: grads[{i}] of shape {g.shape}"
            )
        sizes.append(per_example)
    total = sum(s for s in sizes if s is not None)
    out, counts = [], []
    for g, size in zip(grads, sizes):
        if g is None:
            out.append(None)
            counts.append(None)
            continue
        share = 1.0 / len(present) if uniform else size / total
        multipliers = _multipliers(tf.sqrt(_example_squares(g)), clip * math.sqrt(share))
        out.append(_weighted_sum(multipliers, g, reduction))
        counts.append(tf.reduce_sum(tf.cast(multipliers < 1.0, tf.int32)))
    return out, counts
