"""The live lab: widgets that steer a training run while it runs (:class:`Lab`), and the cliff's slider."""

from gradlab.lab.cliff import CliffExplorer
from gradlab.lab.lab import Lab, threshold_range

__all__ = ["CliffExplorer", "Lab", "threshold_range"]
