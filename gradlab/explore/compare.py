"""`compare`: one run per mode and threshold, from identical weights and data order.

On a built-in problem (``compare("deep_mlp", ["none", "global_norm"])``) or on
your own model, data, loss and optimizer, with the words of ``model.fit``::

    gradlab.compare(model, ["none", ("global_norm", 1.0)], x=x, y=y, loss="mse",
                    optimizer="adam", learning_rate=1e-3, validation_data=(x_val, y_val))
"""

from __future__ import annotations

import keras

from gradlab import _checks
from gradlab.problems.builtin import PROBLEMS, Problem, from_model, make_problem, replay
from gradlab.problems.state import kept
from gradlab.scaler.modes import check_mode, check_threshold
from gradlab.scaler.scaler import Scaler
from gradlab.training.history import History
from gradlab.training.optimizers import OPTIMIZERS, optimizer_factory
from gradlab.training.trainer import Trainer

__all__ = ["compare", "parse_runs", "resolve_problem", "resolve_optimizer"]


def _default_sgd():
    return keras.optimizers.SGD(0.1)


def compare(
    problem,
    runs,
    *,
    x=None,
    y=None,
    loss=None,
    validation_data=None,
    optimizer=_default_sgd,
    learning_rate: float | None = None,
    steps: int = 200,
    batch_size: int = 32,
    seed: int = 0,
    validation_every: int | None = None,
    on_run_begin=None,
    on_run_end=None,
    chunk: int | None = None,
    on_progress=None,
    should_stop=None,
    progress: bool = False,
    scaler_options: dict | None = None,
    **trainer_options,
) -> list[History]:
    """Train one run per ``(mode, threshold)`` from identical weights and data order.

    Every run starts from the same state (weights, optimizer, adaptive state and
    the seed state Dropout draws from), sees the same batches in the same order
    and draws the same dropout masks.

    Args:
      problem: a :class:`gradlab.problems.Problem`, the name of a built-in one
        (``"deep_mlp"``, ``"digits"``, ...), or your model: a built Keras model
        (Sequential, Functional or subclassed; each run starts from a clone with
        its current state: weights and the dropout layers' seed state) or a
        function that builds one, with ``x``, ``y`` and ``loss``. A model that
        cannot be cloned (custom layers without ``get_config``, an ``__init__``
        without ``**kwargs``) is trained itself, every run from its state now,
        and every variable of it is put back afterwards, also after an error or
        an interrupt (``KeyboardInterrupt``). If the kernel is restarted or killed
        mid-run, the model goes with it; nothing is written to disk.
      runs: list of mode names or ``(mode, threshold)`` pairs.
      x, y: training arrays for your model, or ``x`` a ``tf.data.Dataset`` of
        ``(x, y)`` batches (``y`` None). The batches of one run are read once and
        replayed in the same order for every run.
      loss: a Keras loss, its name or ``loss(y_true, y_pred)`` (your model only).
      validation_data: ``(x_val, y_val)`` or a finite ``tf.data.Dataset``,
        evaluated every ``validation_every`` steps (see :meth:`Trainer.fit`);
        default: the problem's own validation data, if any.
      optimizer: a function returning a fresh Keras optimizer for each run
        (``lambda: keras.optimizers.Adam(1e-3)``), or a name from
        :data:`gradlab.training.optimizers.OPTIMIZERS` with ``learning_rate``.
        Default SGD with learning rate 0.1.
      learning_rate: the learning rate (needed with a name; replaces a factory's).
      steps, batch_size, seed: as in :meth:`Trainer.fit` (same seed: same order).
      on_run_begin: ``fn(label, model)`` called before each run, once its model
        holds the run's initial weights (to look at them, or to save them).
      on_run_end: ``fn(label, history)`` called after each run with its history.
      chunk: steps per call of the compiled step (default: a run in one call);
        ``on_progress`` and ``should_stop`` are looked at between calls.
      on_progress: ``fn(index, label, done)`` called before each call: the run's
        index in ``runs``, its label and the steps it has done.
      should_stop: ``fn() -> bool`` asked before each call; when it says True,
        compare stops there and returns the runs finished so far.
      scaler_options: further :class:`~gradlab.Scaler` arguments for every run,
        e.g. ``{"zclip_max_grad_norm": 1.0}`` (the ZClip reference's cap).
      trainer_options: further :class:`~gradlab.Trainer` arguments.

    Returns:
      One :class:`History` per run, labelled ``"mode"`` or ``"mode=threshold"``.

    >>> p = gradlab.problems.deep_mlp(depth=2, samples=64)
    >>> a, b = compare(p, ["none", ("global_norm", 0.5)], steps=3, batch_size=16)
    >>> bool(a.norm_before[0] == b.norm_before[0]), b.label
    (True, 'global_norm=0.5')
    """
    problem = resolve_problem(problem, x, y, loss, validation_data, seed)
    make_optimizer = resolve_optimizer(optimizer, learning_rate)
    parsed = parse_runs(runs)
    _checks.known_options(trainer_options, Trainer, "compare")
    if scaler_options is None:
        scaler_options = {}
    elif not isinstance(scaler_options, dict):
        raise _checks._fail("scaler_options", "None or a dict of Scaler arguments", scaler_options)
    else:
        _checks.known_options(scaler_options, Scaler, "scaler_options")
        for key in ("modes", "transform"):
            if key in scaler_options:
                raise ValueError(
                    f"Argument `scaler_options` may not set `{key}`: compare sets it from `runs`. "
                    f"Received: scaler_options={scaler_options!r}"
                )
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        _checks.number(name, value, low=1, low_open=False, integer=True)
    _checks.number("seed", seed, low=0, low_open=False, integer=True)
    if validation_every is not None:
        _checks.size("validation_every", validation_every)
    for name, value, what in (
        ("on_run_begin", on_run_begin, "fn(label, model)"),
        ("on_run_end", on_run_end, "fn(label, history)"),
        ("on_progress", on_progress, "fn(index, label, done)"),
        ("should_stop", should_stop, "fn() -> bool"),
    ):
        if value is not None and not callable(value):
            raise _checks._fail(name, f"None or a function {what}", value)
    chunk = steps if chunk is None else _checks.size("chunk", chunk)
    _checks.boolean("progress", progress)
    if problem.dataset is None and batch_size > len(problem.x):
        raise ValueError(
            f"Argument `batch_size` must be at most the number of samples ({len(problem.x)}). "
            f"Received: batch_size={batch_size}"
        )
    with kept(problem.own_model):  # your model itself, where it cannot be cloned: put back as it began
        # One model, optimizer and compiled step for every run: reset() restores the
        # initial weights, optimizer slots, adaptive state and data order; the mode
        # and threshold are variables, so no run retraces.
        trainer = Trainer(
            problem.model(),
            problem.loss,
            make_optimizer(),
            Scaler(parsed[0][0], parsed[0][1], modes=[m for m, _, _ in parsed], **scaler_options),
            **trainer_options,
        )
        data = _data(problem, steps * trainer.accumulate)
        val = validation_data if validation_data is not None else problem.validation_data
        histories = []
        every = max(1, steps // 10) if validation_every is None else validation_every
        for i, (mode, threshold, label) in enumerate(parsed):
            trainer.label = label
            trainer.reset()
            trainer.scaler.set(mode=mode, threshold=threshold)
            if on_run_begin is not None:
                on_run_begin(label, trainer.model)
            fit = dict(data, batch_size=batch_size, seed=seed, progress=progress)
            if chunk >= steps:  # the run in one call
                if should_stop is not None and should_stop():
                    return histories
                if on_progress is not None:
                    on_progress(i, label, 0)
                trainer.fit(**fit, steps=steps, validation_data=val, validation_every=validation_every)
            # In calls of at most `chunk` steps that end where the one call would evaluate (every `every`
            # steps and at the last): the same rows and evaluations.
            while len(trainer.history) < steps:
                done = len(trainer.history)
                if should_stop is not None and should_stop():
                    return histories
                if on_progress is not None:
                    on_progress(i, label, done)
                due = min((done // every + 1) * every, steps)
                n = min(chunk, steps - done, due - done)
                held_out = val if done + n == due else None
                trainer.fit(**fit, steps=n, validation_data=held_out, validation_every=n)
            histories.append(trainer.history)
            if on_run_end is not None:
                on_run_end(label, trainer.history)
        return histories


def resolve_problem(problem, x=None, y=None, loss=None, validation_data=None, seed: int = 0) -> Problem:
    """``problem`` (a Problem, a built-in name, or a model with ``x``, ``y`` and ``loss``) as a :class:`Problem`."""
    if isinstance(problem, str):
        problem = make_problem(problem, seed=seed)
    elif isinstance(problem, keras.Model) or (
        callable(problem) and not isinstance(problem, (type, Problem, keras.optimizers.Optimizer))
    ):
        if x is None:
            raise ValueError(
                "Argument `x` is needed with a model of your own: the training data (arrays, with `y`, or a "
                "tf.data.Dataset of (x, y) batches). Received: x=None"
            )
        return from_model(problem, x, y, loss, validation_data=validation_data, seed=seed)
    if not isinstance(problem, Problem):
        raise ValueError(
            "Argument `problem` must be a gradlab.problems.Problem (such as gradlab.problems.deep_mlp()), "
            f"the name of one of {', '.join(repr(p) for p in PROBLEMS)}, or a Keras model with x, y and loss. "
            f"Received: problem={problem!r}"
        )
    given = {k: v for k, v in (("x", x), ("y", y), ("loss", loss)) if v is not None}
    if given:
        raise ValueError(
            f"Arguments {', '.join(f'`{k}`' for k in given)} are for a model of your own; a Problem brings its "
            f"own data and loss. Received: problem={problem.name!r} and {', '.join(given)}"
        )
    return problem


def resolve_optimizer(optimizer, learning_rate=None):
    """A factory of fresh optimizers from a factory or a name (an optimizer instance is refused)."""
    if isinstance(optimizer, keras.optimizers.Optimizer) or not (callable(optimizer) or isinstance(optimizer, str)):
        raise ValueError(
            "Argument `optimizer` must be a function returning a new optimizer for each run, such as "
            "`lambda: keras.optimizers.SGD(0.1)`, or the name of one of "
            f"{', '.join(repr(n) for n in OPTIMIZERS)} with `learning_rate`. Received: optimizer={optimizer!r}"
        )
    make = optimizer_factory(optimizer, learning_rate)
    make()  # a factory that does not return an optimizer fails here, before anything is built
    return make


def _data(problem: Problem, batches: int) -> dict:
    """The training data as Trainer.fit's keywords; a dataset's batches are read once, replayed per run."""
    if problem.dataset is None:
        return {"x": problem.x, "y": problem.y}
    return {"dataset": replay(problem.dataset, batches)}


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
