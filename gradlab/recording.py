"""Record per-step gradient statistics inside a compiled step, without host syncs.

A :class:`Recorder` owns one preallocated ``tf.Variable`` buffer of shape
``(capacity, columns)``. Each step packs its statistics into one row (the
:data:`gradlab.history.SCALARS`, then per-layer norms before and after scaling
and update-to-weight ratios) and writes it with a single scatter. The host reads
the buffer only in :meth:`Recorder.flush`, every ``capacity`` steps or at the end.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gradlab._state import scatter, state_variable
from gradlab.history import SCALARS, History
from gradlab.scaling import fused_squared_norm
from gradlab.transforms import MODE_NAMES, Info, variable_name

__all__ = ["Recorder", "layer_groups"]


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


def _stack(squares):
    return tf.stack([tf.constant(0.0) if s is None else s for s in squares])


class Recorder:
    """Preallocated buffers for the statistics of up to ``capacity`` steps."""

    def __init__(self, variables, capacity: int = 1024):
        self.layer_names, one_hot = layer_groups(variables)
        self.one_hot = tf.constant(one_hot)
        self.capacity = int(capacity)
        self.width = len(SCALARS) + 3 * len(self.layer_names)
        self.buffer = state_variable(tf.zeros([self.capacity, self.width]), "gradlab_records")
        self.row = state_variable(0, "gradlab_record_row", tf.int32)

    def record(self, *, loss, info: Info, old_weights, variables, loss_scale, mode, threshold):
        """Pack one step's statistics and write them at the next row (graph-safe).

        ``old_weights`` are the variables' values before the update (from
        :func:`snapshot`); the update-to-weight ratio compares them with now.
        """
        sq_before = _stack(info.squared_norms)
        sq_after = _stack(info.squared_norms_after)
        norm_after = tf.sqrt(tf.reduce_sum(sq_after))
        finite = info.finite
        skipped = 1.0 - tf.cast(finite, tf.float32)
        changed = tf.abs(norm_after - info.norm) > 1e-6 * info.norm
        clipped = tf.cast(tf.logical_and(finite, changed), tf.float32)
        diffs = tf.stack(
            [fused_squared_norm(tf.cast(_read(v), tf.float32) - w) for v, w in zip(variables, old_weights)]
        )
        weights = tf.stack([fused_squared_norm(w) for w in old_weights])
        layer_before = tf.sqrt(tf.linalg.matvec(self.one_hot, sq_before, transpose_a=True))
        layer_after = tf.sqrt(tf.linalg.matvec(self.one_hot, sq_after, transpose_a=True))
        layer_w = tf.sqrt(tf.linalg.matvec(self.one_hot, weights, transpose_a=True))
        layer_dw = tf.sqrt(tf.linalg.matvec(self.one_hot, diffs, transpose_a=True))
        ratio = layer_dw / tf.maximum(layer_w, 1e-12)
        scalars = tf.stack(
            [
                tf.cast(loss, tf.float32),
                info.norm,
                tf.where(finite, norm_after, float("nan")),
                clipped,
                skipped,
                tf.cast(loss_scale, tf.float32),
                tf.cast(threshold, tf.float32),
                tf.cast(mode, tf.float32),
                info.bound,
            ]
        )
        row = tf.concat([scalars, layer_before, layer_after, ratio], 0)
        scatter(self.buffer, [[self.row]], row[None])
        self.row.assign_add(1)

    def record_skipped(self, *, loss, loss_scale, mode, threshold):
        """Write a row for a step skipped before gradlab saw its gradients.

        (Keras' ``LossScaleOptimizer`` skips non-finite steps itself.)
        """
        nan = tf.constant(float("nan"))
        n = len(self.layer_names)
        scalars = tf.stack(
            [
                tf.cast(loss, tf.float32),
                nan,
                nan,
                0.0,
                1.0,
                tf.cast(loss_scale, tf.float32),
                tf.cast(threshold, tf.float32),
                tf.cast(mode, tf.float32),
                nan,
            ]
        )
        row = tf.concat([scalars, tf.fill([2 * n], nan), tf.zeros([n])], 0)
        scatter(self.buffer, [[self.row]], row[None])
        self.row.assign_add(1)

    def flush(self) -> np.ndarray:
        """Read the rows written since the last flush (one host sync) and reset."""
        n = int(self.row.numpy())
        rows = self.buffer[:n].numpy()
        self.row.assign(0)
        return rows

    def history(self, rows, label="") -> History:
        return History.from_rows(rows, self.layer_names, MODE_NAMES, label=label)


def snapshot(variables):
    """The variables' current values as float32 tensors (for update ratios).

    ``tf.identity`` forces the read now (``tf.cast`` to the same dtype would
    return the variable itself, read only later). TensorFlow copies the buffer
    on the next write only while this read is still in use.
    """
    return [tf.cast(tf.identity(_read(v)), tf.float32) for v in variables]


def _read(v):
    return v.value if hasattr(v, "value") and not isinstance(v, tf.Tensor) else v
