"""gradlab.scaling.AutoClip's variants against the references they are named after.

Each reference is ported to numpy (float64) below; gradlab's AutoClip (TensorFlow, float32)
must clip the same gradients by the same factors, step by step.

- ``autoclip.py``: pseeth/autoclip, ``autoclip.py`` (commit 7de6a2f), ``autoclip_gradient``:
  ``grad_history.append(obs_grad_norm)``; ``clip_value = np.percentile(grad_history,
  clip_percentile)``; ``torch.nn.utils.clip_grad_norm_(model.parameters(), clip_value)``.
- ``autoclip_tf.py``: pseeth/autoclip, ``autoclip_tf.py`` (commit 6348141),
  ``AutoClipper.__call__``: the global norm (``tf.norm`` of the tensor norms) written to
  ``grad_history[i % history_size]``; ``clip_value = tfp.stats.percentile(grad_history[:i],
  q)`` with tfp's default interpolation ``"nearest"`` (tensorflow/probability,
  ``python/stats/quantiles.py``, ``percentile``: sorted descending, index
  ``round((d - 1) * (1 - q / 100))``, ``tf.round`` rounds halves to even); each tensor
  ``tf.clip_by_norm(g, clip_value)``.
- ``QuantileClip``: ``pip install autoclip``, ``autoclip/torch/quantile.py`` (pseeth/autoclip,
  commit 13ba540), ``QuantileClip._clip_local`` / ``_clip_global``: threshold ``inf`` while
  the history is empty, else ``torch.quantile(history, quantile)`` (linear); then
  ``new_grad_norm = clip_grad_norm_(parameter, max_norm=threshold)`` (the norm before
  clipping) is appended and the history cut to its last ``history_length``. Defaults
  quantile 0.9, history_length 1000, global_threshold False (each parameter on its own).

torch's ``clip_grad_norm_`` multiplies by ``min(1, max_norm / (norm + 1e-6))``; gradlab by
``min(1, bound / norm)``: a relative difference of 1e-6 / norm, inside the tolerance (norms >= 0.1).
"""

import numpy as np
import pytest
import tensorflow as tf

from gradlab.scaling import AUTOCLIP_VARIANTS, AutoClip

RTOL = 2e-5


def torch_clip_factor(norm, max_norm):
    """torch.nn.utils.clip_grad_norm_: min(1, max_norm / (norm + 1e-6))."""
    return min(1.0, max_norm / (norm + 1e-6))


def tfp_percentile_nearest(x, q):
    """tfp.stats.percentile(x, q) with interpolation=None ('nearest')."""
    ordered = np.sort(np.asarray(x, np.float64))[::-1]  # tfp's _sort_tensor sorts descending
    d = len(ordered)
    index = int(np.clip(np.round((d - 1) * (1.0 - q / 100.0)), 0, d - 1))  # np.round: halves to even
    return ordered[index]


class AutoclipPy:
    """autoclip.py: history includes this step, numpy.percentile, global clip_grad_norm_."""

    def __init__(self, clip_percentile):
        self.clip_percentile, self.grad_history = clip_percentile, []

    def factors(self, norms):
        total = float(np.sqrt(np.sum(np.square(norms))))
        self.grad_history.append(total)
        clip_value = np.percentile(self.grad_history, self.clip_percentile)
        return [torch_clip_factor(total, clip_value)] * len(norms)


class AutoclipTf:
    """autoclip_tf.py AutoClipper: ring buffer, tfp nearest percentile, tf.clip_by_norm per tensor."""

    def __init__(self, clip_percentile, history_size=10000):
        self.clip_percentile, self.history_size = clip_percentile, history_size
        self.grad_history, self.i = np.zeros(history_size), 0

    def factors(self, norms):
        total = float(np.sqrt(np.sum(np.square(norms))))
        self.grad_history[self.i % self.history_size] = total
        self.i += 1
        clip_value = tfp_percentile_nearest(self.grad_history[: self.i], self.clip_percentile)
        return [min(1.0, clip_value / n) for n in norms]  # tf.clip_by_norm


class QuantileClipRef:
    """autoclip/torch/quantile.py QuantileClip: past norms only, bounded, per parameter or global."""

    def __init__(self, quantile=0.9, history_length=1000, global_threshold=False):
        self.quantile, self.history_length, self.global_threshold = quantile, history_length, global_threshold
        self.state = {}

    def _clip(self, key, norm):
        history = self.state.get(key)
        threshold = np.inf if history is None else np.quantile(history, self.quantile)  # linear
        factor = torch_clip_factor(norm, threshold)
        self.state[key] = np.hstack((history if history is not None else [], [norm]))[-self.history_length :]
        return factor

    def factors(self, norms):
        if self.global_threshold:
            present = [n for n in norms if n is not None]
            factor = self._clip("global_history", float(np.sqrt(np.sum(np.square(present)))))
            return [None if n is None else factor for n in norms]
        return [None if n is None else self._clip(i, n) for i, n in enumerate(norms)]


def make_grads(rng, step, with_none=False):
    """A kernel, a bias and an embedding row block (IndexedSlices), norms spread over 0.1-30."""
    scale = np.exp(rng.normal(0.5, 1.0, size=3)) + 0.1
    if step % 7 == 3:
        scale *= 10.0  # a spike now and then
    kernel = rng.normal(size=(4, 3))
    bias = rng.normal(size=(3,))
    rows = rng.normal(size=(2, 5))
    grads = [
        tf.constant(kernel / np.linalg.norm(kernel) * scale[0], tf.float32),
        None if with_none and step % 3 == 1 else tf.constant(bias / np.linalg.norm(bias) * scale[1], tf.float32),
        tf.IndexedSlices(
            tf.constant(rows / np.linalg.norm(rows) * scale[2], tf.float32), tf.constant([0, 4]), tf.constant([6, 5])
        ),
    ]
    return grads


def values(g):
    return np.float64((g.values if isinstance(g, tf.IndexedSlices) else g).numpy())


def check_against(ref, ours, steps=30, seed=0, with_none=False, compiled=True):
    if ours.norm == "per_tensor":
        ours.build(3)  # the state first: variables made inside the first trace cost a second trace

    def step(*grads):
        return ours(list(grads))

    call = tf.function(step) if compiled else step
    rng = np.random.default_rng(seed)
    for i in range(steps):
        grads = make_grads(rng, i, with_none)
        norms = [None if g is None else float(np.linalg.norm(values(g))) for g in grads]
        factors = ref.factors(norms)
        out = call(*grads)
        for j, (g, o, f) in enumerate(zip(grads, out, factors)):
            if g is None:
                assert o is None
                continue
            assert isinstance(o, type(g))
            np.testing.assert_allclose(values(o), values(g) * f, rtol=RTOL, atol=1e-7, err_msg=f"step {i} tensor {j}")
    if compiled:  # one trace per pattern of None gradients
        assert call.experimental_get_tracing_count() == (2 if with_none else 1)


@pytest.mark.parametrize("percentile", [10.0, 50.0, 90.0], ids=lambda p: f"p{p:g}")
def test_autoclip_py_variant_equals_reference(percentile):
    """pseeth/autoclip autoclip.py: history including this step, linear percentile, global clip."""
    check_against(AutoclipPy(percentile), AutoClip.variant("autoclip.py", percentile=percentile))


@pytest.mark.parametrize("history_size", [4, 10000], ids=["ring-wraps", "history-10000"])
@pytest.mark.parametrize("percentile", [10.0, 37.5, 50.0, 90.0], ids=lambda p: f"p{p:g}")
def test_autoclip_tf_variant_equals_reference(percentile, history_size):
    """pseeth/autoclip autoclip_tf.py: ring buffer, tfp 'nearest' percentile, tf.clip_by_norm per tensor."""
    check_against(
        AutoclipTf(percentile, history_size),
        AutoClip.variant("autoclip_tf.py", percentile=percentile, history_size=history_size),
        steps=20,
    )


@pytest.mark.parametrize("with_none", [False, True], ids=["dense", "some-None"])
@pytest.mark.parametrize("history", [3, 1000], ids=["history-3", "history-1000"])
def test_quantile_clip_variant_equals_reference(history, with_none):
    """autoclip/torch/quantile.py QuantileClip (global_threshold=False): per parameter, past norms only."""
    check_against(
        QuantileClipRef(0.9, history), AutoClip.variant("QuantileClip", history_size=history), with_none=with_none
    )


@pytest.mark.parametrize("quantile", [0.5, 0.9], ids=["q0.5", "q0.9"])
def test_quantile_clip_global_threshold_variant_equals_reference(quantile):
    """QuantileClip(global_threshold=True): one history of the global norm, past norms only."""
    check_against(
        QuantileClipRef(quantile, 5, global_threshold=True),
        AutoClip.variant("QuantileClip(global_threshold=True)", percentile=quantile * 100, history_size=5),
        with_none=True,
    )


# ---------------------------------------------------------------- hand vectors
def test_tfp_nearest_hand_vector():
    """tfp's docstring: percentile([1, 2, 3, 4], 30) == 2.0 ('nearest'); linear gives 1.9."""
    nearest = AutoClip(percentile=30, interpolation="nearest")
    linear = AutoClip(percentile=30)
    for n in [1.0, 2.0, 3.0, 4.0]:
        nearest([tf.constant([n])])
        linear([tf.constant([n])])
    assert float(nearest.bound) == 2.0
    assert float(linear.bound) == pytest.approx(1.9, rel=1e-6)
    assert tfp_percentile_nearest([1, 2, 3, 4], 30) == 2.0


def test_quantile_clip_hand_vector():
    """Past norms only: step 1 (norm 4) unclipped; step 2 (norm 10) clipped to quantile_0.5([4]) = 4;
    step 3 (norm 1) passes, bound quantile_0.5([4, 10]) = 7."""
    clip = AutoClip(percentile=50, include_current=False)
    out = [clip([tf.constant([0.0, n])])[0].numpy()[1] for n in (4.0, 10.0, 1.0)]
    np.testing.assert_allclose(out, [4.0, 4.0, 1.0], rtol=1e-6)
    assert float(clip.bound) == pytest.approx(7.0)


def test_per_tensor_state_is_one_row_per_tensor():
    """norm='per_tensor': each tensor its own history; the bound vector has one entry per tensor."""
    clip = AutoClip(percentile=50, include_current=False, norm="per_tensor", clip="per_tensor")
    clip([tf.constant([1.0]), tf.constant([10.0])])
    out = clip([tf.constant([3.0]), tf.constant([5.0])])
    np.testing.assert_allclose([o.numpy()[0] for o in out], [1.0, 5.0], rtol=1e-6)
    np.testing.assert_allclose(clip.bound.numpy(), [1.0, 10.0])
    assert clip.history.shape == (2, 10000) and clip.count.numpy().tolist() == [2, 2]


def test_variants_are_named_after_their_references():
    assert set(AUTOCLIP_VARIANTS) == {
        "autoclip.py",
        "autoclip_tf.py",
        "QuantileClip",
        "QuantileClip(global_threshold=True)",
    }
    config = AutoClip.variant("QuantileClip").get_config()
    assert config == {
        "percentile": 90.0,
        "history_size": 1000,
        "include_current": False,
        "norm": "per_tensor",
        "clip": "per_tensor",
        "interpolation": "linear",
    }


def test_percentile_changes_mid_run_without_retrace():
    clip = AutoClip(percentile=50, history_size=8, include_current=False)
    step = tf.function(lambda g: clip([g]))
    for n in [1.0, 2.0, 3.0, 4.0]:
        step(tf.constant([n]))
    clip.set(percentile=100)
    out = step(tf.constant([9.0]))
    assert float(out[0][0]) == pytest.approx(4.0)
    assert step.experimental_get_tracing_count() == 1


@pytest.mark.parametrize(
    "kwargs, parts",
    [
        (dict(norm="layer"), ("Unknown AutoClip norm 'layer'", "'global', 'per_tensor'", "Received: norm='layer'")),
        (dict(clip="each"), ("Unknown AutoClip clip 'each'", "Received: clip='each'")),
        (dict(norm="per_tensor"), ("Argument `clip` must be 'per_tensor'", "Received: clip='global'")),
        (dict(interpolation="lower"), ("Unknown interpolation 'lower'", "'linear', 'nearest'")),
        (
            dict(include_current="yes"),
            ("Argument `include_current`", "True or False", "Received: include_current='yes'"),
        ),
    ],
    ids=["norm", "clip", "per-tensor-global-clip", "interpolation", "include_current"],
)
def test_autoclip_bad_options_name_the_argument(kwargs, parts):
    with pytest.raises(ValueError) as err:
        AutoClip(**kwargs)
    for part in parts:
        assert part in str(err.value)


def test_unknown_variant_lists_the_references():
    with pytest.raises(ValueError, match=r"Unknown variant 'autoclip'.*'autoclip.py', 'autoclip_tf.py'"):
        AutoClip.variant("autoclip")


def test_per_tensor_autoclip_refuses_another_number_of_tensors():
    clip = AutoClip(norm="per_tensor", clip="per_tensor")
    clip([tf.constant([1.0]), tf.constant([2.0])])
    with pytest.raises(ValueError, match="Received: 3 tensors"):
        clip([tf.constant([1.0])] * 3)


def test_update_each_is_the_per_tensor_step_for_a_scaler():
    """update_each(norms, p) == what __call__ does per tensor (QuantileClip: past norms only)."""
    a = AutoClip.variant("QuantileClip", percentile=50)
    b = AutoClip.variant("QuantileClip", percentile=50)
    a.build(2)
    b.build(2)
    for norms in ([1.0, 10.0], [3.0, 5.0], [2.0, 20.0]):
        bounds = a.update_each(tf.constant(norms), 50.0)
        b([tf.constant([norms[0]]), tf.constant([norms[1]])])
        np.testing.assert_allclose(bounds.numpy(), b.bound.numpy())
    assert len(a.state_variables) == 3 and a.state_variables[0] is a.history
