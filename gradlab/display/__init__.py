"""Display: Plotly figures of recorded histories, the live figure, and the HTML report.

- :mod:`~gradlab.display.plots`: loss, norm, clip-rate and per-layer figures, and the live
  figure that the lab updates in place.
- :mod:`~gradlab.display.advice`: the advisor's figures (:func:`advice_figure`,
  :func:`verification_figure`).
- :mod:`~gradlab.display.report`: the HTML report (``python -m gradlab report``).

Needs plotly and pandas, which come with gradlab's ``plots`` extra (and its ``lab`` extra):
without them, importing this room raises an ImportError that says so.
"""

from gradlab import _extras

_extras.require("plotly", "gradlab.display (the figures and the report)")

from gradlab.display import plots, report  # noqa: E402
from gradlab.display.advice import advice_figure, verification_figure  # noqa: E402

__all__ = ["advice_figure", "plots", "report", "verification_figure"]
