"""Tests of the stateful adaptive clippers AutoClip and ZClip (gradlab.scaling.autoclip, gradlab.scaling.zclip).

References: numpy.percentile (linear) for AutoClip (Seetharaman et al. 2020); the ZClip
paper's z-score, reciprocal bound and EMA formulas (Kumar et al. 2025), computed by hand.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import gradlab

PROP = settings(max_examples=30, deadline=None, database=None)


def grads_with_norm(n):
    """Two tensors whose global norm is n: [0.6 n] and [[0, 0.8 n]]."""
    return [tf.constant([0.6 * n]), tf.constant([[0.0, 0.8 * n]])]


def norm_of(grads):
    return float(np.sqrt(sum(np.sum(np.float64(g.numpy()) ** 2) for g in grads if g is not None)))


def flat(grads):
    return np.concatenate([np.ravel(g.numpy()) for g in grads])


# ---------------------------------------------------------------- AutoClip
NORMS = [5.0, 1.0, 3.0, 8.0, 2.0, 6.0, 4.0, 0.5, 7.0]


@pytest.mark.parametrize("history_size", [3, 100], ids=["ring-wraps", "no-wrap"])
@pytest.mark.parametrize("percentile", [10.0, 50.0, 75.0, 100.0], ids=lambda p: f"p={p:g}")
def test_autoclip_bound_is_numpy_percentile_of_history(percentile, history_size):
    """The bound is numpy.percentile (linear) of the last history_size norms; grads clipped to it."""
    clip = gradlab.scaling.AutoClip(percentile=percentile, history_size=history_size)
    seen = []
    for n in NORMS:
        grads = grads_with_norm(n)
        seen.append(norm_of(grads))
        out = clip(grads)
        expected_bound = np.percentile(seen[-history_size:], percentile)  # method="linear"
        assert float(clip.bound) == pytest.approx(expected_bound, rel=1e-6)
        assert norm_of(out) == pytest.approx(min(seen[-1], expected_bound), rel=1e-6)
        if seen[-1] <= expected_bound:
            for o, g in zip(out, grads):
                np.testing.assert_array_equal(o.numpy(), g.numpy())  # below the bound: unchanged
        else:
            np.testing.assert_allclose(flat(out), flat(grads) * expected_bound / seen[-1], rtol=1e-6)
    assert int(clip.count) == len(NORMS)


def test_autoclip_hand_numbers_after_wrap():
    """history_size 3, p=50: after norms 5,1,3,8 the window is [1,3,8]; median 3 clips 8 to 3."""
    clip = gradlab.scaling.AutoClip(percentile=50, history_size=3)
    for n in [5.0, 1.0, 3.0]:
        clip([tf.constant([n])])
    assert float(clip.bound) == pytest.approx(3.0)  # median of 5, 1, 3
    out = clip([tf.constant([0.0, 8.0])])  # window 1, 3, 8 (5 dropped)
    assert float(clip.bound) == pytest.approx(3.0)
    np.testing.assert_allclose(out[0].numpy(), [0.0, 3.0], rtol=1e-6)
    out = clip([tf.constant([6.0])])  # window 3, 8, 6 -> median 6: norm 6 passes unchanged
    assert float(clip.bound) == pytest.approx(6.0)
    np.testing.assert_array_equal(out[0].numpy(), [6.0])


def test_autoclip_keeps_none_and_indexed_slices():
    """None stays None; IndexedSlices keep their type; the norm counts their values."""
    clip = gradlab.scaling.AutoClip(percentile=50)
    clip([tf.constant([2.0])])  # history [2]
    g = tf.IndexedSlices(tf.constant([[3.0, 4.0]]), tf.constant([1]), tf.constant([3, 2]))
    out = clip([None, g])  # history [2, 5]: median 3.5
    assert out[0] is None and isinstance(out[1], tf.IndexedSlices)
    np.testing.assert_allclose(out[1].values.numpy(), [[3.0 * 0.7, 4.0 * 0.7]], rtol=1e-6)


@pytest.mark.parametrize("history_size", [4, 50], ids=["wraps", "no-wrap"])
def test_autoclip_in_tf_function_updates_state(history_size):
    """Inside a compiled step the state (history, count, bound) changes each call, no retrace."""
    clip = gradlab.scaling.AutoClip(percentile=50, history_size=history_size)
    fn = tf.function(lambda g: clip([g]))
    seen = []
    for n in NORMS:
        out = fn(tf.constant([n, 0.0]))
        seen.append(n)
        expected = np.percentile(seen[-history_size:], 50)
        assert float(clip.bound) == pytest.approx(expected, rel=1e-6)
        np.testing.assert_allclose(out[0].numpy(), [min(n, expected), 0.0], rtol=1e-6)
    assert int(clip.count) == len(NORMS)
    assert fn.experimental_get_tracing_count() == 1


@PROP
@given(
    st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=12),
    st.floats(1.0, 100.0),
    st.integers(1, 6),
)
def test_autoclip_properties(norms, percentile, history_size):
    """Bound = percentile of the window; the output norm is min(norm, bound), direction kept."""
    clip = gradlab.scaling.AutoClip(percentile=percentile, history_size=history_size)
    seen = []
    for n in norms:
        grads = grads_with_norm(n)
        seen.append(norm_of(grads))
        out = clip(grads)
        bound = np.percentile(seen[-history_size:], percentile)
        assert float(clip.bound) == pytest.approx(bound, rel=1e-5)
        assert norm_of(out) <= bound * (1 + 1e-5)
        assert norm_of(out) == pytest.approx(min(seen[-1], bound), rel=1e-5)
        a, b = flat(grads), flat(out)
        assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------- ZClip
def test_zclip_warmup_initialises_mean_and_population_variance():
    """Warm-up of 3 steps: gradients unchanged and finite; mean/var = mean and population variance."""
    clip = gradlab.scaling.ZClip(alpha=0.9, z_threshold=2.0, warmup=3)
    norms = [3.0, 5.0, 10.0]
    for i, n in enumerate(norms):
        grads = grads_with_norm(n)
        out = clip(grads)
        assert all(np.isfinite(o.numpy()).all() for o in out)
        for o, g in zip(out, grads):
            np.testing.assert_array_equal(o.numpy(), g.numpy())
        assert int(clip.count) == i + 1
    # mean (3 + 5 + 10) / 3 = 6; population variance (9 + 1 + 16) / 3 = 26 / 3
    assert float(clip.mean) == pytest.approx(6.0, rel=1e-6)
    assert float(clip.var) == pytest.approx(26.0 / 3.0, rel=1e-5)


def zclip_hand_sequence():
    """Norms and expected outputs for ZClip(alpha=0.9, z_threshold=2, warmup=2, eps=1e-6), by hand.

    Warm-up: norms 1 and 3 -> mean 2, variance ((1-2)**2 + (3-2)**2) / 2 = 1, std 1.
    Step 3, norm 7: z = (7 - 2) / (1 + 1e-6) = 4.999995 > 2, a spike.
        bound = 2 + 2**2 / z * 1 = 2.8000008; the norm is clipped to it.
        mean = 0.9 * 2 + 0.1 * 2.8000008 = 2.08000008
        var  = 0.9 * 1 + 0.1 * (2.8000008 - 2.08000008)**2 = 0.9518401
    Step 4, norm 2.5: std = sqrt(0.9518401) = 0.9756230; z = (2.5 - 2.08) / 0.975624 = 0.43049 < 2:
        unchanged. mean = 0.9 * 2.08000008 + 0.1 * 2.5 = 2.12200007
        var  = 0.9 * 0.9518401 + 0.1 * (2.5 - 2.12200007)**2 = 0.8709445
    """
    return [
        # norm, output norm, mean after, var after
        (1.0, 1.0, None, None),
        (3.0, 3.0, 2.0, 1.0),
        (7.0, 2.8000008, 2.08000008, 0.9518401),
        (2.5, 2.5, 2.12200007, 0.8709445),
    ]


def test_zclip_spike_clipped_to_reciprocal_bound_and_ema_takes_clipped_norm():
    """A z > z_threshold spike is clipped to mean + z_thr**2 / z * std; a non-spike passes; EMA by hand."""
    clip = gradlab.scaling.ZClip(alpha=0.9, z_threshold=2.0, warmup=2, eps=1e-6)
    for n, out_norm, mean, var in zclip_hand_sequence():
        grads = grads_with_norm(n)
        out = clip(grads)
        assert all(np.isfinite(o.numpy()).all() for o in out)
        assert norm_of(out) == pytest.approx(out_norm, rel=1e-6)
        if out_norm == n:
            for o, g in zip(out, grads):
                np.testing.assert_array_equal(o.numpy(), g.numpy())
        else:  # direction kept: each entry scaled by out_norm / n
            np.testing.assert_allclose(flat(out), flat(grads) * out_norm / n, rtol=1e-6)
            assert float(clip.bound) == pytest.approx(out_norm, rel=1e-6)
        if mean is not None:
            assert float(clip.mean) == pytest.approx(mean, rel=1e-6)
            assert float(clip.var) == pytest.approx(var, rel=1e-6)


def test_zclip_in_tf_function_updates_state_without_retrace():
    """The same hand sequence inside one compiled function: state lives in tf.Variables."""
    clip = gradlab.scaling.ZClip(alpha=0.9, z_threshold=2.0, warmup=2, eps=1e-6)
    fn = tf.function(lambda a, b: clip([a, b]))
    for n, out_norm, mean, _ in zclip_hand_sequence():
        out = fn(*grads_with_norm(n))
        assert norm_of(out) == pytest.approx(out_norm, rel=1e-6)
        if mean is not None:
            assert float(clip.mean) == pytest.approx(mean, rel=1e-6)
    assert int(clip.count) == 4
    assert fn.experimental_get_tracing_count() == 1


def test_zclip_constant_norms_zero_variance_stays_finite():
    """Equal warm-up norms (variance 0): the same norm passes, a larger one is clipped to the mean."""
    clip = gradlab.scaling.ZClip(alpha=0.9, z_threshold=2.0, warmup=2)
    for n in [2.0, 2.0, 2.0]:
        out = clip([tf.constant([n])])
        np.testing.assert_array_equal(out[0].numpy(), [n])
    out = clip([tf.constant([4.0])])  # z = 2 / 1e-6: bound = 2 + 4 / 2e6 * 0 = 2
    np.testing.assert_allclose(out[0].numpy(), [2.0], rtol=1e-6)
    assert np.isfinite(float(clip.mean)) and np.isfinite(float(clip.var))


def test_zclip_zero_gradients_during_warmup_stay_zero():
    """A zero gradient in warm-up (norm 0) stays exactly zero, never NaN."""
    clip = gradlab.scaling.ZClip(warmup=3)
    out = clip([tf.zeros([2]), tf.zeros([1, 3])])
    assert all(not o.numpy().any() and np.isfinite(o.numpy()).all() for o in out)


@PROP
@given(
    st.lists(st.floats(1e-2, 1e3), min_size=3, max_size=10),
    st.floats(0.5, 0.99),
    st.floats(0.5, 4.0),
)
def test_zclip_properties(norms, alpha, z_thr):
    """Never grows a norm; after warm-up the output norm <= mean + z_thr * (std + eps) of the previous step."""
    eps = 1e-6
    clip = gradlab.scaling.ZClip(alpha=alpha, z_threshold=z_thr, warmup=2, eps=eps)
    for i, n in enumerate(norms):
        mean, std = float(clip.mean), float(np.sqrt(float(clip.var)))
        grads = grads_with_norm(n)
        out = clip(grads)
        n_in, n_out = norm_of(grads), norm_of(out)
        assert np.isfinite(flat(out)).all()
        assert n_out <= n_in * (1 + 1e-6)
        if i >= 2:
            assert n_out <= (mean + z_thr * (std + eps)) * (1 + 1e-5) + 1e-6
            a, b = flat(grads), flat(out)
            assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) == pytest.approx(1.0, abs=1e-5)
        else:
            assert n_out == n_in


# ---------------------------------------------------------------- through the Scaler front door
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
def test_scaler_autoclip_mode_matches_numpy_percentile(compiled):
    """Scaler("autoclip", p) uses its threshold as the percentile; eager and compiled agree with numpy."""
    scaler = gradlab.Scaler("autoclip", 50.0, autoclip_history=3)
    call = tf.function(lambda a, b: scaler.scale([a, b])) if compiled else (lambda a, b: scaler.scale([a, b]))
    seen = []
    for n in NORMS:
        out, info = call(*grads_with_norm(n))
        seen.append(n)
        bound = np.percentile(seen[-3:], 50)
        assert float(info.bound) == pytest.approx(bound, rel=1e-6)
        assert norm_of(out) == pytest.approx(min(n, bound), rel=1e-6)
    if compiled:
        assert call.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
def test_scaler_zclip_mode_matches_hand_sequence(compiled):
    """Scaler("zclip", z) uses its threshold as z_threshold and its zclip_* options; hand numbers."""
    scaler = gradlab.Scaler("zclip", 2.0, zclip_alpha=0.9, zclip_warmup=2, zclip_eps=1e-6)
    call = tf.function(lambda a, b: scaler.scale([a, b])) if compiled else (lambda a, b: scaler.scale([a, b]))
    for n, out_norm, mean, var in zclip_hand_sequence():
        out, info = call(*grads_with_norm(n))
        assert bool(info.finite)
        assert all(np.isfinite(o.numpy()).all() for o in out)
        assert norm_of(out) == pytest.approx(out_norm, rel=1e-6)
        if mean is not None:
            assert float(scaler.zclip.mean) == pytest.approx(mean, rel=1e-6)
            assert float(scaler.zclip.var) == pytest.approx(var, rel=1e-6)
    assert int(scaler.zclip.count) == 4
    if compiled:
        assert call.experimental_get_tracing_count() == 1


def test_scaler_skipped_step_does_not_touch_adaptive_state():
    """A non-finite step under 'skip' adds nothing to the AutoClip history or the ZClip statistics."""
    for mode, threshold in [("autoclip", 50.0), ("zclip", 2.0)]:
        scaler = gradlab.Scaler(mode, threshold, zclip_warmup=2)
        scaler([tf.constant([1.0])])
        before = [v.numpy().copy() for v in getattr(scaler, mode).variables]
        _, info = scaler.scale([tf.constant([np.nan])])
        assert not bool(info.finite)
        after = [v.numpy() for v in getattr(scaler, mode).variables]
        for b, a in zip(before, after):
            np.testing.assert_array_equal(a, b)


def test_autoclip_update_unchecked_gives_the_checked_bound():
    """check=False (the Scaler's mode record, whose threshold was checked when set) leaves out only the check."""
    checked, unchecked = gradlab.scaling.AutoClip(percentile=50), gradlab.scaling.AutoClip(percentile=50)
    norms = [1.0, 3.0, 2.0, 7.0]
    for n in norms:
        a, b = checked.update(n, 50.0), unchecked.update(n, 50.0, check=False)
    assert float(a) == float(b) == pytest.approx(np.percentile(norms, 50))
    with pytest.raises(ValueError, match=r"percentile.*Received: percentile=150"):
        checked.update(1.0, 150.0)
    with pytest.raises(ValueError, match="Argument `check` must be True or False"):
        checked.update(1.0, 50.0, check="no")
