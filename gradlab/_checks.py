"""Argument checks shared by gradlab's public functions.

Every message follows the Keras form: the argument, what is allowed, what was
received. Nothing here imports the rest of gradlab.
"""

from __future__ import annotations

import inspect
import math
import numbers

import numpy as np
import tensorflow as tf


def _fail(name: str, allowed: str, value) -> ValueError:
    return ValueError(f"Argument `{name}` must be {allowed}. Received: {name}={value!r}")


def is_symbolic(value) -> bool:
    """True for tensors and variables, whose value is checked in the graph."""
    return isinstance(value, (tf.Tensor, tf.Variable)) or hasattr(value, "_value")


def number(
    name: str,
    value,
    *,
    low: float | None = 0.0,
    high: float | None = None,
    low_open: bool = True,
    high_open: bool = False,
    integer: bool = False,
    python: bool = False,
):
    """Check a number against an interval and return it as float or int.

    A tensor or variable is checked too, and returned as it is (so a variable
    stays live): where its value is known (eager execution) it is read and
    checked now; inside a graph the returned tensor carries an assertion that
    fails, naming the argument, when the graph runs with a value out of range.
    With ``python=True`` (implied by ``integer=True``: sizes, counts, seeds)
    only a Python number is allowed, since the value shapes what is built.
    """
    lo = "(" if low_open else "["
    hi = ")" if high_open or high is None else "]"
    interval = f"{lo}{'-inf' if low is None else _fmt(low)}, {'inf' if high is None else _fmt(high)}{hi}"
    kind = "an integer" if integer else "a number"
    if is_symbolic(value):
        if integer or python:
            shown = value
            if tf.executing_eagerly() and tf.TensorShape(value.shape).rank == 0:
                shown = value.numpy().item()
            what = "tf.Variable" if isinstance(value, tf.Variable) or hasattr(value, "_value") else "tf.Tensor"
            py = "int" if integer else "float"
            raise ValueError(
                f"Argument `{name}` must be {kind} in {interval} (a Python {py}, not a tensor). "
                f"Received: {name}={shown!r} (a {what})"
            )
        return _tensor(name, value, low, high, low_open, high_open, interval)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(name, kind, value)
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        raise _fail(name, f"{'an integer' if integer else 'a finite number'} in {interval}", value)
    if integer and int(value) != value:
        raise _fail(name, "an integer", value)
    if low is not None and (v < low or (low_open and v == low)):
        raise _fail(name, f"in {interval}", value)
    if high is not None and (v > high or (high_open and v == high)):
        raise _fail(name, f"in {interval}", value)
    return int(value) if integer else v


def _tensor(name, value, low, high, low_open, high_open, interval):
    """:func:`number` for a tensor or variable (see there)."""
    dtype = tf.as_dtype(value.dtype)
    if not dtype.is_floating and not dtype.is_integer:
        raise _fail(name, "a real number", value)
    if tf.TensorShape(value.shape).rank not in (None, 0):
        raise _fail(name, "a scalar", value)
    if tf.executing_eagerly():  # the value is known: check it as a number, keep the tensor
        try:
            number(name, value.numpy().item(), low=low, high=high, low_open=low_open, high_open=high_open)
        except ValueError as err:
            kind = "tf.Variable" if isinstance(value, tf.Variable) or hasattr(value, "_value") else "tf.Tensor"
            raise ValueError(f"{err} (a {kind})") from None
        return value
    v = tf.cast(value, tf.float32)
    ok = tf.math.is_finite(v)
    if low is not None:
        ok = tf.logical_and(ok, v > low if low_open else v >= low)
    if high is not None:
        ok = tf.logical_and(ok, v < high if high_open else v <= high)
    check = tf.debugging.Assert(ok, [f"Argument `{name}` must be a finite number in {interval}. Received: {name}=", v])
    with tf.control_dependencies([check]):
        return tf.identity(value)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def allowed_options(options: dict, allowed, where: str) -> None:
    """Check that every key of ``options`` is in ``allowed``; the error names ``where`` they were passed."""
    for key, value in options.items():
        if key not in allowed:
            listed = ", ".join(repr(a) for a in allowed)
            raise ValueError(
                f"Unknown option `{key}` for {where}. Expected one of: {listed}. Received: {key}={value!r}"
            )


def known_options(options: dict, target, where: str) -> None:
    """Check that every key of ``options`` is a keyword-only parameter of ``target`` (a class)."""
    allowed = [p.name for p in inspect.signature(target).parameters.values() if p.kind is p.KEYWORD_ONLY]
    allowed_options(options, allowed, f"{where} (its further options go to gradlab.{target.__name__})")


def boolean(name: str, value) -> bool:
    """Check that ``value`` is True or False (numpy bools too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(name, "True or False", value)
    return bool(value)


def choice(name: str, value, allowed, *, what: str | None = None) -> str:
    """Check that ``value`` is one of ``allowed``; ``what`` names it in prose ("nonfinite policy")."""
    if not isinstance(value, str) or value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"Unknown {what or name} {value!r}. Expected one of: {listed}. Received: {name}={value!r}")
    return value


def grad_list(grads, name: str = "grads") -> list:
    """Check a list of gradients: floating tensors, IndexedSlices or None."""
    if isinstance(grads, (tf.Tensor, tf.IndexedSlices)) or not isinstance(grads, (list, tuple)):
        raise ValueError(
            f"Argument `{name}` must be a list or tuple of gradient tensors "
            f"(None allowed). Received: {name} of type {type(grads).__name__}"
        )
    out = []
    for i, g in enumerate(grads):
        if g is None:
            out.append(None)
            continue
        if isinstance(g, (list, tuple)) and not all(isinstance(leaf, numbers.Number) for leaf in tf.nest.flatten(g)):
            raise ValueError(
                f"Argument `{name}` must be a flat list of gradients, one tensor (or None) per variable; "
                f"nested lists are not allowed. Received: {name}[{i}] of type {type(g).__name__} "
                f"holding {len(g)} items"
            )
        if not isinstance(g, tf.IndexedSlices):
            try:
                g = tf.convert_to_tensor(g)
            except (TypeError, ValueError) as err:
                dtype = getattr(g, "dtype", None)
                kind = type(g).__name__ + ("" if dtype is None else f" with dtype {dtype}")
                raise ValueError(
                    f"Argument `{name}` must hold tensors or None. Received: {name}[{i}] of type {kind}"
                ) from err
        if not g.dtype.is_floating:
            raise ValueError(
                f"Argument `{name}` must hold floating-point gradients "
                f"(float16, bfloat16, float32 or float64). Received: "
                f"{name}[{i}] with dtype {g.dtype.name}"
            )
        out.append(g)
    return out


def variable_list(variables, grads: list, name: str = "variables") -> list:
    if isinstance(variables, (tf.Tensor, tf.Variable)) or not isinstance(variables, (list, tuple)):
        raise ValueError(
            f"Argument `{name}` must be a list or tuple of variables, one per "
            f"gradient. Received: {name} of type {type(variables).__name__}"
        )
    if len(variables) != len(grads):
        raise ValueError(
            f"Arguments `grads` and `{name}` must have the same length. "
            f"Received: len(grads)={len(grads)}, len({name})={len(variables)}"
        )
    for i, (g, v) in enumerate(zip(grads, variables)):
        if g is None or v is None or getattr(v, "shape", None) is None:
            continue
        grad_shape = _dense_shape(g)
        var_shape = tf.TensorShape(v.shape)
        if grad_shape is not None and not grad_shape.is_compatible_with(var_shape):
            raise ValueError(
                f"Arguments `grads` and `{name}` must match one to one: each gradient has its variable's shape. "
                f"Received: grads[{i}] of shape {tuple(grad_shape.as_list())}, "
                f"{name}[{i}] of shape {tuple(var_shape.as_list())}"
            )
    return list(variables)


def _dense_shape(g):
    """The static shape of a gradient as a dense tensor (None where unknown)."""
    if isinstance(g, tf.IndexedSlices):
        known = tf.get_static_value(g.dense_shape) if g.dense_shape is not None else None
        return None if known is None else tf.TensorShape([int(d) for d in known])
    return g.shape


# Python values only: a size, a window, a flag or a name that is a tensor is a mistake, not a value for a graph.
def python_number(name: str, value, **kwargs):
    """:func:`number` for a Python (or numpy) number; tensors and variables are refused."""
    if is_symbolic(value):
        kind = "an integer" if kwargs.get("integer") else "a number"
        raise _fail(name, f"{kind} (a Python value, not a tensor)", value)
    return number(name, value, **kwargs)


def size(name: str, value, low: int = 1) -> int:
    """An integer >= ``low`` (a count, a size, a number of steps)."""
    return python_number(name, value, low=low, low_open=False, integer=True)


def text(name: str, value) -> str:
    if not isinstance(value, str):
        raise _fail(name, "a string", value)
    return value


def names(name: str, value) -> list:
    """A list or tuple of strings (not one string, which would be split into letters)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _fail(name, "a list or tuple of strings", value)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _fail(f"{name}[{i}]", "a string", item)
    return list(value)
