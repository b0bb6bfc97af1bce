"""The scaler: scaling modes by name, with live controls, composition and non-finite policy.

- :mod:`~gradlab.scaler.modes`: every mode, one record each (name, threshold, ranges).
- :mod:`~gradlab.scaler.scaler`: :class:`Scaler`, a mode whose name and threshold
  live in a ``tf.Variable`` (a slider changes them without a retrace).
- :mod:`~gradlab.scaler.plan`: :class:`Info` and :class:`Plan`, what one step measured and decided.
- :mod:`~gradlab.scaler.compose`: :class:`Chain` and :class:`Selective`.
- :mod:`~gradlab.scaler.spike`: :class:`SkipSpikes`, skip the update of a step whose norm (or loss) spikes.
"""

from gradlab.scaler.compose import Chain, Selective
from gradlab.scaler.modes import MODE_NAMES, MODES, NONFINITE_POLICIES, Mode
from gradlab.scaler.plan import Info, Plan
from gradlab.scaler.scaler import Scaler
from gradlab.scaler.spike import SkipSpikes

__all__ = [
    "MODES",
    "MODE_NAMES",
    "NONFINITE_POLICIES",
    "Chain",
    "Info",
    "Mode",
    "Plan",
    "Scaler",
    "Selective",
    "SkipSpikes",
]
