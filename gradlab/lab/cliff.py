"""The cliff with a live threshold: a slider that redraws the clipped descent (notebook 01).

``CliffExplorer()`` shows the loss surface of the one-unit RNN of Pascanu,
Mikolov & Bengio (2013, Figure 6), plain gradient descent over it and descent
with the gradient norm clipped at the slider's threshold, all from one start.
Moving the slider recomputes the clipped trajectory (about 20 ms: 60 steps of
the exact gradient, in numpy) and replaces that one trace's ``x`` and ``y``;
the surface and the plain trajectory are drawn once.

Without a widget front end (GitHub, nbviewer), the output carries the figure's
Plotly JSON beside the widget view, as the lab's does, and
``tools/run_notebooks.py`` adds a PNG of it.
"""

from __future__ import annotations

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go

from gradlab import _checks
from gradlab.display import plots
from gradlab.display.cliff import cliff_figure, trajectory_name
from gradlab.problems.recurrent import CLIFF, cliff_loss, cliff_surface, cliff_trajectory

__all__ = ["CliffExplorer"]

PLAIN = "plain gradient descent"
THRESHOLDS = (-1.0, 3.0)  # log10 range of the slider: 0.1 (barely moves in 60 steps) to 1000 (thrown like plain)


def _clipped_label(threshold: float) -> str:
    return f"clipped at {threshold:.3g}"


class CliffExplorer:
    """The cliff's surface, plain descent, and descent clipped at a threshold that a slider sets.

    Args:
      threshold: the clip threshold to start with (a norm; the slider spans 0.1 to 1000).
      points: grid points per axis of the surface.

    Attributes:
      slider: the ``FloatLogSlider`` of the threshold.
      figure: the ``go.FigureWidget`` (trace 0 the surface, 1 plain descent, 2 clipped descent, 3 the start).
      plain: plain descent's trajectory, a ``(steps + 1, 2)`` array of ``(w, b)``.
      clipped: the clipped descent's trajectory, the same shape.
      widget: what displays (the slider above the figure).
    """

    def __init__(self, threshold: float = 10.0, points: int = 121):
        threshold = _checks.python_number("threshold", threshold)
        points = _checks.size("points", points, low=2)
        self.surface = cliff_surface(points=points)
        self.plain = cliff_trajectory()
        self.clipped = cliff_trajectory(clip_threshold=threshold)
        log_t = float(np.log10(threshold))
        self.slider = w.FloatLogSlider(
            value=threshold,
            base=10,
            min=min(THRESHOLDS[0], log_t),
            max=max(THRESHOLDS[1], log_t),
            step=0.05,
            description="clip threshold",
            readout_format=".3g",
            style={"description_width": "initial"},
            layout=w.Layout(width="min(100%, 520px)"),
        )
        self.figure = go.FigureWidget(
            cliff_figure(
                self.surface,
                {PLAIN: self.plain, _clipped_label(threshold): self.clipped},
                title="The cliff: plain and clipped gradient descent from one start (move the slider)",
            )
        )
        self.slider.observe(self._redraw, "value")
        self.widget = w.VBox([self.slider, self.figure])

    @property
    def threshold(self) -> float:
        return float(self.slider.value)

    def final_loss(self, path=None) -> float:
        """The loss where a trajectory ends (the clipped one by default)."""
        path = self.clipped if path is None else np.asarray(path, np.float64)
        return float(cliff_loss(*path[-1]))

    def _redraw(self, change) -> None:
        threshold = float(change["new"])
        self.clipped = cliff_trajectory(clip_threshold=threshold)
        w_range, b_range = CLIFF["w_range"], CLIFF["b_range"]
        with self.figure.batch_update():
            trace = self.figure.data[2]
            trace.x, trace.y = self.clipped[:, 0], self.clipped[:, 1]
            trace.name = trajectory_name(_clipped_label(threshold), self.clipped, w_range, b_range)

    def _repr_mimebundle_(self, **kwargs):
        # Without a kernel the widget view shows nothing; the figure's JSON beside it does (see Lab).
        note = f"clipped at {self.threshold:.3g}: a static copy (run the notebook for the slider)"
        return plots.widget_bundle(self.widget, self.figure, note=note, text=repr(self), **kwargs)

    def __repr__(self):
        return f"CliffExplorer(threshold={self.threshold:.3g})"
