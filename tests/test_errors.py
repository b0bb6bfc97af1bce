"""Bad inputs to gradlab's public API, and the errors a user gets for them.

Every message follows the Keras form: it names the argument, says what is allowed
and shows what was received, for example
``Unknown mode 'glob'. Expected one of: 'none', 'value', ... Received: mode='glob'``.
Each case below checks all three parts. After an error nothing has changed: the
scaler's mode and threshold, the adaptive state, the weights and the inner optimizer.

Cases marked ``xfail(strict=True)`` state the message a user should get where gradlab's
current one is wrong or unclear; they start to XPASS (and fail) once gradlab is fixed,
so that the marker is removed then.
"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradlab

MODES_LISTED = "Expected one of: 'none', 'value', 'norm', 'global_norm', 'normalize', 'global_normalize', 'agc', 'autoclip', 'zclip'"
POLICIES_LISTED = "Expected one of: 'skip', 'zero', 'raise'"


# ---------------------------------------------------------------- helpers
def grads():
    """A fresh list of two small float32 gradients."""
    return [tf.constant([3.0, 4.0]), tf.constant([[1.0, 0.0], [0.0, 1.0]])]


def variables():
    return [tf.Variable([1.0, 1.0], name="w"), tf.Variable(tf.eye(2), name="k")]


def identity(g):
    return g


def sgd(**kwargs):
    return keras.optimizers.SGD(0.1, **kwargs)


def msg(*parts: str) -> str:
    """A regex that finds ``parts`` in this order in the message (each one literally)."""
    return ".*".join(re.escape(p) for p in parts)


def case(call, parts, id, error=ValueError):
    return pytest.param(call, error, parts, id=id)


# ---------------------------------------------------------------- the cases
CASES = [
    # --- unknown mode
    case(
        lambda: gradlab.Scaler("glob"),
        ("Unknown mode 'glob'", MODES_LISTED, "Received: mode='glob'"),
        "scaler-mode-unknown",
    ),
    case(
        lambda: gradlab.Scaler(mode=3), ("Unknown mode 3", MODES_LISTED, "Received: mode=3"), "scaler-mode-not-a-string"
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(), mode="glob"),
        ("Unknown mode 'glob'", MODES_LISTED, "Received: mode='glob'"),
        "optimizer-mode-unknown",
    ),
    # --- thresholds of the named modes
    case(
        lambda: gradlab.Scaler("norm", -1.0),
        ("Argument `threshold`", "in (0, inf)", "Received: threshold=-1.0", "clipnorm"),
        "scaler-threshold-negative",
    ),
    case(
        lambda: gradlab.Scaler("norm", 0),
        ("Argument `threshold`", "in (0, inf)", "Received: threshold=0"),
        "scaler-threshold-zero",
    ),
    case(
        lambda: gradlab.Scaler("global_norm", float("nan")),
        ("Argument `threshold`", "a finite number in (0, inf)", "Received: threshold=nan", "global_clipnorm"),
        "scaler-threshold-nan",
    ),
    case(
        lambda: gradlab.Scaler("value", float("inf")),
        ("Argument `threshold`", "a finite number in (0, inf)", "Received: threshold=inf", "clipvalue"),
        "scaler-threshold-inf",
    ),
    case(
        lambda: gradlab.Scaler("norm", "1.0"),
        ("Argument `threshold`", "must be a number", "Received: threshold='1.0'"),
        "scaler-threshold-string",
    ),
    case(
        lambda: gradlab.Scaler("norm", True),
        ("Argument `threshold`", "must be a number", "Received: threshold=True"),
        "scaler-threshold-bool",
    ),
    case(
        lambda: gradlab.Scaler("autoclip", 150),
        ("Argument `threshold`", "in (0, 100]", "Received: threshold=150", "percentile"),
        "scaler-autoclip-percentile-150",
    ),
    case(
        lambda: gradlab.Scaler("autoclip", 0),
        ("Argument `threshold`", "in (0, 100]", "Received: threshold=0", "percentile"),
        "scaler-autoclip-percentile-0",
    ),
    case(
        lambda: gradlab.Scaler("zclip", -2.5),
        ("Argument `threshold`", "in (0, inf)", "Received: threshold=-2.5", "z_threshold"),
        "scaler-zclip-threshold-negative",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(), mode="agc", threshold=0.0),
        ("Argument `threshold`", "in (0, inf)", "Received: threshold=0.0", "clipping"),
        "optimizer-agc-threshold-zero",
    ),
    # --- other Scaler options
    case(
        lambda: gradlab.Scaler(agc_eps=0),
        ("Argument `agc_eps`", "in (0, inf)", "Received: agc_eps=0"),
        "scaler-agc-eps-zero",
    ),
    case(
        lambda: gradlab.Scaler(normalize_eps=-1),
        ("Argument `normalize_eps`", "in (0, inf)", "Received: normalize_eps=-1"),
        "scaler-normalize-eps-negative",
    ),
    case(
        lambda: gradlab.Scaler(zclip_warmup=0),
        ("Argument `zclip_warmup`", "in [1, inf)", "Received: zclip_warmup=0"),
        "scaler-zclip-warmup-zero",
    ),
    case(
        lambda: gradlab.Scaler(zclip_alpha=1.0),
        ("Argument `zclip_alpha`", "in (0, 1)", "Received: zclip_alpha=1.0"),
        "scaler-zclip-alpha-one",
    ),
    case(
        lambda: gradlab.Scaler(autoclip_history=0),
        ("Argument `autoclip_history`", "in [1, inf)", "Received: autoclip_history=0"),
        "scaler-autoclip-history-zero",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(), mode="zclip", zclip_warmup=2.5),
        ("Argument `zclip_warmup`", "an integer", "Received: zclip_warmup=2.5"),
        "optimizer-zclip-warmup-fraction",
    ),
    # --- AutoClip
    case(
        lambda: gradlab.scaling.AutoClip(percentile=0),
        ("Argument `percentile`", "in (0, 100]", "Received: percentile=0"),
        "autoclip-percentile-0",
    ),
    case(
        lambda: gradlab.scaling.AutoClip(percentile=100.5),
        ("Argument `percentile`", "in (0, 100]", "Received: percentile=100.5"),
        "autoclip-percentile-over-100",
    ),
    case(
        lambda: gradlab.scaling.AutoClip(percentile=None),
        ("Argument `percentile`", "a number", "Received: percentile=None"),
        "autoclip-percentile-none",
    ),
    case(
        lambda: gradlab.scaling.AutoClip(history_size=0),
        ("Argument `history_size`", "in [1, inf)", "Received: history_size=0"),
        "autoclip-history-size-0",
    ),
    case(
        lambda: gradlab.scaling.AutoClip(history_size=2.5),
        ("Argument `history_size`", "an integer", "Received: history_size=2.5"),
        "autoclip-history-size-fraction",
    ),
    # --- ZClip
    case(
        lambda: gradlab.scaling.ZClip(alpha=0), ("Argument `alpha`", "in (0, 1)", "Received: alpha=0"), "zclip-alpha-0"
    ),
    case(
        lambda: gradlab.scaling.ZClip(alpha=1), ("Argument `alpha`", "in (0, 1)", "Received: alpha=1"), "zclip-alpha-1"
    ),
    case(
        lambda: gradlab.scaling.ZClip(alpha=1.5),
        ("Argument `alpha`", "in (0, 1)", "Received: alpha=1.5"),
        "zclip-alpha-1.5",
    ),
    case(
        lambda: gradlab.scaling.ZClip(alpha=-0.1),
        ("Argument `alpha`", "in (0, 1)", "Received: alpha=-0.1"),
        "zclip-alpha-negative",
    ),
    case(
        lambda: gradlab.scaling.ZClip(warmup=0),
        ("Argument `warmup`", "in [1, inf)", "Received: warmup=0"),
        "zclip-warmup-0",
    ),
    case(
        lambda: gradlab.scaling.ZClip(warmup=2.5),
        ("Argument `warmup`", "an integer", "Received: warmup=2.5"),
        "zclip-warmup-fraction",
    ),
    case(
        lambda: gradlab.scaling.ZClip(warmup="3"),
        ("Argument `warmup`", "an integer", "Received: warmup='3'"),
        "zclip-warmup-string",
    ),
    case(
        lambda: gradlab.scaling.ZClip(z_threshold=0),
        ("Argument `z_threshold`", "in (0, inf)", "Received: z_threshold=0"),
        "zclip-z-threshold-0",
    ),
    case(
        lambda: gradlab.scaling.ZClip(z_threshold=-1.0),
        ("Argument `z_threshold`", "in (0, inf)", "Received: z_threshold=-1.0"),
        "zclip-z-threshold-negative",
    ),
    case(
        lambda: gradlab.scaling.ZClip(z_threshold=None),
        ("Argument `z_threshold`", "a number", "Received: z_threshold=None"),
        "zclip-z-threshold-none",
    ),
    # --- the gradient list
    case(
        lambda: gradlab.clip_by_global_norm(tf.constant([3.0, 4.0]), 1.0),
        ("Argument `grads`", "a list or tuple of gradient tensors", "Received: grads of type EagerTensor"),
        "grads-single-tensor",
    ),
    case(
        lambda: gradlab.Scaler()(tf.constant([3.0, 4.0])),
        ("Argument `grads`", "a list or tuple of gradient tensors", "Received: grads of type EagerTensor"),
        "scaler-grads-single-tensor",
    ),
    case(
        lambda: gradlab.global_norm(np.array([3.0, 4.0])),
        ("Argument `grads`", "a list or tuple of gradient tensors", "Received: grads of type ndarray"),
        "grads-numpy-array",
    ),
    case(
        lambda: gradlab.tensor_norms(None),
        ("Argument `grads`", "a list or tuple of gradient tensors", "Received: grads of type NoneType"),
        "grads-none",
    ),
    case(
        lambda: gradlab.global_norm([tf.constant([1.0]), "abc"]),
        ("Argument `grads`", "floating-point gradients", "Received: grads[1] with dtype string"),
        "grads-holding-string",
    ),
    case(
        lambda: gradlab.global_norm([np.array([1.0, "a"], dtype=object)]),
        ("Argument `grads`", "tensors or None", "Received: grads[0] of type ndarray with dtype object"),
        "grads-holding-object-array",
    ),
    case(
        lambda: gradlab.clip_by_norm([tf.constant([1, 2])], 1.0),
        ("Argument `grads`", "floating-point gradients", "Received: grads[0] with dtype int32"),
        "grads-integer",
    ),
    case(
        lambda: gradlab.Scaler("value", 1.0)([tf.constant([True])]),
        ("Argument `grads`", "floating-point gradients", "Received: grads[0] with dtype bool"),
        "scaler-grads-bool",
    ),
    # --- grads and variables
    case(
        lambda: gradlab.adaptive_clip(grads(), variables()[:1]),
        ("Arguments `grads` and `variables`", "same length", "Received: len(grads)=2, len(variables)=1"),
        "adaptive-clip-lengths-differ",
    ),
    case(
        lambda: gradlab.Scaler("agc")(grads(), variables() + variables()),
        ("Arguments `grads` and `variables`", "same length", "Received: len(grads)=2, len(variables)=4"),
        "scaler-agc-lengths-differ",
    ),
    case(
        lambda: gradlab.scaler.Selective([("w", 0.5)])(grads(), variables()[:1]),
        ("Arguments `grads` and `variables`", "same length", "Received: len(grads)=2, len(variables)=1"),
        "selective-lengths-differ",
    ),
    case(
        lambda: gradlab.adaptive_clip(grads(), variables()[0]),
        ("Argument `variables`", "a list or tuple of variables", "Received: variables of type ResourceVariable"),
        "adaptive-clip-single-variable",
    ),
    case(
        lambda: gradlab.adaptive_clip(grads(), None),
        ("Argument `variables`", "is required", "Received: variables=None"),
        "adaptive-clip-without-variables",
    ),
    case(
        lambda: gradlab.Scaler("agc")(grads()),
        ("Mode 'agc' needs the variables", "scaler(grads, variables)", "Received: variables=None"),
        "scaler-agc-without-variables",
    ),
    # --- non-finite policy
    case(
        lambda: gradlab.Scaler(nonfinite="ignore"),
        ("Unknown nonfinite policy 'ignore'", POLICIES_LISTED, "Received: nonfinite='ignore'"),
        "scaler-nonfinite-unknown",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(), nonfinite=None),
        ("Unknown nonfinite policy None", POLICIES_LISTED, "Received: nonfinite=None"),
        "optimizer-nonfinite-none",
    ),
    # --- two clipping options at once
    case(
        lambda: gradlab.ScaledOptimizer(sgd(clipnorm=1.0), mode="norm"),
        ("Only one clipping option", "`clipnorm`", "without it", "Received: inner_optimizer.clipnorm=1.0"),
        "optimizer-inner-clipnorm",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(global_clipnorm=1.0), mode="global_norm"),
        (
            "Only one clipping option",
            "`global_clipnorm`",
            "without it",
            "Received: inner_optimizer.global_clipnorm=1.0",
        ),
        "optimizer-inner-global-clipnorm",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(clipvalue=0.5)),
        ("Only one clipping option", "`clipvalue`", "without it", "Received: inner_optimizer.clipvalue=0.5"),
        "optimizer-inner-clipvalue",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(), clipnorm=1.0),
        ("does not take `clipnorm`", "`mode` and `threshold`", "mode='norm'", "Received: clipnorm=1.0"),
        "optimizer-clipnorm-argument",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(), global_clipnorm=1.0),
        ("does not take `global_clipnorm`", "mode='global_norm'", "Received: global_clipnorm=1.0"),
        "optimizer-global-clipnorm-argument",
    ),
    case(
        lambda: gradlab.Scaler(mode="norm", transform=identity),
        (
            "Only one clipping option",
            "`mode`/`threshold` or `transform`",
            "Received: mode='norm'",
            "transform=<function identity",
        ),
        "scaler-mode-and-transform",
    ),
    case(
        lambda: gradlab.Scaler(threshold=2.0, transform=identity),
        ("Only one clipping option", "`mode`/`threshold` or `transform`", "threshold=2.0"),
        "scaler-threshold-and-transform",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(), mode="value", transform=identity),
        ("Only one clipping option", "`mode`/`threshold` or `transform`", "Received: mode='value'"),
        "optimizer-mode-and-transform",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(), scaler=gradlab.Scaler(), mode="norm"),
        ("Only one clipping option", "either `scaler` or the arguments", "Received: scaler=Scaler(", "'mode': 'norm'"),
        "optimizer-scaler-and-mode",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(), scaler=gradlab.Scaler(), zclip_warmup=3),
        (
            "Only one clipping option",
            "either `scaler` or the arguments",
            "Received: scaler=Scaler(",
            "'zclip_warmup': 3",
        ),
        "optimizer-scaler-and-scaler-option",
    ),
    # --- the inner optimizer and the scaler
    case(
        lambda: gradlab.ScaledOptimizer("adam"),
        ("Argument `inner_optimizer`", "a keras.optimizers.Optimizer instance", "Received: inner_optimizer='adam'"),
        "optimizer-inner-string",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(None),
        ("Argument `inner_optimizer`", "a keras.optimizers.Optimizer instance", "Received: inner_optimizer=None"),
        "optimizer-inner-none",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(gradient_accumulation_steps=4)),
        ("cannot wrap", "`gradient_accumulation_steps`", "Received: inner_optimizer.gradient_accumulation_steps=4"),
        "optimizer-inner-accumulates",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(sgd(), scaler="global_norm"),
        ("Argument `scaler`", "a gradlab.Scaler", "Received: scaler='global_norm'"),
        "optimizer-scaler-not-a-scaler",
    ),
    # --- Scaler.set
    case(
        lambda: gradlab.Scaler("norm", 1.0, modes="all").set(mode="autoclip", threshold=500),
        ("Argument `threshold`", "in (0, 100]", "Received: threshold=500", "percentile"),
        "set-autoclip-percentile-500",
    ),
    case(
        lambda: gradlab.Scaler("norm", 500.0, modes="all").set(mode="autoclip"),
        ("Argument `threshold`", "in (0, 100]", "Received: threshold=500.0", "percentile"),
        "set-mode-keeps-threshold-not-allowed",
    ),
    case(
        lambda: gradlab.Scaler().set(mode="glob"),
        ("Unknown mode 'glob'", MODES_LISTED, "Received: mode='glob'"),
        "set-mode-unknown",
    ),
    case(
        lambda: gradlab.Scaler().set(threshold="a"),
        ("Argument `threshold`", "a number", "Received: threshold='a'"),
        "set-threshold-string",
    ),
    case(
        lambda: gradlab.Scaler(transform=identity).set(mode="norm"),
        ("custom `transform`", "no mode or threshold to set", "Received: mode='norm', threshold=None"),
        "set-on-custom-transform",
    ),
    # --- Selective
    case(
        lambda: gradlab.scaler.Selective([]),
        ("Argument `rules`", "at least one (pattern, action) pair", "Received: rules=[]"),
        "selective-rules-empty",
    ),
    case(
        lambda: gradlab.scaler.Selective({}),
        ("Argument `rules`", "at least one (pattern, action) pair", "Received: rules="),
        "selective-rules-empty-dict",
    ),
    case(
        lambda: gradlab.scaler.Selective([("enc(", 0.1)]),
        ("Argument `rules`", "valid regular expressions", "Received: rules[0] pattern='enc('"),
        "selective-bad-regex",
    ),
    case(
        lambda: gradlab.scaler.Selective(["encoder"]),
        ("Argument `rules`", "(pattern, action) pairs", "Received: rules[0]='encoder'"),
        "selective-rule-not-a-pair",
    ),
    case(
        lambda: gradlab.scaler.Selective([("encoder", 0.1, 2.0)]),
        ("Argument `rules`", "(pattern, action) pairs", "Received: rules[0]=('encoder', 0.1, 2.0)"),
        "selective-rule-triple",
    ),
    case(
        lambda: gradlab.scaler.Selective([("encoder", -0.1)]),
        ("Argument `rules[0]`", "in [0, inf)", "Received: rules[0]=-0.1"),
        "selective-negative-factor",
    ),
    case(
        lambda: gradlab.scaler.Selective([("encoder", 0.1)], default=float("nan")),
        ("Argument `default`", "a finite number in [0, inf)", "Received: default=nan"),
        "selective-default-nan",
    ),
    case(
        lambda: gradlab.scaler.Selective([("encoder", "half")]),
        ("Argument `rules[0]`", "callable as fn(grads)", "Received: rules[0]='half'"),
        "selective-action-string",
    ),
    case(
        lambda: gradlab.scaler.Selective([("encoder", True)]),
        ("Argument `rules[0]`", "a finite number or a transform", "Received: rules[0]=True"),
        "selective-action-bool",
    ),
    case(
        lambda: gradlab.scaler.Selective(None),
        ("Argument `rules`", "(pattern, action) pairs", "Received: rules=None"),
        "selective-rules-none",
    ),
    case(
        lambda: gradlab.scaler.Selective("encoder"),
        ("Argument `rules`", "(pattern, action) pairs", "Received: rules='encoder'"),
        "selective-rules-string",
    ),
    case(
        lambda: gradlab.scaler.Selective([("encoder", 0.1)])(grads()),
        ("matches variables by name", "(grads, variables)", "Received: variables=None"),
        "selective-without-variables",
    ),
    # --- Chain and custom transforms
    case(
        lambda: gradlab.scaler.Chain(), ("Chain needs at least one transform", "Received: no transforms"), "chain-empty"
    ),
    case(
        lambda: gradlab.scaler.Chain(gradlab.Scaler(), 3),
        ("Argument `transforms[1]`", "callable as fn(grads) or fn(grads, variables)", "Received: transforms[1]=3"),
        "chain-not-callable",
    ),
    case(
        lambda: gradlab.Scaler(transform="norm"),
        ("Argument `transform`", "callable as fn(grads) or fn(grads, variables)", "Received: transform='norm'"),
        "scaler-transform-not-callable",
    ),
    case(
        lambda: gradlab.Scaler(transform=lambda g: g + g)(grads()),
        ("as long as its input (2)", "Received from", "a list of length 4"),
        "transform-returns-longer-list",
    ),
    case(
        lambda: gradlab.scaler.Chain(identity, lambda g: g[0])(grads()),
        ("must return a list of gradients as long as its input (2)", "Received from", "EagerTensor"),
        "chain-transform-returns-tensor",
    ),
    # --- the pure functions
    case(
        lambda: gradlab.clip_by_value(grads(), -1),
        ("Argument `clipvalue`", "in (0, inf)", "Received: clipvalue=-1"),
        "clip-by-value-negative",
    ),
    case(
        lambda: gradlab.clip_by_value(grads(), None),
        ("Argument `clipvalue`", "a number", "Received: clipvalue=None"),
        "clip-by-value-none",
    ),
    case(
        lambda: gradlab.clip_by_norm(grads(), "a"),
        ("Argument `clipnorm`", "a number", "Received: clipnorm='a'"),
        "clip-by-norm-string",
    ),
    case(
        lambda: gradlab.clip_by_norm(grads(), tf.constant([1.0, 2.0])),
        ("Argument `clipnorm`", "a scalar", "Received: clipnorm=<tf.Tensor"),
        "clip-by-norm-vector-tensor",
    ),
    case(
        lambda: gradlab.clip_by_global_norm(grads(), float("nan")),
        ("Argument `global_clipnorm`", "a finite number in (0, inf)", "Received: global_clipnorm=nan"),
        "clip-by-global-norm-nan",
    ),
    case(
        lambda: gradlab.scaling.normalize(grads(), norm=0),
        ("Argument `norm`", "in (0, inf)", "Received: norm=0"),
        "normalize-norm-zero",
    ),
    case(
        lambda: gradlab.scaling.normalize_global(grads(), eps=0.0),
        ("Argument `eps`", "in (0, inf)", "Received: eps=0.0"),
        "normalize-global-eps-zero",
    ),
    case(
        lambda: gradlab.adaptive_clip(grads(), variables(), clipping=None),
        ("Argument `clipping`", "a number", "Received: clipping=None"),
        "adaptive-clip-clipping-none",
    ),
]


# ---------------------------------------------------------------- silent acceptances found by a user's read
def tiny():
    return gradlab.problems.deep_mlp(depth=2, samples=64)


def trainer(**kwargs):
    p = tiny()
    return gradlab.Trainer(p.model(), p.loss, sgd(), **kwargs), p


def lso_sgd():
    return keras.optimizers.LossScaleOptimizer(sgd())


def fit_with(**kwargs):
    t, p = trainer()
    args = dict(x=p.x, y=p.y, steps=1, progress=False)
    args.update(kwargs)
    return t.fit(**args)


def ds_of(p):
    return tf.data.Dataset.from_tensor_slices((p.x, p.y)).batch(16)


CASES += [
    # --- thresholds given as tensors or variables are checked like numbers
    case(
        lambda: gradlab.clip_by_value(grads(), tf.constant(-1.0)),
        ("Argument `clipvalue`", "in (0, inf)", "Received: clipvalue=-1.0 (a tf.Tensor)"),
        "clip-by-value-tensor-negative",
    ),
    case(
        lambda: gradlab.clip_by_norm(grads(), tf.Variable(0.0)),
        ("Argument `clipnorm`", "in (0, inf)", "Received: clipnorm=0.0 (a tf.Variable)"),
        "clip-by-norm-variable-zero",
    ),
    case(
        lambda: gradlab.clip_by_global_norm(grads(), tf.constant(float("nan"))),
        ("Argument `global_clipnorm`", "a finite number", "Received: global_clipnorm=nan (a tf.Tensor)"),
        "clip-by-global-norm-tensor-nan",
    ),
    case(
        lambda: gradlab.clip_by_norm(grads(), tf.constant([1.0, 2.0])),
        ("Argument `clipnorm`", "a scalar", "Received: clipnorm="),
        "clip-by-norm-tensor-not-scalar",
    ),
    case(
        lambda: gradlab.Scaler("norm", tf.Variable(-1.0)),
        ("Argument `threshold`", "in (0, inf)", "Received: threshold=-1.0 (a tf.Variable)", "clipnorm"),
        "scaler-threshold-variable-negative",
    ),
    case(
        lambda: gradlab.Scaler("autoclip", tf.constant(500.0)),
        ("Argument `threshold`", "in (0, 100]", "Received: threshold=500.0 (a tf.Tensor)", "percentile"),
        "scaler-autoclip-percentile-tensor-500",
    ),
    case(
        lambda: gradlab.Scaler("norm").set(threshold=tf.constant(-3.0)),
        ("Argument `threshold`", "in (0, inf)", "Received: threshold=-3.0 (a tf.Tensor)"),
        "scaler-set-threshold-tensor-negative",
    ),
    case(
        lambda: trainer(scaler=gradlab.Scaler("norm"))[0].scaler.set(threshold=tf.constant(-3.0)),
        ("Argument `threshold`", "in (0, inf)", "Received: threshold=-3.0 (a tf.Tensor)"),
        "trainer-scaler-set-threshold-tensor-negative",
    ),
    # --- optimizers nested the wrong way
    case(
        lambda: gradlab.ScaledOptimizer(lso_sgd()),
        (
            "Argument `inner_optimizer` must not be a LossScaleOptimizer",
            "LossScaleOptimizer(gradlab.ScaledOptimizer(",
            "Received: inner_optimizer=LossScaleOptimizer(SGD)",
        ),
        "optimizer-wraps-loss-scale-optimizer",
    ),
    case(
        lambda: gradlab.ScaledOptimizer(gradlab.ScaledOptimizer(sgd())),
        ("Argument `inner_optimizer` must not be a ScaledOptimizer", "scaled twice", "Received: inner_optimizer="),
        "optimizer-wraps-scaled-optimizer",
    ),
    # --- structure and shapes of gradients and weights
    case(
        lambda: gradlab.clip_by_global_norm([grads()], 1.0),
        ("Argument `grads` must be a flat list", "nested lists are not allowed", "Received: grads[0] of type list"),
        "clip-by-global-norm-nested-list",
    ),
    case(
        lambda: gradlab.Scaler("norm")([tuple(grads())]),
        ("Argument `grads` must be a flat list", "Received: grads[0] of type tuple"),
        "scaler-nested-tuple",
    ),
    case(
        lambda: gradlab.adaptive_clip([tf.constant([[1.0, 2.0]])], [tf.Variable([[1.0], [2.0]])]),
        (
            "Arguments `grads` and `variables` must match",
            "Received: grads[0] of shape (1, 2)",
            "variables[0] of shape (2, 1)",
        ),
        "adaptive-clip-weight-shape",
    ),
    case(
        lambda: gradlab.adaptive_clip([tf.constant([1.0, 2.0])], [None]),
        ("Argument `variables` must hold the weight of every gradient", "Received: variables[0]=None"),
        "adaptive-clip-weight-none",
    ),
    case(
        lambda: gradlab.Scaler("agc")([tf.constant([1.0, 2.0])], [tf.Variable([1.0, 2.0, 3.0])]),
        (
            "Arguments `grads` and `variables` must match",
            "Received: grads[0] of shape (2,)",
            "variables[0] of shape (3,)",
        ),
        "scaler-agc-weight-shape",
    ),
    # --- the Trainer's arguments, checked before anything is traced
    case(
        lambda: gradlab.Trainer(tiny().model(), None, sgd()),
        ("Argument `loss` must be a Keras loss", "Received: loss=None"),
        "trainer-loss-none",
    ),
    case(
        lambda: gradlab.Trainer(tiny().model(), 42, sgd()),
        ("Argument `loss` must be a Keras loss", "Received: loss=42"),
        "trainer-loss-number",
    ),
    case(
        lambda: gradlab.Trainer(tiny().model(), "not_a_loss", sgd()),
        ("Argument `loss` must be a Keras loss, the name of one", "Received: loss='not_a_loss'"),
        "trainer-loss-unknown-name",
    ),
    case(
        lambda: gradlab.Trainer(tiny().model(), keras.losses.MeanSquaredError, sgd()),
        ("Argument `loss` must be a Keras loss", "Received: loss=<class"),
        "trainer-loss-class-not-instance",
    ),
    case(
        lambda: fit_with(y=tiny().y[:30]),
        ("Arguments `x` and `y` must hold the same number of samples", "Received: len(x)=64, len(y)=30"),
        "fit-y-other-length",
    ),
    case(
        lambda: fit_with(x=None),
        ("Arguments `x` and `y` must both be arrays", "Received: x=None"),
        "fit-x-none",
    ),
    case(
        lambda: fit_with(batch_size=0),
        ("Argument `batch_size`", "in [1, inf)", "Received: batch_size=0"),
        "fit-batch-0",
    ),
    case(
        lambda: fit_with(batch_size=-1),
        ("Argument `batch_size`", "in [1, inf)", "Received: batch_size=-1"),
        "fit-batch-neg",
    ),
    case(
        lambda: fit_with(batch_size=2.5),
        ("Argument `batch_size`", "an integer", "Received: batch_size=2.5"),
        "fit-batch-frac",
    ),
    case(
        lambda: fit_with(batch_size="8"),
        ("Argument `batch_size`", "an integer", "Received: batch_size='8'"),
        "fit-batch-str",
    ),
    case(lambda: fit_with(seed="0"), ("Argument `seed`", "an integer", "Received: seed='0'"), "fit-seed-string"),
    case(lambda: fit_with(seed=-1), ("Argument `seed`", "in [0, inf)", "Received: seed=-1"), "fit-seed-negative"),
    case(
        lambda: fit_with(on_flush=42),
        ("Argument `on_flush` must be None or a function", "Received: on_flush=42"),
        "fit-on-flush-not-callable",
    ),
    case(
        lambda: fit_with(shuffle="yes"),
        ("Argument `shuffle`", "True or False", "Received: shuffle='yes'"),
        "fit-shuffle-str",
    ),
    case(
        lambda: fit_with(dataset=ds_of(tiny())),
        ("Pass either `x` and `y` arrays or a `dataset`, not both", "Received: x of type ndarray"),
        "fit-arrays-and-dataset",
    ),
    # --- compare
    case(
        lambda: gradlab.compare(tiny(), [("norm",)]),
        ("Argument `runs` must hold mode names or (mode, threshold) pairs", "Received: runs[0]=('norm',)"),
        "compare-run-one-tuple",
    ),
    case(
        lambda: gradlab.compare(tiny(), "norm"),
        ("Argument `runs` must be a list of mode names", "Received: runs='norm'"),
        "compare-runs-a-string",
    ),
    case(
        lambda: gradlab.compare("nope", ["none"]),
        ("Unknown problem 'nope'", "Expected one of: 'deep_mlp'", "Received: problem='nope'"),
        "compare-problem-unknown-name",
    ),
    case(
        lambda: gradlab.compare(42, ["none"]),
        ("Argument `problem` must be a gradlab.problems.Problem", "Received: problem=42"),
        "compare-problem-number",
    ),
    case(
        lambda: gradlab.compare(tiny(), ["none"], steps=0),
        ("Argument `steps`", "in [1, inf)", "Received: steps=0"),
        "compare-steps-zero",
    ),
]


@pytest.mark.parametrize("call, error, parts", CASES)
def test_bad_input_gets_a_keras_style_error(call, error, parts):
    with pytest.raises(error, match=msg(*parts)):
        call()


def test_there_are_enough_distinct_cases():
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids)
    assert len(ids) >= 35


# ---------------------------------------------------------------- nothing changed
def state(scaler):
    return scaler.mode_name, float(scaler.threshold.numpy())


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param(dict(threshold=-1.0), id="threshold-negative"),
        pytest.param(dict(threshold=float("nan")), id="threshold-nan"),
        pytest.param(dict(threshold="3"), id="threshold-string"),
        pytest.param(dict(mode="glob", threshold=2.0), id="mode-unknown-with-valid-threshold"),
        pytest.param(dict(mode="autoclip", threshold=500), id="autoclip-percentile-500"),
        pytest.param(dict(mode="autoclip"), id="autoclip-keeps-threshold-500"),
        pytest.param(dict(mode="zclip", threshold=0.0), id="zclip-threshold-zero"),
    ],
)
def test_failed_set_changes_neither_mode_nor_threshold(kwargs):
    scaler = gradlab.Scaler("norm", 500.0)
    with pytest.raises(ValueError, match="Received: (mode|threshold)="):
        scaler.set(**kwargs)
    assert state(scaler) == ("norm", 500.0)
    assert int(scaler.mode.numpy()) == gradlab.scaler.MODE_NAMES.index("norm")


def test_failed_set_on_custom_transform_changes_nothing():
    scaler = gradlab.Scaler(transform=identity)
    before = [v.numpy().copy() for v in scaler.variables]
    with pytest.raises(ValueError, match="custom `transform`"):
        scaler.set(mode="value", threshold=2.0)
    assert scaler.mode_name == "custom"
    for b, v in zip(before, scaler.variables):
        np.testing.assert_array_equal(b, v.numpy())


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s: s([tf.constant([1, 2])]), id="integer-grads"),
        pytest.param(lambda s: s(grads(), variables()[:1]), id="lengths-differ"),
        pytest.param(lambda s: s(tf.constant([3.0, 4.0])), id="single-tensor"),
    ],
)
@pytest.mark.parametrize("mode", ["autoclip", "zclip"])
def test_failed_scale_leaves_the_adaptive_state_untouched(call, mode):
    scaler = gradlab.Scaler(mode, None, autoclip_history=4, zclip_warmup=2)
    before = [v.numpy().copy() for v in scaler.variables]
    with pytest.raises(ValueError, match="Argument"):
        call(scaler)
    for b, v in zip(before, scaler.variables):
        np.testing.assert_array_equal(b, v.numpy(), err_msg=v.name)


def test_failed_autoclip_call_leaves_its_history_untouched():
    clip = gradlab.scaling.AutoClip(percentile=50, history_size=3)
    with pytest.raises(ValueError, match="Received: grads of type EagerTensor"):
        clip(tf.constant([1.0]))
    assert int(clip.count.numpy()) == 0
    assert clip.history.numpy().tolist() == [0.0, 0.0, 0.0]


def test_failed_pure_function_leaves_its_input_untouched():
    g = grads()
    before = [t.numpy().copy() for t in g]
    ids = [id(t) for t in g]
    with pytest.raises(ValueError, match="Received: clipnorm='a'"):
        gradlab.clip_by_norm(g, "a")
    assert [id(t) for t in g] == ids
    for b, t in zip(before, g):
        np.testing.assert_array_equal(b, t.numpy())


def test_failed_apply_leaves_weights_and_counters_untouched():
    opt = gradlab.ScaledOptimizer(keras.optimizers.SGD(1.0), mode="global_norm", threshold=1.0)
    w = keras.Variable([1.0, 2.0])
    with pytest.raises(
        ValueError, match=msg("Argument `grads`", "floating-point", "Received: grads[0] with dtype int32")
    ):
        opt.apply([tf.constant([1, 2])], [w])
    assert w.numpy().tolist() == [1.0, 2.0]
    assert int(opt.iterations.numpy()) == 0
    assert int(opt.skipped_steps.numpy()) == 0
    opt.apply([tf.constant([3.0, 4.0])], [w])  # the optimizer still works afterwards
    np.testing.assert_allclose(w.numpy(), [0.4, 1.2], rtol=1e-6)


@pytest.mark.parametrize(
    "inner_kwargs, extra",
    [
        pytest.param(dict(clipnorm=1.0), {}, id="inner-clipnorm"),
        pytest.param(dict(gradient_accumulation_steps=2), {}, id="inner-accumulates"),
        pytest.param({}, dict(mode="glob"), id="mode-unknown"),
        pytest.param({}, dict(clipnorm=1.0), id="clipnorm-argument"),
    ],
)
def test_failed_optimizer_leaves_the_inner_optimizer_untouched(inner_kwargs, extra):
    inner = keras.optimizers.SGD(0.1, loss_scale_factor=128.0, **inner_kwargs)
    config = inner.get_config()
    with pytest.raises(ValueError, match="Received:"):
        gradlab.ScaledOptimizer(inner, **extra)
    assert inner.loss_scale_factor == 128.0
    assert inner.get_config() == config


def test_failed_optimizer_leaves_the_given_scaler_untouched():
    scaler = gradlab.Scaler("value", 2.0)
    with pytest.raises(ValueError, match="Only one clipping option"):
        gradlab.ScaledOptimizer(keras.optimizers.SGD(), scaler=scaler, mode="norm", threshold=9.0)
    assert state(scaler) == ("value", 2.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param(dict(batch_size=0), id="batch-size-zero"),
        pytest.param(dict(seed="0"), id="seed-string"),
        pytest.param(dict(on_flush=42), id="on-flush-not-callable"),
        pytest.param(dict(y=np.zeros((30, 1), np.float32)), id="y-other-length"),
        pytest.param(dict(dataset="ds"), id="dataset-not-a-dataset"),
    ],
)
def test_failed_fit_trains_nothing_and_traces_nothing(kwargs):
    """The arguments are checked before a step is traced or run: weights, optimizer and history stay."""
    t, p = trainer()
    before = [v.numpy().copy() for v in t.variables]
    args = dict(x=p.x, y=p.y, steps=3, progress=False)
    args.update(kwargs)
    if "dataset" in kwargs:
        args.update(x=None, y=None)
    with pytest.raises(ValueError, match="Received:"):
        t.fit(**args)
    for b, v in zip(before, t.variables):
        np.testing.assert_array_equal(b, v.numpy())
    assert int(t.optimizer.iterations.numpy()) == 0
    assert len(t.history) == 0 and t.tracing_count == 0
    assert len(t.fit(p.x, p.y, steps=2, batch_size=16, progress=False)) == 2  # and it still trains


def test_failed_set_with_a_tensor_changes_nothing():
    scaler = gradlab.Scaler("norm", 500.0)
    with pytest.raises(ValueError, match=msg("Received: threshold=-3.0 (a tf.Tensor)")):
        scaler.set(mode="value", threshold=tf.constant(-3.0))
    assert state(scaler) == ("norm", 500.0)


def test_tensor_threshold_in_a_graph_fails_naming_the_argument():
    """Inside tf.function the value is only known when the graph runs: an assertion names the argument."""
    clip = tf.function(lambda t: gradlab.clip_by_value(grads(), t))
    assert clip(tf.constant(1.0))[0].numpy().tolist() == [1.0, 1.0]
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=msg("Argument `clipvalue` must be a finite number in (0, inf)")
    ):
        clip(tf.constant(-1.0))
