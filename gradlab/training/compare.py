"""`compare`: one run per mode and threshold, from identical weights and data order."""

from __future__ import annotations

import keras

from gradlab import _checks
from gradlab.scaler.modes import check_mode, check_threshold
from gradlab.scaler.scaler import Scaler
from gradlab.training.history import History
from gradlab.training.problems import PROBLEMS, Problem, make_problem
from gradlab.training.trainer import Trainer

__all__ = ["compare", "parse_runs"]


def compare(
    problem: Problem,
    runs,
    *,
    optimizer=lambda: keras.optimizers.SGD(0.1),
    steps: int = 200,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = False,
    **trainer_options,
) -> list[History]:
    """Train one run per ``(mode, threshold)`` from identical weights and data order.

    Args:
      problem: a :class:`gradlab.problems.Problem` (its ``model()`` gives the
        same initial weights each call).
      runs: list of mode names or ``(mode, threshold)`` pairs.
      optimizer: a function returning a fresh Keras optimizer for each run.
      steps, batch_size, seed: as in :meth:`Trainer.fit` (same seed: same order).

    Returns:
      One :class:`History` per run, labelled ``"mode"`` or ``"mode=threshold"``.
    """
    if isinstance(problem, str):
        problem = make_problem(problem, seed=seed)
    if not isinstance(problem, Problem):
        raise ValueError(
            "Argument `problem` must be a gradlab.problems.Problem (such as gradlab.problems.deep_mlp()) or "
            f"the name of one of {', '.join(repr(p) for p in PROBLEMS)}. Received: problem={problem!r}"
        )
    if not callable(optimizer) or isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(
            "Argument `optimizer` must be a function returning a new optimizer for each run, such as "
            f"`lambda: keras.optimizers.SGD(0.1)`. Received: optimizer={optimizer!r}"
        )
    parsed = parse_runs(runs)
    _checks.known_options(trainer_options, Trainer, "compare")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        _checks.number(name, value, low=1, low_open=False, integer=True)
    _checks.number("seed", seed, low=0, low_open=False, integer=True)
    # One model, optimizer and compiled step for every run: reset() restores the
    # initial weights, optimizer slots, adaptive state and data order; the mode
    # and threshold are variables, so no run retraces.
    trainer = Trainer(problem.model(), problem.loss, optimizer(), Scaler(parsed[0][0], parsed[0][1]), **trainer_options)
    histories = []
    for mode, threshold, label in parsed:
        trainer.reset()
        trainer.scaler.set(mode=mode, threshold=threshold)
        trainer.label = label
        histories.append(
            trainer.fit(problem.x, problem.y, steps=steps, batch_size=batch_size, seed=seed, progress=progress)
        )
    return histories


def parse_runs(runs) -> list[tuple[str, float, str]]:
    """``runs`` (mode names or ``(mode, threshold)`` pairs) as ``(mode, threshold, label)`` triples."""
    if isinstance(runs, (str, bytes)) or not isinstance(runs, (list, tuple)):
        raise ValueError(
            "Argument `runs` must be a list of mode names or (mode, threshold) pairs, such as "
            f"['none', ('global_norm', 1.0)]. Received: runs={runs!r}"
        )
    if not runs:
        raise ValueError("Argument `runs` must name at least one mode. Received: runs=[]")
    parsed = []
    for i, run in enumerate(runs):
        if isinstance(run, str):
            mode, threshold = run, None
        elif isinstance(run, (list, tuple)) and len(run) == 2:
            mode, threshold = run
        else:
            raise ValueError(
                f"Argument `runs` must hold mode names or (mode, threshold) pairs. Received: runs[{i}]={run!r}"
            )
        check_mode(mode)
        value = check_threshold(mode, threshold)
        parsed.append((mode, value, mode if threshold is None else f"{mode}={float(value):g}"))
    return parsed
