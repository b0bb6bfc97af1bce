"""Bring your own model: compare, the report, validation in Trainer.fit and the threshold advisor
on Sequential, Functional and subclassed models, numpy arrays and tf.data, SGD and Adam.

Models and data are tiny and runs are a few steps: the file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradlab
from gradlab.display import report
from gradlab.display.advice import advice_figure, verification_figure
from gradlab.explore.advise import advise
from gradlab.problems.builtin import from_model

XENT = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def msg(*parts: str) -> str:
    return ".*".join(re.escape(p) for p in parts)


# ---------------------------------------------------------------- models and data a reader would write
def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    labels = (x[:, 0] + x[:, 1] > 0).astype("int32") + (x[:, 2] > 1).astype("int32")  # 3 classes
    target = (np.sin(x[:, :1]) + 0.1 * x[:, 1:2]).astype("float32")
    return x, labels, target


X, LABELS, TARGET = data()
XV, LV, TV = data(40, seed=1)


def sequential(outputs=3):
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(outputs)], name="seq"
    )


def functional(outputs=3):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    h = keras.layers.Concatenate()([h, inputs])
    return keras.Model(inputs, keras.layers.Dense(outputs, name="out")(h), name="func")


class Subclassed(keras.Model):
    def __init__(self, outputs=3, **kwargs):
        super().__init__(**kwargs)
        self.outputs_ = outputs
        self.hidden = keras.layers.Dense(8, activation="tanh")
        self.out = keras.layers.Dense(outputs)

    def call(self, x):
        return self.out(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "outputs": self.outputs_}


def subclassed(outputs=3):
    keras.utils.set_random_seed(3)
    model = Subclassed(outputs)
    model(X[:1])  # built by a call, as readers do
    return model


MODELS = {"sequential": sequential, "functional": functional, "subclassed": subclassed}


def ds(x, y, batch=16, **shuffle):
    d = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        d = d.shuffle(len(x), **shuffle)
    return d.batch(batch, drop_remainder=True)


def weights(model):
    return [w.numpy().copy() for w in model.weights]


# ---------------------------------------------------------------- compare on your own model
COMBOS = [
    pytest.param("sequential", "numpy", "sgd", id="sequential-numpy-sgd"),
    pytest.param("sequential", "tf.data", "adam", id="sequential-tfdata-adam"),
    pytest.param("functional", "numpy", "adam", id="functional-numpy-adam"),
    pytest.param("functional", "tf.data", "sgd", id="functional-tfdata-sgd"),
    pytest.param("subclassed", "numpy", "adam", id="subclassed-numpy-adam"),
    pytest.param("subclassed", "tf.data", "sgd", id="subclassed-tfdata-sgd"),
]


@pytest.mark.parametrize("kind, source, optimizer", COMBOS)
def test_compare_on_your_model_starts_every_run_from_the_same_weights_and_batches(kind, source, optimizer):
    model = MODELS[kind]()
    before = weights(model)
    # A seeded shuffle reshuffles on every new iterator: compare must still give every run the same batches.
    train = {"x": X, "y": LABELS} if source == "numpy" else {"x": ds(X, LABELS, seed=5)}
    seen = {}
    runs = gradlab.compare(
        model,
        ["none", ("global_norm", 1e9), ("global_norm", 0.05), "none"],
        **train,
        loss=XENT,
        optimizer=optimizer,
        learning_rate=0.05,
        steps=6,
        batch_size=16,
        validation_data=(XV, LV),
        validation_every=3,
        on_run_begin=lambda label, m: seen.setdefault(len(seen), (label, weights(m))),
    )
    assert [h.label for h in runs] == ["none", "global_norm=1e+09", "global_norm=0.05", "none"]
    # identical initial weights: every run's are the user's model's, which compare never trains
    assert len(seen) == 4
    for label, start in seen.values():
        assert all(np.array_equal(a, b) for a, b in zip(start, before)), label
    assert all(np.array_equal(a, b) for a, b in zip(weights(model), before))
    # identical data order: a threshold that never clips, and a second unclipped run, repeat the first bit for bit
    np.testing.assert_array_equal(runs[0].loss, runs[1].loss)
    np.testing.assert_array_equal(runs[0].loss, runs[3].loss)
    np.testing.assert_array_equal(runs[0].norm_before, runs[3].norm_before)
    assert runs[2].norm_before[0] == runs[0].norm_before[0] and runs[2].clipped.all()
    assert (runs[2].norm_after <= 0.05 * (1 + 1e-5)).all()
    # validation: evaluated at steps 3 and 6, with an accuracy for a classification loss
    for h in runs:
        assert h.val_step.tolist() == [3, 6]
        assert np.isfinite(h.val_loss).all() and ((h.val_accuracy >= 0) & (h.val_accuracy <= 1)).all()


def test_builder_function_gives_identical_weights_per_run():
    seen = []
    gradlab.compare(
        lambda: sequential(1),
        ["none", "global_norm"],
        x=X,
        y=TARGET,
        loss="mse",
        optimizer=lambda: keras.optimizers.Adam(1e-3),
        steps=2,
        batch_size=16,
        on_run_begin=lambda label, m: seen.append(weights(m)),
    )
    reference = weights(sequential(1))  # the builder seeds itself: the same weights again
    for start in seen:
        assert all(np.array_equal(a, b) for a, b in zip(start, reference))


# ---------------------------------------------------------------- Trainer.fit's validation
def test_fit_validation_matches_a_reference_computed_with_keras_and_numpy():
    model = functional()
    t = gradlab.Trainer(model, XENT, keras.optimizers.Adam(1e-2))
    h = t.fit(X, LABELS, steps=10, batch_size=16, progress=False, validation_data=(XV, LV), validation_every=4)
    assert h.val_step.tolist() == [4, 8, 10]
    logits = model(XV, training=False).numpy()  # the weights after step 10: the last evaluation
    assert np.isclose(h.val_loss[-1], float(XENT(LV, logits)), rtol=1e-5)
    assert np.isclose(h.val_accuracy[-1], float((logits.argmax(-1) == LV).mean()))
    # a second call continues the record; the trainer's full history numbers steps from the start
    h2 = t.fit(X, LABELS, steps=2, batch_size=16, progress=False, validation_data=ds(XV, LV, batch=7))
    assert h2.val_step.tolist() == [1, 2] and t.history.val_step.tolist() == [4, 8, 10, 11, 12]


@pytest.mark.parametrize(
    "loss, y, yv, accuracy",
    [
        pytest.param("mse", TARGET, TV, False, id="mse-no-accuracy"),
        pytest.param(keras.losses.CategoricalCrossentropy(from_logits=True), None, None, True, id="categorical"),
    ],
)
def test_fit_validation_accuracy_only_for_classification_losses(loss, y, yv, accuracy):
    outputs = 1 if accuracy is False else 3
    if y is None:
        y, yv = np.eye(3, dtype="float32")[LABELS], np.eye(3, dtype="float32")[LV]
    model = sequential(outputs)
    h = gradlab.Trainer(model, loss, keras.optimizers.SGD(0.05)).fit(
        X, y, steps=3, batch_size=16, progress=False, validation_data=(XV, yv)
    )
    assert np.isfinite(h.val_loss).all() and len(h.val_loss) == 3
    if accuracy:
        pred = model(XV).numpy().argmax(-1)
        assert np.isclose(h.val_accuracy[-1], (pred == LV).mean())
    else:
        assert np.isnan(h.val_accuracy).all()


# ---------------------------------------------------------------- the report
def test_report_function_writes_validation_plots_and_columns(tmp_path):
    out = tmp_path / "mine.html"
    path = gradlab.display.report.report(
        subclassed(),
        ["none", ("global_norm", 0.5)],
        x=X,
        y=LABELS,
        loss=XENT,
        optimizer="adam",
        learning_rate=1e-2,
        validation_data=(XV, LV),
        steps=6,
        batch_size=16,
        path=out,
    )
    page = out.read_text()
    assert str(path) == str(out) and "Held-out data: does clipping help?" in page
    assert len(re.findall(r'Plotly\.newPlot\(\s*"', page)) == 4  # overview, validation, one heatmap per run
    table = re.search(r"<table class='summary'>.*?</table>", page, re.S).group(0)
    assert "final val loss" in table and "final val accuracy" in table and table.count("<tr>") == 3
    assert "Adam, learning rate 0.01" in page


MODULE = """
import keras, numpy as np, tensorflow as tf

def build():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)])
    m.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m

def uncompiled():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])

def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    train = tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(16, drop_remainder=True)
    return train, (x[64:], y[64:])
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "byo_user_models.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "byo_user_models"
    sys.modules.pop("byo_user_models", None)


def test_report_command_line_on_a_model_and_data_by_module_function(user_module, tmp_path, capsys):
    out = tmp_path / "cli.html"
    argv = ["--model", f"{user_module}:build", "--data", f"{user_module}:data", "--optimizer", "adam", "--lr", "1e-2"]
    argv += ["--modes", "none,global_norm=0.5", "--steps", "4", "--out", str(out)]
    assert report.main(argv) == 0
    page, printed = out.read_text(), capsys.readouterr().out
    assert "Held-out data" in page and "Adam, learning rate 0.01" in page and "a tf.data.Dataset" in page
    assert "global_norm=0.5: final loss" in printed and "final val loss" in printed


@pytest.mark.parametrize(
    "argv, parts",
    [
        pytest.param(["--optimizer", "adamm"], ("Unknown optimizer 'adamm'", "'sgd'", "--optimizer='adamm'"), id="opt"),
        pytest.param(["--model", "M:build"], ("`--model` and `--data` go together", "--data=None"), id="no-data"),
        pytest.param(["--model", "nope_module:f", "--data", "M:data"], ("`--model` must name an importable"), id="mod"),
        pytest.param(["--model", "M", "--data", "M:data"], ("`--model` must be module:function",), id="no-colon"),
        pytest.param(["--model", "M:uncompiled", "--data", "M:data"], ("`--loss` is needed", "--loss=None"), id="loss"),
        pytest.param(["--problem", "digits", "--model", "M:build", "--data", "M:data"], ("either",), id="both"),
        pytest.param(["--model", "M:build", "--data", "M:data", "--loss", "msee"], ("`--loss`", "'msee'"), id="msee"),
    ],
)
def test_report_command_line_refuses_bad_model_arguments(argv, parts, user_module, monkeypatch, capsys):
    monkeypatch.setattr(report, "compare", lambda *a, **k: pytest.fail("compare() was called"))
    argv = [a.replace("M:", f"{user_module}:") if a.startswith("M") else a for a in argv]
    parts = (parts,) if isinstance(parts, str) else parts
    with pytest.raises(SystemExit) as info:
        report.main(argv)
    assert info.value.code == 2
    assert re.search(msg(*parts), capsys.readouterr().err)


# ---------------------------------------------------------------- the advisor
ADVISED = [
    pytest.param("sequential", "numpy", "sgd", id="sequential-numpy-sgd"),
    pytest.param("functional", "tf.data", "adam", id="functional-tfdata-adam"),
    pytest.param("subclassed", "numpy", "adam", id="subclassed-numpy-adam"),
]


@pytest.mark.parametrize("kind, source, optimizer", ADVISED)
def test_advice_recommends_the_stated_percentile_of_the_norms_it_recorded(kind, source, optimizer):
    model = MODELS[kind]()
    before = weights(model)
    train = {"x": X, "y": LABELS} if source == "numpy" else {"x": ds(X, LABELS, seed=1)}
    a = advise(model, **train, loss=XENT, optimizer=optimizer, learning_rate=0.1, steps=24, batch_size=16)
    assert all(np.array_equal(u, v) for u, v in zip(weights(model), before))  # the probe trained a copy
    h = a.history
    assert len(h) == 24 and a.warmup == 2 and (h.clipped == 0).all()  # unclipped probe
    rest = h.norm_before[2:][np.isfinite(h.norm_before[2:])]
    g = a.recommendation("global_norm")
    assert g.threshold == pytest.approx(np.percentile(rest, 90), rel=1e-12)
    assert "p90" in g.rule and f"{g.threshold:.3g}" in g.rule
    assert g.clip_rate == pytest.approx(np.mean(h.norm_before > g.threshold))
    assert g.clip_rate_after_warmup == pytest.approx(np.mean(rest > g.threshold))
    largest = h.layer_norm_before[2:].max(axis=1)
    assert a.threshold("norm") == pytest.approx(np.percentile(largest, 90), rel=1e-12)
    early, later = a.norm_stats("early"), a.norm_stats("rest")
    assert early["median"] == pytest.approx(np.median(h.norm_before[:2]))
    assert later["p99"] == pytest.approx(np.percentile(rest, 99)) and later["max"] == pytest.approx(rest.max())
    layer = h.layer_names[0]
    assert a.layer_stats("rest")[layer]["median"] == pytest.approx(np.median(h.layer_norm_before[2:, 0]))
    # the optimizer's warning names what clipping does under it, with the measured numbers
    words = " ".join(a.warnings)
    if optimizer == "sgd":
        assert f"learning_rate x threshold = {0.1 * g.threshold:.3g}" in words
    else:
        assert "Under Adam" in words and f"{g.clip_rate:.0%} of the probe" in words
    text = a.summary()
    assert f"global_norm: {g.threshold:.3g}" in text and "Per layer" in text
    frames = a.to_pandas()
    assert set(frames.recommendations["mode"]) == {"global_norm", "norm", "agc", "value", "zclip", "autoclip"}
    assert len(frames.norms) == 3 * (1 + len(h.layer_names))
    fig = advice_figure(a)
    assert fig.layout.title.text and all(
        fig.layout[k].title.text for k in fig.layout if k.startswith(("xaxis", "yaxis"))
    )


def spiky_dataset(spike_at=14, nan_at=None, factor=40.0):
    """Fixed batches of a regression task; one batch's inputs multiplied by ``factor`` (and one NaN batch)."""
    xs, ys = X[: 16 * 6].reshape(6, 16, 6), TARGET[: 16 * 6].reshape(6, 16, 1)
    batches = [(xs[i % 6].copy(), ys[i % 6]) for i in range(24)]
    batches[spike_at][0][:] *= factor
    if nan_at is not None:
        batches[nan_at][0][0, 0] = np.nan
    return tf.data.Dataset.from_tensor_slices((np.stack([b[0] for b in batches]), np.stack([b[1] for b in batches])))


def test_advice_finds_an_injected_spike_and_a_non_finite_step():
    a = advise(sequential(1), spiky_dataset(14, nan_at=9), loss="mse", optimizer="sgd", learning_rate=0.01, steps=24)
    assert 14 in [s[0] for s in a.spikes]
    for step, norm, level, ratio in a.spikes:  # each spike is far above the median of the steps before it
        before = a.norms[max(0, step - 20) : step]
        assert norm > 3 * np.median(before[np.isfinite(before)]) and ratio == pytest.approx(norm / level)
    assert a.nonfinite_steps.tolist() == [9] and a.history.skipped[9] == 1
    assert all(np.isfinite(w.numpy()).all() for w in a._trainer.model.weights)  # skipped: never NaN
    words = " ".join(a.warnings)
    assert "1 probe steps had non-finite gradients (first at step 9)" in words and "spikes" in words


def test_advice_warns_when_clipping_would_clip_nearly_every_step():
    a = advise(sequential(1), X, TARGET, loss="mse", optimizer="adam", steps=12, batch_size=16, percentile=5)
    g = a.recommendation("global_norm")
    assert g.clip_rate >= 0.9
    assert any(w.startswith(f"global_norm at {g.threshold:.3g} would clip {g.clip_rate:.0%}") for w in a.warnings)


def test_advice_under_loss_scaling_says_norms_are_unscaled_and_penalties_are_measured():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4, kernel_regularizer=keras.regularizers.L2(0.1)), keras.layers.Dense(1)]
    )
    a = advise(
        model,
        X,
        TARGET,
        loss="mse",
        optimizer=lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01)),
        steps=4,
        batch_size=16,
    )
    kernel = model.layers[0].kernel.numpy()
    assert a.penalty_norm == pytest.approx(np.linalg.norm(2 * 0.1 * kernel), rel=1e-4)  # d/dw of 0.1 * sum(w**2)
    words = " ".join(a.warnings)
    assert "Mixed precision: the norms were measured after unscaling" in words
    assert f"gradient of norm {a.penalty_norm:.3g}" in words


def test_verify_reports_per_seed_results_and_their_computed_spread():
    a = advise(functional(), X, LABELS, loss=XENT, optimizer="adam", learning_rate=0.02, steps=8, batch_size=16)
    v = a.verify(seeds=3, steps=6, factors=(0.5, 1.0), validation_data=(XV, LV))
    frame = v.to_pandas()
    assert len(frame) == 3 * 3 and v.metric == "val_loss" and v.runs[0] == "none"
    g = a.threshold("global_norm")
    assert sorted(frame["threshold"].dropna().unique()) == pytest.approx([0.5 * g, g])
    for run in v.runs:
        values = frame[frame["run"] == run].sort_values("seed")["val_loss"].to_numpy()
        s = v.spread(run)
        assert s["mean"] == pytest.approx(values.mean()) and s["std"] == pytest.approx(values.std(ddof=1))
        assert s["min"] == values.min() and s["max"] == values.max()
    # same seed: every run starts from the same weights and batches (same first loss); seeds differ in order
    first = {(seed, run): h.loss[0] for run, hs in v.histories.items() for seed, h in zip(v.seeds, hs)}
    for seed in v.seeds:
        assert len({first[(seed, run)] for run in v.runs}) == 1
    assert len({first[(seed, "none")] for seed in v.seeds}) == 3
    run = v.runs[2]
    d = v.values(run) - v.values("none")
    e = v.effect(run)
    assert e["mean"] == pytest.approx(d.mean()) and e["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert run in v.summary() and v.verdict(run) in v.summary()
    fig = verification_figure(v)
    assert fig.layout.title.text and all(
        fig.layout[k].title.text for k in fig.layout if k.startswith(("xaxis", "yaxis"))
    )
    assert any(t.error_y.array is not None and len(t.error_y.array) == 2 for t in fig.data)


# ---------------------------------------------------------------- bad input: clear Keras-style errors
def unbuilt():
    return keras.Sequential([keras.layers.Dense(3)])


def returns_a_string():
    return "adam"


BAD = [
    pytest.param(
        lambda: gradlab.compare(unbuilt(), ["none"], x=X, y=LABELS, loss=XENT),
        ("Argument `model` must be built", "Received: an unbuilt model"),
        id="compare-unbuilt-model",
    ),
    pytest.param(
        lambda: gradlab.compare(sequential(), ["none"], x=X[:, :4], y=LABELS, loss=XENT),
        ("Argument `x` must hold samples of the shape the model takes, (None, 6)", "Received: x of shape (96, 4)"),
        id="compare-x-shape",
    ),
    pytest.param(
        lambda: gradlab.compare(sequential(), ["none"], x=X, y=LABELS, loss="categorical_crossentropy"),
        (
            "Argument `loss` must fit the labels",
            "labels of shape (2,)",
            "predictions of shape (2, 3)",
            "Received: loss=",
        ),
        id="compare-loss-does-not-fit-labels",
    ),
    pytest.param(
        lambda: gradlab.compare(sequential(), ["none"], x=X, y=LABELS, loss=XENT, optimizer="adamm", learning_rate=1),
        ("Unknown optimizer 'adamm'", "Expected one of: 'sgd', 'momentum', 'adam'", "Received: optimizer='adamm'"),
        id="compare-optimizer-name",
    ),
    pytest.param(
        lambda: gradlab.compare(sequential(), ["none"], x=X, y=LABELS, loss=XENT, optimizer=returns_a_string),
        ("Argument `optimizer` must return a new Keras optimizer", "Received: a function that returned str"),
        id="compare-factory-returns-non-optimizer",
    ),
    pytest.param(
        lambda: gradlab.compare(sequential(), ["none"], x=X, y=LABELS, loss=XENT, steps=0),
        ("Argument `steps`", "in [1, inf)", "Received: steps=0"),
        id="compare-steps-zero",
    ),
    pytest.param(
        lambda: gradlab.compare(sequential(), ["none"], x=X, y=LABELS, loss=XENT, validation_data=(XV[:, :5], LV)),
        ("Argument `validation_data` must hold samples shaped like the training data", "x_val of shape (40, 5)"),
        id="compare-validation-shape",
    ),
    pytest.param(
        lambda: gradlab.compare(sequential(), ["none"], x=ds(X, LABELS), y=LABELS, loss=XENT),
        ("Argument `y` must be None when `x` is a tf.data.Dataset", "Received: y of type ndarray"),
        id="compare-dataset-and-y",
    ),
    pytest.param(
        lambda: gradlab.compare(sequential(), ["none"], y=LABELS, loss=XENT),
        ("Argument `x` is needed with a model of your own", "Received: x=None"),
        id="compare-model-without-x",
    ),
    pytest.param(
        lambda: gradlab.compare(gradlab.problems.deep_mlp(depth=2, samples=64), ["none"], loss="mse"),
        ("Arguments `loss` are for a model of your own", "Received: problem='deep_mlp' and loss"),
        id="compare-problem-and-loss",
    ),
    pytest.param(
        lambda: gradlab.compare(sequential(), ["none"], x=X, y=LABELS, loss=XENT, on_run_begin=3),
        ("Argument `on_run_begin` must be None or a function", "Received: on_run_begin=3"),
        id="compare-on-run-begin",
    ),
    pytest.param(
        lambda: advise(sequential(), X, LABELS, loss=XENT, steps=0),
        ("Argument `steps`", "in [2, inf)", "Received: steps=0"),
        id="advise-steps-zero",
    ),
    pytest.param(
        lambda: advise(sequential(), X, LABELS, loss=XENT, steps=-3),
        ("Argument `steps`", "in [2, inf)", "Received: steps=-3"),
        id="advise-steps-negative",
    ),
    pytest.param(
        lambda: advise(unbuilt(), X, LABELS, loss=XENT),
        ("Argument `model` must be built", "Received: an unbuilt model"),
        id="advise-unbuilt-model",
    ),
    pytest.param(
        lambda: advise(sequential(), X, LABELS, loss=XENT, optimizer="adamm"),
        ("Unknown optimizer 'adamm'", "Received: optimizer='adamm'"),
        id="advise-optimizer-name",
    ),
    pytest.param(
        lambda: advise(sequential(), X, LABELS, loss=XENT, optimizer=lambda: None),
        ("Argument `optimizer` must return a new Keras optimizer", "returned NoneType"),
        id="advise-factory-returns-none",
    ),
    pytest.param(
        lambda: advise(sequential(), X, LABELS, loss=XENT, warmup=50, steps=10),
        ("Argument `warmup`", "in [0, 9]", "Received: warmup=50"),
        id="advise-warmup-over-steps",
    ),
    pytest.param(
        lambda: advise(sequential(), X, LABELS, loss=XENT, validation_data=(XV, np.zeros((40, 7)))),
        ("Argument `validation_data` must hold samples shaped like the training data", "y_val of shape (40, 7)"),
        id="advise-validation-labels-shape",
    ),
    pytest.param(
        lambda: advise(sequential(), X, LABELS, loss=XENT, validation_data=ds(XV, LV).repeat()),
        ("Argument `validation_data` must be a finite dataset", "infinite cardinality"),
        id="advise-validation-infinite",
    ),
    pytest.param(
        lambda: from_model(sequential(), X, LABELS, "msee"),
        ("Argument `loss` must be a Keras loss", "Received: loss='msee'"),
        id="from-model-loss-name",
    ),
    pytest.param(
        lambda: gradlab.Trainer(sequential(), XENT, keras.optimizers.SGD(0.1)).fit(
            X, LABELS, steps=1, progress=False, validation_data=(XV[:, :2], LV)
        ),
        ("Argument `validation_data` must hold samples of the shape the model takes", "(40, 2)"),
        id="fit-validation-shape",
    ),
    pytest.param(
        lambda: gradlab.Trainer(sequential(), XENT, keras.optimizers.SGD(0.1)).fit(
            X, LABELS, steps=1, progress=False, validation_data=(XV, LV[:3])
        ),
        ("Arguments `x` and `y` must hold the same number of samples", "(in `validation_data`"),
        id="fit-validation-lengths",
    ),
    pytest.param(
        lambda: gradlab.Trainer(sequential(), XENT, keras.optimizers.SGD(0.1)).fit(
            X, LABELS, steps=1, progress=False, validation_data=(XV, LV), validation_every=0
        ),
        ("Argument `validation_every`", "in [1, inf)", "Received: validation_every=0"),
        id="fit-validation-every-zero",
    ),
]


@pytest.mark.parametrize("call, parts", BAD)
def test_bad_input_gets_a_keras_style_error(call, parts):
    with pytest.raises(ValueError, match=msg(*parts)):
        call()


def test_failed_fit_validation_check_trains_nothing():
    model = sequential()
    before = weights(model)
    t = gradlab.Trainer(model, XENT, keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError):
        t.fit(X, LABELS, steps=3, progress=False, validation_data=(XV[:, :2], LV))
    assert len(t.history) == 0 and all(np.array_equal(a, b) for a, b in zip(weights(model), before))
