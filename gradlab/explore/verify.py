"""The verification of an :class:`~gradlab.explore.advise.Advice`: short runs, unclipped against clipped.

:func:`verify` trains unclipped and clipped at multiples of a recommended
threshold over several seeds, every run of a seed from the same initial weights
and batches, and returns a :class:`Verification`: one row per (seed, run), the
spread over seeds, and a verdict (helped, hurt, no clear effect) per run.
:meth:`Advice.verify <gradlab.explore.advise.Advice.verify>` calls it.
"""

from __future__ import annotations

import math

import numpy as np

from gradlab import _checks
from gradlab._text import wrap
from gradlab.problems.builtin import Problem, replay
from gradlab.problems.state import kept
from gradlab.scaler.modes import MODES

__all__ = ["Verification", "fit_data", "verify"]


def fit_data(problem: Problem, batches: int, seed) -> dict:
    """The training data as :meth:`Trainer.fit`'s keywords; a dataset's batches are read once, replayed
    (permuted by ``seed`` when one is given)."""
    if problem.dataset is None:
        return {"x": problem.x, "y": problem.y}
    return {"dataset": replay(problem.dataset, batches, seed)}


def verify(
    advice,
    trainer,
    seeds=3,
    steps=None,
    factors=(0.5, 1.0, 2.0),
    mode="global_norm",
    validation_data=None,
    progress=False,
) -> Verification:
    """Train unclipped and clipped at ``factor * threshold`` for each factor, over several seeds
    (see :meth:`Advice.verify <gradlab.explore.advise.Advice.verify>`), with the probe's ``trainer``.

    Where the probe trained your model itself (it cannot be cloned), every variable
    of it is put back after the runs, after an error or an interrupt too.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list, tuple)):
        raise _checks._fail("seeds", "a number of seeds (an integer >= 1) or a list of seeds", seeds)
    seed_list = list(range(_checks.size("seeds", seeds))) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise _checks._fail("seeds", "a number of seeds (an integer >= 1) or a non-empty list of seeds", seeds)
    seed_list = [_checks.size(f"seeds[{i}]", s, low=0) for i, s in enumerate(seed_list)]
    steps = len(advice.history) if steps is None else _checks.size("steps", steps)
    if isinstance(factors, (str, bytes)) or not isinstance(factors, (list, tuple)) or not factors:
        raise _checks._fail("factors", "a non-empty list of positive numbers", factors)
    factors = [_checks.python_number(f"factors[{i}]", f) for i, f in enumerate(factors)]
    rec = advice.recommendation(mode)
    if not math.isfinite(rec.threshold):
        raise ValueError(
            f"Argument `mode` must be a mode with a recommended threshold. Received: mode={mode!r} "
            f"(its threshold is {rec.threshold})"
        )
    _checks.boolean("progress", progress)
    val = validation_data if validation_data is not None else advice.problem.validation_data
    arms = [("none", MODES["none"].default, math.nan, "none")]
    arms += [(mode, rec.threshold * f, f, f"{mode}={rec.threshold * f:.3g}") for f in factors]
    tail = max(1, steps // 10)
    rows, histories = [], {label: [] for *_, label in arms}
    with kept(advice.problem.own_model):  # your model itself, where it cannot be cloned: put back after
        for seed in seed_list:
            data = fit_data(advice.problem, steps * trainer.accumulate, seed)
            for arm_mode, threshold, factor, label in arms:
                trainer.reset()
                trainer.scaler.set(mode=arm_mode, threshold=threshold)
                trainer.label = label
                h = trainer.fit(
                    **data,
                    steps=steps,
                    batch_size=advice.batch_size,
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
