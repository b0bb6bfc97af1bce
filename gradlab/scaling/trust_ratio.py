"""The layer-wise trust ratio of LARS and LAMB: each tensor scaled by ``||w|| / ||g||``.

LARS (You et al. 2017) and LAMB (You et al. 2020) scale each layer's update so that
its norm is a fixed fraction of the layer's weight norm. optax offers the scaling as
``scale_by_trust_ratio(min_norm, trust_coefficient, eps)`` (used by ``optax.lars``
with ``trust_coefficient=0.001`` and by ``optax.lamb``); Keras' ``Lamb`` applies
``||w|| / ||update||`` (1 where either is zero) to its Adam update.
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _checks
from gradlab.scaling.kernels import scale, squared_norm, values_of, with_values

__all__ = ["scale_by_trust_ratio", "trust_factor", "trust_ratios"]


def _weight(w):
    if isinstance(w, tf.Variable):
        return w.read_value()
    if hasattr(w, "value") and not isinstance(w, tf.Tensor):
        return w.value  # a Keras variable
    return w


def trust_factor(g_norm, w_norm, trust_coefficient=1.0, min_norm=0.0, eps=0.0) -> tf.Tensor:
    """``c * max(||w||, m) / (max(||g||, m) + eps)``, 1 where either norm is zero (optax's formula).

    The one formula of the trust ratio, used by :func:`trust_ratios` and by mode ``"trust_ratio"``.
    """
    w_norm, g_norm = tf.maximum(w_norm, min_norm), tf.maximum(g_norm, min_norm)  # optax numerics.safe_norm
    ratio = tf.cast(trust_coefficient, tf.float32) * w_norm / (g_norm + eps)
    return tf.where(tf.logical_or(tf.equal(w_norm, 0.0), tf.equal(g_norm, 0.0)), 1.0, ratio)


def weight_norm(w) -> tf.Tensor:
    """The float32 norm of a weight (a ``tf.Variable``, a Keras variable or a tensor)."""
    return tf.sqrt(squared_norm(_weight(w)))


def trust_ratios(grads, variables, min_norm=0.0, trust_coefficient=1.0, eps=0.0) -> list:
    """Each tensor's trust ratio (float32 scalar; None for a None gradient), see :func:`scale_by_trust_ratio`."""
    grads = _checks.grad_list(grads)
    variables = _checks.variable_list(variables, grads)
    min_norm = _checks.number("min_norm", min_norm, low=0.0, low_open=False)
    trust_coefficient = _checks.number("trust_coefficient", trust_coefficient)
    eps = _checks.number("eps", eps, low=0.0, low_open=False)
    out = []
    for i, (g, w) in enumerate(zip(grads, variables)):
        if g is None:
            out.append(None)
            continue
        if w is None or getattr(w, "shape", None) is None:
            raise ValueError(
                "Argument `variables` must hold the weight of every gradient that is not None (the trust ratio "
                f"is relative to the weight's norm). Received: variables[{i}]={w!r}"
            )
        g_norm = tf.sqrt(squared_norm(values_of(g)))
        out.append(trust_factor(g_norm, weight_norm(w), trust_coefficient, min_norm, eps))
    return out


def scale_by_trust_ratio(grads, variables, min_norm=0.0, trust_coefficient=1.0, eps=0.0) -> list:
    r"""Scale each tensor by its trust ratio :math:`c\,\|w\| / (\|g\| + \epsilon)`.

    Norms are floored at ``min_norm``; where either norm is zero the ratio is 1 (a
    zero-initialised weight or a zero update is left as it is), as in optax. With
    the defaults every tensor gets the norm of its weight: this is a normalisation,
    not a clip (the ratio may exceed 1); the learning rate then sets the step as a
    fraction of the weight.

    In a compiled step (a :class:`~gradlab.scaler.scaler.Scaler` in the Trainer or ``ScaledOptimizer``),
    mode ``"trust_ratio"`` does the same: its record ``MODES["trust_ratio"]`` in :mod:`gradlab.scaler.modes`
    decides, and :meth:`Scaler.plan <gradlab.scaler.scaler.Scaler.plan>` applies the decision.

    Args:
      grads: list of tensors, ``tf.IndexedSlices`` or ``None`` (the update of each
        weight: the gradient for LARS, the Adam update for LAMB).
      variables: the weights, same length.
      min_norm: float >= 0, the floor of both norms (optax's default 0).
      trust_coefficient: positive float :math:`c` (1 for LAMB; LARS uses 0.001).
      eps: float >= 0 added to the update norm.

    Returns:
      A list like ``grads``.

    References:
      You, Gitman, Ginsburg. "Large Batch Training of Convolutional Networks"
      (LARS). 2017. https://arxiv.org/abs/1708.03888 ; You et al. "Large Batch
      Optimization for Deep Learning: Training BERT in 76 minutes" (LAMB). ICLR 2020.
      https://arxiv.org/abs/1904.00962

    >>> out = scale_by_trust_ratio([tf.constant([0.3, 0.4]), tf.constant([1.0])], [tf.constant([6.0, 8.0]), tf.zeros([1])])
    >>> [g.numpy().round(4).tolist() for g in out]  # ||w|| / ||g|| = 10 / 0.5 = 20; zero weight: 1
    [[6.0, 8.0], [1.0]]
    """
    ratios = trust_ratios(grads, variables, min_norm, trust_coefficient, eps)
    grads = _checks.grad_list(grads)
    return [None if g is None else with_values(g, scale(values_of(g), r)) for g, r in zip(grads, ratios)]
