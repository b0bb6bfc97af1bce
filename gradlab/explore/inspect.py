"""Inspect gradients and weights: compare them, measure angles, read what an optimizer applied.

The small measurements the notebooks make again and again, in one place:

- :func:`flatten`: any gradient (a tensor, a list of tensors, a model's weights) as one vector;
- :func:`max_diff` and :func:`distance`: how far apart two gradients or two sets of weights are
  (largest absolute difference; L2 norm of the difference);
- :func:`diff_text`: such a difference in words, "below 1e-6" at float32 round-off;
- :func:`cosine`: the cosine similarity of two gradients, each seen as one long vector (1.0: the
  same direction);
- :func:`applied_gradient`: what a Keras optimizer really applies for given gradients, read from
  the weights it moves (with Keras' own ``clipnorm``, ``clipvalue`` or ``global_clipnorm``).

Every function takes a tensor, a variable, a numpy array, a list of numbers (one vector), a list
of any of these (one per variable: ``[[3.0, 4.0], [0.5]]`` is two tensors), or a Keras model or
layer (its ``weights``). Values are compared in
float64 and returned as Python floats (or float64 numpy arrays).
"""

from __future__ import annotations

import math
import numbers

import keras
import numpy as np
import tensorflow as tf

from gradlab import _checks

__all__ = ["applied_gradient", "cosine", "diff_text", "distance", "flatten", "max_diff"]

_CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm")


# ---------------------------------------------------------------- conversion
def _numbers_only(value) -> bool:
    """True for a list or tuple of Python numbers: one vector. Any other list holds one tensor per item."""
    return bool(value) and all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in value)


def _kind(value) -> str:
    dtype = getattr(value, "dtype", None)
    return type(value).__name__ + ("" if dtype is None else f" with dtype {dtype}")


def _array(value, name: str) -> np.ndarray:
    """One leaf as a float64 array, or a Keras-style error naming it (``name`` is e.g. ``a[2]``)."""
    if value is None:
        raise ValueError(
            f"Argument `{name.split('[')[0]}` must hold tensors or arrays, one per variable (None is not "
            f"a gradient: leave that variable out of both). Received: {name}=None"
        )
    if isinstance(value, tf.IndexedSlices):
        value = tf.convert_to_tensor(value)
    try:
        array = np.asarray(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"Argument `{name.split('[')[0]}` must be a tensor, an array, a list of them or a Keras model. "
            f"Received: {name} of type {_kind(value)}"
        ) from err
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(
            f"Argument `{name.split('[')[0]}` must hold real numbers (float or integer tensors). "
            f"Received: {name} of type {_kind(value)}"
        )
    return array.astype(np.float64)


def _leaves(value, name: str) -> list[np.ndarray]:
    """``value`` as a list of float64 arrays: one per tensor (a model gives its weights)."""
    if isinstance(value, keras.layers.Layer):
        items, label = list(value.weights), f"{name}.weights"
        if not items:
            raise ValueError(
                f"Argument `{name}` must be a model or layer with weights (is it built?). "
                f"Received: {name}={value.name!r} with no weights"
            )
        return [_array(v, f"{label}[{i}]") for i, v in enumerate(items)]
    if isinstance(value, (list, tuple)) and not _numbers_only(value):
        if not value:
            raise ValueError(f"Argument `{name}` must hold at least one tensor. Received: {name}={value!r} (empty)")
        return [_array(v, f"{name}[{i}]") for i, v in enumerate(value)]
    return [_array(value, name)]


def _pair(a, b) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``a`` and ``b`` as matching lists of arrays: the same number of tensors, the same shapes."""
    left, right = _leaves(a, "a"), _leaves(b, "b")
    if len(left) != len(right):
        raise ValueError(
            "Arguments `a` and `b` must hold the same number of tensors (one per variable). "
            f"Received: a with {len(left)}, b with {len(right)}"
        )
    for i, (u, v) in enumerate(zip(left, right)):
        if u.shape != v.shape:
            where = "" if len(left) == 1 else f"[{i}]"
            raise ValueError(
                "Arguments `a` and `b` must match tensor by tensor, with the same shapes. "
                f"Received: a{where} of shape {u.shape}, b{where} of shape {v.shape}"
            )
    return left, right


# ---------------------------------------------------------------- measurements
def flatten(values) -> np.ndarray:
    """All entries of a gradient (or of weights) as one float64 vector, tensor after tensor.

    Args:
      values: a tensor, array or list of numbers; a list of them (one per variable); or a
        Keras model or layer (its ``weights``, in their order).

    Returns:
      A 1-D float64 numpy array: each tensor flattened in row-major order, then concatenated.

    Example:

    >>> from gradlab.explore import flatten
    >>> flatten([tf.constant([[1.0, 2.0]]), tf.constant([3.0])]).tolist()
    [1.0, 2.0, 3.0]
    """
    return _joined(_leaves(values, "values"))


def _joined(leaves: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([leaf.ravel() for leaf in leaves])


def max_diff(a, b) -> float:
    """The largest absolute difference between two gradients, two sets of weights or two models.

    Equal entries differ by 0, infinite ones included; a NaN on either side gives NaN.

    Args:
      a, b: each a tensor, array or list of numbers, a list of them (one per variable), or a
        Keras model or layer (its ``weights``). Both must hold the same number of tensors,
        with the same shapes.

    Returns:
      ``max |a - b|`` over every entry, computed in float64, as a Python float.

    Example:

    >>> from gradlab.explore import max_diff
    >>> max_diff([tf.constant([1.0, 2.0]), tf.constant([3.0])], [[1.0, 2.5], [2.0]])
    1.0
    """
    left, right = _pair(a, b)
    worst = 0.0
    for u, v in zip(left, right):
        if u.size:
            with np.errstate(invalid="ignore"):  # inf - inf: equal entries, counted as 0 below
                gap = np.where(u == v, 0.0, np.abs(u - v))
            if np.isnan(gap).any():
                return math.nan
            worst = max(worst, float(np.max(gap)))
    return worst


def distance(a, b) -> float:
    """The L2 norm of ``a - b``: how far apart two gradients or two sets of weights are.

    For instance how far training moved a model: ``distance(model, initial_weights)``, with
    ``initial_weights = model.get_weights()`` taken before.

    Args:
      a, b: as for :func:`max_diff`: matching tensors, lists of them, or Keras models.

    Returns:
      ``sqrt(sum((a - b) ** 2))`` over every entry, in float64, as a Python float.

    Example:

    >>> from gradlab.explore import distance
    >>> distance([tf.constant([1.0, 2.0]), tf.constant([3.0])], [[1.0, 5.0], [7.0]])  # sqrt(9 + 16)
    5.0
    """
    left, right = _pair(a, b)
    return float(np.sqrt(sum(float(np.sum((u - v) ** 2)) for u, v in zip(left, right))))


def cosine(a, b) -> float:
    """The cosine similarity of two gradients, each flattened and concatenated into one vector.

    1.0 means the same direction (one gradient is a positive multiple of the other, as after
    global-norm clipping); below 1 the direction has turned (as after per-variable clipping or
    clipping by value); 0 means orthogonal.

    Args:
      a, b: each a tensor, array or list of numbers, or a list of them (one per variable), or
        a Keras model (its ``weights``). Both must hold the same number of tensors, with the
        same shapes, and neither may be all zeros.

    Returns:
      ``a . b / (|a| |b|)`` in float64, as a Python float in [-1, 1] (NaN if an entry is not finite).

    Example:

    >>> from gradlab.explore import cosine
    >>> cosine([tf.constant([3.0, 0.0]), tf.constant([4.0])], [[1.0, 0.0], [0.0]])  # 3 / 5
    0.6
    """
    u, v = (_joined(side) for side in _pair(a, b))
    for name, vector in (("a", u), ("b", v)):
        if np.all(vector == 0):
            raise ValueError(
                f"Argument `{name}` must have a non-zero norm (the cosine of a zero vector is undefined). "
                f"Received: {name} with all {vector.size} entries 0"
            )
    value = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
    return value if math.isnan(value) else min(1.0, max(-1.0, value))


def diff_text(difference, tolerance: float = 1e-6) -> str:
    """A difference in words: ``"below 1e-6"`` under ``tolerance``, else two significant digits.

    Float32 results of the same formula computed by other operations differ by round-off
    (around 1e-7 relative); their last digits also vary between CPUs. Printing "below 1e-6"
    instead keeps a notebook's output the same everywhere.

    Args:
      difference: a number, for instance from :func:`max_diff`.
      tolerance: a positive number; differences below it are shown as ``"below <tolerance>"``.

    Returns:
      A string.

    Example:

    >>> from gradlab.explore import diff_text
    >>> diff_text(3e-8), diff_text(0.03671)
    ('below 1e-06', '0.037')
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or not 0 < tolerance < math.inf:
        raise ValueError(f"Argument `tolerance` must be a number in (0, inf). Received: tolerance={tolerance!r}")
    if isinstance(difference, bool) or not isinstance(difference, numbers.Real):
        raise ValueError(
            f"Argument `difference` must be a number (for instance from gradlab.max_diff). "
            f"Received: difference={difference!r}"
        )
    d = float(difference)
    return f"below {tolerance:g}" if d < tolerance else f"{d:.2g}"


# ---------------------------------------------------------------- what an optimizer applies
def applied_gradient(grads, optimizer=None, **clipping):
    """What a Keras optimizer really applies for these gradients, read from the weights it moves.

    The optimizer updates weights that start at zero, once. For SGD (with or without momentum,
    first step) the weights move by ``-learning_rate * g``, where ``g`` is the gradient after
    the optimizer's own clipping: this function returns ``g = -(change) / learning_rate``.
    With no ``optimizer``, it uses ``keras.optimizers.SGD(1.0, **clipping)``: ask Keras what
    ``clipnorm=1.0`` does to a gradient with ``applied_gradient(grads, clipnorm=1.0)``.

    For other optimizers the result is the first update in units of the learning rate (for
    Adam about ``sign(g)``); weight decay and anything else that depends on the weights sees
    weights of zero.

    Args:
      grads: a gradient tensor (or array, or list of numbers), or a list of them, one per variable.
      optimizer: a fresh (never used) Keras optimizer, for instance a
        ``gradlab.ScaledOptimizer``; its learning rate must not be 0. ``None``: plain SGD at
        learning rate 1.0 with ``clipping``.
      **clipping: with no ``optimizer`` only: Keras' ``clipnorm``, ``clipvalue`` or
        ``global_clipnorm``, passed to SGD as they are (Keras itself treats 0 or a negative
        value as "no clipping").

    Returns:
      The applied gradient as float64 numpy arrays: a list, one per gradient, when ``grads``
      is a list of tensors, otherwise one array.

    Example:

    >>> from gradlab.explore import applied_gradient
    >>> g = [tf.constant([3.0, 4.0]), tf.constant([0.3, 0.4])]
    >>> [a.round(4).tolist() for a in applied_gradient(g, clipnorm=1.0)]  # per variable
    [[0.6, 0.8], [0.3, 0.4]]
    >>> [a.round(4).tolist() for a in applied_gradient(g, global_clipnorm=1.0)]  # all together
    [[0.597, 0.796], [0.0597, 0.0796]]
    """
    _checks.allowed_options(clipping, _CLIPPING, "gradlab.applied_gradient")
    if optimizer is None:
        optimizer = keras.optimizers.SGD(learning_rate=1.0, **clipping)
    else:
        if clipping:
            given = ", ".join(f"{k}={v!r}" for k, v in clipping.items())
            raise ValueError(
                "Arguments `optimizer` and the clipping options cannot both be given: set the clipping on "
                f"the optimizer, or leave `optimizer` out for SGD(1.0). Received: optimizer={optimizer!r}, {given}"
            )
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise ValueError(
                "Argument `optimizer` must be a Keras optimizer (keras.optimizers.SGD(1.0, clipnorm=1.0), "
                f"gradlab.ScaledOptimizer(...)) or None. Received: optimizer of type {type(optimizer).__name__}"
            )
        if getattr(optimizer, "built", False):
            raise ValueError(
                "Argument `optimizer` must be a fresh optimizer, never applied (it builds its state for "
                f"the weights it is first given). Received: optimizer={optimizer.name!r}, already built"
            )
    learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    if not learning_rate or not math.isfinite(learning_rate):
        raise ValueError(
            "Argument `optimizer` must have a finite, non-zero learning rate (the update is divided by it). "
            f"Received: optimizer with learning_rate={learning_rate!r}"
        )
    single = not (isinstance(grads, (list, tuple)) and not _numbers_only(grads))
    tensors = []
    for i, leaf in enumerate(_leaves(grads, "grads")):
        given = grads if single else grads[i]
        dtype = getattr(given, "dtype", None)
        dtype = tf.as_dtype(dtype) if dtype is not None else tf.float32
        tensors.append(tf.constant(leaf, dtype if dtype.is_floating else tf.float32))
    weights = [keras.Variable(tf.zeros_like(g), name=f"applied_{i}") for i, g in enumerate(tensors)]
    optimizer.apply(tensors, weights)
    # 0.0 - w, not -w: an entry that stayed 0 is 0.0, not -0.0.
    out = [(0.0 - keras.ops.convert_to_numpy(w).astype(np.float64)) / learning_rate for w in weights]
    return out[0] if single else out
