"""Gradients that explode through time (issue 11): the adding problem's tanh RNN and the cliff of
a one-unit RNN (Pascanu, Mikolov & Bengio 2013), checked against references written independently
here: a Keras SimpleRNN, a plain-Python loop and TensorFlow's autodiff."""

import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradlab
from gradlab import problems
from gradlab.display import cliff
from gradlab.problems import recurrent

SHORTEST, LONGEST = 10, 200  # the lengths notebook 01 shows first and last


def test_gradient_norm_at_init_grows_with_sequence_length():
    rnn = [recurrent.initial_gradient_norm(problems.adding_rnn(length=n)) for n in (SHORTEST, LONGEST)]
    lstm = [recurrent.initial_gradient_norm(problems.adding_lstm(length=n)) for n in (SHORTEST, LONGEST)]
    assert rnn[1] >= 10 * rnn[0], rnn
    assert lstm[1] < 3 * lstm[0], lstm  # the LSTM beside it stays about flat


def test_initial_gradient_norm_is_the_tapes_global_norm():
    p = problems.adding_rnn(length=12, samples=64)
    model = p.model()
    with tf.GradientTape() as tape:
        loss = p.loss(p.y, model(p.x))
    by_hand = math.sqrt(sum(float(tf.reduce_sum(g * g)) for g in tape.gradient(loss, model.trainable_variables)))
    assert recurrent.initial_gradient_norm(p, samples=None) == pytest.approx(by_hand, rel=1e-5)


def test_the_recurrent_matrix_starts_with_spectral_radius_gain():
    model = problems.adding_rnn(length=5, units=16, gain=1.5).model()
    recurrent_kernel = model.get_layer("rnn").get_weights()[1]
    np.testing.assert_allclose(np.linalg.svd(recurrent_kernel, compute_uv=False), 1.5, rtol=1e-4)
    assert max(abs(np.linalg.eigvals(recurrent_kernel))) == pytest.approx(1.5, rel=1e-4)


def test_adding_data_follows_the_task():
    x, y = recurrent.adding_data(length=20, samples=200, seed=3)
    markers = x[..., 1]
    assert markers.sum(axis=1).tolist() == [2.0] * 200
    assert (markers[:, :10].sum(axis=1) == 1).all() and (markers[:, 10:].sum(axis=1) == 1).all()
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * markers).sum(axis=1), rtol=1e-6)
    again = recurrent.adding_data(length=20, samples=200, seed=3)
    assert all((a == b).all() for a, b in zip((x, y), again))


def test_clipping_keeps_training_finite_where_the_unclipped_run_diverges():
    p = problems.adding_rnn()
    free, clipped = gradlab.compare(
        p, ["none", ("global_norm", 1.0)], optimizer=lambda: keras.optimizers.SGD(0.05), steps=100
    )
    assert free.norm_before[0] == clipped.norm_before[0]  # the same seed: the same start
    with np.errstate(invalid="ignore"):
        jumps = free.norm_before[1:] / free.norm_before[:-1]
    assert not np.isfinite(free.loss).all() or np.nanmax(free.loss) > 100 * free.loss[0]  # diverges
    assert np.nanmax(jumps) > 5 or not np.isfinite(free.norm_before).all()  # spikes
    assert np.isfinite(clipped.loss).all() and clipped.skipped.sum() == 0
    assert clipped.loss.max() < 10 * clipped.loss[0]


def test_the_registered_problems_reach_the_trainer_and_the_lab():
    assert {"adding_rnn", "adding_lstm"} <= set(problems.PROBLEMS)
    p = problems.make_problem("adding_lstm", seed=1)
    assert p.name == "adding_lstm" and p.x.shape == (1024, 50, 2)
    lab = gradlab.Lab(problem="adding_rnn")
    assert "adding_rnn" in lab.controls["problem"].options
    h = lab.trainer.fit(lab.problem.x, lab.problem.y, steps=2, batch_size=16, progress=False)
    assert len(h) == 2 and np.isfinite(h.norm_before).all()


# ---------------------------------------------------------------- the cliff
def python_loss(w, b, length=50, x0=0.5, target=0.7):
    """x_t = w * sigmoid(x_{t-1}) + b, in plain Python floats."""
    x = x0
    for _ in range(length):
        x = w / (1.0 + math.exp(-x)) + b
    return (x - target) ** 2


def keras_loss(w, b, length=50, x0=0.5, target=0.7):
    """The same model as a Keras SimpleRNN: h_t = sigmoid(w h_{t-1} + b) is sigmoid(x_t), so after
    length - 1 steps from h_0 = sigmoid(x0), x_length = w h_(length-1) + b."""
    layer = keras.layers.SimpleRNN(1, activation="sigmoid", dtype="float64")
    inputs = np.zeros((1, length - 1, 1))
    layer.build(inputs.shape)
    layer.set_weights([np.zeros((1, 1)), np.full((1, 1), w), np.full((1,), b)])
    h0 = tf.constant([[1.0 / (1.0 + math.exp(-x0))]], tf.float64)
    h = float(layer(inputs, initial_state=[h0])[0, 0])
    return (w * h + b - target) ** 2


def test_cliff_surface_matches_a_direct_evaluation_of_the_loss():
    w, b, loss = recurrent.cliff_surface(points=9)
    assert loss.shape == (9, 9)
    for i, j in [(0, 0), (2, 7), (4, 4), (5, 3), (8, 8), (6, 1)]:
        assert loss[i, j] == pytest.approx(python_loss(w[j], b[i]), rel=1e-9, abs=1e-12)
        assert loss[i, j] == pytest.approx(keras_loss(w[j], b[i]), rel=1e-6, abs=1e-9)


def test_the_surface_has_a_cliff():
    """At w = 6 the loss jumps more than fivefold within 0.01 in b, and the gradient is steep in between."""
    b = np.linspace(-3.24, -3.23, 1001)
    loss, dw, db = recurrent.cliff_gradient(6.0, b)
    assert loss[0] > 5 * loss[-1]
    assert np.hypot(dw, db).max() > 10 * np.hypot(*recurrent.cliff_gradient(6.0, -3.0)[1:])


@pytest.mark.parametrize("point", [(7.0, -5.0), (4.5, -2.2), (6.0, -3.55), (2.5, 0.5)])
def test_cliff_gradient_matches_autodiff(point):
    w, b = (tf.Variable(v, dtype=tf.float64) for v in point)
    with tf.GradientTape() as tape:
        x = tf.constant(0.5, tf.float64)
        for _ in range(50):
            x = w * tf.sigmoid(x) + b
        loss = (x - 0.7) ** 2
    dw, db = tape.gradient(loss, [w, b])
    mine = recurrent.cliff_gradient(*point)
    np.testing.assert_allclose([float(m) for m in mine], [float(loss), float(dw), float(db)], rtol=1e-7)


def test_trajectories_start_together_and_clipped_steps_are_bounded():
    lr, threshold = 0.02, 10.0
    free = recurrent.cliff_trajectory(lr=lr, steps=60)
    clipped = recurrent.cliff_trajectory(lr=lr, steps=60, clip_threshold=threshold)
    assert free.shape == clipped.shape == (61, 2)
    assert free[0].tolist() == clipped[0].tolist() == list(recurrent.CLIFF["start"])
    free_steps, clipped_steps = (recurrent.step_lengths(p) for p in (free, clipped))
    assert clipped_steps.max() <= lr * threshold * (1 + 1e-12)
    assert free_steps.max() > 10 * lr * threshold  # the wall throws plain descent far away
    assert recurrent.cliff_loss(*clipped[-1]) < 0.1 * recurrent.cliff_loss(*free[-1])


def test_step_lengths_are_the_distances_between_consecutive_points():
    # steps of (-3, 4), (0, 0), (5, 12) and (8, -15): the triangles 3-4-5, 5-12-13, 8-15-17
    path = [[7.0, -5.0], [4.0, -1.0], [4.0, -1.0], [9.0, 11.0], [17.0, -4.0]]
    np.testing.assert_allclose(recurrent.step_lengths(path), [5.0, 0.0, 13.0, 17.0], rtol=1e-15)
    assert recurrent.step_lengths([[1.0, 2.0]]).shape == (0,)  # the start alone: no step
    assert np.isnan(recurrent.step_lengths([[0.0, 0.0], [np.inf, 0.0], [np.nan, np.nan]])[1])
    with pytest.raises(ValueError, match=keras_form("path", "(w, b) rows", "path of shape (3,)")):
        recurrent.step_lengths([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "end, expected",
    [
        ((7.0, -5.0), True),
        ((2.0, -7.0), True),  # the corners belong to the map
        ((10.0, 1.0), True),
        ((1.99, -5.0), False),
        ((10.01, -5.0), False),
        ((7.0, -7.01), False),
        ((7.0, 1.01), False),
        ((np.nan, np.nan), False),
        ((np.inf, -5.0), False),
    ],
    ids=["inside", "low-corner", "high-corner", "left", "right", "below", "above", "nan", "inf"],
)
def test_on_map_is_the_end_inside_the_grid(end, expected):
    assert recurrent.on_map([recurrent.CLIFF["start"], end]) is expected
    # the map is the grid of cliff_surface, CLIFF's ranges
    w, b, _ = recurrent.cliff_surface(points=2)
    assert (w.tolist(), b.tolist()) == ([2.0, 10.0], [-7.0, 1.0])
    # only the end counts: a path that leaves the map and comes back is on it
    assert recurrent.on_map([end, (50.0, 50.0), (7.0, -5.0)]) is True
    assert recurrent.on_map([end], w_range=(0, 100), b_range=(-100, 100)) is bool(np.isfinite(end).all())


def test_the_legend_and_the_map_agree():
    plain, clipped = recurrent.cliff_trajectory(), recurrent.cliff_trajectory(clip_threshold=10.0)
    assert not recurrent.on_map(plain) and recurrent.on_map(clipped)
    ranges = recurrent.CLIFF["w_range"], recurrent.CLIFF["b_range"]
    assert cliff.trajectory_name("plain", plain, *ranges).startswith("plain (ends off the map at w=")
    assert cliff.trajectory_name("clipped", clipped, *ranges) == "clipped"
    overflow = np.array([[7.0, -5.0], [9.0, -3.0], [np.inf, np.nan], [np.nan, np.nan]])
    assert cliff.trajectory_name("x", overflow, *ranges) == "x (thrown beyond float64 after w=9, b=-3)"


def test_cliff_figure_draws_both_trajectories_from_one_start():
    surface = recurrent.cliff_surface(points=11)
    paths = {"no clipping": recurrent.cliff_trajectory(), "clipped": recurrent.cliff_trajectory(clip_threshold=10.0)}
    fig = cliff.cliff_figure(surface, paths)
    assert isinstance(fig.data[0], __import__("plotly.graph_objects").graph_objects.Contour)
    assert fig.data[1].name.startswith("no clipping (ends off the map") and fig.data[2].name == "clipped"
    assert fig.data[1].x[0] == fig.data[2].x[0] == fig.data[3].x[0] == 7.0
    assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_the_cliff_slider_redraws_the_clipped_path_and_nothing_else():
    from gradlab.lab import CliffExplorer

    explorer = CliffExplorer(threshold=10.0, points=11)
    surface_z, plain_x = np.array(explorer.figure.data[0].z), np.array(explorer.figure.data[1].x)
    for threshold in (0.1, 1000.0):
        explorer.slider.value = threshold  # what the browser's slider sends
        expected = recurrent.cliff_trajectory(clip_threshold=threshold)
        trace = explorer.figure.data[2]
        np.testing.assert_array_equal(np.array(trace.x), expected[:, 0])
        np.testing.assert_array_equal(np.array(trace.y), expected[:, 1])
        np.testing.assert_array_equal(explorer.clipped, expected)
        assert explorer.final_loss() == pytest.approx(float(recurrent.cliff_loss(*expected[-1])))
    # at 1000 the wall's step is not bounded: thrown off the map, as plain descent is
    assert trace.name.startswith("clipped at 1e+03 (ends off the map")
    explorer.slider.value = 10.0
    assert explorer.figure.data[2].name == "clipped at 10" and explorer.final_loss() < 1.0
    np.testing.assert_array_equal(np.array(explorer.figure.data[0].z), surface_z)
    np.testing.assert_array_equal(np.array(explorer.figure.data[1].x), plain_x)


def test_the_cliff_slider_carries_a_static_copy_for_readers_without_a_kernel():
    from gradlab.lab import CliffExplorer

    explorer = CliffExplorer(threshold=3.0, points=11)
    bundle = explorer._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    spec = data["application/vnd.plotly.v1+json"]
    assert [t.get("name") for t in spec["data"][1:3]] == [explorer.figure.data[1].name, "clipped at 3"]
    assert "clipped at 3: a static copy" in spec["layout"]["title"]["text"]
    assert data["text/plain"] == "CliffExplorer(threshold=3)"
    with pytest.raises(ValueError, match=keras_form("threshold", "in (0, inf)", "threshold=0")):
        CliffExplorer(threshold=0)


# ---------------------------------------------------------------- bad arguments
def keras_form(name, allowed, received):
    return re.escape(f"Argument `{name}`") + ".*" + re.escape(allowed) + ".*" + re.escape(f"Received: {received}")


SURFACE = recurrent.cliff_surface(points=3)
BAD = [
    ("data-length-one", lambda: recurrent.adding_data(length=1), "length", "in [2, inf)", "length=1"),
    ("data-samples-zero", lambda: recurrent.adding_data(samples=0), "samples", "in [1, inf)", "samples=0"),
    ("data-seed-negative", lambda: recurrent.adding_data(seed=-1), "seed", "in [0, inf)", "seed=-1"),
    ("model-units-string", lambda: recurrent.adding_model(units="8"), "units", "an integer", "units='8'"),
    ("model-gain-zero", lambda: recurrent.adding_model(gain=0), "gain", "in (0, inf)", "gain=0"),
    ("model-gain-nan", lambda: recurrent.adding_model(gain=float("nan")), "gain", "a finite number", "gain=nan"),
    ("rnn-length-fraction", lambda: problems.adding_rnn(length=2.5), "length", "an integer", "length=2.5"),
    ("lstm-seed-string", lambda: problems.adding_lstm(seed="0"), "seed", "an integer", "seed='0'"),
    (
        "norm-problem",
        lambda: recurrent.initial_gradient_norm("adding_rnn"),
        "problem",
        "a gradlab Problem",
        "problem='adding_rnn'",
    ),
    ("surface-points-one", lambda: recurrent.cliff_surface(points=1), "points", "in [2, inf)", "points=1"),
    (
        "surface-range-reversed",
        lambda: recurrent.cliff_surface(w_range=(3, 1)),
        "w_range",
        "low < high",
        "w_range=(3, 1)",
    ),
    ("surface-range-number", lambda: recurrent.cliff_surface(b_range=2.0), "b_range", "a pair", "b_range=2.0"),
    (
        "surface-range-inf",
        lambda: recurrent.cliff_surface(b_range=(0, math.inf)),
        "b_range[1]",
        "finite",
        "b_range[1]=inf",
    ),
    ("surface-length-zero", lambda: recurrent.cliff_surface(length=0), "length", "in [1, inf)", "length=0"),
    ("loss-w-string", lambda: recurrent.cliff_loss("a", 1.0), "w", "finite numbers", "w='a'"),
    ("loss-b-nan", lambda: recurrent.cliff_loss(1.0, float("nan")), "b", "finite numbers", "b=nan"),
    (
        "trajectory-start-one",
        lambda: recurrent.cliff_trajectory(start=(1.0,)),
        "start",
        "a pair (w, b)",
        "start=(1.0,)",
    ),
    (
        "trajectory-start-nan",
        lambda: recurrent.cliff_trajectory(start=(1.0, math.nan)),
        "start[1]",
        "finite",
        "start[1]=nan",
    ),
    ("trajectory-lr-zero", lambda: recurrent.cliff_trajectory(lr=0), "lr", "in (0, inf)", "lr=0"),
    ("trajectory-steps-zero", lambda: recurrent.cliff_trajectory(steps=0), "steps", "in [1, inf)", "steps=0"),
    (
        "trajectory-threshold-negative",
        lambda: recurrent.cliff_trajectory(clip_threshold=-1),
        "clip_threshold",
        "in (0, inf)",
        "clip_threshold=-1",
    ),
    (
        "trajectory-threshold-string",
        lambda: recurrent.cliff_trajectory(clip_threshold="1"),
        "clip_threshold",
        "a number",
        "clip_threshold='1'",
    ),
    ("figure-surface", lambda: cliff.cliff_figure([1, 2]), "surface", "(w, b, loss)", "surface=[1, 2]"),
    (
        "figure-surface-shape",
        lambda: cliff.cliff_figure((SURFACE[0], SURFACE[1], SURFACE[2][:2])),
        "surface",
        "loss of shape (len(b), len(w))",
        "w of shape (3,), b of shape (3,), loss of shape (2, 3)",
    ),
    (
        "figure-trajectories-list",
        lambda: cliff.cliff_figure(SURFACE, [np.zeros((2, 2))]),
        "trajectories",
        "a dict",
        "trajectories=[array",
    ),
    (
        "figure-path-shape",
        lambda: cliff.cliff_figure(SURFACE, {"a": np.zeros((3, 3))}),
        "trajectories['a']",
        "(w, b) rows",
        "trajectories['a'] of shape (3, 3)",
    ),
    (
        "figure-two-starts",
        lambda: cliff.cliff_figure(SURFACE, {"a": np.zeros((2, 2)), "b": np.ones((2, 2))}),
        "trajectories",
        "from one start",
        "starts",
    ),
]


@pytest.mark.parametrize("call, name, allowed, received", [pytest.param(*c[1:], id=c[0]) for c in BAD])
def test_bad_arguments_are_refused_in_the_keras_form(call, name, allowed, received):
    with pytest.raises(ValueError, match=keras_form(name, allowed, received)):
        call()


def test_unknown_cell_lists_the_cells():
    with pytest.raises(ValueError, match=re.escape("Expected one of: 'simple_rnn', 'lstm'. Received: cell='gru'")):
        recurrent.adding_model("gru")
