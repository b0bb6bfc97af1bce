"""Tests of the pure scaling functions in gradlab.scaling.

References nobody here wrote: Keras' optimizer arguments (clipvalue, clipnorm,
global_clipnorm), tf.clip_by_global_norm, tf.linalg.global_norm, and published
formulas (AGC) with vectors computed by hand.
"""

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
PURE = {"value": gradlab.clip_by_value, "norm": gradlab.clip_by_norm, "global_norm": gradlab.clip_by_global_norm}
KERAS_ARG = {"value": "clipvalue", "norm": "clipnorm", "global_norm": "global_clipnorm"}


# ---------------------------------------------------------------- helpers
def dense(g):
    """A gradient as a float64 numpy array (IndexedSlices summed into its dense shape)."""
    return None if g is None else np.asarray(tf.convert_to_tensor(g), np.float64)


def make_grads(seed, scale):
    """Gradients of a small model: conv kernel, bias, None, dense kernel, embedding (IndexedSlices)."""
    rng = np.random.default_rng(seed)
    kernel_shape = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    emb = tf.Variable(tf.zeros((6, 3)))
    rows = tf.constant(rng.normal(size=(3, 3)) * scale, tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(emb, [1, 4, 1]) * rows)  # row 1 twice: duplicate indices
    sparse = tape.gradient(loss, emb)
    assert isinstance(sparse, tf.IndexedSlices)
    return [
        tf.constant(rng.normal(size=(3, 3, 2, 4)) * scale, tf.float32),
        tf.constant(rng.normal(size=(5,)) * scale, tf.float32),
        None,
        tf.constant(rng.normal(size=kernel_shape) * scale, tf.float32),
        sparse,
    ]


def shape_of(g):
    return tuple(int(d) for d in g.dense_shape) if isinstance(g, tf.IndexedSlices) else tuple(g.shape)


def keras_applied(grads, arg, threshold):
    """The gradient that keras SGD(1.0, <arg>=threshold) applies: minus the move of zero weights.

    A None gradient is given to Keras as None (Keras skips that variable); its entry is None.
    """
    variables = [keras.Variable(np.zeros(shape_of(g) if g is not None else (2,)), dtype="float32") for g in grads]
    opt = keras.optimizers.SGD(learning_rate=1.0, **{arg: threshold})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gradients do not exist")
        opt.apply(list(grads), variables)
    skipped = [v for g, v in zip(grads, variables) if g is None]
    assert all(not v.numpy().any() for v in skipped), "Keras moved a variable whose gradient is None"
    return [None if g is None else -np.asarray(v.numpy(), np.float64) for g, v in zip(grads, variables)]


def assert_same_structure(out, grads):
    assert len(out) == len(grads)
    for o, g in zip(out, grads):
        if g is None:
            assert o is None
        else:
            assert isinstance(o, tf.IndexedSlices) == isinstance(g, tf.IndexedSlices)
            assert o.dtype == g.dtype
            assert shape_of(o) == shape_of(g)


def assert_grads_close(actual, expected, rtol=RTOL, atol=ATOL):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        if e is None:
            assert a is None
        else:
            np.testing.assert_allclose(dense(a), e, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- Keras and TensorFlow references
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("threshold", [0.05, 1.0, 1e3], ids=["t=0.05", "t=1", "t=1000"])
@pytest.mark.parametrize("mode", list(PURE))
def test_pure_function_equals_keras_optimizer_argument(mode, threshold, seed):
    """clip_by_value/norm/global_norm give the gradient Keras applies with clipvalue/clipnorm/global_clipnorm."""
    grads = make_grads(seed, scale=0.5)
    out = PURE[mode](grads, threshold)
    assert_same_structure(out, grads)
    assert_grads_close(out, keras_applied(grads, KERAS_ARG[mode], threshold))


def test_keras_reference_actually_clips():
    """Sanity check of the reference: with a small threshold the applied gradient differs from the raw one."""
    grads = make_grads(0, scale=0.5)
    for arg in KERAS_ARG.values():
        applied = keras_applied(grads, arg, 0.05)
        assert not np.allclose(applied[0], dense(grads[0]))


@pytest.mark.parametrize("threshold", [0.05, 1.0, 1e3], ids=["t=0.05", "t=1", "t=1000"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clip_by_global_norm_equals_tf(seed, threshold):
    """clip_by_global_norm equals tf.clip_by_global_norm(grads, t)[0], None and IndexedSlices included."""
    grads = make_grads(seed, scale=0.5)
    expected = [dense(g) for g in tf.clip_by_global_norm(grads, threshold)[0]]
    assert_grads_close(gradlab.clip_by_global_norm(grads, threshold), expected)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("seed", [0, 1])
def test_global_norm_equals_tf_linalg(seed, scale):
    """global_norm equals tf.linalg.global_norm (None skipped, IndexedSlices values not merged)."""
    grads = make_grads(seed, scale)
    np.testing.assert_allclose(float(gradlab.global_norm(grads)), float(tf.linalg.global_norm(grads)), rtol=RTOL)


def test_global_norm_and_tensor_norms_float64_reference():
    """Norms against numpy in float64; IndexedSlices counts its values, duplicates not merged."""
    grads = make_grads(3, scale=2.0)
    parts = [np.asarray(g.values if isinstance(g, tf.IndexedSlices) else g, np.float64) for g in grads if g is not None]
    expected = np.sqrt(sum(np.sum(p**2) for p in parts))
    np.testing.assert_allclose(float(gradlab.global_norm(grads)), expected, rtol=RTOL)
    norms = gradlab.tensor_norms(grads)
    assert norms[2] is None
    np.testing.assert_allclose(
        [float(n) for n in norms if n is not None], [np.linalg.norm(p) for p in parts], rtol=RTOL
    )


def test_global_norm_of_nothing_is_zero():
    """An all-None gradient list has a global norm of 0 and clips to all None."""
    assert float(gradlab.global_norm([None, None])) == 0.0
    assert gradlab.clip_by_global_norm([None], 1.0) == [None]


def test_tf_clip_by_global_norm_turns_everything_nan_on_inf():
    """TensorFlow's own behaviour, the reason gradlab.Scaler has a non-finite policy."""
    clipped, norm = tf.clip_by_global_norm([tf.constant([np.inf, 1.0]), tf.constant([3.0])], 1.0)
    assert not np.isfinite(float(norm))
    assert all(np.isnan(c.numpy()).all() for c in clipped)


@pytest.mark.parametrize(
    "grad",
    [[np.inf, 1.0], [np.nan, 1.0], [1e20, 1.0]],
    ids=["inf", "nan", "squares-overflow"],
)
def test_clip_by_global_norm_nonfinite_norm_gives_all_nan_as_documented(grad):
    """The docstring promises: a non-finite norm makes every entry NaN, as in TensorFlow."""
    grads = [tf.constant(grad, tf.float32), tf.constant([3.0])]
    tf_out = tf.clip_by_global_norm(grads, 1.0)[0]
    assert all(np.isnan(t.numpy()).all() for t in tf_out)  # the reference
    out = gradlab.clip_by_global_norm(grads, 1.0)
    assert all(np.isnan(o.numpy()).all() for o in out), [o.numpy() for o in out]


# ---------------------------------------------------------------- hand-computed vectors
def test_clip_functions_hand_vectors():
    """[3, 4] and [0, 0, 6, 8] (norms 5 and 10, global norm sqrt(125)) clipped at 1 by hand."""
    g = [tf.constant([3.0, 4.0, 0.0]), tf.constant([0.0, 0.0, 6.0, 8.0])]
    # value: entries to [-1, 1]
    assert_grads_close(gradlab.clip_by_value(g, 1.0), [[1, 1, 0], [0, 0, 1, 1]])
    # norm: each on its own, [3,4]/5 and [6,8]/10
    assert_grads_close(gradlab.clip_by_norm(g, 1.0), [[0.6, 0.8, 0], [0, 0, 0.6, 0.8]])
    # global norm: everything / sqrt(9+16+36+64) = / 11.180340
    assert_grads_close(
        gradlab.clip_by_global_norm(g, 1.0),
        [[0.2683282, 0.3577709, 0], [0, 0, 0.5366563, 0.7155418]],
        rtol=1e-6,
    )


def test_adaptive_clip_hand_vector_dense_kernel():
    """AGC on W=[[1,0],[0,2]], G=[[3,0],[4,1]], clipping 0.5; units are columns (last axis).

    Column 0: |W|=1, |G|=5, bound 0.5*1=0.5, factor 0.1 -> [0.3, 0.4].
    Column 1: |W|=2, |G|=1, bound 0.5*2=1.0, factor 1   -> [0, 1].
    """
    W = keras.Variable([[1.0, 0.0], [0.0, 2.0]])
    G = tf.constant([[3.0, 0.0], [4.0, 1.0]])
    out = gradlab.adaptive_clip([G], [W], clipping=0.5)
    assert_grads_close(out, [[[0.3, 0.0], [0.4, 1.0]]])


@pytest.mark.parametrize(
    "weight, grad, clipping, expected",
    [
        # zero bias: bound = 0.5 * max(0, eps=1e-3) = 5e-4; |G| = 5 -> G * 1e-4
        ([0.0, 0.0, 0.0], [3.0, 0.0, 4.0], 0.5, [3e-4, 0.0, 4e-4]),
        # |W| = 5, bound 0.1 * 5 = 0.5; |G| = 10 -> G * 0.05
        ([3.0, 4.0], [6.0, 8.0], 0.1, [0.3, 0.4]),
        # |W| = 5, bound 0.5 * 5 = 2.5; |G| = 1 below it -> unchanged
        ([3.0, 4.0], [0.6, 0.8], 0.5, [0.6, 0.8]),
    ],
    ids=["zero-bias-eps", "bias-clipped", "bias-below-bound"],
)
def test_adaptive_clip_hand_vector_rank1(weight, grad, clipping, expected):
    """A rank-1 tensor (bias) is one unit; eps lets zero-initialised weights move."""
    out = gradlab.adaptive_clip([tf.constant(grad)], [keras.Variable(weight)], clipping=clipping, eps=1e-3)
    assert_grads_close(out, [expected])


def test_adaptive_clip_hand_vector_conv_kernel():
    """Conv kernel (kh=1, kw=2, in=1, out=2): units are output channels, the last axis.

    Unit 0: W=[3,4] (|W|=5), G=[6,8] (|G|=10), clipping 0.1: bound 0.5, factor 0.05 -> [0.3, 0.4].
    Unit 1: W=[0,1] (|W|=1), G=[0.3,0.4] (|G|=0.5): bound 0.1, factor 0.2 -> [0.06, 0.08].
    """
    W = np.zeros((1, 2, 1, 2), np.float32)
    G = np.zeros((1, 2, 1, 2), np.float32)
    W[0, :, 0, 0], W[0, :, 0, 1] = [3, 4], [0, 1]
    G[0, :, 0, 0], G[0, :, 0, 1] = [6, 8], [0.3, 0.4]
    expected = np.zeros((1, 2, 1, 2))
    expected[0, :, 0, 0], expected[0, :, 0, 1] = [0.3, 0.4], [0.06, 0.08]
    out = gradlab.adaptive_clip([tf.constant(G)], [keras.Variable(W)], clipping=0.1)
    assert_grads_close(out, [expected])


def test_adaptive_clip_conv_kernel_numpy_reference():
    """AGC on a (3,3,2,4) kernel and a bias against the paper's formula in float64 numpy."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    G = (rng.normal(size=(3, 3, 2, 4)) * np.array([0.01, 0.1, 1.0, 10.0])).astype(np.float32)
    b, gb = np.zeros(4, np.float32), np.full(4, 0.5, np.float32)
    lam, eps = 0.05, 1e-3

    def agc(g, w, axes):
        wn = np.sqrt(np.sum(np.float64(w) ** 2, axis=axes, keepdims=True))
        gn = np.sqrt(np.sum(np.float64(g) ** 2, axis=axes, keepdims=True))
        return g * np.minimum(1.0, lam * np.maximum(wn, eps) / gn)

    out = gradlab.adaptive_clip([tf.constant(G), tf.constant(gb)], [keras.Variable(W), keras.Variable(b)], lam, eps)
    expected = [agc(G, W, (0, 1, 2)), agc(gb, b, None)]
    assert not np.allclose(expected[0], G)  # some units clipped
    assert np.allclose(expected[0][..., 0], G[..., 0])  # the smallest unit kept
    assert_grads_close(out, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "make_weight",
    [keras.Variable, tf.Variable, tf.constant],
    ids=["keras.Variable", "tf.Variable", "tf.Tensor"],
)
def test_adaptive_clip_accepts_any_weight_kind(make_weight):
    """The docstring accepts 'variables (or weight tensors)': Keras variables, tf.Variables and tensors."""
    W = make_weight(np.array([[1.0, 0.0], [0.0, 2.0]], np.float32))
    out = gradlab.adaptive_clip([tf.constant([[3.0, 0.0], [4.0, 1.0]])], [W], clipping=0.5)
    assert_grads_close(out, [[[0.3, 0.0], [0.4, 1.0]]])


def test_adaptive_clip_keeps_none_and_indexed_slices():
    """None stays None; an IndexedSlices gradient stays IndexedSlices with clipped values."""
    emb = keras.Variable(np.full((4, 2), 1.0, np.float32))  # column norms 2
    # values rows [3,0],[4,0]: column 0 norm 5 -> bound 0.1*2=0.2, factor 0.04; column 1 zero
    g = tf.IndexedSlices(tf.constant([[3.0, 0.0], [4.0, 0.0]]), tf.constant([0, 2]), tf.constant([4, 2]))
    out = gradlab.adaptive_clip([None, g], [keras.Variable([1.0]), emb], clipping=0.1)
    assert out[0] is None
    assert isinstance(out[1], tf.IndexedSlices)
    np.testing.assert_allclose(out[1].values.numpy(), [[0.12, 0.0], [0.16, 0.0]], rtol=1e-6)


@pytest.mark.parametrize(
    "grads, norm, expected",
    [
        ([[3.0, 4.0], [0.0, 0.5]], 1.0, [[0.6, 0.8], [0.0, 1.0]]),  # /5 and /0.5
        ([[3.0, 4.0], [0.0, 0.5]], 2.0, [[1.2, 1.6], [0.0, 2.0]]),  # *2/5 and *2/0.5
        ([[0.0, 0.0], [0.0, -0.25]], 1.0, [[0.0, 0.0], [0.0, -1.0]]),  # zero tensor stays zero
    ],
    ids=["unit", "norm=2", "zero-tensor"],
)
def test_normalize_hand_vectors(grads, norm, expected):
    """normalize scales each tensor to the target norm on its own; small ones grow; zero stays zero."""
    out = gradlab.scaling.normalize([tf.constant(g) for g in grads], norm=norm)
    assert_grads_close(out, expected)


@pytest.mark.parametrize(
    "grads, norm, expected",
    [
        ([[0.3, 0.0], [0.0, 0.4]], 1.0, [[0.6, 0.0], [0.0, 0.8]]),  # global norm 0.5 -> *2
        ([[3.0], [0.0, 4.0]], 10.0, [[6.0], [0.0, 8.0]]),  # global norm 5 -> *2
        ([[0.0, 0.0], [0.0]], 1.0, [[0.0, 0.0], [0.0]]),  # all zero stays zero
    ],
    ids=["grow", "norm=10", "all-zero"],
)
def test_normalize_global_hand_vectors(grads, norm, expected):
    """normalize_global scales all tensors together to the target global norm; all-zero stays zero."""
    out = gradlab.scaling.normalize_global([tf.constant(g) for g in grads], norm=norm)
    assert_grads_close(out, expected)


def test_normalize_keeps_none_and_indexed_slices():
    """None stays in place and IndexedSlices stay IndexedSlices under both normalizations."""
    g = [None, tf.IndexedSlices(tf.constant([[3.0, 4.0]]), tf.constant([1]), tf.constant([3, 2]))]
    for fn in (gradlab.scaling.normalize, gradlab.scaling.normalize_global):
        out = fn(g)
        assert_same_structure(out, g)
        np.testing.assert_allclose(out[1].values.numpy(), [[0.6, 0.8]], rtol=1e-6)


# ---------------------------------------------------------------- float16
def test_float16_global_norm_is_finite_and_exact():
    """[60000, 60000] float16: float32 norm equals float64 math, while TF's float16 norm overflows."""
    g = [tf.constant([60000.0, 60000.0], tf.float16)]
    expected = np.sqrt(2 * np.float64(60000.0) ** 2)
    norm = gradlab.global_norm(g)
    assert norm.dtype == tf.float32
    np.testing.assert_allclose(float(norm), expected, rtol=1e-6)
    assert np.isinf(float(tf.linalg.global_norm(g)))


@pytest.mark.parametrize("mode", list(PURE))
def test_float16_clipping_stays_float16_and_finite(mode):
    """Clipping float16 gradients near 65504 returns float16, finite, with the float64 answer."""
    g = [tf.constant([60000.0, 60000.0], tf.float16), tf.constant([-30000.0], tf.float16)]
    out = PURE[mode](g, 1.0)
    big = np.float64(60000.0)
    expected = {
        "value": [[1.0, 1.0], [-1.0]],
        "norm": [[1 / np.sqrt(2), 1 / np.sqrt(2)], [-1.0]],
        "global_norm": [[big / np.sqrt(2 * big**2 + 30000.0**2)] * 2, [-30000.0 / np.sqrt(2 * big**2 + 30000.0**2)]],
    }[mode]
    for o, e in zip(out, expected):
        assert o.dtype == tf.float16
        assert np.isfinite(o.numpy()).all()
        np.testing.assert_allclose(o.numpy().astype(np.float64), e, rtol=1e-3)  # one float16 ulp is 2**-10


@pytest.mark.parametrize("mode", ["norm", "global_norm"])
def test_float16_clipping_of_a_large_tensor_keeps_the_bound(mode):
    """A (1024, 1024) float16 gradient of 60000s clipped to norm 1: each entry 1/1024, not 0.

    The norm is 60000 * 1024 = 6.1e7 (finite in float32); the factor 1.6e-8 is below float16's
    smallest subnormal, so it must not be cast to float16 before multiplying.
    """
    g = [tf.fill((1024, 1024), tf.constant(60000.0, tf.float16))]
    out = PURE[mode](g, 1.0)[0]
    assert out.dtype == tf.float16
    np.testing.assert_allclose(out.numpy()[:2, :2].astype(np.float64), np.full((2, 2), 1 / 1024), rtol=1e-3)
    np.testing.assert_allclose(float(gradlab.global_norm([out])), 1.0, rtol=1e-3)


@pytest.mark.parametrize(
    "fn", [gradlab.scaling.normalize, gradlab.scaling.normalize_global], ids=["normalize", "normalize_global"]
)
@pytest.mark.parametrize("grad", [[0.0, 0.0], [1e-6, 0.0]], ids=["zero", "tiny"])
def test_float16_normalize_stays_finite(fn, grad):
    """float16: an all-zero tensor stays zero and a tiny one gets the target norm, never inf or NaN."""
    out = fn([tf.constant(grad, tf.float16)])[0]
    assert out.dtype == tf.float16
    expected = [0.0, 0.0] if grad[0] == 0 else [1.0, 0.0]
    np.testing.assert_allclose(out.numpy().astype(np.float64), expected, atol=1e-3)


# ---------------------------------------------------------------- properties
# Magnitudes 0 or in [1e-6, 1e3]: smaller squares underflow in float32 and TF flushes subnormals to zero.
FLOATS = st.floats(-1e3, 1e3, width=32, allow_subnormal=False).filter(lambda x: x == 0 or abs(x) >= 1e-6)
THRESHOLDS = st.floats(float(np.float32(1e-3)), 1e3, width=32)
ARRAYS = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), elements=FLOATS)
GRAD_LISTS = st.lists(ARRAYS, min_size=1, max_size=3)
PROP = settings(max_examples=40, deadline=None, database=None)


def norms64(arrays):
    return [np.linalg.norm(np.float64(a)) for a in arrays]


def cosine(a, b):
    a, b = np.float64(a).ravel(), np.float64(b).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@PROP
@given(GRAD_LISTS, THRESHOLDS)
@example([np.array([1.0], np.float32)], 61.0)  # 61 * float32(1/61) != 1
def test_clip_by_norm_properties(arrays, t):
    """Each tensor's norm <= t, direction kept, idempotent, and exact identity below the bound."""
    out = [o.numpy() for o in gradlab.clip_by_norm([tf.constant(a) for a in arrays], t)]
    for a, o, n_in, n_out in zip(arrays, out, norms64(arrays), norms64(out)):
        assert n_out <= t * (1 + 1e-5)
        if n_in > 1e-3:
            assert cosine(a, o) == pytest.approx(1.0, abs=1e-5)
        if n_in <= t * (1 - 1e-5):
            np.testing.assert_array_equal(o, a)
    again = [o.numpy() for o in gradlab.clip_by_norm([tf.constant(o) for o in out], t)]
    for o, o2 in zip(out, again):
        np.testing.assert_allclose(o2, o, rtol=1e-5, atol=1e-6 * t)


@PROP
@given(GRAD_LISTS, THRESHOLDS)
@example([np.array([1.0], np.float32)], 41.0)  # 41 * float32(1/41) != 1
def test_clip_by_global_norm_properties(arrays, t):
    """Global norm <= t, whole-vector direction kept, idempotent, exact identity below the bound."""
    out = [o.numpy() for o in gradlab.clip_by_global_norm([tf.constant(a) for a in arrays], t)]
    n_in, n_out = np.linalg.norm(norms64(arrays)), np.linalg.norm(norms64(out))
    assert n_out <= t * (1 + 1e-5)
    flat_in, flat_out = np.concatenate([a.ravel() for a in arrays]), np.concatenate([o.ravel() for o in out])
    if n_in > 1e-3:
        assert cosine(flat_in, flat_out) == pytest.approx(1.0, abs=1e-5)
    if n_in <= t * (1 - 1e-5):
        for a, o in zip(arrays, out):
            np.testing.assert_array_equal(o, a)
    again = [o.numpy() for o in gradlab.clip_by_global_norm([tf.constant(o) for o in out], t)]
    for o, o2 in zip(out, again):
        np.testing.assert_allclose(o2, o, rtol=1e-5, atol=1e-6 * t)


@PROP
@given(GRAD_LISTS, THRESHOLDS)
def test_clip_by_value_properties(arrays, t):
    """Every entry within [-t, t], entries inside unchanged, idempotent."""
    tensors = [tf.constant(a) for a in arrays]
    out = [o.numpy() for o in gradlab.clip_by_value(tensors, t)]
    t32 = np.float32(t)
    for a, o in zip(arrays, out):
        assert np.all(np.abs(o) <= t32)
        inside = np.abs(a) <= t32
        np.testing.assert_array_equal(o[inside], a[inside])
        np.testing.assert_array_equal(o[~inside], np.sign(a[~inside]) * t32)
    again = [o.numpy() for o in gradlab.clip_by_value([tf.constant(o) for o in out], t)]
    for o, o2 in zip(out, again):
        np.testing.assert_array_equal(o2, o)


@PROP
@given(GRAD_LISTS, THRESHOLDS)
def test_normalize_properties(arrays, t):
    """Each non-zero tensor gets norm t with its direction kept; applying it twice changes nothing."""
    out = [o.numpy() for o in gradlab.scaling.normalize([tf.constant(a) for a in arrays], norm=t)]
    for a, o, n_in, n_out in zip(arrays, out, norms64(arrays), norms64(out)):
        if n_in > 1e-3:
            assert n_out == pytest.approx(t, rel=1e-5)
            assert cosine(a, o) == pytest.approx(1.0, abs=1e-5)
            again = gradlab.scaling.normalize([tf.constant(o)], norm=t)[0].numpy()
            np.testing.assert_allclose(again, o, rtol=1e-5, atol=1e-6 * t)
        elif n_in == 0:
            assert not o.any()


@PROP
@given(GRAD_LISTS, THRESHOLDS)
def test_normalize_global_properties(arrays, t):
    """A non-zero gradient list gets global norm t, whole direction kept; twice changes nothing."""
    out = [o.numpy() for o in gradlab.scaling.normalize_global([tf.constant(a) for a in arrays], norm=t)]
    n_in, n_out = np.linalg.norm(norms64(arrays)), np.linalg.norm(norms64(out))
    if n_in > 1e-3:
        assert n_out == pytest.approx(t, rel=1e-5)
        flat_in, flat_out = np.concatenate([a.ravel() for a in arrays]), np.concatenate([o.ravel() for o in out])
        assert cosine(flat_in, flat_out) == pytest.approx(1.0, abs=1e-5)
        again = [o.numpy() for o in gradlab.scaling.normalize_global([tf.constant(o) for o in out], norm=t)]
        for o, o2 in zip(out, again):
            np.testing.assert_allclose(o2, o, rtol=1e-5, atol=1e-6 * t)
    elif n_in == 0:
        assert not any(o.any() for o in out)


@PROP
@given(
    hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 3)), elements=FLOATS),
    hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 3)), elements=FLOATS),
    THRESHOLDS,
)
@example(np.array([[1.0]], np.float32), np.array([[0.5]], np.float32), 41.0)  # bound 41, factor 41 * (1/41)
def test_adaptive_clip_properties(w, g, lam):
    """Each unit's gradient norm <= lam * max(|W_unit|, eps), direction kept, idempotent."""
    if w.shape != g.shape:
        g = np.resize(g, w.shape)
    eps = 1e-3
    W = keras.Variable(w)
    out = gradlab.adaptive_clip([tf.constant(g)], [W], clipping=lam, eps=eps)[0].numpy()
    # np.asarray, not np.float64(): NumPy < 2 turns a one-element array into a 0-d scalar.
    bound = lam * np.maximum(np.linalg.norm(np.asarray(w, np.float64), axis=0), eps)
    g_norm = np.linalg.norm(np.asarray(g, np.float64), axis=0)
    out_norm = np.linalg.norm(np.asarray(out, np.float64), axis=0)
    assert np.all(out_norm <= bound * (1 + 1e-5))
    for j in range(g.shape[1]):
        if g_norm[j] > 1e-3:
            assert cosine(g[:, j], out[:, j]) == pytest.approx(1.0, abs=1e-5)
        if g_norm[j] <= bound[j] * (1 - 1e-5):
            np.testing.assert_array_equal(out[:, j], g[:, j])
    again = gradlab.adaptive_clip([tf.constant(out)], [W], clipping=lam, eps=eps)[0].numpy()
    np.testing.assert_allclose(again, out, rtol=1e-5, atol=1e-6 * lam)


@pytest.mark.parametrize("shape", [(7,), (1000,), (33, 37), (64, 8), (3, 5, 41)], ids=str)
def test_xla_squared_norms_sum_the_same_squares(shape):
    """Under XLA the squared norms are summed in rows of 8 first (faster on CPU): the same sum."""
    from gradlab.scaling import kernels

    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    xla = tf.function(kernels.squared_norm, jit_compile=True)
    assert float(xla(tf.constant(x))) == pytest.approx(float(np.sum(x.astype(np.float64) ** 2)), rel=1e-6)


@pytest.mark.parametrize("n", [1000, (1 << 18) - 1, 1 << 18, 3 * (1 << 18) + 5], ids=str)
def test_squared_norm_on_both_sides_of_the_fused_size(n):
    """Below FUSED_FROM entries reduce_sum(square), from there tf.nn.l2_loss: the same sum, eager and compiled."""
    from gradlab.scaling import kernels

    x = np.random.default_rng(1).normal(size=n).astype(np.float32)
    reference = float(np.sum(x.astype(np.float64) ** 2))
    for fn in (kernels.squared_norm, tf.function(kernels.squared_norm)):
        assert float(fn(tf.constant(x))) == pytest.approx(reference, rel=1e-5)
