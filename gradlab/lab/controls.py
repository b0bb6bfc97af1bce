"""The lab's controls: the widgets of :class:`~gradlab.lab.lab.Lab`, and the checks of their values.

:func:`make_controls` builds the widgets (unwired: the Lab observes them);
:func:`threshold_range` gives the threshold slider's range per mode, and
:func:`check_optimizer` the optimizer control's entry for what the reader passed.
"""

from __future__ import annotations

import math

import ipywidgets as w
import numpy as np
import tensorflow as tf

from gradlab import _checks
from gradlab.problems.builtin import PROBLEMS
from gradlab.scaler.modes import MODE_NAMES, MODES, check_mode
from gradlab.training.optimizers import OPTIMIZERS, optimizer_factory

__all__ = [
    "DEFAULT_LR",
    "RUN_FOR",
    "UNSET_LR",
    "YOURS",
    "check_no_own_data",
    "check_one_input_one_output",
    "check_optimizer",
    "check_steps",
    "dataset_arrays",
    "make_controls",
    "own_arrays",
    "show_threshold",
    "threshold_range",
    "wire",
]

# A learning rate to start from when the reader picks an optimizer they have not used in this lab yet.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
YOURS = "yours"  # the optimizer control's entry for an optimizer (factory or instance) given to the Lab
RUN_FOR = (300, 1000, 3000, 10000, 30000, 100000)  # the "run for" choices, in steps


def threshold_range(mode: str) -> tuple[float, float]:
    """Log10 range of the threshold slider for ``mode`` (the mode's record says it)."""
    return MODES[check_mode(mode)].slider


def check_steps(steps):
    """None (the control's value) or an integer >= 1."""
    return None if steps is None else _checks.size("steps", steps)


def check_one_input_one_output(name: str, inputs, targets) -> None:
    """The lab trains a model with one input and one output: refuse dicts and tuples of them, saying where
    they can go (``compare`` and ``advise`` take a dataset of such batches)."""
    for part, value in (("inputs", inputs), ("targets", targets)):
        if isinstance(value, (dict, tuple, list)):
            if isinstance(value, list) and not any(hasattr(v, "shape") for v in value):
                continue  # a list of numbers is one array
            kind = f"a dict with keys {sorted(value)}" if isinstance(value, dict) else f"a {type(value).__name__}"
            raise ValueError(
                f"Argument `{name}` must hold one array of {part}: the lab trains a model with one input and one "
                "output. For a model with several, gradlab.compare and gradlab.advise take a tf.data.Dataset of "
                f"(dict, dict) batches. Received: {part} as {kind}"
            )


def dataset_arrays(name: str, data):
    """``data`` as arrays: a pair ``(x, y)`` as given, or a finite ``tf.data.Dataset`` of ``(x, y)``
    samples or batches read once into numpy (the lab batches it again with ``batch_size``)."""
    if not isinstance(data, tf.data.Dataset):
        return data
    spec = data.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(f"Argument `{name}` must yield (x, y) pairs. Received: a dataset whose elements are {spec!r}")
    check_one_input_one_output(name, *spec)
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


UNSET_LR = _Unset(0.5)


def own_arrays(x, y, loss, validation_data):
    """The reader's own data as arrays (``x`` a dataset of (x, y) read once; see :func:`dataset_arrays`),
    checked before anything is built: ``(x, y, validation_data)``."""
    if loss is None:
        raise ValueError("Argument `loss` is needed with `model=...`. Received: loss=None")
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError(
                "Argument `y` must be None when `x` is a tf.data.Dataset of (x, y). "
                f"Received: y of type {type(y).__name__}"
            )
        x, y = dataset_arrays("x", x)
    check_one_input_one_output("x", x, y)
    if validation_data is not None:
        validation_data = dataset_arrays("validation_data", validation_data)
    return x, y, validation_data


def check_optimizer(optimizer, learning_rate) -> tuple[str, str | None, float | None]:
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


def make_controls(own, problem, mode, t, learning_rate, steps, optimizer_name, yours) -> dict:
    """The lab's widgets by name, holding these values (unwired).

    Args:
      own: the names of the reader's own problems, offered first.
      problem, mode, t, learning_rate, steps, optimizer_name: the values shown.
      yours: the class name of the reader's optimizer (with ``optimizer_name == YOURS``).
    """
    lo, hi = threshold_range(mode)
    log_t, log_lr = math.log10(t), math.log10(learning_rate)

    def desc(width):
        return {"description_width": width}

    def fixed(width):
        return w.Layout(width=width, min_width=width, flex="0 0 auto")

    problems = [*own, *(p for p in PROBLEMS if p not in own)]
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
    return c


def show_threshold(slider, mode: str, value: float) -> None:
    """Show ``mode``'s threshold ``value`` on the threshold slider, its range widened to hold it."""
    lo, hi = threshold_range(mode)
    lo, hi = min(lo, math.log10(value)), max(hi, math.log10(value))
    with slider.hold_sync():  # one message: the browser gets the new range and value together
        with slider.hold_trait_notifications():
            slider.min, slider.max = min(slider.min, lo), max(slider.max, hi)
            slider.value = value
            slider.min, slider.max = lo, hi
        slider.description = MODES[mode].threshold_name
        slider.disabled = mode == "none"


def check_no_own_data(**given) -> None:
    """Without ``model=...``, refuse the arguments that only your own model takes."""
    for name, value in given.items():
        if value is not None:
            raise ValueError(
                f"Argument `{name}` is for your own model: pass it with `model=...`. "
                f"Received: {name} of type {type(value).__name__} and model=None"
            )


def wire(controls: dict, changes: dict, clicks: dict) -> None:
    """Connect the controls to the lab: a change of value calls ``changes[name](change)``, a click
    on a button ``clicks[name]()``."""
    for name, handler in changes.items():
        controls[name].observe(handler, names="value")
    for name, action in clicks.items():
        controls[name].on_click(lambda _, action=action: action())
