"""Figures of the threshold advisor: what the probe measured, and what verification found.

- :func:`advice_figure`: the probe's global norm per step with the recommended
  thresholds drawn on it, their histogram after warm-up, and each layer's norms
  early against later.
- :func:`verification_figure`: loss against threshold with error bars over seeds
  (a threshold sweep), unclipped as a band.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gradlab import _checks
from gradlab.display import style
from gradlab.display.plots import PALETTE, SKIP, finite
from gradlab.explore.advise import Advice, Verification

__all__ = ["advice_figure", "verification_figure"]

_LINES = {"global_norm": "#d62728", "norm": "#9467bd"}


def advice_figure(advice: Advice, height: int = 720) -> go.Figure:
    """The probe's norms with the recommended thresholds, as three panels.

    Top: the global gradient norm per step (warm-up shaded, spikes marked, the
    ``global_norm`` recommendation as a line). Bottom left: the histogram of the
    global norms after warm-up (log bins) with the recommendation. Bottom right:
    each layer's median norm early and later, with its p99 later.
    """
    if not isinstance(advice, Advice):
        raise _checks._fail("advice", "a gradlab Advice (from gradlab.advise)", advice)
    height = _checks.size("height", height, low=200)
    h = advice.history
    fig = make_subplots(
        rows=2,
        cols=2,
        specs=[[{"colspan": 2}, None], [{}, {}]],
        vertical_spacing=0.16,
        horizontal_spacing=0.12,
        subplot_titles=(
            "global gradient norm per probe step (no clipping)",
            f"global norms after warm-up (steps {advice.warmup}-{len(h) - 1})",
            "per-layer gradient norm",
        ),
    )
    norms = advice.norms
    fig.add_scatter(x=h.steps.tolist(), y=finite(norms), name="global norm", line=dict(color=PALETTE[0]), row=1, col=1)
    if advice.spikes:
        fig.add_scatter(
            x=[s[0] for s in advice.spikes],
            y=[s[1] for s in advice.spikes],
            mode="markers",
            name="spike",
            marker=dict(color=SKIP, size=9, symbol="triangle-up"),
            row=1,
            col=1,
        )
    if len(advice.nonfinite_steps):
        top = float(np.nanmax(norms)) if np.isfinite(norms).any() else 1.0
        fig.add_scatter(
            x=advice.nonfinite_steps.tolist(),
            y=[top] * len(advice.nonfinite_steps),
            mode="markers",
            name="non-finite (skipped)",
            marker=dict(color=SKIP, size=9, symbol="x"),
            row=1,
            col=1,
        )
    if advice.warmup:
        fig.add_vrect(x0=-0.5, x1=advice.warmup - 0.5, fillcolor="#bbbbbb", opacity=0.25, line_width=0, row=1, col=1)
    for mode in ("global_norm", "norm"):
        r = advice.recommendation(mode)
        if math.isfinite(r.threshold) and mode == "global_norm":
            fig.add_hline(
                y=r.threshold,
                line=dict(color=_LINES[mode], dash="dash"),
                annotation_text=f"{mode} {r.threshold:.3g} (clips {r.clip_rate:.0%})",
                annotation_position="top left",
                row=1,
                col=1,
            )
    rest = norms[advice.history.steps >= advice.warmup]  # the steps after the warm-up
    rest = rest[np.isfinite(rest) & (rest > 0)]
    if rest.size:
        lo, hi = float(rest.min()), float(rest.max())
        edges = np.geomspace(lo, hi * (1 + 1e-9), 26) if hi > lo else np.array([lo * 0.9, lo * 1.1])
        counts, _ = np.histogram(rest, bins=edges)
        fig.add_scatter(
            x=edges.tolist(),
            y=[*counts.tolist(), int(counts[-1])],
            mode="lines",
            line=dict(shape="hv", color=PALETTE[2]),
            fill="tozeroy",
            name="steps per bin",
            showlegend=False,
            row=2,
            col=1,
        )
        g = advice.recommendation("global_norm")
        if math.isfinite(g.threshold):
            fig.add_vline(x=g.threshold, line=dict(color=_LINES["global_norm"], dash="dash"), row=2, col=1)
    early, later = advice.layer_stats("early"), advice.layer_stats("rest")
    names = list(h.layer_names)
    fig.add_bar(
        x=names, y=[early[n]["median"] for n in names], name="median, early", marker_color=PALETTE[1], row=2, col=2
    )
    fig.add_bar(
        x=names, y=[later[n]["median"] for n in names], name="median, later", marker_color=PALETTE[4], row=2, col=2
    )
    fig.add_scatter(
        x=names,
        y=[later[n]["p99"] for n in names],
        mode="markers",
        name="p99, later",
        marker=dict(color=PALETTE[3], symbol="line-ew-open", size=18, line=dict(width=3)),
        row=2,
        col=2,
    )
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_yaxes(title_text="global norm", **style.log_axis(), row=1, col=1)
    fig.update_xaxes(title_text="global norm", **style.log_axis(), row=2, col=1)
    fig.update_yaxes(title_text="steps", row=2, col=1)
    fig.update_xaxes(title_text="layer", row=2, col=2)
    fig.update_yaxes(title_text="gradient norm", **style.log_axis(), row=2, col=2)
    fig.update_layout(
        title=f"Gradient norms of {advice.problem.name!r} ({advice.optimizer}) and the recommended threshold",
        barmode="group",
        height=height,
        template="plotly_white",
        margin=dict(t=90),
    )
    return fig


def verification_figure(verification: Verification, height: int = 420) -> go.Figure:
    """Loss against threshold, mean with error bars (one standard deviation over seeds) and each seed's value.

    Unclipped is the grey band (mean ± std) and line. With validation data the
    validation loss is compared (and, for a classification loss, the accuracy
    in a second panel); without, the mean training loss of the last steps.
    """
    if not isinstance(verification, Verification):
        raise _checks._fail("verification", "a gradlab Verification (from Advice.verify)", verification)
    height = _checks.size("height", height, low=200)
    v = verification
    metrics = [v.metric]
    if all(np.isfinite(r["val_accuracy"]) for r in v.rows):
        metrics.append("val_accuracy")
    words = {"val_loss": "validation loss", "final_loss": "training loss (last steps)", "val_accuracy": "accuracy"}
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[words[m] for m in metrics], horizontal_spacing=0.12)
    clipped = list(v.runs[1:])
    thresholds = [next(r["threshold"] for r in v.rows if r["run"] == run) for run in clipped]
    order = np.argsort(thresholds)
    xs = [float(thresholds[i]) for i in order]
    for col, metric in enumerate(metrics, start=1):
        base = v.spread(v.runs[0], metric)
        std0 = 0.0 if math.isnan(base["std"]) else base["std"]
        span = [min(xs) / 1.3, max(xs) * 1.3]
        fig.add_scatter(
            x=[span[0], span[1], span[1], span[0]],
            y=[base["mean"] - std0, base["mean"] - std0, base["mean"] + std0, base["mean"] + std0],
            fill="toself",
            fillcolor="rgba(150,150,150,0.25)",
            line=dict(width=0),
            name="unclipped ± std",
            showlegend=col == 1,
            hoverinfo="skip",
            row=1,
            col=col,
        )
        fig.add_scatter(
            x=span,
            y=[base["mean"]] * 2,
            mode="lines",
            line=dict(color="#666666", dash="dot"),
            name="unclipped (mean)",
            showlegend=col == 1,
            row=1,
            col=col,
        )
        spreads = [v.spread(clipped[i], metric) for i in order]
        fig.add_scatter(
            x=xs,
            y=[s["mean"] for s in spreads],
            error_y=dict(type="data", array=[0.0 if math.isnan(s["std"]) else s["std"] for s in spreads]),
            mode="lines+markers",
            line=dict(color=PALETTE[0]),
            name=f"{v.mode}: mean ± std over {len(v.seeds)} seeds",
            showlegend=col == 1,
            row=1,
            col=col,
        )
        for i in order:
            values = v.values(clipped[i], metric)
            fig.add_scatter(
                x=[float(thresholds[i])] * len(values),
                y=values.tolist(),
                mode="markers",
                marker=dict(color=PALETTE[5], size=5, opacity=0.45),
                name="one seed",
                showlegend=bool(col == 1 and i == order[0]),
                row=1,
                col=col,
            )
        fig.add_vline(x=v.recommended, line=dict(color="#d62728", dash="dash"), row=1, col=col)
        fig.update_xaxes(title_text=f"{v.mode} threshold", **style.log_axis(), row=1, col=col)
        fig.update_yaxes(title_text=words[metric], row=1, col=col)
    fig.update_layout(
        title=f"Does clipping help? {len(v.seeds)} seeds per threshold, identical weights and data order per seed "
        f"(recommended {v.recommended:.3g}, dashed)",
        height=height,
        template="plotly_white",
        margin=dict(t=90),
    )
    return fig
