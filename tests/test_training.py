"""The instrumented step records the real gradients, without retracing, on both paths."""

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import gradlab
from gradlab import _internals, problems


@pytest.fixture
def problem():
    return problems.deep_mlp(depth=3, width=16, samples=128)


def batches(p, batch_size=16):
    return tf.data.Dataset.from_tensor_slices((p.x, p.y)).batch(batch_size, drop_remainder=True)


def test_recorded_norms_are_those_of_the_trained_batch(problem):
    """Pre-clip norm = tf.linalg.global_norm of gradients computed apart, same batch and weights."""
    model = problem.model()
    ds = batches(problem)
    x, y = next(iter(ds))
    with tf.GradientTape() as tape:
        loss = problem.loss(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    trainer = gradlab.Trainer(model, problem.loss, keras.optimizers.SGD(0.1), gradlab.Scaler("global_norm", 0.5))
    h = trainer.fit(dataset=ds, steps=1, progress=False)
    np.testing.assert_allclose(h.norm_before[0], float(tf.linalg.global_norm(grads)), rtol=1e-6)
    np.testing.assert_allclose(h.loss[0], float(loss), rtol=1e-6)
    per_layer = [
        np.sqrt(
            sum(float(tf.reduce_sum(g**2)) for g, v in zip(grads, model.trainable_variables) if f"/{name}/" in v.path)
        )
        for name in h.layer_names
    ]
    np.testing.assert_allclose(h.layer_norm_before[0], per_layer, rtol=1e-5)


@pytest.mark.parametrize("mode,threshold", [("global_norm", 0.5), ("norm", 0.3), ("value", 0.01), ("zclip", 2.5)])
def test_statistics_are_consistent(problem, mode, threshold):
    """Post norms respect the bound; clip flags agree with the norms; layer squares add up."""
    trainer = gradlab.Trainer(
        problem.model(), problem.loss, keras.optimizers.SGD(0.05), gradlab.Scaler(mode, threshold)
    )
    h = trainer.fit(problem.x, problem.y, steps=30, batch_size=16, progress=False)
    assert len(h) == 30 and not h.skipped.any()
    np.testing.assert_allclose((h.layer_norm_before**2).sum(1), h.norm_before**2, rtol=1e-5)
    np.testing.assert_allclose((h.layer_norm_after**2).sum(1), h.norm_after**2, rtol=1e-5)
    if mode == "global_norm":
        assert (h.norm_after <= threshold * (1 + 1e-6)).all()
    if mode in ("global_norm", "zclip"):
        expect = h.norm_before > h.bound * (1 + 1e-6)
        np.testing.assert_array_equal(h.clipped.astype(bool), expect)
    assert (h.clipped.astype(bool) == ~np.isclose(h.norm_after, h.norm_before, rtol=1e-6)).all()
    np.testing.assert_allclose(h.threshold, threshold, rtol=1e-7)  # float32 variable
    assert set(h.modes) == {mode}
    assert (h.update_ratio > 0).all()


def test_fit_path_and_trainer_path_give_the_same_history(problem):
    """GradientStats in model.fit records what the Trainer records for the same run."""
    model = problem.model()
    model.compile(gradlab.ScaledOptimizer(keras.optimizers.SGD(0.05), "global_norm", 0.5), problem.loss)
    stats = gradlab.GradientStats()
    model.fit(problem.x, problem.y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[stats])

    trainer = gradlab.Trainer(
        problem.model(), problem.loss, keras.optimizers.SGD(0.05), gradlab.Scaler("global_norm", 0.5)
    )
    h = trainer.fit(dataset=batches(problem), steps=16, progress=False)
    fit_h = stats.history
    assert len(fit_h) == len(h) == 16
    for field in ("loss", "norm_before", "norm_after", "clipped", "threshold", "mode", "bound"):
        np.testing.assert_allclose(getattr(fit_h, field), getattr(h, field), rtol=1e-5, err_msg=field)
    np.testing.assert_allclose(fit_h.layer_norm_before, h.layer_norm_before, rtol=1e-5)
    np.testing.assert_allclose(fit_h.update_ratio, h.update_ratio, rtol=1e-4)
    assert fit_h.layer_names == h.layer_names == ["hidden_1", "hidden_2", "hidden_3", "output"]


def test_same_seed_same_history(problem):
    def run():
        gradlab.setup(seed=3)
        t = gradlab.Trainer(problem.model(), problem.loss, keras.optimizers.Adam(1e-2), gradlab.Scaler("autoclip", 10))
        return t.fit(problem.x, problem.y, steps=20, batch_size=16, seed=5, progress=False)

    a, b = run(), run()
    for field in ("loss", "norm_before", "norm_after", "bound"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_nonfinite_batch_is_skipped_and_training_goes_on(problem):
    """Under the skip policy a NaN batch leaves the weights finite and is recorded as skipped."""
    x = problem.x[:64].copy()
    x[16:32] = np.nan  # the second batch
    model = problem.model()
    trainer = gradlab.Trainer(model, problem.loss, keras.optimizers.Adam(1e-2), gradlab.Scaler("global_norm", 1.0))
    ds = tf.data.Dataset.from_tensor_slices((x, problem.y[:64])).batch(16)
    h = trainer.fit(dataset=ds, steps=8, progress=False)
    np.testing.assert_array_equal(h.skipped, [0, 1, 0, 0, 0, 1, 0, 0])
    assert np.isnan(h.norm_before[1]) and np.isnan(h.norm_after[1])
    assert (h.update_ratio[1] == 0).all()
    assert all(np.isfinite(v.numpy()).all() for v in model.trainable_variables)
    assert np.isfinite(h.loss[[0, 2, 3, 4, 6, 7]]).all()
    assert h.clipped[1] == 0


def test_changes_mid_run_never_retrace(problem):
    """100 changes of mode and threshold: the step is traced once; the record follows."""
    t = gradlab.Trainer(
        problem.model(), problem.loss, keras.optimizers.SGD(0.01), gradlab.Scaler("global_norm", 1.0, modes="all")
    )
    settings = [("value", 0.5), ("norm", 1.0), ("global_norm", 2.0), ("autoclip", 50.0), ("zclip", 2.0), ("agc", 0.05)]
    expected = []
    for i in range(100):
        mode, threshold = settings[i % len(settings)]
        t.scaler.set(mode=mode, threshold=threshold)
        t.fit(problem.x, problem.y, steps=1, batch_size=16, progress=False)
        expected.append((mode, threshold))
    assert t.tracing_count == 1
    assert t.history.modes == [m for m, _ in expected]
    np.testing.assert_allclose(t.history.threshold, [th for _, th in expected])


def test_several_steps_per_call_and_xla_match_one_step(problem):
    def run(**kw):
        t = gradlab.Trainer(
            problem.model(), problem.loss, keras.optimizers.SGD(0.05), gradlab.Scaler("norm", 0.2), **kw
        )
        return t, t.fit(dataset=batches(problem), steps=12, progress=False)

    _, base = run()
    t5, five = run(steps_per_call=5)
    _, xla = run(jit_compile=True)
    np.testing.assert_allclose(five.norm_before, base.norm_before, rtol=1e-6)
    np.testing.assert_allclose(xla.norm_before, base.norm_before, rtol=1e-4)
    np.testing.assert_allclose(xla.loss, base.loss, rtol=1e-4)
    assert t5.tracing_count == 1


def test_history_tables_and_tensorboard(problem, tmp_path):
    t = gradlab.Trainer(
        problem.model(), problem.loss, keras.optimizers.SGD(0.05), gradlab.Scaler("global_norm", 0.5), label="gn"
    )
    h = t.fit(problem.x, problem.y, steps=6, batch_size=16, progress=False, flush_every=4)
    steps, layers = h.to_pandas()
    assert list(steps["step"]) == list(range(6)) and (steps["run"] == "gn").all()
    assert steps["mode"].eq("global_norm").all() and steps["clipped"].dtype == bool
    assert len(layers) == 6 * len(h.layer_names)
    pd.testing.assert_series_equal(
        layers.groupby("step")["layer_norm_before"].apply(lambda s: np.sqrt((s**2).sum())).reset_index(drop=True),
        pd.Series(h.norm_before, name="layer_norm_before"),
        rtol=1e-5,
    )
    logdir = h.to_tensorboard(str(tmp_path / "tb"))
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert logdir and events and events[0].stat().st_size > 0


def test_compare_starts_from_identical_weights(problem):
    runs = gradlab.compare(
        problem, ["none", ("global_norm", 0.5)], steps=5, batch_size=16, optimizer=lambda: keras.optimizers.SGD(0.05)
    )
    assert [h.label for h in runs] == ["none", "global_norm=0.5"]
    # Same weights and same first batch: identical first loss and pre-clip norm.
    assert runs[0].loss[0] == runs[1].loss[0]
    assert runs[0].norm_before[0] == runs[1].norm_before[0]
    assert runs[1].norm_after[0] <= 0.5 * (1 + 1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(optimizer=keras.optimizers.SGD(0.1, clipnorm=1.0)), "Only one clipping option"),
        (dict(scaler="global_norm"), "must be a gradlab.Scaler"),
        (dict(steps_per_call=0), "steps_per_call"),
        (dict(capacity=0), "capacity"),
    ],
    ids=["optimizer-clips-too", "scaler-not-a-Scaler", "steps_per_call-0", "capacity-0"],
)
def test_trainer_rejects_bad_arguments(problem, kwargs, match):
    args = dict(optimizer=keras.optimizers.SGD(0.1)) | kwargs
    with pytest.raises(ValueError, match=match):
        gradlab.Trainer(problem.model(), problem.loss, **args)


def test_gradient_stats_needs_scaled_optimizer(problem):
    model = problem.model()
    model.compile(keras.optimizers.SGD(0.1), problem.loss)
    with pytest.raises(ValueError, match="ScaledOptimizer"):
        model.fit(problem.x, problem.y, epochs=1, verbose=0, callbacks=[gradlab.GradientStats()])


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_step_clips_unscaled_gradients(problem, mixed_float16):
    """Under mixed_float16 the Trainer unscales before clipping and records the loss scale."""
    lso = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.05))
    model16 = problem.model()
    t = gradlab.Trainer(model16, problem.loss, lso, gradlab.Scaler("global_norm", 0.5))
    h = t.fit(dataset=batches(problem), steps=6, progress=False)
    keras.mixed_precision.set_global_policy("float32")
    ref = gradlab.Trainer(problem.model(), problem.loss, keras.optimizers.SGD(0.05), gradlab.Scaler("global_norm", 0.5))
    h32 = ref.fit(dataset=batches(problem), steps=6, progress=False)
    np.testing.assert_array_equal(h.loss_scale, 2.0**15)
    np.testing.assert_allclose(h.norm_before, h32.norm_before, rtol=5e-3)  # float16 tolerance
    np.testing.assert_allclose(h.norm_after, 0.5, rtol=1e-5)
    assert not h.skipped.any()
    for a, b in zip(model16.get_weights(), ref.model.get_weights()):  # clipped updates, float16 tolerance
        np.testing.assert_allclose(a, b, atol=2e-3)


def test_mixed_precision_fit_path_matches_float32(problem, mixed_float16):
    """model.fit under mixed_float16 with ScaledOptimizer: float32 weights within float16 tolerance."""
    model16 = problem.model()
    model16.compile(gradlab.ScaledOptimizer(keras.optimizers.SGD(0.05), "global_norm", 0.5), problem.loss)
    model16.fit(problem.x, problem.y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    keras.mixed_precision.set_global_policy("float32")
    model32 = problem.model()
    model32.compile(gradlab.ScaledOptimizer(keras.optimizers.SGD(0.05), "global_norm", 0.5), problem.loss)
    model32.fit(problem.x, problem.y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert model16.layers[0].compute_dtype == "float16"
    for a, b in zip(model16.get_weights(), model32.get_weights()):
        np.testing.assert_allclose(a, b, atol=2e-3)


def test_mixed_precision_overflow_is_skipped_without_harm(problem, mixed_float16):
    """A loss scale too large overflows float16: steps skipped, scale halves, weights untouched."""
    model = problem.model()
    before = [v.numpy().copy() for v in model.trainable_variables]
    lso = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.05), initial_scale=2.0**40)
    t = gradlab.Trainer(model, problem.loss, lso, gradlab.Scaler("global_norm", 0.5))
    h = t.fit(dataset=batches(problem), steps=3, progress=False)
    assert h.skipped.all()
    np.testing.assert_array_equal(h.loss_scale, [2.0**40, 2.0**39, 2.0**38])
    for v, w in zip(model.trainable_variables, before):
        np.testing.assert_array_equal(v.numpy(), w)
    h = t.fit(dataset=batches(problem), steps=40, progress=False)
    assert not h.skipped[-5:].any() and np.isfinite(h.loss[-5:]).all()
    assert all(np.isfinite(v.numpy()).all() for v in model.trainable_variables)


def test_mixed_precision_fit_path_records_loss_scale_and_skips(problem, mixed_float16):
    """A RecordingLossScaleOptimizer compiled under mixed precision: every step recorded, the loss too."""
    model = problem.model()
    outer = gradlab.training.RecordingLossScaleOptimizer(
        gradlab.ScaledOptimizer(keras.optimizers.SGD(0.05), "global_norm", 0.5), initial_scale=2.0**40
    )
    model.compile(outer, problem.loss)
    stats = gradlab.GradientStats()
    model.fit(problem.x, problem.y, batch_size=16, epochs=4, shuffle=False, verbose=0, callbacks=[stats])
    h = stats.history
    assert len(h) == 32
    assert h.skipped[0] == 1 and h.loss_scale[0] == 2.0**40 and h.loss_scale[1] == 2.0**39
    ok = h.skipped == 0
    assert ok[-5:].all()
    assert np.isfinite(h.loss[ok]).all() and np.isnan(h.loss[~ok]).all()  # a skipped step's loss never reached gradlab
    np.testing.assert_allclose(h.norm_after[ok], np.minimum(h.norm_before[ok], 0.5), rtol=1e-5)
    # Nothing was replaced: the compiled optimizer trained and holds the loss scale reached.
    assert model.optimizer is outer
    scale = float(outer.dynamic_scale)
    assert scale == h.loss_scale[-1] and scale < 2.0**40
    model.fit(problem.x[:16], problem.y[:16], batch_size=16, epochs=1, verbose=0, callbacks=[stats])
    assert model.optimizer is outer and len(stats.history) == 33 and stats.history.loss_scale[-1] == scale


def test_reset_reproduces_the_run_without_retracing(problem):
    """reset() restores weights, Adam slots, ZClip state and data order: the same run again, one trace."""
    t = gradlab.Trainer(problem.model(), problem.loss, keras.optimizers.Adam(1e-2), gradlab.Scaler("zclip", 2.0))
    first = t.fit(problem.x, problem.y, steps=30, batch_size=16, progress=False)
    t.reset()
    assert len(t.history) == 0
    again = t.fit(problem.x, problem.y, steps=30, batch_size=16, progress=False)
    for field in ("loss", "norm_before", "norm_after", "bound", "update_ratio"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field), err_msg=field)
    assert t.tracing_count == 1


class RawWriteSGD(keras.optimizers.SGD):
    """Writes the weights with a raw op, not through the variable's methods."""

    def update_step(self, gradient, variable, learning_rate):
        tf.raw_ops.AssignSubVariableOp(
            resource=variable.handle, value=gradient * tf.cast(learning_rate, gradient.dtype)
        )


UPDATE_OPTIMIZERS = {  # the change is new - old however the optimizer writes
    "sgd": lambda: keras.optimizers.SGD(0.05),
    "nesterov": lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: keras.optimizers.Adam(1e-2),
    "adamw": lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.5),  # decay written apart
    "lion": lambda: keras.optimizers.Lion(1e-3),
    "ftrl": lambda: keras.optimizers.Ftrl(0.1),  # assigns new values
    "raw-op": lambda: RawWriteSGD(0.05),  # writes with a raw op
    "ema": lambda: keras.optimizers.SGD(0.05, use_ema=True, ema_overwrite_frequency=2),  # control flow
}


def host_update_ratios(model, before, layer_names):
    """Per layer ||w_after - w_before|| / ||w_before||, from the weights read on the host (float64)."""
    after = [v.numpy().astype(np.float64) for v in model.trainable_variables]
    out = []
    for name in layer_names:
        idx = [i for i, v in enumerate(model.trainable_variables) if f"/{name}/" in v.path]
        change = np.sqrt(sum(((after[i] - before[i]) ** 2).sum() for i in idx))
        out.append(change / np.sqrt(sum((before[i] ** 2).sum() for i in idx)))
    return out


@pytest.mark.parametrize("path", ["trainer", "model.fit"])
@pytest.mark.parametrize("name", list(UPDATE_OPTIMIZERS))
def test_recorded_update_ratio_is_the_change_of_the_weights(problem, name, path):
    """The update-to-weight ratio equals what the weights did, read on the host, for Keras' optimizers
    and for one that writes with a raw op."""
    make = UPDATE_OPTIMIZERS[name]
    if name == "ema" and path == "model.fit":
        pytest.skip("model.fit ends by writing the averages into the weights, after the last step")
    model = problem.model()
    x, y = problem.x[:16], problem.y[:16]
    if path == "trainer":
        runner = gradlab.Trainer(model, problem.loss, make(), gradlab.Scaler("global_norm", 0.5))
        step = lambda: runner.fit(x, y, steps=1, batch_size=16, shuffle=False, progress=False)  # noqa: E731
    else:
        runner = gradlab.ScaledOptimizer(make(), "global_norm", 0.5)
        model.compile(runner, problem.loss)
        stats = gradlab.GradientStats()
        step = lambda: model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[stats]) and stats.history  # noqa: E731
    for _ in range(4):
        before = [v.numpy().astype(np.float64) for v in model.trainable_variables]
        h = step()
        expected = host_update_ratios(model, before, h.layer_names)
        np.testing.assert_allclose(h.update_ratio[-1], expected, rtol=1e-4)
    assert min(expected) > 0


# Keras' model.fit refuses jit_compile=True (a warning, then no XLA) while op determinism is on,
# which setup() turns on. There is no public switch back: TensorFlow's own is private.
op_determinism = _internals.op_determinism


@pytest.mark.parametrize("path", ["trainer", "model.fit"])
@pytest.mark.parametrize(
    "mode, threshold",
    [("none", None), ("value", 0.01), ("norm", 0.3), ("global_norm", 0.5), ("normalize", 0.5),
     ("global_normalize", 0.5), ("agc", 0.01), ("autoclip", 50.0), ("zclip", 0.3)],
)  # fmt: skip
def test_every_mode_records_the_same_under_xla(problem, mode, threshold, path):
    """With jit_compile=True (one fused formula for every mode) the run and its record equal the
    run without XLA (a branch per mode)."""
    if path == "model.fit" and mode not in ("value", "norm", "agc"):  # the same code as the Trainer's
        pytest.skip("one clipping, one per-tensor and one per-unit mode are enough for this path")

    def run(jit):
        model = problem.model()
        scaler = gradlab.Scaler(mode, threshold, zclip_warmup=3)
        if path == "trainer":
            t = gradlab.Trainer(model, problem.loss, keras.optimizers.SGD(0.05), scaler, jit_compile=jit)
            h = t.fit(dataset=batches(problem), steps=8, progress=False)
        else:
            with op_determinism(False):  # else Keras refuses jit_compile=True and runs without XLA
                model.compile(
                    gradlab.ScaledOptimizer(keras.optimizers.SGD(0.05), scaler=scaler), problem.loss, jit_compile=jit
                )
                assert model.jit_compile is jit
                stats = gradlab.GradientStats()
                model.fit(problem.x, problem.y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
            h = stats.history
        return h, model.get_weights()

    (plain, w_plain), (xla, w_xla) = run(False), run(True)
    assert len(xla) == len(plain) == 8 and not xla.skipped.any()
    for field in ("loss", "norm_before", "norm_after", "bound", "clipped", "update_ratio", "layer_norm_after"):
        np.testing.assert_allclose(getattr(xla, field), getattr(plain, field), rtol=2e-4, atol=1e-7, err_msg=field)
    for a, b in zip(w_xla, w_plain):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    if mode in ("value", "norm", "global_norm", "agc", "autoclip"):  # the formula did scale (ZClip sees no
        assert plain.clipped.any()  # spike here; its factor is computed as AutoClip's)


@pytest.mark.parametrize("repeated", [False, True], ids=["finite", "repeated"])
def test_a_dataset_is_trained_in_order_across_calls_finite_or_already_repeated(problem, repeated):
    """8 batches a pass: 5 + 7 steps in two calls train the batches 0-4, then 5, 6, 7, 0, 1, 2, 3,
    as 12 steps in one call do, whether the dataset is finite (the Trainer repeats it) or
    already repeated (no second repeat)."""
    ds = batches(problem)
    if repeated:
        ds = ds.repeat()

    def trainer():
        return gradlab.Trainer(problem.model(), problem.loss, keras.optimizers.SGD(0.1), gradlab.Scaler("none"))

    split = trainer()
    losses = np.concatenate([split.fit(dataset=ds, steps=n, progress=False).loss for n in (5, 7)])
    whole = trainer().fit(dataset=batches(problem), steps=12, progress=False).loss
    np.testing.assert_allclose(losses, whole, rtol=1e-6)
    assert len(set(np.round(losses, 6))) == 12  # twelve different steps, not one batch again and again
