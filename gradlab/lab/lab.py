"""The live lab: sliders and dropdowns that steer a training run while it runs.

``gradlab.Lab()`` displays in one line; ``gradlab.Lab(model=..., x=..., y=...,
loss=..., optimizer="adam")`` shows the same controls and plots for your own Keras
model. Training runs in a background thread in chunks of a few steps, so the
controls stay responsive; the mode and the threshold are the
:class:`~gradlab.transforms.Scaler`'s ``tf.Variable``s, so a change applies at the
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

import ipywidgets as w
import numpy as np
import tensorflow as tf

from gradlab import _checks
from gradlab.display import plots
from gradlab.display.style import diverged_at
from gradlab.explore.compare import parse_runs
from gradlab.lab.width import ContainerWidth
from gradlab.problems.builtin import PROBLEMS, from_model, make_problem
from gradlab.scaler.modes import MODE_NAMES, MODES, check_mode, check_threshold
from gradlab.scaler.scaler import Scaler
from gradlab.scaler.spike import check_skip_spikes
from gradlab.training.optimizers import OPTIMIZERS, make_optimizer, optimizer_factory
from gradlab.training.trainer import Trainer

__all__ = ["Lab", "threshold_range"]

# A learning rate to start from when the reader picks an optimizer they have not used in this lab yet.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
YOURS = "yours"  # the optimizer control's entry for an optimizer (factory or instance) given to the Lab
RUN_FOR = (300, 1000, 3000, 10000, 30000, 100000)  # the "run for" choices, in steps
COMPARE_CHUNK = 50  # steps per call while comparing: progress and Pause between calls
VAL_EVERY = 25  # steps between two evaluations of the validation data


# The figure is a flex item of the lab's column: without min-width 0 it keeps the width of what it
# drew, so a narrower notebook cut it off instead of plotly resizing it to the column.
_CSS = "<style>.gradlab-lab .gradlab-figure{min-width:0;width:100%;max-width:100%}</style>"


def threshold_range(mode: str) -> tuple[float, float]:
    """Log10 range of the threshold slider for ``mode`` (the mode's record says it)."""
    return MODES[check_mode(mode)].slider


def _steps(steps):
    """None (the control's value) or an integer >= 1."""
    return None if steps is None else _checks.size("steps", steps)


def _arrays(name: str, data):
    """``data`` as arrays: a pair ``(x, y)`` as given, or a finite ``tf.data.Dataset`` of ``(x, y)``
    samples or batches read once into numpy (the lab batches it again with ``batch_size``)."""
    if not isinstance(data, tf.data.Dataset):
        return data
    spec = data.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(f"Argument `{name}` must yield (x, y) pairs. Received: a dataset whose elements are {spec!r}")
    if int(data.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(
            f"Argument `{name}` must be a finite dataset (the lab reads it once): remove `.repeat()`. "
            f"Received: {name} with infinite cardinality"
        )
    batched = spec[0].shape.rank is not None and spec[0].shape.rank > 0 and spec[0].shape[0] is None
    xs, ys = zip(*data.as_numpy_iterator()) if int(data.cardinality()) != 0 else ((), ())
    if not xs:
        raise ValueError(f"Argument `{name}` must hold at least one sample. Received: an empty dataset")
    join = np.concatenate if batched else np.stack
    return join(xs), join(ys)


class _Unset(float):
    """The default learning rate, 0.5 (SGD on the built-in problems): with another optimizer and no
    learning rate given, the lab starts from that optimizer's own (DEFAULT_LR, or your optimizer's)."""


_LR = _Unset(0.5)


def _check_optimizer(optimizer, learning_rate) -> tuple[str, str | None, float | None]:
    """The optimizer control's entry for ``optimizer``: (a name of OPTIMIZERS, None, None), or (YOURS,
    its class name, its learning rate) for a factory or an instance, which is tried once here (it must
    give a Keras optimizer)."""
    if isinstance(optimizer, str):
        return _checks.choice("optimizer", optimizer, tuple(OPTIMIZERS)), None, None
    made = optimizer_factory(optimizer, learning_rate)()  # raises, naming the argument, for anything else
    try:
        lr = float(np.asarray(made.learning_rate))
    except (TypeError, ValueError):  # a schedule
        lr = None
    return YOURS, type(made).__name__, lr


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
        starts from a clone with its current weights) or a function that builds one.
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
        learning_rate: float = _LR,
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
            for name, value in (("x", x), ("y", y), ("loss", loss), ("validation_data", validation_data)):
                if value is not None:
                    raise ValueError(
                        f"Argument `{name}` is for your own model: pass it with `model=...`. "
                        f"Received: {name} of type {type(value).__name__} and model=None"
                    )
        mode = check_mode(mode)
        check_threshold(mode, threshold)
        given = learning_rate is not _LR
        learning_rate = _checks.python_number("learning_rate", learning_rate)
        optimizer_name, yours, own_lr = _check_optimizer(optimizer, learning_rate if given else None)
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
            if loss is None:
                raise ValueError("Argument `loss` is needed with `model=...`. Received: loss=None")
            if isinstance(x, tf.data.Dataset):
                if y is not None:
                    raise ValueError(
                        "Argument `y` must be None when `x` is a tf.data.Dataset of (x, y). "
                        f"Received: y of type {type(y).__name__}"
                    )
                x, y = _arrays("x", x)
            if validation_data is not None:
                validation_data = _arrays("validation_data", validation_data)
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
        self.controls = self._make_controls(problem, mode, t, learning_rate, steps, optimizer_name, yours)
        self.status = w.HTML(layout=w.Layout(min_height="24px", width="100%"))
        self.status.add_class("gradlab-status-line")
        self.table = w.HTML(layout=w.Layout(width="100%"))
        self.table.add_class("gradlab-comparison")
        self.figure = plots.LiveFigure()
        self.figure.widget.layout.autosize = True  # plotly fits the figure to the lab's width, and follows it
        self.figure.widget.add_class("gradlab-figure")
        # Plotly does not follow a resize by itself; frames re-fit the figure while it runs, this when it does not.
        self.width_report = ContainerWidth()
        self.width_report.observe(self._on_width, names="width")
        self.widget = self._layout()
        self._build()

    # ------------------------------------------------------------ layout
    def _make_controls(self, problem, mode, t, learning_rate, steps, optimizer_name, yours):
        lo, hi = threshold_range(mode)
        log_t, log_lr = math.log10(t), math.log10(learning_rate)

        def desc(width):
            return {"description_width": width}

        def fixed(width):
            return w.Layout(width=width, min_width=width, flex="0 0 auto")

        problems = [*self._problems, *(p for p in PROBLEMS if p not in self._problems)]
        optimizers = [(label, name) for name, (label, _) in OPTIMIZERS.items()]
        if optimizer_name == YOURS:
            optimizers.insert(0, (f"yours: {yours}", YOURS))
        run_for = sorted({*RUN_FOR, steps})
        c = {
            "mode": w.Dropdown(
                options=list(MODE_NAMES), value=mode, description="mode", style=desc("44px"), layout=fixed("230px")
            ),
            "threshold": w.FloatLogSlider(
                value=t,
                base=10,
                min=min(lo, log_t),
                max=max(hi, log_t),
                step=0.05,
                description=MODES[mode].threshold_name,
                readout_format=".3g",
                # Only the reader's own moves are sent: with continuous updates the browser also sends
                # back the value it shows whenever the lab changes the slider's range or value, rounded
                # to its step or clamped into the range it had a moment before, and that stale value
                # then replaced the new mode's threshold.
                continuous_update=False,
                disabled=mode == "none",
                style=desc("120px"),
                layout=fixed("440px"),
            ),
            "problem": w.Dropdown(
                options=problems, value=problem, description="problem", style=desc("58px"), layout=fixed("240px")
            ),
            "optimizer": w.Dropdown(
                options=optimizers,
                value=optimizer_name,
                description="optimizer",
                style=desc("68px"),
                layout=fixed("300px"),
            ),
            "learning_rate": w.FloatLogSlider(
                value=learning_rate,
                base=10,
                min=min(-4, log_lr),
                max=max(0.5, log_lr),
                step=0.05,
                description="learning rate",
                readout_format=".3g",
                continuous_update=False,
                style=desc("88px"),
                layout=fixed("360px"),
            ),
            "steps": w.Dropdown(
                options=[(f"{n} steps", n) for n in run_for],
                value=steps,
                description="run for",
                style=desc("52px"),
                layout=fixed("190px"),
            ),
            "run": w.Button(description="Run", button_style="success", icon="play", layout=fixed("90px")),
            "pause": w.Button(description="Pause", icon="pause", layout=fixed("96px")),
            "reset": w.Button(description="Reset", icon="refresh", layout=fixed("96px")),
            "compare": w.Button(
                description="Compare all modes",
                icon="bars",
                tooltip="train every mode at its default threshold from the same start, and overlay them",
                layout=fixed("190px"),
            ),
        }
        c["threshold"].add_class("gradlab-threshold")
        c["mode"].observe(self._on_mode, names="value")
        c["threshold"].observe(self._on_threshold, names="value")
        c["learning_rate"].observe(self._on_learning_rate, names="value")
        c["optimizer"].observe(self._on_optimizer, names="value")
        c["problem"].observe(lambda _: self._rebuild(), names="value")
        c["run"].on_click(lambda _: self.run())
        c["pause"].on_click(lambda _: self.pause())
        c["reset"].on_click(lambda _: self.reset())
        c["compare"].on_click(lambda _: self.compare_all())
        return c

    def _layout(self):
        c = self.controls

        def row(*children):
            return w.HBox(list(children), layout=w.Layout(flex_flow="row wrap", align_items="center", width="100%"))

        box = w.VBox(
            [
                w.HTML(_CSS, layout=w.Layout(display="none")),
                row(c["mode"], c["threshold"]),
                row(c["problem"], c["optimizer"], c["learning_rate"]),
                row(c["steps"], c["run"], c["pause"], c["reset"], c["compare"]),
                self.status,
                self.width_report,
                self.figure.widget,
                self.table,
            ],
            layout=w.Layout(width="100%"),
        )
        box.add_class("gradlab-lab")
        return box

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
        lo, hi = threshold_range(mode)
        lo, hi = min(lo, math.log10(value)), max(hi, math.log10(value))
        slider = self.controls["threshold"]
        self._moving_slider = True
        try:
            with slider.hold_sync():  # one message: the browser gets the new range and value together
                with slider.hold_trait_notifications():
                    slider.min, slider.max = min(slider.min, lo), max(slider.max, hi)
                    slider.value = value
                    slider.min, slider.max = lo, hi
                slider.description = MODES[mode].threshold_name
                slider.disabled = mode == "none"
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
        """The lab's width in the browser changed (a window or side-panel resize): fit the figure to it.

        While a run goes, its next frame does it (only the training thread touches the figure then);
        paused, or before the first run, it is done at once.
        """
        if self.running:
            self.figure.refit_soon()
        else:
            self.figure.refit()

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
            self._new_trainer(self.trainer.model)
        label = next(k for k, v in self.controls["optimizer"].options if v == name)
        self._say(f"optimizer now {html.escape(label)}, learning rate {lr:.3g}: the run starts again from step 0")

    # ------------------------------------------------------------ actions
    def run(self, steps: int | None = None, wait: bool = False) -> None:
        """Train ``steps`` more steps (the "run for" control's value by default) in the background."""
        steps, wait = _steps(steps), _checks.boolean("wait", wait)
        if self.running:
            return
        self._target = len(self.trainer.history) + (steps or self.controls["steps"].value)
        self._stop.clear()
        self._thread = threading.Thread(target=self._train_loop, daemon=True, name="gradlab-lab")
        self._thread.start()
        if wait:
            self._thread.join()

    def pause(self) -> None:
        """Stop after the current chunk (or, while comparing, after the current call)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._say("paused")

    def reset(self) -> None:
        """Stop, and start again from the same initial weights and data order (no retrace).

        The comparison overlays go too: they belong to the run they were made for.
        """
        self.pause()
        with self._lock:
            self.trainer.reset()
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

        Shows its progress ("comparing 3/9: agc (0.01)") and disables the controls that
        cannot be used meanwhile; Pause stops it after the current call.
        """
        steps, wait = _steps(steps), _checks.boolean("wait", wait)
        if self.running:
            return
        n = steps or min(self.controls["steps"].value, 300)
        runs = [(mode, value, plots.overlay_label(mode, value)) for mode, value, _ in parse_runs(list(MODE_NAMES))]
        self._stop.clear()

        def work():
            self._enable(False)
            try:
                done = self._compare(runs, n)
                if done:
                    self.comparison = done
                    self.figure.overlay(done)
                    self.figure.update(self.trainer.history)
                    self.table.value = self._comparison_table(done, n)
                finished = len(done) == len(runs)
                said = f"compared {len(runs)} modes over {n} steps" if finished else f"compare stopped at {len(done)}"
                self._say(said)
            finally:  # after the last word of progress: while it shows, the controls are still disabled
                self._enable(True)

        self._thread = threading.Thread(target=self._guard(work), daemon=True, name="gradlab-compare")
        self._thread.start()
        if wait:
            self._thread.join()

    def _compare(self, runs, steps):
        """One run per (mode, threshold, label) from the problem's initial weights, with one compiled step.

        Like :func:`gradlab.compare`, in calls of COMPARE_CHUNK steps so that the status
        shows progress and Pause can stop it.
        """
        p = self.problem
        first = runs[0]
        trainer = Trainer(
            p.model(),
            p.loss,
            self._new_optimizer(),
            Scaler(first[0], first[1], modes="all", skip_spikes=self._skip_spikes),
            label=first[2],
        )
        done = []
        for i, (mode, value, label) in enumerate(runs):
            trainer.label = label
            trainer.reset()
            trainer.scaler.set(mode=mode, threshold=value)
            while len(trainer.history) < steps:
                if self._stop.is_set():
                    return done
                self._say(f"comparing {i + 1}/{len(runs)}: {html.escape(label)} · step {len(trainer.history)}/{steps}")
                n = min(COMPARE_CHUNK, steps - len(trainer.history))
                last = len(trainer.history) + n == steps
                trainer.fit(
                    p.x,
                    p.y,
                    steps=n,
                    batch_size=self.batch_size,
                    seed=self.seed,
                    progress=False,
                    validation_data=p.validation_data if last else None,
                    validation_every=n,
                )
            done.append(trainer.history)
        return done

    def _comparison_table(self, runs, steps) -> str:
        opt = next(k for k, v in self.controls["optimizer"].options if v == self.controls["optimizer"].value)
        val = any(len(h.val_loss) for h in runs)
        head = "<tr><th>mode (threshold)</th><th>final loss</th><th>lowest loss</th>"
        head += "<th>val loss</th>" if val else ""
        head += "<th>clipped</th><th>skipped</th><th>diverged at</th></tr>"
        rows = []
        for h, color in zip(runs, self.figure._overlay_colors):
            loss = h.loss[np.isfinite(h.loss)]
            stop = diverged_at(h.loss)
            cells = [
                f"<td><span style='color:{color}'>■</span> {html.escape(h.label)}</td>",
                f"<td>{h.loss[-1]:.3g}</td>",
                f"<td>{loss.min():.3g}</td>" if loss.size else "<td>-</td>",
            ]
            if val:
                cells.append(f"<td>{h.val_loss[-1]:.3g}</td>" if len(h.val_loss) else "<td>-</td>")
            cells += [
                f"<td>{h.clip_rate:.0%}</td>",
                f"<td>{int(h.skipped.sum())}</td>",
                f"<td>{'-' if stop is None else f'step {stop}'}</td>",
            ]
            rows.append("<tr>" + "".join(cells) + "</tr>")
        caption = (
            f"Compared from the same start: {steps} steps, {html.escape(opt)}, learning rate "
            f"{self.controls['learning_rate'].value:.3g}, default thresholds"
        )
        style = (
            "<style>.gradlab-table{border-collapse:collapse;font-size:12px;margin:4px 0}"
            ".gradlab-table td,.gradlab-table th{padding:1px 10px;text-align:right;border-bottom:1px solid #eee}"
            ".gradlab-table td:first-child,.gradlab-table th:first-child{text-align:left}"
            ".gradlab-table caption{text-align:left;color:#555;caption-side:top}</style>"
        )
        return f"{style}<table class='gradlab-table'><caption>{caption}</caption>{head}{''.join(rows)}</table>"

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
            try:
                self._run_chunks()
            finally:
                sys.setswitchinterval(interval)
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
        # The first fit to the lab's width comes from width_report: its ResizeObserver reports as soon as
        # the front end has laid the lab out (before, two timers re-fitted at 0.5 and 2 s, to the same end).
        # Without a kernel (GitHub, nbviewer, a notebook opened cold) the widget view shows nothing: the
        # figure's Plotly JSON beside it does. JupyterLab draws the widget over it whenever it can (the
        # widget renderer's rank is -10, Plotly's 2; untrusted outputs get only safe renderers, Plotly's
        # and not the widget's); nbval does not compare widget views but compares this JSON (the lab's
        # cells are NBVAL_IGNORE_OUTPUT). tools/run_notebooks.py adds a PNG of it, drawn by kaleido: the
        # kernel needs no browser (Binder has none).
        note = (
            f"gradlab lab: {self.controls['problem'].value}, mode {self.scaler.mode_name}, "
            f"{len(self.trainer.history)} steps: a static copy (run the notebook for the live lab)"
        )
        text = (
            f"<gradlab.Lab {self.controls['problem'].value}, mode={self.scaler.mode_name}, "
            f"optimizer={self.controls['optimizer'].value}, {len(self.trainer.history)} steps>"
        )
        return plots.widget_bundle(self.widget, self.figure.widget, note=note, text=text, **kwargs)

    def __repr__(self):
        return (
            f"Lab(problem={self.controls['problem'].value!r}, mode={self.scaler.mode_name!r}, "
            f"optimizer={self.controls['optimizer'].value!r})"
        )
