"""Every scaling mode a :class:`~gradlab.Scaler` offers: one record each.

A :class:`Mode` holds all gradlab knows about a mode: its name, what its
threshold means, the threshold's default and allowed interval, the lab slider's
range, whether it needs the variables or a state, and its formula. The formula
(``decide``) is written once, with the functions of :mod:`gradlab.scaling` that
the pure functions use too (``clip_by_norm`` and mode ``"norm"`` both call
:func:`~gradlab.scaling.clipping.clip_factor`). Adding a mode is adding one
record here (and its tests); the Scaler, the recorder, the lab and the report
read everything from the records.

Each formula's docstring names the pure function of :mod:`gradlab.scaling` that does
the same outside a compiled step (``"global_norm"``: :func:`~gradlab.scaling.clipping.clip_by_global_norm`);
:meth:`Scaler.plan <gradlab.scaler.scaler.Scaler.plan>` picks the record in force and applies its decision.

``decide(m, t, ctx)`` works on :class:`Measured` (one squared norm per tensor,
taken in one pass over the gradients) and returns a :class:`Decision`: one
factor per tensor, or one per unit for AGC, so that switching modes costs a few
small ops, not a pass over the gradients per mode. ``ctx`` is the Scaler (for
its epsilons and the state of AutoClip and ZClip). ``applies`` says how the
decision becomes gradients: ``"none"`` (unchanged), ``"scale"`` (times the
tensor's factor), ``"clip"`` (entries clipped to ``[-t, t]``) or ``"units"``
(times AGC's unit-wise factors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from gradlab import _checks
from gradlab.scaling.agc import agc_factors
from gradlab.scaling.clipping import bound_factor, clip_factor, normalize_factor, value_squares_after
from gradlab.scaling.rms import block_rms_factor
from gradlab.scaling.trust_ratio import trust_factor, weight_norm

__all__ = [
    "MODES",
    "MODE_NAMES",
    "NONFINITE_POLICIES",
    "Decision",
    "Measured",
    "Mode",
    "STATEFUL",
    "check_mode",
    "check_threshold",
]

NONFINITE_POLICIES = ("skip", "zero", "raise")
_INF = float("inf")


class Measured(NamedTuple):
    """One step's gradients, measured once (the gradients that are not None).

    Attributes:
      values: their dense values (``IndexedSlices`` values for sparse ones).
      squared: float32 vector, the squared norm of each.
      norm: float32 scalar, the global norm.
      finite: bool scalar, whether the global norm is finite.
      variables: the matching variables, or None when none were given.
    """

    values: list
    squared: tf.Tensor
    norm: tf.Tensor
    finite: tf.Tensor
    variables: list | None

    @property
    def each(self) -> tf.Tensor:
        return tf.sqrt(self.squared)


class Decision(NamedTuple):
    """What a mode decided for one step (see the module doc).

    Attributes:
      factors: float32 vector, one factor per tensor (ones for "clip" and "units").
      units: per tensor, AGC's unit-wise factors (ones of the unit shape otherwise).
      bound: the global-norm bound in force (inf when the mode has none).
      squared_after: float32 vector, each tensor's squared norm after scaling.
    """

    factors: tf.Tensor
    units: list
    bound: tf.Tensor
    squared_after: tf.Tensor


class Mode(NamedTuple):
    """A registered scaling mode: everything gradlab knows about it, in one place."""

    name: str
    threshold_name: str  # what the threshold means for this mode
    default: float
    low: float  # allowed threshold interval (low, high]
    high: float | None
    summary: str
    decide: Callable[[Measured, tf.Tensor, object], Decision]
    applies: str = "scale"  # "none" | "scale" | "clip" | "units"
    slider: tuple[float, float] = (-3.0, 3.0)  # the lab's threshold slider, log10 of its ends
    state: str | None = None  # the Scaler attribute holding the state it needs ("autoclip", "zclip")
    needs_variables: bool = False


# ---------------------------------------------------------------- formulas
def unit_shape(v):
    """The shape of AGC's unit-wise factors for ``v``: ``(1, ..., 1, units)``, or a scalar."""
    rank = v.shape.rank
    if rank is None or rank <= 1:
        return []
    if v.shape[-1] is None:
        return tf.concat([tf.ones([rank - 1], tf.int32), tf.shape(v)[-1:]], 0)
    return [1] * (rank - 1) + [v.shape[-1]]


def _no_units(m: Measured) -> list:
    return [tf.ones(unit_shape(v)) for v in m.values]


def _by(m: Measured, factors, bound) -> Decision:
    return Decision(factors, _no_units(m), tf.cast(bound, tf.float32), m.squared * factors * factors)


def _everywhere(m: Measured, factor) -> tf.Tensor:
    return tf.fill([len(m.values)], factor)


def _none(m, t, ctx):
    """Mode ``"none"``: the gradients as they are."""
    return Decision(tf.ones([len(m.values)]), _no_units(m), tf.constant(_INF), m.squared)


def _value(m, t, ctx):
    """Mode ``"value"``; the pure function: :func:`gradlab.scaling.clipping.clip_by_value`."""
    # ||clip(v, -t, t)||**2 without building the clipped tensor
    after = tf.stack([value_squares_after(v, t) for v in m.values])
    return Decision(tf.ones([len(m.values)]), _no_units(m), tf.cast(t, tf.float32), after)


def _norm(m, t, ctx):
    """Mode ``"norm"``; the pure function: :func:`gradlab.scaling.clipping.clip_by_norm`."""
    return _by(m, clip_factor(m.each, t), t)


def _global_norm(m, t, ctx):
    """Mode ``"global_norm"``; the pure function: :func:`gradlab.scaling.clipping.clip_by_global_norm`."""
    return _by(m, _everywhere(m, clip_factor(m.norm, t)), t)


def _normalize(m, t, ctx):
    """Mode ``"normalize"``; the pure function: :func:`gradlab.scaling.clipping.normalize`."""
    return _by(m, normalize_factor(m.each, t, ctx.normalize_eps), t)


def _global_normalize(m, t, ctx):
    """Mode ``"global_normalize"``; the pure function: :func:`gradlab.scaling.clipping.normalize_global`."""
    return _by(m, _everywhere(m, normalize_factor(m.norm, t, ctx.normalize_eps)), t)


def _agc(m, t, ctx):
    """Mode ``"agc"``; the pure function: :func:`gradlab.scaling.agc.adaptive_clip`."""
    if m.variables is None:
        _needs_variables(m, "agc")
        return _none(m, t, ctx)
    pairs = [agc_factors(v, w, t, ctx.agc_eps) for v, w in zip(m.values, m.variables)]
    return Decision(tf.ones([len(m.values)]), [u for u, _ in pairs], tf.constant(_INF), tf.stack([s for _, s in pairs]))


def _sizes(m: Measured) -> tf.Tensor:
    """float32 vector: the number of entries of each tensor (of its variable, for a sparse gradient)."""
    shapes = m.variables if m.variables is not None else m.values
    return tf.stack([tf.cast(tf.size(s) if isinstance(s, tf.Tensor) else _count(s), tf.float32) for s in shapes])


def _count(v):
    n = 1
    for d in v.shape:
        n *= d
    return n


def _block_rms(m, t, ctx):
    """Mode ``"block_rms"``; the pure function: :func:`gradlab.scaling.rms.clip_by_block_rms`."""
    sizes = _sizes(m)
    factors = block_rms_factor(m.each / tf.sqrt(sizes), t)
    return _by(m, factors, t * tf.sqrt(tf.reduce_sum(sizes)))  # each RMS <= t: global norm <= t * sqrt(N)


def _needs_variables(m, name):
    # only reachable if the mode changed inside a graph
    tf.debugging.Assert(False, [f"Mode {name!r} needs the variables: call scaler(grads, variables)."])


def _trust_ratio(m, t, ctx):
    """Mode ``"trust_ratio"``; the pure function: :func:`gradlab.scaling.trust_ratio.scale_by_trust_ratio`."""
    if m.variables is None:
        _needs_variables(m, "trust_ratio")
        return _none(m, t, ctx)
    w_norms = tf.stack([weight_norm(w) for w in m.variables])
    return _by(m, trust_factor(m.each, w_norms, t), tf.constant(_INF))


def _adagc(m, t, ctx):
    """Mode ``"adagc"``; the transform on its own: :class:`gradlab.scaling.adagc.AdaGC`."""
    return _by(m, ctx.adagc.update(m.squared, lambda_rel=t), tf.constant(_INF))


def _autoclip(m, t, ctx):
    """Mode ``"autoclip"``; the transform on its own: :class:`gradlab.scaling.autoclip.AutoClip`."""
    bound = ctx.autoclip.update(m.norm, t, check=False)  # t was checked when it was set
    return _by(m, _everywhere(m, bound_factor(m.norm, bound)), bound)


def _zclip(m, t, ctx):
    """Mode ``"zclip"``; the transform on its own: :class:`gradlab.scaling.zclip.ZClip`."""
    bound = ctx.zclip.update(m.norm, t)
    return _by(m, _everywhere(m, bound_factor(m.norm, bound)), bound)


def skipped(m: Measured) -> Decision:
    """The decision of a step that is skipped: nothing scaled, nothing measured after."""
    n = len(m.values)
    return Decision(tf.zeros([n]), _no_units(m), tf.constant(float("nan")), tf.zeros([n]))


MODES = {
    m.name: m
    for m in [
        Mode("none", "threshold (unused)", 1.0, 0.0, None, "gradients unchanged", _none, "none"),
        Mode("value", "clipvalue", 1.0, 0.0, None, "each entry clipped to [-t, t] (Keras clipvalue)", _value, "clip"),
        Mode("norm", "clipnorm", 1.0, 0.0, None, "each tensor clipped to norm t on its own (Keras clipnorm)", _norm),
        Mode(
            "global_norm",
            "global_clipnorm",
            1.0,
            0.0,
            None,
            "all tensors scaled together to global norm <= t (Keras global_clipnorm)",
            _global_norm,
        ),
        Mode("normalize", "norm", 1.0, 0.0, None, "each tensor scaled to norm t", _normalize),
        Mode(
            "global_normalize",
            "norm",
            1.0,
            0.0,
            None,
            "all tensors scaled together to global norm t",
            _global_normalize,
        ),
        Mode(
            "agc",
            "clipping",
            0.01,
            0.0,
            None,
            "adaptive clipping unit by unit, relative to weight norms",
            _agc,
            "units",
            slider=(-3.0, 0.0),
            needs_variables=True,
        ),
        Mode(
            "autoclip",
            "percentile",
            10.0,
            0.0,
            100.0,
            "global norm clipped at the p-th percentile of past norms",
            _autoclip,
            slider=(0.0, 2.0),
            state="autoclip",
        ),
        Mode(
            "zclip",
            "z_threshold",
            2.5,
            0.0,
            None,
            "global norm clipped on z-score spikes against an EMA",
            _zclip,
            slider=(-0.5, 1.0),
            state="zclip",
        ),
        Mode(
            "block_rms",
            "clip_threshold",
            1.0,
            0.0,
            None,
            "each tensor clipped to root-mean-square t (Adafactor's update clipping)",
            _block_rms,
            slider=(-3.0, 1.0),
        ),
        Mode(
            "trust_ratio",
            "trust_coefficient",
            1.0,
            0.0,
            None,
            "each tensor scaled to t times its weight's norm (the LARS/LAMB trust ratio)",
            _trust_ratio,
            slider=(-3.0, 0.0),
            needs_variables=True,
        ),
        Mode(
            "adagc",
            "lambda_rel",
            1.05,
            0.0,
            None,
            "each tensor clipped at t times an EMA of its own clipped norms (AdaGC)",
            _adagc,
            slider=(-0.5, 1.0),
            state="adagc",
        ),
    ]
}
MODE_NAMES = tuple(MODES)
STATEFUL = tuple(name for name, m in MODES.items() if m.state is not None)


def check_mode(mode):
    return _checks.choice("mode", mode, MODE_NAMES)


def check_threshold(mode: str, threshold):
    m = MODES[mode]
    if threshold is None:
        return m.default
    try:
        return _checks.number("threshold", threshold, low=m.low, high=m.high)
    except ValueError as err:
        raise ValueError(f"{err} (for mode {mode!r} the threshold is its {m.threshold_name})") from None
