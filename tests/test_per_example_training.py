"""Trainer(l2_norm_clip=..., noise_multiplier=...): DP-SGD's per-example clipping and noise in the compiled step.

References computed here, independently of gradlab: each example's gradient one by one with
GradientTape, clipped in numpy (DP-SGD, Abadi et al. 2016: g_b * min(1, C / ||g_b||)),
summed, divided by the batch size.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradlab
from gradlab.training.history import PER_EXAMPLE, SCALARS, History

BATCH = 8
CLIP = 15.0  # the first batch's per-example norms are about 9 to 29: some clipped, some not


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + rng.normal(size=(n, 1)).astype("float32")) * 3.0
    x[1] *= 8.0  # an outlier example in the first batch
    return x, y


def model(width=4, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(width, activation="tanh"), keras.layers.Dense(1)])


def trainer(m=None, lr=1.0, **kwargs):
    m = m if m is not None else model()
    return gradlab.Trainer(m, "mse", keras.optimizers.SGD(lr), **kwargs)


def first_batch():
    x, y = data()
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH), x[:BATCH], y[:BATCH]


def weights(t):
    return [v.numpy().copy() for v in t.variables]


def reference(m, x, y, clip):
    """Per-example gradients by a Python loop; their norms; the clipped mean (numpy)."""
    per = []
    for b in range(len(x)):
        with tf.GradientTape() as tape:
            loss = keras.losses.mean_squared_error(y[b : b + 1], m(x[b : b + 1], training=True))
            loss = tf.reduce_mean(loss)
        per.append([g.numpy().astype(np.float64) for g in tape.gradient(loss, m.trainable_variables)])
    norms = np.array([np.sqrt(sum((g**2).sum() for g in gs)) for gs in per])
    factors = np.minimum(1.0, clip / norms)
    mean = [sum(f * gs[i] for f, gs in zip(factors, per)) / len(x) for i in range(len(per[0]))]
    return norms, mean


@pytest.mark.parametrize("vectorized", [True, False], ids=["vectorized_map", "map_fn-fallback"])
def test_step_equals_a_loop_of_clipped_example_gradients(vectorized):
    ds, xb, yb = first_batch()
    t = trainer(l2_norm_clip=CLIP)
    t.per_example.vectorized = vectorized
    before = weights(t)
    norms, mean = reference(t.model, xb, yb, CLIP)
    assert (norms > CLIP).sum() >= 2 and (norms < CLIP).sum() >= 1  # some clipped, some not
    h = t.fit(dataset=ds, steps=1, progress=False)
    for w0, w1, g in zip(before, weights(t), mean):
        np.testing.assert_allclose(w0 - w1, g, rtol=1e-4, atol=1e-6)  # SGD(1.0): the change is the gradient
    np.testing.assert_allclose(h.norm_before[0], np.sqrt(sum((g**2).sum() for g in mean)), rtol=1e-4)
    assert t.per_example.vectorized is vectorized
    # the recorded per-example statistics: numpy's, on the loop's norms
    np.testing.assert_allclose(h.example_norm_median[0], np.median(norms), rtol=1e-4)  # even batch: mean of two
    np.testing.assert_allclose(h.example_norm_max[0], norms.max(), rtol=1e-4)
    assert h.example_clip_fraction[0] == (norms > CLIP).mean()
    steps, _ = h.to_pandas()
    assert list(steps.columns[-3:]) == list(PER_EXAMPLE)


def test_huge_clip_without_noise_is_the_ordinary_mean_gradient_step():
    x, y = data()
    ordinary, per_example = trainer(lr=0.05), trainer(lr=0.05, l2_norm_clip=1e9)
    h0 = ordinary.fit(x, y, steps=4, batch_size=BATCH, progress=False)
    h1 = per_example.fit(x, y, steps=4, batch_size=BATCH, progress=False)
    for a, b in zip(weights(ordinary), weights(per_example)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(h0.loss, h1.loss, rtol=1e-4)
    np.testing.assert_allclose(h0.norm_before, h1.norm_before, rtol=1e-4)
    assert (h1.example_clip_fraction == 0).all()
    assert np.isnan(h0.example_norm_max).all() and not h0.per_example  # the ordinary step: NaN, and no columns
    assert "example_norm_max" not in h0.to_pandas()[0].columns


def test_noise_has_std_sigma_times_clip_and_is_reproducible():
    ds, _, _ = first_batch()
    sigma, clip = 2.0, 0.5
    wide = lambda: model(width=2000)  # noqa: E731  ~10k weights: many samples of the noise
    clean, noisy = trainer(wide(), l2_norm_clip=clip), trainer(wide(), l2_norm_clip=clip, noise_multiplier=sigma)
    clean.fit(dataset=ds, steps=1, progress=False)
    noisy.fit(dataset=ds, steps=1, progress=False)
    noise = np.concatenate([(a - b).ravel() for a, b in zip(weights(clean), weights(noisy))])  # SGD(1.0): noise / B
    expected = sigma * clip / BATCH
    assert noise.size > 9000
    # the sample std of ~10k normals is within 0.7% (1 sd) of the true one; 5% is 7 sd; the seed is fixed too
    assert abs(noise.std() / expected - 1) < 0.05, noise.std()
    assert abs(noise.mean()) < 5 * expected / np.sqrt(noise.size)
    again = trainer(wide(), l2_norm_clip=clip, noise_multiplier=sigma)  # same seed: the same noise
    again.fit(dataset=ds, steps=1, progress=False)
    for a, b in zip(weights(noisy), weights(again)):
        np.testing.assert_array_equal(a, b)
    seeds = [trainer(l2_norm_clip=clip, noise_multiplier=sigma, noise_seed=s).per_example for s in (0, 0, 1)]
    draws = [p.generator.normal([4]).numpy() for p in seeds]
    assert np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[0], draws[2])
    first = weights(noisy)
    noisy.reset()  # rewinds the noise generator with the weights
    noisy.fit(dataset=ds, steps=1, progress=False)
    for a, b in zip(first, weights(noisy)):
        np.testing.assert_array_equal(a, b)


def test_one_trace_across_fit_calls_and_xla():
    x, y = data()
    for jit in (False, True):
        t = trainer(lr=0.05, l2_norm_clip=0.5, noise_multiplier=0.5, jit_compile=jit)
        for _ in range(3):
            h = t.fit(x, y, steps=2, batch_size=BATCH, progress=False)
        t.scaler.set(mode="global_norm", threshold=0.1)
        h = t.fit(x, y, steps=2, batch_size=BATCH, progress=False)
        assert t.tracing_count == 1 and len(t.history) == 8
        assert np.isfinite(h.example_norm_median).all() and (h.norm_after <= 0.1 + 1e-6).all()


def test_history_rows_with_and_without_per_example_columns():
    n = len(SCALARS) + 3
    old = History.from_rows(np.ones((2, n)), ["a"], gradlab.scaler.MODE_NAMES)
    assert np.isnan(old.example_norm_median).all() and not old.per_example
    new = History.from_rows(np.ones((2, n + 3)), ["a"], gradlab.scaler.MODE_NAMES)
    assert (new.example_clip_fraction == 1).all() and new.per_example
    assert (
        len(old.extend(new)) == 4 and np.isnan(old.example_norm_max[:2]).all() and (old.example_norm_max[2:] == 1).all()
    )
    with pytest.raises(ValueError, match=r"\(steps, 12\).*\(steps, 15\).*Received: rows of shape \(2, 13\)"):
        History.from_rows(np.ones((2, 13)), ["a"], gradlab.scaler.MODE_NAMES)


def _bn_model():
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])


CLIP_ALLOWED = "Argument `l2_norm_clip` must be None (no per-example clipping) or a Python number in (0, inf]"
BAD = [
    ("clip-zero", {"l2_norm_clip": 0}, f"{CLIP_ALLOWED}. Received: l2_norm_clip=0"),
    ("clip-negative", {"l2_norm_clip": -1.0}, f"{CLIP_ALLOWED}. Received: l2_norm_clip=-1.0"),
    ("clip-minus-inf", {"l2_norm_clip": -float("inf")}, f"{CLIP_ALLOWED}. Received: l2_norm_clip=-inf"),
    ("clip-nan", {"l2_norm_clip": float("nan")}, f"{CLIP_ALLOWED}. Received: l2_norm_clip=nan"),
    ("clip-string", {"l2_norm_clip": "1"}, f"{CLIP_ALLOWED}. Received: l2_norm_clip='1'"),
    ("clip-bool", {"l2_norm_clip": True}, f"{CLIP_ALLOWED}. Received: l2_norm_clip=True"),
    ("clip-tensor", {"l2_norm_clip": tf.constant(1.0)}, f"{CLIP_ALLOWED}. Received: l2_norm_clip=<tf.Tensor"),
    ("noise-negative", {"l2_norm_clip": 1.0, "noise_multiplier": -0.5}, "Received: noise_multiplier=-0.5"),
    ("noise-inf", {"l2_norm_clip": 1.0, "noise_multiplier": float("inf")}, "Argument `noise_multiplier` must be"),
    ("noise-without-clip", {"noise_multiplier": 1.0}, "Argument `noise_multiplier` needs per-example clipping"),
    ("seed-without-clip", {"noise_seed": 3}, "Argument `noise_seed` needs per-example clipping"),
    ("noise-with-inf-clip", {"l2_norm_clip": float("inf"), "noise_multiplier": 1.0}, "must be 0 when `l2_norm_clip`"),
    ("seed-negative", {"l2_norm_clip": 1.0, "noise_seed": -1}, "Argument `noise_seed` must be in [0, inf)"),
    ("seed-float", {"l2_norm_clip": 1.0, "noise_seed": 1.5}, "Argument `noise_seed` must be an integer"),
    ("accumulate", {"l2_norm_clip": 1.0, "accumulate": 2}, "works with accumulate=1 (use a larger batch_size) only"),
]


@pytest.mark.parametrize("kwargs, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments_are_refused_with_a_clear_error(kwargs, message):
    with pytest.raises(ValueError) as err:
        trainer(**kwargs)
    assert message in str(err.value)


def test_refused_combinations_loss_scaling_and_batch_norm():
    lso = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match="works with a float32 optimizer only. Received: .* a LossScaleOptimizer"):
        gradlab.Trainer(model(), "mse", lso, l2_norm_clip=1.0)
    with pytest.raises(ValueError, match=r"without BatchNormalization.*Received: a model with \['batch_normalization"):
        gradlab.Trainer(_bn_model(), "mse", keras.optimizers.SGD(0.1), l2_norm_clip=1.0)
    gradlab.Trainer(_bn_model(), "mse", keras.optimizers.SGD(0.1))  # without per-example clipping: fine


def test_recorder_and_history_agree_on_every_column_by_name():
    """Each statistic written by name lands in the History field of that name (a distinct value each)."""
    from gradlab.training.history import PER_LAYER, Columns
    from gradlab.training.recording import Recorder

    variables = [tf.Variable(tf.zeros([2, 3]), name="dense/kernel"), tf.Variable(tf.zeros([3]), name="dense/bias")]
    variables.append(tf.Variable(tf.zeros([3, 1]), name="out/kernel"))
    recorder = Recorder(variables, capacity=4)
    columns = Columns(recorder.layer_names)
    values = {}
    for i, (name, part) in enumerate(columns.slices.items()):
        width = part.stop - part.start
        values[name] = np.arange(width, dtype=np.float32) + 10 * (i + 1) if name in PER_LAYER else 10.0 * (i + 1)
    recorder._write(**{k: tf.constant(v) for k, v in values.items()})
    h = recorder.history(recorder.flush())
    assert recorder.layer_names == ["dense", "out"] and len(h) == 1
    for name, value in values.items():
        np.testing.assert_array_equal(getattr(h, name)[0], value, err_msg=name)
    with pytest.raises(ValueError, match=r"parts missing \['loss'\] and with unknown \['los'\]"):
        columns.ordered({**{k: v for k, v in values.items() if k != "loss"}, "los": 1.0})
