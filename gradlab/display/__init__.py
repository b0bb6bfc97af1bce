"""Display: Plotly figures of recorded histories, the live figure, and the HTML report.

- :mod:`~gradlab.display.plots`: loss, norm, clip-rate and per-layer figures, and
  :class:`~gradlab.display.plots.LiveFigure`, which the lab updates in place.
- :mod:`~gradlab.display.report`: ``python -m gradlab report``.
"""

from gradlab.display import plots

__all__ = ["plots"]
