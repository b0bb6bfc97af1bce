"""gradlab.scaling.ZClip against the reference implementation, bluorion-com/ZClip.

The reference is PyTorch; its formulas are ported to numpy (float64) below, line by line,
and gradlab's TensorFlow ZClip (float32) must give the same clipped norms, means and
variances on the same norm sequences, for every option.

Reference: https://github.com/bluorion-com/ZClip, ``zclip/zclip.py`` (commit 1acb085):
``ZClip.__init__`` (defaults alpha=0.97, z_thresh=2.5, max_grad_norm=1.0, eps=1e-6,
warmup_steps=25, mode="zscore", clip_option="adaptive_scaling", clip_factor=1.0,
skip_update_on_spike=False), ``_initialize_ema``, ``_update_ema``,
``_compute_positive_zscore``, ``_compute_clip_val``, ``apply_in_place_clipping``,
``_apply_clipping`` and ``step``. In that commit the percentile branch of
``_compute_clip_val`` is broken (``std =`` with nothing after it; ``threshold`` used
before it is set); its percentile formula is taken from the previous version, the
root ``zclip.py`` (commit 134344f): ``threshold = mean + z_thresh * std``, returned
when ``grad_norm > threshold``. During warm-up the reference calls
``torch.nn.utils.clip_grad_norm_(params, max_grad_norm)``, whose factor is
``min(1, max_norm / (total_norm + 1e-6))``. The reference's test vectors
(``tests/test_zclip.py``: ``test_adaptive_scaling_threshold``, ``test_mean_threshold``,
``test_percentile_clipping``, ``test_skip_update_on_spike``) are checked too.

Known, documented differences: the reference divides by ``norm + 1e-6`` when it clips,
gradlab by ``norm`` (as ``tf.clip_by_global_norm``): a relative difference of 1e-6 / norm,
inside the tolerances below (norms here are >= 0.3). gradlab's default ``max_grad_norm``
is None, the reference's 1.0 (see the ZClip docstring); the tests pass it explicitly.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import gradlab
from gradlab.scaling import ZClip

RTOL = 2e-5


class ReferenceZClip:
    """numpy port of bluorion-com/ZClip ``zclip/zclip.py`` (see the module doc); norms only."""

    def __init__(
        self,
        alpha=0.97,
        z_thresh=2.5,
        max_grad_norm=1.0,
        eps=1e-6,
        warmup_steps=25,
        mode="zscore",
        clip_option="adaptive_scaling",
        clip_factor=1.0,
        skip_update_on_spike=False,
    ):
        self.alpha, self.z_thresh, self.max_grad_norm, self.eps = alpha, z_thresh, max_grad_norm, eps
        self.warmup_steps, self.mode, self.clip_option = warmup_steps, mode, clip_option
        self.clip_factor, self.skip_update_on_spike = clip_factor, skip_update_on_spike
        self.buffer, self.initialized, self.mean, self.var = [], False, None, None

    def _initialize_ema(self):
        self.mean = sum(self.buffer) / len(self.buffer)
        self.var = sum((x - self.mean) ** 2 for x in self.buffer) / len(self.buffer)
        self.initialized, self.buffer = True, []

    def _update_ema(self, grad_norm):
        self.mean = self.alpha * self.mean + (1 - self.alpha) * grad_norm
        self.var = self.alpha * self.var + (1 - self.alpha) * (grad_norm - self.mean) ** 2

    def _compute_clip_val(self, grad_norm):
        std = self.var**0.5
        if self.mode == "percentile":  # root zclip.py, commit 134344f
            threshold = self.mean + self.z_thresh * std
            if grad_norm > threshold:
                return threshold
        elif self.mode == "zscore":
            z = (grad_norm - self.mean) / (std + self.eps)
            if z > self.z_thresh:
                if self.clip_option == "adaptive_scaling":
                    eta = z / self.z_thresh
                    return (self.mean + (self.z_thresh * std) / eta) * self.clip_factor
                return self.mean  # clip_option == "mean"
        return None

    def step(self, total_norm):
        """One step on a gradient of global norm ``total_norm``: the factor the gradients get."""
        if not self.initialized:
            self.buffer.append(total_norm)
            if len(self.buffer) >= self.warmup_steps:
                self._initialize_ema()
            if self.max_grad_norm is not None:  # torch.nn.utils.clip_grad_norm_
                return min(1.0, self.max_grad_norm / (total_norm + 1e-6))
            return 1.0
        clip_val = self._compute_clip_val(total_norm)
        adaptive = clip_val if clip_val is not None else total_norm
        effective = min(adaptive, self.max_grad_norm) if self.max_grad_norm is not None else adaptive
        factor = effective / (total_norm + 1e-6) if total_norm > effective else 1.0  # apply_in_place_clipping
        if not (clip_val is not None and self.skip_update_on_spike):
            self._update_ema(clip_val if clip_val is not None else total_norm)
        return factor


def norm_sequence(seed, steps=40, explode_early=False):
    """Norms around 1-3 with a few spikes; with explode_early, a x1.5 per step growth in warm-up."""
    rng = np.random.default_rng(seed)
    norms = np.exp(rng.normal(0.3, 0.3, size=steps))
    spikes = rng.choice(np.arange(8, steps), size=4, replace=False)
    norms[spikes] *= rng.uniform(3, 30, size=4)
    if explode_early:
        norms[:8] = 1.5 ** np.arange(1, 9)
    return norms


def grads_of(norm, rng):
    """Two float32 tensors (a kernel and a bias) of global norm ``norm``, random direction."""
    a, b = rng.normal(size=(3, 2)), rng.normal(size=(2,))
    s = norm / np.sqrt(np.sum(a**2) + np.sum(b**2))
    return [tf.constant(a * s, tf.float32), tf.constant(b * s, tf.float32)]


def global_norm_of(grads):
    return float(np.sqrt(sum(np.sum(np.float64(g.numpy()) ** 2) for g in grads)))


def run_both(options, norms, seed=0, warmup=5):
    """Run the reference port and gradlab's ZClip (compiled) side by side; compare every step."""
    ref = ReferenceZClip(warmup_steps=warmup, **options)
    gl_options = dict(options)
    z = gl_options.pop("z_thresh", 2.5)
    gl_options.setdefault("max_grad_norm", 1.0)  # the reference's default (gradlab's is None)
    ours = ZClip(z_threshold=z, warmup=warmup, **gl_options)
    step = tf.function(lambda a, b: ours([a, b]))
    rng = np.random.default_rng(seed)
    for i, n in enumerate(norms):
        grads = grads_of(n, rng)
        n_in = global_norm_of(grads)
        factor = ref.step(n_in)
        out = step(*grads)
        assert global_norm_of(out) == pytest.approx(n_in * factor, rel=RTOL), f"step {i}"
        for o, g in zip(out, grads):  # direction kept: one factor for every entry
            np.testing.assert_allclose(o.numpy(), g.numpy() * factor, rtol=RTOL, atol=1e-7)
        if ref.initialized:
            assert float(ours.mean) == pytest.approx(ref.mean, rel=RTOL), f"mean at step {i}"
            assert float(ours.var) == pytest.approx(ref.var, rel=1e-4), f"var at step {i}"
    assert step.experimental_get_tracing_count() == 1
    return ref, ours


OPTIONS = {
    "reference-defaults": dict(),
    "no-cap": dict(max_grad_norm=None),
    "cap-5": dict(max_grad_norm=5.0),
    "zscore-mean": dict(max_grad_norm=None, clip_option="mean"),
    "clip_factor-0.7": dict(max_grad_norm=None, clip_factor=0.7),
    "clip_factor-1.5": dict(max_grad_norm=None, clip_factor=1.5),
    "percentile": dict(max_grad_norm=None, mode="percentile"),
    "percentile-cap-4": dict(max_grad_norm=4.0, mode="percentile", z_thresh=2.0),
    "skip_update_on_spike": dict(max_grad_norm=None, skip_update_on_spike=True),
    "skip-percentile-mean": dict(max_grad_norm=3.0, mode="percentile", skip_update_on_spike=True, alpha=0.9),
    "z_thresh-1.5-alpha-0.8": dict(max_grad_norm=None, z_thresh=1.5, alpha=0.8),
}


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("seed", [0, 1], ids=["seed0", "seed1"])
def test_zclip_step_equals_reference_port(options, seed):
    """zclip/zclip.py ZClip.step: same factor, mean and variance at every step, for each option."""
    ref, _ = run_both(options, norm_sequence(seed), seed=seed)
    assert ref.initialized


@pytest.mark.parametrize("cap", [1.0, None], ids=["reference-cap-1", "gradlab-default-none"])
def test_zclip_early_explosion_in_warmup_equals_reference(cap):
    """Norms 1.5 .. 25.6 in the warm-up: with max_grad_norm=1.0 every step is capped at 1, as in the
    reference (clip_grad_norm_ in warm-up); with None they pass unclipped (warm-up has no bound)."""
    norms = norm_sequence(3, explode_early=True)
    ref, ours = run_both(dict(max_grad_norm=cap), norms, warmup=8)
    out = ours([tf.constant([30.0, 40.0])])  # norm 50, after warm-up
    assert global_norm_of(out) <= (1.0 + 1e-6 if cap else 50.0 + 1e-4)


def test_zclip_default_max_grad_norm_is_none_and_documented():
    """gradlab's default differs from the reference's 1.0 on purpose; the docstring says why and the cost."""
    assert ZClip().get_config()["max_grad_norm"] is None
    doc = ZClip.__doc__
    assert "max_grad_norm" in doc and "1.0" in doc and "warm-up" in doc


# ---------------------------------------------------------------- the reference's own test vectors
def zclip_after_warmup(mean, var, **options):
    """A gradlab ZClip whose warm-up is over with the given mean and variance (as the reference's
    tests set zclip.mean, zclip.var and zclip.initialized directly)."""
    clip = ZClip(warmup=1, **options)
    clip.count.assign(1)
    clip.mean.assign(mean)
    clip.var.assign(var)
    return clip


def test_reference_test_adaptive_scaling_threshold():
    """tests/test_zclip.py::test_adaptive_scaling_threshold: mean 1, var 0.25, z_thresh 2, norm 3 -> 1.5."""
    clip = zclip_after_warmup(1.0, 0.25)
    assert float(clip.update(tf.constant(3.0), 2.0)) == pytest.approx(1.5, rel=1e-5)


def test_reference_test_mean_threshold():
    """tests/test_zclip.py::test_mean_threshold: clip_option='mean', z 4 > 2.5 -> clip to the mean 1.0."""
    clip = zclip_after_warmup(1.0, 0.25, clip_option="mean")
    assert float(clip.update(tf.constant(3.0), 2.5)) == pytest.approx(1.0)
    assert bool(clip.spike)


def test_reference_test_percentile_clipping():
    """tests/test_zclip.py::test_percentile_clipping: mean + 2 * 0.5 = 2.0; the EMA takes 2.0."""
    clip = zclip_after_warmup(1.0, 0.25, mode="percentile")
    assert float(clip.update(tf.constant(3.0), 2.0)) == pytest.approx(2.0)
    assert float(clip.mean) == pytest.approx(0.97 * 1.0 + 0.03 * 2.0, rel=1e-6)


def test_reference_test_skip_update_on_spike():
    """tests/test_zclip.py::test_skip_update_on_spike: a spike leaves the mean (and variance) as they were."""
    clip = zclip_after_warmup(1.0, 0.25, z_threshold=2.0, skip_update_on_spike=True)
    out = clip([tf.constant([3.0])])
    assert float(clip.mean) == 1.0 and float(clip.var) == 0.25
    assert float(out[0][0]) == pytest.approx(1.5, rel=1e-5)  # the step itself is still clipped
    clip([tf.constant([1.2])])  # not a spike: the EMA moves
    assert float(clip.mean) == pytest.approx(0.97 + 0.03 * 1.2, rel=1e-6)


def test_zclip_hand_vector_clip_factor():
    """By hand: mean 2, std 1, z_thr 2.5, norm 7 (z = 5): (2 + 6.25 / 5) * 0.8 = 2.6."""
    clip = zclip_after_warmup(2.0, 1.0, clip_factor=0.8)
    out = clip([tf.constant([0.0, 7.0])])
    np.testing.assert_allclose(out[0].numpy(), [0.0, 2.6], rtol=1e-5)


# ---------------------------------------------------------------- live options
def test_zclip_options_change_mid_run_without_retrace():
    """set() between compiled steps: every option takes effect at once and the step is traced once."""
    ref = ReferenceZClip(warmup_steps=4, max_grad_norm=None)
    ours = ZClip(warmup=4)
    step = tf.function(lambda a, b: ours([a, b]))
    rng = np.random.default_rng(7)
    changes = {
        10: dict(mode="percentile"),
        16: dict(mode="zscore", clip_option="mean"),
        22: dict(clip_option="adaptive_scaling", clip_factor=0.6),
        28: dict(max_grad_norm=2.0, skip_update_on_spike=True),
        34: dict(max_grad_norm=None, z_threshold=1.5),
    }
    for i, n in enumerate(norm_sequence(5)):
        for key, value in changes.get(i, {}).items():
            setattr(ref, {"z_threshold": "z_thresh"}.get(key, key), value)
        if i in changes:
            ours.set(**changes[i])
        grads = grads_of(n, rng)
        n_in = global_norm_of(grads)
        factor = ref.step(n_in)
        out = step(*grads)
        assert global_norm_of(out) == pytest.approx(n_in * factor, rel=RTOL), f"step {i}"
    assert step.experimental_get_tracing_count() == 1
    assert ours.get_config() == {
        "alpha": 0.97,
        "z_threshold": 1.5,
        "warmup": 4,
        "eps": 1e-6,
        "max_grad_norm": None,
        "mode": "zscore",
        "clip_option": "adaptive_scaling",
        "clip_factor": pytest.approx(0.6),
        "skip_update_on_spike": True,
    }


def test_zclip_update_api_unchanged_for_the_scaler():
    """The Scaler calls update(norm, t) and reads variables[0] as z_threshold; both still hold."""
    clip = ZClip(warmup=2)
    assert clip.variables[0] is clip.z_threshold
    assert float(clip.update(tf.constant(1.0), 2.5)) == float("inf")
    scaler = gradlab.Scaler("zclip", 2.0, zclip_warmup=2)
    for n in [1.0, 3.0, 7.0]:
        out, info = scaler.scale([tf.constant([n])])
    assert float(out[0][0]) == pytest.approx(2.0 + 4.0 / (5.0 / 1.000001) * 1.0 / 1.0, rel=1e-5)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, parts",
    [
        (dict(mode="z"), ("Unknown ZClip mode 'z'", "'zscore', 'percentile'", "Received: mode='z'")),
        (
            dict(clip_option="median"),
            ("Unknown ZClip clip_option 'median'", "'adaptive_scaling', 'mean'", "Received: clip_option='median'"),
        ),
        (dict(max_grad_norm=0.0), ("Argument `max_grad_norm`", "in (0, inf)", "Received: max_grad_norm=0.0")),
        (dict(max_grad_norm=-1), ("Argument `max_grad_norm`", "in (0, inf)", "Received: max_grad_norm=-1")),
        (dict(max_grad_norm=float("nan")), ("Argument `max_grad_norm`", "finite", "max_grad_norm=nan")),
        (dict(max_grad_norm=tf.constant(1.0)), ("Argument `max_grad_norm`", "not a tensor")),
        (dict(clip_factor=0), ("Argument `clip_factor`", "in (0, inf)", "Received: clip_factor=0")),
        (dict(skip_update_on_spike=1), ("Argument `skip_update_on_spike`", "True or False", "=1")),
    ],
    ids=["mode", "clip_option", "cap-zero", "cap-negative", "cap-nan", "cap-tensor", "clip_factor-0", "skip-int"],
)
def test_zclip_bad_options_name_the_argument(kwargs, parts):
    for call in (lambda: ZClip(**kwargs), lambda: ZClip().set(**kwargs)):
        with pytest.raises(ValueError) as err:
            call()
        for part in parts:
            assert part in str(err.value)


def test_zclip_bad_set_changes_nothing():
    """A bad value in set() is refused before any option is written."""
    clip = ZClip(max_grad_norm=2.0)
    with pytest.raises(ValueError):
        clip.set(max_grad_norm=3.0, mode="bad")
    assert clip.get_config()["max_grad_norm"] == 2.0 and clip.mode == "zscore"


@settings(max_examples=20, deadline=None, database=None)
@given(
    st.lists(st.floats(0.3, 1e4), min_size=4, max_size=12),
    st.sampled_from(["zscore", "percentile"]),
    st.sampled_from(["adaptive_scaling", "mean"]),
    st.floats(0.5, 20.0),
)
def test_zclip_cap_properties(norms, mode, clip_option, cap):
    """With max_grad_norm every step (warm-up included) ends at norm <= cap, never grows, direction kept;
    and it equals the reference port."""
    ref = ReferenceZClip(warmup_steps=3, max_grad_norm=cap, mode=mode, clip_option=clip_option)
    ours = ZClip(warmup=3, max_grad_norm=cap, mode=mode, clip_option=clip_option)
    rng = np.random.default_rng(0)
    for n in norms:
        grads = grads_of(n, rng)
        n_in = global_norm_of(grads)
        out = ours(grads)
        n_out = global_norm_of(out)
        assert n_out <= min(cap, n_in) * (1 + 1e-5)
        assert n_out == pytest.approx(n_in * ref.step(n_in), rel=RTOL)


def test_state_variables_exclude_the_options():
    clip = ZClip()
    assert clip.state_variables == [clip.buffer, clip.count, clip.mean, clip.var, clip.bound, clip.spike]
    assert all(any(v is w for w in clip.variables) for v in clip.state_variables)


def test_scaler_zclip_cap_saves_a_run_that_explodes_in_its_warm_up():
    """deep_mlp at SGD 0.5 explodes within ZClip's 25 warm-up steps: without a cap (gradlab's default)
    ZClip ends like no clipping; with the reference's max_grad_norm=1.0 the run ends finite, no step skipped."""
    import keras

    p = gradlab.problems.deep_mlp()

    def run(scaler):
        t = gradlab.Trainer(p.model(), p.loss, keras.optimizers.SGD(0.5), scaler)
        return t.fit(p.x, p.y, steps=40, batch_size=32, progress=False)

    capped = run(gradlab.Scaler("zclip", zclip_max_grad_norm=1.0))
    uncapped = run(gradlab.Scaler("zclip"))
    none = run(gradlab.Scaler("none"))
    assert np.isfinite(capped.loss).all() and capped.skipped.sum() == 0
    assert (capped.norm_after[:25] <= 1.0 + 1e-5).all()  # the cap holds during the warm-up too

    def diverged(h):  # steps skipped as non-finite, or a loss on its way there (versions differ in the step)
        return h.skipped.sum() > 0 or not np.isfinite(h.loss).all() or np.nanmax(h.loss) > 1e6

    assert diverged(none) and diverged(uncapped)  # no cap: the same ruin as no clipping
    scaler = gradlab.Scaler("zclip", zclip_max_grad_norm=1.0)
    assert scaler.get_config()["zclip_max_grad_norm"] == 1.0 and float(scaler.zclip.max_grad_norm) == 1.0
    with pytest.raises(ValueError, match="zclip_max_grad_norm"):
        gradlab.Scaler("zclip", zclip_max_grad_norm=0.0)


def test_report_with_the_reference_cap_ends_finite(tmp_path, capsys):
    """``python -m gradlab report --problem deep_mlp --modes none,zclip --zclip-max-grad-norm 1.0``:
    with the reference's default cap ZClip ends finite, no step skipped, where no clipping diverges."""
    from gradlab.display import report

    out = tmp_path / "r.html"
    argv = ["--problem", "deep_mlp", "--modes", "none,zclip", "--steps", "40", "--out", str(out)]
    assert report.main([*argv, "--zclip-max-grad-norm", "1.0"]) == 0
    lines = {ln.split(":")[0].strip(): ln for ln in capsys.readouterr().out.splitlines() if "final loss" in ln}
    final = {k: float(v.split("final loss ")[1].split(",")[0]) for k, v in lines.items()}
    assert np.isfinite(final["zclip"]) and final["zclip"] < 1.0 and "skipped 0" in lines["zclip"]
    assert not np.isfinite(final["none"]) or final["none"] > 1e6
    assert out.stat().st_size > 0


def test_compare_passes_scaler_options_to_every_run():
    p = gradlab.problems.deep_mlp(depth=2, samples=64)
    (h,) = gradlab.compare(p, ["zclip"], steps=3, batch_size=16, scaler_options={"zclip_max_grad_norm": 1e-3})
    assert (h.norm_after <= 1e-3 * (1 + 1e-5)).all()
    with pytest.raises(ValueError, match="Unknown option `zclip_cap` for scaler_options"):
        gradlab.compare(p, ["zclip"], steps=1, scaler_options={"zclip_cap": 1.0})
    with pytest.raises(ValueError, match="may not set `modes`"):
        gradlab.compare(p, ["zclip"], steps=1, scaler_options={"modes": "all"})
