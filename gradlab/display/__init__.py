"""Display: Plotly figures of recorded histories, the live figure, and the HTML report.

- :mod:`~gradlab.display.plots`: loss, norm, clip-rate and per-layer figures of finished
  runs (``gradlab.plots``, which carries the live figure's names too).
- :mod:`~gradlab.display.live`: :class:`~gradlab.display.live.LiveFigure`, which the lab
  updates in place, and the display bundle of a live view with its static copy.
- :mod:`~gradlab.display.panels`: what the static and the live figures share.
- :mod:`~gradlab.display.report`: ``python -m gradlab report``.
- :mod:`~gradlab.display.advice`: the advisor's figures (:func:`advice_figure`,
  :func:`verification_figure`).

Needs plotly and pandas, which come with gradlab's ``plots`` extra (and its ``lab`` extra):
without them, importing this room raises an ImportError that says so.
"""

from gradlab import _extras

_extras.require("plotly", "gradlab.display (the figures and the report)")

from gradlab.display import plots, report  # noqa: E402
from gradlab.display.advice import advice_figure, verification_figure  # noqa: E402

__all__ = ["advice_figure", "plots", "report", "verification_figure"]
