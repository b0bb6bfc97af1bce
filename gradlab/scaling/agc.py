"""Adaptive gradient clipping (AGC; Brock et al. 2021), unit by unit, relative to the weights.

A unit is one output of a layer: Keras kernels are laid out ``(..., in, out)``,
so by default unit norms are taken over every axis but the last. ``axis=`` names
the axes a unit spans instead (as optax's ``adaptive_grad_clip(..., axis=...)``),
and ``axis="optax"`` follows optax's default rule.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

from gradlab import _checks
from gradlab.scaling.clipping import check_threshold, clip_factor
from gradlab.scaling.kernels import scale, values_of, with_values

__all__ = ["adaptive_clip", "agc_factors", "agc_values", "check_axis", "unit_axes", "unit_norms", "unit_squares"]


def unit_norms(t, axis=None) -> tf.Tensor:
    """Unit-wise L2 norms in float32, kept broadcastable to ``t``.

    Keras kernels are laid out ``(..., in, out)``: a unit is one output, so by
    default (``axis=None``) norms are taken over every axis but the last. Tensors
    of rank 0 or 1 (biases, scales) are one unit. ``axis`` (an int or a tuple of
    ints) names the axes instead; ``"optax"`` takes optax's ``unitwise_norm`` rule.
    """
    return tf.sqrt(unit_squares(t, axis))


def unit_axes(shape, axis=None, name="axis"):
    """The axes a unit spans in a tensor of ``shape``: a tuple, or None for the whole tensor.

    ``axis=None``: gradlab's Keras rule (every axis but the last; rank <= 1 is one unit).
    ``axis="optax"``: optax's ``unitwise_norm`` default (``optax/transforms/_clipping.py``): a
    tensor that is a vector once its size-1 axes are dropped is one unit (so a ``(1, out)``
    kernel is one unit); rank 2 and 3 (``IO``, multi-head ``I H O``): axis 0; rank 4 (``HWIO``):
    axes 0, 1, 2; other ranks are refused. An int or tuple: those axes (negative ones count
    from the end), for every tensor.
    """
    shape = tf.TensorShape(shape)
    rank = shape.rank
    if axis is None:
        if rank is None or rank <= 1:
            return None
        return tuple(range(rank - 1))
    if axis == "optax":
        dims = shape.as_list()
        if rank is None or None in dims:
            raise ValueError(
                f"Argument `{name}`='optax' needs tensors of known shape. Received: a tensor of shape {shape}"
            )
        if sum(d != 1 for d in dims) <= 1:
            return None
        if rank in (2, 3):
            return (0,)
        if rank == 4:
            return (0, 1, 2)
        raise ValueError(
            f"Argument `{name}`='optax' takes tensors of rank 1 to 4 (optax's rule); name the unit axes of "
            f"rank-{rank} tensors with an int or a tuple. Received: a tensor of shape {tuple(dims)}"
        )
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    if rank is None or any(not -rank <= a < rank for a in axes):
        raise ValueError(
            f"Argument `{name}` must name axes of every gradient, in [-rank, rank). Received: {name}={axis!r} "
            f"for a tensor of shape {tuple(shape.as_list()) if rank is not None else shape}"
        )
    axes = tuple(sorted(a % rank for a in axes))
    if len(set(axes)) != len(axes):
        raise ValueError(f"Argument `{name}` must not repeat an axis. Received: {name}={axis!r}")
    return axes


def check_axis(axis, name="axis"):
    """None, ``"optax"``, an int or a non-empty tuple/list of ints (checked per tensor by :func:`unit_axes`)."""
    if axis is None or axis == "optax":
        return axis
    if isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
        return int(axis)
    if (
        isinstance(axis, (tuple, list))
        and axis
        and all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in axis)
    ):
        return tuple(int(a) for a in axis)
    raise ValueError(
        f"Argument `{name}` must be None (gradlab's Keras rule), 'optax', an int or a non-empty tuple of ints. "
        f"Received: {name}={axis!r}"
    )


def unit_squares(t, axis=None, shape=None) -> tf.Tensor:
    """Unit-wise sums of squares in float32 (see :func:`unit_norms`).

    ``shape`` is the shape the axes are read from (a variable's, for the values of
    an ``IndexedSlices``); ``t``'s own by default.
    """
    t = tf.cast(t, tf.float32)
    axes = unit_axes(t.shape if shape is None else shape, axis)
    if axes is None:
        if axis is None:
            return tf.reduce_sum(tf.square(t))
        return tf.reduce_sum(tf.square(t), keepdims=True)
    return tf.reduce_sum(tf.square(t), axis=list(axes), keepdims=True)


def adaptive_clip(grads, variables, clipping=0.01, eps=1e-3, axis=None) -> list:
    r"""Adaptive gradient clipping (AGC), unit by unit.

    Each unit's gradient :math:`G_i` is clipped to
    :math:`\lambda \max(\|W_i\|, \epsilon)`, where :math:`W_i` is that unit's weight:

    .. math:: G_i \leftarrow G_i \cdot \min\Big(1, \frac{\lambda \max(\|W_i\|, \epsilon)}{\|G_i\|}\Big)

    Units are outputs: norms over every axis but the last (Keras kernels are
    ``(..., in, out)``); tensors of rank 0 or 1 are one unit. ``axis`` names the
    unit axes instead, as optax's ``adaptive_grad_clip(clipping, eps, axis)``: an
    int or tuple for every tensor, or ``"optax"`` for optax's default rule (axis 0
    for rank 2 and 3, axes 0-2 for rank 4, one unit for vectors and ``(1, out)``
    kernels). A 3-D multi-head kernel ``(in, heads, out)`` has ``heads * out`` units
    under ``"optax"`` or ``axis=0``, ``out`` units under the default. For
    ``IndexedSlices``, the gradient's unit norms come from its ``values`` and the
    weight's from the whole variable.

    In a compiled step (a :class:`~gradlab.scaler.scaler.Scaler` in the Trainer or ``ScaledOptimizer``),
    mode ``"agc"`` does the same: its record ``MODES["agc"]`` in :mod:`gradlab.scaler.modes`
    decides, and :meth:`Scaler.plan <gradlab.scaler.scaler.Scaler.plan>` applies the decision.

    Args:
      grads: list of tensors, ``tf.IndexedSlices`` or ``None``.
      variables: the variables (or weight tensors) the gradients belong to, same length.
      clipping: positive float :math:`\lambda`; the paper uses 0.01 to 0.16
        depending on batch size.
      eps: positive float :math:`\epsilon`, so that zero-initialised weights
        (biases) can still move. The paper uses 1e-3.
      axis: None (every axis but the last), ``"optax"``, an int or a tuple of ints:
        the axes one unit spans, read from each weight's shape.

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
    clipping = check_threshold("clipping", clipping)
    eps = _checks.number("eps", eps)
    axis = check_axis(axis)
    if axis is not None:
        for g, w in zip(grads, variables):
            if g is not None:
                unit_axes(w.shape, axis)  # every tensor checked before anything is built
    return [
        None if g is None else with_values(g, agc_values(values_of(g), _rows_of(w, g, axis), clipping, eps, axis))
        for g, w in zip(grads, variables)
    ]


def _rows_of(w, g, axis):
    """The weight rows an ``IndexedSlices`` gradient touches, when a unit lies within a row (axis 0 not in
    the unit axes): its units are then those rows' units. Else the whole weight."""
    if not isinstance(g, tf.IndexedSlices) or axis is None:
        return w
    axes = unit_axes(w.shape, axis)
    if axes is None or 0 in axes:
        return w
    if isinstance(w, tf.Variable):
        w = w.read_value()
    elif hasattr(w, "value") and not isinstance(w, tf.Tensor):
        w = w.value
    return tf.gather(w, g.indices)


def agc_values(g, w, clipping, eps, axis=None):
    """AGC of one dense gradient ``g`` given its weight ``w`` (no checks)."""
    return scale(g, agc_factors(g, w, clipping, eps, axis)[0])


def agc_factors(g, w, clipping, eps, axis=None):
    """AGC's unit-wise factors for ``g`` and the squared norm of the clipped gradient.

    Returns ``(factors, squared_norm_after)``: ``factors`` broadcasts to ``g``
    (shape ``(1, ..., 1, units)``, or a scalar for rank <= 1; with ``axis``, the
    weight's shape with the unit axes set to 1), and
    ``squared_norm_after`` is ``||g * factors||**2`` computed from the unit norms
    (no second pass over ``g``).
    """
    if isinstance(w, tf.Variable):
        w = w.read_value()  # tf.Variable.value is a method
    elif hasattr(w, "value") and not isinstance(w, tf.Tensor):
        w = w.value  # a Keras variable
    bound = clipping * tf.maximum(unit_norms(w, axis), eps)
    g_squares = unit_squares(g, axis, shape=w.shape)
    factors = clip_factor(tf.sqrt(g_squares), bound)
    return factors, tf.reduce_sum(tf.square(factors) * g_squares)
