"""Run in a subprocess by tests/test_distributed.py: gradlab under MirroredStrategy on two
logical CPU devices against one device, for every mode; prints one JSON object.

Logical devices must be configured before TensorFlow starts, hence a process of its own.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import gradlab  # noqa: E402
from gradlab.explore.inspect import max_diff  # noqa: E402
from gradlab.harness.distributed import fit_model, global_batches, logical_cpus  # noqa: E402

logical_cpus(2)  # before TensorFlow's first operation

STEPS, BATCH = 20, 32
THRESHOLDS = {
    "value": 0.01,
    "norm": 0.05,
    "global_norm": 0.1,
    "normalize": 0.1,
    "global_normalize": 0.1,
    "agc": 0.01,
    "autoclip": 50.0,
    "zclip": 2.5,
    "block_rms": 0.001,
    "trust_ratio": 0.01,
    "adagc": 0.5,
    "none": None,
}
problem = gradlab.problems.deep_mlp(depth=3, width=16, samples=STEPS * BATCH)
data = global_batches(problem, BATCH)


def trainer_runs(strategy):
    """Every mode through one Trainer (reset between modes): weights and history per mode."""
    with strategy.scope():
        scaler = gradlab.Scaler("global_norm", 0.1, zclip_warmup=5, modes="all")
        t = gradlab.Trainer(problem.model(), problem.loss, keras.optimizers.SGD(0.05), scaler)
        out = {}
        for mode, threshold in THRESHOLDS.items():
            t.reset()
            scaler.set(mode=mode, threshold=threshold)
            h = t.fit(dataset=data, steps=STEPS, progress=False)
            out[mode] = dict(
                weights=[w.copy() for w in t.model.get_weights()],
                history=h,
                autoclip_count=int(scaler.autoclip.count.numpy()),
                zclip_count=int(scaler.zclip.count.numpy()),
            )
        return out


def fit_weights(strategy, optimizer):
    m = fit_model(problem, optimizer, strategy, batch_size=BATCH)
    return m.get_weights(), m


one = tf.distribute.get_strategy()
two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
single, mirrored = trainer_runs(one), trainer_runs(two)
result = {"replicas": two.num_replicas_in_sync, "trainer": {}, "fit": {}}
for mode in THRESHOLDS:
    s, m = single[mode], mirrored[mode]
    result["trainer"][mode] = dict(
        weights=max_diff(s["weights"], m["weights"]),
        norm_before=float(
            np.max(np.abs(s["history"].norm_before - m["history"].norm_before) / s["history"].norm_before)
        ),
        clip_rate=[s["history"].clip_rate, m["history"].clip_rate],
        loss=float(np.max(np.abs(s["history"].loss - m["history"].loss) / np.abs(s["history"].loss))),
        counts=[s["autoclip_count"], m["autoclip_count"], s["zclip_count"], m["zclip_count"]],
        steps=len(m["history"]),
    )
for mode in ("global_norm", "zclip", "agc"):

    def opt(mode=mode):
        return gradlab.ScaledOptimizer(keras.optimizers.SGD(0.05), mode, THRESHOLDS[mode], zclip_warmup=5)

    (w1, _), (w2, model) = fit_weights(one, opt), fit_weights(two, opt)
    result["fit"][mode] = dict(
        weights=max_diff(w1, w2),
        zclip_count=int(model.optimizer.scaler.zclip.count.numpy()) if model.optimizer.scaler.zclip is not None else 0,
    )


def fit_stats(strategy):
    """GradientStats over one epoch of model.fit: the rows a user gets under ``strategy``."""
    with strategy.scope():
        model = problem.model()
        model.compile(gradlab.ScaledOptimizer(keras.optimizers.SGD(0.05), "global_norm", 0.1), problem.loss)
    stats = gradlab.GradientStats()
    model.fit(problem.x, problem.y, batch_size=BATCH, shuffle=False, verbose=0, callbacks=[stats])
    return stats.history


s, m = fit_stats(one), fit_stats(two)
result["fit_stats"] = dict(
    rows=[len(s), len(m)],
    loss=float(np.max(np.abs(s.loss - m.loss) / np.abs(s.loss))) if len(s) == len(m) else float("inf"),
    norm=float(np.max(np.abs(s.norm_before - m.norm_before) / s.norm_before)) if len(s) == len(m) else float("inf"),
)
w1, _ = fit_weights(one, lambda: keras.optimizers.SGD(0.05, global_clipnorm=0.1))
w2, _ = fit_weights(two, lambda: keras.optimizers.SGD(0.05, global_clipnorm=0.1))
result["keras_global_clipnorm"] = max_diff(w1, w2)
json.dump(result, sys.stdout)
