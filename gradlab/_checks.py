"""Argument checks shared by gradlab's public functions.

Every message follows the Keras form: the argument, what is allowed, what was
received. Nothing here imports the rest of gradlab.
"""

from __future__ import annotations

import math
import numbers

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
):
    """Check a Python number against an interval and return it as float or int.

    Tensors and variables pass through unchecked (their value is only known
    when the graph runs).
    """
    if is_symbolic(value):
        if not value.dtype.is_floating and not value.dtype.is_integer:
            raise _fail(name, "a real number", value)
        if value.shape.rank not in (None, 0):
            raise _fail(name, "a scalar", value)
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "an integer" if integer else "a number"
        raise _fail(name, kind, value)
    if integer and int(value) != value:
        raise _fail(name, "an integer", value)
    v = float(value)
    lo = "(" if low_open else "["
    hi = ")" if high_open or high is None else "]"
    interval = f"{lo}{'-inf' if low is None else _fmt(low)}, {'inf' if high is None else _fmt(high)}{hi}"
    if math.isnan(v) or math.isinf(v):
        raise _fail(name, f"a finite number in {interval}", value)
    if low is not None and (v < low or (low_open and v == low)):
        raise _fail(name, f"in {interval}", value)
    if high is not None and (v > high or (high_open and v == high)):
        raise _fail(name, f"in {interval}", value)
    return int(value) if integer else v


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


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
    return list(variables)
