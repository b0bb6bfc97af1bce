"""The threshold advisor: measure your model's gradients, recommend thresholds, verify them.

:func:`advise` trains your model for a short probe without clipping, from its
initial weights (on a copy, or on your model itself where it cannot be cloned, put
back as it began afterwards: see :mod:`gradlab.problems.state`), with gradlab's
instrumented :class:`~gradlab.training.Trainer`, and returns an :class:`Advice`:

- the global and per-layer gradient norms (median, p90, p99, max), the first
  ``warmup`` steps apart from the rest (norms usually fall after the first steps);
  spikes (steps far above their running level) and non-finite steps;
- a threshold for ``global_norm``, ``norm``, ``agc``, ``zclip`` and ``autoclip``,
  each with the rule that produced it and the clip rate it implies on the probe;
- warnings computed from the measurements (clipping that has become
  normalization, what clipping does under Adam or SGD, mixed precision, penalties);
- :meth:`Advice.verify`: unclipped against clipped at the recommendation (and at
  0.5x and 2x), from identical weights, over several seeds, with the spread.

The rules that turn the measurements into thresholds and warnings are tables in
:mod:`gradlab.explore.rules`; the verification is :mod:`gradlab.explore.verify`.
Figures of an :class:`Advice` and a :class:`Verification` are in
:mod:`gradlab.display.advice` (display imports explore, not the other way).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from gradlab import _checks
from gradlab._text import wrap
from gradlab.explore import rules
from gradlab.explore.compare import resolve_optimizer, resolve_problem
from gradlab.explore.rules import CLIPPED_NEARLY_ALWAYS, SPIKE_WINDOW, Recommendation
from gradlab.explore.verify import Verification, fit_data, verify
from gradlab.problems.builtin import Problem, first_batch
from gradlab.problems.state import kept
from gradlab.scaler.scaler import Scaler
from gradlab.training.history import History
from gradlab.training.optimizers import OPTIMIZERS
from gradlab.training.recording import layer_groups
from gradlab.training.trainer import Trainer

__all__ = [
    "CLIPPED_NEARLY_ALWAYS",
    "KERAS_LEARNING_RATES",
    "SPIKE_WINDOW",
    "Advice",
    "AdviceFrames",
    "Recommendation",
    "Verification",
    "advise",
]

# Keras' default learning rate of each named optimizer (used when a name comes without one).
KERAS_LEARNING_RATES = {"sgd": 0.01, "momentum": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}


class AdviceFrames(NamedTuple):
    """:meth:`Advice.to_pandas`: three tidy frames."""

    norms: object  # one row per (scope, phase): scope "global" or a layer; phase early, rest, all
    recommendations: object  # one row per mode
    spikes: object  # one row per spike


def _stats(values) -> dict:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"steps": 0, "median": math.nan, "p90": math.nan, "p99": math.nan, "max": math.nan}
    return {
        "steps": int(v.size),
        "median": float(np.median(v)),
        "p90": float(np.percentile(v, 90)),
        "p99": float(np.percentile(v, 99)),
        "max": float(v.max()),
    }


@dataclasses.dataclass
class Advice:
    """What the probe measured and what it recommends (see :func:`advise`).

    Attributes:
      history: the probe's :class:`History` (unclipped: ``norm_before`` is every step's global norm).
      warmup: the first ``warmup`` steps are "early"; the rest are "rest".
      percentile: the percentile used for the norm-based thresholds.
      recommendations: one :class:`Recommendation` per mode.
      spikes: ``(step, norm, running level, ratio)`` per spike.
      nonfinite_steps: steps whose gradients were not finite (skipped: no weight moved).
      warnings: what matters, from the measurements.
      optimizer: the optimizer, in words (``"Adam, learning rate 0.001"``).
      weight_norms: each layer's weight norm at the start (for AGC's ratio).
      penalty_norm: the norm of the gradient of ``model.losses`` (L2 and other
        penalties) at the start, 0 without penalties.
      probe_seconds: wall time of the probe's training steps (with the first trace).
    """

    history: History
    warmup: int
    percentile: float
    recommendations: list
    spikes: list
    nonfinite_steps: np.ndarray
    warnings: list
    optimizer: str
    weight_norms: np.ndarray
    penalty_norm: float
    probe_seconds: float
    problem: Problem = dataclasses.field(repr=False)
    batch_size: int = 32
    seed: int = 0
    spike_factor: float = 3.0
    _trainer: Trainer | None = dataclasses.field(default=None, repr=False)
    _make_optimizer: object = dataclasses.field(default=None, repr=False)

    # ------------------------------------------------------------ measurements
    @property
    def norms(self) -> np.ndarray:
        """The global gradient norm of every probe step (NaN where not finite)."""
        n = np.asarray(self.history.norm_before, np.float64).copy()
        n[~self.finite] = np.nan
        return n

    @property
    def finite(self) -> np.ndarray:
        """Per probe step: True where its gradients were finite (the step was applied)."""
        h = self.history
        return np.isfinite(h.norm_before) & (h.skipped == 0)

    def norm_stats(self, phase: str = "rest") -> dict:
        """Median, p90, p99 and max of the global norm: ``phase`` "early", "rest" or "all"."""
        phase = _checks.choice("phase", phase, ("early", "rest", "all"))
        return _stats(self.norms[self.phase(phase)])

    def layer_stats(self, phase: str = "rest") -> dict:
        """``{layer: stats}`` of each layer's gradient norm for ``phase``."""
        phase = _checks.choice("phase", phase, ("early", "rest", "all"))
        rows = self.phase(phase) & self.finite
        return {
            name: _stats(self.history.layer_norm_before[rows, j]) for j, name in enumerate(self.history.layer_names)
        }

    def phase(self, phase: str) -> np.ndarray:
        """Per probe step: True where it belongs to ``phase`` ("early", "rest" or "all")."""
        steps = self.history.steps
        return {"early": steps < self.warmup, "rest": steps >= self.warmup, "all": steps >= 0}[phase]

    def threshold(self, mode: str = "global_norm") -> float:
        """The recommended threshold for ``mode``."""
        return self.recommendation(mode).threshold

    def recommendation(self, mode: str = "global_norm") -> Recommendation:
        modes = tuple(r.mode for r in self.recommendations)
        mode = _checks.choice("mode", mode, modes)
        return self.recommendations[modes.index(mode)]

    def clip_rate(self, threshold, after_warmup: bool = False) -> float:
        """The fraction of the probe's finite steps whose global norm is above ``threshold``
        (what ``global_norm`` at that threshold would have clipped)."""
        threshold = _checks.python_number("threshold", threshold)
        _checks.boolean("after_warmup", after_warmup)
        mask = self.finite & (self.phase("rest") if after_warmup else True)
        n = self.history.norm_before[mask]
        return float((n > threshold).mean()) if n.size else math.nan

    # ------------------------------------------------------------ output
    def summary(self) -> str:
        """The advice as text: norms, spikes, recommendations with their rules, warnings (in lines of at most
        88 characters, broken between words)."""
        h, out = self.history, []
        out.append(
            wrap(
                f"gradlab advice for {self.problem.name!r}: {len(h)} probe steps without clipping, batch "
                f"{self.batch_size}, {self.optimizer}; early = the first {self.warmup} steps.",
                indent="  ",
            )
        )
        out.append("Global gradient norm:")
        for phase in ("early", "rest"):
            s = self.norm_stats(phase)
            out.append(
                f"  {phase:>5} ({s['steps']} steps): median {s['median']:.3g}, p90 {s['p90']:.3g}, "
                f"p99 {s['p99']:.3g}, max {s['max']:.3g}"
            )
        early, rest = self.layer_stats("early"), self.layer_stats("rest")
        out.append("Per layer (median early -> rest, p99 rest):")
        for name in h.layer_names:
            out.append(
                f"  {name}: {early[name]['median']:.3g} -> {rest[name]['median']:.3g}, p99 {rest[name]['p99']:.3g}"
            )
        spikes = (
            f"Spikes (norm > {self.spike_factor:g}x the median of the previous {SPIKE_WINDOW} steps): "
            + (", ".join(f"step {s} ({r:.1f}x)" for s, _, _, r in self.spikes[:8]) or "none")
            + (f" and {len(self.spikes) - 8} more" if len(self.spikes) > 8 else "")
        )
        out.append(wrap(spikes, indent="  "))
        out.append(
            f"Non-finite steps: {len(self.nonfinite_steps)}"
            + (f" (first at step {int(self.nonfinite_steps[0])})" if len(self.nonfinite_steps) else "")
        )
        out.append("Recommended thresholds:")
        for r in self.recommendations:
            rate = (
                ""
                if math.isnan(r.clip_rate)
                else f"; clips {r.clip_rate:.0%} of probe steps ({r.clip_rate_after_warmup:.0%} after warm-up)"
            )
            value = "n/a" if math.isnan(r.threshold) else f"{r.threshold:.3g}"
            out.append(wrap(f"  {r.mode}: {value}  [{r.rule}{rate}]", indent="    "))
        if self.warnings:
            out.append("Warnings:")
            out += [wrap(f"  - {w}", indent="    ") for w in self.warnings]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (
            f"Advice(problem={self.problem.name!r}, steps={len(self.history)}, "
            f"global_norm={self.threshold('global_norm'):.3g}, spikes={len(self.spikes)}, "
            f"nonfinite={len(self.nonfinite_steps)}, warnings={len(self.warnings)})"
        )

    def to_pandas(self) -> AdviceFrames:
        """``(norms, recommendations, spikes)`` as pandas DataFrames."""
        import pandas as pd

        rows = []
        for phase in ("early", "rest", "all"):
            rows.append({"scope": "global", "phase": phase, **self.norm_stats(phase)})
            rows += [{"scope": name, "phase": phase, **s} for name, s in self.layer_stats(phase).items()]
        recs = pd.DataFrame([r._asdict() for r in self.recommendations])
        spikes = pd.DataFrame(self.spikes, columns=["step", "norm", "running_level", "ratio"])
        return AdviceFrames(pd.DataFrame(rows), recs, spikes)

    # ------------------------------------------------------------ verification
    def verify(
        self,
        seeds=3,
        steps: int | None = None,
        factors=(0.5, 1.0, 2.0),
        mode: str = "global_norm",
        validation_data=None,
        progress: bool = False,
    ) -> Verification:
        """Train unclipped and clipped at ``factor * threshold`` for each factor, over several seeds.

        Every run of a seed starts from the same initial weights (the probe's) and
        sees the same batches in the same order; seeds change the order (arrays
        are shuffled with the seed; a dataset's batches are permuted by it).

        Args:
          seeds: how many seeds (0, 1, ...), or a list of seeds.
          steps: steps per run (default: the probe's).
          factors: multiples of the recommended threshold to try (1.0 is the recommendation).
          mode: the mode whose recommendation is verified.
          validation_data: held-out data (default: the problem's); without it
            only training losses are compared.

        Returns:
          A :class:`Verification` with one row per (seed, run) and the spread over seeds
          (see :func:`gradlab.explore.verify.verify`).
        """
        return verify(self, self._trainer, seeds, steps, factors, mode, validation_data, progress)


def advise(
    model,
    x=None,
    y=None,
    *,
    loss=None,
    optimizer="adam",
    learning_rate: float | None = None,
    steps: int = 200,
    batch_size: int = 32,
    validation_data=None,
    warmup: int | None = None,
    percentile: float = 90.0,
    spike_factor: float = 3.0,
    seed: int = 0,
    progress: bool = False,
    **trainer_options,
) -> Advice:
    """Probe your model's gradients without clipping and recommend clipping thresholds.

    Args:
      model: a built Keras model (Sequential, Functional or subclassed; the probe
        trains a copy with its current weights and seed state, or, where it cannot
        be cloned, the model itself, whose every variable is put back afterwards,
        after an error or an interrupt too), a function that builds one, a
        :class:`~gradlab.problems.Problem` or a built-in problem's name.
      x, y: training arrays, or ``x`` a ``tf.data.Dataset`` of ``(x, y)`` batches.
      loss: a Keras loss, its name or ``loss(y_true, y_pred)``.
      optimizer: a name (``"sgd"``, ``"momentum"``, ``"adam"``, ``"adamw"``,
        ``"rmsprop"``; without ``learning_rate``, Keras' default for it) or a
        function returning a new Keras optimizer (``lambda: keras.optimizers.Adam(3e-4)``),
        or a ``LossScaleOptimizer`` factory for mixed precision.
      steps: probe steps (at least 2: some for warm-up, the rest measured).
      batch_size: samples per step (arrays only; a dataset brings its batches).
      validation_data: held-out data for :meth:`Advice.verify`.
      warmup: the first steps, reported apart (default ``steps // 10``, at least 1).
      percentile: the percentile of the norms after warm-up that the norm
        thresholds take (default 90: clips about 10% of the later steps).
      spike_factor: a step is a spike when its norm is over this many times the
        median of the previous 20 steps.
      seed: the data order's seed (and the builder's, for a model function).
      trainer_options: options of :class:`Trainer` (``accumulate``, ``jit_compile``, ...).

    >>> net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(128, 4)).astype("float32"); y = x[:, :1] ** 2
    >>> advice = advise(net, x, y, loss="mse", optimizer="adam", steps=20, batch_size=16)
    >>> rest = advice.history.norm_before[advice.warmup:]
    >>> bool(np.isclose(advice.threshold("global_norm"), np.percentile(rest, 90)))
    True
    """
    problem = resolve_problem(model, x, y, loss, validation_data, _checks.size("seed", seed, low=0))
    if isinstance(optimizer, str) and learning_rate is None:
        learning_rate = KERAS_LEARNING_RATES[_checks.choice("optimizer", optimizer, tuple(OPTIMIZERS))]
    make = resolve_optimizer(optimizer, learning_rate)
    steps = _checks.size("steps", steps, low=2)
    batch_size = _checks.size("batch_size", batch_size)
    warmup = max(1, steps // 10) if warmup is None else warmup
    warmup = _checks.python_number("warmup", warmup, low=0, low_open=False, high=steps - 1, integer=True)
    percentile = _checks.python_number("percentile", percentile, low=0.0, high=100.0)
    spike_factor = _checks.python_number("spike_factor", spike_factor, low=1.0)
    _checks.boolean("progress", progress)
    _checks.known_options(trainer_options, Trainer, "advise")
    if problem.dataset is None and batch_size > len(problem.x):
        raise ValueError(
            f"Argument `batch_size` must be at most the number of samples ({len(problem.x)}). "
            f"Received: batch_size={batch_size}"
        )
    opt = make()
    with kept(problem.own_model):  # your model itself, where it cannot be cloned: put back as it began
        scaler = Scaler("none", modes="all")
        trainer = Trainer(problem.model(), problem.loss, opt, scaler, label="probe", **trainer_options)
        weight_norms = _layer_weight_norms(trainer.variables)
        penalty = _penalty_norm(trainer, problem)
        data = fit_data(problem, steps * trainer.accumulate, None)
        start = time.perf_counter()
        h = trainer.fit(**data, steps=steps, batch_size=batch_size, seed=seed, progress=progress)
        seconds = time.perf_counter() - start
    finite = np.isfinite(h.norm_before) & (h.skipped == 0)
    advice = Advice(
        history=h,
        warmup=warmup,
        percentile=percentile,
        recommendations=[],
        spikes=_spikes(h.norm_before, finite, spike_factor),
        nonfinite_steps=np.flatnonzero(~finite),
        warnings=[],
        optimizer=_describe(opt),
        weight_norms=weight_norms,
        penalty_norm=penalty,
        probe_seconds=seconds,
        problem=problem,
        batch_size=batch_size,
        seed=seed,
        spike_factor=spike_factor,
        _trainer=trainer,
        _make_optimizer=make,
    )
    advice.recommendations = rules.recommend(advice)
    advice.warnings = rules.warnings(advice, trainer)
    return advice


# ------------------------------------------------------------ the probe's measurements
def _describe(opt) -> str:
    inner = getattr(opt, "inner_optimizer", None)
    if isinstance(opt, keras.optimizers.LossScaleOptimizer) and inner is not None:
        return f"{_describe(inner)} with loss scaling"
    words = type(opt).__name__
    lr = getattr(opt, "learning_rate", None)
    try:
        words += f", learning rate {float(lr):g}"
    except (TypeError, ValueError):
        pass
    momentum = float(getattr(opt, "momentum", 0.0) or 0.0) if isinstance(opt, keras.optimizers.SGD) else 0.0
    return words + (f", momentum {momentum:g}" if momentum else "")


def _layer_weight_norms(variables) -> np.ndarray:
    """Each layer's weight norm (the layers of the probe's History), now."""
    _, one_hot = layer_groups(variables)
    squares = np.array([float(np.sum(np.square(v.numpy().astype(np.float64)))) for v in variables])
    return np.sqrt(squares @ one_hot)


def _penalty_norm(trainer: Trainer, problem: Problem) -> float:
    """The norm of the gradient of the model's penalties (``model.losses``) at the initial weights."""
    sample = first_batch(problem.dataset)[0] if problem.dataset is not None else problem.x[: min(32, len(problem.x))]
    with tf.GradientTape() as tape:
        trainer.model(sample, training=True)
        losses = list(trainer.model.losses)
        total = tf.add_n([tf.cast(v, tf.float32) for v in losses]) if losses else None
    if total is None:
        return 0.0
    grads = [g for g in tape.gradient(total, trainer.variables) if g is not None]
    return float(tf.linalg.global_norm(grads)) if grads else 0.0


def _spikes(norms, finite, factor) -> list:
    """``(step, norm, level, ratio)`` where the norm is over ``factor`` x the median of the previous finite norms."""
    out, seen = [], []
    for t, (n, ok) in enumerate(zip(np.asarray(norms, np.float64), finite)):
        if not ok:
            continue
        recent = seen[-SPIKE_WINDOW:]
        if len(recent) >= 5:
            level = float(np.median(recent))
            if level > 0 and n > factor * level:
                out.append((t, float(n), level, float(n / level)))
        seen.append(float(n))
    return out
