"""The live lab: sliders and dropdowns that steer a training run while it runs.

``gradlab.Lab()`` displays in one line. Training runs in a background thread
in chunks of a few steps, so the controls stay responsive; the mode and the
threshold are the :class:`~gradlab.transforms.Scaler`'s ``tf.Variable``s, so a
change applies at the very next step without retracing, and appears on the
threshold line of the plot. Redraws are throttled (at most every ``redraw_ms``,
and never before the browser has drawn the previous one).

Without a widget front end (GitHub, nbconvert), the lab shows a static SVG of
its state.
"""

from __future__ import annotations

import math
import sys
import threading
import time

import ipywidgets as w
import keras

from gradlab import _checks
from gradlab.display import plots
from gradlab.scaler.modes import MODE_NAMES, MODES, check_mode, check_threshold
from gradlab.scaler.scaler import Scaler
from gradlab.training.compare import compare
from gradlab.training.problems import PROBLEMS, make_problem
from gradlab.training.trainer import Trainer

__all__ = ["Lab", "threshold_range"]


def threshold_range(mode: str) -> tuple[float, float]:
    """Log10 range of the threshold slider for ``mode`` (the mode's record says it)."""
    return MODES[check_mode(mode)].slider


def _steps(steps):
    """None (the slider's value) or an integer >= 1."""
    return None if steps is None else _checks.size("steps", steps)


class Lab:
    """Train a small model and change its gradient scaling while it trains.

    Args:
      problem: a name from ``gradlab.problems.PROBLEMS`` (``"deep_mlp"`` explodes
        at high learning rates; ``"digits"`` and ``"imbalanced_digits"`` classify).
      mode, threshold: the starting scaling.
      learning_rate: SGD learning rate (0.5 makes the deep MLP explode unclipped).
      steps: steps per Run.
      chunk: steps per call of the compiled step between looks at the controls.
      redraw_ms: least time between two redraws.
      batch_size, seed: data batching and the seed of weights and data order.

    Every argument is checked before anything is built (a bad one raises a
    ``ValueError`` naming it); the sliders' ranges widen to hold the values given.

    Attributes:
      trainer: the :class:`gradlab.Trainer` running the model.
      figure: the :class:`gradlab.plots.LiveFigure`.
      controls: dict of the ipywidgets controls.
    """

    def __init__(
        self,
        problem: str = "deep_mlp",
        mode: str = "global_norm",
        threshold: float | None = None,
        learning_rate: float = 0.5,
        steps: int = 300,
        chunk: int = 5,
        redraw_ms: int = 150,
        batch_size: int = 32,
        seed: int = 0,
    ):
        problem = _checks.choice("problem", problem, tuple(PROBLEMS))
        mode = check_mode(mode)
        check_threshold(mode, threshold)
        learning_rate = _checks.python_number("learning_rate", learning_rate)
        steps, chunk, batch_size = (
            _checks.size("steps", steps),
            _checks.size("chunk", chunk),
            _checks.size("batch_size", batch_size),
        )
        _checks.python_number("redraw_ms", redraw_ms, low=0, low_open=False)
        seed = _checks.size("seed", seed, low=0)
        self.scaler = Scaler(mode, threshold)
        self.chunk, self.redraw_ms, self.batch_size, self.seed = chunk, redraw_ms, batch_size, seed
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._draw_soon = False
        self._pending = None  # the newest (mode, threshold) from the controls, not yet applied
        self._pending_lock = threading.Lock()
        self._target = 0
        self.error: BaseException | None = None

        lo, hi = threshold_range(mode)
        t = float(self.scaler.threshold.numpy())
        # The sliders' ranges hold the values given (a slider clamps its value into its range).
        log_t, log_lr = math.log10(t), math.log10(learning_rate)
        wide = {"description_width": "initial"}
        c = self.controls = {
            "problem": w.Dropdown(options=list(PROBLEMS), value=problem, description="problem", style=wide),
            "mode": w.Dropdown(options=list(MODE_NAMES), value=mode, description="mode", style=wide),
            "threshold": w.FloatLogSlider(
                value=t,
                base=10,
                min=min(lo, log_t),
                max=max(hi, log_t),
                step=0.05,
                description=MODES[mode].threshold_name,
                readout_format=".3g",
                continuous_update=True,
                style=wide,
            ),
            "learning_rate": w.FloatLogSlider(
                value=learning_rate,
                base=10,
                min=min(-3, log_lr),
                max=max(0.5, log_lr),
                step=0.05,
                description="learning rate",
                readout_format=".3g",
                continuous_update=False,
                style=wide,
            ),
            "steps": w.IntSlider(
                value=steps,
                min=min(10, steps),
                max=max(2000, steps),
                step=10,
                description="steps",
                continuous_update=False,
                style=wide,
            ),
            "run": w.Button(description="Run", button_style="success", icon="play"),
            "pause": w.Button(description="Pause", icon="pause"),
            "reset": w.Button(description="Reset", icon="refresh"),
            "compare": w.Button(description="Compare all modes", icon="bars"),
        }
        self.status = w.HTML()
        self.figure = plots.LiveFigure()
        c["mode"].observe(self._on_mode, names="value")
        c["threshold"].observe(self._on_threshold, names="value")
        c["learning_rate"].observe(self._on_learning_rate, names="value")
        c["problem"].observe(lambda _: self._rebuild(), names="value")
        c["run"].on_click(lambda _: self.run())
        c["pause"].on_click(lambda _: self.pause())
        c["reset"].on_click(lambda _: self.reset())
        c["compare"].on_click(lambda _: self.compare_all())
        row1 = w.HBox([c["problem"], c["mode"], c["threshold"]])
        row2 = w.HBox([c["learning_rate"], c["steps"]])
        row3 = w.HBox([c["run"], c["pause"], c["reset"], c["compare"], self.status])
        self.widget = w.VBox([row1, row2, row3, self.figure.widget])
        self.widget.add_class("gradlab-lab")
        self._build()

    # ------------------------------------------------------------ state
    def _build(self):
        problem = make_problem(self.controls["problem"].value, seed=self.seed)
        if self.batch_size > len(problem.x):  # checked before the lab changes: it stays as it was
            raise ValueError(
                f"Argument `batch_size` must be at most the number of samples of problem "
                f"{problem.name!r} ({len(problem.x)}). Received: batch_size={self.batch_size}"
            )
        self.problem = problem
        self.optimizer = keras.optimizers.SGD(self.controls["learning_rate"].value)
        self.trainer = Trainer(
            self.problem.model(), self.problem.loss, self.optimizer, self.scaler, label=self.controls["problem"].value
        )
        self.figure.clear_overlays()
        self.figure.update(self.trainer.history)
        self._say("ready")

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

    # ------------------------------------------------------------ controls
    def _on_mode(self, change):
        mode = change["new"]
        lo, hi = threshold_range(mode)
        slider = self.controls["threshold"]
        value = MODES[mode].default
        with slider.hold_trait_notifications():
            slider.min, slider.max = min(slider.min, lo), max(slider.max, hi)
            slider.value = value
            slider.min, slider.max = lo, hi
            slider.description = MODES[mode].threshold_name
        self._request(mode, value)

    def _on_threshold(self, change):
        mode = self.controls["mode"].value
        m = MODES[mode]
        value = change["new"]
        if m.high is not None:
            value = min(value, m.high)
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

    def _on_learning_rate(self, change):
        self.optimizer.learning_rate.assign(change["new"])

    # ------------------------------------------------------------ actions
    def run(self, steps: int | None = None, wait: bool = False) -> None:
        """Train ``steps`` more steps (the slider's value by default) in the background."""
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
        """Stop after the current chunk."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._say("paused")

    def reset(self) -> None:
        """Stop, and start again from the same initial weights and data order (no retrace)."""
        self.pause()
        with self._lock:
            self.trainer.reset()
            self.optimizer.learning_rate.assign(self.controls["learning_rate"].value)
            self.figure.clear_overlays()
            self.figure.update(self.trainer.history)
        self._say("reset")

    def _rebuild(self) -> None:
        """Stop, and build the newly chosen problem."""
        self.pause()
        with self._lock:
            self._build()

    def compare_all(self, steps: int | None = None, wait: bool = False) -> None:
        """Run every mode (default thresholds) from identical weights; overlay them."""
        steps, wait = _steps(steps), _checks.boolean("wait", wait)
        if self.running:
            return
        self._stop.clear()

        def work():
            self._say("comparing all modes…")
            runs = compare(
                self.problem,
                list(MODE_NAMES),
                optimizer=lambda: keras.optimizers.SGD(self.controls["learning_rate"].value),
                steps=steps or self.controls["steps"].value,
                batch_size=self.batch_size,
                seed=self.seed,
            )
            self.figure.overlay(runs)
            self.comparison = runs
            self._say("compared: " + ", ".join(f"{h.label} {h.loss[-1]:.3g}" for h in runs))

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
                self._say(f"<b style='color:#d62728'>error: {type(err).__name__}: {err}</b>")
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
        while not self._stop.is_set() and len(self.trainer.history) < self._target:
            n = min(self.chunk, self._target - len(self.trainer.history))
            with self._lock:
                self._apply_pending()  # under the lock: a caller holding it sees no change half-applied
                self.trainer.fit(
                    self.problem.x,
                    self.problem.y,
                    steps=n,
                    batch_size=self.batch_size,
                    seed=self.seed,
                    progress=False,
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
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        title = f"gradlab lab: {self.controls['problem'].value}, mode {self.scaler.mode_name}"
        data["image/svg+xml"] = plots.svg_overview(self.trainer.history, title=title)
        data["text/plain"] = (
            f"<gradlab.Lab {self.controls['problem'].value}, mode={self.scaler.mode_name}, "
            f"{len(self.trainer.history)} steps>"
        )
        return bundle

    def __repr__(self):
        return f"Lab(problem={self.controls['problem'].value!r}, mode={self.scaler.mode_name!r})"
