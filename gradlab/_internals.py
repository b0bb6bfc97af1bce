"""The private APIs of TensorFlow and plotly that gradlab uses, each in one place.

Each function below says why no public API serves. All were checked on the two
ends of the supported range, the oldest set (``requirements/oldest.txt``:
tensorflow-cpu 2.18.0, keras 3.8.0, plotly 6.0.0) and the lock
(``requirements/lock-cpu.txt``: tensorflow-cpu 2.21.0, keras 3.15.1, plotly
7.1.0): ``make test-oldest`` and ``make test`` run the tests that exercise them.
A new TensorFlow or plotly release should rerun those (``tests/test_training.py``
for XLA, ``tests/test_plots.py`` and ``tests/test_browser_lab.py`` for the
figure's flow control).

Not here, because a redesign replaced them: the steps that Keras'
``LossScaleOptimizer`` skips are rebuilt by ``GradientStats`` from the loss scale's
public variables and rule, and the loss reaches the recorder through a subclass that
extends its public ``scale_loss`` (``training.optimizer.RecordingLossScaleOptimizer``),
not a hook on a private method of an instance.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf


# ---------------------------------------------------------------- TensorFlow
def in_xla_context() -> bool:
    """True while tracing a function compiled with XLA (``jit_compile=True``).

    Why private: TensorFlow has no public test; ``tf.cond`` and ``tf.while_loop``
    use this same one to choose their XLA lowering. gradlab uses it to choose one
    fused elementwise formula for every mode under XLA (see ``transforms``).
    """
    if tf.executing_eagerly():
        return False
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def onednn_enabled() -> bool:
    """True when TensorFlow runs its oneDNN float kernels (``TF_ENABLE_ONEDNN_OPTS``).

    Why private: the default depends on the CPU (on where oneDNN is on without the
    variable), and only TensorFlow's ``_pywrap_util_port`` says which. The notebook
    tests use it to pick the other kernel path. False where it cannot be read.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return False


@contextlib.contextmanager
def op_determinism(on: bool):
    """Turn TensorFlow's op determinism on or off inside a block, then back.

    Why private: ``tf.config.experimental.enable_op_determinism`` has no public
    counterpart to turn it off, and Keras' ``model.compile(jit_compile=True)`` runs
    without XLA while it is on (the tests compare both).
    """
    from tensorflow.python.framework import config

    was = config.is_op_determinism_enabled()
    (config.enable_op_determinism if on else config.disable_op_determinism)()
    try:
        yield
    finally:
        (config.enable_op_determinism if was else config.disable_op_determinism)()


# Events that wrap or schedule the ops rather than compute: left out of profiled_op_times.
_BOOKKEEPING = ("ExecutorState::", "ThunkExecutor::", "ThreadpoolListener::", "CpuExecutable::", "BlockUntilReady")
_BOOKKEEPING += ("SlinkyThreadPool", "ExecutorDoneCallback")


def profiled_op_times(logdir: str) -> dict[str, float]:
    """Seconds spent in each op (or XLA thunk) in a trace that ``tf.profiler.experimental`` wrote.

    Keys are the event names of the compute threads: ``"name:Type"`` for a TensorFlow
    op (``"gradient_tape/dense/MatMul:_MklMatMul"``), the HLO instruction for an XLA
    thunk (``"fusion.3"``). The executor's own bookkeeping events are left out. Used by
    ``benchmarks/profile_step.py`` only.

    Why private: TensorFlow writes the trace as an ``XSpace`` protocol buffer and has no
    public reader (TensorBoard's profile plugin has one, and it is not installed).
    """
    import collections
    import glob

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    totals = collections.Counter()
    for path in glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            names = {k: v.name for k, v in plane.event_metadata.items()}
            for line in plane.lines:
                if line.name == "python":  # the Python thread: the call, not the ops
                    continue
                for event in line.events:
                    name = names.get(event.metadata_id, "")
                    if not name.startswith(_BOOKKEEPING):
                        totals[name] += event.duration_ps * 1e-12
    return dict(totals)


# ---------------------------------------------------------------- plotly
_DRAWN = "_js2py_traceDeltas"  # the trait the browser's report of a drawn trace edit arrives in


def edit_id(widget) -> int:
    """The id of the last trace edit a ``go.FigureWidget`` sent to the browser.

    Why private: a FigureWidget has no public way to learn when the browser has
    drawn an update. It numbers every trace edit it sends and the browser reports
    each one back once ``Plotly.update`` has run; gradlab's ``LiveFigure`` uses this
    for flow control (no new frame before the last one is drawn).
    """
    return widget._last_trace_edit_id


def on_drawn(widget, callback) -> None:
    """Call ``callback(edit_id)`` each time the browser reports a trace edit drawn."""

    def report(change):
        new = change["new"]
        if new and "trace_edit_id" in new:
            callback(new["trace_edit_id"])

    widget.observe(report, names=_DRAWN)


def report_drawn(widget, edit: int) -> None:
    """What the browser sends once it has drawn edit ``edit`` (for tests without a browser)."""
    setattr(widget, _DRAWN, {"trace_deltas": [], "trace_edit_id": edit})
