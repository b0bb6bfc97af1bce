"""The lab on your own model (issue 10): Sequential, Functional and subclassed Keras models, numpy
arrays and tf.data, SGD and Adam; the optimizer control; validation data on the loss panel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gradlab.lab.lab import Lab


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int32")
    return x, y


def sequential():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)])


def functional():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(hidden), name="functional")


class Subclassed(keras.Model):
    def __init__(self, **kwargs):  # Keras' usual form: the clone passes its config back in
        super().__init__(**{"name": "subclassed", **kwargs})
        self.hidden = keras.layers.Dense(8, activation="tanh")
        self.out = keras.layers.Dense(2)

    def call(self, x):
        return self.out(self.hidden(x))


def subclassed():
    model = Subclassed()
    model(np.zeros((1, 6), "float32"))  # built
    return model


MODELS = {"sequential": sequential, "functional": functional, "subclassed": subclassed}
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.mark.parametrize(
    "kind, source, optimizer",
    [
        ("sequential", "numpy", "sgd"),
        ("functional", "tf.data", "adam"),
        ("subclassed", "numpy", "adam"),
        ("subclassed", "tf.data", "sgd"),
    ],
)
def test_lab_trains_your_model(kind, source, optimizer):
    keras.utils.set_random_seed(1)
    model = MODELS[kind]()
    start = [w.copy() for w in model.get_weights()]
    x, y = data()
    xv, yv = data(32, seed=1)
    if source == "numpy":
        args = dict(x=x, y=y, validation_data=(xv, yv))
    else:  # batches of (x, y), read once by the lab
        args = dict(
            x=tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
            validation_data=tf.data.Dataset.from_tensor_slices((xv, yv)).batch(8),
        )
    lab = Lab(model=model, loss=LOSS, optimizer=optimizer, mode="global_norm", threshold=0.5, steps=30, **args)
    # The run starts from a copy of your model with its weights; your model is never trained.
    assert lab.trainer.model is not model
    for a, b in zip(start, lab.trainer.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert lab.controls["problem"].value == model.name
    assert type(lab.optimizer).__name__ == {"sgd": "SGD", "adam": "Adam"}[optimizer]
    # No learning rate given: SGD keeps the lab's 0.5, Adam starts from its usual 0.001.
    assert lab.controls["learning_rate"].value == pytest.approx({"sgd": 0.5, "adam": 1e-3}[optimizer])
    lab.run(wait=True)
    h = lab.history
    assert len(h) == 30 and np.isfinite(h.loss).all()
    assert (h.norm_after <= 0.5 * (1 + 1e-5)).all()
    np.testing.assert_array_equal(h.val_step, [25])  # every 25 steps
    assert np.isfinite(h.val_loss).all() and 0 <= h.val_accuracy[0] <= 1
    val = lab.figure.widget.data[lab.figure._n_live - 1]
    assert val.name == "validation loss" and list(val.x) == [25] and val.showlegend
    lab.run(steps=25, wait=True)  # drawn again with the validation already there
    assert list(val.x) == [25, 50]
    lab.reset()  # and the next run starts without it
    assert len(val.x) == 0 and not val.showlegend
    for a, b in zip(start, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_model_builder_and_your_optimizer():
    x, y = data()
    lab = Lab(model=functional, x=x, y=y, loss=LOSS, optimizer=lambda: keras.optimizers.Adam(0.003))
    options = dict((v, k) for k, v in lab.controls["optimizer"].options)
    assert options["yours"] == "yours: Adam" and lab.controls["optimizer"].value == "yours"
    assert lab.controls["learning_rate"].value == pytest.approx(0.003)  # your optimizer's own
    lab.run(steps=10, wait=True)
    assert len(lab.history) == 10 and float(lab.optimizer.learning_rate.numpy()) == pytest.approx(0.003)


def test_optimizer_control_resets_the_run_and_the_threshold_still_does_not_retrace():
    x, y = data()
    keras.utils.set_random_seed(2)
    lab = Lab(model=sequential(), x=x, y=y, loss=LOSS, optimizer="sgd", learning_rate=0.1, chunk=5)
    lab.run(steps=20, wait=True)
    first_sgd_loss = lab.history.loss[0]
    sgd_trainer = lab.trainer
    lab.controls["optimizer"].value = "adam"
    assert len(lab.history) == 0  # the run starts again
    assert "starts again from step 0" in lab.status.value and "Adam" in lab.status.value
    assert type(lab.optimizer).__name__ == "Adam" and lab.trainer is not sgd_trainer
    assert lab.controls["learning_rate"].value == pytest.approx(1e-3)
    lab.run(steps=10, wait=True)
    assert lab.history.loss[0] == first_sgd_loss  # same initial weights, same first batch
    lab.controls["threshold"].value = 0.05
    lab.run(steps=10, wait=True)
    lab.controls["mode"].value = "norm"
    lab.run(steps=10, wait=True)
    h = lab.history
    assert len(h) == 30
    np.testing.assert_allclose(h.threshold[10:20], 0.05, rtol=1e-6)
    assert h.modes[20:] == ["norm"] * 10
    assert lab.trainer.tracing_count == 1  # slider and mode changes are variables: no retrace
    # Back to SGD: its learning rate comes back too.
    lab.controls["optimizer"].value = "sgd"
    assert lab.controls["learning_rate"].value == pytest.approx(0.1)
    assert float(lab.optimizer.learning_rate.numpy()) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(optimizer="adamm"), "Unknown optimizer 'adamm'. Expected one of: 'sgd', .* Received: optimizer='adamm'"),
        (dict(optimizer=3), "Argument `optimizer` must be one of 'sgd'.* Received: optimizer=3"),
        (dict(optimizer=lambda: "adam"), "Argument `optimizer` must return a new Keras optimizer.* returned str"),
        (dict(loss=None), "Argument `loss` is needed with `model=...`. Received: loss=None"),
        (dict(y=np.zeros(3)), "Arguments `x` and `y` must hold the same number of samples"),
        (dict(model=keras.Sequential([keras.layers.Dense(1)])), "Argument `model` must be built"),
    ],
    ids=["unknown-name", "number", "factory-returns-a-string", "no-loss", "short-y", "unbuilt"],
)
def test_bad_input_for_your_model(kwargs, message):
    x, y = data()
    args = dict(model=sequential(), x=x, y=y, loss=LOSS)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Lab(**args)


def test_data_without_a_model_is_refused():
    x, y = data()
    with pytest.raises(ValueError, match=r"Argument `x` is for your own model: pass it with `model=...`"):
        Lab(x=x, y=y)
    ds = tf.data.Dataset.from_tensor_slices(data()).repeat()
    with pytest.raises(ValueError, match="Argument `x` must be a finite dataset.*infinite cardinality"):
        Lab(model=sequential(), x=ds, loss=LOSS)
