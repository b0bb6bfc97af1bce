"""The advisor's rules, as tables: how each mode's threshold is found, and when each warning is given.

:data:`RECIPES` holds one :class:`Recipe` per mode (the rule that turns the
probe's norms into a threshold); :data:`WARNINGS` one :class:`Rule` per warning
(its condition and its text), read in order. Both read an
:class:`~gradlab.explore.advise.Advice` (and the probe's
:class:`~gradlab.training.Trainer`); :func:`recommend` and :func:`warnings`
apply them. A new rule is one more record.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from gradlab.scaler.modes import MODES
from gradlab.scaling.autoclip import AutoClip
from gradlab.scaling.zclip import ZClip

__all__ = [
    "CLIPPED_NEARLY_ALWAYS",
    "RECIPES",
    "SPIKE_WINDOW",
    "WARNINGS",
    "Recipe",
    "Recommendation",
    "Rule",
    "recommend",
    "warnings",
]

CLIPPED_NEARLY_ALWAYS = 0.9  # a clip rate at or above this: clipping has become normalization
SPIKE_WINDOW = 20  # steps of running level for spikes
# Optimizers whose update divides by a running scale of the gradient: multiplying every gradient
# by one constant leaves their update unchanged (up to epsilon; Lion takes the sign).
SCALE_FREE = tuple(
    getattr(keras.optimizers, n)
    for n in ("Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad", "Adafactor", "Lion")
    if hasattr(keras.optimizers, n)
)


class Recommendation(NamedTuple):
    """A threshold for one mode, how it was found, and what it would have done on the probe.

    Attributes:
      mode: the gradlab mode (``"global_norm"`` is Keras' ``global_clipnorm``).
      threshold: the recommended threshold (NaN where the probe cannot tell).
      rule: the rule that produced it, with the numbers it used.
      clip_rate: fraction of the probe's finite steps it would have clipped.
      clip_rate_after_warmup: the same, over the steps after warm-up.
    """

    mode: str
    threshold: float
    rule: str
    clip_rate: float
    clip_rate_after_warmup: float


class Recipe(NamedTuple):
    """How the threshold of one mode is read from the probe.

    Attributes:
      mode: the gradlab mode.
      recommend: ``fn(advice) -> Recommendation``.
    """

    mode: str
    recommend: Callable


class Rule(NamedTuple):
    """One warning of the advisor.

    Attributes:
      name: what it is about, in a word or two.
      when: ``fn(advice, trainer) -> bool``: whether it applies.
      say: ``fn(advice, trainer) -> str``: its text (called only where it applies).
    """

    name: str
    when: Callable
    say: Callable


def recommend(advice) -> list:
    """One :class:`Recommendation` per record of :data:`RECIPES`, in order."""
    return [recipe.recommend(advice) for recipe in RECIPES]


def warnings(advice, trainer) -> list:
    """The text of every rule of :data:`WARNINGS` that applies, in order."""
    return [rule.say(advice, trainer) for rule in WARNINGS if rule.when(advice, trainer)]


# ------------------------------------------------------------ recommendations
def _rates(values, threshold, finite, rest) -> tuple[float, float]:
    over = values > threshold
    a = float(over[finite].mean()) if finite.any() else math.nan
    b = float(over[finite & rest].mean()) if (finite & rest).any() else math.nan
    return a, b


def _simulated(transform, norms, finite, argument) -> np.ndarray:
    """Run an AutoClip or ZClip object over the probe's finite norms: True where it would have clipped.

    One compiled loop over all the norms (one call, one trace), with the object's own ``update``.
    """
    steps = np.flatnonzero(finite)
    clipped = np.zeros(len(norms), bool)
    if not steps.size:
        return clipped
    values = tf.constant(np.asarray(norms, np.float32)[steps])

    @tf.function
    def bounds(values, argument):
        out = tf.TensorArray(tf.float32, size=tf.shape(values)[0])
        for i in tf.range(tf.shape(values)[0]):
            out = out.write(i, tf.cast(transform.update(values[i], argument), tf.float32))
        return out.stack()

    clipped[steps] = values.numpy() > bounds(values, tf.constant(argument, tf.float32)).numpy()
    return clipped


def _by_percentile(a, mode, values, what, extra="") -> Recommendation:
    """The ``a.percentile``-th percentile of ``values`` over the finite steps after warm-up."""
    finite, rest = a.finite, a.phase("rest")
    pool = values[finite & rest]
    if not pool.size:
        return Recommendation(mode, math.nan, f"no finite {what} after warm-up", math.nan, math.nan)
    threshold = float(np.percentile(pool, a.percentile))
    span = f"steps {a.warmup}-{len(a.history) - 1}"
    rule = f"p{a.percentile:g} of {what} after warm-up ({span}, {pool.size} finite steps): {threshold:.3g}{extra}"
    return Recommendation(mode, threshold, rule, *_rates(values, threshold, finite, rest))


def _layers(a) -> np.ndarray:
    return np.asarray(a.history.layer_norm_before, np.float64)


def _global_norm(a) -> Recommendation:
    return _by_percentile(a, "global_norm", np.asarray(a.history.norm_before, np.float64), "the global gradient norm")


def _norm(a) -> Recommendation:
    layers = _layers(a)
    largest = layers.max(axis=1) if layers.size else np.full(len(a.history), math.nan)
    return _by_percentile(
        a,
        "norm",
        largest,
        "the largest per-layer norm",
        "; a layer's norm bounds its tensors' (Keras clipnorm clips each tensor), so `norm` clips at most this often",
    )


def _agc(a) -> Recommendation:
    layers, n = _layers(a), len(a.history)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(a.weight_norms > 0, layers / a.weight_norms, np.nan)
    ratio = np.full(n, math.nan)
    rows = np.isfinite(ratios).any(axis=1) if layers.size else np.zeros(n, bool)
    ratio[rows] = np.nanmax(ratios[rows], axis=1)
    default_rate = _rates(ratio, MODES["agc"].default, a.finite, a.phase("rest"))[0]
    return _by_percentile(
        a,
        "agc",
        ratio,
        "the largest per-layer ||g|| / ||w|| (weights at the start)",
        f"; AGC clips unit by unit against the current weights, so this is an estimate. At the paper's default "
        f"{MODES['agc'].default:g}, {default_rate:.0%} of probe steps have a layer above it",
    )


def _value(a) -> Recommendation:
    rule = "none: the probe measures norms, not single entries, and clipvalue changes the gradient's direction"
    return Recommendation("value", math.nan, rule, math.nan, math.nan)


def _run_on_norms(a, mode, transform, argument, rule) -> Recommendation:
    finite, rest = a.finite, a.phase("rest")
    clipped = _simulated(transform, np.asarray(a.history.norm_before, np.float64), finite, argument)
    return Recommendation(
        mode,
        float(argument),
        rule,
        float(clipped[finite].mean()) if finite.any() else math.nan,
        float(clipped[finite & rest].mean()) if (finite & rest).any() else math.nan,
    )


def _zclip(a) -> Recommendation:
    z = MODES["zclip"].default
    zclip = ZClip(z_threshold=z, warmup=min(25, max(1, int(a.finite.sum()) // 4)))
    rule = (
        f"ZClip's default z = {z:g} (Kumar et al. 2025), run on the probe's norms with gradlab's ZClip "
        f"(EMA alpha {zclip.alpha:g}, warm-up {zclip.warmup} steps)"
    )
    return _run_on_norms(a, "zclip", zclip, z, rule)


def _autoclip(a) -> Recommendation:
    q = MODES["autoclip"].default
    rule = f"AutoClip's default percentile {q:g} (Seetharaman et al. 2020), run on the probe's norms"
    return _run_on_norms(a, "autoclip", AutoClip(percentile=q, history_size=max(1, len(a.history))), q, rule)


RECIPES = (
    Recipe("global_norm", _global_norm),
    Recipe("norm", _norm),
    Recipe("agc", _agc),
    Recipe("value", _value),
    Recipe("zclip", _zclip),
    Recipe("autoclip", _autoclip),
)


# ------------------------------------------------------------ warnings
def _global(a):
    return a.recommendation("global_norm")


def _clips_nearly_always(mode):
    def when(a, trainer):
        r = a.recommendation(mode)
        return bool(np.isfinite(r.clip_rate) and r.clip_rate >= CLIPPED_NEARLY_ALWAYS)

    def say(a, trainer):
        r = a.recommendation(mode)
        return (
            f"{r.mode} at {r.threshold:.3g} would clip {r.clip_rate:.0%} of the probe's steps: clipping on "
            "(nearly) every step is normalization, a smaller learning rate by another name. Lower the learning "
            "rate instead, or clip less often."
        )

    return Rule(f"{mode} clips nearly always", when, say)


def _norms_fall(a, trainer):
    early, rest = a.norm_stats("early"), a.norm_stats("rest")
    return bool(early["steps"] and rest["steps"] and rest["median"] > 0 and early["median"] > 2 * rest["median"])


def _say_norms_fall(a, trainer):
    early, rest, g = a.norm_stats("early"), a.norm_stats("rest"), _global(a)
    early_rate = a.clip_rate(g.threshold) if np.isfinite(g.threshold) else math.nan
    norms = a.history.norm_before[: a.warmup]
    early_only = float((norms > g.threshold).mean()) if np.isfinite(g.threshold) else math.nan
    return (
        f"The norms fall after the first steps: the median of the first {a.warmup} steps ({early['median']:.3g}) "
        f"is {early['median'] / rest['median']:.1f}x that of the rest ({rest['median']:.3g}). The recommended "
        f"global_norm {g.threshold:.3g} clips {early_only:.0%} of the early steps ({early_rate:.0%} overall); "
        "a threshold taken from the early steps would hardly ever clip later."
    )


def _scale_free(a, trainer):
    return isinstance(trainer.optimizer, SCALE_FREE) and bool(np.isfinite(_global(a).threshold))


def _say_scale_free(a, trainer):
    g = _global(a)
    return (
        f"Under {type(trainer.optimizer).__name__} the update divides by a running scale of the gradient: "
        "multiplying every gradient by one constant leaves the update unchanged (up to epsilon), so a constant "
        f"clip factor barely changes the update. Clipping matters only on the steps it clips ({g.clip_rate:.0%} "
        f"of the probe at {g.threshold:.3g}), whose weight in the moment estimates it lowers: insurance against "
        f"spikes ({len(a.spikes)} in the probe), not a smaller step."
    )


def _sgd(a, trainer):
    return isinstance(trainer.optimizer, keras.optimizers.SGD) and bool(np.isfinite(_global(a).threshold))


def _say_sgd(a, trainer):
    g, opt = _global(a), trainer.optimizer
    lr, momentum = float(opt.learning_rate), float(opt.momentum or 0.0)
    weights = float(np.sqrt(np.sum(a.weight_norms**2)))
    text = (
        f"Under SGD (learning rate {lr:g}) clipping at {g.threshold:.3g} bounds each step's change of the "
        f"weights to learning_rate x threshold = {lr * g.threshold:.3g} in norm ({lr * g.threshold / weights:.2%} "
        f"of the weights' norm at the start, {weights:.3g})."
    )
    if momentum:
        text += (
            f" With momentum {momentum:g} the velocity sums past gradients: a step can reach "
            f"{lr * g.threshold / (1 - momentum):.3g}, 1 / (1 - momentum) = {1 / (1 - momentum):.3g} times that."
        )
    return text


def _mixed(a, trainer):
    return trainer.loss_scaler is not None or keras.mixed_precision.global_policy().name.startswith("mixed")


def _say_mixed(a, trainer):
    scales = a.history.loss_scale[np.isfinite(a.history.loss_scale)]
    span = f"{scales.min():g} to {scales.max():g}" if scales.size else "unknown"
    return (
        f"Mixed precision: the norms were measured after unscaling (loss scale {span} during the probe), on the "
        "true gradients in float32: the thresholds apply to the unscaled gradients, where gradlab (and Keras' "
        "LossScaleOptimizer) clip."
    )


def _say_penalties(a, trainer):
    median = a.norm_stats("rest")["median"]
    share = f", {a.penalty_norm / median:.0%} of the median global norm after warm-up ({median:.3g})"
    return (
        f"The model's penalties (L2 and other model.losses) add a gradient of norm {a.penalty_norm:.3g} at the "
        f"initial weights{share if median > 0 else ''}: they are in the norms above, and clipping scales them "
        "with the data's gradient. Decoupled weight decay (AdamW's weight_decay) is not part of the gradient and "
        "is never clipped."
    )


def _say_nonfinite(a, trainer):
    return (
        f"{len(a.nonfinite_steps)} probe steps had non-finite gradients (first at step "
        f"{int(a.nonfinite_steps[0])}); they were skipped and no weight moved. Clipping cannot repair them: look "
        "for their cause (a learning rate too high, log(0), an overflow in float16)."
    )


def _say_spikes(a, trainer):
    g = _global(a)
    step, norm, level, ratio = max(a.spikes, key=lambda s: s[3])
    cut = f"; clipping at {g.threshold:.3g} would have cut it {norm / g.threshold:.1f}x" if g.threshold > 0 else ""
    return (
        f"{len(a.spikes)} spikes (norm over {a.spike_factor:g}x the median of the previous {SPIKE_WINDOW} steps); "
        f"the largest at step {step}: {norm:.3g}, {ratio:.1f}x its running level {level:.3g}{cut}."
    )


def _loss_grew(a, trainer):
    h = a.history
    losses, tail = h.loss[np.isfinite(h.loss)], max(1, len(h) // 10)
    if not np.isfinite(h.loss[-tail:]).all():
        return True
    return bool(losses.size and np.mean(h.loss[-tail:]) > 2 * np.mean(h.loss[: max(1, a.warmup)]))


def _say_loss_grew(a, trainer):
    return (
        "The loss grew during the probe (last steps over twice the first): training diverges at this learning "
        "rate without clipping; try a smaller learning rate before choosing a threshold."
    )


WARNINGS = (
    *(_clips_nearly_always(recipe.mode) for recipe in RECIPES),
    Rule("norms fall after warm-up", _norms_fall, _say_norms_fall),
    Rule("scale-free optimizer", _scale_free, _say_scale_free),
    Rule("SGD's step bound", _sgd, _say_sgd),
    Rule("mixed precision", _mixed, _say_mixed),
    Rule("penalties", lambda a, trainer: a.penalty_norm > 0, _say_penalties),
    Rule("non-finite steps", lambda a, trainer: len(a.nonfinite_steps) > 0, _say_nonfinite),
    Rule("spikes", lambda a, trainer: bool(a.spikes), _say_spikes),
    Rule("loss grew", _loss_grew, _say_loss_grew),
)
