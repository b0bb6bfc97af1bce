"""Skip the whole update when the gradient norm (or the loss) spikes, on device.

Clipping shrinks a spike's step; the large training codebases also skip it
altogether: the weights, the optimizer's slots and its step count stay as they
were, as on a step with non-finite gradients. :class:`SkipSpikes` is that rule,
for any :class:`~gradlab.Scaler` (``Scaler(..., skip_spikes=...)``), whatever
its mode, and so for the Trainer, :class:`~gradlab.ScaledOptimizer`,
:func:`~gradlab.compare`, the report and the lab.

**The rule is OLMo-core's** (allenai/OLMo-core,
``src/olmo_core/optim/skip_step_optimizer.py``, ``SkipStepOptimizer.get_step_factor``,
read at commit fa6c501):

* a window keeps the last ``window`` values of each watched signal (OLMo-core's
  ``rolling_interval_length``, default 128): the global gradient norm before
  scaling, and/or the step's loss;
* the rule decides once ``min_history`` values have been seen, this step's
  included (OLMo-core: ``max(2, rolling_interval_length // 2)``, the default here);
* it skips the step when, for any watched signal, ``value - mean > sigma * std``,
  with the mean and the standard deviation (with Bessel's correction, as
  ``torch.std_mean``) of the window's values from the steps before; ``sigma`` is
  OLMo-core's ``sigma_factor`` (default 6). One-sided: a drop is never a spike;
* this step's value enters the window whether or not the step is skipped
  (OLMo-core appends it before deciding): a large spike widens the window's
  standard deviation until it leaves the window, ``window`` steps later.

Where gradlab differs, and why:

* a non-finite value never enters a window and never decides: non-finite
  gradients are the non-finite policy's (``nonfinite=``), which acts first. (In
  OLMo-core a NaN in the window makes every comparison false: every step is
  skipped until it leaves the window.)
* with fewer than two earlier values the standard deviation is not defined:
  gradlab does not skip. (OLMo-core's ``torch.std_mean`` of one value is NaN, and
  the comparison skips the step: this happens only when ``min_history`` is 2,
  that is ``window`` below 6 with the default.)

The other codebases: Megatron-LM's ``OptimizerConfig.grad_norm_skip_threshold``
skips a step whose global norm exceeds a fixed bound (default inf: off);
axlearn's ``skip_and_clip_by_global_norm`` (``axlearn/common/optimizers.py``)
skips above ``drop_norm``, which may be ``mean + k * stddev`` of an EMA of the
norms after ``min_count`` steps, and keeps a skipped step out of its statistics.

**Which loss.** The Trainer knows each step's loss. :class:`~gradlab.ScaledOptimizer`
knows it inside ``model.fit`` (Keras' train step hands it to the optimizer's
``scale_loss``), but not when its ``apply`` is called directly: there the loss is
unknown (NaN) and only the norm can decide. Under ``tf.distribute`` the
ScaledOptimizer decides on the replicas' mean loss, so every replica decides alike.

Everything runs inside the compiled step without a host sync: the windows and
their counts are ``tf.Variable`` s, and ``sigma`` too (:meth:`SkipSpikes.set`
changes it without a retrace); ``window``, ``watch`` and ``min_history`` shape
what is built and are fixed at construction.

>>> rule = SkipSpikes(sigma=3.0, window=8)
>>> [bool(rule.check(tf.constant(v))) for v in [1.0, 1.1, 0.9, 1.0, 1.05, 50.0, 1.0]]
[False, False, False, False, False, True, False]
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _checks
from gradlab._state import state_variable

__all__ = ["SIGNALS", "SkipSpikes", "check_skip_spikes"]

SIGNALS = ("norm", "loss", "both")  # what a SkipSpikes watches


class _Window:
    """The last ``size`` finite values of one signal, and how many were ever added."""

    def __init__(self, name: str, size: int):
        self.size = size
        self.values = state_variable(tf.zeros([size]), f"spike_{name}_window")
        self.count = state_variable(0, f"spike_{name}_count", tf.int64)

    def decide_and_add(self, value, ok, sigma, min_history: int):
        """Whether ``value`` spikes against the window (never when not ``ok``); then add it if ``ok``."""
        values, count = self.values.read_value(), self.count.read_value()
        n = tf.minimum(count, self.size)
        held = tf.range(self.size, dtype=tf.int64) < n
        nf = tf.cast(n, tf.float32)
        mean = tf.reduce_sum(tf.where(held, values, 0.0)) / tf.maximum(nf, 1.0)
        var = tf.reduce_sum(tf.where(held, tf.square(values - mean), 0.0)) / tf.maximum(nf - 1.0, 1.0)
        enough = tf.logical_and(count + 1 >= min_history, n >= 2)
        spike = tf.logical_and(tf.logical_and(ok, enough), value - mean > sigma * tf.sqrt(var))
        with tf.control_dependencies([spike]):  # decided on the window before this step's value
            at = tf.range(self.size, dtype=tf.int64) == count % self.size
            self.values.assign(tf.where(tf.logical_and(ok, at), value, values))
            self.count.assign_add(tf.cast(ok, tf.int64))
        return spike

    @property
    def variables(self) -> list:
        return [self.values, self.count]


class SkipSpikes:
    """Skip the update of a step whose gradient norm (or loss) spikes; see the module doc for the rule.

    Args:
      sigma: positive float, how many standard deviations above the window's
        mean a value must be to be a spike (OLMo-core's ``sigma_factor``, 6). Live:
        :meth:`set` changes it without a retrace.
      window: int >= 2, how many earlier values the mean and the standard
        deviation are taken over (OLMo-core's ``rolling_interval_length``, 128).
      watch: ``"norm"`` (default: the global gradient norm before scaling),
        ``"loss"``, or ``"both"`` (skip when either spikes, as OLMo-core does when
        it is given both). Each signal has its own window.
      min_history: int in [2, window + 1], how many values (this step's included)
        must have been seen before the rule decides; default ``max(2, window // 2)``
        as OLMo-core.

    A skipped step is skipped as a non-finite one is: the optimizer is not called,
    so the weights, its slots and its ``iterations`` (and a learning-rate schedule
    that reads them) do not move, as with OLMo-core's ``step_increment_bugfix``
    (its default); :class:`~gradlab.ScaledOptimizer` counts the step in
    ``skipped_steps``; under mixed precision the loss scale is not halved (a
    spike is finite). The mode's own state (ZClip's statistics, AutoClip's
    history) does not see the step either. The :class:`~gradlab.History` records
    it as skipped (``skipped`` is 1) with its finite norm, and ``History.spiked``
    tells it from the non-finite ones.
    """

    def __init__(self, sigma: float = 6.0, window: int = 128, *, watch: str = "norm", min_history: int | None = None):
        sigma = float(_checks.number("sigma", sigma, python=True))
        self.window = _checks.number("window", window, low=2, low_open=False, integer=True)
        self.watch = _checks.choice("watch", watch, SIGNALS, what="signal to watch")
        if min_history is None:
            min_history = max(2, self.window // 2)
        self.min_history = _checks.number(
            "min_history", min_history, low=2, high=self.window + 1, low_open=False, integer=True
        )
        self.sigma = state_variable(sigma, "spike_sigma", tf.float32)
        self.norms = _Window("norm", self.window) if self.watch in ("norm", "both") else None
        self.losses = _Window("loss", self.window) if self.watch in ("loss", "both") else None

    @property
    def watches_loss(self) -> bool:
        return self.losses is not None

    def set(self, sigma: float) -> None:
        """Change ``sigma`` between steps (a running compiled step sees it next step, no retrace)."""
        self.sigma.assign(float(_checks.number("sigma", sigma, python=True)))

    def check(self, norm, loss=None, finite=True) -> tf.Tensor:
        """Whether this step is a spike (bool scalar); adds its values to the windows.

        Args:
          norm: the step's global gradient norm before scaling.
          loss: the step's loss, or None (or NaN) where it is not known: then the
            loss neither decides nor enters its window.
          finite: False on a step whose gradients are not finite: then nothing
            decides and nothing enters a window.
        """
        sigma = self.sigma.read_value()
        finite = tf.cast(finite, tf.bool)
        spikes = []
        for window, value in ((self.norms, norm), (self.losses, loss)):
            if window is None or value is None:
                continue
            value = tf.cast(value, tf.float32)
            ok = tf.logical_and(finite, tf.math.is_finite(value))
            spikes.append(window.decide_and_add(value, ok, sigma, self.min_history))
        if not spikes:
            return tf.constant(False)
        return tf.reduce_any(tf.stack(spikes))

    @property
    def variables(self) -> list:
        """Every variable: ``sigma``, then the windows and their counts."""
        return [self.sigma] + self.state_variables

    @property
    def state_variables(self) -> list:
        """The windows and their counts (what ``Trainer.reset()`` restores), not ``sigma``."""
        return [v for w in (self.norms, self.losses) if w is not None for v in w.variables]

    def get_config(self) -> dict:
        return {
            "sigma": float(self.sigma.numpy()),
            "window": self.window,
            "watch": self.watch,
            "min_history": self.min_history,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (
            f"SkipSpikes(sigma={float(self.sigma.numpy()):g}, window={self.window}, watch={self.watch!r}, "
            f"min_history={self.min_history})"
        )


def check_skip_spikes(value) -> SkipSpikes | None:
    """A Scaler's ``skip_spikes`` argument as a :class:`SkipSpikes` (or None).

    ``None`` or ``False``: no rule. ``True``: OLMo-core's defaults. A dict: the
    arguments of a new :class:`SkipSpikes`. A :class:`SkipSpikes`: used as it is
    (give each Scaler its own: the windows are its state).
    """
    if value is None or value is False:
        return None
    if value is True:
        return SkipSpikes()
    if isinstance(value, SkipSpikes):
        return value
    if isinstance(value, dict):
        _checks.allowed_options(value, ("sigma", "window", "watch", "min_history"), "skip_spikes")
        return SkipSpikes(**value)
    raise _checks._fail(
        "skip_spikes",
        "None, True, a dict of SkipSpikes arguments (sigma, window, watch, min_history) or a gradlab.scaler.SkipSpikes",
        value,
    )
