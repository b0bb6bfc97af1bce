"""The front door: build any gradient scaling from a mode name and a threshold.

:class:`Scaler` holds its mode and threshold in one ``tf.Variable`` and picks
the mode with ``tf.switch_case`` inside the graph, so a slider (or another
thread) can change either while a compiled training step runs, without a
retrace. The modes themselves are records in :mod:`gradlab.scaler.modes`; the
non-finite policy (``nonfinite=``) is :mod:`gradlab.scaler.nonfinite`, around
whichever transform runs; a custom ``transform=`` runs in place of the modes.
The rule that skips a step whose norm (or loss) spikes (``skip_spikes=``) is
:mod:`gradlab.scaler.spike`.

:class:`~gradlab.scaler.compose.Chain` composes transforms in order;
:class:`~gradlab.scaler.compose.Selective` applies different factors or
transforms to variables matched by name pattern. Any callable ``fn(grads)`` or
``fn(grads, variables)`` is a transform too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import keras
import tensorflow as tf

from gradlab import _checks, _internals
from gradlab._state import state_variable
from gradlab.scaler.modes import MODE_NAMES, MODES, STATEFUL, Decision, Measured, check_mode, check_threshold, skipped
from gradlab.scaler.nonfinite import NonFinite, measure
from gradlab.scaler.plan import Info, Plan
from gradlab.scaler.spike import check_skip_spikes
from gradlab.scaler.transform import Custom, check_transform, replace_values, spread, variable_name
from gradlab.scaling.adagc import AdaGC, check_adagc_options
from gradlab.scaling.autoclip import AutoClip, check_history_size
from gradlab.scaling.kernels import scale, values_of
from gradlab.scaling.zclip import ZClip, check_alpha, check_warmup

__all__ = ["Info", "Plan", "Scaler"]

_INF = float("inf")


@keras.saving.register_keras_serializable(package="gradlab")
class Scaler(tf.Module):
    """Scale gradients by a mode chosen by name; mode and threshold are live.

    A Scaler is a ``tf.Module``: ``tf.train.Checkpoint`` saves and restores its
    mode, threshold and adaptive state (AutoClip's history, ZClip's statistics,
    AdaGC's EMAs), on its own or inside a :class:`~gradlab.ScaledOptimizer`.

    Args:
      mode: one of ``gradlab.scaler.MODE_NAMES``: ``"none"``, ``"value"``, ``"norm"``,
        ``"global_norm"``, ``"normalize"``, ``"global_normalize"``, ``"agc"``,
        ``"autoclip"``, ``"zclip"``, ``"block_rms"``, ``"trust_ratio"``, ``"adagc"``.
      threshold: positive float; its meaning depends on the mode (``clipvalue``,
        ``clipnorm``, ``global_clipnorm``, target norm, AGC ``clipping``, AutoClip
        ``percentile`` in (0, 100], ZClip ``z_threshold``, Adafactor's RMS
        ``clip_threshold``, the trust ratio's ``trust_coefficient``, AdaGC's
        ``lambda_rel``). ``None`` takes the mode's default (1.0; 0.01 for agc,
        10 for autoclip, 2.5 for zclip, 1.05 for adagc).
      nonfinite: ``"skip"`` (default), ``"zero"`` or ``"raise"``; see
        :mod:`gradlab.scaler.nonfinite`.
      skip_spikes: skip the update of a step whose global norm (or loss) spikes
        above its recent values: ``None`` (default: never), ``True`` (OLMo-core's
        rule and defaults), a dict of :class:`~gradlab.scaler.SkipSpikes` arguments
        (``{"sigma": 4.0, "window": 32, "watch": "both"}``) or a ``SkipSpikes``;
        see :mod:`gradlab.scaler.spike`. With any mode or transform.
      transform: a custom transform ``fn(grads[, variables]) -> grads`` to run
        instead of a named mode (then leave ``mode`` and ``threshold`` unset).
      modes: the modes :meth:`set` may switch to: ``"all"``, or a list of names.
        By default, the starting mode and every mode without state. AutoClip,
        ZClip and AdaGC keep a state (a history of norms, running statistics, an
        EMA per tensor), created only for a Scaler that can use it.
      agc_eps: AGC's epsilon (1e-3).
      autoclip_history: AutoClip's number of remembered norms (10,000).
      zclip_alpha, zclip_warmup, zclip_eps: ZClip's EMA factor (0.97), warm-up
        steps (25) and epsilon (1e-6).
      zclip_max_grad_norm: ZClip's cap on every step's global norm, warm-up
        included, or None (default) for no cap. The reference implementation caps
        at 1.0; see :class:`gradlab.scaling.ZClip` for why gradlab does not by default and
        what that costs on a run that explodes during the warm-up. Its other
        options change live with ``scaler.zclip.set(...)``.
      adagc_lambda_abs, adagc_beta, adagc_warmup_steps: AdaGC's warm-up bound on the
        global norm (1.0), EMA factor (0.98) and warm-up steps (100), as
        pytorch_optimizer's defaults; they change live with ``scaler.adagc.set(...)``.
      normalize_eps: norms below this are treated as this (1e-12) by normalize.

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
        skip_spikes=None,
        transform: Callable | None = None,
        modes=None,
        agc_eps: float = 1e-3,
        autoclip_history: int = 10_000,
        zclip_alpha: float = 0.97,
        zclip_warmup: int = 25,
        zclip_eps: float = 1e-6,
        zclip_max_grad_norm: float | None = None,
        adagc_lambda_abs: float = 1.0,
        adagc_beta: float = 0.98,
        adagc_warmup_steps: int = 100,
        normalize_eps: float = 1e-12,
    ):
        super().__init__(name="scaler")
        if transform is not None:
            if mode is not None or threshold is not None or modes is not None:
                raise ValueError(
                    "Only one clipping option may be set: either `mode`/`threshold` "
                    f"or `transform`. Received: mode={mode!r}, threshold={threshold!r}, "
                    f"transform={transform!r}" + ("" if modes is None else f", modes={modes!r}")
                )
            self.transform = check_transform(transform)
            mode_name, threshold = "none", 1.0
        else:
            self.transform = None
            mode_name = check_mode("global_norm" if mode is None else mode)
            threshold = check_threshold(mode_name, threshold)
        self.policy = NonFinite(nonfinite)
        self.spikes = check_skip_spikes(skip_spikes)  # the spike rule, or None
        self.modes = _allowed_modes(modes, mode_name)
        self.agc_eps = _checks.number("agc_eps", agc_eps, python=True)
        self.normalize_eps = _checks.number("normalize_eps", normalize_eps, python=True)
        history = check_history_size(autoclip_history, "autoclip_history")
        alpha, warmup = check_alpha(zclip_alpha, "zclip_alpha"), check_warmup(zclip_warmup, "zclip_warmup")
        eps = _checks.number("zclip_eps", zclip_eps, python=True)
        cap = zclip_max_grad_norm
        if cap is not None:
            cap = _checks.number("zclip_max_grad_norm", cap, python=True)
        self._options = {
            "autoclip_history": history,
            "zclip_alpha": alpha,
            "zclip_warmup": warmup,
            "zclip_eps": eps,
            "zclip_max_grad_norm": cap,
        }
        adagc = check_adagc_options(adagc_lambda_abs, None, adagc_beta, adagc_warmup_steps, prefix="adagc_")
        self._options.update({f"adagc_{k}": v for k, v in adagc.items()})
        # The state of AutoClip, ZClip and AdaGC exists only where a run may use it.
        self.autoclip = AutoClip(MODES["autoclip"].default, history_size=history) if "autoclip" in self.modes else None
        self.zclip = ZClip(alpha=alpha, warmup=warmup, eps=eps, max_grad_norm=cap) if "zclip" in self.modes else None
        self.adagc = AdaGC(**adagc) if "adagc" in self.modes else None
        # Mode and threshold live in one variable, so that a step reads them in one read:
        # a change from another thread (set() writes both at once) never splits a step.
        self.controls = state_variable([float(MODE_NAMES.index(mode_name)), float(threshold)], "scaler_controls")
        self._set_lock = threading.Lock()
        self._track_state()

    def _track_state(self) -> None:
        """Name each adaptive state variable as an attribute, so that ``tf.train.Checkpoint`` saves it.

        The names (``zclip_count``, ``adagc_gamma``, ...) do not depend on name scopes; a
        variable created later (AdaGC's, in :meth:`build`) is tracked then, and a checkpoint
        read before it existed restores it on creation.
        """
        if not hasattr(self, "_checkpointed"):
            self._checkpointed = {}
        named = self._checkpointed  # added to, never replaced: a restore waiting for a new name finds it
        known = {id(v) for v in named.values()}
        for v in self.variables[1:]:
            if id(v) in known:
                continue
            key = v.name.split(":")[0].split("/")[-1]
            while key in named:
                key += "_"
            named[key] = v

    @property
    def nonfinite(self) -> str:
        """The non-finite policy: "skip", "zero" or "raise"."""
        return self.policy.policy

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
    def _states(self) -> list:
        return [s for s in (self.autoclip, self.zclip, self.adagc) if s is not None]

    def build(self, variables) -> None:
        """Create the state that depends on the gradients' structure (AdaGC's EMA per tensor).

        The Trainer and :class:`~gradlab.ScaledOptimizer` call it with the trainable
        variables before the step is traced; a Scaler called on its own builds it
        on its first call.
        """
        if self.adagc is not None:
            with tf.init_scope():
                self.adagc.build(len(list(variables)))
            self._track_state()

    @property
    def variables(self) -> list:
        """Every ``tf.Variable`` of this scaler: controls, then adaptive state."""
        spikes = [] if self.spikes is None else self.spikes.variables
        return [self.controls] + [v for s in self._states for v in s.variables] + spikes

    @property
    def state_variables(self) -> list:
        """The adaptive state (AutoClip history, ZClip statistics, the spike rule's windows), not mode or threshold."""
        spikes = [] if self.spikes is None else self.spikes.state_variables
        return [v for s in self._states for v in s.state_variables] + spikes

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
            if name not in self.modes:
                raise ValueError(
                    f"Argument `mode` must be one of the modes this Scaler was built for, {self.modes}: "
                    f"mode {name!r} keeps a state that is created with the Scaler. Build it with "
                    f"Scaler(..., modes='all') (or modes=[..., {name!r}]). Received: mode={name!r}"
                )
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

        On a step that is skipped (``info.finite`` False under ``"skip"``, or a
        spike under ``skip_spikes``) every scaled gradient is zero.
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

        out = tf.cond(plan.info.update, scaled, zeros)
        return replace_values(grads, idx, out), plan.info

    @tf.autograph.experimental.do_not_convert
    def plan(self, grads, variables=None, loss=None) -> Plan:
        """Measure ``grads`` and decide this step's scaling; see :class:`Plan`.

        The mode and threshold are read once. The norms are taken in one pass
        over the gradients; the mode's decision (its record's formula) is then
        made on one number per tensor (or per unit, for AGC). ``loss``, the
        step's loss where it is known, is for a spike rule that watches it. On a
        step the spike rule skips, the mode decides nothing (its state, such
        as ZClip's statistics, stays as it was), as on a non-finite step.
        """
        grads = _checks.grad_list(grads)
        if variables is not None:
            variables = _checks.variable_list(variables, grads)
        elif self.transform is None and MODES[self.mode_name].needs_variables:
            raise ValueError(
                f"Mode {self.mode_name!r} needs the variables: call scaler(grads, variables). Received: variables=None"
            )
        idx = [i for i, g in enumerate(grads) if g is not None]
        if self.adagc is not None and self.adagc.gamma is None:
            self.build(idx)
        mode, t = self.read_controls()
        if not idx:
            zero = tf.zeros([len(grads)])
            info = Info(tf.constant(0.0), zero, zero, tf.constant(True), tf.constant(_INF), mode, t, tf.constant(False))
            return Plan(info, lambda: list(grads))
        present = None if variables is None else [variables[i] for i in idx]
        names = [variable_name(variables[i]) if variables is not None else f"grads[{i}]" for i in idx]
        m = self.policy.guard(measure([values_of(grads[i]) for i in idx], present), names)
        if self.spikes is None:
            spike, go = tf.constant(False), m.finite
        else:
            spike = self.spikes.check(m.norm, loss, m.finite)
            go = tf.logical_and(m.finite, tf.logical_not(spike))
        if self.transform is not None:
            custom = Custom(self.transform, grads, idx, variables)
            values, after = self.policy.decide(m, custom.decide, custom.skipped, go)
            bound, apply_values = tf.constant(_INF), (lambda: values)
        else:
            absent = self.adagc is not None and self.adagc.num_tensors == len(grads) != len(idx)
            present = (idx, len(grads)) if absent else None
            d = self.policy.decide(m, lambda m: self._decide(m, mode, t, present), skipped, go)
            after, bound, apply_values = d.squared_after, d.bound, _applier(m, d, mode, t)
        info = Info(
            norm=m.norm,
            squared_norms=spread(m.squared, idx, len(grads)),
            squared_norms_after=spread(after, idx, len(grads)),
            finite=m.finite,
            bound=tf.cast(bound, tf.float32),
            mode=mode,
            threshold=t,
            spike=spike,
        )
        return Plan(info, lambda: replace_values(grads, idx, apply_values()))

    def _decide(self, m: Measured, mode, t, present=None) -> Decision:
        """The formula of the mode in force, picked in the graph (one branch per record).

        ``present``: ``(indices, count)`` of the gradients that are not None among all given,
        where that is fewer than AdaGC's state was built for (a variable that gets no gradient).
        """
        ctx = self if present is None else _WithAbsent(self, *present)

        def branch(record):
            if record.state is not None and getattr(self, record.state) is None:
                return lambda: MODES["none"].decide(m, t, ctx)  # set() refuses this mode: never taken
            return lambda: record.decide(m, t, ctx)

        return tf.switch_case(mode, [branch(MODES[name]) for name in MODE_NAMES])

    # ------------------------------------------------------------ config
    def get_config(self) -> dict:
        config = {"nonfinite": self.nonfinite, "agc_eps": self.agc_eps, "normalize_eps": self.normalize_eps}
        config.update(self._options)
        if self.spikes is not None:
            config["skip_spikes"] = self.spikes.get_config()
        if self.transform is not None:
            config["transform"] = keras.saving.serialize_keras_object(self.transform)
        else:
            config["mode"] = self.mode_name
            config["threshold"] = float(self.controls.numpy()[1])
            config["modes"] = list(self.modes)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "transform" in config:
            config["transform"] = keras.saving.deserialize_keras_object(config["transform"])
        return cls(**config)

    def __repr__(self):
        spikes = "" if self.spikes is None else f", skip_spikes={self.spikes!r}"
        if self.transform is not None:
            return f"Scaler(transform={self.transform!r}, nonfinite={self.nonfinite!r}{spikes})"
        return (
            f"Scaler(mode={self.mode_name!r}, threshold={float(self.controls.numpy()[1]):g}, "
            f"nonfinite={self.nonfinite!r}{spikes})"
        )


def _allowed_modes(modes, start: str) -> tuple:
    """The modes a Scaler may switch to (see its ``modes`` argument), in :data:`MODE_NAMES` order."""
    if modes is None:
        chosen = {name for name in MODE_NAMES if name not in STATEFUL} | {start}
    elif isinstance(modes, str) and modes == "all":
        chosen = set(MODE_NAMES)
    elif isinstance(modes, (list, tuple)) and modes and not isinstance(modes, str):
        chosen = {check_mode(name) for name in modes} | {start}
    else:
        raise _checks._fail("modes", f"'all' or a non-empty list of mode names from {MODE_NAMES}", modes)
    return tuple(name for name in MODE_NAMES if name in chosen)


# How each kind of decision becomes gradients (a record's ``applies``).
_KINDS = ("none", "scale", "clip", "units")
_KIND = [_KINDS.index(MODES[name].applies) for name in MODE_NAMES]
_CLIPS = [MODES[name].applies == "clip" for name in MODE_NAMES]


def _applier(m: Measured, d: Decision, mode, t):
    """A function that builds the scaled values of a decision (call it where they are used)."""
    values = m.values

    def apply():
        if _internals.in_xla_context():
            # One elementwise formula for every mode, which XLA fuses into the update:
            # clipping at +-inf and multiplying by 1 change no bits.
            c = tf.where(tf.gather(tf.constant(_CLIPS), mode), t, _INF)
            return [
                tf.clip_by_value(scale(v, f * u), -tf.cast(c, v.dtype), tf.cast(c, v.dtype))
                for v, f, u in zip(values, tf.unstack(d.factors), d.units)
            ]
        # Without XLA each pass over the gradients costs its own kernel: run only the
        # mode's own pass (none for "none").
        fs = tf.unstack(d.factors)
        return tf.switch_case(
            tf.gather(tf.constant(_KIND, tf.int32), mode),
            [
                lambda: list(values),
                lambda: [scale(v, f) for v, f in zip(values, fs)],
                lambda: [tf.clip_by_value(v, -tf.cast(t, v.dtype), tf.cast(t, v.dtype)) for v in values],
                lambda: [scale(v, u) for v, u in zip(values, d.units)],
            ],
        )

    return apply


class _WithAbsent:
    """The Scaler as a mode's formula sees it when some gradients are None: AdaGC, whose state holds
    one EMA per variable, gets the present tensors' squared norms at their places (the absent ones
    marked, their EMA kept), and hands back the present tensors' factors."""

    def __init__(self, scaler, idx, count):
        self._scaler, self._idx, self._count = scaler, list(idx), count
        self.adagc = self

    def __getattr__(self, name):
        return getattr(self._scaler, name)

    def update(self, squared, present=None, lambda_rel=None):
        full = spread(squared, self._idx, self._count)
        mask = tf.constant([i in set(self._idx) for i in range(self._count)])
        return tf.gather(self._scaler.adagc.update(full, mask, lambda_rel), self._idx)
