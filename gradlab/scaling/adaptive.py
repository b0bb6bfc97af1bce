"""Adaptive clipping with state: AutoClip and ZClip.

Both watch the global gradient norm over training and clip the global norm to a
bound they compute from that history. Their state lives in ``tf.Variable``s
owned by the object, so a step compiled with ``tf.function`` updates it, and a
checkpoint (or ``model.save`` through :class:`gradlab.ScaledOptimizer`) keeps it.

Each object is a transform: ``obj(grads)`` returns the clipped gradients and
updates the state. Call it once per training step, on finite gradients (the
:class:`gradlab.Scaler` front door guarantees that under every non-finite policy).
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _checks
from gradlab._state import scatter, state_variable
from gradlab.scaling.clipping import bound_factor, global_norm, scale, values_of, with_values

__all__ = ["AutoClip", "ZClip"]


def _apply_bound(grads, norm, bound):
    factor = bound_factor(norm, bound)
    return [None if g is None else with_values(g, scale(values_of(g), factor)) for g in grads]


class AutoClip:
    """Clip the global norm at a percentile of the norms seen so far.

    At step t the global norm :math:`n_t` joins the history, and the gradients are
    clipped to a global norm of :math:`\\eta_t = \\mathrm{percentile}_p(n_1..n_t)`
    (linear interpolation, as ``numpy.percentile``). ``p = 10`` in the paper.

    The history is a ring buffer of ``history_size`` norms (the paper keeps all of
    them; 10,000 steps of history is far more than the percentile needs to settle).

    Args:
      percentile: float in (0, 100], the percentile ``p``.
      history_size: int >= 1, how many past norms are kept.

    References:
      Seetharaman, Wichern, Pardo, Le Roux. "AutoClip: Adaptive Gradient Clipping
      for Source Separation Networks". IEEE MLSP 2020. https://arxiv.org/abs/2007.14469

    >>> clip = AutoClip(percentile=50)
    >>> for n in [1.0, 3.0, 2.0]:
    ...     out = clip([tf.constant([n, 0.0])])
    >>> float(clip.bound), out[0].numpy().tolist()  # median of 1, 3, 2
    (2.0, [2.0, 0.0])
    """

    def __init__(self, percentile=10.0, history_size=10_000):
        self.percentile = state_variable(float(check_percentile(percentile)), "autoclip_percentile", tf.float32)
        self.history_size = check_history_size(history_size)
        self.history = state_variable(tf.zeros([self.history_size]), "autoclip_history")
        self.count = state_variable(0, "autoclip_count", tf.int64)
        self.bound = state_variable(float("inf"), "autoclip_bound", tf.float32)

    @property
    def variables(self):
        return [self.percentile, self.history, self.count, self.bound]

    def __call__(self, grads, variables=None):
        grads = _checks.grad_list(grads)
        norm = global_norm(grads)
        return _apply_bound(grads, norm, self._update(norm, self.percentile))

    def update(self, norm, percentile):
        """Add ``norm`` to the history and return the new bound (float32).

        ``percentile`` in (0, 100] (a number, or a tensor checked when known).
        """
        return self._update(norm, check_percentile(percentile))

    def _update(self, norm, percentile):
        size = self.history_size
        scatter(self.history, [[self.count % size]], tf.reshape(tf.cast(norm, tf.float32), [1]))
        self.count.assign_add(1)
        n = tf.minimum(self.count, size)
        # Unfilled slots sort last as +inf; the shape stays static (XLA friendly).
        filled = tf.sort(tf.where(tf.range(size, dtype=tf.int64) < n, self.history, float("inf")))
        rank = tf.cast(percentile, tf.float32) / 100.0 * tf.cast(n - 1, tf.float32)
        lo = tf.cast(tf.floor(rank), tf.int64)
        hi = tf.minimum(lo + 1, n - 1)
        frac = rank - tf.floor(rank)
        bound = filled[lo] + (filled[hi] - filled[lo]) * frac
        self.bound.assign(bound)
        return bound

    def get_config(self):
        return {"percentile": float(self.percentile.numpy()), "history_size": self.history_size}


class ZClip:
    """Clip the global norm when its z-score against an EMA of past norms spikes.

    After ``warmup`` steps (no clipping; mean and variance initialised from them),
    each step computes :math:`z_t = (n_t - \\mu_{t-1}) / (\\sigma_{t-1} + \\epsilon)`.
    When :math:`z_t > z_{thres}` the global norm is clipped to the reciprocal
    bound :math:`\\mu_{t-1} + \\frac{z_{thres}^2}{z_t} \\sigma_{t-1}`, so larger
    spikes are clipped harder. The EMA then takes the clipped norm :math:`n_t^*`:
    :math:`\\mu_t = \\alpha\\mu_{t-1} + (1-\\alpha) n_t^*`,
    :math:`\\sigma_t^2 = \\alpha\\sigma_{t-1}^2 + (1-\\alpha)(n_t^* - \\mu_t)^2`.

    Args:
      alpha: float in (0, 1), EMA smoothing. Paper default 0.97.
      z_threshold: positive float. Paper default 2.5.
      warmup: int >= 1, steps used to initialise the statistics. Paper default 25.
      eps: positive float added to the standard deviation.

    References:
      Kumar, Owen, Chowdhury, Güra. "ZClip: Adaptive Spike Mitigation for LLM
      Pre-Training". 2025. https://arxiv.org/abs/2504.02507

    >>> clip = ZClip(warmup=2)
    >>> _ = clip([tf.constant([1.0])]); _ = clip([tf.constant([3.0])])  # mean 2, std 1
    >>> out = clip([tf.constant([7.0])])  # z = 5 > 2.5: bound 2 + 2.5**2 / 5 * 1
    >>> round(float(clip.bound), 4), out[0].numpy().round(4).tolist()
    (3.25, [3.25])
    """

    def __init__(self, alpha=0.97, z_threshold=2.5, warmup=25, eps=1e-6):
        self.alpha = check_alpha(alpha)
        self.z_threshold = state_variable(
            float(_checks.number("z_threshold", z_threshold)), "zclip_z_threshold", tf.float32
        )
        self.warmup = check_warmup(warmup)
        self.eps = _checks.number("eps", eps, python=True)
        self.buffer = state_variable(tf.zeros([self.warmup]), "zclip_warmup_norms")
        self.count = state_variable(0, "zclip_count", tf.int64)
        self.mean = state_variable(0.0, "zclip_mean")
        self.var = state_variable(0.0, "zclip_var")
        self.bound = state_variable(float("inf"), "zclip_bound", tf.float32)

    @property
    def variables(self):
        return [self.z_threshold, self.buffer, self.count, self.mean, self.var, self.bound]

    def __call__(self, grads, variables=None):
        grads = _checks.grad_list(grads)
        norm = global_norm(grads)
        return _apply_bound(grads, norm, self.update(norm, self.z_threshold))

    def update(self, norm, z_threshold):
        """Update the statistics with ``norm`` and return this step's bound."""
        norm = tf.cast(norm, tf.float32)
        z_threshold = tf.cast(z_threshold, tf.float32)
        inf = tf.constant(float("inf"))

        def warming():
            scatter(self.buffer, [[self.count]], tf.reshape(norm, [1]))
            done = tf.equal(self.count, self.warmup - 1)
            mean = tf.reduce_mean(self.buffer)
            self.mean.assign(tf.where(done, mean, self.mean))
            self.var.assign(tf.where(done, tf.reduce_mean(tf.square(self.buffer - mean)), self.var))
            return inf

        def clipping():
            std = tf.sqrt(self.var)
            z = (norm - self.mean) / (std + self.eps)
            spike = z > z_threshold
            bound = tf.where(spike, self.mean + z_threshold * z_threshold / z * std, inf)
            clipped = tf.minimum(norm, bound)
            mean = self.alpha * self.mean + (1.0 - self.alpha) * clipped
            self.var.assign(self.alpha * self.var + (1.0 - self.alpha) * tf.square(clipped - mean))
            self.mean.assign(mean)
            return bound

        bound = tf.cond(self.count < self.warmup, warming, clipping)
        self.count.assign_add(1)
        self.bound.assign(bound)
        return bound

    def get_config(self):
        return {
            "alpha": self.alpha,
            "z_threshold": float(self.z_threshold.numpy()),
            "warmup": self.warmup,
            "eps": self.eps,
        }


def check_percentile(p):
    return _checks.number("percentile", p, low=0.0, high=100.0)


def check_alpha(alpha, name="alpha"):
    return _checks.number(name, alpha, low=0.0, high=1.0, high_open=True, python=True)


def check_warmup(warmup, name="warmup"):
    return _checks.number(name, warmup, low=1, low_open=False, integer=True)


def check_history_size(size, name="history_size"):
    return _checks.number(name, size, low=1, low_open=False, integer=True)
