"""Pure gradient scaling functions.

Each function takes a list of gradients (tensors, ``tf.IndexedSlices`` or
``None``) and returns a new list of the same length and structure: ``None``
stays ``None`` and ``IndexedSlices`` stay ``IndexedSlices`` (their ``values``
are scaled, as ``tf.clip_by_norm`` does). Norms are always computed in float32,
whatever the gradient dtype: the squares of float16 values above 256 overflow.

The norm of an ``IndexedSlices`` is the norm of its ``values``, duplicate
indices not merged, exactly as ``tf.linalg.global_norm`` and Keras' ``clipnorm``
compute it.

This module imports nothing else of gradlab but its argument checks and the adapter
(:mod:`gradlab._internals`, to know when XLA compiles). AGC is in
:mod:`gradlab.scaling.agc`, AutoClip and ZClip in :mod:`gradlab.scaling.adaptive`.
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _checks, _internals

__all__ = [
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "global_norm",
    "normalize",
    "normalize_global",
    "tensor_norms",
]


# ---------------------------------------------------------------- helpers
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


def squared_norm(t) -> tf.Tensor:
    """Sum of squares of ``t`` as a float32 scalar, in the fastest way measured for its size.

    Measured on 2 CPU cores (``benchmarks/profile_step.py``; 20 tensors of each size): outside
    XLA, ``tf.nn.l2_loss`` (one fused pass, as ``tf.linalg.global_norm`` computes it) took 0.69x
    the time of ``reduce_sum(square)`` at 1M entries and 1.11x at 100k, so it is used from
    :data:`FUSED_FROM` entries on; under XLA, see :func:`_xla_squared_norm`. The same sum, in
    another order of additions.
    """
    t = tf.cast(t, tf.float32)
    if _internals.in_xla_context():
        return _xla_squared_norm(t)
    n = t.shape.num_elements()
    if n is not None and n >= FUSED_FROM:
        return 2.0 * tf.nn.l2_loss(t)
    return tf.reduce_sum(tf.square(t))


FUSED_FROM = 1 << 18  # entries from which, outside XLA, the fused tf.nn.l2_loss is faster
XLA_ROW = 8  # under XLA, sums of squares of this many entries first, then the sum of those


def _xla_squared_norm(t) -> tf.Tensor:
    """Sum of squares of a float32 ``t`` as XLA on CPU computes it fastest: in rows of 8, then the rows.

    XLA's CPU backend runs a reduction of a whole large tensor to one number as a tree of
    reduce-windows, about 2.5x slower than one that first reduces rows of 8 entries (a loop
    over rows that it splits between threads), for a 1M-entry tensor (measured on 2 cores:
    ``benchmarks/profile_step.py``). Same sum, other order of additions.
    """
    n = t.shape.num_elements()
    if n is None or n < 64 * XLA_ROW:  # unknown or small: one reduction
        return tf.reduce_sum(tf.square(t))
    flat = tf.reshape(t, [-1])
    head = n - n % XLA_ROW
    total = tf.reduce_sum(tf.reduce_sum(tf.square(tf.reshape(flat[:head], [-1, XLA_ROW])), axis=1))
    return total if head == n else total + tf.reduce_sum(tf.square(flat[head:]))


fused_squared_norm = squared_norm  # the earlier name of the same function (kept for code that imports it)


def scale(values, factor):
    """``values * factor``; float16/bfloat16 values are multiplied in float32.

    A factor cast to float16 first would overflow (normalize: 1 / 1e-12) or fall
    to a subnormal or zero (clipping a norm above ~1e5 to 1).
    """
    if values.dtype in (tf.float16, tf.bfloat16):
        return tf.cast(tf.cast(values, tf.float32) * tf.cast(factor, tf.float32), values.dtype)
    return values * tf.cast(factor, values.dtype)


def _threshold(name, value):
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


# ---------------------------------------------------------------- norms
def tensor_norms(grads) -> list:
    """L2 norm of each gradient, float32 (``None`` for ``None``).

    >>> [float(n) for n in tensor_norms([tf.constant([3.0, 4.0]), tf.constant([6.0, 8.0])])]
    [5.0, 10.0]
    """
    grads = _checks.grad_list(grads)
    return [None if g is None else tf.sqrt(squared_norm(values_of(g))) for g in grads]


def global_norm(grads) -> tf.Tensor:
    """The L2 norm of all gradients taken together, as a float32 scalar.

    Equal to ``tf.linalg.global_norm`` for float32 input, but never overflows for
    float16 input: each tensor is cast to float32 before squaring.

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


# ---------------------------------------------------------------- clipping
def clip_by_value(grads, clipvalue) -> list:
    """Clip every gradient entry to ``[-clipvalue, clipvalue]``.

    The same as a Keras optimizer built with ``clipvalue=clipvalue``. It can change
    the direction of the gradient vector (only the large entries shrink).

    Args:
      grads: list of tensors, ``tf.IndexedSlices`` or ``None``.
      clipvalue: positive float.

    Returns:
      A list like ``grads``.

    >>> [g.numpy().tolist() for g in clip_by_value([tf.constant([3.0, -0.5, -4.0])], 1.0)]
    [[1.0, -0.5, -1.0]]
    """
    grads = _checks.grad_list(grads)
    clipvalue = _threshold("clipvalue", clipvalue)
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
    clipnorm = _threshold("clipnorm", clipnorm)
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
    global_clipnorm = _threshold("global_clipnorm", global_clipnorm)
    norm = global_norm(grads)
    factor = clip_factor(norm, global_clipnorm) + (norm - norm)  # NaN for a non-finite norm, as TF
    return [None if g is None else with_values(g, scale(values_of(g), factor)) for g in grads]


# ---------------------------------------------------------------- normalization
def normalize(grads, norm=1.0, eps=1e-12) -> list:
    """Scale each gradient tensor to an L2 norm of ``norm`` (unit norm by default).

    Unlike clipping, small gradients grow too. An all-zero tensor stays zero.

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
    norm = _threshold("norm", norm)
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

    >>> out = normalize_global([tf.constant([0.3, 0.0]), tf.constant([0.0, 0.4])])
    >>> [g.numpy().round(3).tolist() for g in out]
    [[0.6, 0.0], [0.0, 0.8]]
    """
    grads = _checks.grad_list(grads)
    norm = _threshold("norm", norm)
    eps = _checks.number("eps", eps)
    factor = normalize_factor(global_norm(grads), norm, eps)
    return [None if g is None else with_values(g, scale(values_of(g), factor)) for g in grads]
