"""The live lab: widgets that steer a training run while it runs (:class:`Lab`), and the cliff's slider.

Needs ipywidgets, anywidget and plotly, which come with gradlab's ``lab`` extra: without them,
importing this room raises an ImportError that says so.
"""

from gradlab import _extras

for _module in ("plotly", "ipywidgets", "anywidget"):
    _extras.require(_module, "gradlab.lab (the live lab)", extra="lab")

from gradlab.lab.cliff import CliffExplorer  # noqa: E402
from gradlab.lab.lab import Lab, threshold_range  # noqa: E402

__all__ = ["CliffExplorer", "Lab", "threshold_range"]
