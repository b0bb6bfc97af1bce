"""Adaptive gradient clipping (AGC; Brock et al. 2021), unit by unit, relative to the weights.

A unit is one output of a layer: Keras kernels are laid out ``(..., in, out)``,
so unit norms are taken over every axis but the last.
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _checks
from gradlab.scaling.clipping import _threshold, clip_factor, scale, values_of, with_values

__all__ = ["adaptive_clip", "agc_factors", "agc_values", "unit_norms", "unit_squares"]


def unit_norms(t) -> tf.Tensor:
    """Unit-wise L2 norms in float32, kept broadcastable to ``t``.

    Keras kernels are laid out ``(..., in, out)``: a unit is one output, so norms
    are taken over every axis but the last. Tensors of rank 0 or 1 (biases,
    scales) are one unit.
    """
    return tf.sqrt(unit_squares(t))


def unit_squares(t) -> tf.Tensor:
    """Unit-wise sums of squares in float32 (see :func:`unit_norms`)."""
    t = tf.cast(t, tf.float32)
    rank = t.shape.rank
    if rank is None or rank <= 1:
        return tf.reduce_sum(tf.square(t))
    return tf.reduce_sum(tf.square(t), axis=list(range(rank - 1)), keepdims=True)


def adaptive_clip(grads, variables, clipping=0.01, eps=1e-3) -> list:
    r"""Adaptive gradient clipping (AGC), unit by unit.

    Each unit's gradient :math:`G_i` is clipped to
    :math:`\lambda \max(\|W_i\|, \epsilon)`, where :math:`W_i` is that unit's weight:

    .. math:: G_i \leftarrow G_i \cdot \min\Big(1, \frac{\lambda \max(\|W_i\|, \epsilon)}{\|G_i\|}\Big)

    Units are outputs: norms over every axis but the last (Keras kernels are
    ``(..., in, out)``); tensors of rank 0 or 1 are one unit. For
    ``IndexedSlices``, the gradient's unit norms come from its ``values`` and the
    weight's from the whole variable.

    Args:
      grads: list of tensors, ``tf.IndexedSlices`` or ``None``.
      variables: the variables (or weight tensors) the gradients belong to, same length.
      clipping: positive float :math:`\lambda`; the paper uses 0.01 to 0.16
        depending on batch size.
      eps: positive float :math:`\epsilon`, so that zero-initialised weights
        (biases) can still move. The paper uses 1e-3.

    Returns:
      A list like ``grads``.

    References:
      Brock, De, Smith, Simonyan. "High-Performance Large-Scale Image Recognition
      Without Normalization". ICML 2021. https://arxiv.org/abs/2102.06171

    >>> W = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    >>> G = tf.constant([[3.0, 0.0], [4.0, 1.0]])
    >>> adaptive_clip([G], [W], clipping=0.5)[0].numpy().round(3).tolist()
    [[0.3, 0.0], [0.4, 1.0]]
    """
    grads = _checks.grad_list(grads)
    if variables is None:
        raise ValueError(
            "Argument `variables` is required for adaptive clipping (AGC): the "
            "bound of each unit is relative to its weight norm. Pass the list of "
            "variables the gradients belong to. Received: variables=None"
        )
    variables = _checks.variable_list(variables, grads)
    for i, (g, w) in enumerate(zip(grads, variables)):
        if g is not None and (w is None or getattr(w, "shape", None) is None):
            raise ValueError(
                "Argument `variables` must hold the weight of every gradient that is not None (AGC's bound "
                f"is relative to the weight's norm). Received: variables[{i}]={w!r} for grads[{i}] of shape "
                f"{tuple(values_of(g).shape.as_list())}"
            )
    clipping = _threshold("clipping", clipping)
    eps = _checks.number("eps", eps)
    return [
        None if g is None else with_values(g, agc_values(values_of(g), w, clipping, eps))
        for g, w in zip(grads, variables)
    ]


def agc_values(g, w, clipping, eps):
    """AGC of one dense gradient ``g`` given its weight ``w`` (no checks)."""
    return scale(g, agc_factors(g, w, clipping, eps)[0])


def agc_factors(g, w, clipping, eps):
    """AGC's unit-wise factors for ``g`` and the squared norm of the clipped gradient.

    Returns ``(factors, squared_norm_after)``: ``factors`` broadcasts to ``g``
    (shape ``(1, ..., 1, units)``, or a scalar for rank <= 1), and
    ``squared_norm_after`` is ``||g * factors||**2`` computed from the unit norms
    (no second pass over ``g``).
    """
    if isinstance(w, tf.Variable):
        w = w.read_value()  # tf.Variable.value is a method
    elif hasattr(w, "value") and not isinstance(w, tf.Tensor):
        w = w.value  # a Keras variable
    bound = clipping * tf.maximum(unit_norms(w), eps)
    g_squares = unit_squares(g)
    factors = clip_factor(tf.sqrt(g_squares), bound)
    return factors, tf.reduce_sum(tf.square(factors) * g_squares)
