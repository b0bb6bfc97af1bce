"""Small offline problems for notebooks, tests and benchmarks.

Nothing is downloaded: data come from a seed or from scikit-learn's bundled
digits (the recurrent adding problems' data and models:
:mod:`gradlab.problems.recurrent`). Each builder returns a :class:`Problem` whose
``model()`` builds a fresh Keras model with weights fixed by the problem's seed, so several runs can start
from identical weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from gradlab import _checks, _extras
from gradlab.problems import recurrent
from gradlab.problems.state import ModelState, clone_with_state

__all__ = [
    "PROBLEMS",
    "Problem",
    "adding_lstm",
    "adding_rnn",
    "deep_mlp",
    "digits",
    "from_model",
    "imbalanced_digits",
    "make_problem",
    "replay",
    "wide_mlp",
]


@dataclasses.dataclass
class Problem:
    """Data, a model builder and a loss.

    Attributes:
      name: registry name.
      x, y: numpy training arrays (None when the data is a ``dataset``).
      build: callable returning a new, un-compiled Keras model.
      loss: a Keras loss object.
      seed: the seed used for data and for the model's initial weights.
      description: one line for menus.
      validation_data: ``(x_val, y_val)`` held-out arrays, a finite
        ``tf.data.Dataset`` of ``(x, y)`` batches, or None.
      dataset: a ``tf.data.Dataset`` of ``(x, y)`` training batches instead of
        ``x`` and ``y`` (then both None).
      own_model: your model, where the runs train it itself because it cannot be
        cloned (:func:`from_model`); the tools restore its state after their runs
        (:func:`gradlab.problems.state.kept`). None where every run gets a new model.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    build: Callable[[], keras.Model]
    loss: keras.losses.Loss
    seed: int
    description: str
    validation_data: tuple | tf.data.Dataset | None = None
    dataset: tf.data.Dataset | None = None
    own_model: keras.Model | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        _checks.text("name", self.name)
        if self.dataset is not None:
            check_dataset(self.dataset)
            if self.x is not None or self.y is not None:
                raise ValueError(
                    "Pass either `x` and `y` arrays or a `dataset`, not both. Received: x of type "
                    f"{type(self.x).__name__}, y of type {type(self.y).__name__} and a dataset"
                )
        for k in () if self.dataset is not None else ("x", "y"):
            if not hasattr(getattr(self, k), "__len__"):
                raise _checks._fail(k, "an array with one row per sample", getattr(self, k))
        if self.dataset is None and len(self.x) != len(self.y):
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
        if isinstance(self.validation_data, tf.data.Dataset):
            check_dataset(self.validation_data, "validation_data", finite=True)
        elif self.validation_data is not None:
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
    load_digits = _extras.require("sklearn.datasets", "gradlab.problems.digits").load_digits

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


def adding_rnn(seed: int = 0, length: int = 50, samples: int = 1024, units: int = 32, gain: float = 1.5) -> Problem:
    """The adding problem with a tanh SimpleRNN whose gradients explode through time.

    The recurrent matrix starts orthogonal times ``gain`` (spectral radius 1.5 > 1),
    so the gradient norm at initialisation grows with ``length``; plain SGD at 0.05
    diverges where clipping the global norm trains. See :mod:`gradlab.problems.recurrent`.
    """
    text = f"adding problem, tanh SimpleRNN ({units} units, {length} steps, recurrent gain {gain:g})"
    return _adding("adding_rnn", "simple_rnn", seed, length, samples, units, gain, text)


def adding_lstm(seed: int = 0, length: int = 50, samples: int = 1024, units: int = 32) -> Problem:
    """The adding problem with an LSTM (Keras' defaults): its gradient norm stays about flat with ``length``."""
    text = f"adding problem, LSTM ({units} units, {length} steps)"
    return _adding("adding_lstm", "lstm", seed, length, samples, units, 1.5, text)


def _adding(name, cell, seed, length, samples, units, gain, text) -> Problem:
    seed = _seed(seed)
    x, y = recurrent.adding_data(length, samples, seed)
    build = recurrent.adding_model(cell, length, units, gain)
    return Problem(name, x, y, build, keras.losses.MeanSquaredError(), seed, text)


def from_model(
    model,
    x,
    y=None,
    loss=None,
    *,
    validation_data=None,
    name: str | None = None,
    seed: int = 0,
    description: str = "",
) -> Problem:
    """Your own model and data as a :class:`Problem`, for ``compare``, the lab and the report.

    Args:
      model: a built Keras model (Sequential, Functional or subclassed), which
        gradlab clones for every run with the state it has now (every variable,
        the dropout layers' seed state included), or a function that builds a new
        one (called after seeding with ``seed``, so every run starts from the same
        weights). A model that cannot be cloned (layers without ``get_config``, an
        ``__init__`` without ``**kwargs``) is trained itself, from its state now,
        which the tools put back after their runs (``Problem.own_model``; see
        :mod:`gradlab.problems.state`).
      x, y: the training arrays (numpy arrays or tensors, one row per sample), or
        ``x`` a ``tf.data.Dataset`` of ``(x, y)`` batches and ``y`` None, as in
        ``model.fit``.
      loss: a Keras loss, its name (``"mse"``) or ``loss(y_true, y_pred)``.
      validation_data: ``(x_val, y_val)`` arrays or a finite ``tf.data.Dataset``
        of ``(x, y)`` batches, evaluated during ``compare``, the advisor and the lab.
      name, seed, description: the problem's name (the model's name by default),
        seed and one-line description.

    The model is called once on the first samples, and the loss on its output and
    the first labels, so that data the model does not take, or labels the loss
    does not fit, are refused here with the shapes involved.

    >>> net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> p = from_model(net, np.ones((8, 3), "float32"), np.zeros((8, 1), "float32"), "mse")
    >>> a, b = p.model(), p.model()
    >>> a is not net and all((u == v).all() for u, v in zip(a.get_weights(), net.get_weights()))
    True
    """
    from gradlab.training.inputs import check_loss  # the Trainer checks losses the same way

    loss = check_loss(loss)
    seed = _seed(seed)
    dataset = None
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError(
                "Argument `y` must be None when `x` is a tf.data.Dataset (it yields (x, y) batches), as in "
                f"model.fit. Received: y of type {type(y).__name__}"
            )
        dataset, x = check_dataset(x, "x"), None
        sample_x, sample_y = first_batch(dataset)
    else:
        from gradlab.training.inputs import check_arrays

        check_arrays(x, y)
        sample_x, sample_y = _first_rows(x, 2), _first_rows(y, 2, "y")
    if isinstance(model, keras.Model):
        if not model.built or not model.weights:
            raise ValueError(
                "Argument `model` must be built (give it a keras.Input, or call it once on a batch) so that "
                f"every run can start from its weights. Received: an unbuilt model {model.name!r}"
            )
        given, original = ModelState(model), model
        # Cloning serves where the clone has the model's variables (weights and seed state), in the same
        # number, shapes and dtypes, so that it can start from the model's complete state; else the runs
        # train the model itself, from this state, and the tools put it back after them.
        try:
            probe_clone = clone_with_state(original, given, sample_x)
        except Exception:  # noqa: BLE001 - Keras raises several types for layers it cannot rebuild
            probe_clone = None
        own_model = original if probe_clone is None else None

        def build():
            if own_model is not None:
                given.restore()
                return original
            return clone_with_state(original, given, sample_x)

        default_name = model.name
        probe = model
    elif callable(model) and not isinstance(model, type):
        own_model = None

        def build():
            built = model()
            if not isinstance(built, keras.Model):
                raise ValueError(
                    "Argument `model` must be a keras.Model or a function returning one. "
                    f"Received: a function that returned {type(built).__name__}"
                )
            if not built.built:
                built(sample_x)
            return built

        default_name = getattr(model, "__name__", "model")
        if default_name == "<lambda>":
            default_name = "model"
        keras.utils.set_random_seed(seed)
        probe = build()
    else:
        raise ValueError(
            "Argument `model` must be a built keras.Model or a function that builds one, such as "
            f"`lambda: keras.Sequential([...])`. Received: model={model!r}"
        )
    full = getattr(x, "shape", None) if dataset is None else None
    check_fits(probe, loss, sample_x, sample_y, "x" if dataset is None else "x (the dataset)", full)
    if validation_data is not None and not isinstance(validation_data, tf.data.Dataset):
        _check_validation_like(validation_data, sample_x, sample_y)
    name = default_name if name is None else name
    return Problem(
        _checks.text("name", name),
        x,
        y,
        build,
        loss,
        seed,
        description or f"your model {name!r}",
        validation_data,
        dataset,
        own_model,
    )


def check_dataset(dataset, name: str = "dataset", finite: bool = False) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` whose elements are ``(x, y)`` batches (finite when ``finite``)."""
    if not isinstance(dataset, tf.data.Dataset):
        raise _checks._fail(name, "a tf.data.Dataset of (x, y) batches", dataset)
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(
            f"Argument `{name}` must yield (x, y) batches (a pair; sample weights are not supported). "
            f"Received: a dataset whose elements are {spec!r}"
        )
    if finite and int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(
            f"Argument `{name}` must be a finite dataset (it is evaluated to its end): remove `.repeat()`. "
            f"Received: {name} with infinite cardinality"
        )
    return dataset


def first_batch(dataset) -> tuple:
    """The first ``(x, y)`` batch of ``dataset``, as tensors (to build and check a model)."""
    for x, y in dataset.take(1):
        return x, y
    raise ValueError("Argument `x` must be a dataset with at least one batch. Received: an empty dataset")


def check_fits(model, loss, x, y, name: str = "x", shape=None) -> None:
    """Call ``model`` on the samples ``x`` and ``loss`` on ``(y, prediction)``; refuse clearly what does not fit."""
    from gradlab.training.inputs import check_input_shape  # the Trainer's own check, with the expected shape

    shape = tuple(getattr(x, "shape", ()) if shape is None else shape)
    check_input_shape(model, name, shape)
    try:
        pred = model(x, training=False)
    except Exception as err:  # noqa: BLE001 - Keras raises several types for inputs that do not fit
        raise ValueError(
            f"Argument `{name}` must hold samples the model takes; the model refused them "
            f"({type(err).__name__}: {_first_line(err)}). Received: {name} of shape {shape}"
        ) from None
    try:
        value = np.asarray(loss(y, pred), np.float64)
    except Exception as err:  # noqa: BLE001
        raise ValueError(
            f"Argument `loss` must fit the labels and the model's output; it failed on labels of shape "
            f"{tuple(getattr(y, 'shape', ()))} and predictions of shape {tuple(pred.shape)} "
            f"({type(err).__name__}: {_first_line(err)}). Received: loss={loss!r}"
        ) from None
    if not np.all(np.isfinite(value)):
        raise ValueError(
            "Argument `loss` must give a finite value on the first samples at the initial weights (are the labels "
            f"in the range the loss expects?). Received: loss={loss!r}, value {value.tolist()!r}"
        )


def _check_validation_like(validation_data, x, y) -> None:
    """``(x_val, y_val)`` arrays whose samples have the training samples' shapes."""
    v = validation_data
    if not isinstance(v, (tuple, list)) or len(v) != 2 or not all(hasattr(a, "shape") for a in v):
        raise _checks._fail("validation_data", "a pair (x_val, y_val) of arrays or a tf.data.Dataset", v)
    for what, got, train in (("x_val", v[0], x), ("y_val", v[1], y)):
        a, b = tuple(np.shape(got))[1:], tuple(train.shape)[1:]
        labels_alike = what == "y_val" and np.prod(a, dtype=int) == np.prod(b, dtype=int)  # (n,) and (n, 1)
        if a != b and not labels_alike:
            raise ValueError(
                f"Argument `validation_data` must hold samples shaped like the training data: {what} samples of "
                f"shape {b}. Received: {what} of shape {tuple(np.shape(got))}"
            )


def replay(dataset, batches: int, seed: int | None = None) -> tf.data.Dataset:
    """The first ``batches`` batches of ``dataset``, read once and replayed in the same order.

    ``compare`` and the advisor's ``verify`` give every run the same batches in the
    same order, even from a dataset that reshuffles each time it is iterated (a
    seeded ``shuffle`` does). With ``seed``, the order of the stored batches is
    permuted by it (``verify``'s seeds); ``seed=None`` keeps the dataset's order.
    """
    batches = _checks.size("batches", batches)
    stored = []
    for element in check_dataset(dataset).repeat():
        stored.append(tf.nest.map_structure(lambda t: t.numpy(), element))
        if len(stored) == batches:
            break
    if seed is not None:
        order = np.random.default_rng(_seed(seed)).permutation(len(stored))
        stored = [stored[i] for i in order]
    shapes = {tuple(a.shape for a in tf.nest.flatten(e)) for e in stored}
    if len(shapes) == 1:  # one batch shape: stack them, one element per batch
        stacked = tf.nest.map_structure(lambda *parts: np.stack(parts), *stored)
        return tf.data.Dataset.from_tensor_slices(stacked)
    spec = tf.nest.map_structure(
        lambda s: tf.TensorSpec([None, *s.shape[1:]], s.dtype), dataset.element_spec
    )  # ragged last batch of an epoch: one trace with an unknown batch size
    return tf.data.Dataset.from_generator(lambda: iter(stored), output_signature=spec)


def _first_line(err) -> str:
    """The line of an error message that says most (one naming a shape, else the first)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    telling = [line for line in lines if "shape" in line.lower() and not line.startswith("Exception encountered")]
    return (telling or lines or [type(err).__name__])[0][:300]


def _first_rows(x, n: int = 1, name: str = "x"):
    """The first ``n`` samples of ``x`` (to build a model that was not built yet)."""
    try:
        return x[:n]
    except TypeError:
        raise _checks._fail(name, "an array with one row per sample", x) from None


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


PROBLEMS = {
    "deep_mlp": deep_mlp,
    "digits": digits,
    "imbalanced_digits": imbalanced_digits,
    "wide_mlp": wide_mlp,
    "adding_rnn": adding_rnn,
    "adding_lstm": adding_lstm,
}


def make_problem(name: str, seed: int = 0) -> Problem:
    """Build a registered problem by name."""
    name = _checks.choice("problem", name, tuple(PROBLEMS))
    return PROBLEMS[name](seed=_seed(seed))
