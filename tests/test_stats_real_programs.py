"""GradientStats on Keras programs written the way the keras-io examples write them (issue 22).

Every recorded norm is checked against an independent ``tf.GradientTape`` on the same
batch and weights; the rows are one per training step whatever ``steps_per_execution``;
a custom ``train_step`` can record its loss; a checkpoint restores the Scaler; mixed
precision keeps the optimizer the user compiled.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradlab
from gradlab.training.recording import layer_groups


# ---------------------------------------------------------------- references
def tape_gradients(model, loss_fn, x, y):
    """The gradient of ``loss_fn(y, model(x))`` by an independent tape; IndexedSlices merged (dense)."""
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
        if model.losses:
            loss = loss + tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_variables)
    return float(loss), [tf.convert_to_tensor(g).numpy().astype(np.float64) for g in grads]


def reference_norms(model, grads):
    """Global norm and per-layer norms (gradlab's layer grouping) of ``grads``."""
    names, one_hot = layer_groups(model.trainable_variables)
    squares = np.array([np.sum(g**2) for g in grads])
    return np.sqrt(squares.sum()), np.sqrt(squares @ one_hot), names


def check_one_step(model, loss, x, y, optimizer=None, rtol=1e-5, **fit):
    """One ``model.fit`` step with GradientStats against a tape on the same batch and weights.

    The tape runs first; every variable of the model (weights, BatchNorm statistics, the
    dropout seed generators' state) is then put back, so the fit step sees what the tape saw.
    """
    state = [v.numpy().copy() for v in model.variables]
    ref_loss, grads = tape_gradients(model, loss, x, y)
    for v, s in zip(model.variables, state):
        v.assign(s)
    opt = optimizer or gradlab.ScaledOptimizer(keras.optimizers.SGD(0.01), "global_norm", 1e6)
    model.compile(opt, loss, **fit)
    stats = gradlab.GradientStats()
    model.fit(
        x, y, batch_size=len(next(iter(tf.nest.flatten(x)))), epochs=1, shuffle=False, verbose=0, callbacks=[stats]
    )
    h = stats.history
    norm, layers, names = reference_norms(model, grads)
    assert len(h) == 1 and h.layer_names == names
    np.testing.assert_allclose(h.norm_before[0], norm, rtol=rtol)
    np.testing.assert_allclose(h.layer_norm_before[0], layers, rtol=rtol)
    np.testing.assert_allclose(h.loss[0], ref_loss, rtol=rtol)
    return h


# ---------------------------------------------------------------- item 4: one row per step
def tiny_regression(n):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = rng.normal(size=(n, 1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    return model, x, y


@pytest.mark.parametrize(
    "steps, spe, capacity",
    [(1040, 4, 1024), (30, 4, 6), (21, 4, 3), (25, 1, 4)],
    ids=["1040_steps_spe4", "capacity_not_a_multiple", "capacity_below_spe", "spe1_small_capacity"],
)
def test_one_row_per_step_whatever_steps_per_execution(steps, spe, capacity):
    """Rows are training steps, in order: with lr 0 each row's loss is its sample's loss (mse of Dense(1))."""
    model, x, y = tiny_regression(steps)
    model.compile(gradlab.ScaledOptimizer(keras.optimizers.SGD(0.0)), "mse", steps_per_execution=spe)
    stats = gradlab.GradientStats(capacity=capacity)
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
    kernel, bias = (v.numpy() for v in model.trainable_variables)
    err = x @ kernel + bias - y  # (steps, 1)
    expected_norm = np.sqrt((2 * err[:, 0]) ** 2 * (1 + (x**2).sum(1)))  # d/dw (err^2) = 2 err [x, 1]
    h = stats.history
    assert len(h) == steps
    np.testing.assert_allclose(h.loss, err[:, 0] ** 2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(h.norm_before, expected_norm, rtol=1e-5, atol=1e-6)


def test_a_lost_row_is_an_error_not_a_silent_drop():
    """A recorder written past its capacity (no callback draining it) says so when read."""
    variables = [tf.Variable([1.0, 2.0])]
    opt = gradlab.ScaledOptimizer(keras.optimizers.SGD(0.1))
    recorder = opt.start_recording(variables, capacity=2)
    for _ in range(3):
        opt.apply([tf.constant([1.0, 1.0])], variables)
    with pytest.raises(RuntimeError, match="3 steps.*capacity of 2"):
        recorder.flush()


class StopAt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 5:
            raise KeyboardInterrupt  # Keras calls no on_train_end then


def test_rows_of_an_interrupted_fit_stay_with_its_callback():
    """Steps trained before an interrupt join the same callback's next fit; a new callback starts empty."""
    model, x, y = tiny_regression(40)
    model.compile(gradlab.ScaledOptimizer(keras.optimizers.SGD(0.01)), "mse")
    stats = gradlab.GradientStats()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[stats, StopAt()])
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[stats])
    assert len(stats.history) == int(model.optimizer.iterations) == 16
    fresh = gradlab.GradientStats()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[stats, StopAt()])
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[fresh])
    assert len(fresh.history) == 10


# ---------------------------------------------------------------- item 5: embeddings
class TokenAndPositionEmbedding(keras.layers.Layer):
    """keras-io text_classification_with_transformer, as written there (no get_config)."""

    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = keras.layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = keras.layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = keras.ops.shape(x)[-1]
        positions = keras.ops.arange(start=0, stop=maxlen, step=1)
        return self.token_emb(x) + self.pos_emb(positions)


class TransformerBlock(keras.layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([keras.layers.Dense(ff_dim, activation="relu"), keras.layers.Dense(embed_dim)])
        self.layernorm1 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = keras.layers.Dropout(rate)
        self.dropout2 = keras.layers.Dropout(rate)

    def call(self, inputs, training=False):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output, training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output, training=training)
        return self.layernorm2(out1 + ffn_output)


def transformer_classifier(vocab=12, maxlen=8, rate=0.1):
    keras.utils.set_random_seed(3)
    inputs = keras.layers.Input(shape=(maxlen,))
    x = TokenAndPositionEmbedding(maxlen, vocab, 8)(inputs)
    x = TransformerBlock(8, 2, 16, rate)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dropout(rate)(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def token_batch(vocab=12, maxlen=8, n=6):
    rng = np.random.default_rng(1)
    x = rng.integers(0, vocab, size=(n, maxlen)).astype(np.int32)  # 48 tokens from 12 ids: ids repeat
    y = rng.integers(0, 2, size=(n,)).astype(np.int32)
    return x, y


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_embedding_norms_are_the_gradients_norms(jit):
    """The token embedding's gradient has repeated ids: the recorded norms are those of the summed rows.

    Under XLA the dropout masks come from another random kernel than the tape's: Dropout(0) there.
    """
    model = transformer_classifier(rate=0.0 if jit else 0.1)
    x, y = token_batch()
    h = check_one_step(model, keras.losses.SparseCategoricalCrossentropy(), x, y, jit_compile=jit)
    assert any(name.startswith("token_and_position_embedding") for name in h.layer_names)


@pytest.mark.parametrize("mode", ["global_norm", "norm", "value"])
def test_embedding_clipping_keeps_keras_semantics(mode):
    """Clipping the embedding's IndexedSlices still equals Keras' own argument (unmerged rows)."""
    x, y = token_batch()
    arg = {"global_norm": "global_clipnorm", "norm": "clipnorm", "value": "clipvalue"}[mode]
    weights = []
    for opt in (
        gradlab.ScaledOptimizer(keras.optimizers.SGD(0.5), mode, 0.05),
        keras.optimizers.SGD(0.5, **{arg: 0.05}),
    ):
        model = transformer_classifier(rate=0.0)
        model.compile(opt, "sparse_categorical_crossentropy", jit_compile=False)
        model.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- real programs: BN + dropout, dict inputs
def bn_dropout_cnn():
    """keras-io mnist_convnet shrunk, with BatchNormalization."""
    keras.utils.set_random_seed(4)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def test_bn_dropout_cnn_norms_equal_a_tape():
    """Same batch, weights, BatchNorm statistics and dropout seed state: same gradient (jit off: same RNG kernel)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=(8,)).astype(np.int32)
    check_one_step(bn_dropout_cnn(), keras.losses.SparseCategoricalCrossentropy(), x, y, jit_compile=False)


def dict_model():
    """Two named inputs, two outputs, two losses (keras-io functional API guide, shrunk)."""
    keras.utils.set_random_seed(5)
    title = keras.Input((4,), name="title")
    body = keras.Input((6,), name="body")
    h = keras.layers.concatenate([keras.layers.Dense(5, name="t")(title), keras.layers.Dense(5, name="b")(body)])
    h = keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-2), name="mix")(h)
    priority = keras.layers.Dense(1, name="priority")(h)
    department = keras.layers.Dense(3, name="department")(h)
    return keras.Model({"title": title, "body": body}, {"priority": priority, "department": department})


def test_multi_input_dict_model_norms_equal_a_tape():
    rng = np.random.default_rng(3)
    x = {"title": rng.normal(size=(5, 4)).astype(np.float32), "body": rng.normal(size=(5, 6)).astype(np.float32)}
    y = {"priority": rng.normal(size=(5, 1)).astype(np.float32), "department": rng.integers(0, 3, size=(5,))}
    mse = keras.losses.MeanSquaredError()
    cce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def loss(y_true, y_pred):  # what compile's two losses, weights 1 and 0.5, add up to
        return mse(y_true["priority"], y_pred["priority"]) + 0.5 * cce(y_true["department"], y_pred["department"])

    model = dict_model()
    state = [v.numpy().copy() for v in model.variables]
    ref_loss, grads = tape_gradients(model, loss, x, y)
    for v, s in zip(model.variables, state):
        v.assign(s)
    model.compile(
        gradlab.ScaledOptimizer(keras.optimizers.SGD(0.01), "global_norm", 1e6),
        loss={"priority": mse, "department": cce},
        loss_weights={"priority": 1.0, "department": 0.5},
    )
    stats = gradlab.GradientStats()
    model.fit(x, y, batch_size=5, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
    norm, layers, names = reference_norms(model, grads)
    h = stats.history
    assert h.layer_names == names and len(h) == 1
    np.testing.assert_allclose(h.norm_before[0], norm, rtol=1e-5)
    np.testing.assert_allclose(h.layer_norm_before[0], layers, rtol=1e-5)
    np.testing.assert_allclose(h.loss[0], ref_loss, rtol=1e-5)


# ---------------------------------------------------------------- item 6: a custom train_step
class Sampling(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(shape=keras.ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + keras.ops.exp(0.5 * z_log_var) * epsilon


class VAE(keras.Model):
    """keras-io variational_autoencoder: its own train_step, calling self.optimizer.apply_gradients."""

    def __init__(self, encoder, decoder, record_loss=False, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, self.record_loss = encoder, decoder, record_loss
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = keras.ops.mean(
                keras.ops.sum(keras.losses.binary_crossentropy(data, reconstruction), axis=1)
            )
            kl_loss = -0.5 * (1 + z_log_var - keras.ops.square(z_mean) - keras.ops.exp(z_log_var))
            kl_loss = keras.ops.mean(keras.ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        if self.record_loss:
            self.optimizer.record_loss(total_loss)  # the one line gradlab asks a custom train_step for
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        return {"loss": self.total_loss_tracker.result()}


def vae(record_loss):
    keras.utils.set_random_seed(6)
    inputs = keras.Input((6, 6))
    h = keras.layers.Dense(4, activation="relu")(keras.layers.Flatten()(inputs))
    z_mean, z_log_var = keras.layers.Dense(2)(h), keras.layers.Dense(2)(h)
    encoder = keras.Model(inputs, [z_mean, z_log_var, Sampling()([z_mean, z_log_var])])
    latent = keras.Input((2,))
    decoder = keras.Model(latent, keras.layers.Reshape((6, 6))(keras.layers.Dense(36, activation="sigmoid")(latent)))
    return VAE(encoder, decoder, record_loss)


def vae_data():
    return np.random.default_rng(7).uniform(size=(12, 6, 6)).astype(np.float32)


@pytest.mark.parametrize("spe", [1, 2])
def test_custom_train_step_records_its_loss(spe):
    """With one line, ``self.optimizer.record_loss(total_loss)``, every row holds its step's loss.

    Reference: Keras' own tracker, a mean over the epoch's steps (one step per epoch here).
    """
    model = vae(record_loss=True)
    model.compile(gradlab.ScaledOptimizer(keras.optimizers.Adam(1e-3)), steps_per_execution=spe)
    stats = gradlab.GradientStats()
    fit = model.fit(vae_data(), epochs=3, batch_size=4, shuffle=False, verbose=0, callbacks=[stats])
    h = stats.history
    assert len(h) == 9 and np.isfinite(h.loss).all()
    np.testing.assert_allclose(h.loss.reshape(3, 3).mean(1), fit.history["loss"], rtol=1e-5)


def test_custom_train_step_without_the_loss_says_how_to_record_it():
    """The keras-io VAE as written: the loss column is NaN, and GradientStats says how to fill it."""
    model = vae(record_loss=False)
    model.compile(gradlab.ScaledOptimizer(keras.optimizers.Adam(1e-3)))
    stats = gradlab.GradientStats()
    with pytest.warns(UserWarning, match=r"record_loss\(loss\)"):
        model.fit(vae_data(), epochs=1, batch_size=4, verbose=0, callbacks=[stats])
    assert len(stats.history) == 3 and np.isnan(stats.history.loss).all()
    assert np.isfinite(stats.history.norm_before).all()


# ---------------------------------------------------------------- item 7: tf.train.Checkpoint
def test_checkpoint_restores_threshold_and_adaptive_state(tmp_path):
    """tf.train.Checkpoint(model, optimizer) restores the threshold in force and every adaptive mode's state."""
    model, x, y = tiny_regression(24)

    def optimizer():
        return gradlab.ScaledOptimizer(keras.optimizers.Adam(0.01), "zclip", 2.0, modes="all", zclip_warmup=3)

    opt = optimizer()
    model.compile(opt, "mse")
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    opt.scaler.set(mode="adagc", threshold=1.5)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    opt.scaler.set(mode="autoclip", threshold=30.0)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    saved = [v.numpy().copy() for v in opt.scaler.variables]
    assert int(opt.scaler.zclip.count) == 6 and int(opt.scaler.adagc.step) == 6
    path = tf.train.Checkpoint(model=model, optimizer=opt).write(str(tmp_path / "ckpt"))

    for built_first in (True, False):  # restored into a built optimizer, or one built after the restore
        model2, _, _ = tiny_regression(24)
        opt2 = optimizer()
        model2.compile(opt2, "mse")
        if built_first:
            opt2.build(model2.trainable_variables)
        tf.train.Checkpoint(model=model2, optimizer=opt2).read(path).assert_existing_objects_matched()
        if not built_first:
            opt2.build(model2.trainable_variables)
        assert opt2.scaler.mode_name == "autoclip" and float(opt2.scaler.threshold) == 30.0
        restored = opt2.scaler.variables
        assert len(restored) == len(saved)
        for v, value in zip(restored, saved):
            np.testing.assert_array_equal(v.numpy(), value, err_msg=v.name)
        assert int(opt2.iterations) == int(opt.iterations)


def test_keras_saving_still_round_trips(tmp_path):
    """The Scaler being a tf.Module changes nothing for .keras and .weights.h5."""
    model, x, y = tiny_regression(16)
    opt = gradlab.ScaledOptimizer(keras.optimizers.Adam(0.01), "zclip", 2.0, zclip_warmup=2)
    model.compile(opt, "mse")
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    for a, b in zip(loaded.optimizer.scaler.variables, opt.scaler.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    model.save_weights(tmp_path / "m.weights.h5")
    other, _, _ = tiny_regression(16)
    other.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- item 10: mixed precision, no swap
@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("explicit", [True, False], ids=["user_lso", "compile_made_lso"])
def test_mixed_precision_keeps_the_compiled_optimizer(mixed_float16, explicit):
    """GradientStats swaps nothing: the LossScaleOptimizer compiled trains and holds the loss scale.

    The steps it skips still have their rows, with the loss scale in force.
    """
    model, x, y = tiny_regression(48)  # a loss scale of 2**20 overflows float16 on the first steps
    scaled = gradlab.ScaledOptimizer(keras.optimizers.SGD(0.01), "global_norm", 0.5)
    if explicit:
        model.compile(keras.optimizers.LossScaleOptimizer(scaled, initial_scale=2.0**20), "mse")
    else:
        model.compile(scaled, "mse")
        model.optimizer.initial_scale = 2.0**20
    compiled = model.optimizer
    assert isinstance(compiled, keras.optimizers.LossScaleOptimizer)
    stats = gradlab.GradientStats()
    with pytest.warns(UserWarning, match="RecordingLossScaleOptimizer"):  # Keras' own keeps the loss to itself
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[stats])
    assert model.optimizer is compiled and compiled.inner_optimizer is scaled
    h = stats.history
    assert len(h) == 24
    skipped = h.skipped.astype(bool)
    assert skipped[0] and not skipped[-5:].any()
    assert int(scaled.iterations) == int((~skipped).sum())  # the user's optimizer trained the finite steps
    # the loss scale of each row is the one in force: halved after each skip, as Keras' own rule
    expected = [2.0**20]
    for s in skipped[:-1]:
        expected.append(expected[-1] / 2 if s else expected[-1])
    np.testing.assert_array_equal(h.loss_scale, expected)
    assert float(compiled.dynamic_scale) == expected[-1]
    np.testing.assert_allclose(h.norm_after[~skipped], np.minimum(h.norm_before[~skipped], 0.5), rtol=1e-4)


def test_recording_loss_scale_optimizer_records_the_loss(mixed_float16):
    """gradlab's subclass of Keras' LossScaleOptimizer shows the loss to the recorder: the finite steps' losses."""
    model, x, y = tiny_regression(16)
    model.compile(
        gradlab.training.RecordingLossScaleOptimizer(
            gradlab.ScaledOptimizer(keras.optimizers.SGD(0.0)), initial_scale=2.0
        ),
        "mse",
    )
    stats = gradlab.GradientStats()
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
    kernel, bias = (v.numpy().astype(np.float32) for v in model.trainable_variables)
    h = stats.history
    assert len(h) == 16 and not h.skipped.any()
    np.testing.assert_allclose(h.loss, ((x @ kernel + bias - y) ** 2)[:, 0], rtol=2e-2)  # float16 forward pass


class ScaleInForce(keras.callbacks.Callback):
    """Keras' own record, one step per call: the loss scale in force and whether the step was applied."""

    def on_train_begin(self, logs=None):
        self.scales, self.applied = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.before = int(self.model.optimizer.inner_optimizer.iterations)
        self.scales.append(float(self.model.optimizer.dynamic_scale))

    def on_train_batch_end(self, batch, logs=None):
        self.applied.append(int(self.model.optimizer.inner_optimizer.iterations) > self.before)


@pytest.mark.parametrize("spe", [1, 4])
def test_rebuilt_skipped_rows_follow_keras_loss_scale_step_by_step(mixed_float16, spe):
    """Skips, halvings and growths (every 3 good steps): the rows equal what Keras' optimizer did, step by step."""
    x = np.random.default_rng(8).normal(size=(40, 2)).astype(np.float32)
    x[[5, 6, 17, 30]] *= 300.0  # a few batches whose scaled gradients overflow float16
    y = np.zeros((40, 1), np.float32)
    runs = []
    for callback in (ScaleInForce(), gradlab.GradientStats(capacity=5)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        outer = keras.optimizers.LossScaleOptimizer(
            gradlab.ScaledOptimizer(keras.optimizers.SGD(0.0)), initial_scale=2.0**12, dynamic_growth_steps=3
        )
        model.compile(outer, "mse", steps_per_execution=1 if isinstance(callback, ScaleInForce) else spe)
        outer.build(model.trainable_variables)  # its loss scale readable before the first step
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras' own LossScaleOptimizer keeps the loss: GradientStats warns
            model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
        runs.append(callback)
    truth, h = runs
    steps = np.diff(np.log2(truth.scales))
    assert not all(truth.applied) and steps.min() == -1 and steps.max() == 1  # skips and growths both happened
    np.testing.assert_array_equal(h.history.loss_scale, truth.scales)
    np.testing.assert_array_equal(h.history.skipped, 1.0 - np.array(truth.applied, np.float64))
