"""Instrumented training: every statistic from the real gradients, inside one compiled step.

:class:`Trainer` runs a custom ``tf.function`` step over any Keras model (on GPU
when there is one, XLA optional). Each step records, from the very gradients
that update the weights: loss, global norm before and after scaling, per-layer
norms before and after, whether scaling was active, per-layer update-to-weight
ratios, the loss scale, a skipped-step flag, and the mode and threshold in force.
Statistics go to preallocated ``tf.Variable`` buffers; the host reads them only
every ``capacity`` steps or at the end.

Mode and threshold live in the :class:`~gradlab.scaler.scaler.Scaler`'s variables:
``trainer.scaler.set(...)`` between steps (from a widget, another thread) takes
effect at the next step and never retraces.

``model.fit`` users get the same :class:`~gradlab.training.history.History` from the
:class:`~gradlab.training.callbacks.GradientStats` callback with a
:class:`~gradlab.training.optimizer.ScaledOptimizer`.

The Trainer's inputs are checked in :mod:`gradlab.training.inputs`, its held-out
evaluation is :mod:`gradlab.training.evaluation`, its progress display
:mod:`gradlab.training.progress`.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from gradlab import _checks
from gradlab.scaler.modes import MODE_NAMES
from gradlab.scaler.scaler import Scaler
from gradlab.scaling.kernels import values_of, with_values
from gradlab.training.evaluation import Evaluator
from gradlab.training.history import History
from gradlab.training.inputs import batches, check_loss, check_training_data
from gradlab.training.optimizer import ScaledOptimizer
from gradlab.training.optimizers import check_plain_optimizer
from gradlab.training.per_example import PerExample, check_l2_norm_clip
from gradlab.training.progress import Progress
from gradlab.training.recording import Recorder
from gradlab.training.update import instrumented_update

__all__ = ["Trainer", "setup"]


def setup(seed: int = 0, deterministic: bool = True, quiet: bool = True) -> None:
    """Seed Python, numpy and TensorFlow; optionally make ops deterministic and quiet.

    Call it first in a notebook or test. ``quiet`` silences TensorFlow's Python
    logger and, if TensorFlow was not imported yet, its C++ start-up lines.

    With ``deterministic=True``, Keras' ``model.compile(jit_compile=True)`` warns and
    runs without XLA (Keras 3 refuses XLA while op determinism is on); the
    :class:`Trainer`'s ``jit_compile=True`` still compiles with XLA.
    """
    seed = _checks.number("seed", seed, low=0, low_open=False, integer=True)
    deterministic = _checks.boolean("deterministic", deterministic)
    quiet = _checks.boolean("quiet", quiet)
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


class Trainer:
    """A compiled, instrumented training loop for one model.

    Args:
      model: a built Keras model (Sequential, Functional or subclassed).
      loss: a Keras loss (object, name or callable ``loss(y_true, y_pred)``).
      optimizer: a Keras optimizer, or a :class:`ScaledOptimizer` (its scaler and
        inner optimizer are then used).
      scaler: a :class:`Scaler`; default ``Scaler("none")`` (record, do not scale).
      jit_compile: compile the step with XLA.
      steps_per_call: steps run per call of the compiled function (fewer Python
        round trips).
      accumulate: micro-batches per update (gradient accumulation). Their
        gradients are averaged and scaled once per update, never per
        micro-batch; one row of statistics is recorded per update. With
        ``batch_size=b`` an update sees ``accumulate * b`` samples.
      capacity: rows of the statistics buffer; the host reads it when full.
      label: a name for the run.
      l2_norm_clip: per-example clipping (DP-SGD's clipping step, Abadi et al. 2016),
        ``None`` (default) for the ordinary step. A number ``C`` in (0, inf]: each
        example's gradient is computed on its own inside the compiled step
        (``tf.vectorized_map``), clipped to global L2 norm ``C``, the examples are
        summed, noise is added (``noise_multiplier``) and the sum is divided by the
        batch size; the scaler and the update then run on that mean as on an
        ordinary gradient. ``inf`` computes per-example gradients and clips none.
        Each step records the median and max of the per-example norms and the
        fraction clipped (``History.example_norm_median``, ``example_norm_max``,
        ``example_clip_fraction``). Not with ``accumulate > 1``, a tf.distribute
        strategy, mixed-precision loss scaling or BatchNormalization layers.
        The names are TF Privacy's (``DPKerasSGDOptimizer``); gradlab does no
        privacy accounting.
      noise_multiplier: ``sigma`` >= 0, with ``l2_norm_clip``: Gaussian noise of
        standard deviation ``sigma * l2_norm_clip`` is added to the clipped sum
        (``sigma * l2_norm_clip / batch`` on the mean). 0 (default): no noise.
      noise_seed: seed of the noise's ``tf.random.Generator`` (same seed, same
        noise; ``reset()`` rewinds it).

    >>> p = gradlab.problems.deep_mlp(depth=2, samples=64)
    >>> t = Trainer(p.model(), p.loss, keras.optimizers.SGD(0.01), Scaler("global_norm", 1.0))
    >>> h = t.fit(p.x, p.y, steps=5, batch_size=16, progress=False)
    >>> len(h), bool((h.norm_after <= 1.0 + 1e-6).all())
    (5, True)
    """

    def __init__(
        self,
        model: keras.Model,
        loss,
        optimizer,
        scaler: Scaler | None = None,
        *,
        jit_compile: bool = False,
        steps_per_call: int = 1,
        accumulate: int = 1,
        capacity: int = 1024,
        label: str = "",
        l2_norm_clip: float | None = None,
        noise_multiplier: float = 0.0,
        noise_seed: int = 0,
    ):
        if not isinstance(model, keras.Model):
            raise ValueError(f"Argument `model` must be a keras.Model. Received: model={model!r}")
        if not model.built or not model.trainable_variables:
            raise ValueError(
                "Argument `model` must be built and have trainable variables (build it with an "
                f"Input or call it once). Received: model={model.name!r} with "
                f"{len(model.trainable_variables) if model.built else 'no'} trainable variables"
            )
        # Mixed precision: keep Keras' LossScaleOptimizer for its dynamic scale, and
        # apply through its inner optimizer after unscaling (see _train_step).
        self.loss_scaler = None
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            self.loss_scaler, optimizer = optimizer, optimizer.inner_optimizer
        if isinstance(optimizer, ScaledOptimizer):
            if scaler is not None:
                raise ValueError(
                    "Only one clipping option may be set: the optimizer is a ScaledOptimizer with its own "
                    f"scaler. Received: scaler={scaler!r}"
                )
            scaler, optimizer = optimizer.scaler, optimizer.inner_optimizer
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise ValueError(f"Argument `optimizer` must be a Keras optimizer. Received: optimizer={optimizer!r}")
        check_plain_optimizer(optimizer, "optimizer", "the Trainer", "the Trainer's `accumulate=`")
        if scaler is not None and not isinstance(scaler, Scaler):
            raise ValueError(f"Argument `scaler` must be a gradlab.Scaler. Received: scaler={scaler!r}")
        _checks.boolean("jit_compile", jit_compile)
        _checks.text("label", label)
        check_l2_norm_clip(l2_norm_clip)  # per-example clipping: values now, combinations in _per_example
        _checks.python_number("noise_multiplier", noise_multiplier, low=0.0, low_open=False)
        _checks.size("noise_seed", noise_seed, low=0)
        self.model = model
        self.loss = check_loss(loss)
        self._evaluator = Evaluator(model, self.loss)  # fit's validation_data
        self.optimizer = optimizer
        self.scaler = scaler if scaler is not None else Scaler("none")
        self.steps_per_call = _checks.number("steps_per_call", steps_per_call, low=1, low_open=False, integer=True)
        self.accumulate = _checks.number("accumulate", accumulate, low=1, low_open=False, integer=True)
        capacity = _checks.number("capacity", capacity, low=1, low_open=False, integer=True)
        self.label = label
        self.variables = list(model.trainable_variables)
        to_build = self.loss_scaler or self.optimizer  # a LossScaleOptimizer builds its inner one
        if not to_build.built:
            to_build.build(self.variables)
        # tf.distribute: build everything under the strategy's scope, then make the Trainer there.
        self.strategy = tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        if self.replicas > 1:
            if self.loss_scaler is not None or self.accumulate > 1 or jit_compile or self.steps_per_call > 1:
                raise ValueError(
                    "Under a tf.distribute strategy the Trainer runs one step per call, without mixed-precision "
                    "loss scaling, accumulation or XLA (use model.fit with ScaledOptimizer for those). Received: "
                    f"loss scaling={self.loss_scaler is not None}, accumulate={self.accumulate}, "
                    f"jit_compile={jit_compile}, steps_per_call={self.steps_per_call}"
                )
            # ScaledOptimizer sums the replicas' gradients, scales the sum once and applies it.
            self._replicated = ScaledOptimizer(self.optimizer, scaler=self.scaler)
        self.per_example = _per_example(self, l2_norm_clip, noise_multiplier, noise_seed)
        self.recorder = Recorder(self.variables, capacity)
        if self.replicas > 1:
            self._replicated.recorder = self.recorder
        self.scaler.build(self.variables)  # state shaped by the gradients (AdaGC), before anything is traced
        # model.variables: weights and the seed generators' state, so runs after reset() draw the same masks.
        self._initial = [
            (v, v.numpy().copy())
            for v in [*model.variables, *(self.loss_scaler or self.optimizer).variables, *self.scaler.state_variables]
            + (self.per_example.state_variables if self.per_example is not None else [])
        ]
        self.history = History.empty(self.recorder.layer_names, MODE_NAMES, label)
        # The compiled function fetches the batch from the iterator, as model.fit does (looping with
        # several steps per call); XLA compiles the step alone; under a strategy the host fetches.
        if self.replicas > 1:
            self._step = tf.function(self._distributed_step)
            self._compiled = self._step
        else:
            self._step = tf.function(self._train_step, jit_compile=True) if jit_compile else self._train_step
            self._compiled = tf.function(self._step_on_iterator if self.steps_per_call == 1 else self._train_steps)

    # ------------------------------------------------------------ compiled
    def _loss_and_grads(self, x, y, loss_scale):
        """Loss (float32) and the true (unscaled) gradients of one batch."""
        lso = self.loss_scaler
        with tf.GradientTape() as tape:
            pred = self.model(x, training=True)
            loss = tf.reduce_mean(tf.cast(self.loss(y, pred), tf.float32))
            if self.model.losses:
                loss = loss + tf.add_n([tf.cast(extra, tf.float32) for extra in self.model.losses])
            # Keras' loss scaling: the dynamic one of mixed precision, and a fixed loss_scale_factor.
            scale = loss_scale if lso is not None else 1.0
            if self.optimizer.loss_scale_factor is not None:
                scale = scale * self.optimizer.loss_scale_factor
            target = loss if isinstance(scale, float) and scale == 1.0 else loss * scale
        grads = tape.gradient(target, self.variables)
        if target is not loss:  # unscale first: gradlab scales the true gradients
            grads = [g if g is None else g / tf.cast(scale, g.dtype) for g in grads]
        return loss, grads

    def _accumulated(self, x, y, loss_scale):
        """Mean loss and mean gradient over the ``accumulate`` micro-batches stacked in x, y."""
        k = self.accumulate
        losses, total = [], None
        for i in range(k):  # unrolled: k is small and fixed
            loss, grads = self._loss_and_grads(x[i], y[i], loss_scale)
            losses.append(loss)
            total = grads if total is None else [_add(a, b) for a, b in zip(total, grads)]
        return tf.add_n(losses) / k, [None if g is None else _times(g, 1.0 / k) for g in total]

    def _train_step(self, x, y):
        lso = self.loss_scaler
        loss_scale = tf.constant(1.0) if lso is None else tf.identity(lso.dynamic_scale)
        if self.per_example is not None:  # clipped per example, noised, averaged
            loss, grads, norms = self.per_example(self.model, self.loss, self.variables, x, y)
            self.recorder.per_example(norms, self.per_example.l2_norm_clip)
        elif self.accumulate == 1:
            loss, grads = self._loss_and_grads(x, y, loss_scale)
        else:
            loss, grads = self._accumulated(x, y, loss_scale)
        # Keras' apply divides by loss_scale_factor (the loss was multiplied by it): give it g * factor.
        factor = self.optimizer.loss_scale_factor
        if factor is not None:
            loss_scale = loss_scale * factor
        on_skip = on_spike = None
        if lso is None:

            def apply(scaled):
                self.optimizer.apply(scaled if factor is None else [_times(g, factor) for g in scaled], self.variables)

        else:
            # Mixed precision: LossScaleOptimizer's own apply unscales, applies, and grows its
            # scale after dynamic_growth_steps finite steps. gradlab scaled the true gradients,
            # so it hands them back times the same scale (a power of two: exact).
            def apply(scaled):
                lso.apply([_times(g, loss_scale) for g in scaled], self.variables)

            def on_skip():
                # A step the policy skips is one LossScaleOptimizer must skip too, and halve its
                # scale: hand it non-finite gradients (the norm can overflow float32 while every
                # entry is finite, so the step's own gradients are not enough).
                nan = tf.constant(float("nan"))
                lso.apply([_times(g, nan) for g in grads], self.variables)

            def on_spike():  # finite gradients: the loss scale stays, and so does its growth count
                pass

        instrumented_update(
            self.scaler,
            grads,
            self.variables,
            apply,
            recorder=self.recorder,
            loss=loss,
            loss_scale=loss_scale,
            on_skip=on_skip,
            on_spike=on_spike,
        )

    def _distributed_step(self, x, y):
        self.strategy.run(self._replica_step, args=(x, y))

    def _replica_step(self, x, y):
        """One replica's part: the gradient of its share of the global-batch loss."""
        n = self.replicas
        with tf.GradientTape() as tape:
            share = tf.reduce_mean(tf.cast(self.loss(y, self.model(x, training=True)), tf.float32))
            if not _divides_by_replicas(self.loss):
                share = share / n
            if self.model.losses:  # penalties count once in the sum of the shares
                share = share + tf.add_n([tf.cast(extra, tf.float32) for extra in self.model.losses]) / n
        grads = tape.gradient(share, self.variables)
        # This replica's share, as Keras' train step hands it over: ScaledOptimizer sums the shares.
        self._replicated.scale_loss(share)
        self._replicated.apply(grads, self.variables)

    def _step_on_iterator(self, iterator):
        x, y = next(iterator)
        self._step(x, y)

    def _train_steps(self, iterator, n):
        for _ in tf.range(n):
            x, y = next(iterator)
            self._step(x, y)

    def reset(self) -> None:
        """Go back to the start: initial weights and seed state (``model.variables``), optimizer
        state, adaptive-clipping state and data order; empty history. Mode and threshold are kept.

        Nothing is rebuilt, so the compiled step is not traced again.
        """
        for v, value in self._initial:
            v.assign(value)
        self.recorder.row.assign(0)
        self._source = (None,)
        self.history = History.empty(self.recorder.layer_names, MODE_NAMES, self.label)

    def _iterator(self, x, y, dataset, batch_size, shuffle, seed):
        """The iterator over this data, reused when the same data comes again."""
        key = check_training_data(self.model, x, y, dataset, batch_size, shuffle, seed)
        if getattr(self, "_source", (None,))[0] != key:
            if dataset is None:
                ds = batches(x, y, batch_size, shuffle, seed)
            elif dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
                ds = dataset  # already repeated: another repeat() would be one more stage per batch
            else:
                ds = dataset.repeat()
            if self.accumulate > 1:  # each element: `accumulate` micro-batches, stacked
                ds = ds.batch(self.accumulate, drop_remainder=True)
            if self.replicas > 1:  # each batch is a global batch, split between the replicas
                ds = self.strategy.experimental_distribute_dataset(ds)
            # Keep the data alive with its iterator so that ids are not reused.
            self._source = (key, iter(ds), (x, y, dataset))
        return self._source[1]

    @property
    def tracing_count(self) -> int:
        """How many times the compiled step was traced (1 after any number of changes)."""
        return self._compiled.experimental_get_tracing_count()

    # ------------------------------------------------------------ host loop
    def fit(
        self,
        x=None,
        y=None,
        *,
        dataset: tf.data.Dataset | None = None,
        steps: int = 100,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        progress: bool = True,
        on_flush=None,
        flush_every: int | None = None,
        validation_data=None,
        validation_every: int | None = None,
    ) -> History:
        """Train ``steps`` steps and return the history of this call.

        Args:
          x, y: numpy arrays (batched with ``batch_size``, shuffled with ``seed``).
          dataset: a ``tf.data.Dataset`` of ``(x, y)`` batches instead (repeated).
          steps: number of training steps.
          progress: show progress (a widget in Jupyter, text elsewhere).
          on_flush: ``fn(history_so_far)`` called each time statistics are read.
          flush_every: steps between reads (default ``capacity``); the host
            syncs only then.
          validation_data: ``(x_val, y_val)`` arrays or a finite ``tf.data.Dataset``
            of ``(x, y)`` batches, evaluated (inference mode, every sample once)
            every ``validation_every`` steps and after the last step: the mean
            loss (with the model's penalties, as ``model.evaluate``) and, when the
            loss is a classification loss (sparse or categorical cross-entropy,
            binary cross-entropy), the accuracy. Recorded with
            :meth:`History.add_validation` (``val_step``, ``val_loss``, ``val_accuracy``).
          validation_every: steps between evaluations; default ``steps // 10``
            (at least 1): ten evaluations per call.

        Calling ``fit`` again with the same data (the same arrays and batching, or
        the same dataset object) continues from the next batch, like another
        epoch of ``model.fit``. The full record of every call is also kept in
        ``trainer.history``.
        """
        steps = _checks.number("steps", steps, low=1, low_open=False, integer=True)
        batch_size = _checks.number("batch_size", batch_size, low=1, low_open=False, integer=True)
        seed = _checks.number("seed", seed, low=0, low_open=False, integer=True)
        _checks.boolean("shuffle", shuffle)
        _checks.boolean("progress", progress)
        if on_flush is not None and not callable(on_flush):
            raise ValueError(
                f"Argument `on_flush` must be None or a function fn(history). Received: on_flush={on_flush!r}"
            )
        flush_every = self.recorder.capacity if flush_every is None else flush_every
        flush_every = _checks.number(
            "flush_every", flush_every, low=1, low_open=False, high=self.recorder.capacity, integer=True
        )
        every = max(1, steps // 10) if validation_every is None else validation_every
        every = _checks.size("validation_every", every)
        iterator = self._iterator(x, y, dataset, batch_size, shuffle, seed)
        held_out = self._evaluator.held_out(validation_data, x, y, batch_size)  # checked before any step
        next_eval = min(every, steps) if held_out is not None else steps
        run = History.empty(self.recorder.layer_names, MODE_NAMES, self.label)
        bar = Progress(steps, self.label) if progress else None
        done = pending = 0

        def read():
            part = self.recorder.history(self.recorder.flush(), self.label)
            run.extend(part)
            self.history.extend(part)

        while done < steps:
            n = min(self.steps_per_call, steps - done, flush_every - pending, next_eval - done)
            try:
                if self.replicas > 1:
                    self._step(*next(iterator))
                elif self.steps_per_call == 1:
                    self._compiled(iterator)
                else:
                    self._compiled(iterator, tf.constant(n))
            except tf.errors.InvalidArgumentError as err:
                read()  # the steps that trained before the error keep their rows; the failed one has none
                if "Non-finite gradients (nonfinite=" in err.message:  # the check of nonfinite="raise"
                    raise FloatingPointError(_assertion_text(err.message)) from None
                raise
            done += n
            pending += n
            if pending == flush_every or done == steps or done == next_eval:
                read()
                pending = 0
                if held_out is not None and done == next_eval:  # after read(): val_step is the steps recorded
                    val_loss, val_accuracy = self._evaluator.evaluate(held_out)
                    run.add_validation(val_loss, val_accuracy)
                    self.history.add_validation(val_loss, val_accuracy)
                    next_eval = min(done + every, steps)
                if bar:
                    bar.update(done, run)
                if on_flush is not None:
                    on_flush(run)
        if bar:
            bar.close()
        return run


def _per_example(trainer, l2_norm_clip, noise_multiplier, noise_seed):
    """The Trainer's :class:`PerExample` step part, or None; refuses what it cannot combine with."""
    if l2_norm_clip is None:
        for name, value, default in (("noise_multiplier", noise_multiplier, 0.0), ("noise_seed", noise_seed, 0)):
            if value != default:
                raise ValueError(
                    f"Argument `{name}` needs per-example clipping: set `l2_norm_clip` too (the noise's standard "
                    f"deviation is noise_multiplier * l2_norm_clip). Received: {name}={value!r}, l2_norm_clip=None"
                )
        return None
    part = PerExample(trainer.model, l2_norm_clip, noise_multiplier, noise_seed)
    refused = [
        (trainer.accumulate > 1, f"accumulate={trainer.accumulate}", "accumulate=1 (use a larger batch_size)"),
        (trainer.replicas > 1, f"a tf.distribute strategy with {trainer.replicas} replicas", "no strategy"),
        (trainer.loss_scaler is not None, "a LossScaleOptimizer", "a float32 optimizer"),
    ]
    for bad, received, allowed in refused:
        if bad:
            raise ValueError(
                f"Argument `l2_norm_clip` (per-example clipping) works with {allowed} only. "
                f"Received: l2_norm_clip={l2_norm_clip!r} with {received}"
            )
    return part


def _assertion_text(message: str) -> str:
    """The text of a failed ``tf.debugging.Assert`` without TensorFlow's node and trace lines."""
    first = message.split("assertion failed:", 1)[-1].split("\n")[0]
    parts = [p.strip(" []") for p in first.replace("\\'", "'").split("] [")]
    return " ".join(parts) + ". Use nonfinite='skip' to skip such steps or 'zero' to zero the bad entries."


def _divides_by_replicas(loss) -> bool:
    """Keras losses with a mean reduction already divide by the number of replicas
    inside a tf.distribute replica (keras.losses.loss.scale_loss_for_distribution)."""
    return isinstance(loss, keras.losses.Loss) and loss.reduction in (
        "sum_over_batch_size",
        "mean",
        "mean_with_sample_weight",
    )


def _add(a, b):
    """Sum of two gradients; IndexedSlices stay sparse (their rows are concatenated)."""
    if a is None or b is None:
        return a if b is None else b
    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0), a.dense_shape)
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


def _times(g, c):
    return None if g is None else with_values(g, values_of(g) * tf.cast(c, values_of(g).dtype))
