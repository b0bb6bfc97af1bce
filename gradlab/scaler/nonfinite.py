"""The policy for non-finite gradients, around any transform (as optax's ``apply_if_finite``).

* ``"skip"`` (default): report the step as not finite and decide nothing; the
  optimizer wrapper and gradlab's train step then skip the update, leaving the
  weights and optimizer slots as they were, as Keras' ``LossScaleOptimizer``
  does. Training goes on; the skipped step is counted and recorded.
* ``"zero"``: replace non-finite entries by 0, then scale the rest.
* ``"raise"``: stop with an error naming the variables whose gradients are not finite.

"skip" is the default because it is the only policy that never harms the
weights and never throws away a long run: one bad batch costs one step. The
default of ``tf.clip_by_global_norm`` (every entry becomes NaN) is not offered.

Whatever the policy, a transform only ever decides on finite gradients: AutoClip
and ZClip never see a non-finite norm.
"""

from __future__ import annotations

import math

import tensorflow as tf

from gradlab import _checks
from gradlab.scaler.modes import NONFINITE_POLICIES, Measured
from gradlab.scaling.kernels import squared_norm

__all__ = ["NonFinite", "measure"]


def measure(values, variables=None) -> Measured:
    """Squared norms of ``values`` (one pass), their global norm and whether it is finite."""
    squared = tf.stack([squared_norm(v) for v in values])
    norm = tf.sqrt(tf.reduce_sum(squared))
    return Measured(list(values), squared, norm, tf.math.is_finite(norm), variables)


class NonFinite:
    """Apply one of :data:`NONFINITE_POLICIES` around a transform's decision."""

    def __init__(self, policy: str = "skip"):
        self.policy = _checks.choice("nonfinite", policy, NONFINITE_POLICIES, what="nonfinite policy")

    def guard(self, m: Measured, names: list) -> Measured:
        """``m`` as the transform may see it: checked ("raise") or cleaned ("zero")."""
        if self.policy == "raise":
            checked = _raise_if_nonfinite(m, names)
            if checked is None:
                return m
            with tf.control_dependencies([checked]):  # in a graph: nothing of the step runs before the check
                return Measured(
                    [tf.identity(v) for v in m.values],
                    tf.identity(m.squared),
                    tf.identity(m.norm),
                    tf.identity(m.finite),
                    m.variables,
                )
        if self.policy == "zero":
            return _zero_nonfinite(m)
        return m

    def decide(self, m: Measured, decide, skipped, go=None):
        """``decide(m)`` on a finite step, ``skipped(m)`` on the others (one ``tf.cond``).

        ``go``: the step goes ahead (default ``m.finite``; a spike rule can skip a finite step).
        """
        return tf.cond(m.finite if go is None else go, lambda: decide(m), lambda: skipped(m))


def _raise_if_nonfinite(m: Measured, names):
    if tf.executing_eagerly():
        if not bool(m.finite):
            bad = [n for n, s in zip(names, m.squared.numpy()) if not math.isfinite(float(s))] or names
            raise FloatingPointError(
                "Non-finite gradients (nonfinite='raise') for: " + ", ".join(bad) + ". "
                "Use nonfinite='skip' to skip such steps or 'zero' to zero the bad entries."
            )
        return None
    bad = tf.boolean_mask(tf.constant(names), tf.logical_not(tf.math.is_finite(m.squared)))
    return tf.debugging.Assert(m.finite, ["Non-finite gradients (nonfinite='raise') for:", bad], summarize=50)


def _zero_nonfinite(m: Measured) -> Measured:
    def keep():
        return list(m.values), m.squared, m.norm

    def clean():
        new = [tf.where(tf.math.is_finite(v), v, tf.zeros_like(v)) for v in m.values]
        new_sq = tf.stack([squared_norm(v) for v in new])
        return new, new_sq, tf.sqrt(tf.reduce_sum(new_sq))

    values, squared, norm = tf.cond(m.finite, keep, clean)
    return Measured(values, squared, norm, tf.math.is_finite(norm), m.variables)  # False only if squares overflow
