"""Skip the step on a spike (``Scaler(skip_spikes=...)``), checked against OLMo-core's rule.

The reference is allenai/OLMo-core, ``src/olmo_core/optim/skip_step_optimizer.py``
(``SkipStepOptimizer``, read at commit fa6c501), ported to numpy below from its
code: a list of the last ``rolling_interval_length + 1`` values (the newest
included), no decision before ``max(2, rolling_interval_length // 2)`` values,
then the step goes ahead when ``latest - mean <= sigma_factor * std`` over the
values before it, with ``torch.std_mean``'s unbiased standard deviation, for the
loss and (when set) the gradient norm.
"""

import importlib
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradlab
from gradlab.training.history import History


class OlmoSkipStep:
    """numpy port of OLMo-core's ``SkipStepOptimizer`` step-skipping logic (not its optimizer)."""

    def __init__(self, rolling_interval_length=128, sigma_factor=6):
        self.rolling_interval_length = rolling_interval_length
        self.sigma_factor = sigma_factor
        self._losses = []
        self._grad_norms = []

    def set_latest_loss(self, loss):  # the `latest_loss` setter
        self._losses.append(np.float64(loss))
        while len(self._losses) > self.rolling_interval_length + 1:
            self._losses.pop(0)

    def set_latest_grad_norm(self, grad_norm):  # the `latest_grad_norm` setter
        self._grad_norms.append(np.float64(grad_norm))
        while len(self._grad_norms) > self.rolling_interval_length + 1:
            self._grad_norms.pop(0)

    @staticmethod
    def _std_mean(values):  # torch.std_mean: unbiased std (NaN for one value), mean
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.std(values, ddof=1), np.mean(values)

    def get_step_factor(self) -> float:
        if len(self._losses) < max(2, self.rolling_interval_length // 2):
            return 1.0
        loss_std, loss_mean = self._std_mean(self._losses[:-1])
        ok = (self._losses[-1] - loss_mean) <= self.sigma_factor * loss_std
        if self._grad_norms:
            grad_norm_std, grad_norm_mean = self._std_mean(self._grad_norms[:-1])
            ok = ok and (self._grad_norms[-1] - grad_norm_mean) <= self.sigma_factor * grad_norm_std
        return float(ok)


def olmo_skips(losses, window, sigma, norms=None):
    """OLMo-core's decision (skipped or not) at each step, fed ``losses`` (and ``norms``)."""
    ref, out = OlmoSkipStep(window, sigma), []
    for i, loss in enumerate(losses):
        ref.set_latest_loss(loss)
        if norms is not None:
            ref.set_latest_grad_norm(norms[i])
        out.append(ref.get_step_factor() == 0.0)
    return out


def gradlab_skips(values, window, sigma, losses=None, watch="norm"):
    """gradlab's decisions on a sequence of global norms, through a Scaler in a compiled step."""
    scaler = gradlab.Scaler("none", skip_spikes={"sigma": sigma, "window": window, "watch": watch})

    @tf.function
    def step(norm, loss):
        return scaler.plan([tf.reshape(norm, [1])], loss=loss).info.spike

    losses = np.full(len(values), np.nan) if losses is None else losses
    out = [bool(step(tf.constant(v, tf.float32), tf.constant(loss, tf.float32))) for v, loss in zip(values, losses)]
    assert step.experimental_get_tracing_count() == 1
    return out


def spiky(n=160, seed=0, spikes=(40, 41, 90, 130), factor=20.0):
    """Noisy positive values (float32-exact) with spikes ``factor`` times the usual size."""
    rng = np.random.default_rng(seed)
    v = rng.lognormal(0.0, 0.2, n)
    v[list(spikes)] *= factor
    return v.astype(np.float32).astype(np.float64)


def test_hand_checked_first_values():
    # window 6: no decision before max(2, 6 // 2) = 3 values. Step 2: earlier [1, 3], mean 2,
    # std 1.414, 2 - 2 = 0 is no spike. Step 3: earlier [1, 3, 2], mean 2, std 1: 10 - 2 = 8 > 2 * 1.
    # Step 4: earlier [1, 3, 2, 10] (the skipped 10 is in the window), mean 4: 2 is below it.
    values = [1.0, 3.0, 2.0, 10.0, 2.0]
    expected = [False, False, False, True, False]
    assert olmo_skips(values, window=6, sigma=2) == expected
    assert gradlab_skips(values, window=6, sigma=2) == expected


@pytest.mark.parametrize("window, sigma", [(6, 2.0), (16, 3.0), (16, 6.0), (32, 2.5), (128, 6.0)])
def test_same_decisions_as_olmo_core_on_the_norm(window, sigma):
    values = spiky(seed=window)
    ours, theirs = gradlab_skips(values, window, sigma), olmo_skips(values, window, sigma)
    assert ours == theirs
    # The sequence has spikes the rule finds (and the spike at 41 right after the one at 40 is
    # hidden by it, in both: the skipped value enters the window).
    assert any(theirs) and theirs[90]


@pytest.mark.parametrize("window, sigma", [(8, 3.0), (24, 4.0)])
def test_same_decisions_as_olmo_core_on_loss_and_norm(window, sigma):
    norms = spiky(seed=1, spikes=(30, 100))
    losses = spiky(seed=2, spikes=(60, 101), factor=10.0)
    ours = gradlab_skips(norms, window, sigma, losses=losses, watch="both")
    theirs = olmo_skips(losses, window, sigma, norms=norms)
    assert ours == theirs and theirs[30] and theirs[60]


def test_one_earlier_value_decides_nothing_where_olmo_core_skips():
    # Documented difference: window 4 decides from 2 values on, that is with one earlier value,
    # whose standard deviation torch leaves NaN: OLMo-core then skips; gradlab does not.
    values = [1.0, 1.2, 1.1, 1.0]
    assert olmo_skips(values, window=4, sigma=6) == [False, True, False, False]
    assert gradlab_skips(values, window=4, sigma=6) == [False, False, False, False]


def test_nonfinite_step_enters_no_window():
    rule = gradlab.scaler.SkipSpikes(sigma=3.0, window=8)
    for v in [1.0, 1.1, 0.9, 1.0]:
        rule.check(tf.constant(v))
    assert not bool(rule.check(tf.constant(float("inf")), finite=False))
    assert not bool(rule.check(tf.constant(5.0), finite=False))  # a non-finite step decides nothing
    assert int(rule.norms.count.numpy()) == 4
    assert bool(rule.check(tf.constant(50.0)))


# ---------------------------------------------------------------- training runs
def spike_data(n_batches=16, batch=8, spike_at=12, seed=0):
    """Linear-regression batches in order; batch ``spike_at`` has its inputs scaled by 1e3."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_batches * batch, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32))[:, None]
    x[spike_at * batch : (spike_at + 1) * batch] *= 1e3
    return x, y


def small_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    return model


def weights(model):
    return [v.numpy().copy() for v in model.weights]


def test_trainer_skips_the_injected_spike():
    x, y = spike_data()
    model = small_model()
    scaler = gradlab.Scaler("global_norm", 1.0, skip_spikes={"sigma": 6.0, "window": 16})
    trainer = gradlab.Trainer(model, "mse", keras.optimizers.Adam(0.01), scaler)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    trainer.fit(dataset=ds, steps=12, progress=False)
    before, slots, iterations = weights(model), [v.numpy().copy() for v in trainer.optimizer.variables], None
    iterations = int(trainer.optimizer.iterations.numpy())
    h = trainer.fit(dataset=ds, steps=1, progress=False)  # batch 12: inputs x 1e3
    for a, b in zip(before, weights(model)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(slots, trainer.optimizer.variables):  # Adam's moments and its step count too
        np.testing.assert_array_equal(a, b.numpy())
    assert int(trainer.optimizer.iterations.numpy()) == iterations  # a skipped step is not counted
    assert h.skipped.tolist() == [1.0] and h.spiked.tolist() == [True]
    assert np.isfinite(h.norm_before[0]) and np.isnan(h.norm_after[0])
    after = trainer.fit(dataset=ds, steps=3, progress=False)  # training goes on
    assert not after.skipped.any() and int(trainer.optimizer.iterations.numpy()) == iterations + 3
    full = trainer.history
    assert full.spiked.tolist() == [False] * 12 + [True] + [False] * 3
    assert (full.skipped > 0).tolist() == full.spiked.tolist()  # no non-finite step among them


def test_no_retrace_when_sigma_changes_and_reset_restores_the_window():
    x, y = spike_data()
    scaler = gradlab.Scaler("none", skip_spikes={"sigma": 1e9, "window": 16})
    trainer = gradlab.Trainer(small_model(), "mse", keras.optimizers.SGD(1e-3), scaler)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    h = trainer.fit(dataset=ds, steps=16, progress=False)
    assert not h.skipped.any()  # sigma 1e9: nothing is a spike
    trainer.reset()
    assert int(scaler.spikes.norms.count.numpy()) == 0  # the window is state: reset() empties it
    scaler.spikes.set(sigma=6.0)
    h = trainer.fit(dataset=tf.data.Dataset.from_tensor_slices((x, y)).batch(8), steps=16, progress=False)
    assert np.flatnonzero(h.spiked).tolist() == [12]
    assert trainer.tracing_count == 1


def test_loss_scale_is_kept_on_a_spike():
    x, y = spike_data()
    lso = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1e-3), initial_scale=2.0**10)
    scaler = gradlab.Scaler("none", skip_spikes={"sigma": 6.0, "window": 16})
    trainer = gradlab.Trainer(small_model(), "mse", lso, scaler)
    h = trainer.fit(dataset=tf.data.Dataset.from_tensor_slices((x, y)).batch(8), steps=14, progress=False)
    assert np.flatnonzero(h.spiked).tolist() == [12]
    assert (h.loss_scale == 2.0**10).all()  # a non-finite skip would halve it


class WeightsPerBatch(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seen = [weights(self.model)]

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(weights(self.model))


@pytest.mark.parametrize("watch", ["norm", "loss"])
def test_model_fit_skips_the_injected_spike(watch):
    # Inside model.fit the ScaledOptimizer knows the loss (Keras hands it to scale_loss):
    # watch="loss" finds the spike too.
    x, y = spike_data()
    model = small_model()
    opt = gradlab.ScaledOptimizer(
        keras.optimizers.Adam(0.01), "global_norm", 1.0, skip_spikes={"sigma": 6.0, "window": 16, "watch": watch}
    )
    model.compile(optimizer=opt, loss="mse")
    stats, seen = gradlab.GradientStats(), WeightsPerBatch()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[stats, seen])
    for a, b in zip(seen.seen[12], seen.seen[13]):  # the weights before batch 12 and after it
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(seen.seen[13][0], seen.seen[14][0])  # the next batch trains
    assert np.flatnonzero(stats.history.spiked).tolist() == [12]
    assert int(opt.skipped_steps.numpy()) == 1 and int(opt.iterations.numpy()) == 15


def test_direct_apply_has_no_loss_to_watch():
    opt = gradlab.ScaledOptimizer(keras.optimizers.SGD(0.1), "none", skip_spikes={"window": 4, "watch": "loss"})
    w = keras.Variable([0.0])
    for g in [1.0, 1.1, 0.9, 1e6]:
        opt.apply([tf.constant([g])], [w])
    assert int(opt.skipped_steps.numpy()) == 0  # the loss is unknown outside model.fit
    assert int(opt.scaler.spikes.losses.count.numpy()) == 0


def test_compare_passes_the_rule_to_every_run():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    x[5] *= 1e3  # one sample: one batch of 8 in each epoch of 8 batches
    runs = gradlab.compare(
        small_model(),
        ["none", ("global_norm", 1.0)],
        x=x,
        y=y,
        loss="mse",
        optimizer=lambda: keras.optimizers.SGD(1e-4),
        steps=24,
        batch_size=8,
        scaler_options={"skip_spikes": {"sigma": 3.0, "window": 4}},
    )
    assert all(h.spiked.sum() >= 2 for h in runs)  # the batch with sample 5, in two epochs at least
    assert runs[0].spiked.tolist() == runs[1].spiked.tolist()  # the rule sees the norm before scaling


def test_config_round_trip_and_repr():
    scaler = gradlab.Scaler("global_norm", 2.0, skip_spikes={"sigma": 4.0, "window": 32, "watch": "both"})
    again = gradlab.Scaler.from_config(scaler.get_config())
    assert again.spikes.get_config() == {"sigma": 4.0, "window": 32, "watch": "both", "min_history": 16}
    assert "skip_spikes=SkipSpikes(sigma=4, window=32, watch='both', min_history=16)" in repr(again)
    assert gradlab.Scaler("none").spikes is None and "skip_spikes" not in gradlab.Scaler("none").get_config()
    assert gradlab.Scaler("none", skip_spikes=True).spikes.get_config()["window"] == 128


def test_history_tells_spikes_from_nonfinite_steps_and_figures_draw_both():
    n = 4
    h = History(
        loss=np.ones(n),
        norm_before=np.array([1.0, np.inf, 30.0, 1.0]),
        norm_after=np.array([1.0, np.nan, np.nan, 1.0]),
        clipped=np.zeros(n),
        skipped=np.array([0.0, 1.0, 1.0, 0.0]),
        loss_scale=np.ones(n),
        threshold=np.ones(n),
        mode=np.zeros(n),
        bound=np.full(n, np.inf),
        layer_norm_before=np.ones((n, 1)),
        layer_norm_after=np.ones((n, 1)),
        update_ratio=np.ones((n, 1)),
        layer_names=["dense"],
        mode_names=gradlab.scaler.MODE_NAMES,
    )
    assert h.spiked.tolist() == [False, False, True, False]
    traces = {t.name: t for t in gradlab.plots.overview(h).data}
    assert traces["skipped step (non-finite)"].x == (1,) and traces["skipped step (spike)"].x == (2,)
    norm = {t.name: t for t in gradlab.plots.norm_figure(h).data}
    assert norm["skipped step (spike)"].y == (30.0,)  # circled at its own norm
    live = gradlab.plots.LiveFigure()
    live.update(h)
    drawn = {t.name: t for t in live.widget.data}
    assert list(drawn["skipped step (non-finite)"].x) == [1] and list(drawn["skipped step (spike)"].x) == [2]


# ---------------------------------------------------------------- bad arguments
def msg(*parts):
    return ".*".join(re.escape(p) for p in parts)


@pytest.mark.parametrize(
    "call, parts",
    [
        (lambda: gradlab.scaler.SkipSpikes(sigma=0.0), ("Argument `sigma` must be", "(0, inf)", "Received: sigma=0.0")),
        (lambda: gradlab.scaler.SkipSpikes(window=1), ("Argument `window` must be", "[2, inf)", "Received: window=1")),
        (
            lambda: gradlab.scaler.SkipSpikes(window=2.5),
            ("Argument `window` must be an integer", "Received: window=2.5"),
        ),
        (
            lambda: gradlab.scaler.SkipSpikes(watch="grad"),
            ("Unknown signal to watch 'grad'", "Expected one of: 'norm', 'loss', 'both'", "Received: watch='grad'"),
        ),
        (
            lambda: gradlab.scaler.SkipSpikes(window=16, min_history=18),
            ("Argument `min_history` must be", "[2, 17]", "Received: min_history=18"),
        ),
        (
            lambda: gradlab.Scaler("none", skip_spikes="yes"),
            ("Argument `skip_spikes` must be None, True, a dict", "Received: skip_spikes='yes'"),
        ),
        (
            lambda: gradlab.Scaler("none", skip_spikes={"k": 3}),
            ("Unknown option `k` for skip_spikes", "Expected one of: 'sigma'", "Received: k=3"),
        ),
        (
            lambda: gradlab.ScaledOptimizer(keras.optimizers.SGD(0.1), skip_spikes=0.5),
            ("Argument `skip_spikes` must be", "Received: skip_spikes=0.5"),
        ),
    ],
    ids=["sigma", "window-small", "window-float", "watch", "min-history", "scaler-str", "scaler-dict", "optimizer"],
)
def test_bad_arguments_are_refused_in_the_keras_form(call, parts):
    with pytest.raises(ValueError, match=msg(*parts)):
        call()


def test_set_refuses_a_bad_sigma_and_keeps_the_old_one():
    rule = gradlab.scaler.SkipSpikes(sigma=3.0)
    with pytest.raises(ValueError, match=msg("Argument `sigma` must be", "Received: sigma=-1")):
        rule.set(sigma=-1)
    assert float(rule.sigma.numpy()) == 3.0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the Stop below, on purpose
def test_lab_gives_its_run_and_its_compare_a_rule_each(monkeypatch):
    compare_module = importlib.import_module("gradlab.explore.compare")  # the Lab compares through it

    lab = gradlab.Lab(steps=4, skip_spikes={"sigma": 3.0, "window": 8})
    assert lab.scaler.spikes.get_config() == {"sigma": 3.0, "window": 8, "watch": "norm", "min_history": 4}
    made = []

    class Stop(Exception):
        pass

    def trainer(model, loss, optimizer, scaler, **kwargs):  # Compare's Trainer: keep its scaler, stop there
        made.append(scaler)
        raise Stop

    monkeypatch.setattr(compare_module, "Trainer", trainer)
    lab.compare_all(steps=2, wait=True)
    assert isinstance(lab.error, Stop) and len(made) == 1
    assert made[0].spikes.get_config() == lab.scaler.spikes.get_config()
    assert made[0].spikes.norms.values is not lab.scaler.spikes.norms.values  # windows of its own
    with pytest.raises(ValueError, match=msg("Argument `skip_spikes` must be", "Received: skip_spikes=3")):
        gradlab.Lab(skip_spikes=3)


def test_report_command_line_skips_spikes(tmp_path, monkeypatch):
    from gradlab.display import report

    seen = {}
    real = report.compare

    def spy(*args, **kwargs):
        seen.update(kwargs.get("scaler_options", {}))
        return real(*args, **kwargs)

    monkeypatch.setattr(report, "compare", spy)
    argv = ["--problem", "deep_mlp", "--modes", "none", "--steps", "3", "--out", str(tmp_path / "r.html")]
    assert report.main([*argv, "--skip-spikes", "4"]) == 0
    assert seen == {"skip_spikes": {"sigma": 4.0}}


def test_xla_step_skips_the_injected_spike():
    x, y = spike_data()
    model = small_model()
    scaler = gradlab.Scaler("global_norm", 1.0, skip_spikes={"sigma": 6.0, "window": 16})
    trainer = gradlab.Trainer(model, "mse", keras.optimizers.SGD(0.01), scaler, jit_compile=True)
    h = trainer.fit(dataset=tf.data.Dataset.from_tensor_slices((x, y)).batch(8), steps=14, progress=False)
    assert np.flatnonzero(h.spiked).tolist() == [12] and np.isfinite(h.loss).all()
