"""ZClip: clip the global norm when its z-score against an EMA of past norms spikes.

Its state (the warm-up norms, the EMA's mean and variance, the bound, whether this step
spiked) lives in ``tf.Variable``s owned by the object, so a step compiled with
``tf.function`` updates it, and a checkpoint keeps it. Its numeric options and choices
are variables too: :meth:`ZClip.set` changes them between steps without a retrace.

``clip(grads)`` returns the clipped gradients and updates the state. Call it once per
training step, on finite gradients (the :class:`~gradlab.scaler.scaler.Scaler` guarantees
that under every non-finite policy). In a Scaler, mode ``"zclip"``'s record in
:mod:`gradlab.scaler.modes` calls :meth:`ZClip.update` with the step's global norm.
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _checks
from gradlab._state import scatter, state_variable
from gradlab.scaling.clipping import clip_to_bound, global_norm

__all__ = ["ZClip", "check_alpha", "check_max_grad_norm", "check_warmup"]

_INF = float("inf")
_ZCLIP_MODES = ("zscore", "percentile")
_CLIP_OPTIONS = ("adaptive_scaling", "mean")


class ZClip:
    """Clip the global norm when its z-score against an EMA of past norms spikes.

    After ``warmup`` steps (no adaptive clipping; mean and variance initialised
    from them), each step computes :math:`z_t = (n_t - \\mu_{t-1}) / (\\sigma_{t-1} + \\epsilon)`.
    With ``mode="zscore"`` and ``clip_option="adaptive_scaling"`` (the defaults), when
    :math:`z_t > z_{thres}` the global norm is clipped to the reciprocal bound
    :math:`c\\,(\\mu_{t-1} + \\frac{z_{thres}^2}{z_t} \\sigma_{t-1})` (``c = clip_factor``),
    so larger spikes are clipped harder. ``clip_option="mean"`` clips a spike to
    :math:`\\mu_{t-1}`. ``mode="percentile"`` clips whenever
    :math:`n_t > \\mu_{t-1} + z_{thres}\\sigma_{t-1}`, to that value (no ``clip_factor``,
    as in the reference). The EMA then takes the clipped value :math:`n_t^*` (the
    adaptive bound on a spike, the norm otherwise):
    :math:`\\mu_t = \\alpha\\mu_{t-1} + (1-\\alpha) n_t^*`,
    :math:`\\sigma_t^2 = \\alpha\\sigma_{t-1}^2 + (1-\\alpha)(n_t^* - \\mu_t)^2`;
    with ``skip_update_on_spike`` a spike leaves the statistics as they were (the
    step itself still happens, clipped).

    ``max_grad_norm`` caps every step's global norm, warm-up included, on top of
    the adaptive bound. **gradlab's default is None (no cap), where the reference
    (bluorion-com/ZClip) has 1.0.** Why: a fixed cap is an absolute norm in the units
    of the loss, so on a model whose ordinary gradient norm is above 1 it clips every
    step and ZClip becomes ``global_norm`` clipping at 1.0; without it ZClip is
    scale-free, as in the paper. What it costs: the warm-up steps are not clipped at
    all, so a run that explodes in its first ``warmup`` steps is not protected.
    Pass ``max_grad_norm=1.0`` for the reference's behaviour.

    Numeric options (``z_threshold``, ``max_grad_norm``, ``clip_factor``) and the
    choices (``mode``, ``clip_option``, ``skip_update_on_spike``) are held in
    variables; :meth:`set` changes them between steps without a retrace (every
    choice is a few scalar ops, all computed and one selected). ``alpha``,
    ``warmup`` and ``eps`` are fixed at construction.

    Args:
      alpha: float in (0, 1), EMA smoothing. Paper default 0.97.
      z_threshold: positive float. Paper default 2.5.
      warmup: int >= 1, steps used to initialise the statistics. Paper default 25.
      eps: positive float added to the standard deviation.
      max_grad_norm: None (no cap) or a positive float: the largest global norm of
        any step. The reference's default is 1.0.
      mode: ``"zscore"`` or ``"percentile"``.
      clip_option: ``"adaptive_scaling"`` or ``"mean"`` (used by ``mode="zscore"``).
      clip_factor: positive float multiplying the adaptive-scaling bound (the
        reference multiplies the whole bound, ``(mu + z_thr**2 / z * sigma) * c``;
        its docstring says 0.5-0.9 is aggressive).
      skip_update_on_spike: bool, leave mean and variance unchanged on a spike.

    References:
      Kumar, Owen, Chowdhury, Güra. "ZClip: Adaptive Spike Mitigation for LLM
      Pre-Training". 2025. https://arxiv.org/abs/2504.02507 ; code:
      https://github.com/bluorion-com/ZClip (``zclip/zclip.py``).

    >>> clip = ZClip(warmup=2)
    >>> _ = clip([tf.constant([1.0])]); _ = clip([tf.constant([3.0])])  # mean 2, std 1
    >>> out = clip([tf.constant([7.0])])  # z = 5 > 2.5: bound 2 + 2.5**2 / 5 * 1
    >>> round(float(clip.bound), 4), out[0].numpy().round(4).tolist()
    (3.25, [3.25])
    >>> capped = ZClip(warmup=2, max_grad_norm=1.0)
    >>> capped([tf.constant([3.0, 4.0])])[0].numpy().round(4).tolist()  # warm-up, capped at 1
    [0.6, 0.8]
    """

    def __init__(
        self,
        alpha=0.97,
        z_threshold=2.5,
        warmup=25,
        eps=1e-6,
        *,
        max_grad_norm=None,
        mode="zscore",
        clip_option="adaptive_scaling",
        clip_factor=1.0,
        skip_update_on_spike=False,
    ):
        self.alpha = check_alpha(alpha)
        z_threshold = float(_checks.number("z_threshold", z_threshold))
        self.warmup = check_warmup(warmup)
        self.eps = _checks.number("eps", eps, python=True)
        cap = _INF if max_grad_norm is None else check_max_grad_norm(max_grad_norm)
        clip_factor = float(_checks.number("clip_factor", clip_factor, python=True))
        choices = [_mode_index(mode), _clip_option_index(clip_option), _skip_flag(skip_update_on_spike)]
        # Every option checked: now the variables (initial values, no assign: fine under a strategy scope).
        self.z_threshold = state_variable(z_threshold, "zclip_z_threshold", tf.float32)
        self.buffer = state_variable(tf.zeros([self.warmup]), "zclip_warmup_norms")
        self.count = state_variable(0, "zclip_count", tf.int64)
        self.mean = state_variable(0.0, "zclip_mean")
        self.var = state_variable(0.0, "zclip_var")
        self.bound = state_variable(_INF, "zclip_bound", tf.float32)
        self.spike = state_variable(False, "zclip_spike", tf.bool)
        self.max_grad_norm = state_variable(cap, "zclip_max_grad_norm", tf.float32)
        self.clip_factor = state_variable(clip_factor, "zclip_clip_factor", tf.float32)
        # [mode index, clip_option index, skip_update_on_spike]
        self.choices = state_variable(tf.constant(choices, tf.int32), "zclip_choices", tf.int32)

    _UNSET = object()

    def set(
        self,
        *,
        z_threshold=None,
        max_grad_norm=_UNSET,
        mode=None,
        clip_option=None,
        clip_factor=None,
        skip_update_on_spike=None,
    ) -> None:
        """Change options between steps (no retrace). ``max_grad_norm=None`` removes the cap.

        Every value is checked before any is written.
        """
        writes = []
        if z_threshold is not None:
            writes.append((self.z_threshold, float(_checks.number("z_threshold", z_threshold, python=True))))
        if max_grad_norm is not ZClip._UNSET:
            cap = _INF if max_grad_norm is None else check_max_grad_norm(max_grad_norm)
            writes.append((self.max_grad_norm, cap))
        if clip_factor is not None:
            writes.append((self.clip_factor, float(_checks.number("clip_factor", clip_factor, python=True))))
        choices = self.choices.numpy().tolist()
        if mode is not None:
            choices[0] = _mode_index(mode)
        if clip_option is not None:
            choices[1] = _clip_option_index(clip_option)
        if skip_update_on_spike is not None:
            choices[2] = _skip_flag(skip_update_on_spike)
        for variable, value in writes:
            variable.assign(value)
        self.choices.assign(choices)

    @property
    def variables(self):
        return [
            self.z_threshold,
            self.buffer,
            self.count,
            self.mean,
            self.var,
            self.bound,
            self.spike,
            self.max_grad_norm,
            self.clip_factor,
            self.choices,
        ]

    @property
    def state_variables(self):
        """The state only (warm-up norms, count, mean, variance, bound, spike), not the options."""
        return [self.buffer, self.count, self.mean, self.var, self.bound, self.spike]

    @property
    def mode(self) -> str:
        return _ZCLIP_MODES[int(self.choices[0])]

    @property
    def clip_option(self) -> str:
        return _CLIP_OPTIONS[int(self.choices[1])]

    @property
    def skip_update_on_spike(self) -> bool:
        return bool(self.choices[2])

    def __call__(self, grads, variables=None):
        grads = _checks.grad_list(grads)
        norm = global_norm(grads)
        return clip_to_bound(grads, norm, self.update(norm, self.z_threshold))

    def update(self, norm, z_threshold):
        """Update the statistics with ``norm`` and return this step's bound.

        The bound is the adaptive bound on a spike and inf otherwise, capped by
        ``max_grad_norm``; clip the global norm to it (``min(1, bound / norm)``).
        ``self.spike`` says whether this step was a spike.
        """
        norm = tf.cast(norm, tf.float32)
        z_threshold = tf.cast(z_threshold, tf.float32)
        inf = tf.constant(_INF)
        cap = self.max_grad_norm.read_value()

        def warming():
            scatter(self.buffer, [[self.count]], tf.reshape(norm, [1]))
            done = tf.equal(self.count, self.warmup - 1)
            mean = tf.reduce_mean(self.buffer)
            self.mean.assign(tf.where(done, mean, self.mean))
            self.var.assign(tf.where(done, tf.reduce_mean(tf.square(self.buffer - mean)), self.var))
            return cap, tf.constant(False)

        def clipping():
            choices = self.choices.read_value()
            mean, var = self.mean.read_value(), self.var.read_value()
            std = tf.sqrt(var)
            z = (norm - mean) / (std + self.eps)
            percentile_bound = mean + z_threshold * std
            # adaptive scaling: eta = z / z_thr, bound = (mean + z_thr * std / eta) * clip_factor
            adaptive_bound = (mean + z_threshold * std / (z / z_threshold)) * self.clip_factor
            zscore_bound = tf.where(tf.equal(choices[1], 1), mean, adaptive_bound)
            is_percentile = tf.equal(choices[0], 1)
            spike = tf.where(is_percentile, norm > percentile_bound, z > z_threshold)
            adaptive = tf.where(is_percentile, percentile_bound, zscore_bound)
            seen = tf.where(spike, adaptive, norm)  # what the EMA takes (the reference's clip_val or the norm)
            new_mean = self.alpha * mean + (1.0 - self.alpha) * seen
            new_var = self.alpha * var + (1.0 - self.alpha) * tf.square(seen - new_mean)
            keep = tf.logical_and(spike, tf.equal(choices[2], 1))
            self.mean.assign(tf.where(keep, mean, new_mean))
            self.var.assign(tf.where(keep, var, new_var))
            return tf.minimum(tf.where(spike, adaptive, inf), cap), spike

        bound, spike = tf.cond(self.count < self.warmup, warming, clipping)
        self.count.assign_add(1)
        self.bound.assign(bound)
        self.spike.assign(spike)
        return bound

    def get_config(self):
        cap = float(self.max_grad_norm.numpy())
        return {
            "alpha": self.alpha,
            "z_threshold": float(self.z_threshold.numpy()),
            "warmup": self.warmup,
            "eps": self.eps,
            "max_grad_norm": None if cap == _INF else cap,
            "mode": self.mode,
            "clip_option": self.clip_option,
            "clip_factor": float(self.clip_factor.numpy()),
            "skip_update_on_spike": self.skip_update_on_spike,
        }


def _mode_index(mode):
    return _ZCLIP_MODES.index(_checks.choice("mode", mode, _ZCLIP_MODES, what="ZClip mode"))


def _clip_option_index(clip_option):
    return _CLIP_OPTIONS.index(_checks.choice("clip_option", clip_option, _CLIP_OPTIONS, what="ZClip clip_option"))


def _skip_flag(skip):
    return int(_checks.boolean("skip_update_on_spike", skip))


def check_alpha(alpha, name="alpha"):
    return _checks.number(name, alpha, low=0.0, high=1.0, high_open=True, python=True)


def check_warmup(warmup, name="warmup"):
    return _checks.number(name, warmup, low=1, low_open=False, integer=True)


def check_max_grad_norm(value, name="max_grad_norm"):
    """None (no cap) or a positive finite float."""
    if value is None:
        return None
    return float(_checks.number(name, value, python=True))
