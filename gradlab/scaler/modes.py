"""The scaling modes a :class:`~gradlab.Scaler` offers, by name, and their thresholds."""

from __future__ import annotations

from typing import NamedTuple

from gradlab import _checks

__all__ = ["MODES", "MODE_NAMES", "NONFINITE_POLICIES", "Mode", "check_mode", "check_threshold"]

NONFINITE_POLICIES = ("skip", "zero", "raise")


class Mode(NamedTuple):
    """A registered scaling mode: everything gradlab knows about it, in one place."""

    name: str
    threshold_name: str  # what the threshold means for this mode
    default: float
    low: float  # allowed threshold interval (low, high]
    high: float | None
    summary: str
    slider: tuple[float, float] = (-3.0, 3.0)  # the lab's threshold slider, log10 of its ends


MODES = {
    m.name: m
    for m in [
        Mode("none", "threshold (unused)", 1.0, 0.0, None, "gradients unchanged"),
        Mode("value", "clipvalue", 1.0, 0.0, None, "each entry clipped to [-t, t] (Keras clipvalue)"),
        Mode("norm", "clipnorm", 1.0, 0.0, None, "each tensor clipped to norm t on its own (Keras clipnorm)"),
        Mode(
            "global_norm",
            "global_clipnorm",
            1.0,
            0.0,
            None,
            "all tensors scaled together to global norm <= t (Keras global_clipnorm)",
        ),
        Mode("normalize", "norm", 1.0, 0.0, None, "each tensor scaled to norm t"),
        Mode("global_normalize", "norm", 1.0, 0.0, None, "all tensors scaled together to global norm t"),
        Mode(
            "agc", "clipping", 0.01, 0.0, None, "adaptive clipping unit by unit, relative to weight norms", (-3.0, 0.0)
        ),
        Mode(
            "autoclip",
            "percentile",
            10.0,
            0.0,
            100.0,
            "global norm clipped at the p-th percentile of past norms",
            (0.0, 2.0),
        ),
        Mode(
            "zclip", "z_threshold", 2.5, 0.0, None, "global norm clipped on z-score spikes against an EMA", (-0.5, 1.0)
        ),
    ]
}
MODE_NAMES = tuple(MODES)


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
