"""The front door: build any gradient scaling from a mode name and a threshold.

:class:`Scaler` holds its mode and threshold in ``tf.Variable``s and picks the
mode with ``tf.switch_case`` inside the graph, so a slider (or another thread)
can change either while a compiled training step runs, without a retrace.

It also owns the policy for non-finite gradients (``nonfinite=``):

* ``"skip"`` (default): report the step as not finite and return zeros; the
  optimizer wrapper and gradlab's train step then skip the update, leaving the
  weights and optimizer slots as they were, as Keras' ``LossScaleOptimizer``
  does. Training goes on; the skipped step is counted and recorded.
* ``"zero"``: replace non-finite entries by 0 and scale the rest.
* ``"raise"``: stop with an error naming the variables whose gradients are not
  finite.

"skip" is the default because it is the only policy that never harms the
weights and never throws away a long run: one bad batch costs one step. The
default of ``tf.clip_by_global_norm`` (every entry becomes NaN) is not offered.

:class:`Chain` composes transforms in order; :class:`Selective` applies
different factors or transforms to variables matched by name pattern. Any
callable ``fn(grads)`` or ``fn(grads, variables)`` is a transform too.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable
from typing import NamedTuple

import keras
import tensorflow as tf

from gradlab import _checks, _internals
from gradlab._state import state_variable
from gradlab.scaler.modes import MODE_NAMES, MODES, NONFINITE_POLICIES, check_mode, check_threshold
from gradlab.scaling.adaptive import AutoClip, ZClip, check_alpha, check_history_size, check_warmup
from gradlab.scaling.agc import agc_factors
from gradlab.scaling.clipping import (
    bound_factor,
    clip_factor,
    scale,
    squared_norm,
    values_of,
    with_values,
)

__all__ = ["Info", "Plan", "Scaler", "call_transform", "variable_name"]

_INF = float("inf")


class Info(NamedTuple):
    """What :meth:`Scaler.plan` measured on the way (float32 unless said).

    Attributes:
      norm: global norm of the incoming gradients.
      squared_norms: vector, squared norm of each incoming gradient (0 for None).
      squared_norms_after: vector, squared norm of each scaled gradient.
      finite: bool scalar, False when the step must be skipped.
      bound: the global-norm bound in force this step (the threshold for the
        fixed modes, the computed bound for AutoClip and ZClip; inf when none).
      mode: int32, the index in :data:`MODE_NAMES` of the mode in force (read
        once per step, so a change from another thread never splits a step).
      threshold: the threshold in force.
    """

    norm: tf.Tensor
    squared_norms: tf.Tensor
    squared_norms_after: tf.Tensor
    finite: tf.Tensor
    bound: tf.Tensor
    mode: tf.Tensor
    threshold: tf.Tensor


class Plan(NamedTuple):
    """One step's scaling, measured but not yet applied (:meth:`Scaler.plan`).

    ``info`` holds the norms and the decision; ``apply()`` builds the scaled
    gradients (a list like the input). A train step calls ``apply()`` inside
    the branch that updates the weights, so that under XLA the scaling fuses
    into the update, and on a skipped step nothing is computed.
    """

    info: Info
    apply: Callable[[], list]


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


def _check_transform(transform, name="transform"):
    if not callable(transform):
        raise ValueError(
            f"Argument `{name}` must be callable as fn(grads) or fn(grads, variables) "
            f"and return a list of gradients. Received: {name}={transform!r}"
        )
    return transform


@keras.saving.register_keras_serializable(package="gradlab")
class Scaler:
    """Scale gradients by a mode chosen by name; mode and threshold are live.

    Args:
      mode: one of ``gradlab.MODE_NAMES``: ``"none"``, ``"value"``, ``"norm"``,
        ``"global_norm"``, ``"normalize"``, ``"global_normalize"``, ``"agc"``,
        ``"autoclip"``, ``"zclip"``.
      threshold: positive float; its meaning depends on the mode (``clipvalue``,
        ``clipnorm``, ``global_clipnorm``, target norm, AGC ``clipping``, AutoClip
        ``percentile`` in (0, 100], ZClip ``z_threshold``). ``None`` takes the
        mode's default (1.0; 0.01 for agc, 10 for autoclip, 2.5 for zclip).
      nonfinite: ``"skip"`` (default), ``"zero"`` or ``"raise"``; see the module doc.
      transform: a custom transform ``fn(grads[, variables]) -> grads`` to run
        instead of a named mode (then leave ``mode`` and ``threshold`` unset).
      agc_eps: AGC's epsilon (1e-3).
      autoclip_history: AutoClip's number of remembered norms (10,000).
      zclip_alpha, zclip_warmup, zclip_eps: ZClip's EMA factor (0.97), warm-up
        steps (25) and epsilon (1e-6).
      normalize_eps: norms below this are treated as this (1e-12) by normalize.

    The state of AutoClip and ZClip is kept for every Scaler, so that the mode
    can be switched to them at any time.

    >>> s = Scaler("global_norm", 1.0)
    >>> [g.numpy().tolist() for g in s([tf.constant([3.0, 4.0])])]
    [[0.6000000238418579, 0.800000011920929]]
    >>> s.set(mode="value", threshold=2.0)
    >>> [g.numpy().tolist() for g in s([tf.constant([3.0, 4.0])])]
    [[2.0, 2.0]]
    """

    def __init__(
        self,
        mode: str | None = None,
        threshold: float | None = None,
        *,
        nonfinite: str = "skip",
        transform: Callable | None = None,
        agc_eps: float = 1e-3,
        autoclip_history: int = 10_000,
        zclip_alpha: float = 0.97,
        zclip_warmup: int = 25,
        zclip_eps: float = 1e-6,
        normalize_eps: float = 1e-12,
    ):
        if transform is not None:
            if mode is not None or threshold is not None:
                raise ValueError(
                    "Only one clipping option may be set: either `mode`/`threshold` "
                    f"or `transform`. Received: mode={mode!r}, threshold={threshold!r}, "
                    f"transform={transform!r}"
                )
            self.transform = _check_transform(transform)
            mode_name, threshold = "none", 1.0
        else:
            self.transform = None
            mode_name = check_mode("global_norm" if mode is None else mode)
            threshold = check_threshold(mode_name, threshold)
        self.nonfinite = _checks.choice("nonfinite", nonfinite, NONFINITE_POLICIES, what="nonfinite policy")
        self.agc_eps = _checks.number("agc_eps", agc_eps, python=True)
        self.normalize_eps = _checks.number("normalize_eps", normalize_eps, python=True)
        self.autoclip = AutoClip(
            MODES["autoclip"].default, history_size=check_history_size(autoclip_history, "autoclip_history")
        )
        self.zclip = ZClip(
            alpha=check_alpha(zclip_alpha, "zclip_alpha"),
            warmup=check_warmup(zclip_warmup, "zclip_warmup"),
            eps=_checks.number("zclip_eps", zclip_eps, python=True),
        )
        # Mode and threshold live in one variable, so that a step reads them in one read:
        # a change from another thread (set() writes both at once) never splits a step.
        self.controls = state_variable([float(MODE_NAMES.index(mode_name)), float(threshold)], "scaler_controls")
        self._set_lock = threading.Lock()

    # ------------------------------------------------------------ live controls
    @property
    def mode_name(self) -> str:
        """The current mode, read from its variable ("custom" with a transform)."""
        if self.transform is not None:
            return "custom"
        with tf.init_scope():  # also readable while a step is being traced
            return MODE_NAMES[int(self.controls.numpy()[0])]

    def read_controls(self) -> tuple[tf.Tensor, tf.Tensor]:
        """``(mode, threshold)`` in force, from one read of :attr:`controls` (int32, float32)."""
        both = self.controls.read_value()
        return tf.cast(both[0], tf.int32), tf.identity(both[1])

    @property
    def mode(self) -> tf.Tensor:
        """The mode's index in :data:`MODE_NAMES` (int32), read now; see :meth:`read_controls`."""
        return self.read_controls()[0]

    @property
    def threshold(self) -> tf.Tensor:
        """The threshold (float32), read now; see :meth:`read_controls`."""
        return self.read_controls()[1]

    @property
    def variables(self) -> list:
        """Every ``tf.Variable`` of this scaler: controls, then adaptive state."""
        return [self.controls] + self.autoclip.variables + self.zclip.variables

    @property
    def state_variables(self) -> list:
        """The adaptive state (AutoClip history, ZClip statistics), not mode or threshold."""
        return self.autoclip.variables[1:] + self.zclip.variables[1:]

    def set(self, mode: str | None = None, threshold: float | None = None) -> None:
        """Change mode and/or threshold; a running compiled step sees it next step.

        Changing only the mode keeps the threshold if it is allowed for the new
        mode and raises otherwise (a percentile of 50 is no clip value). Both are
        written in one assignment: a step, whatever thread runs it, sees either
        the old pair or the new one, never one of each.
        """
        if self.transform is not None:
            raise ValueError(
                "This Scaler runs a custom `transform`; it has no mode or threshold to set. "
                f"Received: mode={mode!r}, threshold={threshold!r}"
            )
        with self._set_lock:  # read-modify-write: two threads setting at once do not mix either
            name = self.mode_name if mode is None else check_mode(mode)
            value = float(self.controls.numpy()[1]) if threshold is None else threshold
            value = float(check_threshold(name, value))
            self.controls.assign([float(MODE_NAMES.index(name)), value])

    # ------------------------------------------------------------ scaling
    @tf.autograph.experimental.do_not_convert
    def __call__(self, grads, variables=None) -> list:
        return self.scale(grads, variables)[0]

    @tf.autograph.experimental.do_not_convert
    def scale(self, grads, variables=None) -> tuple[list, Info]:
        """Scale ``grads``; return ``(scaled, info)``.

        Args:
          grads: list of tensors, ``tf.IndexedSlices`` or ``None``.
          variables: the matching variables (required by ``"agc"``, used to name
            variables in errors and by custom transforms).

        On a step that is not finite (``info.finite`` False under ``"skip"``)
        every scaled gradient is zero.
        """
        plan = self.plan(grads, variables)
        grads = _checks.grad_list(grads)
        idx = [i for i, g in enumerate(grads) if g is not None]
        if not idx:
            return list(grads), plan.info

        def scaled():
            out = plan.apply()
            return [values_of(out[i]) for i in idx]

        def zeros():
            return [tf.zeros_like(values_of(grads[i])) for i in idx]

        out = tf.cond(plan.info.finite, scaled, zeros)
        return _replace_values(grads, idx, out), plan.info

    @tf.autograph.experimental.do_not_convert
    def plan(self, grads, variables=None) -> Plan:
        """Measure ``grads`` and decide this step's scaling; see :class:`Plan`.

        The mode and threshold are read once. The norms are taken in one pass
        over the gradients; every mode's decision is then made on vectors of
        one number per tensor (or per unit, for AGC), so that switching between
        modes costs a few small ops, not a pass over the gradients per mode.
        """
        grads = _checks.grad_list(grads)
        if variables is not None:
            variables = _checks.variable_list(variables, grads)
        elif self.transform is None and self.mode_name == "agc":
            raise ValueError("Mode 'agc' needs the variables: call scaler(grads, variables). Received: variables=None")
        idx = [i for i, g in enumerate(grads) if g is not None]
        values = [values_of(grads[i]) for i in idx]
        mode, t = self.read_controls()
        if not values:
            zero = tf.zeros([len(grads)])
            info = Info(tf.constant(0.0), zero, zero, tf.constant(True), tf.constant(_INF), mode, t)
            return Plan(info, lambda: list(grads))
        sq = tf.stack([squared_norm(v) for v in values])
        norm = tf.sqrt(tf.reduce_sum(sq))
        finite = tf.math.is_finite(norm)
        if self.nonfinite == "raise":
            checked = self._raise_if_nonfinite(finite, sq, idx, variables)
            if checked is not None:  # in a graph: nothing of this step may run before the check
                with tf.control_dependencies([checked]):
                    sq, norm, finite = tf.identity(sq), tf.identity(norm), tf.identity(finite)
                    values = [tf.identity(v) for v in values]
        elif self.nonfinite == "zero":
            values, sq, norm, finite = self._zero_nonfinite(finite, values, sq, norm)
        present_vars = None if variables is None else [variables[i] for i in idx]
        if self.transform is not None:
            values, sq_after = self._custom(grads, idx, values, variables, finite)
            bound, apply_values = tf.constant(_INF), (lambda: values)
        else:
            factors, units, bound, sq_after = self._decide(values, sq, norm, finite, mode, t, present_vars)
            apply_values = _applier(values, factors, units, mode, t)
        info = Info(
            norm=norm,
            squared_norms=_spread(sq, idx, len(grads)),
            squared_norms_after=_spread(sq_after, idx, len(grads)),
            finite=finite,
            bound=tf.cast(bound, tf.float32),
            mode=mode,
            threshold=t,
        )
        return Plan(info, lambda: _replace_values(grads, idx, apply_values()))

    def _raise_if_nonfinite(self, finite, sq, idx, variables):
        names = [variable_name(variables[i]) if variables is not None else f"grads[{i}]" for i in idx]
        if tf.executing_eagerly():
            if not bool(finite):
                bad = [n for n, s in zip(names, sq.numpy()) if not math.isfinite(float(s))] or names
                raise FloatingPointError(
                    "Non-finite gradients (nonfinite='raise') for: " + ", ".join(bad) + ". "
                    "Use nonfinite='skip' to skip such steps or 'zero' to zero the bad entries."
                )
            return None
        bad = tf.boolean_mask(tf.constant(names), tf.logical_not(tf.math.is_finite(sq)))
        return tf.debugging.Assert(finite, ["Non-finite gradients (nonfinite='raise') for:", bad], summarize=50)

    def _zero_nonfinite(self, finite, values, sq, norm):
        def keep():
            return list(values), sq, norm

        def clean():
            new = [tf.where(tf.math.is_finite(v), v, tf.zeros_like(v)) for v in values]
            new_sq = tf.stack([squared_norm(v) for v in new])
            return new, new_sq, tf.sqrt(tf.reduce_sum(new_sq))

        values, sq, norm = tf.cond(finite, keep, clean)
        return values, sq, norm, tf.math.is_finite(norm)  # False only if squares overflow

    def _custom(self, grads, idx, values, variables, finite):
        """A custom transform's output values and their measured squared norms (zeros when skipped)."""

        def run():
            out = call_transform(self.transform, _replace_values(grads, idx, values), variables)
            out = [values_of(out[i]) for i in idx]
            return out, tf.stack([squared_norm(v) for v in out])

        def skip():
            return [tf.zeros_like(v) for v in values], tf.zeros([len(values)])

        return tf.cond(finite, run, skip)

    def _decide(self, values, sq, norm, finite, mode, t, present_vars):
        """This step's ``(factors, units, bound, squared norms after)``.

        ``factors`` has one number per tensor; ``units`` one factor per unit
        for AGC (ones otherwise). A skipped step takes the extra last branch, so
        AutoClip and ZClip never see a non-finite norm.
        """
        n = len(values)
        ones, inf = tf.ones([n]), tf.constant(_INF)
        no_units = [tf.ones(_unit_shape(v)) for v in values]
        each = tf.sqrt(sq)

        def by(factors, bound):
            return factors, no_units, bound, sq * factors * factors

        def none():
            return ones, no_units, inf, sq

        def value():  # ||clip(v, -t, t)||**2 = sum(min(v**2, t**2)), without building the clipped tensor
            t2 = tf.square(t)
            after = [tf.reduce_sum(tf.minimum(tf.square(tf.cast(v, tf.float32)), t2)) for v in values]
            return ones, no_units, t, tf.stack(after)

        def norm_each():
            return by(clip_factor(each, t), t)

        def global_norm():
            return by(tf.fill([n], clip_factor(norm, t)), t)

        def normalize():
            return by(t / tf.maximum(each, self.normalize_eps), t)

        def global_normalize():
            return by(tf.fill([n], t / tf.maximum(norm, self.normalize_eps)), t)

        def agc():
            if present_vars is None:  # only reachable if the mode changed inside a graph
                tf.debugging.Assert(False, ["Mode 'agc' needs the variables: call scaler(grads, variables)."])
                return none()
            pairs = [agc_factors(v, w, t, self.agc_eps) for v, w in zip(values, present_vars)]
            return ones, [u for u, _ in pairs], inf, tf.stack([s for _, s in pairs])

        def autoclip():
            bound = self.autoclip._update(norm, t)  # t was checked when set
            return by(tf.fill([n], bound_factor(norm, bound)), bound)

        def zclip():
            bound = self.zclip.update(norm, t)
            return by(tf.fill([n], bound_factor(norm, bound)), bound)

        def skipped():
            return tf.zeros([n]), no_units, tf.constant(float("nan")), tf.zeros([n])

        branches = [none, value, norm_each, global_norm, normalize, global_normalize, agc, autoclip, zclip]
        assert [b.__name__ for b in branches] == [m if m != "norm" else "norm_each" for m in MODE_NAMES]
        return tf.switch_case(tf.where(finite, mode, len(branches)), branches + [skipped])

    # ------------------------------------------------------------ config
    def get_config(self) -> dict:
        config = {
            "nonfinite": self.nonfinite,
            "agc_eps": self.agc_eps,
            "autoclip_history": self.autoclip.history_size,
            "zclip_alpha": self.zclip.alpha,
            "zclip_warmup": self.zclip.warmup,
            "zclip_eps": self.zclip.eps,
            "normalize_eps": self.normalize_eps,
        }
        if self.transform is not None:
            config["transform"] = keras.saving.serialize_keras_object(self.transform)
        else:
            config["mode"] = self.mode_name
            config["threshold"] = float(self.controls.numpy()[1])
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "transform" in config:
            config["transform"] = keras.saving.deserialize_keras_object(config["transform"])
        return cls(**config)

    def __repr__(self):
        if self.transform is not None:
            return f"Scaler(transform={self.transform!r}, nonfinite={self.nonfinite!r})"
        return f"Scaler(mode={self.mode_name!r}, threshold={float(self.controls.numpy()[1]):g}, nonfinite={self.nonfinite!r})"


# How each mode's plan is applied: 0 leave as is, 1 multiply each tensor by its factor,
# 2 clip entries (value), 3 multiply by unit-wise factors (agc).
_KIND = [{"none": 0, "value": 2, "agc": 3}.get(m, 1) for m in MODE_NAMES]
_VALUE = MODE_NAMES.index("value")


def _applier(values, factors, units, mode, t):
    """A function that builds the scaled values of a plan (call it where they are used)."""

    def apply():
        if _internals.in_xla_context():
            # One elementwise formula for every mode, which XLA fuses into the update:
            # clipping at +-inf and multiplying by 1 change no bits.
            c = tf.where(tf.equal(mode, _VALUE), t, _INF)
            return [
                tf.clip_by_value(scale(v, f * u), -tf.cast(c, v.dtype), tf.cast(c, v.dtype))
                for v, f, u in zip(values, tf.unstack(factors), units)
            ]
        # Without XLA each pass over the gradients costs its own kernel: run only the
        # mode's own pass (none for "none").
        fs = tf.unstack(factors)
        return tf.switch_case(
            tf.gather(tf.constant(_KIND, tf.int32), mode),
            [
                lambda: list(values),
                lambda: [scale(v, f) for v, f in zip(values, fs)],
                lambda: [tf.clip_by_value(v, -tf.cast(t, v.dtype), tf.cast(t, v.dtype)) for v in values],
                lambda: [scale(v, u) for v, u in zip(values, units)],
            ],
        )

    return apply


def _unit_shape(v):
    """The shape of AGC's unit-wise factors for ``v``: ``(1, ..., 1, units)``, or a scalar."""
    rank = v.shape.rank
    if rank is None or rank <= 1:
        return []
    if v.shape[-1] is None:
        return tf.concat([tf.ones([rank - 1], tf.int32), tf.shape(v)[-1:]], 0)
    return [1] * (rank - 1) + [v.shape[-1]]


def _spread(vector, idx, n):
    """A length-``n`` vector with ``vector[k]`` at ``idx[k]`` and 0 elsewhere."""
    if len(idx) == n:
        return vector
    return tf.scatter_nd([[i] for i in idx], vector, [n])


def _replace_values(grads, idx, values):
    """``grads`` with entry ``idx[k]`` replaced by ``values[k]`` (IndexedSlices kept)."""
    out = list(grads)
    for i, v in zip(idx, values):
        out[i] = v if grads[i] is None else with_values(grads[i], v)
    return out
