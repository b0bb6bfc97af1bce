"""`ScaledOptimizer`: gradlab's scaling inside `model.compile` / `model.fit`.

It wraps any Keras optimizer the way ``keras.optimizers.LossScaleOptimizer``
does: it receives the gradients, unscales them if a ``loss_scale_factor`` is
set, scales them with a :class:`gradlab.Scaler`, and hands the result to the
inner optimizer, or skips the step when the gradients are not finite (the
default ``nonfinite="skip"`` policy).

With ``mode="value"``, ``"norm"`` or ``"global_norm"`` its updates equal the
inner optimizer built with Keras' own ``clipvalue``, ``clipnorm`` or
``global_clipnorm`` on one device.

Under ``tf.distribute`` (create it inside ``strategy.scope()``) it differs from
Keras on purpose: Keras clips each replica's gradient before the all-reduce;
ScaledOptimizer sums the replicas' gradients first and scales the sum once, so
training on n replicas gives the weights of one device on the same global
batches. AutoClip and ZClip keep one state, updated from the summed gradient.
"""

from __future__ import annotations

import threading

import keras
import tensorflow as tf

from gradlab import _checks
from gradlab._state import state_variable
from gradlab.scaler.scaler import Scaler
from gradlab.training.optimizers import check_plain_optimizer
from gradlab.training.recording import Recorder
from gradlab.training.update import instrumented_update

__all__ = ["RecordingLossScaleOptimizer", "ScaledOptimizer", "loss_scale_parts"]

# Keras' clipping arguments and the gradlab mode that does the same.
_KERAS_CLIPPING = {"clipnorm": "norm", "clipvalue": "value", "global_clipnorm": "global_norm"}


@keras.saving.register_keras_serializable(package="gradlab")
class ScaledOptimizer(keras.optimizers.Optimizer):
    """A Keras optimizer that scales gradients with gradlab before updating.

    Args:
      inner_optimizer: the ``keras.optimizers.Optimizer`` that applies the update.
        It must not clip on its own (no ``clipnorm``, ``clipvalue`` or
        ``global_clipnorm``) and must not accumulate gradients.
      mode: a gradlab mode name (``"global_norm"`` by default); see
        :data:`gradlab.scaler.MODE_NAMES`.
      threshold: the mode's threshold (``None``: the mode's default).
      transform: a custom transform ``fn(grads[, variables]) -> grads`` instead
        of a mode.
      nonfinite: ``"skip"`` (default), ``"zero"`` or ``"raise"``.
      scaler: an existing :class:`gradlab.Scaler` to use (for example one a
        widget controls), instead of the arguments above.
      name: optimizer name.
      **scaler_options: further :class:`gradlab.Scaler` options (``agc_eps``,
        ``zclip_warmup``, ...).

    Attributes:
      scaler: the :class:`gradlab.Scaler`; ``optimizer.scaler.set(mode=...,
        threshold=...)`` changes it between steps without a retrace.
      skipped_steps: int variable, how many updates were skipped.

    >>> opt = ScaledOptimizer(keras.optimizers.SGD(1.0), mode="global_norm", threshold=1.0)
    >>> w = keras.Variable([0.0, 0.0])
    >>> opt.apply([tf.constant([3.0, 4.0])], [w])
    >>> w.numpy().round(3).tolist()
    [-0.6, -0.8]
    """

    def __init__(
        self,
        inner_optimizer,
        mode: str | None = None,
        threshold: float | None = None,
        *,
        transform=None,
        nonfinite: str = "skip",
        scaler: Scaler | None = None,
        name: str | None = None,
        **scaler_options,
    ):
        if not isinstance(inner_optimizer, keras.optimizers.Optimizer):
            raise ValueError(
                "Argument `inner_optimizer` must be a keras.optimizers.Optimizer instance, "
                f"such as keras.optimizers.Adam(). Received: inner_optimizer={inner_optimizer!r}"
            )
        if isinstance(inner_optimizer, keras.optimizers.LossScaleOptimizer):
            raise ValueError(
                "Argument `inner_optimizer` must not be a LossScaleOptimizer: it would hand ScaledOptimizer "
                "gradients that are still multiplied by the loss scale. Nest them the other way round, "
                "keras.optimizers.LossScaleOptimizer(gradlab.ScaledOptimizer(keras.optimizers.SGD(...))), or "
                "let model.compile do it under the 'mixed_float16' policy. Received: "
                f"inner_optimizer=LossScaleOptimizer({type(inner_optimizer.inner_optimizer).__name__})"
            )
        if isinstance(inner_optimizer, ScaledOptimizer):
            raise ValueError(
                "Argument `inner_optimizer` must not be a ScaledOptimizer: the gradients would be scaled twice. "
                "Wrap the plain optimizer once, or compose transforms with gradlab.scaler.Chain(...). Received: "
                f"inner_optimizer=ScaledOptimizer({type(inner_optimizer.inner_optimizer).__name__}, "
                f"scaler={inner_optimizer.scaler!r})"
            )
        for arg, same_mode in _KERAS_CLIPPING.items():
            if arg in scaler_options:
                raise ValueError(
                    f"ScaledOptimizer does not take `{arg}`: choose the clipping with `mode` and "
                    f"`threshold` (here mode={same_mode!r}). Received: {arg}={scaler_options[arg]!r}"
                )
        check_plain_optimizer(
            inner_optimizer,
            "inner_optimizer",
            "ScaledOptimizer",
            "a larger batch, or the Trainer's `accumulate=`",
        )
        if scaler is not None:
            if not isinstance(scaler, Scaler):
                raise ValueError(f"Argument `scaler` must be a gradlab.Scaler. Received: scaler={scaler!r}")
            given = {"mode": mode, "threshold": threshold, "transform": transform}
            given = {k: v for k, v in given.items() if v is not None}
            if given or scaler_options or nonfinite != "skip":
                raise ValueError(
                    "Only one clipping option may be set: pass either `scaler` or the arguments "
                    f"that build one. Received: scaler={scaler!r} and {given or scaler_options or {'nonfinite': nonfinite}}"
                )
        else:
            _checks.known_options(scaler_options, Scaler, "ScaledOptimizer")
            if mode is None and transform is None:
                mode = "global_norm"
            scaler = Scaler(mode, threshold, transform=transform, nonfinite=nonfinite, **scaler_options)
        # Gradients are unscaled here, before scaling, as Keras does before clipping.
        loss_scale_factor = inner_optimizer.loss_scale_factor
        super().__init__(
            learning_rate=0.0, name=name or f"scaled_{inner_optimizer.name}", loss_scale_factor=loss_scale_factor
        )
        self.inner_optimizer = inner_optimizer
        self.inner_optimizer.loss_scale_factor = None
        self.scaler = scaler
        self.skipped_steps = state_variable(0, "skipped_steps", tf.int64)
        self.recorder = None
        self._loss = _Slot()
        self._around = _Around()  # the LossScaleOptimizer around this one (kept out of Keras' tracking)

    def start_recording(self, variables, capacity: int = 1024) -> Recorder:
        """Record gradlab's statistics in every later traced step (see ``GradientStats``)."""
        if isinstance(variables, (tf.Tensor, tf.Variable)) or not isinstance(variables, (list, tuple)) or not variables:
            raise ValueError(
                "Argument `variables` must be a list of the model's trainable variables, not empty. "
                f"Received: variables={variables!r}"
            )
        capacity = _checks.number("capacity", capacity, low=1, low_open=False, integer=True)
        self.recorder = Recorder(list(variables), capacity)
        return self.recorder

    @property
    def loss_scale_optimizer(self):
        """The ``keras.optimizers.LossScaleOptimizer`` around this one, or None.

        Its ``dynamic_scale`` fills the ``loss_scale`` column of the recorded rows.
        :class:`~gradlab.GradientStats` sets it from the compiled model (nothing is
        replaced); a step traced afterwards reads it.
        """
        return self._around.optimizer

    @loss_scale_optimizer.setter
    def loss_scale_optimizer(self, optimizer):
        if optimizer is not None and not (
            isinstance(optimizer, keras.optimizers.LossScaleOptimizer) and optimizer.inner_optimizer is self
        ):
            raise ValueError(
                "Argument `loss_scale_optimizer` must be None or the keras.optimizers.LossScaleOptimizer "
                f"whose inner_optimizer is this ScaledOptimizer. Received: loss_scale_optimizer={optimizer!r}"
            )
        self._around.optimizer = optimizer

    def record_loss(self, loss) -> None:
        """Record ``loss`` as the loss of the step whose gradients this optimizer applies next.

        Keras' own ``train_step`` does it for you (through :meth:`scale_loss`). A
        custom ``train_step`` that calls ``self.optimizer.apply_gradients`` itself
        calls ``self.optimizer.record_loss(loss)`` before it, in the same step;
        otherwise the ``loss`` column of :class:`~gradlab.GradientStats` is NaN.
        Nothing else changes: the loss is only read by the recorder.
        """
        self._loss.value = loss

    def scale_loss(self, loss):
        # Keras' train step passes each batch's loss here before taking gradients:
        # keep it (symbolically) so that apply() can record it.
        self.record_loss(loss)
        return super().scale_loss(loss)

    def build(self, var_list):
        self.inner_optimizer.build(var_list)
        self.scaler.build(var_list)
        super().build(var_list)

    @property
    def variables(self):
        return self._variables + [self.skipped_steps] + self.scaler.variables + self.inner_optimizer.variables

    @tf.autograph.experimental.do_not_convert
    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `trainable_variables`, the optimizer must already be "
                    "built. Call `optimizer.build(trainable_variables)` first."
                )
            trainable_variables = self._trainable_variables
        grads = _checks.grad_list(grads)
        trainable_variables = _checks.variable_list(trainable_variables, grads)
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        if self.loss_scale_factor is not None:
            grads = [g if g is None else g / self.loss_scale_factor for g in grads]
        replicas = _replicas()
        if replicas > 1:
            # Clip what the update will use: the gradient summed over replicas (Keras clips
            # each replica's own gradient before the sum).
            grads = _all_reduce(grads)

        def skip():
            self.skipped_steps.assign_add(1)

        def apply(scaled):
            self.inner_optimizer.apply(scaled, trainable_variables)

        def apply_on_replicas(scaled, finite):
            # The inner optimizer sums its gradients over replicas again: give each replica
            # a 1/n share. Its apply synchronises replicas, which tf.cond forbids inside a
            # replica: decide in cross-replica context, as LossScaleOptimizer does.
            shares = [None if g is None else g / replicas for g in scaled]

            def cross_replica(distribution, shares, finite):
                def update():
                    distribution.extended.call_for_each_replica(
                        self.inner_optimizer.apply, args=(shares, trainable_variables)
                    )

                tf.cond(distribution.experimental_local_results(finite)[0], update, skip)

            tf.distribute.get_replica_context().merge_call(cross_replica, args=(shares, finite))

        recording = self.recorder is not None
        loss = self._loss.get() if recording or _watches_loss(self.scaler) else None
        if replicas > 1 and loss is not None:
            # The global batch's loss, on every replica (the spike rule decides alike): Keras' train step
            # hands each replica's loss divided by the number of replicas, so their sum.
            loss = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(loss, tf.float32))
        instrumented_update(
            self.scaler,
            grads,
            trainable_variables,
            apply_on_replicas if replicas > 1 else apply,
            recorder=self.recorder,
            loss=loss,
            loss_scale=1.0 if self.loss_scale_optimizer is None else self.loss_scale_optimizer.dynamic_scale,
            on_skip=skip,
            decide_outside=replicas > 1,
        )

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        raise NotImplementedError("ScaledOptimizer runs on the TensorFlow backend (stateful apply) only.")

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def get_config(self):
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
            "scaler": keras.saving.serialize_keras_object(self.scaler),
            "loss_scale_factor": self.loss_scale_factor,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(config.pop("inner_optimizer"), custom_objects=custom_objects)
        inner.loss_scale_factor = config.pop("loss_scale_factor", None)
        scaler = keras.saving.deserialize_keras_object(config.pop("scaler"), custom_objects=custom_objects)
        return cls(inner, scaler=scaler, **config)


@keras.saving.register_keras_serializable(package="gradlab")
class RecordingLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Keras' ``LossScaleOptimizer`` around a :class:`ScaledOptimizer` that passes the loss on.

    Keras' own ``LossScaleOptimizer`` scales the loss itself and never shows it to
    the optimizer inside: with it, :class:`~gradlab.GradientStats` records every
    step (the skipped ones too, with the loss scale in force) but the loss column is
    NaN. Compile with this subclass instead to record the loss as well: it extends
    :meth:`scale_loss` to hand the loss to the ScaledOptimizer, and adds
    :meth:`record_loss` for a custom ``train_step``. The loss scale, its growth and
    its halving are Keras' own.

    >>> opt = RecordingLossScaleOptimizer(gradlab.ScaledOptimizer(keras.optimizers.SGD(0.1)))
    >>> float(opt.scale_loss(tf.constant(2.0)))  # the initial scale, 2**15, times the loss
    65536.0
    """

    def __init__(self, inner_optimizer, *args, **kwargs):
        if not isinstance(inner_optimizer, ScaledOptimizer):
            raise ValueError(
                "Argument `inner_optimizer` must be a gradlab.ScaledOptimizer (this LossScaleOptimizer records "
                f"its statistics). Received: inner_optimizer={inner_optimizer!r}"
            )
        super().__init__(inner_optimizer, *args, **kwargs)

    def record_loss(self, loss) -> None:
        """Show ``loss`` to the ScaledOptimizer's recorder (see :meth:`ScaledOptimizer.record_loss`)."""
        self.inner_optimizer.record_loss(loss)

    def scale_loss(self, loss):
        self.record_loss(loss)
        return super().scale_loss(loss)


def loss_scale_parts(optimizer):
    """``(loss_scale_optimizer, scaled_optimizer)`` of a compiled optimizer, nothing replaced.

    ``loss_scale_optimizer`` is the ``keras.optimizers.LossScaleOptimizer`` around the
    :class:`ScaledOptimizer` (None without one); ``scaled_optimizer`` is the
    ScaledOptimizer, or None when there is none.
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        inner = optimizer.inner_optimizer
        return optimizer, inner if isinstance(inner, ScaledOptimizer) else None
    return None, optimizer if isinstance(optimizer, ScaledOptimizer) else None


def _watches_loss(scaler) -> bool:
    """Whether ``scaler`` has a spike rule that watches the loss (see :mod:`gradlab.scaler.spike`)."""
    return scaler.spikes is not None and scaler.spikes.watches_loss


def _replicas() -> int:
    """Replicas in sync when called inside a replica of a tf.distribute strategy, else 1."""
    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return 1
    return tf.distribute.get_replica_context().num_replicas_in_sync


def _all_reduce(grads):
    """Sum gradients over replicas (IndexedSlices become dense)."""
    idx = [i for i, g in enumerate(grads) if g is not None]
    reduced = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, [tf.convert_to_tensor(grads[i]) for i in idx]
    )
    out = list(grads)
    for i, g in zip(idx, reduced):
        out[i] = g
    return out


class _Around:
    """Holds the LossScaleOptimizer around a ScaledOptimizer, out of Keras' tracking (which would loop)."""

    optimizer = None


class _Slot:
    """Holds the loss of the step being traced (kept out of Keras' tracking).

    ``get`` returns it only inside the graph (or a branch of the graph) that
    made it, so a loss kept from another traced function never leaks; NaN when
    there is none (``apply`` called outside ``model.fit``). Per thread: under a
    ``MirroredStrategy`` each replica's step is traced in a thread of its own, and
    each must read its own replica's loss.
    """

    def __init__(self):
        self._local = threading.local()

    @property
    def value(self):
        return getattr(self._local, "value", None)

    @value.setter
    def value(self, loss):
        self._local.value = loss

    def get(self):
        value = self.value
        if value is None:
            return float("nan")
        if tf.executing_eagerly():
            return value if isinstance(value, tf.Tensor) and not tf.is_symbolic_tensor(value) else float("nan")
        graph = tf.compat.v1.get_default_graph()
        while graph is not None:
            if graph is getattr(value, "graph", None):
                return value
            graph = getattr(graph, "outer_graph", None)
        return float("nan")
