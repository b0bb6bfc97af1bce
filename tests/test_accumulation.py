"""Gradient accumulation: the mean gradient of k micro-batches is scaled once per update."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradlab
from gradlab import problems


@pytest.fixture
def problem():
    return problems.deep_mlp(depth=3, width=16, samples=256)


def ordered(p, batch):
    return tf.data.Dataset.from_tensor_slices((p.x, p.y)).batch(batch, drop_remainder=True)


@pytest.mark.parametrize("mode,threshold", [("global_norm", 0.3), ("norm", 0.1), ("value", 0.01), ("none", None)])
def test_k_micro_batches_equal_one_big_batch(problem, mode, threshold):
    """4 micro-batches of 8, accumulated, = one batch of 32: same updates and statistics."""
    acc = gradlab.Trainer(
        problem.model(), problem.loss, keras.optimizers.SGD(0.1), gradlab.Scaler(mode, threshold), accumulate=4
    )
    big = gradlab.Trainer(problem.model(), problem.loss, keras.optimizers.SGD(0.1), gradlab.Scaler(mode, threshold))
    h_acc = acc.fit(dataset=ordered(problem, 8), steps=6, progress=False)
    h_big = big.fit(dataset=ordered(problem, 32), steps=6, progress=False)
    assert len(h_acc) == len(h_big) == 6  # one row per real update
    np.testing.assert_allclose(h_acc.loss, h_big.loss, rtol=1e-5)
    np.testing.assert_allclose(h_acc.norm_before, h_big.norm_before, rtol=1e-5)
    np.testing.assert_allclose(h_acc.norm_after, h_big.norm_after, rtol=1e-5)
    for a, b in zip(acc.model.get_weights(), big.model.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_equal_to_keras_gradient_accumulation_with_the_same_clipping(problem):
    """Keras' gradient_accumulation_steps=4 with global_clipnorm, one device: same weights."""
    model = problem.model()
    model.compile(keras.optimizers.SGD(0.1, global_clipnorm=0.3, gradient_accumulation_steps=4), problem.loss)
    model.fit(problem.x, problem.y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 32 micro-batches
    t = gradlab.Trainer(
        problem.model(), problem.loss, keras.optimizers.SGD(0.1), gradlab.Scaler("global_norm", 0.3), accumulate=4
    )
    h = t.fit(dataset=ordered(problem, 8), steps=8, progress=False)
    assert h.clipped.all()  # the comparison is about clipping
    for a, b in zip(model.get_weights(), t.model.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_clipping_each_micro_batch_is_not_the_same(problem):
    """What goes wrong otherwise: clipping every micro-batch before averaging gives other weights."""
    acc = gradlab.Trainer(
        problem.model(), problem.loss, keras.optimizers.SGD(0.1), gradlab.Scaler("global_norm", 0.3), accumulate=4
    )
    acc.fit(dataset=ordered(problem, 8), steps=4, progress=False)
    model = problem.model()
    opt = keras.optimizers.SGD(0.1)
    total = None
    for i, (x, y) in enumerate(ordered(problem, 8).take(16)):
        with tf.GradientTape() as tape:
            loss = problem.loss(y, model(x, training=True))
        grads = gradlab.clip_by_global_norm(tape.gradient(loss, model.trainable_variables), 0.3)
        total = grads if total is None else [a + b for a, b in zip(total, grads)]
        if i % 4 == 3:
            opt.apply([g / 4 for g in total], model.trainable_variables)
            total = None
    diff = max(np.abs(a - b).max() for a, b in zip(model.get_weights(), acc.model.get_weights()))
    assert diff > 1e-4
