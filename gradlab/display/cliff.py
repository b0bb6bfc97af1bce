"""The cliff of a one-unit RNN (Pascanu, Mikolov & Bengio 2013, Figure 6), drawn with Plotly.

:func:`cliff_figure` draws the loss surface that
:func:`gradlab.problems.recurrent.cliff_surface` computes, as a contour of
log10 of the loss, and gradient-descent trajectories from
:func:`gradlab.problems.recurrent.cliff_trajectory` over it, all from the
same start. The axes keep the grid's range: a trajectory thrown off the map
leaves the frame, and its legend entry says where it ended.

For a live threshold, wrap the figure in a ``go.FigureWidget`` and assign the
clipped trace's ``x`` and ``y`` inside ``batch_update()`` (notebook 01 does).

This module reads numbers only; it never trains.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from gradlab import _checks
from gradlab.display.style import LIVE, RUNS
from gradlab.problems.recurrent import checked_path, on_map

__all__ = ["cliff_figure", "trajectory_name"]

_SURFACE = "the (w, b, loss) triple that gradlab.problems.recurrent.cliff_surface returns"


def _surface(surface):
    if not isinstance(surface, (tuple, list)) or len(surface) != 3:
        raise _checks._fail("surface", _SURFACE, surface)
    w, b, loss = (np.asarray(a, np.float64) for a in surface)
    if w.ndim != 1 or b.ndim != 1 or loss.shape != (len(b), len(w)) or len(w) < 2 or len(b) < 2:
        raise ValueError(
            f"Argument `surface` must be {_SURFACE}: loss of shape (len(b), len(w)). Received: w of shape "
            f"{w.shape}, b of shape {b.shape}, loss of shape {loss.shape}"
        )
    return w, b, loss


def trajectory_name(label: str, path, w_range, b_range) -> str:
    """The legend entry of a trajectory: ``label``, and where it ended if that is off the map (see ``on_map``)."""
    p = checked_path("path", path)
    if on_map(p, w_range, b_range):
        return label
    finite = p[np.isfinite(p).all(axis=1)]
    if not len(finite):
        return f"{label} (no finite point)"
    where = "ends off the map at" if len(finite) == len(p) else "thrown beyond float64 after"
    return f"{label} ({where} w={finite[-1][0]:.3g}, b={finite[-1][1]:.3g})"


def cliff_figure(surface, trajectories: dict | None = None, *, title: str | None = None) -> go.Figure:
    """The loss surface of the one-unit RNN as a contour of log10(loss), with trajectories over it.

    Args:
      surface: ``(w, b, loss)`` from :func:`gradlab.problems.recurrent.cliff_surface`.
      trajectories: ``{label: path}``, each path a ``(steps + 1, 2)`` array of
        ``(w, b)`` from :func:`gradlab.problems.recurrent.cliff_trajectory`
        (plain descent first, then clipped ones, by convention). Their common
        start is marked once.
      title: the figure's title (a default names the model).

    Returns:
      A ``go.Figure``: trace 0 the contour, then one line per trajectory, then the start.
    """
    w, b, loss = _surface(surface)
    trajectories = {} if trajectories is None else trajectories
    if not isinstance(trajectories, dict):
        raise _checks._fail("trajectories", "a dict {label: path of (w, b) rows}", trajectories)
    paths = {
        _checks.text("trajectories label", k): checked_path(f"trajectories[{k!r}]", v) for k, v in trajectories.items()
    }
    starts = {tuple(p[0]) for p in paths.values()}
    if len(starts) > 1:
        raise ValueError(
            "Argument `trajectories` must hold paths from one start, so that they can be compared. "
            f"Received: starts {sorted(starts)}"
        )
    with np.errstate(divide="ignore"):
        z = np.log10(np.maximum(loss, 1e-12))
    w_range, b_range = (float(w[0]), float(w[-1])), (float(b[0]), float(b[-1]))
    fig = go.Figure(
        go.Contour(
            x=w,
            y=b,
            z=z,
            colorscale="Viridis",
            ncontours=30,
            line=dict(width=0.5),
            colorbar=dict(title=dict(text="log10 loss"), x=1.02),
            hovertemplate="w %{x:.2f}, b %{y:.2f}<br>log10 loss %{z:.2f}<extra></extra>",
            name="loss surface",
            showlegend=False,
        )
    )
    for i, (label, p) in enumerate(paths.items()):
        fig.add_trace(
            go.Scatter(
                x=p[:, 0],
                y=p[:, 1],
                mode="lines+markers",
                line=dict(color=RUNS[i % len(RUNS)], width=2),
                marker=dict(size=4),
                name=trajectory_name(label, p, w_range, b_range),
                hovertemplate="step %{pointNumber}: w %{x:.3f}, b %{y:.3f}<extra></extra>",
            )
        )
    if starts:
        ((w0, b0),) = starts
        fig.add_trace(
            go.Scatter(
                x=[w0], y=[b0], mode="markers", marker=dict(color=LIVE["loss"], size=11, symbol="x"), name="start"
            )
        )
    fig.update_layout(
        title=dict(text=title or "The cliff: loss of the one-unit RNN x_t = w·sigmoid(x_(t-1)) + b"),
        template="plotly_white",
        xaxis=dict(title=dict(text="recurrent weight w"), range=list(w_range)),
        yaxis=dict(title=dict(text="bias b"), range=list(b_range)),
        legend=dict(orientation="h", yanchor="top", y=-0.15, x=0),
        height=560,
        margin=dict(t=60, b=140),
    )
    return fig
