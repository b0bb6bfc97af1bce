"""A model's complete state, copied and put back: how the exploring tools train your model itself.

``compare``, ``advise``, the report and the lab start each run from a clone of a
built model. Where cloning cannot serve (layers without ``get_config``, such as
keras-io's ``TokenAndPositionEmbedding``; a subclassed model whose ``__init__``
takes no ``**kwargs``; a model with more weights than its clone), they train the
model itself: :class:`ModelState` copies every variable of it first, and
:func:`kept` puts them back when the tools are done, after an error and after an
interrupt (``KeyboardInterrupt``) too.

"Every variable" is Keras' ``model.variables``: the weights, trainable or not
(BatchNormalization's moving statistics), and the state of each
``keras.random.SeedGenerator`` (a Dropout layer draws its masks from one), so a
run that starts from a restored state draws the same masks as the run before.
The optimizer is never the model's: each run has its own.

If the kernel itself is stopped mid-run (restarted, or killed), the model dies
with it: nothing is written anywhere, so nothing is left half-trained on disk.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

__all__ = ["Lent", "ModelState", "clone_with_state", "kept"]


class ModelState:
    """A copy of every variable of ``model`` (``model.variables``), taken now.

    >>> net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1), keras.layers.Dropout(0.5)])
    >>> saved = ModelState(net)
    >>> net.layers[0].kernel.assign(net.layers[0].kernel + 1.0)  # doctest: +ELLIPSIS
    <...>
    >>> saved.restore(); saved.equals(net)
    True
    """

    def __init__(self, model: keras.Model):
        self.model = model
        self.values = [(v, np.array(v.numpy(), copy=True)) for v in model.variables]

    def restore(self) -> None:
        """Put every variable back to its copy."""
        for v, value in self.values:
            v.assign(value)

    def assign_to(self, other: keras.Model) -> bool:
        """Give ``other`` (a clone) this state, variable by variable; False (and nothing assigned) where
        its variables do not match in number, shape and dtype."""
        variables = list(other.variables)
        if len(variables) != len(self.values) or any(
            tuple(v.shape) != value.shape or np.dtype(v.dtype) != value.dtype
            for v, (_, value) in zip(variables, self.values)
        ):
            return False
        for v, (_, value) in zip(variables, self.values):
            v.assign(value)
        return True

    def equals(self, model: keras.Model) -> bool:
        """Whether ``model``'s variables hold exactly this state."""
        now = list(model.variables)
        return len(now) == len(self.values) and all(
            np.array_equal(v.numpy(), value) for v, (_, value) in zip(now, self.values)
        )


@contextlib.contextmanager
def kept(model: keras.Model | None):
    """Within the block, ``model`` may be trained; on leaving it (normally, on an error or on an
    interrupt) every variable of it is put back as it was on entering. ``None``: nothing to keep."""
    if model is None:
        yield None
        return
    saved = ModelState(model)
    try:
        yield saved
    finally:
        saved.restore()


def clone_with_state(model: keras.Model, state: ModelState, sample_x) -> keras.Model | None:
    """A clone of ``model`` holding ``state`` (every variable), or None where the clone's variables do not
    match the model's (a layer kept as an attribute, outside the graph, is not cloned). Raises what
    ``keras.models.clone_model`` raises for a model it cannot rebuild."""
    clone = keras.models.clone_model(model)
    if not clone.built:
        clone(sample_x)
    return clone if state.assign_to(clone) else None


class Lent:
    """Your model lent to a run that pauses and goes on (the lab).

    :meth:`take` before each part of the run puts the run's state into the model
    (the state it had when the run last paused); :meth:`give_back` after it keeps
    the run's state and puts your model's back. Between the parts your model holds
    its own state. ``model`` None (the runs train a clone): both do nothing.
    """

    def __init__(self, model: keras.Model | None):
        self.model = model
        self._own: ModelState | None = None
        self._run: ModelState | None = None

    def take(self) -> None:
        if self.model is None:
            return
        self._own = ModelState(self.model)
        if self._run is not None:
            self._run.restore()

    def give_back(self) -> None:
        if self.model is None or self._own is None:
            return
        self._run = ModelState(self.model)
        self._own.restore()
        self._own = None

    def forget(self) -> None:
        """The run starts again from the start: its next part begins from your model's state."""
        self._run = None
