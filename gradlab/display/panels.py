"""What the static figures (:mod:`gradlab.display.plots`) and the live one
(:mod:`gradlab.display.live`) share: the checks of their arguments, series made
drawable (non-finite values as gaps), the clip rate, the skipped-step strip, the
three panels of an overview, and the marks of a diverged run.
"""

from __future__ import annotations

import reprlib

import numpy as np
import plotly.graph_objects as go

from gradlab import _checks
from gradlab.display.style import SKIP, SPIKE, diverged_at, log_axis
from gradlab.training.history import History

__all__ = [
    "HISTORIES",
    "SKIPPED",
    "SPIKED",
    "STRIP_Y",
    "as_histories",
    "check_window",
    "clip_rate",
    "diverged_marks",
    "finite",
    "gaps",
    "kept",
    "one_history",
    "panel_axes",
    "panel_titles",
    "short",
    "nonfinite_steps",
    "skip_strip",
    "spike_markers",
    "spike_strip",
]

SKIPPED = "skipped step (non-finite)"
SPIKED = "skipped step (spike)"  # skipped by the spike rule (Scaler(skip_spikes=...)): finite, too large
STRIP_Y = 1.1  # where the strip of skipped steps runs, on the clip-rate axis (0..1)


short = reprlib.Repr()  # argument values as error messages show them
short.maxlist = short.maxtuple = 4
short.maxstring = short.maxother = 80

HISTORIES = "a gradlab History or a non-empty list of them"


def as_histories(histories, name: str = "histories") -> list[History]:
    """A History, or a non-empty list (or other iterable, not a string) of them, as a list."""
    if isinstance(histories, History):
        return [histories]
    given = histories
    if not isinstance(histories, (str, bytes)) and hasattr(histories, "__iter__"):
        histories = list(histories)
    if not isinstance(histories, list) or not histories:
        raise ValueError(f"Argument `{name}` must be {HISTORIES}. Received: {name}={short.repr(given)}")
    for i, h in enumerate(histories):
        if not isinstance(h, History):
            raise ValueError(f"Argument `{name}` must be {HISTORIES}. Received: {name}[{i}]={short.repr(h)}")
    return histories


def one_history(history, name: str = "history") -> History:
    """One History (or a list holding exactly one), for the figures of a single run."""
    if isinstance(history, (list, tuple)) and len(history) == 1 and isinstance(history[0], History):
        return history[0]
    if not isinstance(history, History):
        raise ValueError(
            f"Argument `{name}` must be one gradlab History (this figure shows one run; "
            f"overview() overlays several). Received: {name}={short.repr(history)}"
        )
    return history


def check_window(window) -> int:
    """A rolling window: an integer >= 1."""
    return _checks.size("window", window)


def finite(a) -> list:
    """Values with NaN/inf replaced by None, so Plotly leaves a gap."""
    a = np.asarray(a, dtype=float)
    return [float(v) if np.isfinite(v) else None for v in a]


def gaps(a) -> np.ndarray:
    """A float64 copy with NaN where ``a`` is not finite: Plotly leaves a gap there.

    The array form of :func:`finite`: a FigureWidget sends it to the browser as one
    binary buffer instead of a JSON list.
    """
    a = np.array(a, dtype=np.float64)
    a[~np.isfinite(a)] = np.nan
    return a


def _window_sums(a: np.ndarray, window: int) -> np.ndarray:
    c = np.concatenate([[0.0], np.cumsum(a, dtype=np.float64)])
    lo = np.maximum(np.arange(1, len(a) + 1) - window, 0)
    return c[1:] - c[lo]


def clip_rate(h: History, window: int = 20) -> np.ndarray:
    """Rolling fraction of clipped steps over the last ``window`` steps, skipped steps left out."""
    h, window = one_history(h, "h"), check_window(window)
    counted = h.skipped <= 0
    clipped = _window_sums(np.where(counted, h.clipped, 0.0), window)
    n = _window_sums(counted.astype(np.float64), window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, clipped / np.where(n > 0, n, 1.0), np.nan)


def nonfinite_steps(h: History) -> np.ndarray:
    """The steps skipped for non-finite gradients (not the spikes: see :func:`spike_markers`)."""
    return h.steps[(h.skipped > 0) & ~h.spiked]


def spike_markers(h: History, showlegend=True, **kw) -> go.Scatter:
    """The steps the spike rule skipped, circled (magenta) at their own norm."""
    steps = h.steps[h.spiked]
    return go.Scatter(
        x=steps.tolist(),
        y=h.norm_before[h.spiked].tolist(),
        mode="markers",
        marker=dict(symbol="circle-open", color=SPIKE, size=12, line=dict(width=2, color=SPIKE)),
        name=SPIKED,
        showlegend=showlegend and bool(len(steps)),
        hovertemplate="step %{x}: skipped (spike, norm %{y:.3g})<extra></extra>",
        **kw,
    )


def _strip(steps, name: str, marker: dict, hover: str, **kw) -> go.Scatter:
    """Markers for ``steps`` along the top of the clip-rate panel (in the legend when any)."""
    steps = np.asarray(steps)
    return go.Scatter(
        x=steps.tolist(),
        y=[STRIP_Y] * len(steps),
        mode="markers",
        marker=marker,
        name=name,
        showlegend=bool(len(steps)),
        hovertemplate=f"step %{{x}}: skipped ({hover})<extra></extra>",
        **kw,
    )


def spike_strip(steps, **kw) -> go.Scatter:
    """The steps the spike rule skipped, as magenta triangles along the top of the clip-rate panel."""
    return _strip(steps, SPIKED, dict(symbol="triangle-down", color=SPIKE, size=9), "spike", **kw)


def skip_strip(steps, **kw) -> go.Scatter:
    """Skipped steps as thin red ticks along the top of the clip-rate panel (a strip; in the legend when any)."""
    marker = dict(symbol="line-ns-open", color=SKIP, size=10, line=dict(width=2, color=SKIP))
    return _strip(steps, SKIPPED, marker, "non-finite gradients", **kw)


def kept(h: History, values) -> np.ndarray:
    """``values`` of run ``h`` up to the step where it diverged (what a y range should hold)."""
    stop = diverged_at(h.loss)
    values = np.asarray(values, dtype=np.float64)
    return values if stop is None else values[:stop]


def diverged_marks(hs, names, colors, rows) -> list[dict]:
    """Annotations at the top edge of the panels ``rows`` for every run of ``hs`` that diverged."""
    marks = []
    for h, name, color in zip(hs, names, colors):
        stop = diverged_at(h.loss)
        if stop is None:
            continue
        for row in rows:
            suffix = "" if row == 1 else str(row)
            marks.append(
                dict(
                    x=stop,
                    xref=f"x{suffix}",
                    y=1,
                    yref=f"y{suffix} domain",
                    yanchor="top",
                    text="▲",
                    showarrow=False,
                    font=dict(color=color, size=12),
                    hovertext=f"{name} diverged at step {stop} (off the top of the axis)",
                )
            )
    return marks


def panel_titles(window: int, one: bool) -> tuple[str, str, str]:
    norm = "global gradient norm: before and after clipping" if one else "global gradient norm after clipping"
    return ("loss", norm, f"clip rate ({window}-step window)")


def panel_axes(fig: go.Figure, log_loss: bool, loss_range=None, norm_range=None) -> None:
    if log_loss:
        fig.update_yaxes(title_text="loss", row=1, col=1, **log_axis(loss_range))
    else:
        fig.update_yaxes(title_text="loss", type="linear", row=1, col=1)
    fig.update_yaxes(title_text="global norm", row=2, col=1, **log_axis(norm_range))
    fig.update_yaxes(title_text="clipped", range=[-0.05, STRIP_Y + 0.08], tickvals=[0, 0.5, 1], row=3, col=1)
    fig.update_xaxes(title_text="step", row=3, col=1)
