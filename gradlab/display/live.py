"""The live figure: a ``go.FigureWidget`` overview of one run that the lab updates in
place (:class:`LiveFigure`), and the display bundle that carries a static copy of a live
view for where no kernel runs (:func:`widget_bundle`, :func:`static_figure`).

The static figures of finished runs are in :mod:`gradlab.display.plots`.
"""

from __future__ import annotations

import html
import json
import math
import time

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from gradlab import _checks, _internals
from gradlab.display.panels import (
    SKIPPED,
    SPIKED,
    STRIP_Y,
    as_histories,
    check_window,
    clip_rate,
    diverged_marks,
    finite,
    gaps,
    kept,
    nonfinite_steps,
    one_history,
    panel_axes,
    panel_titles,
    short,
    skip_strip,
    spike_strip,
)
from gradlab.display.style import COMPARED, LIVE, SKIP, SPIKE, decade_range, log_axis, run_color
from gradlab.training.history import History

__all__ = ["LiveFigure", "overlay_label", "static_figure", "widget_bundle"]


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
        SPIKED: (SPIKE, 3),
    }

    def __init__(self, window: int = 20, height: int = 600, max_points: int = 1000, patience: float = 2.0):
        self.window = check_window(window)
        _checks.python_number("height", height, low=10, low_open=False)  # plotly's least height
        self.max_points = _checks.size("max_points", max_points)
        _checks.python_number("patience", patience, low=0, low_open=False)
        self.patience = patience
        self._sent = self._drawn = -math.inf  # when the last frame was sent, and reported drawn
        self._took = 0.0  # how long the browser took to draw the last frame
        fig = make_subplots(
            rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07, subplot_titles=panel_titles(self.window, True)
        )
        for name, (color, row) in self.TRACES.items():
            if name == SKIPPED:
                trace = skip_strip([], legend="legend")
            elif name == SPIKED:
                trace = spike_strip([], legend="legend")
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
        panel_axes(fig, True)
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
        loss = [kept(h, h.loss), h.val_loss] + [kept(o, o.loss) for o in self._overlays]
        norm = [kept(h, h.norm_before), kept(h, h.norm_after), kept(h, h.bound)]
        norm += [kept(o, o.norm_after) for o in self._overlays]
        names = ["this run"] + [o.label for o in self._overlays]
        marks = diverged_marks(runs, names, [LIVE["loss"], *self._overlay_colors], rows=(1, 2))
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
        h = one_history(h, "h")
        keep = _thin(len(h), self.max_points)
        x = h.steps[keep].astype(np.int32)
        skipped = nonfinite_steps(h).astype(np.int32)
        spiked = h.steps[h.spiked].astype(np.int32)
        ran = len(h) > 0
        series = {  # trace name: (y, shown in the legend); the traces are found by name
            "loss": (h.loss, ran),
            "norm before clipping": (h.norm_before, ran),
            "norm after clipping": (h.norm_after, ran),
            "threshold / bound": (h.bound, bool(np.isfinite(h.bound).any())),
            SKIPPED: (None, bool(len(skipped))),
            "clip rate": (clip_rate(h, self.window), ran),
            SPIKED: (None, bool(len(spiked))),
        }
        view = self._layout_view(h)
        edit, sent = _internals.edit_id(self.widget), self._sent
        with self.widget.batch_update():
            live = {trace.name: trace for trace in self.widget.data[: self._n_live]}
            for name, (y, show) in series.items():
                trace = live[name]
                if y is None:  # skipped steps: the strip along the top of the clip-rate panel
                    marks = spiked if name == SPIKED else skipped
                    trace.x, trace.y = marks, np.full(len(marks), STRIP_Y)
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
    def overlay_colors(self) -> list[str]:
        """The colour of each overlaid run, in the order :meth:`overlay` got them (empty without overlays)."""
        return list(self._overlay_colors)

    def overlay(self, histories) -> None:
        """Add finished runs (loss and post-scaling norm) for comparison; replaces earlier overlays.

        Each run gets a colour of :data:`~gradlab.display.style.COMPARED` (none of the live
        run's) and one entry in the "compared modes" legend, named by its label.
        """
        hs = as_histories(histories)
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
            f"Argument `figure` must be a plotly go.Figure or go.FigureWidget. Received: figure={short.repr(figure)}"
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
            f"Received: widget={short.repr(widget)}"
        )
    spec = static_figure(figure, note=note)
    text = _checks.text("text", text)
    bundle = widget._repr_mimebundle_(**kwargs)
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    data["application/vnd.plotly.v1+json"] = spec
    if text:
        data["text/plain"] = text
    return bundle
