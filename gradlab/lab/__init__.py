"""The live lab: widgets that steer a training run while it runs (:class:`Lab`)."""

from gradlab.lab.lab import Lab, threshold_range

__all__ = ["Lab", "threshold_range"]
