"""AdaGC: each tensor clipped relative to an EMA of its own clipped norms (Wang et al. 2025).

During warm-up AdaGC clips the global norm to an absolute bound and remembers, per
tensor, the smallest clipped norm; after it, each tensor is clipped to ``lambda_rel``
times an exponential moving average of its own clipped norms. The state (one EMA per
tensor and the step) lives in ``tf.Variable`` objects; the numeric options too, so
:meth:`AdaGC.set` changes them between steps without a retrace.
"""

from __future__ import annotations

import tensorflow as tf

from gradlab import _checks
from gradlab._state import state_variable
from gradlab.scaling.kernels import scale, squared_norm, values_of, with_values

__all__ = ["AdaGC"]

_INF = float("inf")


class AdaGC:
    r"""Adaptive gradient clipping per tensor, against an EMA of its clipped norms.

    At step :math:`t` (from 1), with global norm :math:`\|g_t\|` and tensor norms :math:`\|g_{t,i}\|`:

    - warm-up, :math:`t <` ``warmup_steps``: :math:`h = \min(1, \lambda_{abs} / (\|g_t\| + \epsilon))`
      for every tensor, and :math:`\gamma_i \leftarrow \min(\gamma_i, h\|g_{t,i}\|)`
      (its value at step 1);
    - after: :math:`h_i = \min(1, \lambda_{rel}\gamma_i / \|g_{t,i}\|)` and
      :math:`\gamma_i \leftarrow \beta\gamma_i + (1 - \beta) h_i\|g_{t,i}\|`.

    Each tensor is multiplied by its :math:`h_i`. This is the clipping step of
    pytorch_optimizer's ``AdaGC`` optimizer (which then takes an Adam step with
    decoupled weight decay): use it before a Keras ``AdamW`` for the whole method.
    A tensor whose gradient is ``None`` keeps its :math:`\gamma`; one that was
    ``None`` through all of warm-up has :math:`\gamma = \infty` (not clipped).

    Args:
      lambda_abs: positive float, the warm-up's global-norm bound (1.0).
      lambda_rel: positive float, the bound relative to the EMA (1.05).
      beta: float in (0, 1), the EMA factor (0.98).
      warmup_steps: int >= 2; steps 1 .. ``warmup_steps - 1`` are warm-up (100).
      eps: float >= 0 added to the global norm (1e-8).

    References:
      Wang, Zhang, et al. "AdaGC: Improving Training Stability for Large Language
      Model Pretraining". 2025. https://arxiv.org/abs/2502.11034 ; code:
      kozistr/pytorch_optimizer, ``pytorch_optimizer/optimizer/adagc.py``.

    >>> clip = AdaGC(lambda_abs=1.0, lambda_rel=2.0, beta=0.5, warmup_steps=2)
    >>> out = clip([tf.constant([3.0, 4.0])])  # warm-up: norm 5 clipped to 1; gamma = 1
    >>> out = clip([tf.constant([0.0, 3.0])])  # after: bound 2 * 1; gamma = 0.5 + 0.5 * 2
    >>> out[0].numpy().round(4).tolist(), round(float(clip.gamma[0]), 4)
    ([0.0, 2.0], 1.5)
    """

    def __init__(self, lambda_abs=1.0, lambda_rel=1.05, beta=0.98, warmup_steps=100, eps=1e-8):
        self.eps = _checks.number("eps", eps, low=0.0, low_open=False, python=True)
        values = check_adagc_options(lambda_abs, lambda_rel, beta, warmup_steps)
        self.lambda_abs = state_variable(values["lambda_abs"], "adagc_lambda_abs", tf.float32)
        self.lambda_rel = state_variable(values["lambda_rel"], "adagc_lambda_rel", tf.float32)
        self.beta = state_variable(values["beta"], "adagc_beta", tf.float64)  # float64: 1 - beta exact enough
        self.warmup_steps = state_variable(values["warmup_steps"], "adagc_warmup_steps", tf.int64)
        self.step = state_variable(0, "adagc_step", tf.int64)
        self.gamma = None
        self.num_tensors = None

    def set(self, lambda_abs=None, lambda_rel=None, beta=None, warmup_steps=None) -> None:
        """Change options between steps (no retrace); every value is checked before any is written."""
        values = check_adagc_options(lambda_abs, lambda_rel, beta, warmup_steps)
        for name, value in values.items():
            getattr(self, name).assign(value)

    def build(self, num_tensors: int) -> None:
        """Create one EMA per gradient tensor (done by the first call; call it before compiling to trace once)."""
        num_tensors = _checks.size("num_tensors", num_tensors)
        if self.gamma is not None:
            if num_tensors != self.num_tensors:
                raise ValueError(
                    f"Argument `grads` must have the {self.num_tensors} tensors this AdaGC was built for. "
                    f"Received: {num_tensors} tensors"
                )
            return
        self.num_tensors = num_tensors
        self.gamma = state_variable(tf.fill([num_tensors], _INF), "adagc_gamma", tf.float32)

    @property
    def variables(self):
        state = [] if self.gamma is None else [self.gamma]
        return [self.lambda_abs, self.lambda_rel, self.beta, self.warmup_steps, self.step, *state]

    @property
    def state_variables(self):
        """The state only (step and the per-tensor EMAs), not the options."""
        return self.variables[4:]

    def __call__(self, grads, variables=None):
        grads = _checks.grad_list(grads)
        self.build(len(grads))
        present = tf.constant([g is not None for g in grads])
        squares = tf.stack([tf.constant(0.0) if g is None else squared_norm(values_of(g)) for g in grads])
        factors = self.update(squares, present)
        return [None if g is None else with_values(g, scale(values_of(g), factors[i])) for i, g in enumerate(grads)]

    def update(self, squared, present=None, lambda_rel=None):
        """One step from each tensor's squared norm (float32 vector): update the state, return the factors.

        ``present`` (bool vector) marks the tensors that have a gradient (default all).
        ``lambda_rel`` (a float32 scalar) replaces the option for this step: mode
        ``"adagc"`` of a :class:`~gradlab.Scaler` passes its threshold, checked when it was set.
        The form a Scaler mode needs: one factor per tensor from the squared norms it measured.
        """
        self.build(int(squared.shape[0]))
        squares = tf.cast(squared, tf.float32)
        present = tf.ones_like(squares, tf.bool) if present is None else tf.cast(present, tf.bool)
        squares = tf.where(present, squares, 0.0)
        norms = tf.sqrt(squares)
        total = tf.sqrt(tf.reduce_sum(squares)) + self.eps
        step = self.step + 1
        warm = step < self.warmup_steps
        gamma = self.gamma.read_value()
        h_warm = tf.minimum(self.lambda_abs / total, 1.0)
        rel = self.lambda_rel if lambda_rel is None else tf.cast(lambda_rel, tf.float32)
        h_rel = tf.where(norms > 0.0, tf.minimum(rel * gamma / norms, 1.0), 1.0)
        factors = tf.where(warm, h_warm, h_rel)
        clipped = factors * norms
        beta, complement = tf.cast(self.beta, tf.float32), tf.cast(1.0 - self.beta, tf.float32)
        new_gamma = tf.where(warm, tf.minimum(gamma, clipped), beta * gamma + complement * clipped)
        self.gamma.assign(tf.where(present, new_gamma, gamma))
        self.step.assign(step)
        return factors

    def get_config(self):
        return {
            "lambda_abs": float(self.lambda_abs.numpy()),
            "lambda_rel": float(self.lambda_rel.numpy()),
            "beta": float(self.beta.numpy()),
            "warmup_steps": int(self.warmup_steps.numpy()),
            "eps": self.eps,
        }


def check_adagc_options(lambda_abs=None, lambda_rel=None, beta=None, warmup_steps=None, prefix="") -> dict:
    """The options given (not None), checked; errors name the argument as ``prefix + name``."""
    values = {}
    if lambda_abs is not None:
        values["lambda_abs"] = _checks.number(prefix + "lambda_abs", lambda_abs, python=True)
    if lambda_rel is not None:
        values["lambda_rel"] = _checks.number(prefix + "lambda_rel", lambda_rel, python=True)
    if beta is not None:
        values["beta"] = _checks.number(prefix + "beta", beta, high=1.0, high_open=True, python=True)
    if warmup_steps is not None:
        values["warmup_steps"] = _checks.size(prefix + "warmup_steps", warmup_steps, low=2)
    return values
