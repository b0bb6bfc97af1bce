"""Training: the instrumented step, which records every statistic from the real gradients.

- :mod:`~gradlab.training.trainer`: :class:`Trainer`, a compiled custom step; the
  checks of its inputs (:mod:`~gradlab.training.inputs`), its held-out evaluation
  (:mod:`~gradlab.training.evaluation`) and progress display (:mod:`~gradlab.training.progress`).
- :mod:`~gradlab.training.optimizer`: :class:`ScaledOptimizer`, for ``model.fit``, and
  :class:`RecordingLossScaleOptimizer`, to record the loss under mixed precision too.
- :mod:`~gradlab.training.callbacks`: :class:`GradientStats`, the ``model.fit`` callback.
- :mod:`~gradlab.training.update`: the update itself (scale, apply, measure).
- :mod:`~gradlab.training.recording` and :mod:`~gradlab.training.history`: the
  in-graph recorder and the :class:`History` it fills.
- :mod:`~gradlab.training.per_example`: the per-example step (DP-SGD's clipping).
- :mod:`~gradlab.training.optimizers`: Keras optimizers by name.

The problems that ship with gradlab are in :mod:`gradlab.problems`; comparing runs and the
advisor in :mod:`gradlab.explore`.
"""

from gradlab.training.callbacks import GradientStats
from gradlab.training.history import History
from gradlab.training.optimizer import RecordingLossScaleOptimizer, ScaledOptimizer
from gradlab.training.trainer import Trainer, setup

__all__ = ["GradientStats", "History", "RecordingLossScaleOptimizer", "ScaledOptimizer", "Trainer", "setup"]
