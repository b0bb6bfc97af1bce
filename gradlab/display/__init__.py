"""Display: Plotly figures of recorded histories, the live figure, and the HTML report.

- :mod:`~gradlab.display.plots`: loss, norm, clip-rate and per-layer figures of finished
  runs (``gradlab.plots``, which carries the live figure's names too).
- :mod:`~gradlab.display.live`: :class:`~gradlab.display.live.LiveFigure`, which the lab
  updates in place, and the display bundle of a live view with its static copy.
- :mod:`~gradlab.display.panels`: what the static and the live figures share.
- :mod:`~gradlab.display.report`: ``python -m gradlab report``.
"""

from gradlab.display import plots

__all__ = ["plots"]
