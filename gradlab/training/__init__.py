"""Training: instrumented steps that record every statistic from the real gradients.

- :mod:`~gradlab.training.trainer`: :class:`Trainer`, a compiled custom step.
- :mod:`~gradlab.training.optimizer`: :class:`ScaledOptimizer`, for ``model.fit``.
- :mod:`~gradlab.training.callbacks`: :class:`GradientStats`, the ``model.fit`` callback.
- :mod:`~gradlab.training.compare`: :func:`compare`, one run per mode.
- :mod:`~gradlab.training.recording` and :mod:`~gradlab.training.history`: the
  in-graph recorder and the :class:`History` it fills.
- :mod:`~gradlab.training.problems`: small seeded problems that ship with gradlab.
- :mod:`~gradlab.training.inspect`: compare gradients and weights (:func:`max_diff`,
  :func:`distance`, :func:`cosine`, :func:`flatten`, :func:`diff_text`) and read what a Keras
  optimizer really applied (:func:`applied_gradient`).
"""

from gradlab.training import problems
from gradlab.training.callbacks import GradientStats
from gradlab.training.compare import compare
from gradlab.training.history import History
from gradlab.training.inspect import applied_gradient, cosine, diff_text, distance, flatten, max_diff
from gradlab.training.optimizer import ScaledOptimizer
from gradlab.training.trainer import Trainer, setup

__all__ = [
    "GradientStats",
    "History",
    "ScaledOptimizer",
    "Trainer",
    "applied_gradient",
    "compare",
    "cosine",
    "diff_text",
    "distance",
    "flatten",
    "max_diff",
    "problems",
    "setup",
]
