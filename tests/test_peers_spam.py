"""gradlab.scaling.SpikeAwareClip against pytorch_optimizer's SPAM.

Reference: kozistr/pytorch_optimizer, ``pytorch_optimizer/optimizer/spam.py`` (commit 031e829),
``SPAM.step`` with ``density=1.0`` (defaults threshold=5000, grad_accu_steps=20,
update_proj_gap=500, betas=(0.9, 0.999)), the moment reset and the spike clipping, ported
to numpy below:

    if ('exp_avg' not in state) or (self.state['total_step'] + 1) % self.update_proj_gap == 0:
        state['exp_avg'] = zeros; state['exp_avg_sq'] = zeros
    if self.threshold != 0:
        current_step = self.state['total_step'] + 1
        if current_step >= self.grad_accu_steps and (
            self.update_proj_gap == 0 or current_step % self.update_proj_gap >= self.grad_accu_steps):
            mask = grad.pow(2) > (self.threshold * exp_avg_sq)
            grad[mask] = grad[mask].sign() * torch.sqrt(exp_avg_sq[mask] * self.threshold)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)

(``total_step`` counts the previous steps; the Adam step with the clipped ``grad`` is the optimizer's.)
"""

import numpy as np
import pytest
import tensorflow as tf

from gradlab.scaling import SpikeAwareClip


class ReferenceSpam:
    def __init__(self, threshold=5000, beta2=0.999, grad_accu_steps=20, update_proj_gap=500):
        self.threshold, self.beta2, self.accu, self.gap = threshold, beta2, grad_accu_steps, update_proj_gap
        self.total_step, self.exp_avg_sq = 0, {}

    def clip(self, grads):
        out = []
        for i, grad in enumerate(grads):
            grad = np.array(grad, np.float64)
            if i not in self.exp_avg_sq or (self.total_step + 1) % self.gap == 0:
                self.exp_avg_sq[i] = np.zeros_like(grad)
            v = self.exp_avg_sq[i]
            if self.threshold != 0:
                current_step = self.total_step + 1
                if current_step >= self.accu and (self.gap == 0 or current_step % self.gap >= self.accu):
                    mask = grad**2 > self.threshold * v
                    grad[mask] = np.sign(grad[mask]) * np.sqrt(v[mask] * self.threshold)
            self.exp_avg_sq[i] = v * self.beta2 + (1 - self.beta2) * grad * grad
            out.append(grad)
        self.total_step += 1
        return out


def gradient_sequence(seed, steps):
    """Two tensors; every 7th step a few entries spike x100."""
    rng = np.random.default_rng(seed)
    for t in range(steps):
        grads = [rng.normal(size=(3, 4)), rng.normal(size=(5,)) * 0.1]
        if t % 7 == 6:
            grads[0][rng.integers(0, 3), rng.integers(0, 4)] *= 100.0
            grads[1][rng.integers(0, 5)] *= 100.0
        yield grads


OPTIONS = {
    "threshold-50": dict(threshold=50.0, beta2=0.9, grad_accu_steps=3, update_proj_gap=15),
    "threshold-5000-short-gap": dict(threshold=5000.0, beta2=0.999, grad_accu_steps=2, update_proj_gap=10),
    "threshold-0-off": dict(threshold=0.0, beta2=0.9, grad_accu_steps=1, update_proj_gap=5),
    "accu-0": dict(threshold=10.0, beta2=0.8, grad_accu_steps=0, update_proj_gap=8),
}


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("seed", [0, 1])
def test_spike_aware_clip_equals_reference_port(options, seed):
    ref, ours = ReferenceSpam(**options), SpikeAwareClip(**options)
    ours.build([tf.zeros((3, 4)), tf.zeros((5,))])
    step = tf.function(lambda a, b: ours([a, b]))
    clipped_any = False
    for t, grads in enumerate(gradient_sequence(seed, 32)):
        expected = ref.clip(grads)
        out = step(*[tf.constant(g, tf.float32) for g in grads])
        for o, e, g in zip(out, expected, grads):
            np.testing.assert_allclose(o.numpy(), e, rtol=2e-5, atol=1e-6, err_msg=f"step {t + 1}")
            clipped_any |= not np.allclose(e, g)
        np.testing.assert_allclose(ours.v[0].numpy(), ref.exp_avg_sq[0], rtol=2e-5, atol=1e-8)
    assert clipped_any == (options["threshold"] > 0)
    assert step.experimental_get_tracing_count() == 1


def test_hand_vector():
    """threshold 4, beta2 0.5, grad_accu_steps 2, gap 100.

    Step 1 (no clipping yet): g = [2, -1]: v = 0.5 * [4, 1] = [2, 0.5].
    Step 2: g = [10, -1]: 100 > 4 * 2 -> sqrt(8) = 2.8284; 1 < 4 * 0.5 = 2 -> -1 kept.
    """
    clip = SpikeAwareClip(threshold=4.0, beta2=0.5, grad_accu_steps=2, update_proj_gap=100)
    out = clip([tf.constant([2.0, -1.0])])
    np.testing.assert_array_equal(out[0].numpy(), [2.0, -1.0])
    np.testing.assert_allclose(clip.v[0].numpy(), [2.0, 0.5])
    out = clip([tf.constant([10.0, -1.0])])
    np.testing.assert_allclose(out[0].numpy(), [np.sqrt(8.0), -1.0], rtol=1e-6)
    out = clip([tf.constant([-50.0, 0.0])])  # sign kept: -sqrt(4 * v)
    assert out[0].numpy()[0] < 0


def test_none_and_float16_and_indexed_slices_refused():
    clip = SpikeAwareClip(threshold=1.0, beta2=0.5, grad_accu_steps=1, update_proj_gap=100)
    out = clip([None, tf.constant([300.0], tf.float16)])
    assert out[0] is None and out[1].dtype == tf.float16
    assert clip.v[1].dtype == tf.float32 and float(clip.v[1][0]) == 0.0  # clipped to sqrt(0) on step 1
    with pytest.raises(ValueError, match="IndexedSlices"):
        SpikeAwareClip()([tf.IndexedSlices(tf.ones([1, 2]), [0], [3, 2])])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(threshold=-1.0), "threshold"),
        (dict(beta2=1.0), "beta2"),
        (dict(grad_accu_steps=-1), "grad_accu_steps"),
        (dict(update_proj_gap=0), "update_proj_gap"),
    ],
    ids=["threshold", "beta2", "grad_accu_steps", "update_proj_gap"],
)
def test_bad_options_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"Argument `{name}`.*Received: {name}="):
        SpikeAwareClip(**kwargs)
