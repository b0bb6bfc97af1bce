"""Small offline problems for notebooks, tests and benchmarks.

Nothing is downloaded: data come from a seed or from scikit-learn's bundled
digits. Each builder returns a :class:`Problem` whose ``model()`` builds a fresh
Keras model with weights fixed by the problem's seed, so several runs can start
from identical weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import numpy as np

from gradlab import _checks

__all__ = [
    "PROBLEMS",
    "Problem",
    "deep_mlp",
    "digits",
    "from_model",
    "imbalanced_digits",
    "make_problem",
    "wide_mlp",
]


@dataclasses.dataclass
class Problem:
    """Data, a model builder and a loss.

    Attributes:
      name: registry name.
      x, y: numpy training arrays.
      build: callable returning a new, un-compiled Keras model.
      loss: a Keras loss object.
      seed: the seed used for data and for the model's initial weights.
      description: one line for menus.
      validation_data: ``(x_val, y_val)`` held-out arrays, or None.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    build: Callable[[], keras.Model]
    loss: keras.losses.Loss
    seed: int
    description: str
    validation_data: tuple | None = None

    def __post_init__(self):
        _checks.text("name", self.name)
        for k in ("x", "y"):
            if not hasattr(getattr(self, k), "__len__"):
                raise _checks._fail(k, "an array with one row per sample", getattr(self, k))
        if len(self.x) != len(self.y):
            raise ValueError(
                "Arguments `x` and `y` must hold the same number of samples. "
                f"Received: len(x)={len(self.x)}, len(y)={len(self.y)}"
            )
        if not callable(self.build):
            raise _checks._fail("build", "a function returning a new Keras model", self.build)
        if not (callable(self.loss) or isinstance(self.loss, str)):
            raise _checks._fail("loss", "a Keras loss (a name, or callable as loss(y_true, y_pred))", self.loss)
        _seed(self.seed)
        _checks.text("description", self.description)
        if self.validation_data is not None:
            v = self.validation_data
            if not isinstance(v, (tuple, list)) or len(v) != 2 or not all(hasattr(a, "__len__") for a in v):
                raise _checks._fail("validation_data", "a pair (x_val, y_val) of arrays", v)
            if len(v[0]) != len(v[1]) or len(v[0]) == 0:
                raise ValueError(
                    "Argument `validation_data` must hold as many targets as samples, at least one. "
                    f"Received: len(x_val)={len(v[0])}, len(y_val)={len(v[1])}"
                )
            self.validation_data = (v[0], v[1])

    def model(self) -> keras.Model:
        """A fresh model; every call gives the same initial weights."""
        keras.utils.set_random_seed(self.seed)
        return self.build()


def deep_mlp(seed: int = 0, depth: int = 8, width: int = 32, samples: int = 1024) -> Problem:
    """A deep tanh MLP on a synthetic regression task.

    With plain SGD its gradient norms stay moderate at a learning rate of 0.01 and
    explode (loss diverges) at 0.5 and above without clipping.
    """
    seed, depth, width, samples = (
        _seed(seed),
        _checks.size("depth", depth),
        _checks.size("width", width),
        _checks.size("samples", samples),
    )
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 16)).astype("float32")
    w = rng.normal(size=(16, 1)).astype("float32")
    y = (np.sin(x @ w) + 0.1 * rng.normal(size=(samples, 1))).astype("float32")

    def build():
        init = keras.initializers.RandomNormal(stddev=1.5 / np.sqrt(width))
        layers = [keras.Input((16,))]
        layers += [
            keras.layers.Dense(width, activation="tanh", kernel_initializer=init, name=f"hidden_{i + 1}")
            for i in range(depth)
        ]
        layers += [keras.layers.Dense(1, name="output")]
        return keras.Sequential(layers, name="deep_mlp")

    return Problem(
        "deep_mlp",
        x,
        y,
        build,
        keras.losses.MeanSquaredError(),
        seed,
        f"deep tanh MLP ({depth} layers), synthetic regression",
    )


def wide_mlp(seed: int = 0, samples: int = 2048, width: int = 1024) -> Problem:
    """A ReLU MLP of about 1M parameters on synthetic 10-class data (benchmarks)."""
    seed, samples = _seed(seed), _checks.size("samples", samples)
    width = _checks.size("width", width, low=2)  # the second hidden layer has width // 2 units
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 256)).astype("float32")
    y = rng.integers(0, 10, size=(samples,)).astype("int32")

    def build():
        return keras.Sequential(
            [
                keras.Input((256,)),
                keras.layers.Dense(width, activation="relu", name="hidden_1"),
                keras.layers.Dense(width // 2, activation="relu", name="hidden_2"),
                keras.layers.Dense(10, name="output"),
            ],
            name="wide_mlp",
        )

    return Problem("wide_mlp", x, y, build, _xent(), seed, "ReLU MLP, ~0.8M parameters, synthetic classes")


def digits(seed: int = 0) -> Problem:
    """scikit-learn's bundled 8x8 digits (1,797 images), a small MLP classifier."""
    seed = _seed(seed)
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    return Problem("digits", x[order], y[order], _digits_model, _xent(), seed, "scikit-learn digits, MLP classifier")


def imbalanced_digits(seed: int = 0, keep: float = 0.1) -> Problem:
    """Digits with classes 1-9 cut to ``keep`` of their images; class 0 kept whole.

    Class 0 then dominates the gradient of the output layer: the setting the
    article has in mind for selective (per-layer) scaling.
    """
    seed = _seed(seed)
    keep = _checks.python_number("keep", keep, low=0.0, high=1.0)
    base = digits(seed)
    rng = np.random.default_rng(seed + 1)
    mask = (base.y == 0) | (rng.random(len(base.y)) < keep)
    return Problem(
        "imbalanced_digits",
        base.x[mask],
        base.y[mask],
        _digits_model,
        _xent(),
        seed,
        f"digits with classes 1-9 kept at {keep:.0%}",
    )


def from_model(
    model, x, y, loss, *, validation_data=None, name: str | None = None, seed: int = 0, description: str = ""
) -> Problem:
    """Your own model and data as a :class:`Problem`, for ``compare``, the lab and the report.

    Args:
      model: a built Keras model (Sequential, Functional or subclassed), which
        gradlab clones for every run with the weights it has now (the model
        itself is never trained), or a function that builds a new one (called
        after seeding with ``seed``, so every run starts from the same weights).
      x, y: the training arrays (numpy arrays or tensors, one row per sample).
      loss: a Keras loss, its name (``"mse"``) or ``loss(y_true, y_pred)``.
      validation_data: ``(x_val, y_val)``, evaluated during ``compare`` and in the lab.
      name, seed, description: the problem's name (the model's name by default),
        seed and one-line description.

    >>> net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> p = from_model(net, np.ones((8, 3), "float32"), np.zeros((8, 1), "float32"), "mse")
    >>> a, b = p.model(), p.model()
    >>> a is not net and all((u == v).all() for u, v in zip(a.get_weights(), net.get_weights()))
    True
    """
    from gradlab.training.trainer import check_loss  # the Trainer checks losses the same way

    loss = check_loss(loss)
    seed = _seed(seed)
    sample = _first_rows(x)
    if isinstance(model, keras.Model):
        if not model.built or not model.weights:
            raise ValueError(
                "Argument `model` must be built (give it a keras.Input, or call it once on a batch) so that "
                f"every run can start from its weights. Received: an unbuilt model {model.name!r}"
            )
        weights = [w.numpy().copy() for w in model.weights]
        original = model

        def build():
            try:
                clone = keras.models.clone_model(original)
            except Exception as err:  # noqa: BLE001 - Keras raises several types here
                raise ValueError(
                    f"Argument `model` could not be cloned for a new run ({type(err).__name__}: {err}). Pass a "
                    "function that builds a new model instead, e.g. model=lambda: MyModel(...). Received: "
                    f"model={original.name!r} of type {type(original).__name__}"
                ) from None
            if not clone.built:
                clone(sample)
            clone.set_weights(weights)
            return clone

        default_name = model.name
    elif callable(model) and not isinstance(model, type):

        def build():
            built = model()
            if not isinstance(built, keras.Model):
                raise ValueError(
                    "Argument `model` must be a keras.Model or a function returning one. "
                    f"Received: a function that returned {type(built).__name__}"
                )
            if not built.built:
                built(sample)
            return built

        default_name = getattr(model, "__name__", "model")
    else:
        raise ValueError(
            "Argument `model` must be a built keras.Model or a function that builds one, such as "
            f"`lambda: keras.Sequential([...])`. Received: model={model!r}"
        )
    name = default_name if name is None else name
    return Problem(
        _checks.text("name", name), x, y, build, loss, seed, description or f"your model {name!r}", validation_data
    )


def _first_rows(x, n: int = 1):
    """The first ``n`` samples of ``x`` (to build a model that was not built yet)."""
    try:
        return x[:n]
    except TypeError:
        raise _checks._fail("x", "an array with one row per sample", x) from None


def _seed(seed) -> int:
    """A seed for numpy and Keras: an integer >= 0."""
    return _checks.size("seed", seed, low=0)


def _digits_model():
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="tanh", name="hidden"),
            keras.layers.Dense(10, name="output"),
        ],
        name="digits_mlp",
    )


def _xent():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


PROBLEMS = {"deep_mlp": deep_mlp, "digits": digits, "imbalanced_digits": imbalanced_digits, "wide_mlp": wide_mlp}


def make_problem(name: str, seed: int = 0) -> Problem:
    """Build a registered problem by name."""
    name = _checks.choice("problem", name, tuple(PROBLEMS))
    return PROBLEMS[name](seed=_seed(seed))
