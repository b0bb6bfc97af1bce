"""One look for every gradlab figure: colours, log axes, y ranges that ignore diverged runs.

- Colours: the quantities of one run (loss, norms, threshold, clip rate, validation
  loss) have fixed colours; runs side by side take :data:`RUNS` in order (compared
  modes in the lab take :data:`COMPARED`, which shares no colour with the live run);
  :data:`SKIP` (red) is reserved for skipped steps and appears nowhere else.
- Log axes: powers of ten, decades only, never SI suffixes ("100M", "1B").
- Diverged runs: a run whose loss leaves all bounds (see :func:`diverged_at`) is left
  out of the y range from that step on, so the runs that stay finite fill the panel;
  it is marked at the top edge instead.

This module reads numbers only; it builds no figure.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "COMPARED",
    "DIVERGE_FACTOR",
    "LIVE",
    "RUNS",
    "SKIP",
    "SPIKE",
    "decade_range",
    "diverged_at",
    "log_axis",
    "run_color",
]

# The quantities of one run.
LIVE = {
    "loss": "#222222",
    "val_loss": "#8c564b",
    "before": "#9aa0a6",
    "after": "#1f77b4",
    "bound": "#ff7f0e",
    "clip": "#2ca02c",
}
SKIP = "#d62728"  # skipped (non-finite) steps, and nothing else
SPIKE = "#c51b7d"  # steps the spike rule skipped (Scaler(skip_spikes=...)), and nothing else
# Runs side by side: no red (SKIP), no magenta (SPIKE), no grey (norm before), no near-black (loss).
RUNS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
)
# Compared modes beside the lab's live run: the RUNS colours the live run does not use (9, one per mode).
COMPARED = tuple(c for c in RUNS if c not in LIVE.values())
DASHES = ("solid", "dash", "dot", "dashdot")
DIVERGE_FACTOR = 1e3  # a loss this many times its start has diverged


def run_color(i: int, palette=RUNS) -> tuple[str, str]:
    """Colour and dash of run ``i``: a new colour for each run, a new dash after the palette is used up."""
    return palette[i % len(palette)], DASHES[(i // len(palette)) % len(DASHES)]


def diverged_at(loss) -> int | None:
    """The first step where a run has diverged, or None.

    Diverged: the loss exceeds :data:`DIVERGE_FACTOR` times its first finite value, or
    it is non-finite from some step to the end (a single skipped step is not divergence).
    """
    loss = np.asarray(loss, dtype=np.float64)
    if not loss.size:
        return None
    finite = np.isfinite(loss)
    if not finite.any():
        return 0
    ref = max(abs(float(loss[finite][0])), 1e-12)
    with np.errstate(invalid="ignore"):
        big = np.flatnonzero(finite & (loss > DIVERGE_FACTOR * ref))
    tail = np.flatnonzero(finite)[-1] + 1  # non-finite from here to the end
    candidates = [int(big[0])] if big.size else []
    if tail < len(loss):
        candidates.append(int(tail))
    return min(candidates) if candidates else None


def decade_range(arrays, pad: float = 0.15) -> list[float] | None:
    """A log10 y range ``[lo, hi]`` holding the positive finite values of ``arrays``, or None.

    The ends are rounded out to half decades, so a growing run changes the range rarely.
    """
    parts = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    v = np.concatenate(parts) if parts else np.zeros(0)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return None
    lo, hi = math.log10(float(v.min())) - pad, math.log10(float(v.max())) + pad
    lo, hi = math.floor(lo * 2) / 2, math.ceil(hi * 2) / 2
    if hi - lo < 1:
        lo, hi = lo - 0.5, hi + 0.5
    return [lo, hi]


def log_axis(rng: list[float] | None = None) -> dict:
    """Layout of a log y axis: powers of ten on whole decades (a tick every k decades when the range is wide)."""
    axis = dict(type="log", exponentformat="power", showexponent="all", minor=dict(showgrid=False))
    if rng is None:
        axis.update(autorange=True, dtick=1)
    else:
        axis.update(autorange=False, range=list(rng), dtick=max(1, math.ceil((rng[1] - rng[0]) / 8)))
    return axis
