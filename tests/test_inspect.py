"""gradlab.explore.inspect: max_diff, distance, cosine, flatten, diff_text, applied_gradient.

Values are checked against hand-computed vectors and a direct numpy computation; what Keras
applies is checked against Keras' documented clipping (per variable, all together, by value)
worked out by hand. Bad input gets a Keras-style error naming the argument.
"""

import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradlab
from gradlab.explore import applied_gradient, cosine, diff_text, distance, flatten, max_diff

G = [tf.constant([[3.0, 4.0]]), tf.constant([0.3, 0.4])]  # norms 5 and 0.5; global sqrt(25.25)


def msg(*parts):
    return ".*".join(re.escape(p) for p in parts)


# ---------------------------------------------------------------- flatten
def test_flatten_concatenates_in_order():
    assert flatten(G).tolist() == pytest.approx([3.0, 4.0, 0.3, 0.4])
    assert flatten(tf.constant([[1.0, 2.0], [3.0, 4.0]])).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert flatten([1, 2]).dtype == np.float64


def test_flatten_reads_a_model_weights():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    direct = np.concatenate([w.ravel() for w in model.get_weights()])
    np.testing.assert_array_equal(flatten(model), direct.astype(np.float64))


# ---------------------------------------------------------------- max_diff, distance
@pytest.mark.parametrize(
    "a, b, expected",
    [
        pytest.param([[1.0, 2.0], [3.0]], [[1.0, 2.5], [2.0]], 1.0, id="lists"),
        pytest.param(tf.constant([1.0, -2.0]), np.array([1.0, 2.0]), 4.0, id="tensor-vs-array"),
        pytest.param([1.0, 2.0], [1.0, 2.0], 0.0, id="equal"),
        pytest.param([math.inf, 1.0], [math.inf, 1.5], 0.5, id="equal-infinities-count-0"),
        pytest.param([math.inf], [1.0], math.inf, id="inf-vs-finite"),
    ],
)
def test_max_diff_by_hand(a, b, expected):
    assert max_diff(a, b) == pytest.approx(expected)
    assert isinstance(max_diff(a, b), float)


def test_max_diff_nan_is_nan():
    assert math.isnan(max_diff([math.nan, 1.0], [math.nan, 1.0]))


def test_max_diff_and_distance_match_numpy():
    rng = np.random.default_rng(0)
    a = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(3,)).astype(np.float32)]
    b = [x + rng.normal(size=x.shape).astype(np.float32) for x in a]
    d = np.concatenate([(u.astype(np.float64) - v).ravel() for u, v in zip(a, b)])
    assert max_diff(a, [tf.constant(x) for x in b]) == np.abs(d).max()
    assert distance(a, b) == pytest.approx(np.linalg.norm(d), rel=1e-12)


def test_distance_by_hand():
    assert distance([[1.0, 2.0], [3.0]], [[1.0, 5.0], [7.0]]) == 5.0  # sqrt(3^2 + 4^2)


def test_max_diff_of_models():
    one = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones")])
    two = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones")])
    assert max_diff(one, two) == 0.0
    two.layers[0].kernel.assign([[1.0], [1.25]])
    assert max_diff(one, two) == 0.25
    assert max_diff(one, [w + 0.5 for w in one.get_weights()]) == 0.5
    assert distance(two, one.get_weights()) == 0.25


# ---------------------------------------------------------------- cosine
@pytest.mark.parametrize(
    "a, b, expected",
    [
        pytest.param([[3.0, 0.0], [4.0]], [[1.0, 0.0], [0.0]], 0.6, id="3-over-5"),
        pytest.param([1.0, 0.0], [0.0, 2.0], 0.0, id="orthogonal"),
        pytest.param([1.0, 2.0], [-2.0, -4.0], -1.0, id="opposite"),
        pytest.param(G, [2.0 * g for g in G], 1.0, id="positive-multiple"),
    ],
)
def test_cosine_by_hand(a, b, expected):
    assert cosine(a, b) == pytest.approx(expected, abs=1e-12)
    assert -1.0 <= cosine(a, b) <= 1.0


def test_cosine_matches_numpy_and_sees_per_variable_clipping_turn():
    clipped = gradlab.clip_by_norm(G, 1.0)  # [0.6, 0.8] and [0.3, 0.4]
    u = np.array([3.0, 4.0, 0.3, 0.4])
    v = np.array([0.6, 0.8, 0.3, 0.4])
    assert cosine(G, clipped) == pytest.approx(u @ v / np.linalg.norm(u) / np.linalg.norm(v), rel=1e-6)
    assert cosine(G, clipped) < 0.99  # the direction turned
    assert cosine(G, gradlab.clip_by_global_norm(G, 1.0)) == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------- diff_text
@pytest.mark.parametrize(
    "d, tolerance, expected",
    [(0.0, 1e-6, "below 1e-06"), (9.9e-7, 1e-6, "below 1e-06"), (0.03671, 1e-6, "0.037"), (2e-5, 1e-4, "below 0.0001")],
)
def test_diff_text(d, tolerance, expected):
    assert diff_text(d, tolerance) == expected


# ---------------------------------------------------------------- applied_gradient
def test_applied_gradient_clipnorm_is_per_variable_by_hand():
    first, second = applied_gradient(G, clipnorm=1.0)
    np.testing.assert_allclose(first, [[0.6, 0.8]], rtol=1e-6)  # norm 5 cut to 1
    np.testing.assert_allclose(second, [0.3, 0.4], rtol=1e-6)  # norm 0.5 left alone


def test_applied_gradient_global_clipnorm_and_clipvalue_by_hand():
    factor = 1.0 / math.sqrt(25.25)
    out = applied_gradient(G, global_clipnorm=1.0)
    np.testing.assert_allclose(flatten(out), np.array([3.0, 4.0, 0.3, 0.4]) * factor, rtol=1e-6)
    np.testing.assert_allclose(applied_gradient(tf.constant([3.0, -0.5, -2.0]), clipvalue=1.0), [1.0, -0.5, -1.0])


def test_applied_gradient_without_clipping_is_the_gradient_and_keeps_the_structure():
    out = applied_gradient(G)
    assert isinstance(out, list) and len(out) == 2 and out[0].shape == (1, 2)
    assert max_diff(out, G) == 0.0
    single = applied_gradient([3.0, 4.0], clipnorm=1.0)
    assert isinstance(single, np.ndarray) and single.dtype == np.float64
    np.testing.assert_allclose(single, [0.6, 0.8], rtol=1e-6)
    assert not np.signbit(applied_gradient(tf.constant([0.0]))).any()  # 0.0, not -0.0


def test_applied_gradient_divides_by_the_learning_rate():
    out = applied_gradient(G, keras.optimizers.SGD(0.1, clipnorm=1.0))
    assert max_diff(out, [[[0.6, 0.8]], [0.3, 0.4]]) < 1e-6


def test_applied_gradient_reads_a_scaled_optimizer_like_keras():
    ours = applied_gradient(G, gradlab.ScaledOptimizer(keras.optimizers.SGD(1.0), mode="norm", threshold=1.0))
    assert max_diff(ours, applied_gradient(G, clipnorm=1.0)) < 1e-7


def test_applied_gradient_adam_first_step_is_about_the_sign():
    out = applied_gradient([[3.0, -0.01]], keras.optimizers.Adam(0.01))
    np.testing.assert_allclose(out[0], [1.0, -1.0], atol=1e-3)  # epsilon 1e-7 against |g| 0.01


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, parts",
    [
        pytest.param(
            lambda: max_diff([1.0, 2.0], [1.0]),
            ("Arguments `a` and `b`", "same shapes", "Received: a of shape (2,), b of shape (1,)"),
            id="shape",
        ),
        pytest.param(
            lambda: max_diff(G, G[:1]),
            ("Arguments `a` and `b`", "same number of tensors", "Received: a with 2, b with 1"),
            id="count",
        ),
        pytest.param(lambda: max_diff([], []), ("Argument `a`", "at least one tensor", "Received: a=[]"), id="empty"),
        pytest.param(
            lambda: max_diff(G, [G[0], None]), ("Argument `b`", "tensors or arrays", "Received: b[1]=None"), id="none"
        ),
        pytest.param(
            lambda: distance("up", [1.0]), ("Argument `a`", "real numbers", "Received: a of type str"), id="string"
        ),
        pytest.param(
            lambda: cosine([True, False], [1.0, 0.0]),
            ("Argument `a`", "real numbers", "Received: a[0] of type bool"),
            id="bool",
        ),
        pytest.param(
            lambda: cosine({"w": 1.0}, [1.0]), ("Argument `a`", "real numbers", "Received: a of type dict"), id="dict"
        ),
        pytest.param(
            lambda: cosine([0.0, 0.0], [1.0, 2.0]),
            ("Argument `a`", "non-zero norm", "Received: a with all 2 entries 0"),
            id="zero",
        ),
        pytest.param(
            lambda: cosine([1.0, 2.0], tf.ones((1, 2))),
            ("Arguments `a` and `b`", "same shapes", "b of shape (1, 2)"),
            id="cosine-shape",
        ),
        pytest.param(
            lambda: diff_text("small"), ("Argument `difference`", "a number", "Received: difference='small'"), id="text"
        ),
        pytest.param(
            lambda: diff_text(0.1, tolerance=0),
            ("Argument `tolerance`", "(0, inf)", "Received: tolerance=0"),
            id="tolerance",
        ),
        pytest.param(
            lambda: applied_gradient(G, clip_norm=1.0),
            (
                "Unknown option `clip_norm`",
                "Expected one of: 'clipnorm', 'clipvalue', 'global_clipnorm'",
                "Received: clip_norm=1.0",
            ),
            id="option",
        ),
        pytest.param(
            lambda: applied_gradient(G, keras.optimizers.SGD(1.0), clipnorm=1.0),
            ("Arguments `optimizer` and the clipping options", "Received: optimizer=", "clipnorm=1.0"),
            id="both",
        ),
        pytest.param(
            lambda: applied_gradient(G, "sgd"),
            ("Argument `optimizer`", "a Keras optimizer", "Received: optimizer of type str"),
            id="not-an-optimizer",
        ),
        pytest.param(
            lambda: applied_gradient(G, keras.optimizers.SGD(0.0)),
            ("Argument `optimizer`", "non-zero learning rate", "Received: optimizer with learning_rate=0.0"),
            id="lr-zero",
        ),
        pytest.param(
            lambda: applied_gradient(G, ["x"]), ("Argument `optimizer`", "Received: optimizer of type list"), id="list"
        ),
        pytest.param(
            lambda: applied_gradient([G[0], "g"]),
            ("Argument `grads`", "real numbers", "Received: grads[1] of type str"),
            id="grads",
        ),
    ],
)
def test_bad_input_is_named(call, parts):
    with pytest.raises(ValueError, match=msg(*parts)):
        call()


def test_applied_gradient_refuses_a_used_optimizer():
    sgd = keras.optimizers.SGD(1.0)
    applied_gradient(G, sgd)
    with pytest.raises(ValueError, match=msg("Argument `optimizer`", "fresh optimizer", "already built")):
        applied_gradient(G, sgd)
