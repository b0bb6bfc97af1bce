"""Per-example clipping (DP-SGD's clipping step) against optax.

Reference: google-deepmind/optax, ``optax/transforms/_clipping.py`` (commit 16f05fd):
``per_example_global_norm_clip(grads, l2_norm_clip)`` (``global_grad_norms =
vmap(tree.norm)(grads)``; ``multipliers = nan_to_num(minimum(l2_norm_clip / norms, 1.0),
nan=1.0)``; ``num_clipped = sum(multipliers < 1.0)``; ``tensordot(multipliers, g, axes=1)``)
and ``per_example_layer_norm_clip(grads, global_l2_norm_clip, uniform=True)`` (per-layer
clip ``C * (1 / num_layers) ** 0.5``, or ``C * (g[0].size / total_params) ** 0.5``), ported
to numpy below; and the test vectors of ``optax/transforms/_clipping_test.py``
(commit 615d7b3): ``test_per_example_global_norm_clip``, ``test_per_example_layer_norm_clip``,
plus the docstring examples of both functions.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradlab.scaling import per_example_global_norm_clip, per_example_layer_norm_clip, per_example_norms


def optax_global(grads, clip):
    grads = [np.asarray(g, np.float64) for g in grads]
    norms = np.sqrt(sum(np.sum(g.reshape(len(g), -1) ** 2, axis=1) for g in grads))
    with np.errstate(divide="ignore", invalid="ignore"):
        multipliers = np.nan_to_num(np.minimum(clip / norms, 1.0), nan=1.0)
    return [np.tensordot(multipliers, g, axes=1) for g in grads], int(np.sum(multipliers < 1.0))


def optax_layer(grads, clip, uniform=True):
    total = sum(np.asarray(g)[0].size for g in grads)
    out, counts = [], []
    for g in grads:
        share = 1.0 / len(grads) if uniform else np.asarray(g)[0].size / total
        (s,), n = optax_global([g], clip * share**0.5)
        out.append(s)
        counts.append(n)
    return out, counts


# ---------------------------------------------------------------- optax's own vectors
def test_optax_test_per_example_global_norm_clip():
    """_clipping_test.py::test_per_example_global_norm_clip: 4 examples, 2 tensors, clip 1.0."""
    grads = [
        tf.constant([[0, -0.5], [3, 4], [5, 6], [0, 0]], tf.float32),
        tf.constant([[0], [5], [-3], [0]], tf.float32),
    ]
    answer = [
        np.array([0, -0.5]) + np.array([3, 4]) / np.sqrt(50) + np.array([5, 6]) / np.sqrt(70),
        np.array([0]) + np.array([5]) / np.sqrt(50) + np.array([-3]) / np.sqrt(70),
    ]
    out, num_clipped = per_example_global_norm_clip(grads, l2_norm_clip=1.0)
    for actual, expected in zip(out, answer):
        np.testing.assert_allclose(actual.numpy(), expected, atol=1e-6)
    assert int(num_clipped) == 2


@pytest.mark.parametrize(
    "clip, expected, clipped", [(float("inf"), 7.0, 0), (0.0, 0.0, 3), (1.25, 1.75, 3)], ids=["inf", "zero", "1.25"]
)
def test_optax_docstring_per_example_global_norm_clip(clip, expected, clipped):
    """optax's docstring: [[0,0,0],[0,3,4],[4,0,3],[3,4,0]] -> 7 / 0 / 1.75 per entry, 0 / 3 / 3 clipped."""
    grads = [tf.constant([[0, 0, 0], [0, 3, 4], [4, 0, 3], [3, 4, 0]], tf.float32)]
    out, n = per_example_global_norm_clip(grads, clip)
    np.testing.assert_allclose(out[0].numpy(), [expected] * 3, rtol=1e-6)
    assert int(n) == clipped
    layer_out, layer_n = per_example_layer_norm_clip(grads, clip)  # one layer: the same
    np.testing.assert_allclose(layer_out[0].numpy(), [expected] * 3, rtol=1e-6)
    assert [int(c) for c in layer_n] == [clipped]


def test_optax_test_per_example_layer_norm_clip_uniform():
    """_clipping_test.py::test_per_example_layer_norm_clip, uniform: per-layer clip 1.0."""
    grads = [tf.constant([[0.5], [1.5], [-2.0], [3.0]]), tf.ones([4, 3, 3, 2])]
    out, n = per_example_layer_norm_clip(grads, global_l2_norm_clip=np.sqrt(2), uniform=True)
    assert float(out[0][0]) == pytest.approx(1.5, abs=1e-6)
    np.testing.assert_allclose(out[1].numpy(), np.full((3, 3, 2), 4 / np.sqrt(18)), atol=1e-4)
    assert [int(c) for c in n] == [3, 4]


def test_optax_test_per_example_layer_norm_clip_scaled():
    """_clipping_test.py::test_per_example_layer_norm_clip, scaled: clips 1.0 and sqrt(18); layer 1 unclipped."""
    grads = [tf.constant([[0.5], [1.5], [-2.0], [3.0]]), tf.ones([4, 3, 3, 2])]
    out, n = per_example_layer_norm_clip(grads, global_l2_norm_clip=np.sqrt(19), uniform=False)
    assert float(out[0][0]) == pytest.approx(1.5, abs=1e-6)
    np.testing.assert_allclose(out[1].numpy(), np.full((3, 3, 2), 4.0), atol=1e-5)
    assert [int(c) for c in n] == [3, 0]


# ---------------------------------------------------------------- random inputs vs the port
@pytest.mark.parametrize("clip", [0.3, 1.0, 5.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_batches_equal_optax_port(clip, seed):
    rng = np.random.default_rng(seed)
    batch = int(rng.integers(1, 9))
    shapes = [(batch, 3, 2), (batch, 4), (batch,)]
    grads = [rng.normal(size=s) * rng.uniform(0.05, 3.0) for s in shapes]
    tf_grads = [tf.constant(g, tf.float32) for g in grads]
    out, n = per_example_global_norm_clip(tf_grads, clip)
    ref, ref_n = optax_global(grads, clip)
    for o, r in zip(out, ref):
        np.testing.assert_allclose(o.numpy(), r, rtol=1e-5, atol=1e-6)
    assert int(n) == ref_n
    for uniform in (True, False):
        out, counts = per_example_layer_norm_clip(tf_grads, clip, uniform=uniform)
        ref, ref_counts = optax_layer(grads, clip, uniform)
        for o, r in zip(out, ref):
            np.testing.assert_allclose(o.numpy(), r, rtol=1e-5, atol=1e-6)
        assert [int(c) for c in counts] == ref_counts


def test_mean_reduction_divides_by_batch_and_none_stays_none():
    grads = [tf.constant([[3.0, 4.0], [0.3, 0.4]]), None]
    out, n = per_example_global_norm_clip(grads, 1.0, reduction="mean")
    np.testing.assert_allclose(out[0].numpy(), [(0.6 + 0.3) / 2, (0.8 + 0.4) / 2], rtol=1e-6)
    assert out[1] is None and int(n) == 1
    out, counts = per_example_layer_norm_clip(grads, 1.0, reduction="mean")
    assert out[1] is None and counts[1] is None and int(counts[0]) == 1


def test_clipping_each_example_differs_from_clipping_the_average():
    """One outlier example: per-example clipping bounds its share; clipping the mean lets it set the direction."""
    grads = [tf.constant([[1.0, 0.0], [1.0, 0.0], [0.0, 100.0]])]
    out, _ = per_example_global_norm_clip(grads, 1.0, reduction="mean")
    np.testing.assert_allclose(out[0].numpy(), [2 / 3, 1 / 3], rtol=1e-6)
    mean = np.array([2.0, 100.0]) / 3
    clipped_mean = mean / np.linalg.norm(mean)  # clip_by_global_norm(mean, 1.0)
    assert clipped_mean[1] > 0.99  # almost all of it from the outlier


def test_float16_gradients_norms_in_float32():
    """Entries of 300 square to inf in float16; the norms are float32, the result keeps float16."""
    grads = [tf.constant([[300.0, 400.0], [0.0, 0.0]], tf.float16)]
    norms = per_example_norms(grads)
    assert norms.dtype == tf.float32
    np.testing.assert_allclose(norms.numpy(), [500.0, 0.0])
    out, n = per_example_global_norm_clip(grads, 5.0)
    assert out[0].dtype == tf.float16
    np.testing.assert_allclose(out[0].numpy(), [3.0, 4.0], rtol=1e-3)


def test_in_tf_function_with_tensor_clip():
    fn = tf.function(lambda g, c: per_example_global_norm_clip([g], c))
    out, n = fn(tf.constant([[3.0, 4.0], [0.0, 0.5]]), tf.constant(1.0))
    np.testing.assert_allclose(out[0].numpy(), [0.6, 1.3], rtol=1e-6)
    assert int(n) == 1


@pytest.mark.parametrize(
    "call, parts",
    [
        (lambda: per_example_global_norm_clip([tf.constant(1.0)], 1.0), ("leading batch axis", "grads[0] of shape ()")),
        (
            lambda: per_example_global_norm_clip([tf.ones([3, 2]), tf.ones([4])], 1.0),
            ("same batch size", "grads[0] with 3 examples, grads[1] with 4"),
        ),
        (
            lambda: per_example_global_norm_clip([tf.IndexedSlices(tf.ones([1, 2]), [0], [3, 2])], 1.0),
            ("dense per-example gradients", "IndexedSlices"),
        ),
        (lambda: per_example_global_norm_clip([tf.ones([2, 2])], -1.0), ("Argument `l2_norm_clip`", "in [0, inf)")),
        (lambda: per_example_global_norm_clip([tf.ones([2, 2])], float("nan")), ("Argument `l2_norm_clip`", "nan")),
        (
            lambda: per_example_global_norm_clip([tf.ones([2, 2])], 1.0, reduction="max"),
            ("Unknown reduction 'max'", "'sum', 'mean'", "Received: reduction='max'"),
        ),
        (
            lambda: per_example_layer_norm_clip([tf.ones([2, 2])], 1.0, uniform="yes"),
            ("Argument `uniform`", "True or False"),
        ),
        (lambda: per_example_layer_norm_clip([None], 1.0), ("at least one gradient",)),
    ],
    ids=[
        "no-batch-axis",
        "batch-mismatch",
        "indexed-slices",
        "negative-clip",
        "nan-clip",
        "reduction",
        "uniform",
        "only-none",
    ],
)
def test_bad_input_names_the_argument(call, parts):
    with pytest.raises(ValueError) as err:
        call()
    for part in parts:
        assert part in str(err.value)


# ---------------------------------------------------------------- properties

PROP = settings(max_examples=25, deadline=None, database=None)


@PROP
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 5), st.integers(1, 4)),
        # TensorFlow's CPU kernels flush subnormal floats to zero (1e-45 comes back 0, its cosine NaN)
        elements=st.floats(-100, 100, width=32, allow_subnormal=False),
    ),
    st.floats(0.01, 50.0),
)
@example(g=np.array([[2.8409138e-14]], np.float32), clip=1.0)  # a tiny example: once failed the test's own cosine
def test_per_example_properties(g, clip):
    """Each example ends at norm <= C (so the sum at <= batch * C), direction kept, under C unchanged."""
    (out,), n = per_example_global_norm_clip([tf.constant(g)], clip)
    norms = np.sqrt(np.sum(g.astype(np.float64) ** 2, axis=1))  # (numpy 1.26: np.float64 of a 1x1 array is a scalar)
    assert np.sqrt(np.sum(out.numpy() ** 2)) <= len(g) * clip * (1 + 1e-5) + 1e-6
    borderline = int(np.sum(np.isclose(norms, clip, rtol=1e-5)))  # float32 may round either way there
    assert abs(int(n) - int(np.sum(norms > clip))) <= borderline
    if np.all(norms <= clip * (1 - 1e-6)):
        np.testing.assert_allclose(out.numpy(), g.sum(axis=0), rtol=1e-5, atol=1e-4)
    (one,), _ = per_example_global_norm_clip([tf.constant(g[:1])], clip)  # one example: direction kept
    if norms[0] > 0:
        # float64 and no epsilon: for an example of norm 3e-14 an added 1e-30 would be 0.1% of the product
        kept = one.numpy().astype(np.float64)
        cos = kept @ g[0].astype(np.float64) / (np.sqrt(np.sum(kept**2)) * norms[0])
        assert cos == pytest.approx(1.0, abs=1e-5)
