"""gradlab.adaptive_clip's ``axis=`` against optax's adaptive_grad_clip.

Reference: google-deepmind/optax, ``optax/transforms/_clipping.py`` (commit 16f05fd):
``unitwise_norm(x, axis)`` (axis given: ``sum(|x|**2, axis, keepdims=True)``; else a tensor
whose squeeze has rank <= 1 is one unit, rank 2 and 3 reduce axis 0, rank 4 axes (0, 1, 2),
other ranks raise), ``unitwise_clip(g_norm, max_norm, grad, div_eps=1e-6)``
(``where(g_norm < max_norm, grad, grad * max_norm / max(g_norm, div_eps))``) and
``adaptive_grad_clip(clipping, eps=1e-3, axis=None)`` (``max_norm = clipping *
max(p_norm, eps)``), ported to numpy below. gradlab's default (``axis=None``) is its
Keras rule, every axis but the last, which equals optax with that axis given explicitly.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from gradlab.scaling import adaptive_clip, unit_norms


def optax_unitwise_norm(x, axis=None):
    x = np.asarray(x, np.float64)
    if axis is not None:
        sq = np.sum(x**2, axis=axis, keepdims=True)
    elif np.squeeze(x).ndim <= 1:
        sq = np.sum(x**2, keepdims=True)
    elif x.ndim in (2, 3):
        sq = np.sum(x**2, axis=0, keepdims=True)
    elif x.ndim == 4:
        sq = np.sum(x**2, axis=(0, 1, 2), keepdims=True)
    else:
        raise ValueError(x.shape)
    return np.broadcast_to(np.sqrt(sq), x.shape)


def optax_adaptive_grad_clip(grads, params, clipping, eps=1e-3, axis=None):
    out = []
    for g, p in zip(grads, params):
        g = np.asarray(g, np.float64)
        g_norm, p_norm = optax_unitwise_norm(g, axis), optax_unitwise_norm(p, axis)
        max_norm = clipping * np.maximum(p_norm, eps)
        clipped = g * (max_norm / np.maximum(g_norm, 1e-6))
        out.append(np.where(g_norm < max_norm, g, clipped))
    return out


SHAPES = {
    "bias": (5,),
    "kernel-1xout": (1, 4),
    "dense": (3, 4),
    "multihead-3d": (3, 2, 4),
    "conv2d": (3, 3, 2, 4),
}


def random_pair(shape, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape)
    g = rng.normal(size=shape) * rng.uniform(0.001, 0.05, size=shape[-1:])  # some units clipped, some not
    return g.astype(np.float32), w.astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("seed", [0, 1])
def test_axis_optax_equals_optax_default_rule(shape, seed):
    """axis='optax' == optax.adaptive_grad_clip(0.02) (axis=None there) on every layout optax knows."""
    g, w = random_pair(shape, seed)
    (ours,) = adaptive_clip([tf.constant(g)], [tf.constant(w)], clipping=0.02, axis="optax")
    (ref,) = optax_adaptive_grad_clip([g], [w], 0.02)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_default_axis_equals_optax_with_every_axis_but_the_last(shape):
    """gradlab's Keras rule == optax with axis=(0, ..., rank-2) (rank <= 1: one unit)."""
    g, w = random_pair(shape, 2)
    axis = tuple(range(len(shape) - 1)) if len(shape) > 1 else None
    (ours,) = adaptive_clip([tf.constant(g)], [tf.constant(w)], clipping=0.02)
    (ref,) = optax_adaptive_grad_clip([g], [w], 0.02, axis=axis)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "shape, axis",
    [((3, 3, 3, 2, 4), (0, 1, 2, 3)), ((3, 2, 4), 0), ((3, 2, 4), (0, 1)), ((3, 4), -1), ((3, 2, 4), (-3, -2))],
    ids=["conv3d-0123", "multihead-axis0", "multihead-01", "dense-axis-1", "negative"],
)
def test_explicit_axis_equals_optax(shape, axis):
    """adaptive_clip(..., axis=a) == optax.adaptive_grad_clip(..., axis=a), e.g. Conv3D (rank 5)."""
    g, w = random_pair(shape, 3)
    (ours,) = adaptive_clip([tf.constant(g)], [tf.constant(w)], clipping=0.02, axis=axis)
    (ref,) = optax_adaptive_grad_clip([g], [w], 0.02, axis=axis)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-8)


def test_multihead_hand_vector():
    """A (1, 2, 2) multi-head kernel W = 1, G = [[3, 0], [0, 4]] per head, clipping 0.5.

    Default (units over the last axis; axes 0, 1 summed): unit norms ||W|| = sqrt 2 and
    ||G|| = 3 and 4, bound 0.5 sqrt 2 = 0.7071: G -> [[0.7071, 0], [0, 0.7071]].
    axis=0 (optax's rank-3 rule): 4 units of one entry; ||W|| = 1, bound 0.5: G -> [[0.5, 0], [0, 0.5]].
    """
    w = tf.ones((1, 2, 2))
    g = tf.constant([[[3.0, 0.0], [0.0, 4.0]]])
    (default,) = adaptive_clip([g], [w], clipping=0.5)
    (optax_rule,) = adaptive_clip([g], [w], clipping=0.5, axis="optax")
    np.testing.assert_allclose(default.numpy(), [[[0.5**0.5, 0.0], [0.0, 0.5**0.5]]], rtol=1e-6)
    np.testing.assert_allclose(optax_rule.numpy(), [[[0.5, 0.0], [0.0, 0.5]]], rtol=1e-6)


def test_1xout_kernel_is_one_unit_under_optax():
    """optax squeezes (1, out) to a vector: one unit. gradlab's rule: out units of one entry."""
    w = tf.constant([[1.0, 1.0]])
    g = tf.constant([[0.3, 0.4]])
    np.testing.assert_allclose(unit_norms(g, "optax").numpy(), [[0.5]])
    np.testing.assert_allclose(unit_norms(g).numpy(), [[0.3, 0.4]])
    (ours,) = adaptive_clip([g], [w], clipping=0.25, axis="optax")  # bound 0.25 sqrt 2 = 0.354 < 0.5
    np.testing.assert_allclose(ours.numpy(), optax_adaptive_grad_clip([g.numpy()], [w.numpy()], 0.25)[0], rtol=1e-6)


def test_indexed_slices_with_axis_within_rows():
    """Embedding rows as units (axis=1): an IndexedSlices gradient uses the rows it touches."""
    w = tf.constant(np.arange(1.0, 13.0).reshape(6, 2), tf.float32)
    rows = tf.constant([[3.0, 4.0], [0.01, 0.0]])
    g = tf.IndexedSlices(rows, tf.constant([1, 4]), tf.constant([6, 2]))
    (out,) = adaptive_clip([g], [w], clipping=0.1, axis=1)
    dense = np.zeros((6, 2), np.float32)
    dense[[1, 4]] = rows.numpy()
    ref = optax_adaptive_grad_clip([dense], [w.numpy()], 0.1, axis=1)[0]
    assert isinstance(out, tf.IndexedSlices)
    np.testing.assert_allclose(out.values.numpy(), ref[[1, 4]], rtol=1e-6)


@pytest.mark.parametrize(
    "axis, shape, parts",
    [
        (2, (3, 4), ("Argument `axis` must name axes of every gradient", "Received: axis=2", "shape (3, 4)")),
        (-3, (3, 4), ("Argument `axis`", "Received: axis=-3")),
        ("optax", (2, 2, 2, 2, 2), ("Argument `axis`='optax' takes tensors of rank 1 to 4", "(2, 2, 2, 2, 2)")),
        ("last", (3, 4), ("Argument `axis` must be None", "'optax', an int or a non-empty tuple", "axis='last'")),
        (True, (3, 4), ("Argument `axis` must be None", "Received: axis=True")),
        ((), (3, 4), ("Argument `axis` must be None", "Received: axis=()")),
        ((0, -2), (3, 4), ("must not repeat an axis", "Received: axis=(0, -2)")),
    ],
    ids=["out-of-range", "negative-out-of-range", "optax-rank-5", "string", "bool", "empty", "repeated"],
)
def test_bad_axis_names_the_argument(axis, shape, parts):
    w = tf.ones(shape)
    with pytest.raises(ValueError) as err:
        adaptive_clip([tf.ones(shape), None], [w, None], axis=axis)
    for part in parts:
        assert part in str(err.value)


@settings(max_examples=25, deadline=None, database=None)
@given(st.integers(0, 10_000), st.sampled_from([None, "optax", 0, (0, 1), -1]), st.floats(0.001, 1.0))
def test_agc_axis_properties(seed, axis, clipping):
    """Every unit ends at norm <= clipping * max(||W_unit||, eps); units under it unchanged; == optax."""
    g, w = random_pair((3, 2, 4), seed)
    (out,) = adaptive_clip([tf.constant(g * 10)], [tf.constant(w)], clipping=clipping, axis=axis)
    ref_axis = (0, 1) if axis is None else (None if axis == "optax" else axis)
    bound = clipping * np.maximum(optax_unitwise_norm(w, ref_axis), 1e-3)
    assert np.all(optax_unitwise_norm(out.numpy(), ref_axis) <= bound * (1 + 1e-5))
    (ref,) = optax_adaptive_grad_clip([g * 10], [w], clipping, axis=ref_axis)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-8)
