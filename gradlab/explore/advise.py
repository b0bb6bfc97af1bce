"""The threshold advisor: measure your model's gradients, recommend thresholds, verify them.

:func:`advise` trains your model for a short probe without clipping, from its
initial weights (on a copy: your model is not trained), with gradlab's
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

Figures of an :class:`Advice` and a :class:`Verification` are in
:mod:`gradlab.display.advice` (display imports training, not the other way).
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
from gradlab.explore.compare import resolve_optimizer, resolve_problem
from gradlab.problems.builtin import Problem, first_batch, replay
from gradlab.scaler.modes import MODES
from gradlab.scaler.scaler import Scaler
from gradlab.scaling.adaptive import AutoClip, ZClip
from gradlab.training.history import History
from gradlab.training.optimizers import OPTIMIZERS
from gradlab.training.recording import layer_groups
from gradlab.training.trainer import Trainer

__all__ = ["Advice", "AdviceFrames", "KERAS_LEARNING_RATES", "Recommendation", "Verification", "advise"]

# Keras' default learning rate of each named optimizer (used when a name comes without one).
KERAS_LEARNING_RATES = {"sgd": 0.01, "momentum": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
# Optimizers whose update divides by a running scale of the gradient: multiplying every gradient
# by one constant leaves their update unchanged (up to epsilon; Lion takes the sign).
_SCALE_FREE = tuple(
    getattr(keras.optimizers, n)
    for n in ("Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad", "Adafactor", "Lion")
    if hasattr(keras.optimizers, n)
)
CLIPPED_NEARLY_ALWAYS = 0.9  # a clip rate at or above this: clipping has become normalization
SPIKE_WINDOW = 20  # steps of running level for spikes


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
        n[~self._finite] = np.nan
        return n

    @property
    def _finite(self) -> np.ndarray:
        h = self.history
        return np.isfinite(h.norm_before) & (h.skipped == 0)

    def norm_stats(self, phase: str = "rest") -> dict:
        """Median, p90, p99 and max of the global norm: ``phase`` "early", "rest" or "all"."""
        phase = _checks.choice("phase", phase, ("early", "rest", "all"))
        return _stats(self.norms[self._phase(phase)])

    def layer_stats(self, phase: str = "rest") -> dict:
        """``{layer: stats}`` of each layer's gradient norm for ``phase``."""
        phase = _checks.choice("phase", phase, ("early", "rest", "all"))
        rows = self._phase(phase) & self._finite
        return {
            name: _stats(self.history.layer_norm_before[rows, j]) for j, name in enumerate(self.history.layer_names)
        }

    def _phase(self, phase):
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
        mask = self._finite & (self._phase("rest") if after_warmup else True)
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
          A :class:`Verification` with one row per (seed, run) and the spread over seeds.
        """
        if isinstance(seeds, bool) or not isinstance(seeds, (int, list, tuple)):
            raise _checks._fail("seeds", "a number of seeds (an integer >= 1) or a list of seeds", seeds)
        seed_list = list(range(_checks.size("seeds", seeds))) if isinstance(seeds, int) else list(seeds)
        if not seed_list:
            raise _checks._fail("seeds", "a number of seeds (an integer >= 1) or a non-empty list of seeds", seeds)
        seed_list = [_checks.size(f"seeds[{i}]", s, low=0) for i, s in enumerate(seed_list)]
        steps = len(self.history) if steps is None else _checks.size("steps", steps)
        if isinstance(factors, (str, bytes)) or not isinstance(factors, (list, tuple)) or not factors:
            raise _checks._fail("factors", "a non-empty list of positive numbers", factors)
        factors = [_checks.python_number(f"factors[{i}]", f) for i, f in enumerate(factors)]
        rec = self.recommendation(mode)
        if not math.isfinite(rec.threshold):
            raise ValueError(
                f"Argument `mode` must be a mode with a recommended threshold. Received: mode={mode!r} "
                f"(its threshold is {rec.threshold})"
            )
        _checks.boolean("progress", progress)
        val = validation_data if validation_data is not None else self.problem.validation_data
        arms = [("none", MODES["none"].default, math.nan, "none")]
        arms += [(mode, rec.threshold * f, f, f"{mode}={rec.threshold * f:.3g}") for f in factors]
        trainer = self._trainer
        tail = max(1, steps // 10)
        rows, histories = [], {label: [] for *_, label in arms}
        for seed in seed_list:
            data = _fit_data(self.problem, steps * trainer.accumulate, seed)
            for arm_mode, threshold, factor, label in arms:
                trainer.reset()
                trainer.scaler.set(mode=arm_mode, threshold=threshold)
                trainer.label = label
                h = trainer.fit(
                    **data,
                    steps=steps,
                    batch_size=self.batch_size,
                    seed=seed,
                    progress=progress,
                    validation_data=val,
                    validation_every=steps,
                )
                histories[label].append(h)
                losses = h.loss[-tail:]
                rows.append(
                    {
                        "seed": seed,
                        "run": label,
                        "mode": arm_mode,
                        "threshold": threshold if arm_mode != "none" else math.nan,
                        "factor": factor,
                        "final_loss": float(np.mean(losses)) if np.isfinite(losses).all() else math.nan,
                        "val_loss": float(h.val_loss[-1]) if len(h.val_loss) else math.nan,
                        "val_accuracy": float(h.val_accuracy[-1]) if len(h.val_accuracy) else math.nan,
                        "clip_rate": h.clip_rate,
                        "skipped": int(h.skipped.sum()),
                    }
                )
        return Verification(rows, histories, [a[-1] for a in arms], tail, mode, rec.threshold)


class Verification:
    """Per-seed results of :meth:`Advice.verify`, and their spread over seeds.

    Attributes:
      rows: one dict per (seed, run): seed, run, mode, threshold, factor,
        final_loss (mean training loss over the last ``tail`` steps), val_loss,
        val_accuracy (NaN without validation data or a classification loss),
        clip_rate, skipped.
      histories: ``{run label: [History per seed]}``.
      runs: the run labels, unclipped first.
    """

    def __init__(self, rows, histories, runs, tail, mode, threshold):
        self.rows, self.histories, self.runs, self.tail = rows, histories, runs, tail
        self.mode, self.recommended = mode, threshold

    @property
    def metric(self) -> str:
        """The loss compared: ``"val_loss"`` with validation data, else ``"final_loss"``."""
        return "val_loss" if all(np.isfinite(r["val_loss"]) for r in self.rows) else "final_loss"

    @property
    def seeds(self) -> list:
        return sorted({r["seed"] for r in self.rows})

    def values(self, run: str, metric: str | None = None) -> np.ndarray:
        """``metric`` of ``run`` per seed, in seed order."""
        metric = self.metric if metric is None else metric
        by_seed = {r["seed"]: r[metric] for r in self.rows if r["run"] == run}
        return np.array([by_seed[s] for s in self.seeds], np.float64)

    def spread(self, run: str, metric: str | None = None) -> dict:
        """Mean, standard deviation (ddof=1; NaN with one seed), min and max over seeds."""
        v = self.values(run, metric)
        return {
            "mean": float(np.mean(v)),
            "std": float(np.std(v, ddof=1)) if v.size > 1 else math.nan,
            "min": float(np.min(v)),
            "max": float(np.max(v)),
            "seeds": int(v.size),
        }

    def effect(self, run: str, metric: str | None = None) -> dict:
        """``run`` minus unclipped, seed by seed (same weights and data order): mean, standard error, wins."""
        d = self.values(run, metric) - self.values(self.runs[0], metric)
        se = float(np.std(d, ddof=1) / np.sqrt(d.size)) if d.size > 1 else math.nan
        return {"mean": float(np.mean(d)), "se": se, "lower_in": int((d < 0).sum()), "seeds": int(d.size)}

    def verdict(self, run: str, metric: str | None = None) -> str:
        """Helped, hurt or no clear effect: helped/hurt when every seed moved the same way and the mean
        change is over two standard errors of the paired differences."""
        e = self.effect(run, metric)
        if all(r["clip_rate"] == 0 for r in self.rows if r["run"] == run):
            return "never clipped: the same as unclipped"
        if e["seeds"] < 2 or not np.isfinite(e["se"]):
            return "one seed: no spread to judge by"
        if e["lower_in"] == e["seeds"] and -e["mean"] > 2 * e["se"]:
            return "helped"
        if e["lower_in"] == 0 and e["mean"] > 2 * e["se"]:
            return "hurt"
        return "no clear effect"

    def to_pandas(self):
        """The per-seed rows as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def summary_frame(self):
        """One row per run: mean, std, min, max over seeds of the compared loss, the change and the verdict."""
        import pandas as pd

        rows = []
        for run in self.runs:
            s, e = self.spread(run), self.effect(run)
            rows.append(
                {
                    "run": run,
                    **s,
                    "change": e["mean"],
                    "change_se": e["se"],
                    "verdict": "" if run == self.runs[0] else self.verdict(run),
                }
            )
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """The verification as text: one run per line, its change against ``none`` on the next (lines of at most
        88 characters)."""
        metric = {"val_loss": "validation loss", "final_loss": f"training loss (mean of the last {self.tail} steps)"}
        out = [
            wrap(
                f"Verification over {len(self.seeds)} seeds ({self.seeds}): {metric[self.metric]}, "
                "mean ± std over seeds.",
                indent="  ",
            )
        ]
        for run in self.runs:
            s = self.spread(run)
            out.append(
                wrap(
                    f"  {run:>22}: {s['mean']:.4g} ± {s['std']:.2g} (min {s['min']:.4g}, max {s['max']:.4g})",
                    indent="    ",
                )
            )
            if run != self.runs[0]:
                e = self.effect(run)
                change = (
                    f"      change {e['mean']:+.3g} ± {e['se']:.2g} (se), lower in {e['lower_in']}/{e['seeds']} seeds: "
                    f"{self.verdict(run)}"
                )
                out.append(wrap(change, indent="        "))
        return "\n".join(out)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"Verification(runs={self.runs!r}, seeds={self.seeds!r}, metric={self.metric!r})"


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
        trains a copy with its current weights), a function that builds one, a
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
    trainer = Trainer(problem.model(), problem.loss, opt, Scaler("none", modes="all"), label="probe", **trainer_options)
    weight_norms = _layer_weight_norms(trainer.variables)
    penalty = _penalty_norm(trainer, problem)
    data = _fit_data(problem, steps * trainer.accumulate, None)
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
    advice.recommendations = _recommend(advice)
    advice.warnings = _warnings(advice, trainer)
    return advice


# ------------------------------------------------------------ the probe's measurements
def _fit_data(problem: Problem, batches: int, seed) -> dict:
    if problem.dataset is None:
        return {"x": problem.x, "y": problem.y}
    return {"dataset": replay(problem.dataset, batches, seed)}


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


def _recommend(a: Advice) -> list:
    h, p = a.history, a.percentile
    finite, rest = a._finite, a._phase("rest")
    norms = np.asarray(h.norm_before, np.float64)
    span = f"steps {a.warmup}-{len(h) - 1}"
    recs = []

    def by_percentile(mode, values, what, extra=""):
        pool = values[finite & rest]
        if not pool.size:
            recs.append(Recommendation(mode, math.nan, f"no finite {what} after warm-up", math.nan, math.nan))
            return
        threshold = float(np.percentile(pool, p))
        rule = f"p{p:g} of {what} after warm-up ({span}, {pool.size} finite steps): {threshold:.3g}{extra}"
        recs.append(Recommendation(mode, threshold, rule, *_rates(values, threshold, finite, rest)))

    by_percentile("global_norm", norms, "the global gradient norm")
    layers = np.asarray(h.layer_norm_before, np.float64)
    largest = layers.max(axis=1) if layers.size else np.full(len(h), math.nan)
    by_percentile(
        "norm",
        largest,
        "the largest per-layer norm",
        "; a layer's norm bounds its tensors' (Keras clipnorm clips each tensor), so `norm` clips at most this often",
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(a.weight_norms > 0, layers / a.weight_norms, np.nan)
    ratio = np.full(len(h), math.nan)
    rows = np.isfinite(ratios).any(axis=1) if layers.size else np.zeros(len(h), bool)
    ratio[rows] = np.nanmax(ratios[rows], axis=1)
    default_rate = _rates(ratio, MODES["agc"].default, finite, rest)[0]
    by_percentile(
        "agc",
        ratio,
        "the largest per-layer ||g|| / ||w|| (weights at the start)",
        f"; AGC clips unit by unit against the current weights, so this is an estimate. At the paper's default "
        f"{MODES['agc'].default:g}, {default_rate:.0%} of probe steps have a layer above it",
    )
    recs.append(
        Recommendation(
            "value",
            math.nan,
            "none: the probe measures norms, not single entries, and clipvalue changes the gradient's direction",
            math.nan,
            math.nan,
        )
    )
    z = MODES["zclip"].default
    zclip = ZClip(z_threshold=z, warmup=min(25, max(1, int(finite.sum()) // 4)))
    clipped = _simulated(zclip, norms, finite, z)
    recs.append(
        Recommendation(
            "zclip",
            float(z),
            f"ZClip's default z = {z:g} (Kumar et al. 2025), run on the probe's norms with gradlab's ZClip "
            f"(EMA alpha {zclip.alpha:g}, warm-up {zclip.warmup} steps)",
            float(clipped[finite].mean()) if finite.any() else math.nan,
            float(clipped[finite & rest].mean()) if (finite & rest).any() else math.nan,
        )
    )
    q = MODES["autoclip"].default
    clipped = _simulated(AutoClip(percentile=q, history_size=max(1, len(h))), norms, finite, q)
    recs.append(
        Recommendation(
            "autoclip",
            float(q),
            f"AutoClip's default percentile {q:g} (Seetharaman et al. 2020), run on the probe's norms",
            float(clipped[finite].mean()) if finite.any() else math.nan,
            float(clipped[finite & rest].mean()) if (finite & rest).any() else math.nan,
        )
    )
    return recs


def _warnings(a: Advice, trainer: Trainer) -> list:
    h, out = a.history, []
    g = a.recommendation("global_norm")
    for r in a.recommendations:
        if np.isfinite(r.clip_rate) and r.clip_rate >= CLIPPED_NEARLY_ALWAYS:
            out.append(
                f"{r.mode} at {r.threshold:.3g} would clip {r.clip_rate:.0%} of the probe's steps: clipping on "
                "(nearly) every step is normalization, a smaller learning rate by another name. Lower the learning "
                "rate instead, or clip less often."
            )
    early, rest = a.norm_stats("early"), a.norm_stats("rest")
    if early["steps"] and rest["steps"] and rest["median"] > 0 and early["median"] > 2 * rest["median"]:
        early_rate = a.clip_rate(g.threshold) if np.isfinite(g.threshold) else math.nan
        early_only = float((h.norm_before[: a.warmup] > g.threshold).mean()) if np.isfinite(g.threshold) else math.nan
        out.append(
            f"The norms fall after the first steps: the median of the first {a.warmup} steps ({early['median']:.3g}) "
            f"is {early['median'] / rest['median']:.1f}x that of the rest ({rest['median']:.3g}). The recommended "
            f"global_norm {g.threshold:.3g} clips {early_only:.0%} of the early steps ({early_rate:.0%} overall); "
            "a threshold taken from the early steps would hardly ever clip later."
        )
    opt = trainer.optimizer
    if isinstance(opt, _SCALE_FREE) and np.isfinite(g.threshold):
        out.append(
            f"Under {type(opt).__name__} the update divides by a running scale of the gradient: multiplying every "
            "gradient by one constant leaves the update unchanged (up to epsilon), so a constant clip factor barely "
            f"changes the update. Clipping matters only on the steps it clips ({g.clip_rate:.0%} of the probe at "
            f"{g.threshold:.3g}), whose weight in the moment estimates it lowers: insurance against spikes "
            f"({len(a.spikes)} in the probe), not a smaller step."
        )
    elif isinstance(opt, keras.optimizers.SGD) and np.isfinite(g.threshold):
        lr = float(opt.learning_rate)
        momentum = float(opt.momentum or 0.0)
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
        out.append(text)
    scales = h.loss_scale[np.isfinite(h.loss_scale)]
    mixed = trainer.loss_scaler is not None or keras.mixed_precision.global_policy().name.startswith("mixed")
    if mixed:
        span = f"{scales.min():g} to {scales.max():g}" if scales.size else "unknown"
        out.append(
            f"Mixed precision: the norms were measured after unscaling (loss scale {span} during the probe), on the "
            "true gradients in float32: the thresholds apply to the unscaled gradients, where gradlab (and Keras' "
            "LossScaleOptimizer) clip."
        )
    if a.penalty_norm > 0:
        median = rest["median"]
        share = f", {a.penalty_norm / median:.0%} of the median global norm after warm-up ({median:.3g})"
        out.append(
            f"The model's penalties (L2 and other model.losses) add a gradient of norm {a.penalty_norm:.3g} at the "
            f"initial weights{share if median > 0 else ''}: they are in the norms above, and clipping scales them "
            "with the data's gradient. Decoupled weight decay (AdamW's weight_decay) is not part of the gradient and "
            "is never clipped."
        )
    if len(a.nonfinite_steps):
        out.append(
            f"{len(a.nonfinite_steps)} probe steps had non-finite gradients (first at step "
            f"{int(a.nonfinite_steps[0])}); they were skipped and no weight moved. Clipping cannot repair them: look "
            "for their cause (a learning rate too high, log(0), an overflow in float16)."
        )
    if a.spikes:
        step, norm, level, ratio = max(a.spikes, key=lambda s: s[3])
        cut = f"; clipping at {g.threshold:.3g} would have cut it {norm / g.threshold:.1f}x" if g.threshold > 0 else ""
        out.append(
            f"{len(a.spikes)} spikes (norm over {a.spike_factor:g}x the median of the previous {SPIKE_WINDOW} steps); "
            f"the largest at step {step}: {norm:.3g}, {ratio:.1f}x its running level {level:.3g}{cut}."
        )
    losses = h.loss[np.isfinite(h.loss)]
    tail = max(1, len(h) // 10)
    if not np.isfinite(h.loss[-tail:]).all() or (
        losses.size and np.mean(h.loss[-tail:]) > 2 * np.mean(h.loss[: max(1, a.warmup)])
    ):
        out.append(
            "The loss grew during the probe (last steps over twice the first): training diverges at this learning "
            "rate without clipping; try a smaller learning rate before choosing a threshold."
        )
    return out
