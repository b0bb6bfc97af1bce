"""`GradientStats`: gradlab's statistics from ``model.fit`` with a :class:`~gradlab.ScaledOptimizer`."""

from __future__ import annotations

import warnings

import keras
import numpy as np

from gradlab import _checks
from gradlab.scaler.modes import MODE_NAMES
from gradlab.training.history import History
from gradlab.training.optimizer import loss_scale_parts

__all__ = ["GradientStats"]


class GradientStats(keras.callbacks.Callback):
    """Collect gradlab's statistics during ``model.fit`` into a :class:`History`, one row per step.

    The model must be compiled with a :class:`ScaledOptimizer` (under mixed
    precision, inside a ``keras.optimizers.LossScaleOptimizer``). Statistics are
    recorded inside the compiled train step from the real gradients, into a buffer
    of ``capacity`` rows (at least ``steps_per_execution``) that this callback reads
    before it can fill, and at the end of each epoch. If the train function was
    already traced without recording, it is traced once more. Nothing of the
    compiled model is replaced: the optimizer compiled is the one that trains.

    What each row holds:

    * the norms are those of the gradient the optimizer receives (for an
      embedding's ``IndexedSlices``, the rows of a repeated id summed), which can
      differ from the norm the clipping compares with its threshold: that one
      takes the rows one by one, as Keras' ``global_clipnorm`` does;
    * the loss is the one Keras' own ``train_step`` passes to
      ``optimizer.scale_loss``. A custom ``train_step`` calls
      ``self.optimizer.record_loss(loss)`` before ``apply_gradients``, or the
      column is NaN (and a warning says so). Keras' ``LossScaleOptimizer`` keeps the
      loss to itself: compile with ``gradlab.training.RecordingLossScaleOptimizer`` to
      record it under mixed precision;
    * a step the ``LossScaleOptimizer`` skips (non-finite gradients) never reaches
      the ScaledOptimizer: its row, ``skipped=1`` with the loss scale in force and
      NaN norms, is rebuilt from the loss scale's own rule (halved on each skip).

    Args:
      capacity: rows the buffer holds between two reads.
      label: the run's name in the :class:`History`.

    >>> p = gradlab.problems.deep_mlp(depth=2, samples=64)
    >>> m = p.model()
    >>> m.compile(gradlab.ScaledOptimizer(keras.optimizers.SGD(0.01), "global_norm", 1.0), p.loss)
    >>> stats = GradientStats()
    >>> _ = m.fit(p.x, p.y, batch_size=16, epochs=1, verbose=0, callbacks=[stats])
    >>> len(stats.history)
    4
    """

    def __init__(self, capacity: int = 1024, label: str = ""):
        super().__init__()
        self.capacity = _checks.number("capacity", capacity, low=1, low_open=False, integer=True)
        self.label = _checks.text("label", label)
        self.history: History | None = None
        self._warned = False

    def on_train_begin(self, logs=None):
        outer, opt = loss_scale_parts(self.model.optimizer)
        if opt is None:
            raise ValueError(
                "GradientStats needs the model compiled with gradlab.ScaledOptimizer. "
                f"Received: optimizer={type(self.model.optimizer).__name__}"
            )
        self._chunk = self._per_execution = chunk = _steps_per_execution(self.model)
        retrace = False
        if opt.recorder is None or opt.recorder.capacity < chunk:  # one execution must fit in the buffer
            with self.model.distribute_strategy.scope():  # a copy of the buffer per replica (gradlab._state)
                opt.start_recording(self.model.trainable_variables, max(self.capacity, chunk))
            retrace = True
        if opt.loss_scale_optimizer is not outer:
            opt.loss_scale_optimizer = outer
            retrace = True
        if retrace:  # trace the train step again, recording
            self.model.make_train_function(force=True)
        self._scaler, self._recorder = opt.scaler, opt.recorder
        self._skips = None if outer is None else _SkippedSteps(outer)
        # Rows left by a fit that stopped mid-epoch (an interrupt skips on_train_end): steps of
        # this callback's run if it recorded them, else of a run before it.
        left = self._recorder.flush()
        if self.history is None:
            self.history = History.empty(self._recorder.layer_names, MODE_NAMES, self.label)
        elif len(left):
            self.history.extend(self._recorder.history(left, self.label))
        self._done = self._read = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._done = self._read = 0

    def on_train_batch_end(self, batch, logs=None):
        # Keras calls this once per execution of `steps_per_execution` steps; `batch` is the index of
        # its last step in the epoch (Keras 3.15), or of its first (Keras 3.8): `batch + steps_per_execution`
        # counts the steps done in either, from the same offset, so its differences are the chunks' lengths.
        # Read the buffer before the next chunk could overflow it.
        done = batch + self._per_execution
        self._chunk = max(self._chunk, done - self._done)
        self._done = done
        if self._done - self._read + self._chunk > self._recorder.capacity:
            self._flush()

    def on_epoch_end(self, epoch, logs=None):
        self._flush()

    def on_train_end(self, logs=None):
        self._flush()

    def _flush(self):
        self._read = self._done
        rows = self._recorder.flush()
        if self._skips is not None:
            rows = self._skips.fill(rows, self._recorder, self._scaler)
        part = self._recorder.history(rows, self.label)
        if len(part) and not self._warned and np.isnan(part.loss).all() and np.isfinite(part.norm_before).any():
            self._warned = True
            warnings.warn(
                "GradientStats recorded no loss (the loss column is NaN): the optimizer was never shown it. "
                "A custom train_step calls self.optimizer.record_loss(loss) before apply_gradients; under "
                "mixed precision, compile with gradlab.training.RecordingLossScaleOptimizer(gradlab.ScaledOptimizer(...)), "
                "since keras.optimizers.LossScaleOptimizer keeps the loss to itself.",
                UserWarning,
                stacklevel=2,
            )
        self.history.extend(part)


class _SkippedSteps:
    """The rows of the steps a ``LossScaleOptimizer`` skipped, rebuilt from its rule.

    The ScaledOptimizer inside writes a row for each step the LossScaleOptimizer lets
    through, with the loss scale in force. Keras' rule: a skipped step halves the
    scale and resets the count of good steps; after ``dynamic_growth_steps`` good
    steps the scale doubles. Replaying it from the state read when recording began,
    the steps skipped before a recorded row are the halvings between the scale
    expected and the row's scale; those after the last row, the halvings down to the
    scale the optimizer holds now.
    """

    def __init__(self, outer):
        self.outer = outer
        self.scale, self.good = self._state()

    def _state(self):
        if not self.outer.built:
            return float(self.outer.initial_scale), 0
        return float(self.outer.dynamic_scale.numpy()), int(self.outer.step_counter.numpy())

    def fill(self, rows, recorder, scaler):
        columns, out = recorder.columns, []
        scales = rows[:, columns.slices["loss_scale"].start]
        for row, scale in zip(rows, scales):
            out.extend(self._skipped(scale, recorder, row))
            out.append(row)
            self.good += 1
            if self.good >= int(self.outer.dynamic_growth_steps):
                self.scale, self.good = self.scale * 2.0, 0
        now, good = self._state()
        mode, threshold = (t.numpy() for t in scaler.read_controls())
        last = rows[-1] if len(rows) else recorder.skipped_row(float("nan"), mode, threshold)
        out.extend(self._skipped(now, recorder, last))
        self.scale, self.good = now, good
        return np.stack(out) if out else rows

    def _skipped(self, scale, recorder, like):
        """Rows for the halvings from the expected scale down to ``scale`` (none if it is not below)."""
        rows, columns = [], recorder.columns
        mode, threshold = like[columns.slices["mode"].start], like[columns.slices["threshold"].start]
        while self.scale > scale and len(rows) < 1100:  # float32 scales: at most ~280 halvings
            rows.append(recorder.skipped_row(self.scale, mode, threshold))
            self.scale, self.good = self.scale / 2.0, 0
        if self.scale != scale:  # not Keras' rule (the scale was set by hand): take it as it is
            self.scale = float(scale)
        return rows


def _steps_per_execution(model) -> int:
    value = getattr(model, "steps_per_execution", 1)
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1
