"""Adaptive clipping with state: AutoClip and ZClip.

Both watch the gradient norm over training and clip to a bound they compute from
that history. Their state lives in ``tf.Variable``s owned by the object, so a
step compiled with ``tf.function`` updates it, and a checkpoint (or ``model.save``
through :class:`gradlab.ScaledOptimizer`) keeps it. Their numeric options live in
variables too: ``set(...)`` changes them between steps without a retrace.

Each object is a transform: ``obj(grads)`` returns the clipped gradients and
updates the state. Call it once per training step, on finite gradients (the
:class:`gradlab.Scaler` front door guarantees that under every non-finite policy).
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _checks
from gradlab._state import scatter, state_variable
from gradlab.scaling.clipping import (
    bound_factor,
    clip_factor,
    global_norm,
    scale,
    squared_norm,
    values_of,
    with_values,
)

__all__ = ["AUTOCLIP_VARIANTS", "AutoClip", "ZClip"]

_INF = float("inf")


def _apply_bound(grads, norm, bound):
    factor = bound_factor(norm, bound)
    return [None if g is None else with_values(g, scale(values_of(g), factor)) for g in grads]


def _tensor_norms(grads):
    return [None if g is None else tf.sqrt(squared_norm(values_of(g))) for g in grads]


# ---------------------------------------------------------------- AutoClip
# Each reference AutoClip, as the options that reproduce it (see AutoClip.variant).
AUTOCLIP_VARIANTS = {
    # pseeth/autoclip, autoclip.py (the paper's code, for pytorch-ignite): this step's norm joins
    # the history first, numpy.percentile (linear), the global norm clipped; history unbounded.
    "autoclip.py": dict(include_current=True, norm="global", clip="global", interpolation="linear"),
    # pseeth/autoclip, autoclip_tf.py (AutoClipper): the same history in a ring buffer of 10,000,
    # tfp.stats.percentile (default interpolation "nearest"), each tensor clipped to the bound
    # with tf.clip_by_norm.
    "autoclip_tf.py": dict(include_current=True, norm="global", clip="per_tensor", interpolation="nearest"),
    # pip install autoclip: autoclip/torch/quantile.py, QuantileClip(quantile=0.9,
    # history_length=1000, global_threshold=False): each parameter keeps its own history of its
    # own norm; the threshold is the quantile (torch.quantile, linear) of the *past* norms only
    # (no clipping on the first step), and the norm before clipping joins the history after.
    "QuantileClip": dict(
        percentile=90.0, history_size=1000, include_current=False, norm="per_tensor", clip="per_tensor"
    ),
    # QuantileClip(global_threshold=True): one history of the global norm, past norms only.
    "QuantileClip(global_threshold=True)": dict(
        percentile=90.0, history_size=1000, include_current=False, norm="global", clip="global"
    ),
}


class AutoClip:
    """Clip at a percentile of the gradient norms seen so far.

    At step t the global norm :math:`n_t` joins the history, and the gradients are
    clipped to a global norm of :math:`\\eta_t = \\mathrm{percentile}_p(n_1..n_t)`
    (linear interpolation, as ``numpy.percentile``). ``p = 10`` in the paper.

    The history is a ring buffer of ``history_size`` norms (the paper keeps all of
    them; 10,000 steps of history is far more than the percentile needs to settle).

    The peers differ in three choices, each an option here (``AutoClip.variant(name)``
    builds the one that reproduces a reference; see ``AUTOCLIP_VARIANTS``):

    - ``include_current``: whether this step's norm is in the history the bound is
      taken from (``autoclip.py``, ``autoclip_tf.py``), or only past norms
      (``QuantileClip``; then the first step is not clipped).
    - ``norm="global"`` keeps one history of the global norm; ``"per_tensor"`` keeps
      one history per gradient tensor, of that tensor's norm, and clips each tensor
      to its own bound (``QuantileClip``'s default). ``clip="per_tensor"`` with
      ``norm="global"`` clips each tensor on its own to the global bound
      (``autoclip_tf.py``, which calls ``tf.clip_by_norm``).
    - ``interpolation``: ``"linear"`` (``numpy.percentile``, ``torch.quantile``) or
      ``"nearest"`` (``tfp.stats.percentile``'s default).

    These three and ``history_size`` shape the graph, so they are fixed at
    construction; ``percentile`` is a variable (change it with :meth:`set`).

    Args:
      percentile: float in (0, 100], the percentile ``p``.
      history_size: int >= 1, how many past norms are kept (per tensor with
        ``norm="per_tensor"``).
      include_current: bool, whether this step's norm is in the history the bound
        comes from.
      norm: ``"global"`` or ``"per_tensor"``, whose norm is recorded and bounded.
      clip: ``"global"`` or ``"per_tensor"``, how the bound is applied (must be
        ``"per_tensor"`` when ``norm="per_tensor"``).
      interpolation: ``"linear"`` or ``"nearest"``.

    References:
      Seetharaman, Wichern, Pardo, Le Roux. "AutoClip: Adaptive Gradient Clipping
      for Source Separation Networks". IEEE MLSP 2020. https://arxiv.org/abs/2007.14469

    >>> clip = AutoClip(percentile=50)
    >>> for n in [1.0, 3.0, 2.0]:
    ...     out = clip([tf.constant([n, 0.0])])
    >>> float(clip.bound), out[0].numpy().tolist()  # median of 1, 3, 2
    (2.0, [2.0, 0.0])
    >>> past = AutoClip(percentile=50, include_current=False)
    >>> for n in [1.0, 3.0, 2.0]:
    ...     out = past([tf.constant([n, 0.0])])
    >>> float(past.bound), out[0].numpy().tolist()  # median of 1, 3 (this step's 2 not yet in)
    (2.0, [2.0, 0.0])
    """

    def __init__(
        self,
        percentile=10.0,
        history_size=10_000,
        *,
        include_current=True,
        norm="global",
        clip="global",
        interpolation="linear",
    ):
        self.percentile = state_variable(float(check_percentile(percentile)), "autoclip_percentile", tf.float32)
        self.history_size = check_history_size(history_size)
        self.include_current = _checks.boolean("include_current", include_current)
        self.norm = _checks.choice("norm", norm, ("global", "per_tensor"), what="AutoClip norm")
        self.clip = _checks.choice("clip", clip, ("global", "per_tensor"), what="AutoClip clip")
        if self.norm == "per_tensor" and self.clip != "per_tensor":
            raise ValueError(
                "Argument `clip` must be 'per_tensor' when norm='per_tensor' (each tensor is clipped to the "
                f"bound of its own history). Received: clip={clip!r}"
            )
        self.interpolation = _checks.choice("interpolation", interpolation, ("linear", "nearest"), what="interpolation")
        if self.norm == "global":
            self.history = state_variable(tf.zeros([self.history_size]), "autoclip_history")
            self.count = state_variable(0, "autoclip_count", tf.int64)
            self.bound = state_variable(_INF, "autoclip_bound", tf.float32)
        else:  # one row per tensor, built on the first call (or by build(n))
            self.history = self.count = self.bound = None
            self.num_tensors = None

    @classmethod
    def variant(cls, name: str, **overrides) -> AutoClip:
        """The AutoClip that reproduces a reference: a key of ``AUTOCLIP_VARIANTS``.

        ``overrides`` change any argument (``percentile``, ``history_size``, ...).

        >>> AutoClip.variant("QuantileClip").get_config()["percentile"]
        90.0
        """
        options = dict(AUTOCLIP_VARIANTS[_checks.choice("name", name, tuple(AUTOCLIP_VARIANTS), what="variant")])
        options.update(overrides)
        return cls(**options)

    def build(self, num_tensors: int) -> None:
        """Create the per-tensor state (``norm="per_tensor"``) for ``num_tensors`` gradients."""
        if self.norm != "per_tensor":
            return
        num_tensors = _checks.size("num_tensors", num_tensors)
        if self.history is not None:
            if num_tensors != self.num_tensors:
                raise ValueError(
                    f"Argument `grads` must have the {self.num_tensors} tensors this per-tensor AutoClip was built "
                    f"for. Received: {num_tensors} tensors"
                )
            return
        self.num_tensors = num_tensors
        self.history = state_variable(tf.zeros([num_tensors, self.history_size]), "autoclip_history")
        self.count = state_variable(tf.zeros([num_tensors], tf.int64), "autoclip_count", tf.int64)
        self.bound = state_variable(tf.fill([num_tensors], _INF), "autoclip_bound", tf.float32)

    @property
    def variables(self):
        if self.history is None:
            return [self.percentile]
        return [self.percentile, self.history, self.count, self.bound]

    @property
    def state_variables(self):
        """The state only (history, count, bound), not the percentile."""
        return self.variables[1:]

    def set(self, percentile=None) -> None:
        """Change the percentile between steps (no retrace)."""
        if percentile is not None:
            self.percentile.assign(float(check_percentile(percentile)))

    def __call__(self, grads, variables=None):
        grads = _checks.grad_list(grads)
        if self.norm == "global":
            norm = global_norm(grads)
            bound = self._update(norm, self.percentile)
            if self.clip == "global":
                return _apply_bound(grads, norm, bound)
            norms = _tensor_norms(grads)
        else:
            self.build(len(grads))
            norms = _tensor_norms(grads)
            present = tf.constant([n is not None for n in norms])
            stacked = tf.stack([tf.constant(0.0) if n is None else n for n in norms])
            bounds = self._update_rows(stacked, present, self.percentile)
            bound = [bounds[i] for i in range(len(grads))]
        bounds = bound if isinstance(bound, list) else [bound] * len(grads)
        # Each tensor clipped to its bound as tf.clip_by_norm does (an inf bound: factor 1).
        return [
            None if g is None else with_values(g, scale(values_of(g), clip_factor(n, b)))
            for g, n, b in zip(grads, norms, bounds)
        ]

    def update(self, norm, percentile):
        """Add ``norm`` to the history and return the new bound (float32).

        ``percentile`` in (0, 100] (a number, or a tensor checked when known).
        Global norm only (``norm="global"``).
        """
        if self.norm != "global":
            raise ValueError(
                "AutoClip.update takes one global norm; this AutoClip keeps one history per tensor "
                "(norm='per_tensor'): call it on the gradients instead. Received: norm='per_tensor'"
            )
        return self._update(norm, check_percentile(percentile))

    def update_each(self, norms, percentile, present=None):
        """Per-tensor AutoClip (``norm="per_tensor"``): add each tensor's norm to its own history
        and return the bounds (float32 vector). ``present`` (bool vector) leaves the rows of
        absent tensors unchanged; call :meth:`build` first."""
        if self.norm != "per_tensor" or self.history is None:
            raise ValueError(
                "AutoClip.update_each needs norm='per_tensor' and built state (call build(num_tensors)). "
                f"Received: norm={self.norm!r}"
            )
        norms = tf.reshape(tf.cast(norms, tf.float32), [self.num_tensors])
        present = tf.ones([self.num_tensors], tf.bool) if present is None else tf.cast(present, tf.bool)
        return self._update_rows(norms, present, check_percentile(percentile))

    def _update(self, norm, percentile):
        bounds = self._update_rows(
            tf.reshape(tf.cast(norm, tf.float32), [1]),
            tf.constant([True]),
            percentile,
            history=tf.reshape(self.history, [1, -1]),
            count=tf.reshape(self.count, [1]),
        )
        return bounds[0]

    def _update_rows(self, norms, present, percentile, history=None, count=None):
        """Per row: record ``norms`` where ``present``, return and store each row's bound."""
        flat = history is not None
        history = self.history if history is None else history
        count = self.count if count is None else count
        size = self.history_size
        if not self.include_current:
            bound = _percentile_rows(history, tf.minimum(count, size), percentile, self.interpolation)
        slot = tf.one_hot(count % size, size, on_value=True, off_value=False, dtype=tf.bool)
        write = tf.logical_and(slot, present[:, None])
        new_history = tf.where(write, norms[:, None], history)
        new_count = count + tf.cast(present, tf.int64)
        if self.include_current:
            bound = _percentile_rows(new_history, tf.minimum(new_count, size), percentile, self.interpolation)
        if flat:
            self.history.assign(tf.reshape(new_history, [size]))
            self.count.assign(tf.reshape(new_count, []))
            self.bound.assign(bound[0])
        else:
            self.history.assign(new_history)
            self.count.assign(new_count)
            self.bound.assign(bound)
        return bound

    def get_config(self):
        return {
            "percentile": float(self.percentile.numpy()),
            "history_size": self.history_size,
            "include_current": self.include_current,
            "norm": self.norm,
            "clip": self.clip,
            "interpolation": self.interpolation,
        }


def _percentile_rows(history, filled, percentile, interpolation):
    """Each row's percentile of its first ``filled`` entries (inf for an empty row).

    ``"linear"``: ``numpy.percentile`` (and ``torch.quantile``): rank ``q (n - 1)``
    between its two neighbours. ``"nearest"``: ``tfp.stats.percentile``'s default,
    which sorts descending and takes index ``round((n - 1)(1 - q))``, rounding
    halves to even; the rank is computed in float64 as there.
    """
    size = history.shape[-1]
    valid = tf.range(size, dtype=tf.int64)[None, :] < filled[:, None]
    ordered = tf.sort(tf.where(valid, history, _INF), axis=-1)
    last = tf.maximum(filled - 1, 0)
    q = tf.cast(percentile, tf.float64) / 100.0
    span = tf.cast(last, tf.float64)
    if interpolation == "linear":
        rank = q * span
        lo = tf.minimum(tf.cast(tf.floor(rank), tf.int64), last)
        hi = tf.minimum(lo + 1, last)
        frac = tf.cast(rank - tf.floor(rank), tf.float32)
        low = tf.gather(ordered, lo[:, None], batch_dims=1)[:, 0]
        high = tf.gather(ordered, hi[:, None], batch_dims=1)[:, 0]
        value = low + (high - low) * frac
    else:
        from_top = tf.cast(tf.round(span * (1.0 - q)), tf.int64)
        index = tf.clip_by_value(last - from_top, 0, last)
        value = tf.gather(ordered, index[:, None], batch_dims=1)[:, 0]
    return tf.where(filled > 0, value, _INF)


# ---------------------------------------------------------------- ZClip
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
    Measured on the ``deep_mlp`` problem of ``python -m gradlab report`` (SGD 0.5,
    200 steps, batch 32): without a cap the global norm goes 10 -> 156 -> 1836 ->
    43504 in the first four steps, the loss is non-finite from step 59 and 181 steps
    are skipped, as with no clipping at all; with ``max_grad_norm=1.0`` the run ends
    at loss 0.687 with none skipped, but it is the very same run as ``global_norm``
    at 1.0 (median norm 1.55: the cap clips 86.5% of the steps and the adaptive
    bound never binds).
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
        return _apply_bound(grads, norm, self.update(norm, self.z_threshold))

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


def check_percentile(p):
    return _checks.number("percentile", p, low=0.0, high=100.0)


def check_alpha(alpha, name="alpha"):
    return _checks.number(name, alpha, low=0.0, high=1.0, high_open=True, python=True)


def check_warmup(warmup, name="warmup"):
    return _checks.number(name, warmup, low=1, low_open=False, integer=True)


def check_history_size(size, name="history_size"):
    return _checks.number(name, size, low=1, low_open=False, integer=True)


def check_max_grad_norm(value, name="max_grad_norm"):
    """None (no cap) or a positive finite float."""
    if value is None:
        return None
    return float(_checks.number(name, value, python=True))
