"""The live lab: sliders and dropdowns that steer a training run while it runs.

``gradlab.Lab()`` displays in one line; ``gradlab.Lab(model=..., x=..., y=...,
loss=..., optimizer="adam")`` shows the same controls and plots for your own Keras
model. Training runs in a background thread in chunks of a few steps, so the
controls stay responsive; the mode and the threshold are the
:class:`~gradlab.Scaler`'s ``tf.Variable``s, so a change applies at the
very next step without retracing, and appears on the threshold line of the plot.
Redraws are throttled (at most every ``redraw_ms``, and never before the browser
has drawn the previous one). Changing the optimizer or the problem starts the run
again (a new optimizer has new slots: the step is traced once more). The figure
follows the lab's width in the browser, paused too (:mod:`gradlab.lab.width`).

Without a widget front end (GitHub, nbviewer, a notebook opened without its
kernel), the lab's output carries its figure's Plotly JSON beside the widget view
(:func:`gradlab.plots.widget_bundle`), which JupyterLab draws without a kernel;
committed notebooks also hold a PNG of it, drawn by ``tools/run_notebooks.py``.
"""

from __future__ import annotations

import html
import math
import sys
import threading
import time

from gradlab import _checks
from gradlab.display import plots
from gradlab.explore.compare import compare, parse_runs
from gradlab.lab.controls import (
    DEFAULT_LR,
    UNSET_LR,
    YOURS,
    check_no_own_data,
    check_optimizer,
    check_steps,
    make_controls,
    own_arrays,
    show_threshold,
    threshold_range,
    wire,
)
from gradlab.lab.layout import comparison_table, layout, make_parts, static_bundle
from gradlab.lab.width import ContainerWidth
from gradlab.problems.builtin import PROBLEMS, from_model, make_problem
from gradlab.problems.state import Lent
from gradlab.scaler.modes import MODE_NAMES, MODES, check_mode, check_threshold
from gradlab.scaler.scaler import Scaler
from gradlab.scaler.spike import check_skip_spikes
from gradlab.training.optimizers import make_optimizer, optimizer_factory
from gradlab.training.trainer import Trainer

__all__ = ["Lab", "threshold_range"]

COMPARE_CHUNK = 50  # steps per call while comparing: progress and Pause between calls
VAL_EVERY = 25  # steps between two evaluations of the validation data


class Lab:
    """Train a model and change its gradient scaling while it trains.

    Args:
      problem: a name from ``gradlab.problems.PROBLEMS`` (``"deep_mlp"`` explodes
        at high learning rates; ``"digits"`` and ``"imbalanced_digits"`` classify).
        With ``model=...`` the problem control offers your model first, then these.
      mode, threshold: the starting scaling.
      learning_rate: the optimizer's learning rate (0.5 makes the deep MLP explode under SGD).
        Not given, with another optimizer: that optimizer's usual one (Adam: 0.001) or your
        optimizer's own.
      steps: steps per Run (the "run for" control; Pause stops earlier).
      chunk: steps per call of the compiled step between looks at the controls.
      redraw_ms: least time between two redraws.
      batch_size, seed: data batching and the seed of weights and data order.
      model: your Keras model (Sequential, Functional or subclassed), built (each run
        starts from a clone with its current state) or a function that builds one. A
        model that cannot be cloned is trained itself: between runs (after a pause or an
        error too) it holds its own state again, the run's being kept for the next Run (a
        kernel restarted mid-run takes the model with it: nothing is written to disk).
      x, y: your training data: arrays, or ``x`` a finite ``tf.data.Dataset`` of
        ``(x, y)`` samples or batches (``y`` then None).
      loss: your loss (a Keras loss, its name, or ``loss(y_true, y_pred)``).
      optimizer: ``"sgd"``, ``"momentum"``, ``"adam"``, ``"adamw"`` or ``"rmsprop"``
        (see ``gradlab.training.optimizers.OPTIMIZERS``), a function returning a new
        Keras optimizer, or a Keras optimizer to copy. The optimizer control switches
        between them; a switch starts the run again.
      validation_data: ``(x_val, y_val)`` or a finite dataset, evaluated every 25 steps
        and drawn on the loss panel.
      skip_spikes: skip the update of a step whose gradient norm spikes, as
        :class:`gradlab.Scaler`'s argument (``True``, a dict of
        :class:`gradlab.scaler.SkipSpikes` arguments, or None: never); the run and Compare
        each get a rule of their own with these settings.

    Every argument is checked before anything is built (a bad one raises a
    ``ValueError`` naming it); the sliders' ranges widen to hold the values given.

    Attributes:
      trainer: the :class:`gradlab.Trainer` running the model.
      optimizer: the Keras optimizer of the run.
      figure: the :class:`gradlab.plots.LiveFigure`.
      width_report: the lab's width in the browser (:class:`gradlab.lab.width.ContainerWidth`); the figure
        re-fits itself to it whenever it changes.
      controls: dict of the ipywidgets controls.
      comparison: the histories of the last Compare, labelled ``"mode (threshold)"``.
    """

    def __init__(
        self,
        problem: str = "deep_mlp",
        mode: str = "global_norm",
        threshold: float | None = None,
        learning_rate: float = UNSET_LR,
        steps: int = 10000,
        chunk: int = 5,
        redraw_ms: int = 150,
        batch_size: int = 32,
        seed: int = 0,
        *,
        model=None,
        x=None,
        y=None,
        loss=None,
        optimizer="sgd",
        validation_data=None,
        skip_spikes=None,
    ):
        rule = check_skip_spikes(skip_spikes)
        self._skip_spikes = None if rule is None else rule.get_config()  # settings: each Scaler its own windows
        if model is None:
            problem = _checks.choice("problem", problem, tuple(PROBLEMS))
            check_no_own_data(x=x, y=y, loss=loss, validation_data=validation_data)
        mode = check_mode(mode)
        check_threshold(mode, threshold)
        given = learning_rate is not UNSET_LR
        learning_rate = _checks.python_number("learning_rate", learning_rate)
        optimizer_name, yours, own_lr = check_optimizer(optimizer, learning_rate if given else None)
        if not given and optimizer_name != "sgd":
            learning_rate = own_lr or DEFAULT_LR.get(optimizer_name, 1e-3)
        steps, chunk, batch_size = (
            _checks.size("steps", steps),
            _checks.size("chunk", chunk),
            _checks.size("batch_size", batch_size),
        )
        _checks.python_number("redraw_ms", redraw_ms, low=0, low_open=False)
        seed = _checks.size("seed", seed, low=0)
        problems = {}
        if model is not None:
            x, y, validation_data = own_arrays(x, y, loss, validation_data)
            own = from_model(model, x, y, loss, validation_data=validation_data, seed=seed)
            problems[own.name] = own
            problem = own.name
        self._problems = problems  # your model's problem (built ones come from make_problem)
        self._user_optimizer = optimizer if optimizer_name == YOURS else None
        self.scaler = Scaler(mode, threshold, modes="all", skip_spikes=self._skip_spikes)
        self.chunk, self.redraw_ms, self.batch_size, self.seed = chunk, redraw_ms, batch_size, seed
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._draw_soon = False
        self._pending = None  # the newest (mode, threshold) from the controls, not yet applied
        self._pending_lock = threading.Lock()
        self._target = 0
        self._moving_slider = False  # the lab itself is moving the threshold slider (a mode switch)
        self._quiet_lr = False
        self.error: BaseException | None = None
        self.comparison: list = []

        t = float(self.scaler.threshold.numpy())
        self._chosen = {mode: t}  # the threshold the reader last chose for each mode
        self._lr_for = {optimizer_name: learning_rate}  # the learning rate last used with each optimizer
        self.controls = make_controls(list(problems), problem, mode, t, learning_rate, steps, optimizer_name, yours)
        changes = {"mode": self._on_mode, "threshold": self._on_threshold, "optimizer": self._on_optimizer}
        changes |= {"learning_rate": self._on_learning_rate, "problem": lambda _: self._rebuild()}
        wire(
            self.controls,
            changes,
            {"run": self.run, "pause": self.pause, "reset": self.reset, "compare": self.compare_all},
        )
        self.status, self.table, self.figure = make_parts()
        # Plotly does not follow a resize by itself; frames re-fit the figure while it runs, this when it does not.
        self.width_report = ContainerWidth()
        self.width_report.observe(self._on_width, names="width")
        self.widget = layout(self.controls, self.status, self.width_report, self.figure.widget, self.table)
        self._build()

    # ------------------------------------------------------------ state
    def _problem(self, name):
        return self._problems[name] if name in self._problems else make_problem(name, seed=self.seed)

    def _new_optimizer(self):
        name, lr = self.controls["optimizer"].value, self.controls["learning_rate"].value
        if name == YOURS:
            return optimizer_factory(self._user_optimizer, lr)()
        return make_optimizer(name, lr)

    def _build(self):
        problem = self._problem(self.controls["problem"].value)
        if self.batch_size > len(problem.x):  # checked before the lab changes: it stays as it was
            raise ValueError(
                f"Argument `batch_size` must be at most the number of samples of problem "
                f"{problem.name!r} ({len(problem.x)}). Received: batch_size={self.batch_size}"
            )
        if hasattr(self, "trainer"):
            self.trainer.reset()  # the scaler's adaptive state back to its start
        self.problem = problem
        self._lent = Lent(problem.own_model)  # your model itself, where it cannot be cloned
        self._new_trainer(problem.model())
        self._say("ready")

    def _new_trainer(self, model):
        self.optimizer = self._new_optimizer()
        self.trainer = Trainer(model, self.problem.loss, self.optimizer, self.scaler, label=self.problem.name)
        self.clear_comparison()
        self.figure.update(self.trainer.history)

    @property
    def history(self):
        """Everything the current run recorded."""
        return self.trainer.history

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _say(self, text):
        h = self.trainer.history if hasattr(self, "trainer") else None
        loss = f", loss {h.loss[-1]:.4g}" if h is not None and len(h) and math.isfinite(h.loss[-1]) else ""
        steps = f"step {len(h)}{loss} · " if h is not None else ""
        self.status.value = f"<span class='gradlab-status'>{steps}{text}</span>"

    def _enable(self, on: bool) -> None:
        """Enable (or, while comparing, disable) the controls that cannot be used meanwhile."""
        for name in ("run", "reset", "compare", "problem", "optimizer", "steps", "learning_rate"):
            self.controls[name].disabled = not on

    # ------------------------------------------------------------ controls
    def _on_mode(self, change):
        mode = change["new"]
        value = self._chosen.get(mode, MODES[mode].default)
        self._moving_slider = True
        try:
            show_threshold(self.controls["threshold"], mode, value)
        finally:
            self._moving_slider = False
        self._request(mode, value)

    def _on_threshold(self, change):
        if self._moving_slider:  # the lab's own move (a mode switch) requests its value itself
            return
        mode = self.controls["mode"].value
        m = MODES[mode]
        value = change["new"]
        if m.high is not None:
            value = min(value, m.high)
        self._chosen[mode] = value
        self._request(mode, value)

    def _request(self, mode, threshold):
        """Ask for a new mode and threshold; the newest request wins.

        Widget messages arrive one by one (a slider dragged or held down sends
        dozens). While a run is going, the handler only stores the request:
        the training thread applies the newest one before its next chunk, so a
        burst costs one change, not one per message, and the handler returns at
        once (no TensorFlow call competes with the training thread).
        """
        with self._pending_lock:
            self._pending = (mode, threshold)
        if not self.running:
            self._apply_pending()
        self._draw_soon = True

    def _apply_pending(self):
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.scaler.set(mode=pending[0], threshold=pending[1])

    def _on_width(self, change):
        """The lab's width in the browser changed: fit the figure to it. While a run goes, its next frame
        does it (only the training thread touches the figure then); else it is done at once."""
        self.figure.refit_soon() if self.running else self.figure.refit()

    def _on_learning_rate(self, change):
        self._lr_for[self.controls["optimizer"].value] = change["new"]
        if not self._quiet_lr:
            self.optimizer.learning_rate.assign(change["new"])

    def _on_optimizer(self, change):
        """A new optimizer: stop, and start the run again from the initial weights with it."""
        name = change["new"]
        self.pause()
        lr = self._lr_for.get(name, DEFAULT_LR.get(name, self.controls["learning_rate"].value))
        slider = self.controls["learning_rate"]
        self._quiet_lr = True  # the new optimizer is built with it
        try:
            slider.min, slider.max = min(slider.min, math.log10(lr)), max(slider.max, math.log10(lr))
            slider.value = lr
        finally:
            self._quiet_lr = False
        with self._lock:
            self.trainer.reset()  # the model's initial weights, and the scaler's adaptive state
            self._lent.forget()
            self._new_trainer(self.trainer.model)
        label = next(k for k, v in self.controls["optimizer"].options if v == name)
        self._say(f"optimizer now {html.escape(label)}, learning rate {lr:.3g}: the run starts again from step 0")

    # ------------------------------------------------------------ actions
    def run(self, steps: int | None = None, wait: bool = False) -> None:
        """Train ``steps`` more steps (the "run for" control's value by default) in the background."""
        steps, wait = check_steps(steps), _checks.boolean("wait", wait)
        if self.running:
            return
        self._target = len(self.trainer.history) + (steps or self.controls["steps"].value)
        self._stop.clear()
        self._thread = threading.Thread(target=self._train_loop, daemon=True, name="gradlab-lab")
        self._thread.start()
        if wait:
            self._thread.join()

    def pause(self, timeout: float = 30.0) -> bool:
        """Stop after the current chunk (or, while comparing, after the current call).

        Waits up to ``timeout`` seconds for the training thread to stop, and returns whether it
        has. If it still runs (a slow chunk), the status says so; the thread stops by itself
        after its chunk, and a later ``pause()`` or ``run()`` finds it stopped.
        """
        timeout = _checks.python_number("timeout", timeout, low=0.0, low_open=False)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        if self.running:
            self._say(f"pausing: the current chunk is still running after {timeout:g} s; it stops when it ends")
            return False
        self._say("paused")
        return True

    def reset(self) -> None:
        """Stop, and start again from the same initial weights and data order (no retrace).

        The comparison overlays go too: they belong to the run they were made for.
        """
        self.pause()
        with self._lock:
            self.trainer.reset()
            self._lent.forget()
            self.optimizer.learning_rate.assign(self.controls["learning_rate"].value)
            self.clear_comparison()
            self.figure.update(self.trainer.history)
        self._say("reset")

    def clear_comparison(self) -> None:
        """Remove the comparison overlays and their table."""
        self.comparison = []
        self.figure.clear_overlays()
        self.table.value = ""

    def _rebuild(self) -> None:
        """Stop, and build the newly chosen problem."""
        self.pause()
        with self._lock:
            self._build()

    def compare_all(self, steps: int | None = None, wait: bool = False) -> None:
        """Run every mode (default thresholds) from identical weights; overlay them and tabulate them.

        The runs are :func:`gradlab.compare`'s, in calls of COMPARE_CHUNK steps: the status shows
        the progress ("comparing 3/9: agc (0.01)") and Pause stops it after the current call; the
        controls that cannot be used meanwhile are disabled.
        """
        steps, wait = check_steps(steps), _checks.boolean("wait", wait)
        if self.running:
            return
        n = steps or min(self.controls["steps"].value, 300)
        modes = list(MODE_NAMES)
        labels = [plots.overlay_label(mode, value) for mode, value, _ in parse_runs(modes)]
        self._stop.clear()

        def progress(i, label, done):
            self._say(f"comparing {i + 1}/{len(labels)}: {html.escape(labels[i])} · step {done}/{n}")

        def work():
            self._enable(False)
            try:
                done = compare(
                    self.problem,
                    modes,
                    optimizer=self._new_optimizer,
                    steps=n,
                    batch_size=self.batch_size,
                    seed=self.seed,
                    validation_every=n,
                    scaler_options=None if self._skip_spikes is None else {"skip_spikes": self._skip_spikes},
                    chunk=COMPARE_CHUNK,
                    on_progress=progress,
                    should_stop=self._stop.is_set,
                )
                for h, label in zip(done, labels):
                    h.label = label
                if done:
                    self.comparison = done
                    self.figure.overlay(done)
                    self.figure.update(self.trainer.history)
                    opt = next(
                        k for k, v in self.controls["optimizer"].options if v == self.controls["optimizer"].value
                    )
                    lr = self.controls["learning_rate"].value
                    self.table.value = comparison_table(done, self.figure.overlay_colors, n, opt, lr)
                finished = len(done) == len(labels)
                said = f"compared {len(labels)} modes over {n} steps" if finished else f"compare stopped at {len(done)}"
                self._say(said)
            finally:  # after the last word of progress: while it shows, the controls are still disabled
                self._enable(True)

        self._thread = threading.Thread(target=self._guard(work), daemon=True, name="gradlab-compare")
        self._thread.start()
        if wait:
            self._thread.join()

    def _guard(self, fn):
        def run():
            try:
                fn()
            except BaseException as err:  # shown in the status line, kept for inspection
                self.error = err
                self._say(f"<b style='color:#d62728'>error: {type(err).__name__}: {html.escape(str(err))}</b>")
                raise
            finally:
                self._apply_pending()  # a change that came with the last chunk

        return run

    def _train_loop(self):
        def loop():
            self._say("running…")
            # The kernel handles widget messages in the main thread, which needs the GIL a
            # few times per message. Python hands the GIL over every 5 ms by default, so a
            # training thread busy in Python (the step's call, the redraw) made each message
            # wait up to 5 ms per handover; 1 ms keeps the controls responsive.
            interval = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, 0.001))
            self._lent.take()  # your model itself (it cannot be cloned): the run's state in, yours kept
            try:
                self._run_chunks()
            finally:
                sys.setswitchinterval(interval)
                self._lent.give_back()  # after an error too: your model holds its own state between runs
            self._draw()
            self._say("paused" if self._stop.is_set() else "done")

        self._guard(loop)()

    def _run_chunks(self):
        """Train chunk by chunk until the target or a pause; apply requests between chunks."""
        val = self.problem.validation_data
        while not self._stop.is_set() and len(self.trainer.history) < self._target:
            done = len(self.trainer.history)
            n = min(self.chunk, self._target - done)
            evaluate = val is not None and (done + n) // VAL_EVERY > done // VAL_EVERY
            with self._lock:
                self._apply_pending()  # under the lock: a caller holding it sees no change half-applied
                self.trainer.fit(
                    self.problem.x,
                    self.problem.y,
                    steps=n,
                    batch_size=self.batch_size,
                    seed=self.seed,
                    progress=False,
                    validation_data=val if evaluate else None,
                    validation_every=n,
                )
            # Draw at most every redraw_ms; right after a change, as soon as 50 ms have
            # passed since the last draw (a burst of changes does not redraw per message).
            # Never while the browser is still drawing the last frame: a slow browser then
            # gets fewer frames, each of them current, instead of a growing queue.
            since = (time.perf_counter() - self._last_draw) * 1000
            due = since >= self.redraw_ms or (self._draw_soon and since >= min(50, self.redraw_ms))
            if due and not self.figure.busy:
                self._draw()

    def _draw(self):
        self._last_draw, self._draw_soon = time.perf_counter(), False
        self.figure.update(self.trainer.history)
        self._say("running…" if not self._stop.is_set() else "paused")

    # ------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs):
        c = self.controls
        where = (c["problem"].value, self.scaler.mode_name, c["optimizer"].value, len(self.trainer.history))
        return static_bundle(self.widget, self.figure.widget, *where, **kwargs)

    def __repr__(self):
        return (
            f"Lab(problem={self.controls['problem'].value!r}, mode={self.scaler.mode_name!r}, "
            f"optimizer={self.controls['optimizer'].value!r})"
        )
