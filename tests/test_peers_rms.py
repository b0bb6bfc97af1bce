"""clip_by_block_rms against optax and Keras' Adafactor.

References: google-deepmind/optax ``optax/transforms/_clipping.py`` (commit 16f05fd),
``clip_by_block_rms``: ``clip_denom = maximum(1.0, sqrt(mean(abs_sq(u))) / threshold)``,
``u / clip_denom``; and its test ``_clipping_test.py::test_clip_by_block_rms`` (updates
``[500, 5]`` and ``[300, 3]`` clipped to RMS ``1 / i`` for i = 1..50, and clipping the
clipped updates again changes nothing). Keras ``keras/src/optimizers/adafactor.py``
(the installed Keras), ``Adafactor.update_step``: ``u_t = gradient / sqrt(v)``,
``u_t_hat = u_t / maximum(1, _rms(u_t) / clip_threshold)`` with ``_rms(x) =
sqrt(mean(square(x)))``, then ``variable -= alpha_t * u_t_hat``.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradlab.scaling import block_rms, clip_by_block_rms


def optax_clip_by_block_rms(updates, threshold):
    return [u / np.maximum(1.0, np.sqrt(np.mean(np.square(u))) / threshold) for u in updates]


def test_optax_test_clip_by_block_rms():
    """_clipping_test.py::test_clip_by_block_rms: RMS after = 1 / i; clipping again is a no-op."""
    start = [tf.constant([500.0, 5.0]), tf.constant([300.0, 3.0])]
    updates = start
    for i in range(1, 51):
        updates = clip_by_block_rms(updates, 1.0 / i)
        for u in updates:
            assert float(block_rms(u)) == pytest.approx(1.0 / i, rel=1e-6)
        again = clip_by_block_rms(start, 1.0 / i)
        for a, b in zip(updates, again):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


@pytest.mark.parametrize("threshold", [0.01, 0.5, 1.0, 10.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_tensors_equal_optax_port(threshold, seed):
    rng = np.random.default_rng(seed)
    grads = [rng.normal(size=s) * rng.uniform(0.01, 5) for s in [(3, 4), (5,), (2, 2, 3)]]
    ours = clip_by_block_rms([tf.constant(g, tf.float32) for g in grads], threshold)
    for o, r in zip(ours, optax_clip_by_block_rms(grads, threshold)):
        np.testing.assert_allclose(o.numpy(), r, rtol=1e-5)


def test_hand_vector():
    """[3, 4, 0, 0]: RMS sqrt(25 / 4) = 2.5; threshold 1 -> divided by 2.5: [1.2, 1.6, 0, 0]."""
    (out,) = clip_by_block_rms([tf.constant([3.0, 4.0, 0.0, 0.0])], 1.0)
    np.testing.assert_allclose(out.numpy(), [1.2, 1.6, 0.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize("clip_threshold", [0.25, 1.0])
def test_keras_adafactor_first_step_clips_like_clip_by_block_rms(clip_threshold):
    """Keras Adafactor, step 1, a vector weight: v = g**2 + epsilon_1 (beta_2_t = 0), u = g / sqrt(v);
    the weight moves by -alpha_1 * clip_by_block_rms(u, clip_threshold), alpha_1 = max(eps_2, RMS(w)) * lr."""
    w0 = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    g = np.array([0.2, -0.1, 0.0, 0.4], np.float32)
    var = keras.Variable(w0)
    opt = keras.optimizers.Adafactor(learning_rate=0.1, clip_threshold=clip_threshold)
    opt.apply_gradients([(tf.constant(g), var)])
    u = g / np.sqrt(g.astype(np.float64) ** 2 + opt.epsilon_1)
    alpha = max(opt.epsilon_2, np.sqrt(np.mean(w0.astype(np.float64) ** 2))) * 0.1
    (clipped,) = clip_by_block_rms([tf.constant(u, tf.float32)], clip_threshold)
    np.testing.assert_allclose(var.numpy() - w0, -alpha * clipped.numpy(), rtol=1e-5, atol=1e-7)


def test_properties_bound_identity_direction():
    rng = np.random.default_rng(3)
    g = tf.constant(rng.normal(size=(4, 5)) * 3, tf.float32)
    (out,) = clip_by_block_rms([g], 0.5)
    assert float(block_rms(out)) <= 0.5 * (1 + 1e-6)
    a, b = g.numpy().ravel(), out.numpy().ravel()
    assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) == pytest.approx(1.0, abs=1e-6)
    (same,) = clip_by_block_rms([out], 0.5)
    np.testing.assert_allclose(same.numpy(), out.numpy(), rtol=1e-6)
    (small,) = clip_by_block_rms([g * 0.01], 10.0)
    np.testing.assert_array_equal(small.numpy(), (g * 0.01).numpy())


def test_indexed_slices_measured_as_their_dense_tensor_and_none_kept():
    """Rows [3, 4] at index 1 twice of a (4, 2) embedding: dense row [6, 8]; RMS sqrt(100 / 8)."""
    g = tf.IndexedSlices(tf.constant([[3.0, 4.0], [3.0, 4.0]]), tf.constant([1, 1]), tf.constant([4, 2]))
    assert float(block_rms(g)) == pytest.approx(np.sqrt(100 / 8), rel=1e-6)
    out = clip_by_block_rms([g, None], 1.0)
    assert isinstance(out[0], tf.IndexedSlices) and out[1] is None
    dense = tf.convert_to_tensor(out[0]).numpy()
    assert np.sqrt(np.mean(dense**2)) == pytest.approx(1.0, rel=1e-6)


def test_float16_rms_in_float32():
    (out,) = clip_by_block_rms([tf.constant([300.0, 400.0], tf.float16)], 1.0)
    assert out.dtype == tf.float16
    np.testing.assert_allclose(out.numpy(), [300 / 353.55, 400 / 353.55], rtol=1e-3)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), "1"], ids=["zero", "negative", "nan", "string"])
def test_bad_threshold_names_the_argument(bad):
    with pytest.raises(ValueError, match="Argument `threshold`.*Received: threshold="):
        clip_by_block_rms([tf.ones([2])], bad)


@settings(max_examples=25, deadline=None, database=None)
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
        # TensorFlow's CPU kernels flush subnormal floats to zero (1e-45 * 1 gives 0): as test_scaling's FLOATS
        elements=st.floats(-1e3, 1e3, width=32, allow_subnormal=False),
    ),
    st.floats(1e-3, 1e3),
)
def test_block_rms_properties(g, threshold):
    """RMS after <= threshold; clipping twice changes nothing; under the bound unchanged."""
    (out,) = clip_by_block_rms([tf.constant(g)], threshold)
    assert float(block_rms(out)) <= threshold * (1 + 1e-5)
    (twice,) = clip_by_block_rms([out], threshold)
    np.testing.assert_allclose(twice.numpy(), out.numpy(), rtol=1e-5, atol=1e-30)
    if np.sqrt(np.mean(np.float64(g) ** 2)) <= threshold * (1 - 1e-6):
        np.testing.assert_array_equal(out.numpy(), g)
