"""Composition: :class:`Chain` runs transforms in order; :class:`Selective` scales parts of a model by name."""

from __future__ import annotations

import numbers
import re

import keras

from gradlab import _checks
from gradlab.scaler.transform import call_transform, variable_name
from gradlab.scaler.transform import check_transform as _check_transform
from gradlab.scaling.kernels import scale, values_of, with_values

__all__ = ["Chain", "Selective"]


@keras.saving.register_keras_serializable(package="gradlab")
class Chain:
    """Apply transforms one after another.

    >>> chain = Chain(gradlab.Scaler("value", 2.0), gradlab.Scaler("global_norm", 1.0))
    >>> [g.numpy().round(4).tolist() for g in chain([tf.constant([3.0, 1.0])])]
    [[0.8944, 0.4472]]
    """

    def __init__(self, *transforms):
        if not transforms:
            raise ValueError("Chain needs at least one transform. Received: no transforms")
        self.transforms = [_check_transform(t, f"transforms[{i}]") for i, t in enumerate(transforms)]

    def __call__(self, grads, variables=None):
        grads = _checks.grad_list(grads)
        if variables is not None:
            variables = _checks.variable_list(variables, grads)
        for t in self.transforms:
            grads = call_transform(t, grads, variables)
        return grads

    def get_config(self):
        return {"transforms": [keras.saving.serialize_keras_object(t) for t in self.transforms]}

    @classmethod
    def from_config(cls, config):
        return cls(*[keras.saving.deserialize_keras_object(t) for t in config["transforms"]])

    def __repr__(self):
        return "Chain(" + ", ".join(repr(t) for t in self.transforms) + ")"


@keras.saving.register_keras_serializable(package="gradlab")
class Selective:
    """Scale gradients differently per part of the model, by variable name.

    The article's "selectively scaling gradients from different parts of the
    model". Each rule is ``(pattern, action)``: ``pattern`` a regular expression
    searched in the variable's path (``"dense_1/kernel"``); ``action`` either a
    float factor that multiplies those gradients, or a transform applied to
    that group of gradients together (so ``Scaler("global_norm", 1.0)`` clips
    the group's own global norm). The first matching rule wins; variables no rule
    matches get ``default`` (unchanged when ``None``).

    Args:
      rules: list of ``(pattern, action)`` pairs, or a dict.
      default: factor or transform for the unmatched variables, or None.

    >>> v = [tf.Variable([1.0], name="encoder_w"), tf.Variable([1.0], name="head_w")]
    >>> sel = Selective([("encoder", 0.1)])
    >>> [g.numpy().tolist() for g in sel([tf.constant([2.0]), tf.constant([2.0])], v)]
    [[0.20000000298023224], [2.0]]
    """

    def __init__(self, rules, default=None):
        if not isinstance(rules, (dict, list, tuple)):
            raise ValueError(
                "Argument `rules` must be a list of (pattern, action) pairs or a dict {pattern: action}. "
                f"Received: rules={rules!r}"
            )
        pairs = list(rules.items()) if isinstance(rules, dict) else list(rules)
        if not pairs:
            raise ValueError("Argument `rules` must hold at least one (pattern, action) pair. Received: rules=[]")
        self.rules = []
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"Argument `rules` must hold (pattern, action) pairs. Received: rules[{i}]={pair!r}")
            pattern, action = pair
            try:
                regex = re.compile(pattern)
            except (re.error, TypeError) as err:
                raise ValueError(
                    f"Argument `rules` must hold valid regular expressions. Received: rules[{i}] pattern={pattern!r} ({err})"
                ) from None
            self.rules.append((regex, _check_action(action, f"rules[{i}]")))
        self.default = None if default is None else _check_action(default, "default")

    def __call__(self, grads, variables=None):
        if variables is None:
            raise ValueError(
                "Selective scaling matches variables by name: call it with (grads, variables). Received: variables=None"
            )
        grads = _checks.grad_list(grads)
        variables = _checks.variable_list(variables, grads)
        names = [variable_name(v) for v in variables]
        groups: dict[int, list[int]] = {}
        for i, name in enumerate(names):
            k = next((k for k, (rx, _) in enumerate(self.rules) if rx.search(name)), -1)
            groups.setdefault(k, []).append(i)
        out = list(grads)
        for k, members in groups.items():
            action = self.default if k < 0 else self.rules[k][1]
            if action is None:
                continue
            sub = [grads[i] for i in members]
            if isinstance(action, float):
                new = [None if g is None else with_values(g, scale(values_of(g), action)) for g in sub]
            else:
                new = call_transform(action, sub, [variables[i] for i in members])
            for i, g in zip(members, new):
                out[i] = g
        return out

    def get_config(self):
        def ser(a):
            return a if a is None or isinstance(a, float) else keras.saving.serialize_keras_object(a)

        return {"rules": [[rx.pattern, ser(a)] for rx, a in self.rules], "default": ser(self.default)}

    @classmethod
    def from_config(cls, config):
        def de(a):
            return a if a is None or isinstance(a, (int, float)) else keras.saving.deserialize_keras_object(a)

        return cls([(p, de(a)) for p, a in config["rules"]], default=de(config["default"]))

    def __repr__(self):
        rules = ", ".join(f"({rx.pattern!r}, {a!r})" for rx, a in self.rules)
        return f"Selective([{rules}], default={self.default!r})"


def _check_action(action, name):
    if isinstance(action, bool):
        raise ValueError(f"Argument `{name}` must be a finite number or a transform. Received: {name}={action!r}")
    if isinstance(action, numbers.Real):  # Python and numpy numbers
        return float(_checks.number(name, action, low=0.0, low_open=False))
    return _check_transform(action, name)
