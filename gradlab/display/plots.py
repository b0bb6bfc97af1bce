"""Plotly figures of recorded histories: loss, norms with the threshold in force,
clip rate, per-layer norm heatmaps, and overlays of several runs.

Every function returns a ``go.Figure``; :class:`LiveFigure` is the
``go.FigureWidget`` variant that the lab updates in place. Non-finite values
(skipped steps) are never drawn as ordinary points: they leave a gap in the
lines and get a red marker of their own.

This module reads :class:`~gradlab.history.History` only; it never trains.
"""

from __future__ import annotations

import html
import math
import reprlib
import time

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from gradlab import _checks, _internals
from gradlab.training.history import History

__all__ = [
    "LiveFigure",
    "clip_rate",
    "clip_rate_figure",
    "layer_heatmap",
    "loss_figure",
    "norm_figure",
    "overview",
    "svg_overview",
]

PALETTE = qualitative.Plotly
BEFORE, AFTER, BOUND, SKIP = "#9aa0a6", "#1f77b4", "#ff7f0e", "#d62728"


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


def _skip_markers(h: History, y_level: float, name="skipped (non-finite)", showlegend=True, **kw):
    steps = h.steps[h.skipped > 0]
    return go.Scatter(
        x=steps.tolist(),
        y=[y_level] * len(steps),
        mode="markers",
        marker=dict(symbol="x", color=SKIP, size=9),
        name=name,
        showlegend=showlegend,
        hovertemplate="step %{x}: skipped<extra></extra>",
        **kw,
    )


def _top(values, default=1.0):
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else default


def loss_figure(histories, log_y: bool = True) -> go.Figure:
    """Training loss per step, one line per run."""
    hs, log_y = _list(histories), _checks.boolean("log_y", log_y)
    fig = go.Figure()
    for i, h in enumerate(hs):
        fig.add_scatter(
            x=h.steps.tolist(), y=finite(h.loss), name=h.label or f"run {i}", line=dict(color=PALETTE[i % 10])
        )
    fig.update_layout(title="Loss", xaxis_title="step", yaxis_title="loss", template="plotly_white")
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def norm_figure(history: History, log_y: bool = True) -> go.Figure:
    """Global gradient norm before and after scaling, with the bound in force.

    The bound is drawn as a step line that follows every change of threshold
    (and the bound AutoClip/ZClip computed); skipped steps are red crosses.
    """
    h, log_y = _one(history), _checks.boolean("log_y", log_y)
    fig = go.Figure()
    for trace in _norm_traces(h):
        fig.add_trace(trace)
    fig.update_layout(title="Global gradient norm", xaxis_title="step", yaxis_title="norm", template="plotly_white")
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def _norm_traces(h: History, showlegend=True):
    return [
        go.Scatter(
            x=h.steps.tolist(),
            y=finite(h.norm_before),
            name="norm before",
            line=dict(color=BEFORE),
            showlegend=showlegend,
        ),
        go.Scatter(
            x=h.steps.tolist(), y=finite(h.norm_after), name="norm after", line=dict(color=AFTER), showlegend=showlegend
        ),
        go.Scatter(
            x=h.steps.tolist(),
            y=finite(h.bound),
            name="threshold / bound",
            line=dict(color=BOUND, dash="dash", shape="hv"),
            showlegend=showlegend,
        ),
        _skip_markers(h, _top(h.norm_before), showlegend=showlegend),
    ]


def clip_rate_figure(histories, window: int = 20) -> go.Figure:
    """Rolling clip rate (fraction of steps where scaling changed the gradients)."""
    hs, window = _list(histories), _window(window)
    fig = go.Figure()
    for i, h in enumerate(hs):
        fig.add_scatter(
            x=h.steps.tolist(),
            y=finite(clip_rate(h, window)),
            name=h.label or f"run {i}",
            line=dict(color=PALETTE[i % 10]),
        )
    fig.update_layout(
        title=f"Clip rate (rolling, {window} steps)", xaxis_title="step", yaxis_title="clipped", template="plotly_white"
    )
    fig.update_yaxes(range=[-0.05, 1.05])
    return fig


def layer_heatmap(history: History, which: str = "before") -> go.Figure:
    """Per-layer gradient norms (log10), layers x steps. ``which``: before, after or ratio."""
    h = _one(history)
    field = {"before": "layer_norm_before", "after": "layer_norm_after", "ratio": "update_ratio"}
    which = _checks.choice("which", which, tuple(field))
    z = np.asarray(getattr(h, field[which]), float).T
    with np.errstate(divide="ignore", invalid="ignore"):
        logz = np.where((z > 0) & np.isfinite(z), np.log10(np.where(z > 0, z, 1.0)), np.nan)
    fig = go.Figure(
        go.Heatmap(
            z=[finite(row) for row in logz],
            x=h.steps.tolist(),
            y=list(h.layer_names),
            colorscale="Viridis",
            colorbar=dict(title="log10"),
            hovertemplate="step %{x}<br>%{y}<br>log10 = %{z:.2f}<extra></extra>",
        )
    )
    title = {
        "before": "Gradient norm per layer (before scaling)",
        "after": "Gradient norm per layer (after scaling)",
        "ratio": "Update / weight ratio per layer",
    }[which]
    fig.update_layout(title=title, xaxis_title="step", template="plotly_white")
    return fig


def overview(histories, window: int = 20, log_loss: bool = True) -> go.Figure:
    """Loss, global norms and clip rate in one figure.

    One run: norms before and after with the bound. Several runs: their losses,
    post-scaling norms and clip rates overlaid, one colour per run.
    """
    hs, window, log_loss = _list(histories), _window(window), _checks.boolean("log_loss", log_loss)
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=("loss", "global gradient norm", f"clip rate ({window}-step window)"),
    )
    if len(hs) == 1:
        h = hs[0]
        fig.add_scatter(x=h.steps.tolist(), y=finite(h.loss), name="loss", line=dict(color=PALETTE[0]), row=1, col=1)
        for trace in _norm_traces(h):
            fig.add_trace(trace, row=2, col=1)
        fig.add_scatter(
            x=h.steps.tolist(),
            y=finite(clip_rate(h, window)),
            name="clip rate",
            line=dict(color=PALETTE[2]),
            row=3,
            col=1,
        )
    else:
        for i, h in enumerate(hs):
            color, name = PALETTE[i % 10], h.label or f"run {i}"
            group = dict(legendgroup=name, line=dict(color=color))
            fig.add_scatter(x=h.steps.tolist(), y=finite(h.loss), name=name, row=1, col=1, **group)
            fig.add_scatter(
                x=h.steps.tolist(), y=finite(h.norm_after), name=name, showlegend=False, row=2, col=1, **group
            )
            fig.add_scatter(
                x=h.steps.tolist(), y=finite(clip_rate(h, window)), name=name, showlegend=False, row=3, col=1, **group
            )
            if h.skipped.any():
                fig.add_trace(_skip_markers(h, _top(h.norm_after), showlegend=False, legendgroup=name), row=2, col=1)
    fig.update_yaxes(type="log" if log_loss else "linear", row=1, col=1)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_yaxes(range=[-0.05, 1.05], row=3, col=1)
    fig.update_xaxes(title_text="step", row=3, col=1)
    fig.update_layout(height=650, template="plotly_white", margin=dict(l=60, r=20, t=40, b=40))
    return fig


def _thin(n: int, max_points: int) -> np.ndarray:
    """Indices of at most ~max_points of n steps: all of the last fifth, evenly spaced before."""
    if n <= max_points:
        return np.arange(n)
    tail = max_points // 5
    head = np.linspace(0, n - tail - 1, max_points - tail).astype(int)
    return np.unique(np.concatenate([head, np.arange(n - tail, n)]))


class LiveFigure:
    """A ``go.FigureWidget`` overview of one run, updated in place.

    Built once; :meth:`update` replaces the traces' data inside
    ``batch_update()`` (one message to the browser, with the arrays as binary
    buffers). :meth:`overlay` adds finished runs for comparison. ``widget`` is the
    FigureWidget to display.

    The browser reports each update once it has drawn it. :attr:`busy` is true
    until then (for at most ``patience`` seconds, as when no browser shows the
    figure), and after it for as long again as the drawing took (the time from
    sending to the report), which leaves the browser time for the reader's clicks
    and keys between frames. A caller that skips updates while busy never sends faster
    than the browser draws: a slow browser gets fewer frames, each of them
    current, instead of falling behind on a queue of old ones.
    """

    def __init__(self, window: int = 20, height: int = 560, max_points: int = 1000, patience: float = 2.0):
        self.window = _window(window)
        _checks.python_number("height", height, low=10, low_open=False)  # plotly's least height
        self.max_points = _checks.size("max_points", max_points)
        _checks.python_number("patience", patience, low=0, low_open=False)
        self.patience = patience
        self._sent = self._drawn = -math.inf  # when the last frame was sent, and reported drawn
        self._took = 0.0  # how long the browser took to draw the last frame
        empty = History.empty([], ())
        fig = overview(empty, window)
        fig.update_layout(height=height, uirevision="gradlab")  # keep zoom across updates
        self.widget = go.FigureWidget(fig)
        self._n_live = len(self.widget.data)
        _internals.on_drawn(self.widget, self._on_drawn)

    def _on_drawn(self, edit):
        """The browser's report that trace edit ``edit`` is drawn (plotly sends it after Plotly.update)."""
        if edit == _internals.edit_id(self.widget):
            self._drawn = time.perf_counter()
            self._took = self._drawn - self._sent

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
        series = [h.loss, h.norm_before, h.norm_after, h.bound, None, clip_rate(h, self.window)]
        edit, sent = _internals.edit_id(self.widget), self._sent
        with self.widget.batch_update():
            for trace, y in zip(self.widget.data[: self._n_live], series):
                if y is None:  # skipped-step markers
                    trace.x, trace.y = skipped, np.full(len(skipped), _top(h.norm_before))
                else:
                    trace.x, trace.y = x, gaps(np.asarray(y)[keep])
            self._sent = time.perf_counter()  # before the message leaves: the report cannot come first
        if _internals.edit_id(self.widget) == edit:  # nothing changed, nothing was sent
            self._sent = sent

    @property
    def busy(self) -> bool:
        """True until the browser has drawn the last update, and then for as long as that took."""
        now = time.perf_counter()
        if self._drawn < self._sent:  # sent, not reported drawn yet
            return now - self._sent < self.patience
        return now < self._drawn + min(self._took, self.patience)

    def overlay(self, histories) -> None:
        """Add finished runs (loss and post-scaling norm) for comparison; replaces earlier overlays."""
        hs = _list(histories)
        with self.widget.batch_update():
            self.widget.data = self.widget.data[: self._n_live]
            for i, h in enumerate(hs):
                color = PALETTE[(i + 3) % 10]
                name = h.label or f"run {i}"
                style = dict(color=color, width=1.5)
                self.widget.add_scatter(
                    x=h.steps.tolist(), y=finite(h.loss), name=name, legendgroup=name, line=style, row=1, col=1
                )
                self.widget.add_scatter(
                    x=h.steps.tolist(),
                    y=finite(h.norm_after),
                    name=name,
                    legendgroup=name,
                    showlegend=False,
                    line=style,
                    row=2,
                    col=1,
                )

    def clear_overlays(self) -> None:
        with self.widget.batch_update():
            self.widget.data = self.widget.data[: self._n_live]


def svg_overview(history: History, width: int = 720, height: int = 300, title: str = "") -> str:
    """A small static SVG of a run: loss (left) and global norms with the bound (right), log scales.

    Needs no JavaScript, so it shows where widgets and plotly.js do not (GitHub,
    nbconvert): the lab's static fallback.
    """
    h = _one(history)
    _checks.python_number("width", width, low=60)  # two panels and their margins
    _checks.python_number("height", height, low=70)
    title = html.escape(_checks.text("title", title), quote=False)
    pw, ph, pad = (width - 60) / 2, height - 70, 30

    def panel(x0, series, label):
        vals = np.concatenate([np.asarray(s, float) for s, _ in series]) if series else np.array([])
        vals = vals[np.isfinite(vals) & (vals > 0)]
        out = [
            f'<rect x="{x0}" y="{pad}" width="{pw:.0f}" height="{ph}" fill="none" stroke="#ccc"/>',
            f'<text x="{x0 + 4}" y="{pad - 8}" font-size="12">{label}</text>',
        ]
        if not vals.size or len(h) < 2:
            return out + [
                f'<text x="{x0 + pw / 2 - 30}" y="{pad + ph / 2}" font-size="12" fill="#888">no steps yet</text>'
            ]
        lo, hi = np.log10(vals.min()), np.log10(vals.max())
        hi = hi if hi > lo else lo + 1
        out.append(f'<text x="{x0 + 2}" y="{pad + 12}" font-size="10" fill="#666">{10**hi:.3g}</text>')
        out.append(f'<text x="{x0 + 2}" y="{pad + ph - 3}" font-size="10" fill="#666">{10**lo:.3g}</text>')
        for s, style in series:
            pts, segs = [], []
            for t, v in enumerate(np.asarray(s, float)):
                if np.isfinite(v) and v > 0:
                    x = x0 + pw * t / (len(h) - 1)
                    y = pad + ph * (1 - (np.log10(v) - lo) / (hi - lo))
                    pts.append(f"{x:.1f},{y:.1f}")
                elif pts:
                    segs.append(pts)
                    pts = []
            segs.append(pts)
            out += [f'<polyline points="{" ".join(p)}" fill="none" {style}/>' for p in segs if len(p) > 1]
        for t in h.steps[h.skipped > 0]:
            x = x0 + pw * t / (len(h) - 1)
            out.append(f'<text x="{x - 3:.1f}" y="{pad + 10}" font-size="10" fill="{SKIP}">x</text>')
        return out

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">',
        f'<text x="20" y="14" font-size="13" font-weight="bold">{title}</text>',
    ]
    parts += panel(20, [(h.loss, f'stroke="{PALETTE[0]}" stroke-width="1.5"')], "loss")
    parts += panel(
        40 + pw,
        [
            (h.norm_before, f'stroke="{BEFORE}" stroke-width="1"'),
            (h.norm_after, f'stroke="{AFTER}" stroke-width="1.5"'),
            (h.bound, f'stroke="{BOUND}" stroke-width="1.2" stroke-dasharray="4 3"'),
        ],
        "global norm: before (grey), after (blue), bound (orange)",
    )
    parts.append(
        f'<text x="20" y="{height - 12}" font-size="11" fill="#555">{len(h)} steps; '
        f"static view (run the notebook for the live lab)</text></svg>"
    )
    return "\n".join(parts)
