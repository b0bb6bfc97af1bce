"""`GradientStats`: gradlab's statistics from ``model.fit`` with a :class:`~gradlab.ScaledOptimizer`."""

from __future__ import annotations

import keras

from gradlab import _checks
from gradlab.scaler.modes import MODE_NAMES
from gradlab.training.history import History
from gradlab.training.optimizer import ScaledOptimizer, record_through_loss_scale

__all__ = ["GradientStats"]


class GradientStats(keras.callbacks.Callback):
    """Collect gradlab's statistics during ``model.fit`` into a :class:`History`.

    The model must be compiled with a :class:`ScaledOptimizer`. Statistics are
    recorded inside the compiled train step from the real gradients; this
    callback reads them every ``capacity`` batches and at the end of each epoch.
    If the train function was already traced without recording, it is traced
    once more.

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
        self._pending = 0

    def on_train_begin(self, logs=None):
        before = self.model.optimizer
        opt = record_through_loss_scale(self.model)
        swapped = self.model.optimizer is not before
        if not isinstance(opt, ScaledOptimizer):
            raise ValueError(
                "GradientStats needs the model compiled with gradlab.ScaledOptimizer. "
                f"Received: optimizer={type(opt).__name__}"
            )
        if opt.recorder is None or swapped:  # trace the train step again, recording
            if opt.recorder is None:
                opt.start_recording(self.model.trainable_variables, self.capacity)
            self.model.make_train_function(force=True)
        self._recorder = recorder = opt.recorder
        if self.history is None:
            self.history = History.empty(recorder.layer_names, MODE_NAMES, self.label)
        self._pending = 0

    def on_train_batch_end(self, batch, logs=None):
        self._pending += 1
        if self._pending >= self._recorder.capacity:
            self._flush()

    def on_epoch_end(self, epoch, logs=None):
        self._flush()

    def on_train_end(self, logs=None):
        self._flush()

    def _flush(self):
        self.history.extend(self._recorder.history(self._recorder.flush(), self.label))
        self._pending = 0
