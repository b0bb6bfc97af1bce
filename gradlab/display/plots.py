"""Plotly figures of recorded histories: loss, norms with the threshold in force,
clip rate, per-layer norm heatmaps, and overlays of several runs.

Every function returns a ``go.Figure``; :class:`LiveFigure` is the
``go.FigureWidget`` variant that the lab updates in place. Non-finite values
(skipped steps) are never drawn as ordinary points: they leave a gap in the
lines and get a red marker of their own (red is for skipped steps only).

Every figure has a title and a title on every axis it labels; log axes show
powers of ten; y ranges hold the runs that stay finite (a diverged run is marked
at the top edge). Colours and axes come from :mod:`gradlab.display.style`.

This module reads :class:`~gradlab.history.History` only; it never trains.
"""

from __future__ import annotations

import html
import json
import math
import reprlib
import time

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from gradlab import _checks, _internals
from gradlab.display.style import COMPARED, LIVE, RUNS, SKIP, decade_range, diverged_at, log_axis, run_color
from gradlab.training.history import History

__all__ = [
    "LiveFigure",
    "clip_rate",
    "clip_rate_figure",
    "layer_heatmap",
    "loss_figure",
    "norm_figure",
    "overlay_label",
    "overview",
    "static_figure",
    "widget_bundle",
]

PALETTE = RUNS  # colours of runs side by side (kept name)
BEFORE, AFTER, BOUND = LIVE["before"], LIVE["after"], LIVE["bound"]
SKIPPED = "skipped step (non-finite)"
STRIP_Y = 1.1  # where the strip of skipped steps runs, on the clip-rate axis (0..1)


_short = reprlib.Repr()
_short.maxlist = _short.maxtuple = 4
_short.maxstring = _short.maxother = 80

_HISTORIES = "a gradlab History or a non-empty list of them"


def _list(histories, name: str = "histories") -> list[History]:
    """A History, or a non-empty list (or other iterable, not a string) of them, as a list."""
    if isinstance(histories, History):
        return [histories]
    given = histories
    if not isinstance(histories, (str, bytes)) and hasattr(histories, "__iter__"):
        histories = list(histories)
    if not isinstance(histories, list) or not histories:
        raise ValueError(f"Argument `{name}` must be {_HISTORIES}. Received: {name}={_short.repr(given)}")
    for i, h in enumerate(histories):
        if not isinstance(h, History):
            raise ValueError(f"Argument `{name}` must be {_HISTORIES}. Received: {name}[{i}]={_short.repr(h)}")
    return histories


def _one(history, name: str = "history") -> History:
    """One History (or a list holding exactly one), for the figures of a single run."""
    if isinstance(history, (list, tuple)) and len(history) == 1 and isinstance(history[0], History):
        return history[0]
    if not isinstance(history, History):
        raise ValueError(
            f"Argument `{name}` must be one gradlab History (this figure shows one run; "
            f"overview() overlays several). Received: {name}={_short.repr(history)}"
        )
    return history


def _window(window) -> int:
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
    h, window = _one(h, "h"), _window(window)
    counted = h.skipped <= 0
    clipped = _window_sums(np.where(counted, h.clipped, 0.0), window)
    n = _window_sums(counted.astype(np.float64), window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, clipped / np.where(n > 0, n, 1.0), np.nan)


def _skip_markers(h: History, y_level: float, name=SKIPPED, showlegend=True, **kw):
    steps = h.steps[h.skipped > 0]
    return go.Scatter(
        x=steps.tolist(),
        y=[y_level] * len(steps),
        mode="markers",
        marker=dict(symbol="x", color=SKIP, size=9),
        name=name,
        showlegend=showlegend and bool(len(steps)),
        hovertemplate="step %{x}: skipped<extra></extra>",
        **kw,
    )


def _skip_strip(steps, **kw) -> go.Scatter:
    """Skipped steps as thin red ticks along the top of the clip-rate panel (a strip; in the legend when any)."""
    steps = np.asarray(steps)
    return go.Scatter(
        x=steps.tolist(),
        y=[STRIP_Y] * len(steps),
        mode="markers",
        marker=dict(symbol="line-ns-open", color=SKIP, size=10, line=dict(width=2, color=SKIP)),
        name=SKIPPED,
        showlegend=bool(len(steps)),
        hovertemplate="step %{x}: skipped (non-finite gradients)<extra></extra>",
        **kw,
    )


def _top(values, default=1.0):
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else default


def _kept(h: History, values) -> np.ndarray:
    """``values`` of run ``h`` up to the step where it diverged (what a y range should hold)."""
    stop = diverged_at(h.loss)
    values = np.asarray(values, dtype=np.float64)
    return values if stop is None else values[:stop]


def _diverged_marks(hs, names, colors, rows) -> list[dict]:
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


def _finish(fig: go.Figure, title: str, **layout) -> go.Figure:
    fig.update_layout(title=dict(text=title), template="plotly_white", **layout)
    return fig


def loss_figure(histories, log_y: bool = True) -> go.Figure:
    """Training loss per step, one line per run.

    The y range holds the runs that stay finite; a run that diverged is marked at the
    top edge (▲) from the step it left the axis.
    """
    hs, log_y = _list(histories), _checks.boolean("log_y", log_y)
    fig = go.Figure()
    names, colors = [], []
    for i, h in enumerate(hs):
        color, dash = run_color(i)
        name = h.label or f"run {i}"
        names.append(name)
        colors.append(color)
        fig.add_scatter(x=h.steps.tolist(), y=finite(h.loss), name=name, line=dict(color=color, dash=dash))
    _finish(fig, "Training loss", xaxis_title="step", yaxis_title="loss", legend_title_text="runs")
    if log_y:
        fig.update_yaxes(**log_axis(decade_range([_kept(h, h.loss) for h in hs])))
        fig.update_layout(annotations=_diverged_marks(hs, names, colors, rows=(1,)))
    return fig


def norm_figure(history: History, log_y: bool = True) -> go.Figure:
    """Global gradient norm before and after scaling, with the bound in force.

    The bound is drawn as a step line that follows every change of threshold
    (and the bound AutoClip/ZClip computed); skipped steps are red crosses.
    Entries that would draw nothing (no bound in mode ``none``, no skipped step)
    are left out of the legend.
    """
    h, log_y = _one(history), _checks.boolean("log_y", log_y)
    fig = go.Figure()
    for trace in _norm_traces(h):
        fig.add_trace(trace)
    _finish(
        fig,
        "Global gradient norm, before and after clipping",
        xaxis_title="step",
        yaxis_title="global norm",
    )
    if log_y:
        kept = [_kept(h, h.norm_before), _kept(h, h.norm_after), _kept(h, h.bound)]
        fig.update_yaxes(**log_axis(decade_range(kept)))
    return fig


def _norm_traces(h: History, showlegend=True):
    finite_bound = np.isfinite(h.bound)
    has_bound = bool(finite_bound.any())
    # A bound in force at a few steps only (ZClip's spikes) would be dots of a line: mark them.
    sparse = has_bound and finite_bound.mean() < 0.2
    return [
        go.Scatter(
            x=h.steps.tolist(),
            y=finite(h.norm_before),
            name="norm before clipping",
            line=dict(color=LIVE["before"]),
            showlegend=showlegend,
        ),
        go.Scatter(
            x=h.steps.tolist(),
            y=finite(h.norm_after),
            name="norm after clipping",
            line=dict(color=LIVE["after"]),
            showlegend=showlegend,
        ),
        go.Scatter(
            x=h.steps.tolist(),
            y=finite(h.bound),
            name="threshold / bound",
            mode="lines+markers" if sparse else "lines",
            marker=dict(size=7, symbol="diamond", color=LIVE["bound"]),
            line=dict(color=LIVE["bound"], dash="dash", shape="hv"),
            showlegend=showlegend and has_bound,
        ),
        _skip_markers(h, _top(h.norm_before), showlegend=showlegend),
    ]


def clip_rate_figure(histories, window: int = 20) -> go.Figure:
    """Rolling clip rate (fraction of steps where scaling changed the gradients)."""
    hs, window = _list(histories), _window(window)
    fig = go.Figure()
    for i, h in enumerate(hs):
        color, dash = run_color(i)
        fig.add_scatter(
            x=h.steps.tolist(),
            y=finite(clip_rate(h, window)),
            name=h.label or f"run {i}",
            line=dict(color=color, dash=dash),
        )
    _finish(
        fig,
        f"Clip rate (rolling, {window} steps)",
        xaxis_title="step",
        yaxis_title="fraction of steps clipped",
        legend_title_text="runs",
    )
    fig.update_yaxes(range=[-0.05, 1.05])
    return fig


def layer_heatmap(history: History, which: str = "before") -> go.Figure:
    """Per-layer gradient norms (log10), layers x steps. ``which``: before, after or ratio.

    Blank cells are steps where the value is not finite (an overflow or a skipped
    step) or zero; after a divergence the x axis stops at the last step with any value.
    """
    h = _one(history)
    field = {"before": "layer_norm_before", "after": "layer_norm_after", "ratio": "update_ratio"}
    which = _checks.choice("which", which, tuple(field))
    z = np.asarray(getattr(h, field[which]), float).T
    with np.errstate(divide="ignore", invalid="ignore"):
        logz = np.where((z > 0) & np.isfinite(z), np.log10(np.where(z > 0, z, 1.0)), np.nan)
    quantity = {
        "before": "gradient norm",
        "after": "gradient norm after scaling",
        "ratio": "update / weight",
    }[which]
    fig = go.Figure(
        go.Heatmap(
            z=[finite(row) for row in logz],
            x=h.steps.tolist(),
            y=list(h.layer_names),
            colorscale="Viridis",
            colorbar=dict(title=dict(text=f"log10 of<br>{quantity}", side="right")),
            hovertemplate="step %{x}<br>%{y}<br>log10 = %{z:.2f}<extra></extra>",
        )
    )
    title = {
        "before": "Gradient norm per layer (before scaling)",
        "after": "Gradient norm per layer (after scaling)",
        "ratio": "Update / weight ratio per layer",
    }[which]
    _finish(fig, title, xaxis_title="step", yaxis_title="layer", margin=dict(b=80))
    note = "blank cells: not finite (overflow or skipped step) or zero"
    has = np.isfinite(logz).any(axis=0) if logz.size else np.zeros(0, bool)
    if has.any() and not has[-1]:
        last = int(np.flatnonzero(has)[-1])
        fig.update_xaxes(range=[-0.5, last + 0.5])
        note += f"; nothing finite after step {last}: the axis stops there"
    fig.add_annotation(
        text=note, xref="paper", yref="paper", x=0, y=-0.22, showarrow=False, xanchor="left", font=dict(size=11)
    )
    return fig


def _panel_titles(window: int, one: bool) -> tuple[str, str, str]:
    norm = "global gradient norm: before and after clipping" if one else "global gradient norm after clipping"
    return ("loss", norm, f"clip rate ({window}-step window)")


def _panel_axes(fig: go.Figure, log_loss: bool, loss_range=None, norm_range=None) -> None:
    if log_loss:
        fig.update_yaxes(title_text="loss", row=1, col=1, **log_axis(loss_range))
    else:
        fig.update_yaxes(title_text="loss", type="linear", row=1, col=1)
    fig.update_yaxes(title_text="global norm", row=2, col=1, **log_axis(norm_range))
    fig.update_yaxes(title_text="clipped", range=[-0.05, STRIP_Y + 0.08], tickvals=[0, 0.5, 1], row=3, col=1)
    fig.update_xaxes(title_text="step", row=3, col=1)


def overview(histories, window: int = 20, log_loss: bool = True) -> go.Figure:
    """Loss, global norms and clip rate in one figure.

    One run: norms before and after with the bound, skipped steps as a red strip on
    the clip-rate panel, validation loss when recorded. Several runs: their losses,
    post-scaling norms and clip rates overlaid, one colour per run (one legend entry
    each). The y ranges hold the runs that stay finite; a run that diverged is marked
    at the top edge (▲).
    """
    hs, window, log_loss = _list(histories), _window(window), _checks.boolean("log_loss", log_loss)
    one = len(hs) == 1
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        subplot_titles=_panel_titles(window, one),
    )
    if one:
        h = hs[0]
        fig.add_scatter(x=h.steps.tolist(), y=finite(h.loss), name="loss", line=dict(color=LIVE["loss"]), row=1, col=1)
        if len(h.val_step):
            fig.add_scatter(
                x=h.val_step.tolist(),
                y=finite(h.val_loss),
                name="validation loss",
                mode="lines+markers",
                line=dict(color=LIVE["val_loss"]),
                row=1,
                col=1,
            )
        for trace in _norm_traces(h)[:3]:
            fig.add_trace(trace, row=2, col=1)
        fig.add_scatter(
            x=h.steps.tolist(),
            y=finite(clip_rate(h, window)),
            name="clip rate",
            line=dict(color=LIVE["clip"]),
            row=3,
            col=1,
        )
        fig.add_trace(_skip_strip(h.steps[h.skipped > 0]), row=3, col=1)
        loss_range = decade_range([_kept(h, h.loss), h.val_loss])
        norm_range = decade_range([_kept(h, h.norm_before), _kept(h, h.norm_after), _kept(h, h.bound)])
        names, colors = [h.label or "this run"], [LIVE["loss"]]
    else:
        names, colors = [], []
        for i, h in enumerate(hs):
            color, dash = run_color(i)
            name = h.label or f"run {i}"
            names.append(name)
            colors.append(color)
            group = dict(legendgroup=name, line=dict(color=color, dash=dash))
            fig.add_scatter(x=h.steps.tolist(), y=finite(h.loss), name=name, row=1, col=1, **group)
            fig.add_scatter(
                x=h.steps.tolist(), y=finite(h.norm_after), name=name, showlegend=False, row=2, col=1, **group
            )
            fig.add_scatter(
                x=h.steps.tolist(), y=finite(clip_rate(h, window)), name=name, showlegend=False, row=3, col=1, **group
            )
        skipped = np.unique(np.concatenate([h.steps[h.skipped > 0] for h in hs]))
        if skipped.size:
            fig.add_trace(_skip_strip(skipped), row=3, col=1)
        loss_range = decade_range([_kept(h, h.loss) for h in hs])
        norm_range = decade_range([_kept(h, h.norm_after) for h in hs])
    _panel_axes(fig, log_loss, loss_range, norm_range)
    title = "Training run: loss, gradient norm, clip rate" if one else "Runs compared: loss, gradient norm, clip rate"
    if one and hs[0].label:
        title += f" ({hs[0].label})"
    fig.update_layout(
        title=dict(text=title),
        height=680,
        template="plotly_white",
        margin=dict(l=70, r=20, t=70, b=50),
        legend_title_text="" if one else "runs",
    )
    for mark in _diverged_marks(hs, names, colors, rows=(1, 2)):
        fig.add_annotation(mark)
    return fig


def _thin(n: int, max_points: int) -> np.ndarray:
    """Indices of at most ~max_points of n steps: all of the last fifth, evenly spaced before."""
    if n <= max_points:
        return np.arange(n)
    tail = max_points // 5
    head = np.linspace(0, n - tail - 1, max_points - tail).astype(int)
    return np.unique(np.concatenate([head, np.arange(n - tail, n)]))


def overlay_label(mode: str, threshold: float) -> str:
    """How a compared mode is named in the lab: ``"mode (threshold)"``, or ``"none"``."""
    return mode if mode == "none" else f"{mode} ({threshold:.3g})"


class LiveFigure:
    """A ``go.FigureWidget`` overview of one run, updated in place.

    Built once; :meth:`update` replaces the traces' data inside
    ``batch_update()`` (one message to the browser, with the arrays as binary
    buffers). :meth:`overlay` adds finished runs for comparison. ``widget`` is the
    FigureWidget to display.

    Two legends: "this run" (the live run's quantities) and "compared modes" (the
    overlays, one entry per run, each in a colour of its own). Legend entries that
    would draw nothing are hidden; the y ranges hold the runs that stay finite, and
    a run that diverged is marked (▲) at the top edge. The right margin is fixed, so
    the plot area keeps its width when the legends fill.

    The browser reports each update once it has drawn it. :attr:`busy` is true
    until then (for at most ``patience`` seconds, as when no browser shows the
    figure), and after it for as long again as the drawing took (the time from
    sending to the report), which leaves the browser time for the reader's clicks
    and keys between frames. A caller that skips updates while busy never sends faster
    than the browser draws: a slow browser gets fewer frames, each of them
    current, instead of falling behind on a queue of old ones.
    """

    TRACES = {  # the live run's traces, by name: (colour, panel); update() finds them by these names
        "loss": (LIVE["loss"], 1),
        "norm before clipping": (LIVE["before"], 2),
        "norm after clipping": (LIVE["after"], 2),
        "threshold / bound": (LIVE["bound"], 2),
        SKIPPED: (SKIP, 3),
        "clip rate": (LIVE["clip"], 3),
    }

    def __init__(self, window: int = 20, height: int = 600, max_points: int = 1000, patience: float = 2.0):
        self.window = _window(window)
        _checks.python_number("height", height, low=10, low_open=False)  # plotly's least height
        self.max_points = _checks.size("max_points", max_points)
        _checks.python_number("patience", patience, low=0, low_open=False)
        self.patience = patience
        self._sent = self._drawn = -math.inf  # when the last frame was sent, and reported drawn
        self._took = 0.0  # how long the browser took to draw the last frame
        fig = make_subplots(
            rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07, subplot_titles=_panel_titles(self.window, True)
        )
        for name, (color, row) in self.TRACES.items():
            if name == SKIPPED:
                trace = _skip_strip([], legend="legend")
            else:
                line = dict(color=color, dash="dash", shape="hv") if name == "threshold / bound" else dict(color=color)
                trace = go.Scatter(x=[], y=[], name=name, line=line, legend="legend", showlegend=False)
            fig.add_trace(trace, row=row, col=1)
        fig.add_scatter(
            x=[],
            y=[],
            name="validation loss",
            mode="lines+markers",
            line=dict(color=LIVE["val_loss"]),
            marker=dict(size=5),
            legend="legend",
            showlegend=False,
            row=1,
            col=1,
        )
        _panel_axes(fig, True)
        fig.update_layout(
            title=dict(text="Live run: loss, gradient norm, clip rate", x=0, xanchor="left"),
            height=height,
            template="plotly_white",
            uirevision="gradlab",  # keep zoom across updates
            margin=dict(l=70, r=200, t=70, b=50, autoexpand=False),  # fixed: the plot keeps its width
            legend=dict(title=dict(text="<b>this run</b>"), x=1.02, xanchor="left", y=1, yanchor="top"),
            legend2=dict(title=dict(text="<b>compared modes</b>"), x=1.02, xanchor="left", y=0.52, yanchor="top"),
        )
        self._titles = [a.to_plotly_json() for a in fig.layout.annotations]
        self.widget = go.FigureWidget(fig)
        self._n_live = len(self.widget.data)
        self._overlays: list[History] = []
        self._overlay_colors: list[str] = []
        self._view = (None, None, [])  # the ranges and marks last sent: at first, autorange and no marks
        self._fits, self._fit_at = 0, -math.inf  # see refit()
        _internals.on_drawn(self.widget, self._on_drawn)

    def _on_drawn(self, edit):
        """The browser's report that trace edit ``edit`` is drawn (plotly sends it after Plotly.update)."""
        if edit == _internals.edit_id(self.widget):
            self._drawn = time.perf_counter()
            self._took = self._drawn - self._sent

    def _layout_view(self, h: History):
        """y ranges (runs that stay finite) and divergence marks, for the live run and the overlays."""
        runs = [h, *self._overlays]
        loss = [_kept(h, h.loss), h.val_loss] + [_kept(o, o.loss) for o in self._overlays]
        norm = [_kept(h, h.norm_before), _kept(h, h.norm_after), _kept(h, h.bound)]
        norm += [_kept(o, o.norm_after) for o in self._overlays]
        names = ["this run"] + [o.label for o in self._overlays]
        marks = _diverged_marks(runs, names, [LIVE["loss"], *self._overlay_colors], rows=(1, 2))
        return decade_range(loss), decade_range(norm), marks

    def _apply_view(self, view) -> None:
        if view == self._view:
            return
        self._view = view
        loss_range, norm_range, marks = view
        self.widget.layout.yaxis.update(log_axis(loss_range))
        self.widget.layout.yaxis2.update(log_axis(norm_range))
        self.widget.layout.annotations = self._titles + marks

    def update(self, h: History) -> None:
        """Show ``h`` (the live run) in the figure.

        Long runs are thinned to about ``max_points`` points per trace (every step of
        the last fifth, evenly spaced before), so a redraw stays fast; skipped steps
        are always all marked.
        """
        h = _one(h, "h")
        keep = _thin(len(h), self.max_points)
        x = h.steps[keep].astype(np.int32)
        skipped = h.steps[h.skipped > 0].astype(np.int32)
        ran = len(h) > 0
        series = {  # trace name: (y, shown in the legend); the traces are found by name
            "loss": (h.loss, ran),
            "norm before clipping": (h.norm_before, ran),
            "norm after clipping": (h.norm_after, ran),
            "threshold / bound": (h.bound, bool(np.isfinite(h.bound).any())),
            SKIPPED: (None, bool(len(skipped))),
            "clip rate": (clip_rate(h, self.window), ran),
        }
        view = self._layout_view(h)
        edit, sent = _internals.edit_id(self.widget), self._sent
        with self.widget.batch_update():
            live = {trace.name: trace for trace in self.widget.data[: self._n_live]}
            for name, (y, show) in series.items():
                trace = live[name]
                if y is None:  # skipped steps: the strip along the top of the clip-rate panel
                    trace.x, trace.y = skipped, np.full(len(skipped), STRIP_Y)
                else:
                    trace.x, trace.y = x, gaps(np.asarray(y)[keep])
                if trace.showlegend != show:
                    trace.showlegend = show
            val = live["validation loss"]
            if len(h.val_step) or (val.x is not None and len(val.x)):
                val.x, val.y = h.val_step.astype(np.int32), gaps(h.val_loss)
            if val.showlegend != bool(len(h.val_step)):
                val.showlegend = bool(len(h.val_step))
            self._apply_view(view)
            if len(h) and time.perf_counter() - self._fit_at > self.REFIT_S:
                self.refit()
            self._sent = time.perf_counter()  # before the message leaves: the report cannot come first
        if _internals.edit_id(self.widget) == edit:  # nothing changed, nothing was sent
            self._sent = sent

    REFIT_S = 2.0  # while frames go out, the figure re-fits its width at most this often

    def refit(self) -> None:
        """Make plotly fit the figure to the width it has now.

        Plotly sizes the figure when it lays it out: drawn before the notebook had laid the
        output out, it kept plotly's default 700 px, and a window resize did not change it
        (JupyterLab 4.6, plotly 7.1), while any layout change does. This sends a harmless one
        (``layout.meta``); :meth:`update` calls it every ``REFIT_S`` seconds, the lab whenever its width in the
        browser changes (the first report comes once the lab is laid out).
        """
        self._fits += 1
        self._fit_at = time.perf_counter()
        self.widget.layout.meta = {"fit": self._fits}

    def refit_soon(self) -> None:
        """Have the next :meth:`update` that draws a step call :meth:`refit` (for a caller that must not touch the
        figure while another thread updates it)."""
        self._fit_at = -math.inf

    @property
    def busy(self) -> bool:
        """True until the browser has drawn the last update, and then for as long as that took."""
        now = time.perf_counter()
        if self._drawn < self._sent:  # sent, not reported drawn yet
            return now - self._sent < self.patience
        return now < self._drawn + min(self._took, self.patience)

    @property
    def overlay_colors(self) -> tuple:
        """The colour of each overlaid run, in the order :meth:`overlay` was given them (read-only)."""
        return tuple(self._overlay_colors)

    def overlay(self, histories) -> None:
        """Add finished runs (loss and post-scaling norm) for comparison; replaces earlier overlays.

        Each run gets a colour of :data:`~gradlab.display.style.COMPARED` (none of the live
        run's) and one entry in the "compared modes" legend, named by its label.
        """
        hs = _list(histories)
        with self.widget.batch_update():
            self.widget.data = self.widget.data[: self._n_live]
            self._overlays, self._overlay_colors = list(hs), []
            for i, h in enumerate(hs):
                color, dash = run_color(i, COMPARED)
                self._overlay_colors.append(color)
                name = h.label or f"run {i}"
                style = dict(color=color, width=1.5, dash=dash)
                common = dict(name=name, legendgroup=name, legend="legend2", line=style, opacity=0.85)
                self.widget.add_scatter(x=h.steps.tolist(), y=finite(h.loss), row=1, col=1, **common)
                self.widget.add_scatter(
                    x=h.steps.tolist(), y=finite(h.norm_after), showlegend=False, row=2, col=1, **common
                )

    def clear_overlays(self) -> None:
        with self.widget.batch_update():
            self.widget.data = self.widget.data[: self._n_live]
            self._overlays, self._overlay_colors = [], []


def static_figure(figure, note: str = "") -> dict:
    """A figure as Plotly JSON, the ``application/vnd.plotly.v1+json`` of a notebook output: a live figure's static copy.

    A ``go.FigureWidget`` shows nothing where no kernel runs (GitHub, nbviewer, a notebook opened
    without its kernel). Its JSON in the same output does: JupyterLab draws it with its Plotly
    renderer (interactive, no kernel needed) and ``tools/run_notebooks.py`` adds a PNG of it,
    drawn by kaleido, for GitHub and nbviewer. With a kernel the widget view wins (JupyterLab's
    widget renderer ranks first). ``note`` (if any) goes under the title. Trace ids (random) and
    ``layout.meta`` are left out, so the same state gives the same JSON.

    >>> spec = static_figure(go.FigureWidget(go.Scatter(y=[1, 2]), layout=dict(title="t")), note="a copy")
    >>> sorted(spec), spec["layout"]["title"]["text"], spec["data"][0]["y"]
    (['data', 'layout'], 't<br><sup>a copy</sup>', [1, 2])
    """
    if not isinstance(figure, go.Figure | go.FigureWidget):
        raise ValueError(
            f"Argument `figure` must be a plotly go.Figure or go.FigureWidget. Received: figure={_short.repr(figure)}"
        )
    note = _checks.text("note", note)
    spec = json.loads(pio.to_json(figure, validate=False, remove_uids=True))
    layout = spec.setdefault("layout", {})
    layout.pop("meta", None)  # the lab's refit counter: no content
    if note:
        title = layout.get("title", {})
        title = title if isinstance(title, dict) else {"text": title}
        title["text"] = f"{title.get('text', '')}<br><sup>{html.escape(note, quote=False)}</sup>"
        layout["title"] = title
    return {"data": spec.get("data", []), "layout": layout}


def widget_bundle(widget, figure, note: str = "", text: str = "", **kwargs):
    """A widget's display bundle that also carries ``figure``'s static copy: what a live view displays as.

    The widget view (``application/vnd.jupyter.widget-view+json``, from ``widget``'s own
    ``_repr_mimebundle_(**kwargs)``) shows where a kernel runs; beside it,
    :func:`static_figure` of ``figure`` with ``note`` under its title shows where none does
    (GitHub, nbviewer, a notebook opened cold: JupyterLab draws the widget over it whenever it
    can, its renderer ranks first), and ``text`` (if any) is the ``text/plain``. The lab and the
    cliff explorer display through it; ``_repr_mimebundle_`` returns what this returns.

    >>> import ipywidgets
    >>> fig = go.FigureWidget(go.Scatter(y=[1, 2]), layout=dict(title="t"))
    >>> data = widget_bundle(ipywidgets.VBox([fig]), fig, note="a copy", text="<view>")
    >>> data = data[0] if isinstance(data, tuple) else data
    >>> sorted(data)
    ['application/vnd.jupyter.widget-view+json', 'application/vnd.plotly.v1+json', 'text/plain']
    >>> data["application/vnd.plotly.v1+json"]["layout"]["title"]["text"], data["text/plain"]
    ('t<br><sup>a copy</sup>', '<view>')
    """
    if not callable(getattr(widget, "_repr_mimebundle_", None)):
        raise ValueError(
            f"Argument `widget` must be an ipywidgets widget (it displays through _repr_mimebundle_). "
            f"Received: widget={_short.repr(widget)}"
        )
    spec = static_figure(figure, note=note)
    text = _checks.text("text", text)
    bundle = widget._repr_mimebundle_(**kwargs)
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    data["application/vnd.plotly.v1+json"] = spec
    if text:
        data["text/plain"] = text
    return bundle
