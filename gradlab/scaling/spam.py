"""SPAM's spike-aware clipping: entries far above their second moment are clipped to it.

SPAM (Huang et al. 2025) keeps Adam's second moment :math:`v` of each entry and,
once enough steps have passed since the last reset of the moments, clips every entry
with :math:`g^2 > \\theta v` to :math:`\\mathrm{sign}(g)\\sqrt{\\theta v}`. Here the
clipping is a transform with its own :math:`v` (an EMA of the clipped gradients'
squares with ``beta2``), so it can run in front of any optimizer; in front of Adam
with the same ``beta2`` its :math:`v` is Adam's.
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _checks
from gradlab._state import state_variable

__all__ = ["SpikeAwareClip"]


class SpikeAwareClip:
    r"""Clip gradient entries whose square exceeds ``threshold`` times their second moment.

    At step :math:`t` (from 1): every ``update_proj_gap`` steps (:math:`t` a multiple
    of it) :math:`v` is reset to 0, as SPAM resets its moments. When
    :math:`t \ge` ``grad_accu_steps`` and :math:`t \bmod` ``update_proj_gap`` :math:`\ge`
    ``grad_accu_steps``, each entry with :math:`g^2 > \theta v` becomes
    :math:`\mathrm{sign}(g)\sqrt{\theta v}` (``threshold = 0`` turns clipping off). Then
    :math:`v \leftarrow \beta_2 v + (1 - \beta_2) g^2` with the clipped :math:`g`.

    This is the clipping step of pytorch_optimizer's ``SPAM`` optimizer with
    ``density=1`` (every entry updated); SPAM's sparse masks, cosine warm-up after a
    reset and Adam step are the optimizer's part. The second moment is float32,
    one entry per gradient entry; ``IndexedSlices`` are refused (SPAM refuses sparse
    gradients too).

    Args:
      threshold: float >= 0, :math:`\theta` (5000).
      beta2: float in (0, 1), the second moment's EMA factor (0.999).
      grad_accu_steps: int >= 0, steps after a reset before clipping starts (20).
      update_proj_gap: int >= 1, steps between resets (500).

    References:
      Huang, Zhu, Jin, Liu, Wang, Liu. "SPAM: Spike-Aware Adam with Momentum Reset
      for Stable LLM Training". ICLR 2025. https://arxiv.org/abs/2501.06842 ; code:
      kozistr/pytorch_optimizer, ``pytorch_optimizer/optimizer/spam.py``.

    >>> clip = SpikeAwareClip(threshold=4.0, beta2=0.5, grad_accu_steps=1, update_proj_gap=100)
    >>> clip([tf.constant([2.0])])[0].numpy().tolist()  # step 1 clips already: 4 > 4 * v = 0, to sqrt(0)
    [0.0]
    >>> clip = SpikeAwareClip(threshold=4.0, beta2=0.5, grad_accu_steps=2, update_proj_gap=100)
    >>> _ = clip([tf.constant([2.0])])  # step 1: not yet clipping; v = 0.5 * 4 = 2
    >>> clip([tf.constant([10.0])])[0].numpy().tolist()  # 100 > 4 * 2: sqrt(8) = 2.828...
    [2.8284270763397217]
    """

    def __init__(self, threshold=5000.0, beta2=0.999, grad_accu_steps=20, update_proj_gap=500):
        values = _spam_options(threshold, beta2, grad_accu_steps, update_proj_gap)
        self.threshold = state_variable(values["threshold"], "spam_threshold", tf.float32)
        # float64, so that 1 - beta2 is exact enough (0.999 in float32 leaves 1 - beta2 off by 1e-5)
        self.beta2 = state_variable(values["beta2"], "spam_beta2", tf.float64)
        self.grad_accu_steps = state_variable(values["grad_accu_steps"], "spam_grad_accu_steps", tf.int64)
        self.update_proj_gap = state_variable(values["update_proj_gap"], "spam_update_proj_gap", tf.int64)
        self.step = state_variable(0, "spam_step", tf.int64)
        self.v = None
        self.shapes = None

    def set(self, threshold=None, beta2=None, grad_accu_steps=None, update_proj_gap=None) -> None:
        """Change options between steps (no retrace); every value is checked before any is written."""
        values = _spam_options(threshold, beta2, grad_accu_steps, update_proj_gap)
        for name, value in values.items():
            getattr(self, name).assign(value)

    def build(self, grads) -> None:
        """Create the second moments for gradients shaped like ``grads`` (tensors or shapes; None allowed)."""
        shapes = [None if g is None else tuple(tf.TensorShape(getattr(g, "shape", g)).as_list()) for g in grads]
        if self.v is not None:
            if shapes != self.shapes:
                raise ValueError(
                    f"Argument `grads` must have the shapes this SpikeAwareClip was built for, {self.shapes}. "
                    f"Received: {shapes}"
                )
            return
        for i, s in enumerate(shapes):
            if s is not None and None in s:
                raise ValueError(f"Argument `grads` must have static shapes. Received: grads[{i}] of shape {s}")
        self.shapes = shapes
        self.v = [
            None if s is None else state_variable(tf.zeros(s), f"spam_v_{i}", tf.float32) for i, s in enumerate(shapes)
        ]

    @property
    def variables(self):
        moments = [] if self.v is None else [v for v in self.v if v is not None]
        return [self.threshold, self.beta2, self.grad_accu_steps, self.update_proj_gap, self.step, *moments]

    @property
    def state_variables(self):
        """The state only (step and second moments), not the options."""
        return self.variables[4:]

    def __call__(self, grads, variables=None):
        grads = _checks.grad_list(grads)
        for i, g in enumerate(grads):
            if isinstance(g, tf.IndexedSlices):
                raise ValueError(
                    "Argument `grads` must hold dense tensors for SpikeAwareClip (it keeps a second moment per "
                    f"entry); densify with tf.convert_to_tensor. Received: grads[{i}] of type IndexedSlices"
                )
        self.build(grads)
        step = self.step + 1
        gap, accu = self.update_proj_gap.read_value(), self.grad_accu_steps.read_value()
        reset = tf.equal(step % gap, 0)
        active = tf.logical_and(self.threshold > 0.0, tf.logical_and(step >= accu, step % gap >= accu))
        beta2 = tf.cast(self.beta2, tf.float32)
        complement = tf.cast(1.0 - self.beta2, tf.float32)
        out = []
        for g, v in zip(grads, self.v):
            if g is None:
                out.append(None)
                continue
            x = tf.cast(g, tf.float32)
            moment = tf.where(reset, tf.zeros_like(v), v.read_value())
            limit = moment * self.threshold
            spike = tf.logical_and(active, tf.square(x) > limit)
            x = tf.where(spike, tf.sign(x) * tf.sqrt(limit), x)
            v.assign(beta2 * moment + complement * tf.square(x))
            out.append(tf.cast(x, g.dtype))
        self.step.assign(step)
        return out

    def get_config(self):
        return {
            "threshold": float(self.threshold.numpy()),
            "beta2": float(self.beta2.numpy()),
            "grad_accu_steps": int(self.grad_accu_steps.numpy()),
            "update_proj_gap": int(self.update_proj_gap.numpy()),
        }


def _spam_options(threshold=None, beta2=None, grad_accu_steps=None, update_proj_gap=None) -> dict:
    """The options given (not None), checked."""
    values = {}
    if threshold is not None:
        values["threshold"] = _checks.number("threshold", threshold, low=0.0, low_open=False, python=True)
    if beta2 is not None:
        values["beta2"] = _checks.number("beta2", beta2, high=1.0, high_open=True, python=True)
    if grad_accu_steps is not None:
        values["grad_accu_steps"] = _checks.size("grad_accu_steps", grad_accu_steps, low=0)
    if update_proj_gap is not None:
        values["update_proj_gap"] = _checks.size("update_proj_gap", update_proj_gap)
    return values
