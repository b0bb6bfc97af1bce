"""Pure gradient scaling functions: clip by value, by each tensor's norm, by the global
norm; normalize; the norms themselves.

Each function takes a list of gradients (tensors, ``tf.IndexedSlices`` or
``None``) and returns a new list of the same length and structure: ``None``
stays ``None`` and ``IndexedSlices`` stay ``IndexedSlices`` (their ``values``
are scaled, as ``tf.clip_by_norm`` does). Norms are always computed in float32,
whatever the gradient dtype: the squares of float16 values above 256 overflow.

The norm of an ``IndexedSlices`` is the norm of its ``values``, duplicate
indices not merged, exactly as ``tf.linalg.global_norm`` and Keras' ``clipnorm``
compute it.

The public functions come first; after them, the factors (``min(1, bound / norm)`` and
its kin) that the modes of :mod:`gradlab.scaler.modes` compute with too, so that a mode
in a compiled step and the function of the same name give the same numbers. The kernels
underneath (reading and writing a gradient's values, the fast sum of squares) are in
:mod:`gradlab.scaling.kernels`. AGC is in :mod:`gradlab.scaling.agc`, AutoClip in
:mod:`gradlab.scaling.autoclip`, ZClip in :mod:`gradlab.scaling.zclip`.
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _checks
from gradlab.scaling.kernels import scale, squared_norm, values_of, with_values

__all__ = [
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "global_norm",
    "normalize",
    "normalize_global",
    "tensor_norms",
]


# ---------------------------------------------------------------- clipping
def clip_by_value(grads, clipvalue) -> list:
    """Clip every gradient entry to ``[-clipvalue, clipvalue]``.

    The same as a Keras optimizer built with ``clipvalue=clipvalue``. It can change
    the direction of the gradient vector (only the large entries shrink).

    In a compiled step (a :class:`~gradlab.scaler.scaler.Scaler` in the Trainer or ``ScaledOptimizer``),
    mode ``"value"`` does the same: its record ``MODES["value"]`` in :mod:`gradlab.scaler.modes`
    decides, and :meth:`Scaler.plan <gradlab.scaler.scaler.Scaler.plan>` applies the decision.

    Args:
      grads: list of tensors, ``tf.IndexedSlices`` or ``None``.
      clipvalue: positive float.

    Returns:
      A list like ``grads``.

    >>> [g.numpy().tolist() for g in clip_by_value([tf.constant([3.0, -0.5, -4.0])], 1.0)]
    [[1.0, -0.5, -1.0]]
    """
    grads = _checks.grad_list(grads)
    clipvalue = check_threshold("clipvalue", clipvalue)
    out = []
    for g in grads:
        if g is None:
            out.append(None)
            continue
        v = values_of(g)
        t = tf.cast(clipvalue, v.dtype)
        out.append(with_values(g, tf.clip_by_value(v, -t, t)))
    return out


def clip_by_norm(grads, clipnorm) -> list:
    """Clip each gradient tensor to an L2 norm of at most ``clipnorm``, on its own.

    This is what a Keras optimizer built with ``clipnorm=clipnorm`` does, and what
    the hand-written ``scale_gradients`` function of the article does: each
    variable's gradient is scaled separately, so the direction of the whole
    gradient vector can change. It is *not* clipping of the global norm.

    In a compiled step (a :class:`~gradlab.scaler.scaler.Scaler` in the Trainer or ``ScaledOptimizer``),
    mode ``"norm"`` does the same: its record ``MODES["norm"]`` in :mod:`gradlab.scaler.modes`
    decides, and :meth:`Scaler.plan <gradlab.scaler.scaler.Scaler.plan>` applies the decision.

    Args:
      grads: list of tensors, ``tf.IndexedSlices`` or ``None``.
      clipnorm: positive float, the largest norm each tensor may keep.

    Returns:
      A list like ``grads``.

    >>> out = clip_by_norm([tf.constant([3.0, 4.0]), tf.constant([0.3, 0.4])], 1.0)
    >>> [g.numpy().round(3).tolist() for g in out]
    [[0.6, 0.8], [0.3, 0.4]]
    """
    grads = _checks.grad_list(grads)
    clipnorm = check_threshold("clipnorm", clipnorm)
    out = []
    for g in grads:
        if g is None:
            out.append(None)
            continue
        v = values_of(g)
        norm = tf.sqrt(squared_norm(v))
        out.append(with_values(g, scale(v, clip_factor(norm, clipnorm))))
    return out


def clip_by_global_norm(grads, global_clipnorm) -> list:
    """Scale all gradients together so that their global norm is at most the bound.

    Gives the numbers of ``tf.clip_by_global_norm(grads, global_clipnorm)[0]`` and
    of a Keras optimizer built with ``global_clipnorm``, for finite input. Unlike
    them, the norm is computed in float32 (float16 gradients near 65504 still get
    a finite norm). A non-finite norm makes every entry NaN, as in TensorFlow; use
    :class:`gradlab.Scaler` for a policy on non-finite gradients.

    In a compiled step (a :class:`~gradlab.scaler.scaler.Scaler` in the Trainer or ``ScaledOptimizer``),
    mode ``"global_norm"`` does the same: its record ``MODES["global_norm"]`` in :mod:`gradlab.scaler.modes`
    decides, and :meth:`Scaler.plan <gradlab.scaler.scaler.Scaler.plan>` applies the decision.

    Args:
      grads: list of tensors, ``tf.IndexedSlices`` or ``None``.
      global_clipnorm: positive float.

    Returns:
      A list like ``grads``.

    >>> out = clip_by_global_norm([tf.constant([3.0, 0.0]), tf.constant([0.0, 4.0])], 1.0)
    >>> [g.numpy().round(3).tolist() for g in out]
    [[0.6, 0.0], [0.0, 0.8]]
    """
    grads = _checks.grad_list(grads)
    global_clipnorm = check_threshold("global_clipnorm", global_clipnorm)
    norm = global_norm(grads)
    factor = clip_factor(norm, global_clipnorm) + (norm - norm)  # NaN for a non-finite norm, as TF
    return [None if g is None else with_values(g, scale(values_of(g), factor)) for g in grads]


# ---------------------------------------------------------------- normalization
def normalize(grads, norm=1.0, eps=1e-12) -> list:
    """Scale each gradient tensor to an L2 norm of ``norm`` (unit norm by default).

    Unlike clipping, small gradients grow too. An all-zero tensor stays zero.

    In a compiled step (a :class:`~gradlab.scaler.scaler.Scaler` in the Trainer or ``ScaledOptimizer``),
    mode ``"normalize"`` does the same: its record ``MODES["normalize"]`` in :mod:`gradlab.scaler.modes`
    decides, and :meth:`Scaler.plan <gradlab.scaler.scaler.Scaler.plan>` applies the decision.

    Args:
      grads: list of tensors, ``tf.IndexedSlices`` or ``None``.
      norm: positive float, the norm each tensor gets.
      eps: positive float; tensors with a norm below it are divided by ``eps``.

    Returns:
      A list like ``grads``.

    >>> out = normalize([tf.constant([3.0, 4.0]), tf.constant([0.0, 0.5])])
    >>> [g.numpy().round(3).tolist() for g in out]
    [[0.6, 0.8], [0.0, 1.0]]
    """
    grads = _checks.grad_list(grads)
    norm = check_threshold("norm", norm)
    eps = _checks.number("eps", eps)
    out = []
    for g in grads:
        if g is None:
            out.append(None)
            continue
        v = values_of(g)
        out.append(with_values(g, scale(v, normalize_factor(tf.sqrt(squared_norm(v)), norm, eps))))
    return out


def normalize_global(grads, norm=1.0, eps=1e-12) -> list:
    """Scale all gradients together to a global L2 norm of ``norm``.

    The direction of the whole gradient vector is kept; only its length changes.

    In a compiled step (a :class:`~gradlab.scaler.scaler.Scaler` in the Trainer or ``ScaledOptimizer``),
    mode ``"global_normalize"`` does the same: its record ``MODES["global_normalize"]`` in :mod:`gradlab.scaler.modes`
    decides, and :meth:`Scaler.plan <gradlab.scaler.scaler.Scaler.plan>` applies the decision.

    >>> out = normalize_global([tf.constant([0.3, 0.0]), tf.constant([0.0, 0.4])])
    >>> [g.numpy().round(3).tolist() for g in out]
    [[0.6, 0.0], [0.0, 0.8]]
    """
    grads = _checks.grad_list(grads)
    norm = check_threshold("norm", norm)
    eps = _checks.number("eps", eps)
    factor = normalize_factor(global_norm(grads), norm, eps)
    return [None if g is None else with_values(g, scale(values_of(g), factor)) for g in grads]


# ---------------------------------------------------------------- norms
def global_norm(grads) -> tf.Tensor:
    """The L2 norm of all gradients taken together, as a float32 scalar.

    Equal to ``tf.linalg.global_norm`` for float32 input, but never overflows for
    float16 input: each tensor is cast to float32 before squaring.

    In a compiled step the norms are taken once per step, in one pass, by
    :func:`gradlab.scaler.nonfinite.measure` (with the same :func:`~gradlab.scaling.kernels.squared_norm`).

    Args:
      grads: list of tensors, ``tf.IndexedSlices`` or ``None``.

    Returns:
      A float32 scalar tensor.

    >>> float(global_norm([tf.constant([3.0, 0.0]), None, tf.constant([[0.0, 4.0]])]))
    5.0
    >>> float(global_norm([tf.constant([300.0, 300.0], tf.float16)]))  # float16 norm is inf
    424.26...
    """
    grads = _checks.grad_list(grads)
    squares = [squared_norm(values_of(g)) for g in grads if g is not None]
    if not squares:
        return tf.constant(0.0, tf.float32)
    return tf.sqrt(tf.add_n(squares))


def tensor_norms(grads) -> list:
    """L2 norm of each gradient, float32 (``None`` for ``None``).

    In a compiled step the norms are taken once per step, in one pass, by
    :func:`gradlab.scaler.nonfinite.measure` (with the same :func:`~gradlab.scaling.kernels.squared_norm`).

    >>> [float(n) for n in tensor_norms([tf.constant([3.0, 4.0]), tf.constant([6.0, 8.0])])]
    [5.0, 10.0]
    """
    grads = _checks.grad_list(grads)
    return [None if g is None else tf.sqrt(squared_norm(values_of(g))) for g in grads]


# ---------------------------------------------------------------- the factors the modes share
def check_threshold(name, value):
    """A positive threshold: a Python number as a float, a tensor as float32 (checked in the graph)."""
    value = _checks.number(name, value)
    return tf.cast(value, tf.float32) if _checks.is_symbolic(value) else value


def clip_factor(norm, bound):
    """``min(1, bound / norm)``, written as ``tf.clip_by_global_norm`` writes it.

    ``bound * min(1 / norm, 1 / bound)`` gives the same bits as TensorFlow and
    Keras when clipping, and exactly 1 when ``norm <= bound`` (``bound * (1 / bound)``
    is not always 1 in float32), including a zero norm. A NaN norm gives NaN.
    """
    return tf.where(norm <= bound, 1.0, bound * tf.minimum(1.0 / norm, 1.0 / bound))


def bound_factor(norm, bound):
    """``min(1, bound / norm)`` for a computed bound that may be ``inf`` (no clipping).

    :func:`clip_factor` would give ``inf * 0 = NaN`` there; a zero norm gives 1.
    """
    return tf.minimum(1.0, bound / norm)


def normalize_factor(norm, target, eps):
    """``target / max(norm, eps)``: the factor that gives a tensor of ``norm`` the norm ``target``."""
    return target / tf.maximum(norm, eps)


def value_squares_after(values, clipvalue) -> tf.Tensor:
    """``||clip(values, -clipvalue, clipvalue)||**2`` in float32, without building the clipped tensor."""
    return tf.reduce_sum(tf.minimum(tf.square(tf.cast(values, tf.float32)), tf.square(tf.cast(clipvalue, tf.float32))))


def clip_to_bound(grads, norm, bound) -> list:
    """``grads`` scaled by :func:`bound_factor` of their global ``norm`` and a computed ``bound``
    (``inf``: unchanged): how AutoClip and ZClip apply their bound."""
    factor = bound_factor(norm, bound)
    return [None if g is None else with_values(g, scale(values_of(g), factor)) for g in grads]
