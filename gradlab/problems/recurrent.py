"""Gradients that explode through time: the adding problem, and the cliff of a one-unit RNN.

Two pieces, both offline and seeded:

- The adding problem (Hochreiter & Schmidhuber 1997; Pascanu, Mikolov & Bengio
  2013, section 5.3): each sequence carries a random number and a marker per
  step; the target is the sum of the two marked numbers, one marked in each half
  of the sequence. :func:`adding_data` makes the data, :func:`adding_model` the
  tanh ``SimpleRNN`` (or an ``LSTM`` beside it); ``gradlab.problems.adding_rnn``
  and ``adding_lstm`` put them together as problems.
- The cliff (Pascanu et al. 2013, section 3 and Figure 6): the one-unit RNN
  ``x_t = w * sigmoid(x_{t-1}) + b`` from ``x_0 = 0.5``, with the squared error
  of its last state against a target. :func:`cliff_surface` computes its loss
  over a grid of ``(w, b)`` and :func:`cliff_trajectory` runs gradient descent
  on it, with or without norm clipping.

Why the tanh RNN's gradient explodes: backpropagation through time multiplies
the gradient by the Jacobian ``diag(1 - h_t**2) W`` once per step. Pascanu et al.
show that it can grow only if the largest singular value of the recurrent
matrix ``W`` exceeds ``1 / max|tanh'| = 1``. :func:`adding_model` therefore
starts ``W`` orthogonal times ``gain`` (1.5 by default): every singular value,
and the spectral radius, is 1.5. The network then runs in the chaotic regime
of random tanh networks (Sompolinsky, Crisanti & Sommers 1988), where products
of these Jacobians grow with the number of steps, so the gradient norm at
initialisation grows with the sequence length (at the defaults, seed 0: 29.6 at
10 steps, 226 at 100, 6.0e3 at 200; tests/test_recurrent.py checks >= 10x). The LSTM's gated, additive cell
state keeps its gradient norm about flat.

References:
  Hochreiter, S. and Schmidhuber, J. "Long short-term memory", Neural
  Computation 9(8), 1997.
  Pascanu, R., Mikolov, T. and Bengio, Y. "On the difficulty of training
  recurrent neural networks", ICML 2013. https://arxiv.org/abs/1211.5063
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from gradlab import _checks
from gradlab.scaling.clipping import global_norm

__all__ = [
    "CELLS",
    "CLIFF",
    "adding_data",
    "adding_model",
    "checked_path",
    "cliff_gradient",
    "cliff_loss",
    "cliff_surface",
    "cliff_trajectory",
    "initial_gradient_norm",
    "on_map",
    "step_lengths",
]

CELLS = ("simple_rnn", "lstm")

# The cliff's model and the picture notebook 01 draws: x_0, the number of steps, the target of the last state,
# the grid, and a start from which plain gradient descent meets the cliff.
CLIFF = {
    "x0": 0.5,
    "length": 50,
    "target": 0.7,
    "w_range": (2.0, 10.0),
    "b_range": (-7.0, 1.0),
    "start": (7.0, -5.0),
    "learning_rate": 0.02,
    "steps": 60,
}


# ---------------------------------------------------------------- the adding problem
def adding_data(length: int = 50, samples: int = 1024, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem: ``x`` of shape ``(samples, length, 2)``, ``y`` of shape ``(samples, 1)``.

    Feature 0 of each step is a number drawn uniformly in [0, 1); feature 1 is a
    marker, 1 at two steps (one in each half of the sequence) and 0 elsewhere.
    The target is the sum of the two marked numbers. Predicting its mean (1)
    gives a mean squared error of 1/6.

    >>> x, y = adding_data(length=6, samples=3, seed=0)
    >>> x.shape, y.shape, x[..., 1].sum(axis=1).tolist()
    ((3, 6, 2), (3, 1), [2.0, 2.0, 2.0])
    >>> bool(np.allclose(y[:, 0], (x[..., 0] * x[..., 1]).sum(axis=1)))
    True
    """
    length = _checks.size("length", length, low=2)
    samples = _checks.size("samples", samples)
    seed = _checks.size("seed", seed, low=0)
    rng = np.random.default_rng(seed)
    values = rng.random((samples, length)).astype("float32")
    half = length // 2
    first, second = rng.integers(0, half, samples), rng.integers(half, length, samples)
    markers = np.zeros((samples, length), "float32")
    markers[np.arange(samples), first] = 1.0
    markers[np.arange(samples), second] = 1.0
    x = np.stack([values, markers], axis=-1)
    y = (values * markers).sum(axis=1, keepdims=True).astype("float32")
    return x, y


def adding_model(
    cell: str = "simple_rnn", length: int = 50, units: int = 32, gain: float = 1.5
) -> Callable[[], keras.Model]:
    """A builder of the adding problem's model: one recurrent layer and a linear output.

    Args:
      cell: ``"simple_rnn"`` (a tanh ``keras.layers.SimpleRNN`` whose recurrent
        kernel starts orthogonal times ``gain``) or ``"lstm"`` (a
        ``keras.layers.LSTM`` with Keras' defaults: orthogonal recurrent kernel,
        forget-gate bias 1).
      length: the sequence length the model takes.
      units: the recurrent layer's width.
      gain: the spectral radius (and every singular value) of the SimpleRNN's
        initial recurrent matrix. Above 1 its gradients can explode through
        time (Pascanu et al. 2013); unused by the LSTM.

    Returns:
      A function building a new, un-compiled model (seed Keras first for fixed
      initial weights, as :meth:`gradlab.problems.Problem.model` does).
    """
    cell = _checks.choice("cell", cell, CELLS)
    length = _checks.size("length", length, low=2)
    units = _checks.size("units", units)
    gain = _checks.python_number("gain", gain)

    def build() -> keras.Model:
        if cell == "simple_rnn":
            layer = keras.layers.SimpleRNN(
                units, activation="tanh", recurrent_initializer=keras.initializers.Orthogonal(gain=gain), name="rnn"
            )
        else:
            layer = keras.layers.LSTM(units, name="lstm")
        return keras.Sequential(
            [keras.Input((length, 2)), layer, keras.layers.Dense(1, name="output")], name=f"adding_{cell}"
        )

    return build


def initial_gradient_norm(problem, samples: int | None = 256) -> float:
    """The global norm of the loss gradient at the problem's initial weights.

    Args:
      problem: a :class:`gradlab.problems.Problem` with arrays ``x`` and ``y``.
      samples: how many of its first samples make the batch (None: all).

    Returns:
      ``||dL/dtheta||`` over all trainable variables, as a Python float.
    """
    x, y = getattr(problem, "x", None), getattr(problem, "y", None)
    if x is None or y is None or not callable(getattr(problem, "model", None)):
        raise _checks._fail("problem", "a gradlab Problem with arrays x and y", problem)
    if samples is not None:
        samples = _checks.size("samples", samples)
        x, y = x[:samples], y[:samples]
    model = problem.model()
    with tf.GradientTape() as tape:
        loss = problem.loss(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    return float(global_norm(grads))


# ---------------------------------------------------------------- the cliff
def _cliff_args(length, x0, target):
    return (
        _checks.size("length", length),
        _checks.python_number("x0", x0, low=None),
        _checks.python_number("target", target, low=None),
    )


def _array(name: str, value) -> np.ndarray:
    try:
        a = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise _checks._fail(name, "a number or an array of finite numbers", value) from None
    if not np.all(np.isfinite(a)):
        raise _checks._fail(name, "a number or an array of finite numbers", value)
    return a


def cliff_gradient(w, b, length: int = 50, x0: float = 0.5, target: float = 0.7):
    """The cliff's loss and its gradient, at one point or elementwise over arrays.

    The model (Pascanu et al. 2013, section 3.3): ``x_t = w * sigmoid(x_{t-1}) + b``
    for ``t = 1 .. length`` from ``x_0 = x0``; the loss ``(x_length - target)**2``.
    The derivatives are carried forward with the state (forward-mode, exact):
    ``dx_t/dw = sigmoid(x_{t-1}) + w * sigmoid'(x_{t-1}) * dx_{t-1}/dw`` and
    ``dx_t/db = 1 + w * sigmoid'(x_{t-1}) * dx_{t-1}/db``.

    Returns:
      ``(loss, dloss/dw, dloss/db)``, float64 arrays of the broadcast shape of ``w`` and ``b``.

    >>> loss, dw, db = cliff_gradient(0.0, 0.7)  # x_t = b = 0.7 at every step: on target
    >>> float(loss), float(dw), float(db)
    (0.0, 0.0, 0.0)
    """
    w, b = _array("w", w), _array("b", b)
    length, x0, target = _cliff_args(length, x0, target)
    w, b = np.broadcast_arrays(w, b)
    x = np.full(w.shape, x0)
    dw, db = np.zeros(w.shape), np.zeros(w.shape)
    for _ in range(length):
        s = 0.5 * (1.0 + np.tanh(0.5 * x))  # sigmoid, without overflow
        ds = s * (1.0 - s)
        dw, db = s + w * ds * dw, 1.0 + w * ds * db
        x = w * s + b
    err = x - target
    return err**2, 2.0 * err * dw, 2.0 * err * db


def cliff_loss(w, b, length: int = 50, x0: float = 0.5, target: float = 0.7) -> np.ndarray:
    """The cliff's loss ``(x_length - target)**2`` at ``(w, b)`` (arrays broadcast); see :func:`cliff_gradient`.

    >>> round(float(cliff_loss(6.0, -3.0)), 3), round(float(cliff_loss(6.0, -4.0)), 3)  # the two sides of the wall
    (3.518, 20.962)
    """
    return cliff_gradient(w, b, length, x0, target)[0]


def _range(name: str, value) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _checks._fail(name, "a pair (low, high) of finite numbers, low < high", value)
    lo = _checks.python_number(f"{name}[0]", value[0], low=None)
    hi = _checks.python_number(f"{name}[1]", value[1], low=None)
    if not lo < hi:
        raise _checks._fail(name, "a pair (low, high) of finite numbers, low < high", value)
    return lo, hi


def cliff_surface(
    w_range=CLIFF["w_range"],
    b_range=CLIFF["b_range"],
    points: int = 121,
    length: int = 50,
    x0: float = 0.5,
    target: float = 0.7,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cliff's loss over a ``points`` x ``points`` grid of ``(w, b)``.

    Args:
      w_range, b_range: ``(low, high)`` of the recurrent weight and of the bias.
      points: grid points along each axis (at least 2).
      length, x0, target: the model, as in :func:`cliff_gradient`.

    Returns:
      ``(w, b, loss)``: the grid's ``w`` values (``points``,), its ``b`` values
      (``points``,) and the loss, of shape ``(points, points)`` with
      ``loss[i, j]`` at ``(w[j], b[i])`` (rows follow ``b``, as Plotly's ``z``).

    >>> w, b, loss = cliff_surface(points=3)
    >>> w.tolist(), b.tolist(), loss.shape
    ([2.0, 6.0, 10.0], [-7.0, -3.0, 1.0], (3, 3))
    """
    w_lo, w_hi = _range("w_range", w_range)
    b_lo, b_hi = _range("b_range", b_range)
    points = _checks.size("points", points, low=2)
    w, b = np.linspace(w_lo, w_hi, points), np.linspace(b_lo, b_hi, points)
    loss = cliff_loss(w[None, :], b[:, None], length, x0, target)
    return w, b, loss


def cliff_trajectory(
    start=CLIFF["start"],
    lr: float = CLIFF["learning_rate"],
    steps: int = CLIFF["steps"],
    clip_threshold: float | None = None,
    length: int = 50,
    x0: float = 0.5,
    target: float = 0.7,
) -> np.ndarray:
    """Gradient descent on the cliff's loss from ``start``, with or without norm clipping.

    Each step is ``(w, b) -= lr * g``, with ``g`` the exact gradient of
    :func:`cliff_gradient`, rescaled to norm ``clip_threshold`` when its norm is
    larger (Pascanu et al. 2013, Algorithm 1; ``tf.clip_by_global_norm`` on the
    two parameters). Clipped, no step is longer than ``lr * clip_threshold``.

    Args:
      start: ``(w, b)`` where descent starts.
      lr: the learning rate.
      steps: the number of steps.
      clip_threshold: the norm threshold, or None for plain gradient descent.
      length, x0, target: the model, as in :func:`cliff_gradient`.

    Returns:
      A float64 array of shape ``(steps + 1, 2)``: ``(w, b)`` at every step, the
      start first (NaN after a step whose gradient overflowed float64, if any).

    >>> path = cliff_trajectory(steps=3, clip_threshold=1.0)
    >>> path.shape, path[0].tolist(), bool(np.all(step_lengths(path) <= 0.02 + 1e-12))
    ((4, 2), [7.0, -5.0], True)
    """
    if not isinstance(start, (tuple, list, np.ndarray)) or len(start) != 2:
        raise _checks._fail("start", "a pair (w, b) of finite numbers", start)
    p = np.array([_checks.python_number(f"start[{i}]", v, low=None) for i, v in enumerate(start)], np.float64)
    lr = _checks.python_number("lr", lr)
    steps = _checks.size("steps", steps)
    if clip_threshold is not None:
        clip_threshold = _checks.python_number("clip_threshold", clip_threshold)
    length, x0, target = _cliff_args(length, x0, target)
    path = [p.copy()]
    for _ in range(steps):
        _, gw, gb = cliff_gradient(p[0], p[1], length, x0, target)
        g = np.array([gw, gb], np.float64)
        norm = float(np.hypot(g[0], g[1]))
        if clip_threshold is not None and norm > clip_threshold:
            g = g * (clip_threshold / norm)
        p = p - lr * g
        path.append(p.copy())
        if not np.all(np.isfinite(p)):  # thrown beyond float64: the steps after this one are NaN
            path += [np.full(2, np.nan)] * (steps + 1 - len(path))
            break
    return np.array(path)


def checked_path(name: str, path) -> np.ndarray:
    """``path`` as a float64 array of ``(w, b)`` rows (at least one), or a Keras-style error naming ``name``.

    >>> checked_path("path", [[1, 2], [3, 4]]).dtype
    dtype('float64')
    """
    try:
        p = np.asarray(path, np.float64)
    except (TypeError, ValueError):
        raise _checks._fail(name, "an array of (w, b) rows, as cliff_trajectory returns", path) from None
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 1:
        raise ValueError(
            f"Argument `{name}` must be an array of (w, b) rows, as cliff_trajectory returns. "
            f"Received: {name} of shape {p.shape}"
        )
    return p


def step_lengths(path) -> np.ndarray:
    """The length of each step of a trajectory: the distance between consecutive ``(w, b)`` rows.

    Args:
      path: a ``(steps + 1, 2)`` array of ``(w, b)``, as :func:`cliff_trajectory` returns.

    Returns:
      A float64 array of shape ``(steps,)`` (NaN for a step into or after an overflow).

    >>> step_lengths([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0]]).tolist()
    [5.0, 1.0]
    """
    return np.hypot(*np.diff(checked_path("path", path), axis=0).T)


def on_map(path, w_range=CLIFF["w_range"], b_range=CLIFF["b_range"]) -> bool:
    """Whether a trajectory ends on the map: its last ``(w, b)`` finite and inside the ranges (bounds included).

    Args:
      path: a ``(steps + 1, 2)`` array of ``(w, b)``, as :func:`cliff_trajectory` returns.
      w_range, b_range: ``(low, high)`` of the map, by default the grid of :func:`cliff_surface`.

    >>> on_map([[7.0, -5.0], [10.0, -7.0]]), on_map([[7.0, -5.0], [10.5, -4.0]]), on_map([[7.0, -5.0], [np.nan] * 2])
    (True, False, False)
    """
    end = checked_path("path", path)[-1]
    (w_lo, w_hi), (b_lo, b_hi) = _range("w_range", w_range), _range("b_range", b_range)
    return bool(w_lo <= end[0] <= w_hi and b_lo <= end[1] <= b_hi)  # False for NaN
