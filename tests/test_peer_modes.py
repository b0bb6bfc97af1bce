"""The peers' methods as Scaler modes: ``"block_rms"``, ``"trust_ratio"`` and ``"adagc"``.

Each mode equals its reference's formula, ported to numpy in the peer's own test file
(optax ``clip_by_block_rms`` in tests/test_peers_rms.py, optax ``scale_by_trust_ratio`` in
tests/test_peers_trust_ratio.py, pytorch_optimizer ``AdaGC`` in tests/test_peers_adagc.py),
through the compiled Scaler (one switch over every mode) with and without XLA, and keeps
the properties of its kind: a clip never lengthens a tensor nor turns it, and leaves it
unchanged below the bound; the trust ratio gives each tensor ``c * ||w||``.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_peers_adagc import ReferenceAdaGC, gradient_sequence
from test_peers_rms import optax_clip_by_block_rms
from test_peers_trust_ratio import optax_scale_by_trust_ratio

import gradlab

SHAPES = [(4, 3), (3,), (2, 2, 2)]


def tensors(arrays):
    return [tf.constant(a, tf.float32) for a in arrays]


def compiled(scaler, jit):
    """The scaler inside one tf.function (as in a train step); mode and threshold stay live."""
    return tf.function(lambda grads, variables: scaler(grads, variables), jit_compile=jit)


def random_grads(rng, spread=5.0):
    return [rng.normal(size=s) * rng.uniform(0.01, spread) for s in SHAPES]


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("threshold", [0.05, 1.0, 10.0])
def test_block_rms_mode_equals_optax(threshold, jit):
    rng = np.random.default_rng(0)
    scaler = gradlab.Scaler("block_rms", threshold)
    weights = [tf.Variable(np.ones(s, np.float32)) for s in SHAPES]
    step = compiled(scaler, jit)
    for _ in range(3):
        grads = random_grads(rng)
        out = step(tensors(grads), weights)
        for o, r in zip(out, optax_clip_by_block_rms(grads, threshold)):
            np.testing.assert_allclose(o.numpy(), r, rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("coefficient", [0.001, 1.0])
def test_trust_ratio_mode_equals_optax(coefficient, jit):
    rng = np.random.default_rng(1)
    scaler = gradlab.Scaler("trust_ratio", coefficient)
    params = [rng.normal(size=s) for s in SHAPES]
    params[1] = np.zeros(SHAPES[1])  # a zero weight: ratio 1, as in optax
    weights = [tf.Variable(p.astype(np.float32)) for p in params]
    step = compiled(scaler, jit)
    for _ in range(3):
        grads = random_grads(rng)
        out = step(tensors(grads), weights)
        expected = optax_scale_by_trust_ratio(grads, params, trust_coefficient=coefficient)
        for o, r in zip(out, expected):
            np.testing.assert_allclose(o.numpy(), r, rtol=2e-5, atol=1e-7)
    norms = [np.linalg.norm(o.numpy()) for o in out]
    assert norms[0] == pytest.approx(coefficient * np.linalg.norm(params[0]), rel=1e-5)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("lambda_rel", [1.05, 0.5])
def test_adagc_mode_equals_pytorch_optimizer(lambda_rel, jit):
    """Thirty steps with spikes; the threshold is AdaGC's lambda_rel, its other options the Scaler's."""
    scaler = gradlab.Scaler("adagc", lambda_rel, adagc_warmup_steps=6, adagc_beta=0.9, adagc_lambda_abs=2.0)
    reference = ReferenceAdaGC(warmup_steps=6, beta=0.9, lambda_abs=2.0, lambda_rel=lambda_rel)
    weights = [tf.Variable(np.ones(s, np.float32)) for s in SHAPES]
    scaler.build(weights)
    step = compiled(scaler, jit)
    for grads in gradient_sequence(0, 30):
        out = step(tensors(grads), weights)
        for o, r in zip(out, reference.clip(grads)):
            np.testing.assert_allclose(o.numpy(), r, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scaler.adagc.gamma.numpy(), [reference.gamma[i] for i in range(3)], rtol=1e-4)


@pytest.mark.parametrize("mode", ["block_rms", "adagc"])
def test_clip_modes_never_lengthen_or_turn_and_leave_small_gradients_alone(mode):
    rng = np.random.default_rng(2)
    weights = [tf.Variable(np.ones(s, np.float32)) for s in SHAPES]
    for threshold in (0.01, 1.0):
        scaler = gradlab.Scaler(mode, threshold, adagc_warmup_steps=2)
        for _ in range(12):
            grads = random_grads(rng, spread=50.0)
            for g, o in zip(grads, scaler(tensors(grads), weights)):
                o = o.numpy()
                assert np.linalg.norm(o) <= np.linalg.norm(g) * (1 + 1e-6)
                cos = np.dot(o.ravel(), g.ravel()) / (np.linalg.norm(o) * np.linalg.norm(g))
                assert cos == pytest.approx(1.0, abs=1e-5)
    # below the bound: unchanged, bit for bit
    tiny = [np.full(s, 1e-3) for s in SHAPES]
    out = gradlab.Scaler("block_rms", 1.0)(tensors(tiny), weights)
    for o, g in zip(out, tensors(tiny)):
        np.testing.assert_array_equal(o.numpy(), g.numpy())


def test_the_trainer_runs_every_new_mode_in_one_trace_and_records_its_bound():
    gradlab.setup(0)
    p = gradlab.problems.deep_mlp(depth=2, samples=128)
    scaler = gradlab.Scaler("global_norm", modes="all")
    t = gradlab.Trainer(p.model(), p.loss, keras.optimizers.SGD(0.05), scaler)
    for mode in ("block_rms", "trust_ratio", "adagc", "global_norm"):
        scaler.set(mode=mode, threshold=gradlab.scaler.MODES[mode].default)
        t.fit(p.x, p.y, steps=3, batch_size=32, progress=False)
    h = t.history
    assert (
        t.tracing_count == 1
        and h.modes == ["block_rms"] * 3 + ["trust_ratio"] * 3 + ["adagc"] * 3 + ["global_norm"] * 3
    )
    sizes = sum(int(np.prod(v.shape)) for v in t.variables)
    np.testing.assert_allclose(h.bound[:3], np.sqrt(sizes), rtol=1e-5)  # each RMS <= 1: global norm <= sqrt(N)
    assert np.all(h.norm_after[:3] <= h.bound[:3] * (1 + 1e-6))
    weight_norm = np.sqrt(sum(float(np.sum(np.square(w))) for w in t.model.get_weights() if w.ndim))
    assert h.norm_after[5] == pytest.approx(weight_norm, rel=0.05)  # trust ratio 1: update norm = weight norm
    assert np.isfinite(h.loss).all()


@pytest.mark.parametrize(
    "mode, threshold, message",
    [
        ("block_rms", 0.0, "Received: threshold=0.0 (for mode 'block_rms' the threshold is its clip_threshold)"),
        ("trust_ratio", -1.0, "(for mode 'trust_ratio' the threshold is its trust_coefficient)"),
        ("adagc", float("nan"), "(for mode 'adagc' the threshold is its lambda_rel)"),
    ],
)
def test_bad_thresholds_name_the_mode_and_what_the_threshold_means(mode, threshold, message):
    with pytest.raises(ValueError, match="Argument `threshold`") as err:
        gradlab.Scaler(mode, threshold)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(adagc_beta=1.0), "adagc_beta"),
        (dict(adagc_lambda_abs=0.0), "adagc_lambda_abs"),
        (dict(adagc_warmup_steps=1), "adagc_warmup_steps"),
    ],
)
def test_bad_adagc_options_name_the_scaler_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"Argument `{name}`"):
        gradlab.Scaler("adagc", **kwargs)


def test_trust_ratio_without_variables_is_refused():
    with pytest.raises(ValueError, match="Mode 'trust_ratio' needs the variables"):
        gradlab.Scaler("trust_ratio")([tf.constant([1.0])])


def test_adagc_state_exists_only_where_it_can_be_used():
    assert gradlab.Scaler("global_norm").adagc is None
    every = gradlab.Scaler("global_norm", modes="all")
    assert every.adagc is not None and every.adagc.gamma is None  # built with the first call or by the Trainer
    every.set(mode="adagc")
    every([tf.constant([3.0, 4.0]), tf.constant([1.0])])
    assert every.adagc.gamma.shape == (2,)
    assert gradlab.Scaler.from_config(every.get_config()).adagc is not None
