"""scale_by_trust_ratio against optax and Keras' Lamb.

References: google-deepmind/optax ``optax/_src/transform.py``, ``scale_by_trust_ratio(min_norm=0.0,
trust_coefficient=1.0, eps=0.0)``: ``param_norm = safe_norm(param, min_norm)``, ``update_norm =
safe_norm(update, min_norm)`` (``optax/_src/numerics.py``: the norm, or ``min_norm`` where the
norm is <= ``min_norm``), ``trust_ratio = trust_coefficient * param_norm / (update_norm + eps)``,
1 where either norm is zero, ``update * trust_ratio``. Keras ``keras/src/optimizers/lamb.py``
(installed), ``Lamb.update_step``: ``ratio = w_norm / g_norm`` (1 unless both > 0) applied to
the Adam update ``m_hat / (sqrt(v_hat) + epsilon)``: ``variable -= ratio * lr * update``.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradlab.scaling import scale_by_trust_ratio, trust_ratios


def optax_scale_by_trust_ratio(updates, params, min_norm=0.0, trust_coefficient=1.0, eps=0.0):
    out = []
    for u, p in zip(updates, params):
        p_norm = max(np.linalg.norm(p), min_norm) if np.linalg.norm(p) > min_norm else min_norm
        u_norm = max(np.linalg.norm(u), min_norm) if np.linalg.norm(u) > min_norm else min_norm
        ratio = 1.0 if p_norm == 0.0 or u_norm == 0.0 else trust_coefficient * p_norm / (u_norm + eps)
        out.append(u * ratio)
    return out


CASES = {
    "lamb-defaults": dict(),
    "lars-0.001": dict(trust_coefficient=0.001),
    "min_norm-eps": dict(min_norm=0.5, eps=1e-3),
}


@pytest.mark.parametrize("options", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("seed", [0, 1])
def test_random_tensors_equal_optax_port(options, seed):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 3, 2)]
    params = [rng.normal(size=s) * rng.uniform(0.1, 3) for s in shapes]
    params[1] = np.zeros(4)  # a zero-initialised bias: ratio 1 (unless min_norm floors it)
    updates = [rng.normal(size=s) * rng.uniform(0.001, 1) for s in shapes]
    ours = scale_by_trust_ratio(
        [tf.constant(u, tf.float32) for u in updates], [tf.constant(p, tf.float32) for p in params], **options
    )
    for o, r in zip(ours, optax_scale_by_trust_ratio(updates, params, **options)):
        np.testing.assert_allclose(o.numpy(), r, rtol=1e-5)


def test_hand_vector():
    """w = [6, 8] (norm 10), g = [0.3, 0.4] (norm 0.5): ratio 20, g -> [6, 8]; a zero weight: ratio 1."""
    out = scale_by_trust_ratio([tf.constant([0.3, 0.4]), tf.constant([1.0])], [tf.constant([6.0, 8.0]), tf.zeros([1])])
    np.testing.assert_allclose(out[0].numpy(), [6.0, 8.0], rtol=1e-6)
    np.testing.assert_array_equal(out[1].numpy(), [1.0])


def test_keras_lamb_first_step_is_trust_ratio_of_adam_update():
    """Keras Lamb step 1: m_hat = g, v_hat = g**2, update = g / (|g| + eps); the weight moves by
    -lr * scale_by_trust_ratio(update, w)."""
    w0 = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    g = np.array([[0.2, -0.1], [0.05, 0.4]], np.float32)
    var = keras.Variable(w0)
    opt = keras.optimizers.Lamb(learning_rate=0.01)
    opt.apply_gradients([(tf.constant(g), var)])
    update = g / (np.abs(g) + opt.epsilon)
    (scaled,) = scale_by_trust_ratio([tf.constant(update)], [tf.constant(w0)])
    np.testing.assert_allclose(var.numpy() - w0, -0.01 * scaled.numpy(), rtol=1e-5, atol=1e-8)


def test_keeps_none_and_indexed_slices_and_each_tensor_gets_its_weight_norm():
    emb = tf.Variable(tf.ones([4, 2]))
    g = tf.IndexedSlices(tf.constant([[0.3, 0.4]]), tf.constant([2]), tf.constant([4, 2]))
    out = scale_by_trust_ratio([g, None], [emb, tf.ones([3])])
    assert isinstance(out[0], tf.IndexedSlices) and out[1] is None
    assert float(tf.norm(out[0].values)) == pytest.approx(float(tf.norm(emb)), rel=1e-6)
    assert trust_ratios([g, None], [emb, tf.ones([3])])[1] is None


@pytest.mark.parametrize(
    "kwargs, name",
    [(dict(min_norm=-1.0), "min_norm"), (dict(trust_coefficient=0.0), "trust_coefficient"), (dict(eps=-1e-3), "eps")],
    ids=["min_norm", "trust_coefficient", "eps"],
)
def test_bad_options_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"Argument `{name}`.*Received: {name}="):
        scale_by_trust_ratio([tf.ones([2])], [tf.ones([2])], **kwargs)


def test_missing_weight_names_the_argument():
    with pytest.raises(ValueError, match=r"Argument `variables` must hold the weight.*variables\[0\]=None"):
        scale_by_trust_ratio([tf.ones([2])], [None])
