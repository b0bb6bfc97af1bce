"""Record per-step gradient statistics inside a compiled step, without host syncs.

A :class:`Recorder` owns one preallocated ``tf.Variable`` buffer of shape
``(capacity, columns)``. Each step names its statistics (the
:data:`gradlab.training.history.SCALARS`, the per-layer norms before and after scaling
and update-to-weight ratios, the :data:`gradlab.training.history.PER_EXAMPLE` columns);
:class:`~gradlab.training.history.Columns`, the one layout that History reads
too, packs them into one row, written with a single scatter. The host reads the buffer only in
:meth:`Recorder.flush`; whoever runs the steps flushes before ``capacity`` rows are written
(:class:`~gradlab.GradientStats` counts steps, not calls, so also with ``steps_per_execution``).
A step past the capacity is never dropped in silence: it overwrites the last row, and the
next :meth:`Recorder.flush` raises.

The norms recorded are those of the gradient the optimizer receives: the rows of an
``IndexedSlices`` (an embedding's gradient) summed per index first
(:func:`gradient_squared_norm`). Clipping keeps Keras' semantics and takes the norm of
the rows as they come, repeated indices not summed, as ``tf.clip_by_global_norm`` does;
where ids repeat, the recorded norm and the norm the clipping compares with its
threshold differ.

The per-example columns (median and max of the per-example gradient norms, fraction
of examples clipped) are NaN unless the step called :meth:`Recorder.per_example`
before :meth:`Recorder.record` (the Trainer's per-example clipping does).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from gradlab._state import scatter, state_variable
from gradlab.scaler.modes import MODE_NAMES
from gradlab.scaler.plan import Info
from gradlab.scaler.transform import variable_name
from gradlab.scaling.kernels import merge_duplicates, squared_norm, values_of
from gradlab.training.history import PER_EXAMPLE, Columns, History

__all__ = ["Recorder", "Update", "gradient_squared_norm", "layer_groups", "measure_update", "weights_before"]


def gradient_squared_norm(g) -> tf.Tensor:
    """The squared norm of the gradient ``g`` stands for, float32.

    For an ``IndexedSlices`` the rows of a repeated index are summed first, as the
    dense gradient ``tf.convert_to_tensor(g)`` sums them; ``tf.linalg.global_norm``
    and Keras' clipping take the rows one by one instead.

    >>> g = tf.IndexedSlices(tf.constant([[3.0], [4.0]]), tf.constant([0, 0]), tf.constant([2, 1]))
    >>> float(gradient_squared_norm(g)), float(tf.linalg.global_norm([g]) ** 2)
    (49.0, 25.0)
    """
    return squared_norm(values_of(merge_duplicates(g, tf.float32)))


def layer_groups(variables):
    """Group variables by layer: ``(layer_names, one_hot)``.

    The layer of ``"mlp/dense_1/kernel"`` is ``"dense_1"``: the path without its
    last part, and without the model's name when every variable shares it.
    ``one_hot`` is a float32 ``(variables, layers)`` matrix, so that
    ``squared_norms @ one_hot`` sums squares layer by layer.
    """
    paths = [variable_name(v).split("/") for v in variables]
    firsts = {p[0] for p in paths if len(p) > 2}
    strip = 1 if len(firsts) == 1 and all(len(p) > 2 for p in paths) else 0
    names = []
    index = []
    for p in paths:
        layer = "/".join(p[strip:-1]) if len(p) > 1 else p[0]
        if layer not in names:
            names.append(layer)
        index.append(names.index(layer))
    one_hot = np.zeros((len(variables), len(names)), np.float32)
    one_hot[np.arange(len(variables)), index] = 1.0
    return names, one_hot


class Recorder:
    """Preallocated buffers for the statistics of up to ``capacity`` steps."""

    def __init__(self, variables, capacity: int = 1024):
        self.layer_names, one_hot = layer_groups(variables)
        self.one_hot = tf.constant(one_hot)
        self.capacity = int(capacity)
        self.columns = Columns(self.layer_names)
        self.width = self.columns.width
        self.buffer = state_variable(tf.zeros([self.capacity, self.width]), "gradlab_records")
        self.row = state_variable(0, "gradlab_record_row", tf.int32)
        self._examples = None  # the per-example statistics of the step being traced, for record()

    def per_example(self, norms, l2_norm_clip):
        """Keep this step's per-example statistics for the next :meth:`record` (graph-safe).

        ``norms``: each example's global gradient norm, float32 ``(batch,)``, before
        clipping to ``l2_norm_clip``. The row gets their median (as ``numpy.median``:
        the mean of the two middle values for an even batch), their max, and the
        fraction of examples whose norm exceeds ``l2_norm_clip`` (those that were clipped).
        """
        norms = tf.sort(tf.cast(tf.reshape(norms, [-1]), tf.float32))
        n = tf.shape(norms)[0]
        median = 0.5 * (norms[(n - 1) // 2] + norms[n // 2])
        clipped = tf.reduce_mean(tf.cast(norms > tf.cast(l2_norm_clip, tf.float32), tf.float32))
        self._examples = tf.stack([median, norms[-1], clipped])

    def record(self, *, loss, info: Info, update: Update, loss_scale):
        """Pack one step's statistics and write them at the next row (graph-safe).

        ``update`` holds the squared norms of each variable before the step and
        of its change (see :func:`weights_before` and :func:`measure_update`).
        Every per-layer statistic comes from one matrix product.
        """
        finite = info.update  # not skipped: finite gradients, and no spike
        squares = tf.stack([info.squared_norms, info.squared_norms_after, update.weights, update.changes])
        layers = tf.sqrt(tf.matmul(squares, self.one_hot))  # (4, layers)
        norm_after = tf.sqrt(tf.reduce_sum(info.squared_norms_after))
        changed = tf.abs(norm_after - info.norm) > 1e-6 * info.norm
        examples, self._examples = self._examples, None
        if examples is None:
            examples = tf.fill([len(PER_EXAMPLE)], float("nan"))
        self._write(
            loss=tf.cast(loss, tf.float32),
            norm_before=info.norm,
            norm_after=tf.where(finite, norm_after, float("nan")),
            clipped=tf.cast(tf.logical_and(finite, changed), tf.float32),
            skipped=1.0 - tf.cast(finite, tf.float32),
            loss_scale=tf.cast(loss_scale, tf.float32),
            threshold=info.threshold,
            mode=tf.cast(info.mode, tf.float32),
            bound=info.bound,
            layer_norm_before=layers[0],
            layer_norm_after=layers[1],
            update_ratio=layers[3] / tf.maximum(layers[2], 1e-12),
            **dict(zip(PER_EXAMPLE, tf.unstack(examples))),
        )

    def skipped_row(self, loss_scale, mode, threshold) -> np.ndarray:
        """The row (numpy) of a step skipped before gradlab saw its gradients.

        Keras' ``LossScaleOptimizer`` skips a non-finite step without calling the
        optimizer inside; :class:`~gradlab.GradientStats` adds its row on the host:
        ``skipped=1``, the loss scale, mode and threshold in force, NaN loss and norms,
        and an update ratio of 0 (nothing moved).
        """
        row = np.full(self.width, np.nan, np.float32)
        n = len(self.layer_names)
        parts = {"clipped": 0.0, "skipped": 1.0, "loss_scale": loss_scale, "mode": mode, "threshold": threshold}
        parts["update_ratio"] = np.zeros(n)
        for name, value in parts.items():
            row[self.columns.slices[name]] = value
        return row

    def _write(self, **parts):
        """Write one row: every column of :class:`~gradlab.training.history.Columns`, by name."""
        pieces, scalars = [], []  # neighbouring scalars go in one stack: fewer ops in the step
        for part in self.columns.ordered(parts):
            part = tf.cast(part, tf.float32)
            if part.shape.rank == 0:
                scalars.append(part)
                continue
            if scalars:
                pieces, scalars = [*pieces, tf.stack(scalars)], []
            pieces.append(part)
        row = tf.concat(pieces + ([tf.stack(scalars)] if scalars else []), 0)
        # Past the capacity a row overwrites the last one (an out-of-range scatter fails on a CPU and
        # writes nothing on a GPU) and the count goes on, so that flush() knows rows were lost.
        at = tf.minimum(self.row.read_value(), self.capacity - 1)
        written = scatter(self.buffer, [[at]], row[None])
        with tf.control_dependencies([written]):  # a step that fails before its row is written counts no row
            self.row.assign_add(1)

    def flush(self) -> np.ndarray:
        """Read the rows written since the last flush (one host sync) and reset.

        Raises:
          RuntimeError: more steps were recorded than the buffer holds (it was not
            flushed in time); their rows are lost, and the buffer is reset.
        """
        n = int(self.row.numpy())
        self.row.assign(0)
        if n > self.capacity:
            raise RuntimeError(
                f"The recorder was written {n} steps since it was last read, past its capacity of "
                f"{self.capacity} rows: the rows of {n - self.capacity + 1} steps are lost. Flush it at least "
                "every `capacity` steps (GradientStats does), or record with a larger `capacity`."
            )
        return self.buffer[:n].numpy()

    def history(self, rows, label="") -> History:
        return History.from_rows(rows, self.layer_names, MODE_NAMES, label=label)


class Update(NamedTuple):
    """Squared norms, per variable (float32 vectors): the weights before a step, and their change."""

    weights: tf.Tensor
    changes: tf.Tensor


def weights_before(variables):
    """``(reads, squared_norms)`` of the variables before an update.

    Run the update under ``tf.control_dependencies([squared_norms])`` and measure
    it with :func:`measure_update`, which keeps ``reads`` until the new weights
    are there. (Outside XLA, TensorFlow then copies each variable on its first
    write; ``make profile`` shows the cost, and the docs' performance page says
    where the time goes. XLA keeps the old buffer.)
    """
    reads = [_read(v) for v in variables]
    return reads, tf.stack([squared_norm(r) for r in reads])


def measure_update(apply, variables, reads):
    """Run ``apply()``, which updates ``variables``; return the squared norm of each one's change.

    The change is ``new - old``, with ``old`` from ``reads`` (taken before the
    update by :func:`weights_before`): exact for any optimizer and any way it
    writes (its own methods, raw ops, control flow, weight decay, averages,
    distributed variables), eager or compiled.
    """
    apply()
    return tf.stack([squared_norm(_read(v) - old) for v, old in zip(variables, reads)])


def _variable(v):
    """The tf.Variable behind a Keras variable (or ``v`` itself)."""
    return v if isinstance(v, tf.Variable) else getattr(v, "value", v)


def _read(v):
    """The current value of a variable as a float32 tensor (a real read, not the variable)."""
    var = _variable(v)
    return tf.cast(var.read_value() if isinstance(var, tf.Variable) else var, tf.float32)
