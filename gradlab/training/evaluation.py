"""``Trainer.fit``'s held-out evaluation: ``validation_data`` checked, batched once, evaluated.

An :class:`Evaluator` belongs to one Trainer (its model and loss). :meth:`Evaluator.held_out`
checks ``validation_data`` before any step and batches it (kept while the same objects come
again); :meth:`Evaluator.evaluate` computes the mean loss (with the model's penalties, as
``model.evaluate``) and, for a classification loss, the accuracy, in one compiled pass.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from gradlab import _checks
from gradlab.training.inputs import check_arrays, check_input_shape

__all__ = ["Evaluator", "HeldOut", "accuracy_kind"]


def accuracy_kind(loss) -> str | None:
    """How to score accuracy for ``loss``: "sparse", "categorical", "binary", "binary_logits" or None (no accuracy)."""
    losses = keras.losses
    if isinstance(loss, losses.SparseCategoricalCrossentropy) or loss is losses.sparse_categorical_crossentropy:
        return "sparse"
    if isinstance(loss, (losses.CategoricalCrossentropy, losses.CategoricalFocalCrossentropy)) or loss in (
        losses.categorical_crossentropy,
        losses.categorical_focal_crossentropy,
    ):
        return "categorical"
    if isinstance(loss, (losses.BinaryCrossentropy, losses.BinaryFocalCrossentropy)):
        return "binary_logits" if loss.get_config().get("from_logits") else "binary"
    if loss in (losses.binary_crossentropy, losses.binary_focal_crossentropy):
        return "binary"
    return None


class HeldOut:
    """A validation set ready to evaluate: batches, how to score accuracy, and the data it came from."""

    def __init__(self, dataset, kind, keep):
        self.dataset, self.kind, self.keep = dataset, kind, keep


class Evaluator:
    """The held-out evaluation of one model with one loss (a Trainer's)."""

    def __init__(self, model, loss):
        self.model, self.loss = model, loss
        self._cached = None  # (key, HeldOut) of the last validation_data
        self._sums = {}  # accuracy kind: its compiled pass

    def held_out(self, validation_data, x, y, batch_size) -> HeldOut | None:
        """``validation_data`` checked and batched (kept while the same objects come again), or None."""
        if validation_data is None:
            return None
        key = self._check(validation_data, x, y, batch_size)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        if isinstance(validation_data, tf.data.Dataset):
            batches = validation_data
        else:
            batches = tf.data.Dataset.from_tensor_slices(tuple(validation_data)).batch(max(batch_size, 256))
        held_out = HeldOut(batches, accuracy_kind(self.loss), validation_data)  # keeps the data alive with its id
        self._cached = (key, held_out)
        return held_out

    def _check(self, validation_data, x, y, batch_size) -> tuple:
        """Check ``validation_data`` against the model and the training data; return its key."""
        if isinstance(validation_data, tf.data.Dataset):
            spec = validation_data.element_spec
            if not isinstance(spec, tuple) or len(spec) != 2:
                raise ValueError(
                    "Argument `validation_data` must yield (x, y) batches. "
                    f"Received: a dataset whose elements are {spec!r}"
                )
            if int(validation_data.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
                raise ValueError(
                    "Argument `validation_data` must be a finite dataset (it is evaluated to its end): remove "
                    "`.repeat()`. Received: validation_data with infinite cardinality"
                )
            check_input_shape(self.model, "validation_data", getattr(spec[0], "shape", None))
            return (id(validation_data),)
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise _checks._fail(
                "validation_data", "a pair (x_val, y_val) of arrays or a finite tf.data.Dataset", validation_data
            )
        x_val, y_val = validation_data
        try:
            check_arrays(x_val, y_val)
        except ValueError as err:
            raise ValueError(f"{err} (in `validation_data`: (x_val, y_val))") from None
        check_input_shape(self.model, "validation_data", getattr(x_val, "shape", None))
        for what, got, train in (("x_val", x_val, x), ("y_val", y_val, y)):
            a, b = tuple(np.shape(got))[1:], tuple(np.shape(train))[1:] if train is not None else None
            if b is not None and a != b and not (what == "y_val" and np.prod(a) == np.prod(b)):
                raise ValueError(
                    f"Argument `validation_data` must hold samples shaped like the training data: {what} samples "
                    f"of shape {b}. Received: {what} of shape {tuple(np.shape(got))}"
                )
        return (id(x_val), id(y_val), batch_size)

    def evaluate(self, held_out: HeldOut) -> tuple[float, float]:
        """Mean validation loss and accuracy (NaN without a classification loss) at the current weights."""
        kind = held_out.kind
        if kind not in self._sums:
            self._sums[kind] = tf.function(lambda ds: self._evaluation_sums(ds, kind))
        loss_sum, correct, scored, samples = (float(v) for v in self._sums[kind](held_out.dataset))
        if samples == 0:
            raise ValueError("Argument `validation_data` must hold at least one sample. Received: an empty dataset")
        accuracy = correct / scored if kind is not None and scored > 0 else float("nan")
        return loss_sum / samples, accuracy

    def _evaluation_sums(self, ds, kind):
        """Sums over the batches of ``ds``: loss x samples, correct and scored predictions, samples."""
        model, totals = self.model, tf.zeros([4])
        for xb, yb in ds:
            pred = model(xb, training=False)
            n = tf.cast(tf.shape(pred)[0], tf.float32)
            loss = tf.reduce_mean(tf.cast(self.loss(yb, pred), tf.float32))
            if model.losses:
                loss = loss + tf.add_n([tf.cast(extra, tf.float32) for extra in model.losses])
            hits = _hits(yb, tf.cast(pred, tf.float32), kind)
            totals += tf.stack([loss * n, tf.reduce_sum(hits), tf.cast(tf.size(hits), tf.float32), n])
        return totals


def _hits(y, pred, kind):
    """1.0 per correct prediction, 0.0 per wrong one (an empty vector without a classification loss)."""
    if kind == "sparse":
        return tf.cast(
            tf.equal(tf.reshape(tf.cast(y, tf.int64), [-1]), tf.reshape(tf.argmax(pred, -1), [-1])), tf.float32
        )
    if kind == "categorical":
        return tf.cast(tf.equal(tf.argmax(y, -1), tf.argmax(pred, -1)), tf.float32)
    if kind in ("binary", "binary_logits"):
        cut = 0.0 if kind == "binary_logits" else 0.5
        p = tf.reshape(pred, [-1]) > cut
        return tf.cast(tf.equal(tf.reshape(tf.cast(y, tf.float32), [-1]) > 0.5, p), tf.float32)
    return tf.zeros([0])
