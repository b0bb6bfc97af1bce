"""Plotly figures of recorded histories: loss, norms with the threshold in force,
clip rate, per-layer norm heatmaps, and overlays of several runs.

Every function returns a ``go.Figure``. Non-finite values (skipped steps) are
never drawn as ordinary points: they leave a gap in the lines and get a red
marker of their own (red is for skipped steps only).

Every figure has a title and a title on every axis it labels; log axes show
powers of ten; y ranges hold the runs that stay finite (a diverged run is marked
at the top edge). Colours and axes come from :mod:`gradlab.display.style`.

The live figure that the lab updates in place, :class:`~gradlab.display.live.LiveFigure`,
and the bundles of live views (:func:`~gradlab.display.live.widget_bundle`) are in
:mod:`gradlab.display.live`; ``gradlab.plots`` carries them too. What both kinds of
figure share is in :mod:`gradlab.display.panels`.

This module reads :class:`~gradlab.training.history.History` only; it never trains.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gradlab import _checks
from gradlab.display.live import LiveFigure, overlay_label, static_figure, widget_bundle
from gradlab.display.panels import (
    SKIPPED,
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
    skip_strip,
    spike_markers,
    spike_strip,
)
from gradlab.display.style import LIVE, RUNS, SKIP, decade_range, log_axis, run_color
from gradlab.training.history import History

__all__ = [
    "LiveFigure",
    "PALETTE",
    "SKIP",
    "SKIPPED",
    "clip_rate",
    "clip_rate_figure",
    "finite",
    "gaps",
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


def _skip_markers(h: History, y_level: float, name=SKIPPED, showlegend=True, **kw):
    steps = nonfinite_steps(h)
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


def _top(values, default=1.0):
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.max()) if v.size else default


def _finish(fig: go.Figure, title: str, **layout) -> go.Figure:
    fig.update_layout(title=dict(text=title), template="plotly_white", **layout)
    return fig


def loss_figure(histories, log_y: bool = True) -> go.Figure:
    """Training loss per step, one line per run.

    The y range holds the runs that stay finite; a run that diverged is marked at the
    top edge (▲) from the step it left the axis.
    """
    hs, log_y = as_histories(histories), _checks.boolean("log_y", log_y)
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
        fig.update_yaxes(**log_axis(decade_range([kept(h, h.loss) for h in hs])))
        fig.update_layout(annotations=diverged_marks(hs, names, colors, rows=(1,)))
    return fig


def norm_figure(history: History, log_y: bool = True) -> go.Figure:
    """Global gradient norm before and after scaling, with the bound in force.

    The bound is drawn as a step line that follows every change of threshold
    (and the bound AutoClip/ZClip computed); skipped steps are red crosses (spikes the
    spike rule skipped: magenta circles at their own norm).
    Entries that would draw nothing (no bound in mode ``none``, no skipped step)
    are left out of the legend.
    """
    h, log_y = one_history(history), _checks.boolean("log_y", log_y)
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
        held = [kept(h, h.norm_before), kept(h, h.norm_after), kept(h, h.bound)]
        fig.update_yaxes(**log_axis(decade_range(held)))
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
    ] + ([spike_markers(h, showlegend=showlegend)] if h.spiked.any() else [])


def clip_rate_figure(histories, window: int = 20) -> go.Figure:
    """Rolling clip rate (fraction of steps where scaling changed the gradients)."""
    hs, window = as_histories(histories), check_window(window)
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
    h = one_history(history)
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


def overview(histories, window: int = 20, log_loss: bool = True) -> go.Figure:
    """Loss, global norms and clip rate in one figure.

    One run: norms before and after with the bound, skipped steps as a red strip on
    the clip-rate panel (red ticks for non-finite steps, magenta triangles for skipped spikes),
    validation loss when recorded. Several runs: their losses,
    post-scaling norms and clip rates overlaid, one colour per run (one legend entry
    each). The y ranges hold the runs that stay finite; a run that diverged is marked
    at the top edge (▲).
    """
    hs, window, log_loss = as_histories(histories), check_window(window), _checks.boolean("log_loss", log_loss)
    one = len(hs) == 1
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        subplot_titles=panel_titles(window, one),
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
        fig.add_trace(skip_strip(nonfinite_steps(h)), row=3, col=1)
        if h.spiked.any():
            fig.add_trace(spike_strip(h.steps[h.spiked]), row=3, col=1)
        loss_range = decade_range([kept(h, h.loss), h.val_loss])
        norm_range = decade_range([kept(h, h.norm_before), kept(h, h.norm_after), kept(h, h.bound)])
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
        skipped = np.unique(np.concatenate([nonfinite_steps(h) for h in hs]))
        if skipped.size:
            fig.add_trace(skip_strip(skipped), row=3, col=1)
        spiked = np.unique(np.concatenate([h.steps[h.spiked] for h in hs]))
        if spiked.size:
            fig.add_trace(spike_strip(spiked), row=3, col=1)
        loss_range = decade_range([kept(h, h.loss) for h in hs])
        norm_range = decade_range([kept(h, h.norm_after) for h in hs])
    panel_axes(fig, log_loss, loss_range, norm_range)
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
    for mark in diverged_marks(hs, names, colors, rows=(1, 2)):
        fig.add_annotation(mark)
    return fig
