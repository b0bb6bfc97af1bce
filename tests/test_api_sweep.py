"""A sweep of gradlab's whole public API with the usual kinds of bad input.

For every public function, constructor and method (``gradlab.__all__``, the
problems, plots, report and History, the Lab, and the core's Scaler, optimizer,
Trainer, compare, pure functions, AutoClip, ZClip, Chain and Selective), the
kinds of bad input: 0, negative, NaN, inf, the wrong type (str, bool, None,
list), a tensor where a Python value is needed (or a tensor of a bad value), the
wrong shape or length, nesting. Each case expects a ``ValueError`` in the Keras
form: the argument's name, what is allowed, and ``Received: ...``.

The cases of tests/test_errors.py are not repeated here. ``CASES`` covers the
problems, History, plots, report, Lab and exercises; ``CORE_CASES`` the core
modules. A case found failing is fixed, not marked: none is expected to fail.
"""

import pathlib
import re

import keras
import numpy as np
import plotly.graph_objects as go
import pytest
import tensorflow as tf
from test_errors import grads, identity, sgd, variables  # the same small inputs as there

import gradlab
from gradlab import _internals, plots, problems
from gradlab.display import report
from gradlab.exercises import nb01, nb03, nb05
from gradlab.lab import lab as widgets
from gradlab.lab.lab import Lab, threshold_range
from gradlab.training.history import PER_LAYER, SCALARS, History

NAN, INF = float("nan"), float("inf")
PROBLEMS_LISTED = "Expected one of: 'deep_mlp', 'digits', 'imbalanced_digits', 'wide_mlp', 'adding_rnn', 'adding_lstm'"
MODES_LISTED = "Expected one of: 'none', 'value', 'norm', 'global_norm'"


# ---------------------------------------------------------------- helpers
def msg(*parts: str) -> str:
    """A regex that finds ``parts`` in this order in the message (each one literally)."""
    return ".*".join(re.escape(p) for p in parts)


def case(id, call, *parts, error=ValueError, marks=()):
    return pytest.param(call, error, parts, id=id, marks=marks)


def bad(id, call, name, allowed, received, marks=()):
    """The usual case: "Argument `name` must be <allowed> ... Received: <received>"."""
    return case(id, call, f"Argument `{name}`", allowed, f"Received: {received}", marks=marks)


def history(n=4, layers=("dense",), label="run"):
    rows = np.ones((n, len(SCALARS) + 3 * len(layers)))
    return History.from_rows(rows, list(layers), gradlab.scaler.MODE_NAMES, label=label)


H = history()


_cache = {}


def tiny():
    """A two-layer deep MLP on 64 samples (built once)."""
    if "tiny" not in _cache:
        _cache["tiny"] = problems.deep_mlp(depth=2, samples=64)
    return _cache["tiny"]


def trainer(**kwargs):
    p = tiny()
    return gradlab.Trainer(p.model(), p.loss, sgd(), **kwargs)


def fit_with(**kwargs):
    p = tiny()
    args = dict(x=p.x, y=p.y, steps=1, progress=False)
    args.update(kwargs)
    return trainer().fit(**args)


def lab():
    """One Lab for the method cases (built once, never run)."""
    if "lab" not in _cache:
        _cache["lab"] = Lab(problem="deep_mlp", steps=10, chunk=5, redraw_ms=0)
    return _cache["lab"]


def problem(**kwargs):
    p = tiny()
    args = dict(name="p", x=p.x, y=p.y, build=p.build, loss=p.loss, seed=0, description="d")
    args.update(kwargs)
    return problems.Problem(**args)


def with_columns(**columns):
    """A History with some columns replaced."""
    args = {k: getattr(H, k) for k in SCALARS + PER_LAYER}
    args.update(columns)
    return History(**args, layer_names=list(H.layer_names), mode_names=H.mode_names, label=H.label)


# ---------------------------------------------------------------- problems, History, plots, report, Lab
CASES = [
    # --- problems.deep_mlp
    bad("deep-mlp-depth-zero", lambda: problems.deep_mlp(depth=0), "depth", "in [1, inf)", "depth=0"),
    bad("deep-mlp-depth-negative", lambda: problems.deep_mlp(depth=-2), "depth", "in [1, inf)", "depth=-2"),
    bad("deep-mlp-depth-fraction", lambda: problems.deep_mlp(depth=2.5), "depth", "an integer", "depth=2.5"),
    bad("deep-mlp-depth-string", lambda: problems.deep_mlp(depth="8"), "depth", "an integer", "depth='8'"),
    bad("deep-mlp-depth-inf", lambda: problems.deep_mlp(depth=INF), "depth", "an integer", "depth=inf"),
    bad(
        "deep-mlp-depth-tensor",
        lambda: problems.deep_mlp(depth=tf.constant(2)),
        "depth",
        "an integer (a Python value, not a tensor)",
        "depth=<tf.Tensor",
    ),
    bad("deep-mlp-width-zero", lambda: problems.deep_mlp(width=0), "width", "in [1, inf)", "width=0"),
    bad("deep-mlp-width-negative", lambda: problems.deep_mlp(width=-1), "width", "in [1, inf)", "width=-1"),
    bad("deep-mlp-width-none", lambda: problems.deep_mlp(width=None), "width", "an integer", "width=None"),
    bad("deep-mlp-width-nan", lambda: problems.deep_mlp(width=NAN), "width", "an integer", "width=nan"),
    bad("deep-mlp-samples-zero", lambda: problems.deep_mlp(samples=0), "samples", "in [1, inf)", "samples=0"),
    bad("deep-mlp-samples-bool", lambda: problems.deep_mlp(samples=True), "samples", "an integer", "samples=True"),
    bad("deep-mlp-samples-list", lambda: problems.deep_mlp(samples=[64]), "samples", "an integer", "samples=[64]"),
    bad("deep-mlp-seed-negative", lambda: problems.deep_mlp(seed=-1), "seed", "in [0, inf)", "seed=-1"),
    bad("deep-mlp-seed-fraction", lambda: problems.deep_mlp(seed=0.5), "seed", "an integer", "seed=0.5"),
    bad("deep-mlp-seed-string", lambda: problems.deep_mlp(seed="0"), "seed", "an integer", "seed='0'"),
    # --- problems.wide_mlp, digits, imbalanced_digits, make_problem
    bad("wide-mlp-width-one", lambda: problems.wide_mlp(width=1), "width", "in [2, inf)", "width=1"),
    bad("wide-mlp-width-zero", lambda: problems.wide_mlp(width=0), "width", "in [2, inf)", "width=0"),
    bad("wide-mlp-samples-zero", lambda: problems.wide_mlp(samples=0), "samples", "in [1, inf)", "samples=0"),
    bad("wide-mlp-seed-negative", lambda: problems.wide_mlp(seed=-1), "seed", "in [0, inf)", "seed=-1"),
    bad("digits-seed-negative", lambda: problems.digits(seed=-1), "seed", "in [0, inf)", "seed=-1"),
    bad("digits-seed-none", lambda: problems.digits(seed=None), "seed", "an integer", "seed=None"),
    bad("imbalanced-keep-zero", lambda: problems.imbalanced_digits(keep=0), "keep", "in (0, 1]", "keep=0"),
    bad("imbalanced-keep-over-one", lambda: problems.imbalanced_digits(keep=1.5), "keep", "in (0, 1]", "keep=1.5"),
    bad("imbalanced-keep-nan", lambda: problems.imbalanced_digits(keep=NAN), "keep", "a finite number", "keep=nan"),
    bad("imbalanced-keep-string", lambda: problems.imbalanced_digits(keep="0.1"), "keep", "a number", "keep='0.1'"),
    bad(
        "imbalanced-keep-tensor",
        lambda: problems.imbalanced_digits(keep=tf.constant(0.5)),
        "keep",
        "not a tensor",
        "keep=<tf.Tensor",
    ),
    bad("imbalanced-seed-negative", lambda: problems.imbalanced_digits(seed=-3), "seed", "in [0, inf)", "seed=-3"),
    case(
        "make-problem-unknown",
        lambda: problems.make_problem("nope"),
        "Unknown problem 'nope'",
        PROBLEMS_LISTED,
        "Received: problem='nope'",
    ),
    case("make-problem-none", lambda: problems.make_problem(None), PROBLEMS_LISTED, "Received: problem=None"),
    case("make-problem-number", lambda: problems.make_problem(3), PROBLEMS_LISTED, "Received: problem=3"),
    bad(
        "make-problem-seed-negative", lambda: problems.make_problem("digits", seed=-1), "seed", "in [0, inf)", "seed=-1"
    ),
    # --- problems.Problem
    case(
        "problem-x-y-lengths-differ",
        lambda: problem(y=tiny().y[:10]),
        "Arguments `x` and `y` must hold the same number of samples",
        "Received: len(x)=64, len(y)=10",
    ),
    bad("problem-x-none", lambda: problem(x=None), "x", "an array with one row per sample", "x=None"),
    bad("problem-build-not-callable", lambda: problem(build="mlp"), "build", "a function", "build='mlp'"),
    bad("problem-loss-number", lambda: problem(loss=42), "loss", "a Keras loss", "loss=42"),
    bad("problem-seed-negative", lambda: problem(seed=-1), "seed", "in [0, inf)", "seed=-1"),
    bad("problem-name-none", lambda: problem(name=None), "name", "a string", "name=None"),
    # --- History
    bad("history-extend-string", lambda: history().extend("x"), "other", "a gradlab History", "other='x'"),
    bad("history-extend-none", lambda: history().extend(None), "other", "a gradlab History", "other=None"),
    bad("history-extend-list", lambda: history().extend([H]), "other", "a gradlab History", "other=[History("),
    case(
        "history-extend-other-layers",
        lambda: history().extend(history(layers=("a", "b"))),
        "Argument `other` must record the same layers, ['dense']",
        "Received: other.layer_names=['a', 'b']",
    ),
    case(
        "history-extend-other-modes",
        lambda: history().extend(History.empty(["dense"], ["x"])),
        "Argument `other` must number its modes the same way",
        "Received: other.mode_names=('x',)",
    ),
    bad(
        "history-empty-layer-names-string",
        lambda: History.empty("dense", gradlab.scaler.MODE_NAMES),
        "layer_names",
        "a list or tuple of strings",
        "layer_names='dense'",
    ),
    bad(
        "history-empty-layer-name-number",
        lambda: History.empty(["a", 1], gradlab.scaler.MODE_NAMES),
        "layer_names[1]",
        "a string",
        "layer_names[1]=1",
    ),
    bad(
        "history-empty-mode-names-none",
        lambda: History.empty(["a"], None),
        "mode_names",
        "a list or tuple of strings",
        "mode_names=None",
    ),
    bad("history-empty-label-number", lambda: History.empty(["a"], (), label=3), "label", "a string", "label=3"),
    case(
        "history-from-rows-wrong-width",
        lambda: History.from_rows(np.ones((3, 5)), ["a"], gradlab.scaler.MODE_NAMES),
        "Argument `rows` must be a 2-D array of shape (steps, 12)",
        "Received: rows of shape (3, 5)",
    ),
    case(
        "history-from-rows-1d",
        lambda: History.from_rows(np.ones(12), ["a"], gradlab.scaler.MODE_NAMES),
        "Argument `rows` must be a 2-D array",
        "Received: rows of shape (12,)",
    ),
    bad(
        "history-from-rows-strings",
        lambda: History.from_rows([["a"] * 12], ["a"], gradlab.scaler.MODE_NAMES),
        "rows",
        "a 2-D array of numbers",
        "rows=[['a'",
    ),
    bad(
        "history-from-rows-ragged",
        lambda: History.from_rows([[1.0] * 12, [1.0]], ["a"], gradlab.scaler.MODE_NAMES),
        "rows",
        "a 2-D array of numbers",
        "rows=[[1.0",
    ),
    case(
        "history-column-wrong-length",
        lambda: with_columns(loss=np.ones(3)),
        "Argument `norm_before` must be a 1-D array with one value per step, as long as `loss` (3)",
        "Received: norm_before of shape (4,)",
    ),
    case(
        "history-per-layer-wrong-shape",
        lambda: with_columns(update_ratio=np.ones((4, 2))),
        "Argument `update_ratio` must be an array of shape (steps, layers) = (4, 1)",
        "Received: update_ratio of shape (4, 2)",
    ),
    bad("history-tensorboard-none", lambda: H.to_tensorboard(None), "logdir", "a directory path", "logdir=None"),
    bad("history-tensorboard-empty", lambda: H.to_tensorboard(""), "logdir", "a directory path", "logdir=''"),
    bad("history-tensorboard-number", lambda: H.to_tensorboard(3), "logdir", "a directory path", "logdir=3"),
    # --- plots: the histories
    bad("overview-none", lambda: plots.overview(None), "histories", "a gradlab History", "histories=None"),
    bad("overview-empty", lambda: plots.overview([]), "histories", "a non-empty list of them", "histories=[]"),
    bad("overview-string", lambda: plots.overview("abc"), "histories", "a gradlab History", "histories='abc'"),
    bad(
        "overview-holds-string", lambda: plots.overview([H, "x"]), "histories", "a gradlab History", "histories[1]='x'"
    ),
    bad("overview-nested", lambda: plots.overview([[H]]), "histories", "a gradlab History", "histories[0]=[History("),
    bad("loss-figure-none", lambda: plots.loss_figure(None), "histories", "a gradlab History", "histories=None"),
    bad(
        "clip-rate-figure-empty-tuple",
        lambda: plots.clip_rate_figure(()),
        "histories",
        "a gradlab History",
        "histories=()",
    ),
    bad(
        "norm-figure-two-histories",
        lambda: plots.norm_figure([H, H]),
        "history",
        "one gradlab History",
        "history=[History(label='run', steps=4",
    ),
    bad("norm-figure-none", lambda: plots.norm_figure(None), "history", "one gradlab History", "history=None"),
    bad("norm-figure-empty-list", lambda: plots.norm_figure([]), "history", "one gradlab History", "history=[]"),
    bad(
        "layer-heatmap-two", lambda: plots.layer_heatmap([H, H]), "history", "one gradlab History", "history=[History("
    ),
    bad("static-figure-string", lambda: plots.static_figure("run"), "figure", "go.Figure", "figure='run'"),
    bad("clip-rate-none", lambda: plots.clip_rate(None), "h", "one gradlab History", "h=None"),
    # --- plots: window, flags, which
    bad("overview-window-zero", lambda: plots.overview(H, window=0), "window", "in [1, inf)", "window=0"),
    bad("overview-window-negative", lambda: plots.overview(H, window=-1), "window", "in [1, inf)", "window=-1"),
    bad("overview-window-fraction", lambda: plots.overview(H, window=2.5), "window", "an integer", "window=2.5"),
    bad("overview-window-string", lambda: plots.overview(H, window="20"), "window", "an integer", "window='20'"),
    bad(
        "overview-window-tensor",
        lambda: plots.overview(H, window=tf.constant(5)),
        "window",
        "not a tensor",
        "window=<tf.Tensor",
    ),
    bad("clip-rate-window-zero", lambda: plots.clip_rate(H, window=0), "window", "in [1, inf)", "window=0"),
    bad("clip-rate-window-nan", lambda: plots.clip_rate(H, window=NAN), "window", "an integer", "window=nan"),
    bad(
        "clip-rate-figure-window-inf",
        lambda: plots.clip_rate_figure(H, window=INF),
        "window",
        "an integer",
        "window=inf",
    ),
    bad(
        "overview-log-loss-string",
        lambda: plots.overview(H, log_loss="no"),
        "log_loss",
        "True or False",
        "log_loss='no'",
    ),
    bad(
        "overview-log-loss-none", lambda: plots.overview(H, log_loss=None), "log_loss", "True or False", "log_loss=None"
    ),
    bad("loss-figure-log-y-int", lambda: plots.loss_figure(H, log_y=1), "log_y", "True or False", "log_y=1"),
    bad("norm-figure-log-y-string", lambda: plots.norm_figure(H, log_y="yes"), "log_y", "True or False", "log_y='yes'"),
    case(
        "layer-heatmap-which-none",
        lambda: plots.layer_heatmap(H, which=None),
        "Unknown which None",
        "Expected one of: 'before', 'after', 'ratio'",
        "Received: which=None",
    ),
    case(
        "layer-heatmap-which-capitalised",
        lambda: plots.layer_heatmap(H, which="Before"),
        "Expected one of: 'before', 'after', 'ratio'",
        "Received: which='Before'",
    ),
    # --- plots: LiveFigure, static_figure and widget_bundle
    bad("live-figure-window-zero", lambda: plots.LiveFigure(window=0), "window", "in [1, inf)", "window=0"),
    bad("live-figure-height-small", lambda: plots.LiveFigure(height=5), "height", "in [10, inf)", "height=5"),
    bad("live-figure-height-none", lambda: plots.LiveFigure(height=None), "height", "a number", "height=None"),
    bad(
        "live-figure-max-points-zero",
        lambda: plots.LiveFigure(max_points=0),
        "max_points",
        "in [1, inf)",
        "max_points=0",
    ),
    bad(
        "live-figure-max-points-fraction",
        lambda: plots.LiveFigure(max_points=10.5),
        "max_points",
        "an integer",
        "max_points=10.5",
    ),
    bad(
        "live-figure-patience-negative", lambda: plots.LiveFigure(patience=-1), "patience", "in [0, inf)", "patience=-1"
    ),
    bad(
        "live-figure-patience-nan",
        lambda: plots.LiveFigure(patience=NAN),
        "patience",
        "a finite number",
        "patience=nan",
    ),
    bad("live-figure-update-none", lambda: plots.LiveFigure().update(None), "h", "one gradlab History", "h=None"),
    bad("live-figure-update-two", lambda: plots.LiveFigure().update([H, H]), "h", "one gradlab History", "h=[History("),
    bad("live-figure-overlay-empty", lambda: plots.LiveFigure().overlay([]), "histories", "non-empty", "histories=[]"),
    bad("static-figure-history", lambda: plots.static_figure(H), "figure", "go.FigureWidget", "figure=History("),
    bad(
        "static-figure-note-none", lambda: plots.static_figure(go.Figure(), note=None), "note", "a string", "note=None"
    ),
    bad(
        "widget-bundle-figure-widget",
        lambda: plots.widget_bundle(H, go.Figure()),
        "widget",
        "ipywidgets",
        "widget=History(",
    ),
    bad(
        "widget-bundle-text-none",
        lambda: plots.widget_bundle(go.FigureWidget(), go.Figure(), text=None),
        "text",
        "a string",
        "text=None",
    ),
    # --- report
    bad("summary-table-none", lambda: report.summary_table(None), "histories", "a gradlab History", "histories=None"),
    bad("summary-table-empty", lambda: report.summary_table([]), "histories", "non-empty", "histories=[]"),
    bad("summary-table-holds-number", lambda: report.summary_table([H, 3]), "histories", "a gradlab", "histories[1]=3"),
    bad("write-report-empty", lambda: report.write_report([], "r.html"), "histories", "non-empty", "histories=[]"),
    bad("write-report-path-none", lambda: report.write_report([H], None), "path", "a file path", "path=None"),
    bad("write-report-path-empty", lambda: report.write_report([H], ""), "path", "a file path", "path=''"),
    bad("write-report-path-directory", lambda: report.write_report([H], "."), "path", "not a directory", "path='.'"),
    bad(
        "write-report-path-missing-folder",
        lambda: report.write_report([H], "no/such/dir/r.html"),
        "path",
        "an existing directory ('no/such/dir' does not exist)",
        "path='no/such/dir/r.html'",
    ),
    bad(
        "write-report-title-none",
        lambda: report.write_report([H], "r.html", title=None),
        "title",
        "a string",
        "title=None",
    ),
    bad("write-report-note-number", lambda: report.write_report([H], "r.html", note=3), "note", "a string", "note=3"),
    # --- the Lab: constructor
    case(
        "lab-problem-unknown",
        lambda: Lab(problem="nope"),
        "Unknown problem 'nope'",
        PROBLEMS_LISTED,
        "Received: problem='nope'",
    ),
    case("lab-problem-none", lambda: Lab(problem=None), PROBLEMS_LISTED, "Received: problem=None"),
    case("lab-problem-capitalised", lambda: Lab(problem="Deep_MLP"), PROBLEMS_LISTED, "Received: problem='Deep_MLP'"),
    case("lab-mode-unknown", lambda: Lab(mode="glob"), "Unknown mode 'glob'", MODES_LISTED, "Received: mode='glob'"),
    case("lab-mode-none", lambda: Lab(mode=None), MODES_LISTED, "Received: mode=None"),
    bad("lab-threshold-negative", lambda: Lab(threshold=-1), "threshold", "in (0, inf)", "threshold=-1"),
    bad("lab-threshold-nan", lambda: Lab(threshold=NAN), "threshold", "a finite number", "threshold=nan"),
    bad("lab-threshold-string", lambda: Lab(threshold="1"), "threshold", "a number", "threshold='1'"),
    bad(
        "lab-autoclip-percentile-500",
        lambda: Lab(mode="autoclip", threshold=500),
        "threshold",
        "in (0, 100]",
        "threshold=500",
    ),
    bad(
        "lab-learning-rate-negative", lambda: Lab(learning_rate=-1), "learning_rate", "in (0, inf)", "learning_rate=-1"
    ),
    bad("lab-learning-rate-zero", lambda: Lab(learning_rate=0), "learning_rate", "in (0, inf)", "learning_rate=0"),
    bad(
        "lab-learning-rate-nan", lambda: Lab(learning_rate=NAN), "learning_rate", "a finite number", "learning_rate=nan"
    ),
    bad(
        "lab-learning-rate-inf", lambda: Lab(learning_rate=INF), "learning_rate", "a finite number", "learning_rate=inf"
    ),
    bad(
        "lab-learning-rate-string", lambda: Lab(learning_rate="0.5"), "learning_rate", "a number", "learning_rate='0.5'"
    ),
    bad("lab-learning-rate-none", lambda: Lab(learning_rate=None), "learning_rate", "a number", "learning_rate=None"),
    bad(
        "lab-learning-rate-tensor",
        lambda: Lab(learning_rate=tf.constant(0.5)),
        "learning_rate",
        "not a tensor",
        "learning_rate=<tf.Tensor",
    ),
    bad("lab-steps-zero", lambda: Lab(steps=0), "steps", "in [1, inf)", "steps=0"),
    bad("lab-steps-negative", lambda: Lab(steps=-1), "steps", "in [1, inf)", "steps=-1"),
    bad("lab-steps-fraction", lambda: Lab(steps=2.5), "steps", "an integer", "steps=2.5"),
    bad("lab-steps-none", lambda: Lab(steps=None), "steps", "an integer", "steps=None"),
    bad("lab-steps-nan", lambda: Lab(steps=NAN), "steps", "an integer", "steps=nan"),
    bad("lab-chunk-zero", lambda: Lab(chunk=0), "chunk", "in [1, inf)", "chunk=0"),
    bad("lab-chunk-negative", lambda: Lab(chunk=-1), "chunk", "in [1, inf)", "chunk=-1"),
    bad("lab-chunk-fraction", lambda: Lab(chunk=2.5), "chunk", "an integer", "chunk=2.5"),
    bad("lab-chunk-string", lambda: Lab(chunk="5"), "chunk", "an integer", "chunk='5'"),
    bad("lab-chunk-tensor", lambda: Lab(chunk=tf.constant(5)), "chunk", "not a tensor", "chunk=<tf.Tensor"),
    bad("lab-batch-size-zero", lambda: Lab(batch_size=0), "batch_size", "in [1, inf)", "batch_size=0"),
    bad("lab-batch-size-negative", lambda: Lab(batch_size=-1), "batch_size", "in [1, inf)", "batch_size=-1"),
    bad("lab-batch-size-fraction", lambda: Lab(batch_size=1.5), "batch_size", "an integer", "batch_size=1.5"),
    bad("lab-batch-size-string", lambda: Lab(batch_size="32"), "batch_size", "an integer", "batch_size='32'"),
    bad(
        "lab-batch-size-over-samples",
        lambda: Lab(problem="deep_mlp", batch_size=5000),
        "batch_size",
        "at most the number of samples of problem 'deep_mlp' (1024)",
        "batch_size=5000",
    ),
    bad("lab-redraw-ms-negative", lambda: Lab(redraw_ms=-1), "redraw_ms", "in [0, inf)", "redraw_ms=-1"),
    bad("lab-redraw-ms-nan", lambda: Lab(redraw_ms=NAN), "redraw_ms", "a finite number", "redraw_ms=nan"),
    bad("lab-redraw-ms-string", lambda: Lab(redraw_ms="150"), "redraw_ms", "a number", "redraw_ms='150'"),
    bad("lab-seed-negative", lambda: Lab(seed=-1), "seed", "in [0, inf)", "seed=-1"),
    bad("lab-seed-fraction", lambda: Lab(seed=0.5), "seed", "an integer", "seed=0.5"),
    bad("lab-seed-string", lambda: Lab(seed="0"), "seed", "an integer", "seed='0'"),
    # --- the Lab: methods and threshold_range
    bad("lab-run-steps-zero", lambda: lab().run(steps=0), "steps", "in [1, inf)", "steps=0"),
    bad("lab-run-steps-negative", lambda: lab().run(steps=-3), "steps", "in [1, inf)", "steps=-3"),
    bad("lab-run-steps-fraction", lambda: lab().run(steps=2.5), "steps", "an integer", "steps=2.5"),
    bad("lab-run-steps-string", lambda: lab().run(steps="10"), "steps", "an integer", "steps='10'"),
    bad("lab-run-wait-string", lambda: lab().run(steps=1, wait="yes"), "wait", "True or False", "wait='yes'"),
    bad("lab-compare-steps-zero", lambda: lab().compare_all(steps=0), "steps", "in [1, inf)", "steps=0"),
    bad("lab-compare-wait-int", lambda: lab().compare_all(steps=1, wait=1), "wait", "True or False", "wait=1"),
    case(
        "threshold-range-mode-unknown", lambda: threshold_range("glob"), "Unknown mode 'glob'", "Received: mode='glob'"
    ),
    # --- the exercises' settings (a wrong answer is a verdict, not an error)
    bad(
        "nb03-q-over-100", lambda: nb03.check_percentile_threshold(1.0, [1.0, 2.0], q=150), "q", "in [0, 100]", "q=150"
    ),
    bad("nb03-q-nan", lambda: nb03.check_percentile_threshold(1.0, [1.0, 2.0], q=NAN), "q", "a finite number", "q=nan"),
    bad(
        "nb05-learning-rate-negative",
        lambda: nb05.check_rescue_threshold(0.3, learning_rate=-1),
        "learning_rate",
        "in (0, inf)",
        "learning_rate=-1",
    ),
    bad("nb05-steps-zero", lambda: nb05.check_rescue_threshold(0.3, steps=0), "steps", "in [1, inf)", "steps=0"),
    bad(
        "nb05-target-nan",
        lambda: nb05.check_rescue_threshold(0.3, target=NAN),
        "target",
        "a finite number",
        "target=nan",
    ),
]


# ---------------------------------------------------------------- the core modules

CORE_CASES = [
    # --- Scaler
    case(
        "scaler-nonfinite-number",
        lambda: gradlab.Scaler(nonfinite=3),
        "Unknown nonfinite policy 3",
        "Expected one of: 'skip', 'zero', 'raise'",
        "Received: nonfinite=3",
    ),
    bad("scaler-agc-eps-nan", lambda: gradlab.Scaler(agc_eps=NAN), "agc_eps", "a finite number", "agc_eps=nan"),
    bad(
        "scaler-agc-eps-tensor-negative",
        lambda: gradlab.Scaler(agc_eps=tf.constant(-1.0)),
        "agc_eps",
        "in (0, inf)",
        "agc_eps=-1.0",
    ),
    bad("scaler-zclip-eps-zero", lambda: gradlab.Scaler(zclip_eps=0), "zclip_eps", "in (0, inf)", "zclip_eps=0"),
    bad(
        "scaler-normalize-eps-inf",
        lambda: gradlab.Scaler(normalize_eps=INF),
        "normalize_eps",
        "a finite number",
        "normalize_eps=inf",
    ),
    bad(
        "scaler-autoclip-history-fraction",
        lambda: gradlab.Scaler(autoclip_history=2.5),
        "autoclip_history",
        "an integer",
        "autoclip_history=2.5",
    ),
    bad(
        "scaler-zclip-alpha-nan",
        lambda: gradlab.Scaler(zclip_alpha=NAN),
        "zclip_alpha",
        "a finite number",
        "zclip_alpha=nan",
    ),
    bad(
        "scaler-zclip-alpha-tensor-2",
        lambda: gradlab.Scaler(zclip_alpha=tf.constant(2.0)),
        "zclip_alpha",
        "in (0, 1)",
        "zclip_alpha=2.0",
    ),
    bad(
        "scaler-zclip-warmup-negative",
        lambda: gradlab.Scaler(zclip_warmup=-1),
        "zclip_warmup",
        "in [1, inf)",
        "zclip_warmup=-1",
    ),
    bad("scaler-threshold-list", lambda: gradlab.Scaler("norm", [1.0]), "threshold", "a number", "threshold=[1.0]"),
    bad(
        "scaler-threshold-tensor-nan",
        lambda: gradlab.Scaler("norm", tf.constant(NAN)),
        "threshold",
        "a finite number",
        "threshold=nan",
    ),
    case(
        "scaler-mode-capitalised-none", lambda: gradlab.Scaler("None"), "Unknown mode 'None'", "Received: mode='None'"
    ),
    bad(
        "scaler-set-threshold-inf",
        lambda: gradlab.Scaler().set(threshold=INF),
        "threshold",
        "a finite number",
        "threshold=inf",
    ),
    case("scaler-set-mode-number", lambda: gradlab.Scaler().set(mode=2), "Unknown mode 2", "Received: mode=2"),
    case(
        "scaler-call-variables-too-few",
        lambda: gradlab.Scaler("global_norm")(grads(), variables()[:1]),
        "Arguments `grads` and `variables`",
        "Received: len(grads)=2, len(variables)=1",
    ),
    bad(
        "scaler-call-variables-tensor",
        lambda: gradlab.Scaler("global_norm")(grads(), tf.constant(1.0)),
        "variables",
        "a list or tuple of variables",
        "variables of type EagerTensor",
    ),
    bad("scaler-call-grads-string", lambda: gradlab.Scaler()("abc"), "grads", "a list or tuple", "grads of type str"),
    bad(
        "scaler-call-grads-dict",
        lambda: gradlab.Scaler()({"a": tf.constant(1.0)}),
        "grads",
        "a list or tuple",
        "grads of type dict",
    ),
    bad(
        "scaler-plan-single-tensor",
        lambda: gradlab.Scaler().plan(tf.constant([1.0])),
        "grads",
        "a list or tuple",
        "grads of type EagerTensor",
    ),
    bad(
        "scaler-autoclip-history-tensor",
        lambda: gradlab.Scaler(autoclip_history=tf.constant(4)),
        "autoclip_history",
        "an integer",
        "autoclip_history=",
    ),
    # --- ScaledOptimizer
    bad(
        "optimizer-threshold-negative",
        lambda: gradlab.ScaledOptimizer(sgd(), threshold=-1),
        "threshold",
        "in (0, inf)",
        "threshold=-1",
    ),
    bad(
        "optimizer-threshold-tensor-negative",
        lambda: gradlab.ScaledOptimizer(sgd(), "norm", tf.constant(-1.0)),
        "threshold",
        "in (0, inf)",
        "threshold=-1.0 (a tf.Tensor)",
    ),
    bad(
        "optimizer-transform-not-callable",
        lambda: gradlab.ScaledOptimizer(sgd(), transform=3),
        "transform",
        "callable",
        "transform=3",
    ),
    case(
        "optimizer-apply-lengths-differ",
        lambda: gradlab.ScaledOptimizer(sgd()).apply(grads(), variables()[:1]),
        "Arguments `grads` and `variables`",
        "Received:",
    ),
    bad(
        "optimizer-apply-single-tensor",
        lambda: gradlab.ScaledOptimizer(sgd()).apply(tf.constant([1.0, 2.0]), [tf.Variable(1.0), tf.Variable(2.0)]),
        "grads",
        "a list or tuple",
        "grads of type EagerTensor",
    ),
    case(
        "optimizer-unknown-option",
        lambda: gradlab.ScaledOptimizer(sgd(), foo=1),
        "`foo`",
        "Received:",
    ),
    bad(
        "optimizer-start-recording-capacity-zero",
        lambda: gradlab.ScaledOptimizer(sgd()).start_recording(variables(), 0),
        "capacity",
        "in [1, inf)",
        "capacity=0",
    ),
    bad(
        "optimizer-start-recording-capacity-negative",
        lambda: gradlab.ScaledOptimizer(sgd()).start_recording(variables(), -1),
        "capacity",
        "in [1, inf)",
        "capacity=-1",
    ),
    bad(
        "optimizer-start-recording-variables-none",
        lambda: gradlab.ScaledOptimizer(sgd()).start_recording(None),
        "variables",
        "a list",
        "variables=None",
    ),
    # --- Trainer
    bad(
        "trainer-model-string", lambda: gradlab.Trainer("m", tiny().loss, sgd()), "model", "a keras.Model", "model='m'"
    ),
    case(
        "trainer-model-unbuilt",
        lambda: gradlab.Trainer(keras.Sequential([keras.layers.Dense(1)]), tiny().loss, sgd()),
        "Argument `model` must be built",
        "Received: model=",
    ),
    bad(
        "trainer-optimizer-string",
        lambda: gradlab.Trainer(tiny().model(), tiny().loss, "sgd"),
        "optimizer",
        "a Keras optimizer",
        "optimizer='sgd'",
    ),
    case(
        "trainer-optimizer-clipnorm",
        lambda: gradlab.Trainer(tiny().model(), tiny().loss, sgd(clipnorm=1.0)),
        "Only one clipping option",
        "Received: optimizer.clipnorm=1.0",
    ),
    bad(
        "trainer-scaler-string",
        lambda: gradlab.Trainer(tiny().model(), tiny().loss, sgd(), "norm"),
        "scaler",
        "a gradlab.Scaler",
        "scaler='norm'",
    ),
    case(
        "trainer-scaled-optimizer-and-scaler",
        lambda: gradlab.Trainer(tiny().model(), tiny().loss, gradlab.ScaledOptimizer(sgd()), gradlab.Scaler()),
        "Only one clipping option",
        "Received: scaler=",
    ),
    bad(
        "trainer-steps-per-call-zero",
        lambda: trainer(steps_per_call=0),
        "steps_per_call",
        "in [1, inf)",
        "steps_per_call=0",
    ),
    bad("trainer-accumulate-zero", lambda: trainer(accumulate=0), "accumulate", "in [1, inf)", "accumulate=0"),
    bad("trainer-accumulate-fraction", lambda: trainer(accumulate=2.5), "accumulate", "an integer", "accumulate=2.5"),
    bad("trainer-accumulate-bool", lambda: trainer(accumulate=True), "accumulate", "an integer", "accumulate=True"),
    bad("trainer-capacity-zero", lambda: trainer(capacity=0), "capacity", "in [1, inf)", "capacity=0"),
    bad("trainer-capacity-string", lambda: trainer(capacity="8"), "capacity", "an integer", "capacity='8'"),
    bad(
        "trainer-capacity-tensor-zero",
        lambda: trainer(capacity=tf.constant(0)),
        "capacity",
        "in [1, inf)",
        "capacity=0",
    ),
    bad("trainer-label-number", lambda: trainer(label=3), "label", "a string", "label=3"),
    bad(
        "trainer-steps-per-call-nan",
        lambda: trainer(steps_per_call=NAN),
        "steps_per_call",
        "an integer",
        "steps_per_call=nan",
    ),
    bad(
        "trainer-jit-compile-string",
        lambda: trainer(jit_compile="yes"),
        "jit_compile",
        "True or False",
        "jit_compile='yes'",
    ),
    bad(
        "trainer-capacity-tensor",
        lambda: trainer(capacity=tf.constant(8)),
        "capacity",
        "an integer",
        "capacity=",
    ),
    # --- Trainer.fit
    bad("fit-steps-zero", lambda: fit_with(steps=0), "steps", "in [1, inf)", "steps=0"),
    bad("fit-steps-negative", lambda: fit_with(steps=-1), "steps", "in [1, inf)", "steps=-1"),
    bad("fit-steps-fraction", lambda: fit_with(steps=2.5), "steps", "an integer", "steps=2.5"),
    bad("fit-steps-none", lambda: fit_with(steps=None), "steps", "an integer", "steps=None"),
    bad("fit-steps-tensor-zero", lambda: fit_with(steps=tf.constant(0)), "steps", "in [1, inf)", "steps=0"),
    bad("fit-flush-every-zero", lambda: fit_with(flush_every=0), "flush_every", "1024]", "flush_every=0"),
    bad(
        "fit-flush-every-over-capacity", lambda: fit_with(flush_every=5000), "flush_every", "1024]", "flush_every=5000"
    ),
    bad(
        "fit-batch-size-over-samples",
        lambda: fit_with(batch_size=65),
        "batch_size",
        "at most the number of samples",
        "batch_size=65",
    ),
    bad("fit-batch-size-bool", lambda: fit_with(batch_size=True), "batch_size", "an integer", "batch_size=True"),
    bad("fit-progress-string", lambda: fit_with(progress="no"), "progress", "True or False", "progress='no'"),
    bad("fit-seed-fraction", lambda: fit_with(seed=0.5), "seed", "an integer", "seed=0.5"),
    bad(
        "fit-dataset-list",
        lambda: trainer().fit(dataset=[1, 2], steps=1, progress=False),
        "dataset",
        "a tf.data.Dataset",
        "dataset=[1, 2]",
    ),
    bad(
        "fit-steps-inf",
        lambda: fit_with(steps=INF),
        "steps",
        "an integer",
        "steps=inf",
    ),
    bad(
        "fit-steps-nan",
        lambda: fit_with(steps=NAN),
        "steps",
        "an integer",
        "steps=nan",
    ),
    bad(
        "fit-batch-size-inf",
        lambda: fit_with(batch_size=INF),
        "batch_size",
        "an integer",
        "batch_size=inf",
    ),
    bad(
        "fit-seed-nan",
        lambda: fit_with(seed=NAN),
        "seed",
        "an integer",
        "seed=nan",
    ),
    bad(
        "fit-batch-size-tensor",
        lambda: fit_with(batch_size=tf.constant(8)),
        "batch_size",
        "an integer",
        "batch_size=",
    ),
    bad(
        "fit-steps-tensor",
        lambda: fit_with(steps=tf.constant(1)),
        "steps",
        "an integer",
        "steps=",
    ),
    case(
        "fit-x-wrong-feature-shape",
        lambda: fit_with(x=np.zeros((64, 3), np.float32)),
        "Argument `x`",
        "Received: x of shape (64, 3)",
    ),
    # --- GradientStats
    bad(
        "gradient-stats-capacity-zero",
        lambda: gradlab.GradientStats(capacity=0),
        "capacity",
        "in [1, inf)",
        "capacity=0",
    ),
    bad(
        "gradient-stats-capacity-fraction",
        lambda: gradlab.GradientStats(capacity=1.5),
        "capacity",
        "an integer",
        "capacity=1.5",
    ),
    bad(
        "gradient-stats-capacity-inf",
        lambda: gradlab.GradientStats(capacity=INF),
        "capacity",
        "an integer",
        "capacity=inf",
    ),
    bad(
        "gradient-stats-label-number",
        lambda: gradlab.GradientStats(label=3),
        "label",
        "a string",
        "label=3",
    ),
    # --- compare
    bad("compare-runs-none", lambda: gradlab.compare(tiny(), None), "runs", "a list of mode names", "runs=None"),
    case(
        "compare-runs-empty",
        lambda: gradlab.compare(tiny(), []),
        "Argument `runs` must name at least one mode",
        "Received: runs=[]",
    ),
    case(
        "compare-mode-unknown",
        lambda: gradlab.compare(tiny(), ["glob"]),
        "Unknown mode 'glob'",
        "Received: mode='glob'",
    ),
    case("compare-mode-number", lambda: gradlab.compare(tiny(), [(3, 1.0)]), "Unknown mode 3", "Received: mode=3"),
    bad(
        "compare-threshold-negative",
        lambda: gradlab.compare(tiny(), [("norm", -1)]),
        "threshold",
        "in (0, inf)",
        "threshold=-1",
    ),
    bad(
        "compare-threshold-string",
        lambda: gradlab.compare(tiny(), [("norm", "1")]),
        "threshold",
        "a number",
        "threshold='1'",
    ),
    case(
        "compare-runs-nested",
        lambda: gradlab.compare(tiny(), [[("norm", 1.0)]]),
        "Argument `runs` must hold mode names or (mode, threshold) pairs",
        "Received: runs[0]=",
    ),
    bad(
        "compare-optimizer-instance",
        lambda: gradlab.compare(tiny(), ["none"], optimizer=sgd()),
        "optimizer",
        "a function returning",
        "optimizer=<",
    ),
    bad(
        "compare-batch-size-zero",
        lambda: gradlab.compare(tiny(), ["none"], batch_size=0),
        "batch_size",
        "in [1, inf)",
        "batch_size=0",
    ),
    bad("compare-seed-negative", lambda: gradlab.compare(tiny(), ["none"], seed=-1), "seed", "in [0, inf)", "seed=-1"),
    bad(
        "compare-batch-size-over-samples",
        lambda: gradlab.compare(tiny(), ["none"], steps=1, batch_size=65),
        "batch_size",
        "at most the number of samples",
        "batch_size=65",
    ),
    bad(
        "compare-steps-inf",
        lambda: gradlab.compare(tiny(), ["none"], steps=INF),
        "steps",
        "an integer",
        "steps=inf",
    ),
    case(
        "compare-unknown-trainer-option",
        lambda: gradlab.compare(tiny(), ["none"], steps=1, foo=1),
        "`foo`",
        "Received:",
    ),
    bad(
        "compare-progress-string",
        lambda: gradlab.compare(tiny(), ["none"], steps=1, batch_size=16, progress="no"),
        "progress",
        "True or False",
        "progress='no'",
    ),
    # --- setup
    bad("setup-seed-string", lambda: gradlab.setup(seed="0"), "seed", "an integer", "seed='0'"),
    bad("setup-seed-negative", lambda: gradlab.setup(seed=-1), "seed", "in [0, inf)", "seed=-1"),
    bad(
        "setup-seed-inf",
        lambda: gradlab.setup(seed=INF, deterministic=False, quiet=False),
        "seed",
        "an integer",
        "seed=inf",
    ),
    bad(
        "setup-deterministic-int",
        lambda: gradlab.setup(deterministic=0, quiet=False),
        "deterministic",
        "True or False",
        "deterministic=0",
    ),
    bad(
        "setup-quiet-int",
        lambda: gradlab.setup(deterministic=False, quiet=0),
        "quiet",
        "True or False",
        "quiet=0",
    ),
    # --- the pure functions
    bad("tensor-norms-string", lambda: gradlab.tensor_norms("abc"), "grads", "a list or tuple", "grads of type str"),
    bad(
        "global-norm-dict",
        lambda: gradlab.global_norm({"a": tf.constant(1.0)}),
        "grads",
        "a list or tuple",
        "grads of type dict",
    ),
    bad("clip-by-norm-inf", lambda: gradlab.clip_by_norm(grads(), INF), "clipnorm", "a finite number", "clipnorm=inf"),
    bad(
        "clip-by-global-norm-zero",
        lambda: gradlab.clip_by_global_norm(grads(), 0),
        "global_clipnorm",
        "in (0, inf)",
        "global_clipnorm=0",
    ),
    bad(
        "clip-by-global-norm-bool",
        lambda: gradlab.clip_by_global_norm(grads(), True),
        "global_clipnorm",
        "a number",
        "global_clipnorm=True",
    ),
    bad(
        "clip-by-global-norm-list",
        lambda: gradlab.clip_by_global_norm(grads(), [1.0]),
        "global_clipnorm",
        "a number",
        "global_clipnorm=[1.0]",
    ),
    bad(
        "clip-by-value-nested-same-shapes",
        lambda: gradlab.clip_by_value([[tf.constant(1.0), tf.constant(2.0)]], 1.0),
        "grads",
        "a flat list",
        "grads[0] of type list",
    ),
    bad(
        "clip-by-value-string-tensor",
        lambda: gradlab.clip_by_value(grads(), tf.constant("a")),
        "clipvalue",
        "a real number",
        "clipvalue=",
    ),
    bad(
        "normalize-norm-negative", lambda: gradlab.scaling.normalize(grads(), norm=-1), "norm", "in (0, inf)", "norm=-1"
    ),
    bad("normalize-eps-nan", lambda: gradlab.scaling.normalize(grads(), eps=NAN), "eps", "a finite number", "eps=nan"),
    bad(
        "normalize-eps-tensor-negative",
        lambda: gradlab.scaling.normalize(grads(), eps=tf.constant(-1.0)),
        "eps",
        "in (0, inf)",
        "eps=-1.0",
    ),
    bad(
        "normalize-global-norm-string",
        lambda: gradlab.scaling.normalize_global(grads(), norm="1"),
        "norm",
        "a number",
        "norm='1'",
    ),
    bad(
        "adaptive-clip-clipping-zero",
        lambda: gradlab.adaptive_clip(grads(), variables(), clipping=0),
        "clipping",
        "in (0, inf)",
        "clipping=0",
    ),
    bad(
        "adaptive-clip-eps-negative",
        lambda: gradlab.adaptive_clip(grads(), variables(), eps=-1),
        "eps",
        "in (0, inf)",
        "eps=-1",
    ),
    bad(
        "adaptive-clip-variables-string",
        lambda: gradlab.adaptive_clip(grads(), "ab"),
        "variables",
        "a list or tuple of variables",
        "variables of type str",
    ),
    # --- AutoClip
    bad(
        "autoclip-percentile-nan",
        lambda: gradlab.scaling.AutoClip(percentile=NAN),
        "percentile",
        "a finite number",
        "percentile=nan",
    ),
    bad(
        "autoclip-percentile-tensor-negative",
        lambda: gradlab.scaling.AutoClip(percentile=tf.constant(-1.0)),
        "percentile",
        "in (0, 100]",
        "percentile=-1.0",
    ),
    bad(
        "autoclip-percentile-tensor-500",
        lambda: gradlab.scaling.AutoClip(percentile=tf.constant(500.0)),
        "percentile",
        "in (0, 100]",
        "percentile=500.0",
    ),
    bad(
        "autoclip-history-size-string",
        lambda: gradlab.scaling.AutoClip(history_size="10"),
        "history_size",
        "an integer",
        "history_size='10'",
    ),
    bad(
        "autoclip-history-size-tensor-zero",
        lambda: gradlab.scaling.AutoClip(history_size=tf.constant(0)),
        "history_size",
        "in [1, inf)",
        "history_size=0",
    ),
    bad(
        "autoclip-call-string",
        lambda: gradlab.scaling.AutoClip()("abc"),
        "grads",
        "a list or tuple",
        "grads of type str",
    ),
    bad(
        "autoclip-history-size-nan",
        lambda: gradlab.scaling.AutoClip(history_size=NAN),
        "history_size",
        "an integer",
        "history_size=nan",
    ),
    bad(
        "autoclip-history-size-tensor",
        lambda: gradlab.scaling.AutoClip(history_size=tf.constant(3)),
        "history_size",
        "an integer",
        "history_size=",
    ),
    bad(
        "autoclip-update-percentile-negative",
        lambda: gradlab.scaling.AutoClip().update(tf.constant(1.0), -5.0),
        "percentile",
        "in (0, 100]",
        "percentile=-5.0",
    ),
    # --- ZClip
    bad("zclip-eps-zero", lambda: gradlab.scaling.ZClip(eps=0), "eps", "in (0, inf)", "eps=0"),
    bad("zclip-eps-nan", lambda: gradlab.scaling.ZClip(eps=NAN), "eps", "a finite number", "eps=nan"),
    bad(
        "zclip-eps-tensor-negative",
        lambda: gradlab.scaling.ZClip(eps=tf.constant(-1.0)),
        "eps",
        "in (0, inf)",
        "eps=-1.0",
    ),
    bad("zclip-alpha-nan", lambda: gradlab.scaling.ZClip(alpha=NAN), "alpha", "a finite number", "alpha=nan"),
    bad("zclip-alpha-inf", lambda: gradlab.scaling.ZClip(alpha=INF), "alpha", "a finite number", "alpha=inf"),
    bad(
        "zclip-alpha-tensor-1.5",
        lambda: gradlab.scaling.ZClip(alpha=tf.constant(1.5)),
        "alpha",
        "in (0, 1)",
        "alpha=1.5",
    ),
    bad(
        "zclip-z-threshold-tensor-negative",
        lambda: gradlab.scaling.ZClip(z_threshold=tf.constant(-1.0)),
        "z_threshold",
        "in (0, inf)",
        "z_threshold=-1.0",
    ),
    bad("zclip-warmup-bool", lambda: gradlab.scaling.ZClip(warmup=True), "warmup", "an integer", "warmup=True"),
    bad(
        "zclip-warmup-tensor-zero",
        lambda: gradlab.scaling.ZClip(warmup=tf.constant(0)),
        "warmup",
        "in [1, inf)",
        "warmup=0",
    ),
    bad(
        "zclip-call-single-tensor",
        lambda: gradlab.scaling.ZClip()(tf.constant([1.0])),
        "grads",
        "a list or tuple",
        "grads of type EagerTensor",
    ),
    bad(
        "zclip-warmup-inf",
        lambda: gradlab.scaling.ZClip(warmup=INF),
        "warmup",
        "an integer",
        "warmup=inf",
    ),
    bad(
        "zclip-warmup-nan",
        lambda: gradlab.scaling.ZClip(warmup=NAN),
        "warmup",
        "an integer",
        "warmup=nan",
    ),
    bad(
        "zclip-warmup-tensor",
        lambda: gradlab.scaling.ZClip(warmup=tf.constant(3)),
        "warmup",
        "an integer",
        "warmup=",
    ),
    bad(
        "zclip-alpha-tensor",
        lambda: gradlab.scaling.ZClip(alpha=tf.constant(0.5)),
        "alpha",
        "a number",
        "alpha=",
    ),
    # --- Chain
    bad("chain-none", lambda: gradlab.scaler.Chain(None), "transforms[0]", "callable", "transforms[0]=None"),
    bad("chain-string", lambda: gradlab.scaler.Chain("norm"), "transforms[0]", "callable", "transforms[0]='norm'"),
    bad(
        "chain-call-single-tensor",
        lambda: gradlab.scaler.Chain(identity)(tf.constant([1.0, 2.0])),
        "grads",
        "a list or tuple",
        "grads of type EagerTensor",
    ),
    bad(
        "chain-call-string",
        lambda: gradlab.scaler.Chain(identity)("ab"),
        "grads",
        "a list or tuple",
        "grads of type str",
    ),
    bad(
        "chain-call-integer-grads",
        lambda: gradlab.scaler.Chain(identity)([tf.constant([1, 2])]),
        "grads",
        "floating-point gradients",
        "grads[0] with dtype int32",
    ),
    bad(
        "chain-call-nested",
        lambda: gradlab.scaler.Chain(identity)([grads()]),
        "grads",
        "a flat list",
        "grads[0] of type list",
    ),
    # --- Selective
    bad(
        "selective-default-string",
        lambda: gradlab.scaler.Selective([("w", 0.5)], default="x"),
        "default",
        "callable",
        "default='x'",
    ),
    bad(
        "selective-default-negative",
        lambda: gradlab.scaler.Selective([("w", 0.5)], default=-1),
        "default",
        "in [0, inf)",
        "default=-1",
    ),
    bad(
        "selective-default-inf",
        lambda: gradlab.scaler.Selective([("w", 0.5)], default=INF),
        "default",
        "a finite number",
        "default=inf",
    ),
    case(
        "selective-pattern-number",
        lambda: gradlab.scaler.Selective([(3, 0.5)]),
        "Argument `rules` must hold valid regular expressions",
        "Received: rules[0] pattern=3",
    ),
    bad(
        "selective-factor-nan",
        lambda: gradlab.scaler.Selective([("w", NAN)]),
        "rules[0]",
        "a finite number",
        "rules[0]=nan",
    ),
    bad(
        "selective-factor-tensor",
        lambda: gradlab.scaler.Selective([("w", tf.constant(-0.5))]),
        "rules[0]",
        "callable",
        "rules[0]=<tf.Tensor",
    ),
    bad(
        "selective-factor-numpy-negative",
        lambda: gradlab.scaler.Selective([("w", np.float32(-0.5))]),
        "rules[0]",
        "in [0, inf)",
        "rules[0]=",
    ),
    bad(
        "selective-dict-action-none",
        lambda: gradlab.scaler.Selective({"w": None}),
        "rules[0]",
        "callable",
        "rules[0]=None",
    ),
    bad(
        "selective-call-variables-tensor",
        lambda: gradlab.scaler.Selective([("w", 0.5)])(grads(), tf.constant(1.0)),
        "variables",
        "a list or tuple of variables",
        "variables of type EagerTensor",
    ),
    case(
        "selective-call-lengths-differ",
        lambda: gradlab.scaler.Selective([("w", 0.5)])(grads(), variables() + variables()),
        "Arguments `grads` and `variables`",
        "Received: len(grads)=2, len(variables)=4",
    ),
]


@pytest.mark.parametrize("call, error, parts", CASES)
def test_bad_input_gets_a_keras_style_error(call, error, parts):
    with pytest.raises(error, match=msg(*parts)) as info:
        call()
    assert "Received:" in str(info.value)


@pytest.mark.parametrize("call, error, parts", CORE_CASES)
def test_core_bad_input_gets_a_keras_style_error(call, error, parts):
    with pytest.raises(error, match=msg(*parts)) as info:
        call()
    assert "Received:" in str(info.value)


# ---------------------------------------------------------------- the report's command line
CLI_CASES = [
    pytest.param(
        ["--problem", "nope"],
        ("Unknown problem 'nope'", PROBLEMS_LISTED, "Received: --problem='nope'"),
        id="cli-problem-unknown",
    ),
    pytest.param(
        ["--modes", "glob"],
        ("Unknown mode 'glob' in `--modes`", "'none', 'value', 'norm'", "Received: --modes='glob'"),
        id="cli-modes-unknown",
    ),
    pytest.param(
        ["--modes", "none,norm=abc"],
        ("Argument `threshold` must be a number", "Received: threshold='abc'", "--modes='none,norm=abc'"),
        id="cli-modes-threshold-not-a-number",
    ),
    pytest.param(
        ["--modes", "autoclip=500"],
        ("Argument `threshold`", "in (0, 100]", "Received: threshold=500.0", "--modes='autoclip=500'"),
        id="cli-modes-percentile-500",
    ),
    pytest.param(
        ["--modes", "norm=-1"],
        ("Argument `threshold`", "in (0, inf)", "Received: threshold=-1.0"),
        id="cli-modes-threshold-negative",
    ),
    pytest.param(
        ["--modes", "norm=nan"],
        ("Argument `threshold`", "a finite number", "Received: threshold=nan"),
        id="cli-modes-threshold-nan",
    ),
    pytest.param(
        ["--modes", ""],
        ("Argument `--modes` must name at least one mode", "Received: --modes=''"),
        id="cli-modes-empty",
    ),
    pytest.param(
        ["--modes", " , "],
        ("Argument `--modes` must name at least one mode", "Received: --modes=' , '"),
        id="cli-modes-only-commas",
    ),
    pytest.param(["--steps", "0"], ("Argument `--steps`", "in [1, inf)", "Received: --steps=0"), id="cli-steps-zero"),
    pytest.param(
        ["--steps", "-5"], ("Argument `--steps`", "in [1, inf)", "Received: --steps=-5"), id="cli-steps-negative"
    ),
    pytest.param(["--lr", "-1"], ("Argument `--lr`", "in (0, inf)", "Received: --lr=-1.0"), id="cli-lr-negative"),
    pytest.param(["--lr", "0"], ("Argument `--lr`", "in (0, inf)", "Received: --lr=0.0"), id="cli-lr-zero"),
    pytest.param(["--lr", "nan"], ("Argument `--lr`", "a finite number", "Received: --lr=nan"), id="cli-lr-nan"),
    pytest.param(["--lr", "inf"], ("Argument `--lr`", "a finite number", "Received: --lr=inf"), id="cli-lr-inf"),
    pytest.param(
        ["--batch-size", "0"],
        ("Argument `--batch-size`", "in [1, inf)", "Received: --batch-size=0"),
        id="cli-batch-size-zero",
    ),
    pytest.param(
        ["--batch-size", "5000"],
        (
            "Argument `--batch-size` must be at most the number of samples of deep_mlp (1024)",
            "Received: --batch-size=5000",
        ),
        id="cli-batch-size-over-samples",
    ),
    pytest.param(["--seed", "-1"], ("Argument `--seed`", "in [0, inf)", "Received: --seed=-1"), id="cli-seed-negative"),
    pytest.param(
        ["--out", "no/such/dir/r.html"],
        ("Argument `--out`", "an existing directory", "Received: --out='no/such/dir/r.html'"),
        id="cli-out-missing-folder",
    ),
    pytest.param(
        ["--zclip-max-grad-norm", "0"],
        ("Argument `--zclip-max-grad-norm`", "in (0, inf)", "Received: --zclip-max-grad-norm=0.0"),
        id="cli-zclip-cap-zero",
    ),
]


@pytest.mark.parametrize("argv, parts", CLI_CASES)
def test_report_command_line_refuses_bad_arguments_before_building(argv, parts, monkeypatch, capsys):
    """As argparse does: usage and the Keras-form message on stderr, exit status 2; nothing trained."""
    monkeypatch.setattr(report, "compare", lambda *a, **k: pytest.fail("compare() was called"))
    with pytest.raises(SystemExit) as info:
        report.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m gradlab report" in err
    assert re.search(msg(*parts), err), err


# ---------------------------------------------------------------- before anything is built; nothing changed
LAB_BAD_KWARGS = [
    pytest.param(dict(chunk=0), id="chunk-zero"),
    pytest.param(dict(steps=0), id="steps-zero"),
    pytest.param(dict(learning_rate=-1), id="learning-rate-negative"),
    pytest.param(dict(problem="nope"), id="problem-unknown"),
    pytest.param(dict(threshold=NAN), id="threshold-nan"),
    pytest.param(dict(seed=-1), id="seed-negative"),
]


@pytest.mark.parametrize("kwargs", LAB_BAD_KWARGS)
def test_bad_lab_argument_builds_nothing(kwargs, monkeypatch):
    built = []
    monkeypatch.setattr(widgets, "make_problem", lambda *a, **k: built.append("problem"))
    monkeypatch.setattr(widgets, "Trainer", lambda *a, **k: built.append("trainer"))
    monkeypatch.setattr(widgets, "Scaler", lambda *a, **k: built.append("scaler"))
    with pytest.raises(ValueError, match="Received: "):
        Lab(**kwargs)
    assert built == []


def test_lab_keeps_the_values_it_is_given():
    """No silent replacement: steps below the slider's 10 and a learning rate outside its range are kept."""
    lab = Lab(problem="deep_mlp", steps=5, learning_rate=1e-4, threshold=5000.0)
    assert lab.controls["steps"].value == 5
    assert lab.controls["learning_rate"].value == pytest.approx(1e-4)
    assert float(lab.optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    assert float(lab.scaler.threshold.numpy()) == 5000.0
    assert lab.controls["threshold"].value == pytest.approx(5000.0)


def test_failed_lab_run_changes_nothing():
    lab_ = lab()
    n, target = len(lab_.history), lab_._target
    with pytest.raises(ValueError, match=msg("Argument `steps`", "Received: steps=0")):
        lab_.run(steps=0)
    assert not lab_.running and len(lab_.history) == n and lab_._target == target


def test_failed_extend_changes_nothing():
    h = history(3)
    before = {k: getattr(h, k).copy() for k in SCALARS + PER_LAYER}
    for other in ("x", history(2, layers=("a", "b")), History.empty(["dense"], ["x"])):
        with pytest.raises(ValueError, match="Argument `other`"):
            h.extend(other)
    for k, v in before.items():
        np.testing.assert_array_equal(v, getattr(h, k))
    assert len(h.extend(history(2))) == 5  # and it still extends


def test_failed_live_update_sends_nothing():
    live = plots.LiveFigure()
    live.update(H)
    edit, ys = _internals.edit_id(live.widget), [np.array(t.y, dtype=float) for t in live.widget.data]
    with pytest.raises(ValueError, match="Argument `h`"):
        live.update([H, H])
    assert _internals.edit_id(live.widget) == edit
    for y, t in zip(ys, live.widget.data):
        np.testing.assert_array_equal(y, np.array(t.y, dtype=float))


def test_failed_write_report_writes_nothing(tmp_path):
    out = tmp_path / "r.html"
    with pytest.raises(ValueError, match="Argument `title`"):
        report.write_report([H], out, title=None)
    assert not out.exists()
    assert report.write_report([H], out) == out and out.exists()  # a path object is fine


def test_exercise_answers_stay_verdicts(capsys):
    """A wrong *answer* is a verdict (False and a hint), not an error; only the settings raise."""
    assert nb01.check_global_norm(H, 2.5, 1.0) is False
    assert nb01.check_global_norm(H, "1", 1.0) is False
    assert "an integer between 0 and 3" in capsys.readouterr().out


def test_valid_input_still_works():
    assert len(problems.deep_mlp(depth=2.0, width=np.int64(4), samples=16).x) == 16
    assert plots.clip_rate([H], window=2).shape == (4,)
    assert plots.static_figure(plots.overview(H), note="a < b")["layout"]["title"]["text"].endswith("a &lt; b</sup>")
    assert "<table" in report.summary_table(H)
    assert len(plots.overview({"a": H, "b": H}.values()).data) > 6  # any iterable of histories


# ---------------------------------------------------------------- counting
def ids(cases):
    return [c.id for c in cases]


ALL_IDS = ids(CASES) + ids(CORE_CASES) + ids(CLI_CASES) + [f"lab-builds-nothing-{c.id}" for c in LAB_BAD_KWARGS]


def test_there_are_enough_distinct_cases():
    assert len(set(ALL_IDS)) == len(ALL_IDS)
    assert len(CASES) >= 150
    assert len(CORE_CASES) >= 130
    assert len(ALL_IDS) >= 320
    assert not set(ALL_IDS) & set(_test_errors_ids())


def _test_errors_ids():
    """Every hyphenated id-like string of tests/test_errors.py (a superset of its case ids)."""
    text = (pathlib.Path(__file__).parent / "test_errors.py").read_text()
    return re.findall(r'"([a-z][a-z0-9.]*(?:-[a-z0-9.]+)+)"', text)
