"""What a transform is: any callable ``fn(grads)`` or ``fn(grads, variables)`` returning gradients.

:func:`call_transform` calls one the right way; :class:`Custom` makes one a
scaler's transform like a mode (measured before and after, under the scaler's
non-finite policy).
"""

from __future__ import annotations

import inspect

import tensorflow as tf

from gradlab.scaler.modes import Measured
from gradlab.scaling.kernels import squared_norm, values_of, with_values

__all__ = ["Custom", "call_transform", "check_transform", "replace_values", "spread", "variable_name"]


def variable_name(v) -> str:
    """A variable's path (Keras 3) or name."""
    return getattr(v, "path", None) or getattr(v, "name", None) or repr(v)


def call_transform(fn, grads, variables):
    """Call ``fn(grads, variables=variables)`` if it takes variables, else ``fn(grads)``.

    Only a parameter named ``variables`` (or ``**kwargs``) receives them, so a
    function like the article's ``scale_gradients(gradients, clip_value=1.0)``
    is never handed variables as its threshold.
    """
    out = fn(grads, variables=variables) if _takes_variables(fn) else fn(grads)
    if not isinstance(out, (list, tuple)) or len(out) != len(grads):
        got = f"a list of length {len(out)}" if isinstance(out, (list, tuple)) else type(out).__name__
        raise ValueError(
            f"A transform must return a list of gradients as long as its input ({len(grads)}). "
            f"Received from {fn!r}: {got}"
        )
    return list(out)


def _takes_variables(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "variables" or p.kind is p.VAR_KEYWORD for p in params)


def check_transform(transform, name="transform"):
    if not callable(transform):
        raise ValueError(
            f"Argument `{name}` must be callable as fn(grads) or fn(grads, variables) "
            f"and return a list of gradients. Received: {name}={transform!r}"
        )
    return transform


def spread(vector, idx, n):
    """A length-``n`` vector with ``vector[k]`` at ``idx[k]`` and 0 elsewhere."""
    if len(idx) == n:
        return vector
    return tf.scatter_nd([[i] for i in idx], vector, [n])


def replace_values(grads, idx, values):
    """``grads`` with entry ``idx[k]`` replaced by ``values[k]`` (IndexedSlices kept)."""
    out = list(grads)
    for i, v in zip(idx, values):
        out[i] = v if grads[i] is None else with_values(grads[i], v)
    return out


class Custom:
    """A user's transform run by a :class:`~gradlab.Scaler`: its output is measured like a mode's.

    ``decide`` runs the function and returns ``(values, squared norms after)``;
    ``apply`` hands those values on. It has no threshold and no bound (inf).
    """

    def __init__(self, fn, grads, idx, variables):
        self.fn, self.grads, self.idx, self.variables = fn, grads, idx, variables

    def decide(self, m: Measured):
        out = call_transform(self.fn, replace_values(self.grads, self.idx, m.values), self.variables)
        out = [values_of(out[i]) for i in self.idx]
        return out, tf.stack([squared_norm(v) for v in out])

    def skipped(self, m: Measured):
        return [tf.zeros_like(v) for v in m.values], tf.zeros([len(m.values)])
