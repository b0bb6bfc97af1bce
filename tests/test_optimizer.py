"""Tests of gradlab.ScaledOptimizer: Keras' own clipping arguments as the reference, the
non-finite policies on weights and optimizer slots, live controls in a compiled step, and
saving with model.save / keras.models.load_model.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradlab

KERAS_ARG = {"value": "clipvalue", "norm": "clipnorm", "global_norm": "global_clipnorm"}
INNER = {"SGD": (keras.optimizers.SGD, 1.0), "Adam": (keras.optimizers.Adam, 0.1)}  # class, learning rate


def make_variables(seed=0):
    """Conv kernel, bias, dense kernel and embedding weights with fixed random values."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 3, 2, 4), (5,), (4, 3), (6, 3)]
    return [keras.Variable(rng.normal(size=s).astype(np.float32)) for s in shapes]


def step_grads(step, scale=0.5, indices=(1, 4, 2)):
    """Gradients for one step: dense tensors, a None (bias) and an embedding IndexedSlices."""
    rng = np.random.default_rng(100 + step)
    sparse = tf.IndexedSlices(
        tf.constant(rng.normal(size=(3, 3)) * scale, tf.float32), tf.constant(indices), tf.constant([6, 3])
    )
    return [
        tf.constant(rng.normal(size=(3, 3, 2, 4)) * scale, tf.float32),
        None,
        tf.constant(rng.normal(size=(4, 3)) * scale, tf.float32),
        sparse,
    ]


def quiet_apply(opt, grads, variables):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gradients do not exist")
        opt.apply(grads, variables)


# ---------------------------------------------------------------- Keras references
@pytest.mark.parametrize("threshold", [0.1, 1e3], ids=["clips", "no-clip"])
@pytest.mark.parametrize("inner", list(INNER))
@pytest.mark.parametrize("mode", list(KERAS_ARG))
def test_apply_equals_inner_optimizer_with_keras_clipping(mode, inner, threshold):
    """ScaledOptimizer(inner, mode, t).apply moves weights as inner built with clipvalue/clipnorm/global_clipnorm."""
    ours, theirs = make_variables(), make_variables()
    make, lr = INNER[inner]
    opt = gradlab.ScaledOptimizer(make(lr), mode=mode, threshold=threshold)
    ref = make(lr, **{KERAS_ARG[mode]: threshold})
    start = [v.numpy().copy() for v in ours]
    for step in range(3):
        grads = step_grads(step)
        quiet_apply(opt, grads, ours)
        quiet_apply(ref, grads, theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
    assert not np.allclose(ours[0].numpy(), start[0])  # something moved
    np.testing.assert_array_equal(ours[1].numpy(), start[1])  # None gradient: bias untouched
    assert int(opt.iterations) == 3 and int(opt.skipped_steps) == 0


@pytest.mark.parametrize("threshold", [0.1, 1e3], ids=["clips", "no-clip"])
@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: keras.optimizers.Adam(0.1, **kw),
        lambda **kw: keras.optimizers.RMSprop(0.1, **kw),
        lambda **kw: keras.optimizers.SGD(0.1, momentum=0.9, **kw),
    ],
    ids=["Adam", "RMSprop", "SGD-momentum"],
)
def test_apply_with_duplicate_indices_equals_keras_global_clipnorm(make, threshold):
    """An embedding gradient with a repeated row (tf.gather of [1, 4, 1]) gives Keras' global_clipnorm update.

    Keras' global_clipnorm returns a dense gradient (the sum over duplicate rows), which is also
    the mathematically right input for Adam and RMSprop.
    """
    ours, theirs = make_variables(), make_variables()
    opt = gradlab.ScaledOptimizer(make(), mode="global_norm", threshold=threshold)
    ref = make(global_clipnorm=threshold)
    for step in range(3):
        grads = step_grads(step, indices=(1, 4, 1))
        quiet_apply(opt, grads, ours)
        quiet_apply(ref, grads, theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)


def build_model():
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3), keras.layers.Dense(1)]
    )


def fit_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = (10.0 * rng.normal(size=(32, 1))).astype(np.float32)  # large targets: large gradients
    return x, y


@pytest.mark.parametrize(
    "inner, mode, threshold",
    [
        ("SGD", "value", 0.5),
        ("SGD", "norm", 1.0),
        ("SGD", "global_norm", 1.0),
        ("Adam", "global_norm", 0.5),
        ("Adam", "norm", 0.5),
    ],
)
def test_model_fit_equals_keras_clipping(inner, mode, threshold):
    """Two identical models trained by model.fit end with the same weights as with Keras' own clipping."""
    x, y = fit_data()
    make, lr = INNER[inner][0], 0.01
    trained = []
    for opt in (
        gradlab.ScaledOptimizer(make(lr), mode=mode, threshold=threshold),
        make(lr, **{KERAS_ARG[mode]: threshold}),
    ):
        model = build_model()
        model.compile(optimizer=opt, loss="mse")
        model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
        trained.append(model.get_weights())
    initial = build_model().get_weights()
    assert not np.allclose(trained[0][0], initial[0])
    for a, b in zip(*trained):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_inner_optimizer_that_clips_is_refused():
    """Clipping twice is refused, naming Keras' argument."""
    with pytest.raises(ValueError, match="clipnorm"):
        gradlab.ScaledOptimizer(keras.optimizers.SGD(1.0, clipnorm=1.0), mode="norm", threshold=1.0)


# ---------------------------------------------------------------- non-finite policies
def nan_grads():
    g = step_grads(9)
    g[2] = tf.tensor_scatter_nd_update(g[2], [[0, 0]], [np.nan])
    return g


@pytest.mark.parametrize("mode", ["global_norm", "zclip"])
def test_skip_leaves_weights_and_adam_slots_unchanged(mode):
    """'skip': weights and every optimizer variable stay; skipped_steps counts; the next step trains."""
    variables = make_variables()
    opt = gradlab.ScaledOptimizer(keras.optimizers.Adam(0.1), mode=mode, threshold=None, zclip_warmup=2)
    quiet_apply(opt, step_grads(0), variables)  # a normal step: Adam moments are non-zero now
    weights = [v.numpy().copy() for v in variables]
    slots = [v.numpy().copy() for v in opt.inner_optimizer.variables]
    state = [v.numpy().copy() for v in opt.scaler.variables]
    assert any(np.abs(s).sum() > 0 for s in slots[2:])
    quiet_apply(opt, nan_grads(), variables)
    assert int(opt.skipped_steps) == 1
    assert int(opt.iterations) == 1
    for v, w in zip(variables, weights):
        np.testing.assert_array_equal(v.numpy(), w)
    for v, s in zip(opt.inner_optimizer.variables, slots):
        np.testing.assert_array_equal(v.numpy(), s)
    for v, s in zip(opt.scaler.variables, state):
        np.testing.assert_array_equal(v.numpy(), s)
    quiet_apply(opt, step_grads(1), variables)  # training continues
    assert int(opt.iterations) == 2 and int(opt.skipped_steps) == 1
    assert not np.allclose(variables[0].numpy(), weights[0])
    assert all(np.isfinite(v.numpy()).all() for v in variables)


def test_skip_in_model_fit_continues_training():
    """Inside model.fit a batch with a NaN input is skipped each epoch; the weights stay finite and move."""
    x, y = fit_data()
    x[10, 2] = np.nan  # batch 1 of 4
    model = build_model()
    initial = model.get_weights()
    opt = gradlab.ScaledOptimizer(keras.optimizers.Adam(0.01), mode="global_norm", threshold=1.0)
    model.compile(optimizer=opt, loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert int(opt.skipped_steps) == 2
    assert int(opt.iterations) == 6
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert not np.allclose(model.get_weights()[0], initial[0])


def test_zero_policy_moves_by_the_cleaned_scaled_gradient():
    """'zero' with global_norm 1: gradient [nan, 3, 4] moves SGD(1.0) weights by -[0, 0.6, 0.8]."""
    w = keras.Variable([1.0, 1.0, 1.0])
    opt = gradlab.ScaledOptimizer(keras.optimizers.SGD(1.0), mode="global_norm", threshold=1.0, nonfinite="zero")
    opt.apply([tf.constant([np.nan, 3.0, 4.0])], [w])
    np.testing.assert_allclose(w.numpy(), [1.0, 0.4, 0.2], rtol=1e-6)
    assert int(opt.skipped_steps) == 0


def dense_layer_variables():
    layer = keras.layers.Dense(2, name="head")
    layer.build((None, 3))
    return [layer.kernel, layer.bias]


def test_raise_policy_eager_names_the_variable():
    """'raise' eagerly: FloatingPointError naming the variable path; weights untouched."""
    variables = dense_layer_variables()
    before = [v.numpy().copy() for v in variables]
    opt = gradlab.ScaledOptimizer(keras.optimizers.SGD(1.0), nonfinite="raise")
    with pytest.raises(FloatingPointError, match="head/bias"):
        opt.apply([tf.ones((3, 2)), tf.constant([np.inf, 0.0])], variables)
    for v, b in zip(variables, before):
        np.testing.assert_array_equal(v.numpy(), b)


def test_raise_policy_in_tf_function_names_the_variable():
    """'raise' inside a compiled train step: InvalidArgumentError naming the variable path."""
    variables = dense_layer_variables()
    opt = gradlab.ScaledOptimizer(keras.optimizers.SGD(1.0), nonfinite="raise")
    opt.build(variables)

    @tf.function
    def step(kernel_grad, bias_grad):
        opt.apply([kernel_grad, bias_grad], variables)

    step(tf.ones((3, 2)), tf.zeros(2))
    with pytest.raises(tf.errors.InvalidArgumentError, match="head/kernel"):
        step(tf.fill((3, 2), np.nan), tf.zeros(2))


# ---------------------------------------------------------------- live controls
LIVE_SETTINGS = [
    ("value", 0.5),
    ("norm", 1.0),
    ("global_norm", 1.0),
    ("normalize", 2.0),
    ("global_normalize", 0.5),
    ("none", 1.0),
    ("value", 2.0),
    ("global_norm", 10.0),
    ("norm", 0.1),
    ("normalize", 0.3),
] * 2


def expected_update(mode, arrays, t):
    arrays = [np.float64(a) for a in arrays]
    norms = [np.linalg.norm(a) for a in arrays]
    total = np.linalg.norm(norms)
    return {
        "none": lambda: arrays,
        "value": lambda: [np.clip(a, -t, t) for a in arrays],
        "norm": lambda: [a * min(1.0, t / n) for a, n in zip(arrays, norms)],
        "global_norm": lambda: [a * min(1.0, t / total) for a in arrays],
        "normalize": lambda: [a * t / n for a, n in zip(arrays, norms)],
        "global_normalize": lambda: [a * t / total for a in arrays],
    }[mode]()


def test_live_changes_in_compiled_train_step_do_not_retrace():
    """20 optimizer.scaler.set(...) changes: one trace; each step's update follows the current setting."""
    arrays = [np.array([3.0, -4.0, 0.5], np.float32), np.array([[1.0, 2.0]], np.float32)]
    variables = [keras.Variable(np.zeros(a.shape, np.float32)) for a in arrays]
    opt = gradlab.ScaledOptimizer(keras.optimizers.SGD(1.0), mode="global_norm", threshold=1.0)
    opt.build(variables)
    grads = [tf.constant(a) for a in arrays]

    @tf.function
    def train_step():
        opt.apply(grads, variables)

    for mode, t in LIVE_SETTINGS:
        opt.scaler.set(mode=mode, threshold=t)
        before = [v.numpy().copy() for v in variables]
        train_step()
        moved = [b - v.numpy() for v, b in zip(variables, before)]
        for m, e in zip(moved, expected_update(mode, arrays, t)):
            np.testing.assert_allclose(m, e, rtol=1e-5, atol=1e-6)
    assert train_step.experimental_get_tracing_count() == 1
    assert int(opt.iterations) == len(LIVE_SETTINGS)


def test_adaptive_state_changes_inside_compiled_train_step():
    """AutoClip and ZClip state (tf.Variables) advances inside a compiled step of ScaledOptimizer."""
    w = keras.Variable([0.0, 0.0])
    opt = gradlab.ScaledOptimizer(
        keras.optimizers.SGD(1.0), mode="autoclip", threshold=50.0, zclip_warmup=2, modes="all"
    )
    opt.build([w])

    @tf.function
    def train_step(g):
        opt.apply([g], [w])

    for n in [1.0, 3.0, 2.0]:
        train_step(tf.constant([n, 0.0]))
    assert int(opt.scaler.autoclip.count) == 3
    assert float(opt.scaler.autoclip.bound) == pytest.approx(np.percentile([1.0, 3.0, 2.0], 50))
    opt.scaler.set(mode="zclip", threshold=2.0)
    for n in [1.0, 3.0]:
        train_step(tf.constant([0.0, n]))
    assert int(opt.scaler.zclip.count) == 2
    assert float(opt.scaler.zclip.mean) == pytest.approx(2.0)  # mean of the warm-up norms 1, 3
    assert float(opt.scaler.zclip.var) == pytest.approx(1.0)  # their population variance
    assert int(opt.scaler.autoclip.count) == 3  # autoclip state untouched while zclip runs
    assert train_step.experimental_get_tracing_count() == 1


# ---------------------------------------------------------------- saving
def test_model_save_and_load_keeps_optimizer_and_zclip_state(tmp_path):
    """model.save / load_model keep type, mode, threshold, policy, ZClip state and Adam slots; training goes on."""
    x, y = fit_data()
    model = build_model()
    opt = gradlab.ScaledOptimizer(
        keras.optimizers.Adam(0.01), mode="zclip", threshold=2.0, nonfinite="zero", zclip_warmup=3
    )
    model.compile(optimizer=opt, loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert int(opt.scaler.zclip.count) == 8
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    new = loaded.optimizer
    assert type(new) is gradlab.ScaledOptimizer
    assert type(new.inner_optimizer) is keras.optimizers.Adam
    assert new.scaler.mode_name == "zclip"
    assert float(new.scaler.threshold) == 2.0
    assert new.scaler.nonfinite == "zero"
    assert new.scaler.zclip.warmup == 3
    assert int(new.scaler.zclip.count) == int(opt.scaler.zclip.count)
    assert float(new.scaler.zclip.mean) == float(opt.scaler.zclip.mean)
    assert float(new.scaler.zclip.var) == float(opt.scaler.zclip.var)
    assert int(new.iterations) == int(opt.iterations) == 8
    for a, b in zip(new.inner_optimizer.variables, opt.inner_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    weights = loaded.get_weights()
    loaded.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert int(new.scaler.zclip.count) == 12 and int(new.iterations) == 12
    assert not np.allclose(loaded.get_weights()[0], weights[0])
