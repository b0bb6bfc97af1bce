"""The Trainer takes what model.fit takes (issue 22, items 8 and 9): dicts and tuples of arrays for a
model with several inputs, an optimizer's ``loss_scale_factor``; it refuses, in the one place
``ScaledOptimizer`` uses too, an optimizer with ``gradient_accumulation_steps``. The reference is
``model.fit`` with the same optimizer on the same batch."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import gradlab

RNG = np.random.default_rng(0)
X = {"a": RNG.normal(size=(8, 3)).astype("float32"), "b": RNG.normal(size=(8, 2)).astype("float32")}
Y = RNG.normal(size=(8, 1)).astype("float32")


def two_inputs(as_dict: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([keras.layers.Dense(4, activation="tanh")(a), b]))
    return keras.Model({"a": a, "b": b} if as_dict else [a, b], out)


def keras_fit(model, x, optimizer):
    model.compile(optimizer, "mse")
    model.fit(x, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model.get_weights()


def trainer_fit(model, x, optimizer):
    t = gradlab.Trainer(model, keras.losses.MeanSquaredError(), optimizer)
    history = t.fit(x, Y, steps=2, batch_size=8, shuffle=False, progress=False)
    assert len(history) == 2 and np.isfinite(history.loss).all()
    return model.get_weights()


@pytest.mark.parametrize(
    "as_dict, x",
    [
        pytest.param(True, X, id="dict"),
        pytest.param(False, (X["a"], X["b"]), id="tuple"),
        pytest.param(False, [X["a"], X["b"]], id="list"),
    ],
)
def test_trainer_takes_the_inputs_model_fit_takes(as_dict, x):
    expected = keras_fit(two_inputs(as_dict), x, keras.optimizers.SGD(0.1))
    got = trainer_fit(two_inputs(as_dict), x, keras.optimizers.SGD(0.1))
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_arrays_of_different_lengths_are_named():
    t = gradlab.Trainer(two_inputs(True), "mse", keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match=r"every array. Received: len\(x\['a'\]\)=8, len\(x\['b'\]\)=5, len\(y\)=8"):
        t.fit({"a": X["a"], "b": X["b"][:5]}, Y, steps=1, batch_size=4, progress=False)
    assert len(t.history) == 0


@pytest.mark.parametrize("factor", [None, 128.0, 3.0])
def test_loss_scale_factor_is_honoured_as_model_fit_honours_it(factor):
    """SGD(0.1, loss_scale_factor=128) moved the weight 0.00625 instead of 0.8: the Trainer never scaled
    the loss, and Keras' apply divided the gradients by the factor anyway."""

    def model():
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])

    x, y = np.ones((4, 1), "float32"), np.full((4, 1), 4.0, "float32")
    reference = model()
    reference.compile(keras.optimizers.SGD(0.1, loss_scale_factor=factor), "mse")
    reference.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    m = model()
    gradlab.Trainer(m, "mse", keras.optimizers.SGD(0.1, loss_scale_factor=factor)).fit(
        x, y, steps=1, batch_size=4, progress=False
    )
    np.testing.assert_allclose(reference.get_weights()[0], [[0.8]], rtol=1e-6)  # -lr * d/dw (w - 4)^2 at w = 0
    np.testing.assert_allclose(m.get_weights()[0], reference.get_weights()[0], rtol=1e-6)


@pytest.mark.parametrize(
    "build, name",
    [
        pytest.param(lambda opt: gradlab.Trainer(two_inputs(True), "mse", opt), "optimizer", id="Trainer"),
        pytest.param(lambda opt: gradlab.ScaledOptimizer(opt), "inner_optimizer", id="ScaledOptimizer"),
    ],
)
def test_one_place_refuses_an_optimizer_that_accumulates_or_clips(build, name):
    with pytest.raises(ValueError, match=rf"cannot wrap.*Received: {name}.gradient_accumulation_steps=2"):
        build(keras.optimizers.SGD(0.1, gradient_accumulation_steps=2))
    with pytest.raises(ValueError, match=rf"Only one clipping option.*Received: {name}.clipnorm=1.0"):
        build(keras.optimizers.SGD(0.1, clipnorm=1.0))
