"""Record per-step gradient statistics inside a compiled step, without host syncs.

A :class:`Recorder` owns one preallocated ``tf.Variable`` buffer of shape
``(capacity, columns)``. Each step names its statistics (the
:data:`gradlab.training.history.SCALARS`, the per-layer norms before and after scaling
and update-to-weight ratios, the :data:`gradlab.training.history.PER_EXAMPLE` columns);
:class:`~gradlab.training.history.Columns`, the one layout that History reads
too, packs them into one row, written with a single scatter. The host reads the buffer only in
:meth:`Recorder.flush`, every ``capacity`` steps or at the end.

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
from gradlab.scaler.scaler import Info
from gradlab.scaler.transform import variable_name
from gradlab.scaling.kernels import squared_norm
from gradlab.training.history import PER_EXAMPLE, Columns, History

__all__ = ["Recorder", "Update", "layer_groups", "measure_update", "weights_before"]


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

    def record_skipped(self, *, loss, loss_scale, mode, threshold):
        """Write a row for a step skipped before gradlab saw its gradients.

        (Keras' ``LossScaleOptimizer`` skips non-finite steps itself.)
        """
        nan, n = tf.constant(float("nan")), len(self.layer_names)
        self._examples = None
        self._write(
            loss=tf.cast(loss, tf.float32),
            norm_before=nan,
            norm_after=nan,
            clipped=0.0,
            skipped=1.0,
            loss_scale=tf.cast(loss_scale, tf.float32),
            threshold=tf.cast(threshold, tf.float32),
            mode=tf.cast(mode, tf.float32),
            bound=nan,
            layer_norm_before=tf.fill([n], nan),
            layer_norm_after=tf.fill([n], nan),
            update_ratio=tf.zeros([n]),
            **dict.fromkeys(PER_EXAMPLE, nan),
        )

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
        written = scatter(self.buffer, [[self.row.read_value()]], row[None])
        with tf.control_dependencies([written]):  # a step that fails before its row is written counts no row
            self.row.assign_add(1)

    def flush(self) -> np.ndarray:
        """Read the rows written since the last flush (one host sync) and reset."""
        n = int(self.row.numpy())
        rows = self.buffer[:n].numpy()
        self.row.assign(0)
        return rows

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
