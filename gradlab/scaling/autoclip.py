"""AutoClip: clip the global norm at a percentile of the norms seen so far.

Its state (the history of norms, the count, the bound) lives in ``tf.Variable``s owned by
the object, so a step compiled with ``tf.function`` updates it, and a checkpoint (or
``model.save`` through :class:`~gradlab.training.optimizer.ScaledOptimizer`) keeps it. The
percentile is a variable too: :meth:`AutoClip.set` changes it between steps without a retrace.

``clip(grads)`` returns the clipped gradients and updates the state. Call it once per
training step, on finite gradients (the :class:`~gradlab.scaler.scaler.Scaler` guarantees
that under every non-finite policy). In a Scaler, mode ``"autoclip"``'s record in
:mod:`gradlab.scaler.modes` calls :meth:`AutoClip.update` with the step's global norm.
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _checks
from gradlab._state import state_variable
from gradlab.scaling.clipping import clip_factor, clip_to_bound, global_norm, tensor_norms
from gradlab.scaling.kernels import scale, values_of, with_values

__all__ = ["AUTOCLIP_VARIANTS", "AutoClip", "check_history_size", "check_percentile"]

_INF = float("inf")

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
                return clip_to_bound(grads, norm, bound)
            norms = tensor_norms(grads)
        else:
            self.build(len(grads))
            norms = tensor_norms(grads)
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

    def update(self, norm, percentile, *, check: bool = True):
        """Add ``norm`` to the history and return the new bound (float32).

        ``percentile`` in (0, 100] (a number, or a tensor checked when known).
        Global norm only (``norm="global"``). ``check=False`` leaves out the check of
        ``percentile`` (its assertion in a graph), for a caller that checked it already:
        the :class:`~gradlab.scaler.scaler.Scaler` checks its threshold when it is set.
        """
        if self.norm != "global":
            raise ValueError(
                "AutoClip.update takes one global norm; this AutoClip keeps one history per tensor "
                "(norm='per_tensor'): call it on the gradients instead. Received: norm='per_tensor'"
            )
        return self._update(norm, check_percentile(percentile) if _checks.boolean("check", check) else percentile)

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


def check_percentile(p):
    return _checks.number("percentile", p, low=0.0, high=100.0)


def check_history_size(size, name="history_size"):
    return _checks.number(name, size, low=1, low_open=False, integer=True)
