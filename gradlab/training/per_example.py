"""Per-example gradients inside a compiled step: DP-SGD's clipping and noise (Abadi et al. 2016).

:class:`~gradlab.training.Trainer` with ``l2_norm_clip=C`` runs, in its compiled step,

1. each example's gradient, all examples at once with ``tf.vectorized_map`` (a batch of
   one per example; where the model has ops that ``vectorized_map`` cannot vectorize,
   those ops run in a loop, and where it fails altogether the step falls back to
   ``tf.map_fn``, one example after another);
2. each example clipped to global L2 norm ``C``, then summed
   (:func:`~gradlab.scaling.per_example.per_example_global_norm_clip`);
3. Gaussian noise of standard deviation ``noise_multiplier * C`` added to the sum, drawn
   from a seeded ``tf.random.Generator`` (its state is a variable: runs are reproducible
   and ``Trainer.reset()`` rewinds it);
4. the result divided by the batch size.

The Trainer's scaler and instrumented update then run on that gradient as on an
ordinary one. This is the clipping and noise of TF Privacy's ``DPKerasSGDOptimizer``
(``l2_norm_clip``, ``noise_multiplier``); gradlab does no privacy accounting.

References:
  Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang. "Deep Learning with
  Differential Privacy". CCS 2016. https://arxiv.org/abs/1607.00133
"""

from __future__ import annotations

import math
import numbers
import warnings

import keras
import tensorflow as tf

from gradlab import _checks
from gradlab.scaling.per_example import per_example_global_norm_clip, per_example_norms

__all__ = ["PerExample", "check_l2_norm_clip", "example_gradients"]


def check_l2_norm_clip(value):
    """``None`` (off) or a Python number in (0, inf]; inf keeps the per-example step but clips nothing."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isinf(value) and value > 0:
        return float("inf")
    try:
        return _checks.python_number("l2_norm_clip", value, low=0.0, low_open=True)
    except ValueError:
        raise _checks._fail(
            "l2_norm_clip", "None (no per-example clipping) or a Python number in (0, inf]", value
        ) from None


def _batch_norm_layers(model):
    """Names of the BatchNormalization layers in ``model`` (nested models included)."""
    found, todo = [], list(getattr(model, "layers", []))
    while todo:
        layer = todo.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer.name)
        todo.extend(getattr(layer, "layers", []))
    return found


def example_gradients(model, loss_fn, variables, x, y, *, vectorize: bool = True):
    """Each example's loss and gradient: ``(losses (batch,), grads)``, each grad ``(batch, *variable.shape)``.

    Example ``b``'s loss is the mean loss of the batch of one ``x[b:b+1]`` plus the
    model's penalties (``model.losses``), so that the mean of the per-example
    gradients is the ordinary gradient of the batch's mean loss. ``None`` gradients
    (variables the loss does not reach) stay ``None``; sparse ones (an Embedding's)
    are made dense.
    """
    missing = []  # indices of variables without a gradient, found when fn is traced

    def one(example):
        xb, yb = tf.nest.map_structure(lambda t: t[None], example)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(loss_fn(yb, model(xb, training=True)), tf.float32))
            if model.losses:
                loss = loss + tf.add_n([tf.cast(extra, tf.float32) for extra in model.losses])
        grads = tape.gradient(loss, variables)
        missing[:] = [i for i, g in enumerate(grads) if g is None]
        return loss, [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for v, g in zip(variables, grads)]

    if vectorize:
        losses, grads = tf.vectorized_map(one, (x, y), fallback_to_while_loop=True)
    else:
        dtypes = (tf.float32, [v.dtype for v in variables])
        losses, grads = tf.map_fn(one, (x, y), fn_output_signature=dtypes)
    return losses, [None if i in missing else g for i, g in enumerate(grads)]


class PerExample:
    """The per-example part of a Trainer's step: gradients, clipping, noise, mean.

    Args:
      l2_norm_clip: the clip norm ``C`` of each example (a Python number in (0, inf]).
      noise_multiplier: ``sigma`` >= 0; the noise added to the clipped sum has standard
        deviation ``sigma * C`` (so ``sigma * C / batch`` on the mean).
      noise_seed: seed of the noise generator.
    """

    def __init__(self, model, l2_norm_clip: float, noise_multiplier: float = 0.0, noise_seed: int = 0):
        self.l2_norm_clip = check_l2_norm_clip(l2_norm_clip)
        self.noise_multiplier = _checks.python_number("noise_multiplier", noise_multiplier, low=0.0, low_open=False)
        self.noise_seed = _checks.size("noise_seed", noise_seed, low=0)
        if self.noise_multiplier > 0 and math.isinf(self.l2_norm_clip):
            raise ValueError(
                "Argument `noise_multiplier` must be 0 when `l2_norm_clip` is inf: the noise's standard "
                "deviation is noise_multiplier * l2_norm_clip. Received: "
                f"noise_multiplier={noise_multiplier!r}, l2_norm_clip=inf"
            )
        bn = _batch_norm_layers(model)
        if bn:
            raise ValueError(
                "Argument `l2_norm_clip` needs a model without BatchNormalization: each example's gradient is "
                "computed on a batch of one, where batch statistics mean nothing (DP-SGD libraries refuse them "
                f"too; use LayerNormalization or GroupNormalization). Received: a model with {bn}"
            )
        self.generator = tf.random.Generator.from_seed(self.noise_seed) if self.noise_multiplier > 0 else None
        self.vectorized = True  # False once vectorized_map has failed and tf.map_fn is used

    @property
    def state_variables(self) -> list:
        """The noise generator's state (rewound by ``Trainer.reset``)."""
        return [] if self.generator is None else [self.generator.state]

    def __call__(self, model, loss_fn, variables, x, y):
        """``(mean loss, gradient, per-example norms)`` of one batch (graph-safe)."""
        if self.vectorized:
            try:
                losses, grads = example_gradients(model, loss_fn, variables, x, y, vectorize=True)
            except (ValueError, TypeError, NotImplementedError, tf.errors.OpError) as err:
                warnings.warn(
                    f"tf.vectorized_map could not vectorize the per-example gradient ({type(err).__name__}: "
                    f"{str(err).splitlines()[0][:200]}); computing it one example after another with tf.map_fn "
                    "(slower).",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.vectorized = False
        if not self.vectorized:
            losses, grads = example_gradients(model, loss_fn, variables, x, y, vectorize=False)
        norms = per_example_norms(grads)
        summed, _ = per_example_global_norm_clip(grads, self.l2_norm_clip, reduction="sum")
        batch = tf.cast(tf.shape(losses)[0], tf.float32)
        if self.generator is not None:
            std = self.noise_multiplier * self.l2_norm_clip
            summed = [
                None if g is None else g + tf.cast(self.generator.normal(tf.shape(g), stddev=std), g.dtype)
                for g in summed
            ]
        mean = [None if g is None else g / tf.cast(batch, g.dtype) for g in summed]
        return tf.reduce_mean(losses), mean, norms
