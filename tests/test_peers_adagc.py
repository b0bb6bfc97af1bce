"""gradlab.scaling.AdaGC against pytorch_optimizer's AdaGC.

Reference: kozistr/pytorch_optimizer, ``pytorch_optimizer/optimizer/adagc.py`` (commit 0283cf5),
``AdaGC.step``, the clipping part (defaults beta=0.98, lambda_abs=1.0, lambda_rel=1.05,
warmup_steps=100, eps=1e-8), ported to numpy below:

    if group['step'] < group['warmup_steps']:
        grad_norm = get_global_gradient_norm(self.param_groups).add_(group['eps'])
        h_t = min(group['lambda_abs'] / grad_norm, 1.0)
        g_hat = grad.mul(h_t)
        gamma.copy_(g_hat.norm() if group['step'] == 1 else min(gamma, g_hat.norm()))
    else:
        h_t = min(group['lambda_rel'] * gamma / grad.norm(), 1.0)
        g_hat = grad.mul(h_t)
        gamma.mul_(group['beta']).add_(g_hat.norm(), alpha=1.0 - group['beta'])

(``group['step']`` counts from 1; the Adam step that follows with ``g_hat`` is the optimizer's.)
"""

import numpy as np
import pytest
import tensorflow as tf

from gradlab.scaling import AdaGC


class ReferenceAdaGC:
    def __init__(self, beta=0.98, lambda_abs=1.0, lambda_rel=1.05, warmup_steps=100, eps=1e-8):
        self.beta, self.lambda_abs, self.lambda_rel, self.warmup_steps, self.eps = (
            beta,
            lambda_abs,
            lambda_rel,
            warmup_steps,
            eps,
        )
        self.step, self.gamma = 0, {}

    def clip(self, grads):
        self.step += 1
        out = []
        for i, grad in enumerate(grads):
            if self.step < self.warmup_steps:
                grad_norm = np.sqrt(sum(np.sum(g**2) for g in grads)) + self.eps
                h_t = min(self.lambda_abs / grad_norm, 1.0)
                g_hat = grad * h_t
                norm = np.linalg.norm(g_hat)
                self.gamma[i] = norm if self.step == 1 else min(self.gamma[i], norm)
            else:
                h_t = min(self.lambda_rel * self.gamma[i] / np.linalg.norm(grad), 1.0)
                g_hat = grad * h_t
                self.gamma[i] = self.beta * self.gamma[i] + (1 - self.beta) * np.linalg.norm(g_hat)
            out.append(g_hat)
        return out


def gradient_sequence(seed, steps):
    """Three tensors whose norms drift and spike (x20 every 9th step for one tensor)."""
    rng = np.random.default_rng(seed)
    for t in range(steps):
        grads = [rng.normal(size=s) * np.exp(rng.normal(0, 0.5)) for s in [(4, 3), (3,), (2, 2, 2)]]
        if t % 9 == 5:
            grads[t % 3] = grads[t % 3] * 20.0
        yield grads


OPTIONS = {
    "defaults-warmup-6": dict(warmup_steps=6),
    "lambda_abs-0.5": dict(warmup_steps=4, lambda_abs=0.5),
    "lambda_rel-1.0-beta-0.9": dict(warmup_steps=5, lambda_rel=1.0, beta=0.9),
    "long-warmup": dict(warmup_steps=30),
}


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
@pytest.mark.parametrize("seed", [0, 1])
def test_adagc_equals_reference_port(options, seed):
    ref, ours = ReferenceAdaGC(**options), AdaGC(**options)
    ours.build(3)
    step = tf.function(lambda a, b, c: ours([a, b, c]))
    for t, grads in enumerate(gradient_sequence(seed, 25)):
        expected = ref.clip([np.float64(g) for g in grads])
        out = step(*[tf.constant(g, tf.float32) for g in grads])
        for o, e in zip(out, expected):
            np.testing.assert_allclose(o.numpy(), e, rtol=2e-5, atol=1e-7, err_msg=f"step {t + 1}")
        np.testing.assert_allclose(ours.gamma.numpy(), [ref.gamma[i] for i in range(3)], rtol=2e-5)
    assert step.experimental_get_tracing_count() == 1


def test_hand_vector():
    """lambda_abs 1, lambda_rel 2, beta 0.5, warmup_steps 3.

    Step 1 (warm-up): [3, 4] (norm 5) and [0] -> global norm 5: h = 1/5: [0.6, 0.8], gamma_0 = 1.
    Step 2 (warm-up): [0.3, 0.4] (norm 0.5 < 1): unchanged, gamma_0 = min(1, 0.5) = 0.5.
    Step 3: [6, 8] (norm 10): h = 2 * 0.5 / 10 = 0.1: [0.6, 0.8]; gamma_0 = 0.25 + 0.5 = 0.75.
    """
    clip = AdaGC(lambda_abs=1.0, lambda_rel=2.0, beta=0.5, warmup_steps=3, eps=0.0)
    out = clip([tf.constant([3.0, 4.0]), tf.constant([0.0])])
    np.testing.assert_allclose(out[0].numpy(), [0.6, 0.8], rtol=1e-6)
    clip([tf.constant([0.3, 0.4]), tf.constant([0.0])])
    assert float(clip.gamma[0]) == pytest.approx(0.5)
    out = clip([tf.constant([6.0, 8.0]), tf.constant([0.0])])
    np.testing.assert_allclose(out[0].numpy(), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(out[1].numpy(), [0.0])  # a zero gradient stays zero, never NaN
    assert float(clip.gamma[0]) == pytest.approx(0.75)


def test_none_keeps_gamma_and_indexed_slices_stay():
    clip = AdaGC(warmup_steps=2)
    g = tf.IndexedSlices(tf.constant([[3.0, 4.0]]), tf.constant([1]), tf.constant([3, 2]))
    out = clip([g, None])
    assert isinstance(out[0], tf.IndexedSlices) and out[1] is None
    assert np.isinf(clip.gamma.numpy()[1]) and clip.gamma.numpy()[0] == pytest.approx(1.0)


def test_options_change_without_retrace():
    clip = AdaGC(warmup_steps=2, lambda_rel=1.0)
    clip.build(1)
    step = tf.function(lambda g: clip([g]))
    step(tf.constant([0.5]))  # warm-up: gamma 0.5
    clip.set(lambda_rel=4.0)
    out = step(tf.constant([10.0]))  # bound 4 * 0.5 = 2
    assert float(out[0][0]) == pytest.approx(2.0)
    assert step.experimental_get_tracing_count() == 1
    assert clip.get_config()["lambda_rel"] == 4.0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(lambda_abs=0.0), "lambda_abs"),
        (dict(lambda_rel=-1.0), "lambda_rel"),
        (dict(beta=1.0), "beta"),
        (dict(warmup_steps=1), "warmup_steps"),
        (dict(eps=-1e-8), "eps"),
    ],
    ids=["lambda_abs", "lambda_rel", "beta", "warmup_steps", "eps"],
)
def test_bad_options_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"Argument `{name}`.*Received: {name}="):
        AdaGC(**kwargs)


def test_update_from_squared_norms_is_the_scaler_form():
    """update(squared norms) gives the factors __call__ applies (one per tensor)."""
    a, b = AdaGC(warmup_steps=3), AdaGC(warmup_steps=3)
    for grads in gradient_sequence(4, 6):
        tensors = [tf.constant(g, tf.float32) for g in grads]
        factors = a.update(tf.stack([tf.reduce_sum(tf.square(t)) for t in tensors]))
        out = b(tensors)
        for f, t, o in zip(factors.numpy(), tensors, out):
            np.testing.assert_allclose(o.numpy(), t.numpy() * f, rtol=1e-6)
    assert a.state_variables == [a.step, a.gamma]
