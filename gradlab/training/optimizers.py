"""Optimizers by name, and factories that build a fresh one for every run.

``compare``, the lab and the report train several runs from the same start:
each needs its own optimizer (slots and step count start at zero), so they take
a *factory*, a function returning a new optimizer, or a name and a learning rate.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from gradlab import _checks

__all__ = ["OPTIMIZERS", "check_plain_optimizer", "make_optimizer", "optimizer_factory"]

# Name -> (what it is, a builder taking the learning rate). Momentum 0.9 and
# AdamW's weight decay 0.004 are Keras' and the literature's usual values.
OPTIMIZERS: dict[str, tuple[str, Callable[[float], keras.optimizers.Optimizer]]] = {
    "sgd": ("SGD", lambda lr: keras.optimizers.SGD(lr)),
    "momentum": ("SGD with momentum 0.9", lambda lr: keras.optimizers.SGD(lr, momentum=0.9)),
    "adam": ("Adam", lambda lr: keras.optimizers.Adam(lr)),
    "adamw": ("AdamW (weight decay 0.004)", lambda lr: keras.optimizers.AdamW(lr)),
    "rmsprop": ("RMSprop", lambda lr: keras.optimizers.RMSprop(lr)),
}


_KERAS_CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm")


def check_plain_optimizer(optimizer, name: str, owner: str, accumulate_with: str) -> None:
    """Refuse a Keras optimizer that gradlab cannot drive: the one place, for ``ScaledOptimizer`` and ``Trainer``.

    gradlab scales the gradients itself, once, on the gradient the update will use. An optimizer
    that clips on its own (``clipnorm``, ``clipvalue``, ``global_clipnorm``) would scale them a second
    time; one with ``gradient_accumulation_steps`` would accumulate gradients already scaled one
    micro-batch at a time instead of scaling their average once (Keras clips the average). A
    ``loss_scale_factor`` is honoured by both: the gradients are unscaled before gradlab scales them.

    Args:
      optimizer: the Keras optimizer to check.
      name: how the error names it (``"inner_optimizer"``, ``"optimizer"``).
      owner: who refuses it (``"ScaledOptimizer"``, ``"The Trainer"``).
      accumulate_with: what to use instead of ``gradient_accumulation_steps``.
    """
    for arg in _KERAS_CLIPPING:
        if getattr(optimizer, arg, None):
            raise ValueError(
                f"Only one clipping option may be set: the {name} already clips with `{arg}`, and {owner} "
                f"would scale the gradients a second time. Build the {name} without it. "
                f"Received: {name}.{arg}={getattr(optimizer, arg)!r}"
            )
    if optimizer.gradient_accumulation_steps:
        raise ValueError(
            f"{owner[:1].upper()}{owner[1:]} cannot wrap an optimizer with `gradient_accumulation_steps`: the {name} would "
            "accumulate gradients that were already scaled one micro-batch at a time, instead of scaling "
            f"their average once. Use {accumulate_with} instead. Received: "
            f"{name}.gradient_accumulation_steps={optimizer.gradient_accumulation_steps!r}"
        )


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A new optimizer by name (see :data:`OPTIMIZERS`).

    >>> make_optimizer("adam", 1e-3).__class__.__name__
    'Adam'
    """
    name = _checks.choice("optimizer", name, tuple(OPTIMIZERS))
    learning_rate = _checks.python_number("learning_rate", learning_rate)
    return OPTIMIZERS[name][1](learning_rate)


def optimizer_factory(optimizer, learning_rate: float | None = None) -> Callable[[], keras.optimizers.Optimizer]:
    """A function returning a new optimizer for each run.

    Args:
      optimizer: a name from :data:`OPTIMIZERS` (with ``learning_rate``), a function
        returning a new Keras optimizer (``lambda: keras.optimizers.Adam(1e-3)``), or
        a Keras optimizer instance, which is copied from its config for each run
        (it is never stepped itself).
      learning_rate: the learning rate for a name; with a function or an instance
        it replaces theirs when given.

    >>> make = optimizer_factory("momentum", 0.1)
    >>> a, b = make(), make()
    >>> a is not b, float(a.momentum)
    (True, 0.9)
    """
    if learning_rate is not None:
        learning_rate = _checks.python_number("learning_rate", learning_rate)
    if isinstance(optimizer, str):
        name = _checks.choice("optimizer", optimizer, tuple(OPTIMIZERS))
        if learning_rate is None:
            raise ValueError(
                f"Argument `learning_rate` is needed with an optimizer given by name ({name!r}). "
                "Received: learning_rate=None"
            )
        return lambda: make_optimizer(name, learning_rate)
    if isinstance(optimizer, keras.optimizers.Optimizer):
        config = optimizer.get_config()
        cls = type(optimizer)

        def copy():
            new = cls.from_config(dict(config))
            if learning_rate is not None:
                new.learning_rate = learning_rate
            return new

        return copy
    if callable(optimizer) and not isinstance(optimizer, type):

        def fresh():
            new = optimizer()
            if not isinstance(new, keras.optimizers.Optimizer):
                raise ValueError(
                    "Argument `optimizer` must return a new Keras optimizer on each call. "
                    f"Received: a function that returned {type(new).__name__}"
                )
            if learning_rate is not None:
                new.learning_rate = learning_rate
            return new

        return fresh
    raise ValueError(
        f"Argument `optimizer` must be one of {', '.join(repr(n) for n in OPTIMIZERS)}, a function returning a "
        f"new Keras optimizer, or a Keras optimizer to copy. Received: optimizer={optimizer!r}"
    )
