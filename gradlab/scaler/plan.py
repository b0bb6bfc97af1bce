"""What one step's scaling measured and decided (:class:`Info`), and the scaling not yet applied (:class:`Plan`).

:meth:`gradlab.scaler.scaler.Scaler.plan` returns a :class:`Plan`; the instrumented update
(:mod:`gradlab.training.update`) applies it and records its :class:`Info`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

__all__ = ["Info", "Plan"]


class Info(NamedTuple):
    """What :meth:`Scaler.plan` measured on the way (float32 unless said).

    Attributes:
      norm: global norm of the incoming gradients. An ``IndexedSlices`` counts its
        rows as they come, a repeated index not summed, as Keras' clipping and
        ``tf.linalg.global_norm`` do (the statistics gradlab records sum them).
      squared_norms: vector, squared norm of each incoming gradient (0 for None).
      squared_norms_after: vector, squared norm of each scaled gradient.
      finite: bool scalar, whether the gradients are finite (under
        ``nonfinite="zero"``: once cleaned); False: the step is skipped. Whether
        the update goes ahead is :attr:`update` (a spike can skip a finite step).
      bound: the global-norm bound in force this step (the threshold for the
        fixed modes, the computed bound for AutoClip and ZClip; inf when none).
      mode: int32, the index in :data:`MODE_NAMES` of the mode in force (read
        once per step, so a change from another thread never splits a step).
      threshold: the threshold in force.
      spike: bool scalar, True when the spike rule (``skip_spikes``) skips this
        step (its gradients are finite); always False without a rule.
    """

    norm: tf.Tensor
    squared_norms: tf.Tensor
    squared_norms_after: tf.Tensor
    finite: tf.Tensor
    bound: tf.Tensor
    mode: tf.Tensor
    threshold: tf.Tensor
    spike: tf.Tensor = False

    @property
    def update(self) -> tf.Tensor:
        """bool scalar: whether the update goes ahead (finite gradients and no spike)."""
        static = tf.get_static_value(self.spike)
        if static is not None and not static:  # no spike rule: the step's graph is what it was without one
            return self.finite
        return tf.logical_and(self.finite, tf.logical_not(self.spike))


class Plan(NamedTuple):
    """One step's scaling, measured but not yet applied (:meth:`Scaler.plan`).

    ``info`` holds the norms and the decision; ``apply()`` builds the scaled
    gradients (a list like the input). A train step calls ``apply()`` inside
    the branch that updates the weights, so that under XLA the scaling fuses
    into the update, and on a skipped step nothing is computed.
    """

    info: Info
    apply: Callable[[], list]
