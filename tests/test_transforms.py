"""Tests of the front door (gradlab.Scaler), Chain and Selective (gradlab.transforms).

References: Keras' optimizer arguments (clipvalue, clipnorm, global_clipnorm) seen through
SGD(1.0) on zero weights, numpy formulas, and vectors computed by hand.
"""

import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradlab

RTOL, ATOL = 1e-6, 1e-7
KERAS_ARG = {"value": "clipvalue", "norm": "clipnorm", "global_norm": "global_clipnorm"}


# ---------------------------------------------------------------- helpers
def dense(g):
    return None if g is None else np.asarray(tf.convert_to_tensor(g), np.float64)


def shape_of(g):
    return tuple(int(d) for d in g.dense_shape) if isinstance(g, tf.IndexedSlices) else tuple(g.shape)


def make_grads(seed, scale=0.5):
    """Conv kernel, bias, None, dense kernel and an embedding gradient (IndexedSlices from tf.gather)."""
    rng = np.random.default_rng(seed)
    emb = tf.Variable(tf.zeros((6, 3)))
    rows = tf.constant(rng.normal(size=(3, 3)) * scale, tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(emb, [2, 5, 2]) * rows)
    sparse = tape.gradient(loss, emb)
    assert isinstance(sparse, tf.IndexedSlices)
    return [
        tf.constant(rng.normal(size=(3, 3, 2, 4)) * scale, tf.float32),
        tf.constant(rng.normal(size=(5,)) * scale, tf.float32),
        None,
        tf.constant(rng.normal(size=(4, 3)) * scale, tf.float32),
        sparse,
    ]


def keras_applied(grads, arg, threshold):
    """The gradient keras SGD(1.0, <arg>=threshold) applies: minus the move of zero weights (None skipped)."""
    variables = [keras.Variable(np.zeros(shape_of(g) if g is not None else (2,)), dtype="float32") for g in grads]
    opt = keras.optimizers.SGD(learning_rate=1.0, **{arg: threshold})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gradients do not exist")
        opt.apply(list(grads), variables)
    return [None if g is None else -np.asarray(v.numpy(), np.float64) for g, v in zip(grads, variables)]


def assert_grads_close(actual, expected, rtol=RTOL, atol=ATOL):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        if e is None:
            assert a is None
        else:
            np.testing.assert_allclose(dense(a), np.asarray(e, np.float64), rtol=rtol, atol=atol)


def numpy_reference(mode, arrays, t, weights=None):
    """What each mode does, written from its definition in float64 numpy."""
    arrays = [np.float64(a) for a in arrays]
    norms = [np.linalg.norm(a) for a in arrays]
    total = np.linalg.norm(norms)
    if mode == "none":
        return arrays
    if mode == "value":
        return [np.clip(a, -t, t) for a in arrays]
    if mode == "norm":
        return [a * min(1.0, t / n) if n > 0 else a for a, n in zip(arrays, norms)]
    if mode == "global_norm":
        return [a * min(1.0, t / total) for a in arrays]
    if mode == "normalize":
        return [a * t / max(n, 1e-12) for a, n in zip(arrays, norms)]
    if mode == "global_normalize":
        return [a * t / max(total, 1e-12) for a in arrays]
    if mode == "agc":  # units: the last axis; rank <= 1 is one unit; eps 1e-3
        out = []
        for a, w in zip(arrays, weights):
            axes = None if a.ndim <= 1 else tuple(range(a.ndim - 1))
            wn = np.sqrt(np.sum(np.float64(w) ** 2, axis=axes, keepdims=a.ndim > 1))
            gn = np.sqrt(np.sum(a**2, axis=axes, keepdims=a.ndim > 1))
            out.append(a * np.minimum(1.0, t * np.maximum(wn, 1e-3) / gn))
        return out
    raise AssertionError(mode)


# ---------------------------------------------------------------- Scaler against Keras
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("threshold", [0.05, 1.0, 1e3], ids=["t=0.05", "t=1", "t=1000"])
@pytest.mark.parametrize("mode", list(KERAS_ARG))
def test_scaler_equals_keras_optimizer_argument(mode, threshold, compiled):
    """Scaler(mode, t) gives the gradient Keras applies with clipvalue/clipnorm/global_clipnorm."""
    grads = make_grads(seed=3)
    scaler = gradlab.Scaler(mode, threshold)
    out = tf.function(lambda: scaler(grads))() if compiled else scaler(grads)
    assert out[2] is None and isinstance(out[4], tf.IndexedSlices)
    assert_grads_close(out, keras_applied(grads, KERAS_ARG[mode], threshold))


@pytest.mark.parametrize("mode", ["none", "value", "norm", "global_norm", "normalize", "global_normalize"])
def test_scaler_modes_equal_numpy_definitions(mode):
    """Every fixed mode equals its definition; info reports the incoming global norm and finite=True."""
    arrays = [np.array([3.0, -4.0, 0.5], np.float32), np.array([[1.0, 2.0]], np.float32)]
    scaler = gradlab.Scaler(mode, 2.0)
    out, info = scaler.scale([tf.constant(a) for a in arrays])
    assert_grads_close(out, numpy_reference(mode, arrays, 2.0), rtol=1e-6)
    assert bool(info.finite)
    np.testing.assert_allclose(float(info.norm), np.sqrt(9 + 16 + 0.25 + 1 + 4), rtol=1e-6)


def test_scaler_agc_needs_variables_and_matches_formula():
    """Mode 'agc' refuses to run without variables and otherwise follows the AGC formula."""
    arrays = [np.array([3.0, -4.0, 0.5], np.float32), np.array([[1.0, 2.0], [0.5, 0.0]], np.float32)]
    weights = [np.zeros(3, np.float32), np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)]
    scaler = gradlab.Scaler("agc", 0.1)
    with pytest.raises(ValueError, match="variables"):
        scaler([tf.constant(a) for a in arrays])
    out = scaler([tf.constant(a) for a in arrays], [keras.Variable(w) for w in weights])
    assert_grads_close(out, numpy_reference("agc", arrays, 0.1, weights), rtol=1e-6)


def test_unknown_mode_error_names_argument_and_choices():
    """Errors follow the Keras form: what is allowed and what was received."""
    with pytest.raises(ValueError, match=r"Unknown mode 'glob'.*'global_norm'.*Received: mode='glob'"):
        gradlab.Scaler("glob", 1.0)


# ---------------------------------------------------------------- non-finite policies
BAD = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("mode", ["value", "norm", "global_norm", "normalize", "autoclip", "zclip"])
def test_skip_policy_returns_zeros_and_not_finite(mode, bad):
    """'skip': a non-finite gradient anywhere gives all-zero gradients and info.finite False."""
    scaler = gradlab.Scaler(mode, None)  # skip is the default
    grads = [tf.constant([BAD[bad], 3.0, 4.0]), None, tf.constant([[1.0, 2.0]])]
    out, info = scaler.scale(grads)
    assert not bool(info.finite)
    assert out[1] is None
    for o in (out[0], out[2]):
        np.testing.assert_array_equal(o.numpy(), np.zeros(o.shape))


def test_skip_policy_on_squares_that_overflow():
    """Finite entries whose squares overflow float32 make the norm inf: the step is skipped, not zeroed silently."""
    out, info = gradlab.Scaler("global_norm", 1.0).scale([tf.constant([1e20, 1.0])])
    assert not bool(info.finite)
    np.testing.assert_array_equal(out[0].numpy(), [0.0, 0.0])


@pytest.mark.parametrize(
    "mode, threshold, grads, expected",
    [
        # [nan,3,4] -> [0,3,4], global norm 5 -> /5
        ("global_norm", 1.0, [[np.nan, 3.0, 4.0]], [[0.0, 0.6, 0.8]]),
        # two tensors, global norm sqrt(9+16+144) = 13 after zeroing
        ("global_norm", 1.0, [[np.inf, 3.0, 4.0], [12.0]], [[0.0, 3 / 13, 4 / 13], [12 / 13]]),
        # each clipped on its own: [0,6,8]/10, [0.3,0.4] below 1
        ("norm", 1.0, [[-np.inf, 6.0, 8.0], [0.3, 0.4]], [[0.0, 0.6, 0.8], [0.3, 0.4]]),
        ("value", 2.0, [[np.inf, 3.0, -4.0, 1.5]], [[0.0, 2.0, -2.0, 1.5]]),
        ("none", 1.0, [[np.nan, -7.0]], [[0.0, -7.0]]),
    ],
    ids=["global_norm", "global_norm-2-tensors", "norm", "value", "none"],
)
def test_zero_policy_zeroes_bad_entries_then_scales(mode, threshold, grads, expected):
    """'zero': non-finite entries become 0, the rest are scaled as the mode says; the step is finite."""
    scaler = gradlab.Scaler(mode, threshold, nonfinite="zero")
    out, info = scaler.scale([tf.constant(g, tf.float32) for g in grads])
    assert bool(info.finite)
    assert_grads_close(out, expected, rtol=1e-6)


def test_zero_policy_in_tf_function():
    """'zero' works the same inside a compiled function."""
    scaler = gradlab.Scaler("global_norm", 1.0, nonfinite="zero")
    fn = tf.function(lambda g: scaler([g]))
    np.testing.assert_allclose(fn(tf.constant([np.nan, 3.0, 4.0]))[0].numpy(), [0.0, 0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(fn(tf.constant([0.0, 6.0, 8.0]))[0].numpy(), [0.0, 0.6, 0.8], rtol=1e-6)


def named_layer_variables():
    """A kernel and a bias whose paths are 'enc/kernel' and 'enc/bias'."""
    layer = keras.layers.Dense(2, name="enc")
    layer.build((None, 3))
    assert layer.kernel.path == "enc/kernel"
    return [layer.kernel, layer.bias]


def test_raise_policy_eager_names_the_variable():
    """'raise' eagerly: FloatingPointError naming the bad variable's path, not the good one."""
    variables = named_layer_variables()
    scaler = gradlab.Scaler("global_norm", 1.0, nonfinite="raise")
    grads = [tf.ones((3, 2)), tf.constant([1.0, np.nan])]
    with pytest.raises(FloatingPointError, match="enc/bias") as err:
        scaler(grads, variables)
    assert "enc/kernel" not in str(err.value)
    out = scaler([tf.ones((3, 2)), tf.zeros(2)], variables)  # finite input passes
    assert np.isfinite(out[0].numpy()).all()


def test_raise_policy_in_tf_function_names_the_variable():
    """'raise' inside tf.function: InvalidArgumentError whose message names the bad variable."""
    variables = named_layer_variables()
    scaler = gradlab.Scaler("norm", 1.0, nonfinite="raise")
    fn = tf.function(lambda a, b: scaler([a, b], variables))
    fn(tf.ones((3, 2)), tf.zeros(2))  # finite: no error
    with pytest.raises(tf.errors.InvalidArgumentError, match="enc/kernel"):
        fn(tf.fill((3, 2), np.inf), tf.zeros(2))


# ---------------------------------------------------------------- float16
def test_scaler_float16_near_max():
    """float16 [60000, 60000]: float32 info.norm equals float64 math; clipped output is float16 and finite."""
    scaler = gradlab.Scaler("global_norm", 1.0)
    out, info = scaler.scale([tf.constant([60000.0, 60000.0], tf.float16)])
    assert bool(info.finite)
    np.testing.assert_allclose(float(info.norm), np.sqrt(2) * 60000.0, rtol=1e-6)
    assert out[0].dtype == tf.float16
    np.testing.assert_allclose(out[0].numpy().astype(np.float64), [2**-0.5] * 2, rtol=1e-3)  # one float16 ulp


@pytest.mark.parametrize("mode", ["value", "norm", "global_norm", "normalize", "global_normalize"])
def test_scaler_float16_stays_float16_and_finite(mode):
    """Every fixed mode returns float16 for float16 gradients, with finite values (zero stays zero)."""
    grads = [tf.constant([60000.0, -60000.0], tf.float16), tf.constant([0.0, 0.0], tf.float16)]
    out = gradlab.Scaler(mode, 1.0)(grads)
    for o in out:
        assert o.dtype == tf.float16
        assert np.isfinite(o.numpy()).all(), (mode, o.numpy())
    np.testing.assert_array_equal(out[1].numpy(), [0.0, 0.0])


# ---------------------------------------------------------------- live controls
LIVE_SETTINGS = [
    ("value", 0.5),
    ("value", 2.0),
    ("norm", 1.0),
    ("norm", 4.0),
    ("global_norm", 1.0),
    ("global_norm", 10.0),
    ("normalize", 0.5),
    ("global_normalize", 3.0),
    ("none", 3.0),
    ("agc", 0.1),
    ("agc", 0.5),
    ("value", 3.0),
    ("global_norm", 0.1),
    ("norm", 0.25),
    ("normalize", 2.0),
    ("global_normalize", 0.2),
    ("value", 0.1),
    ("none", 1.0),
    ("global_norm", 5.0),
    ("norm", 100.0),
]


def test_live_mode_and_threshold_changes_do_not_retrace():
    """20 Scaler.set(...) calls across modes and thresholds: one trace, outputs follow each setting."""
    arrays = [np.array([3.0, -4.0, 0.5], np.float32), np.array([[1.0, 2.0], [0.5, -0.25]], np.float32)]
    weights = [np.array([0.5, 0.0, 0.0], np.float32), np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)]
    variables = [keras.Variable(w) for w in weights]
    grads = [tf.constant(a) for a in arrays]
    scaler = gradlab.Scaler("global_norm", 1.0)
    fn = tf.function(lambda: scaler(grads, variables))
    assert len(LIVE_SETTINGS) == 20
    for mode, t in LIVE_SETTINGS:
        scaler.set(mode=mode, threshold=t)
        assert scaler.mode_name == mode
        assert_grads_close(fn(), numpy_reference(mode, arrays, t, weights), rtol=1e-5, atol=1e-7)
    assert fn.experimental_get_tracing_count() == 1


def test_set_only_threshold_or_only_mode():
    """set(threshold=...) keeps the mode; set(mode=...) keeps the threshold; a bad one is refused."""
    scaler = gradlab.Scaler("value", 2.0, modes="all")
    scaler.set(threshold=0.5)
    np.testing.assert_array_equal(scaler([tf.constant([3.0, 0.25])])[0].numpy(), [0.5, 0.25])
    scaler.set(mode="global_norm")
    assert float(scaler.threshold) == 0.5
    np.testing.assert_allclose(scaler([tf.constant([3.0, 4.0])])[0].numpy(), [0.3, 0.4], rtol=1e-6)
    with pytest.raises(ValueError, match="threshold"):
        scaler.set(mode="autoclip", threshold=150.0)  # a percentile must be in (0, 100]
    assert scaler.mode_name == "global_norm" and float(scaler.threshold) == 0.5


def test_adaptive_state_exists_only_where_a_run_can_use_it():
    """AutoClip's and ZClip's state is created for the modes a Scaler may run, and only for them."""
    plain = gradlab.Scaler("global_norm", 1.0)
    assert plain.autoclip is None and plain.zclip is None and plain.state_variables == []
    assert plain.variables == [plain.controls]
    assert "autoclip" not in plain.modes and {"none", "value", "agc"} <= set(plain.modes)
    with pytest.raises(
        ValueError,
        match=r"Argument `mode` must be one of the modes this Scaler was built for.*"
        r"modes='all'.*Received: mode='zclip'",
    ):
        plain.set(mode="zclip")
    assert plain.mode_name == "global_norm"  # refused: nothing changed
    z = gradlab.Scaler("zclip")
    assert z.zclip is not None and z.autoclip is None and z.state_variables == z.zclip.state_variables
    both = gradlab.Scaler("none", modes=["autoclip"])
    assert both.autoclip is not None and both.zclip is None
    both.set(mode="autoclip", threshold=50.0)
    assert both.mode_name == "autoclip"
    every = gradlab.Scaler("none", modes="all")
    assert every.autoclip is not None and every.zclip is not None and every.modes == gradlab.scaler.MODE_NAMES
    for bad in ("some", [], ["glob"], 3):
        with pytest.raises(ValueError, match="modes|mode"):
            gradlab.Scaler("none", modes=bad)


def test_every_mode_is_one_record_used_everywhere(monkeypatch):
    """The Scaler's branches, the applier's kinds, the lab's slider ranges come from the records."""
    from gradlab.lab import threshold_range
    from gradlab.scaler import modes

    assert tuple(modes.MODES) == gradlab.scaler.MODE_NAMES
    for name, record in modes.MODES.items():
        assert record.name == name and callable(record.decide)
        assert record.applies in ("none", "scale", "clip", "units")
        assert threshold_range(name) == record.slider
        assert (record.state is not None) == (name in modes.STATEFUL)
    # a mode's compiled branch is its record's formula: a stand-in record changes what the Scaler does
    scaler = gradlab.Scaler("norm", 1.0)
    g = [tf.constant([3.0, 4.0])]
    assert_grads_close(scaler(g), [[0.6, 0.8]], rtol=1e-6)
    halve = modes.MODES["norm"]._replace(decide=lambda m, t, ctx: modes._by(m, tf.fill([len(m.values)], 0.5), t))
    monkeypatch.setitem(modes.MODES, "norm", halve)
    assert_grads_close(scaler(g), [[1.5, 2.0]], rtol=1e-6)


# ---------------------------------------------------------------- Selective
def selective_variables():
    return [
        keras.Variable([0.0, 0.0], name="encoder_kernel"),
        keras.Variable([0.0], name="encoder_bias"),
        keras.Variable([0.0, 0.0], name="head_kernel"),
        keras.Variable([0.0], name="head_bias"),
        keras.Variable([0.0, 0.0], name="other"),
        tf.Variable([0.0], name="tfvar_scale"),  # a tf.Variable: no .path, name 'tfvar_scale:0'
    ]


SEL_GRADS = [[10.0, 20.0], [30.0], [3.0, 0.0], [4.0], [1.0, -1.0], [5.0]]


def test_selective_rules_factor_transform_default_first_match():
    """Float factor, a transform on the group's own global norm, default for the rest, first rule wins."""
    sel = gradlab.scaler.Selective(
        [
            ("^encoder", 0.5),  # encoder_*: halved
            ("head", gradlab.Scaler("global_norm", 1.0)),  # head_*: group global norm sqrt(9+16)=5 -> /5
            ("encoder|head", 100.0),  # never used: the rules above match first
            ("tfvar", 3.0),  # tf.Variable matched by .name
        ],
        default=2.0,
    )
    out = sel([tf.constant(g) for g in SEL_GRADS], selective_variables())
    expected = [[5.0, 10.0], [15.0], [0.6, 0.0], [0.8], [2.0, -2.0], [15.0]]
    assert_grads_close(out, expected, rtol=1e-6)


def test_selective_unmatched_unchanged_without_default_and_none_kept():
    """With default None unmatched gradients are returned as they are; None stays None."""
    sel = gradlab.scaler.Selective({"head": 0.1})
    grads = [tf.constant(g) for g in SEL_GRADS]
    grads[2] = None
    out = sel(grads, selective_variables())
    assert out[2] is None
    np.testing.assert_allclose(out[3].numpy(), [0.4], rtol=1e-6)
    for i in (0, 1, 4, 5):
        assert out[i] is grads[i] or np.array_equal(out[i].numpy(), grads[i].numpy())


def test_selective_matches_path_before_name():
    """variable_name uses .path ('enc/kernel') before .name ('kernel')."""
    kernel, bias = named_layer_variables()
    assert kernel.name == "kernel"
    grads = [tf.ones((3, 2)), tf.ones(2)]
    out = gradlab.scaler.Selective([("^kernel$", 0.0), ("^enc/kernel$", 0.5)])(grads, [kernel, bias])
    np.testing.assert_array_equal(out[0].numpy(), np.full((3, 2), 0.5))
    np.testing.assert_array_equal(out[1].numpy(), np.ones(2))


def test_selective_needs_variables():
    """Selective matches by name, so it refuses to run without variables."""
    with pytest.raises(ValueError, match="variables"):
        gradlab.scaler.Selective([("a", 0.5)])([tf.constant([1.0])])


# ---------------------------------------------------------------- Chain
@pytest.mark.parametrize(
    "order, expected",
    [
        # value 2: [3,1] -> [2,1]; global norm sqrt(5) -> [2/sqrt5, 1/sqrt5]
        ("value-then-global_norm", [0.8944272, 0.4472136]),
        # global norm sqrt(10) -> [0.9486833, 0.3162278]; value 2 changes nothing
        ("global_norm-then-value", [0.9486833, 0.3162278]),
    ],
)
def test_chain_order_matters(order, expected):
    """Chain applies transforms in order; swapping them changes the result (hand numbers)."""
    value, glob = gradlab.Scaler("value", 2.0), gradlab.Scaler("global_norm", 1.0)
    chain = gradlab.scaler.Chain(value, glob) if order.startswith("value") else gradlab.scaler.Chain(glob, value)
    np.testing.assert_allclose(chain([tf.constant([3.0, 1.0])])[0].numpy(), expected, rtol=1e-6)


def test_chain_passes_variables_and_plain_functions():
    """A plain fn(grads) and a transform that takes variables both work inside a Chain."""
    seen = {}

    def double(grads):
        return [2.0 * g for g in grads]

    def record(grads, variables):
        seen["names"] = [v.path for v in variables]
        return grads

    variables = named_layer_variables()
    out = gradlab.scaler.Chain(double, record)([tf.ones((3, 2)), tf.ones(2)], variables)
    np.testing.assert_array_equal(out[1].numpy(), [2.0, 2.0])
    assert seen["names"] == ["enc/kernel", "enc/bias"]


# ---------------------------------------------------------------- serialization
def test_chain_and_selective_round_trip_through_keras_serialization():
    """A Chain holding a Scaler and a Selective survives serialize -> JSON -> deserialize."""
    chain = gradlab.scaler.Chain(
        gradlab.Scaler("value", 25.0, nonfinite="zero", zclip_warmup=7, modes=["zclip"]),
        gradlab.scaler.Selective(
            [("^encoder", 0.5), ("head", gradlab.Scaler("global_norm", 1.0))],
            default=2.0,
        ),
    )
    config = keras.saving.serialize_keras_object(chain)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert isinstance(restored, gradlab.scaler.Chain)
    first, sel = restored.transforms
    assert isinstance(first, gradlab.Scaler) and isinstance(sel, gradlab.scaler.Selective)
    assert (first.mode_name, float(first.threshold), first.nonfinite, first.zclip.warmup) == ("value", 25.0, "zero", 7)
    assert [rx.pattern for rx, _ in sel.rules] == ["^encoder", "head"]
    assert sel.rules[0][1] == 0.5 and sel.default == 2.0
    assert isinstance(sel.rules[1][1], gradlab.Scaler) and sel.rules[1][1].mode_name == "global_norm"
    grads = [tf.constant(g) for g in SEL_GRADS]
    grads[0] = tf.constant([np.nan, 40.0])
    expected = chain(grads, selective_variables())
    actual = restored(grads, selective_variables())
    assert_grads_close(actual, [dense(e) for e in expected], rtol=0, atol=0)
    assert_grads_close(actual, [[0.0, 12.5], [12.5], [0.6, 0.0], [0.8], [2.0, -2.0], [10.0]], rtol=1e-6)


@pytest.mark.parametrize("mode, threshold", [("autoclip", 25.0), ("zclip", 3.0), ("agc", 0.02)])
def test_scaler_round_trip_keeps_mode_threshold_and_options(mode, threshold):
    """Scaler get_config/from_config keeps mode, threshold, policy and the adaptive options."""
    scaler = gradlab.Scaler(
        mode, threshold, nonfinite="raise", autoclip_history=7, zclip_alpha=0.9, zclip_warmup=4, modes="all"
    )
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(scaler))
    assert restored.modes == gradlab.scaler.MODE_NAMES
    assert restored.mode_name == mode and float(restored.threshold) == pytest.approx(threshold)
    assert restored.nonfinite == "raise"
    assert restored.autoclip.history_size == 7
    assert (restored.zclip.alpha, restored.zclip.warmup) == (0.9, 4)


# ---------------------------------------------------------------- properties
FLOATS = st.floats(-1e3, 1e3, width=32, allow_subnormal=False).filter(lambda x: x == 0 or abs(x) >= 1e-6)
THRESHOLDS = st.floats(float(np.float32(1e-3)), 1e3, width=32)
GRAD_LISTS = st.lists(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), elements=FLOATS),
    min_size=1,
    max_size=3,
)
SCALER = gradlab.Scaler("norm", 1.0)


def norms64(arrays):
    return [np.linalg.norm(np.float64(a)) for a in arrays]


def cosine(a, b):
    a, b = np.float64(a).ravel(), np.float64(b).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@settings(max_examples=40, deadline=None, database=None)
@given(GRAD_LISTS, THRESHOLDS, st.sampled_from(["norm", "global_norm"]))
@example([np.array([1.0], np.float32)], 41.0, "global_norm")  # 41 * float32(1/41) != 1
@example([np.array([1.0], np.float32)], 61.0, "norm")
def test_scaler_norm_modes_properties(arrays, t, mode):
    """Scaler norm modes: bound respected, direction kept, exact identity below it, idempotent."""
    SCALER.set(mode=mode, threshold=t)
    out = [o.numpy() for o in SCALER([tf.constant(a) for a in arrays])]
    if mode == "norm":
        pairs = [([a], [o]) for a, o in zip(arrays, out)]
    else:
        pairs = [(arrays, out)]
    for ins, outs in pairs:
        n_in, n_out = np.linalg.norm(norms64(ins)), np.linalg.norm(norms64(outs))
        assert n_out <= t * (1 + 1e-5)
        flat_in = np.concatenate([a.ravel() for a in ins])
        flat_out = np.concatenate([o.ravel() for o in outs])
        if n_in > 1e-3:
            assert cosine(flat_in, flat_out) == pytest.approx(1.0, abs=1e-5)
        if n_in <= t * (1 - 1e-5):
            np.testing.assert_array_equal(flat_out, flat_in)
    again = [o.numpy() for o in SCALER([tf.constant(o) for o in out])]
    for o, o2 in zip(out, again):
        np.testing.assert_allclose(o2, o, rtol=1e-5, atol=1e-6 * t)
