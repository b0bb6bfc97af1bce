"""The Trainer's inputs, checked before anything is traced: loss, arrays, datasets, shapes.

:func:`check_loss`, :func:`check_arrays` and :func:`check_input_shape` are shared with
the problems (:mod:`gradlab.problems.builtin`), which check the same things the same
way. :func:`check_training_data` is what ``Trainer.fit`` checks of ``x``, ``y`` and
``dataset``; :func:`batches` is how it batches arrays.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["batches", "check_arrays", "check_input_shape", "check_loss", "check_training_data"]


def check_loss(loss, name: str = "loss"):
    """A Keras loss object, a loss name (``"mse"``) or a function ``loss(y_true, y_pred)``."""
    if isinstance(loss, str):
        try:
            return keras.losses.get(loss)
        except (ValueError, TypeError):
            raise ValueError(
                f"Argument `{name}` must be a Keras loss, the name of one (such as 'mse' or "
                f"'sparse_categorical_crossentropy') or a function loss(y_true, y_pred). Received: {name}={loss!r}"
            ) from None
    if loss is None or not callable(loss) or isinstance(loss, type):
        raise ValueError(
            f"Argument `{name}` must be a Keras loss (such as keras.losses.MeanSquaredError()), the name of "
            f"one or a function loss(y_true, y_pred). Received: {name}={loss!r}"
        )
    return loss


def _leaves(name: str, a) -> list[tuple[str, object]]:
    """The arrays of ``a`` with their names: ``a`` itself, or each entry of a dict, tuple or list of
    arrays (what ``model.fit`` takes for a model with several inputs or outputs)."""
    if isinstance(a, dict):
        if not a:
            raise ValueError(f"Argument `{name}` must not be an empty dict. Received: {name}={{}}")
        return [leaf for k, v in a.items() for leaf in _leaves(f"{name}[{k!r}]", v)]
    if isinstance(a, tuple) or (isinstance(a, list) and a and all(hasattr(v, "shape") for v in a)):
        return [leaf for i, v in enumerate(a) for leaf in _leaves(f"{name}[{i}]", v)]
    return [(name, a)]


def check_arrays(x, y) -> int:
    """Check that ``x`` and ``y`` are given and hold the same number of samples; return it.

    Each may be an array (numpy, tensor or list) or, as ``model.fit`` takes them, a dict, tuple or
    list of arrays (a model with several inputs or outputs): every array must hold as many samples.
    """
    if x is None or y is None:
        raise ValueError(
            "Arguments `x` and `y` must both be arrays (or pass a `dataset`). "
            f"Received: x={'None' if x is None else type(x).__name__}, y={'None' if y is None else type(y).__name__}"
        )
    lengths = {}
    for name, a in [*_leaves("x", x), *_leaves("y", y)]:
        shape = getattr(a, "shape", None)
        if shape is not None and len(shape) == 0:
            raise ValueError(f"Argument `{name}` must have a leading sample axis. Received: {name} of shape ()")
        try:
            lengths[name] = int(shape[0]) if shape is not None else len(a)
        except TypeError:
            raise ValueError(
                f"Argument `{name}` must be an array of samples (numpy array, tensor or list). "
                f"Received: {name} of type {type(a).__name__}"
            ) from None
    if len(set(lengths.values())) > 1:
        if list(lengths) == ["x", "y"]:
            raise ValueError(
                "Arguments `x` and `y` must hold the same number of samples. "
                f"Received: len(x)={lengths['x']}, len(y)={lengths['y']}"
            )
        raise ValueError(
            "Arguments `x` and `y` must hold the same number of samples in every array. Received: "
            + ", ".join(f"len({k})={n}" for k, n in lengths.items())
        )
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("Arguments `x` and `y` must hold at least one sample. Received: len(x)=0")
    return n


def check_input_shape(model, name, shape) -> None:
    """Check that samples of ``shape`` (with the batch axis) fit a model with one known input."""
    inputs = getattr(model, "inputs", None)
    if shape is None or not inputs or len(inputs) != 1 or getattr(inputs[0], "shape", None) is None:
        return  # subclassed models and several inputs: Keras checks when the step is traced
    expected = tf.TensorShape(inputs[0].shape)[1:]
    got = tf.TensorShape(shape)
    if got.rank is not None and not got[1:].is_compatible_with(expected):
        raise ValueError(
            f"Argument `{name}` must hold samples of the shape the model takes, "
            f"{tuple([None] + expected.as_list())}. Received: {name} of shape {tuple(got.as_list())}"
        )


def check_training_data(model, x, y, dataset, batch_size, shuffle, seed) -> tuple:
    """Check ``Trainer.fit``'s data (arrays ``x``, ``y`` or a ``dataset``, not both) against ``model``.

    Returns the key the Trainer keeps its iterator under: the same data, batched the same
    way, gives the same key, so that another ``fit`` continues from the next batch.
    """
    if dataset is None:
        n = check_arrays(x, y)
        check_input_shape(model, "x", getattr(x, "shape", None))
        if n < batch_size:
            raise ValueError(
                f"Argument `batch_size` must be at most the number of samples ({n}). Received: batch_size={batch_size}"
            )
        return (id(x), id(y), batch_size, shuffle, seed)
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"Argument `dataset` must be a tf.data.Dataset. Received: dataset={dataset!r}")
    if x is not None or y is not None:
        raise ValueError(
            "Pass either `x` and `y` arrays or a `dataset`, not both (the dataset would be trained on "
            f"and the arrays ignored). Received: x of type {type(x).__name__}, y of type "
            f"{type(y).__name__} and a dataset"
        )
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        raise ValueError(
            f"Argument `dataset` must yield (x, y) batches. Received: a dataset whose elements are {spec!r}"
        )
    check_input_shape(model, "dataset", getattr(spec[0], "shape", None))
    return (id(dataset),)


def batches(x, y, batch_size, shuffle, seed) -> tf.data.Dataset:
    """Arrays as an endless dataset of full batches (shuffled again each pass when ``shuffle``)."""

    def structure(a):  # tf.data stacks a list into one tensor; Keras takes it as one array per input
        return tuple(a) if isinstance(a, list) and len(_leaves("a", a)) > 1 else a

    ds = tf.data.Dataset.from_tensor_slices((structure(x), structure(y)))
    if shuffle:
        ds = ds.shuffle(check_arrays(x, y), seed=seed, reshuffle_each_iteration=True)
    # Fixed batch shape: a ragged last batch would retrace the step.
    return ds.batch(batch_size, drop_remainder=True).repeat().prefetch(2)
