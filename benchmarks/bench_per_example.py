"""Side-by-side benchmark: gradlab's per-example (DP-SGD) step vs the ordinary Trainer step.

    python benchmarks/bench_per_example.py [--steps 20] [--reps 7] [--batch 64]

Same MLP (~0.2M parameters), same batch, same data, measured in one run with
interleaved repetitions and medians:

1. the ordinary ``Trainer`` step (mean gradient, ``global_norm`` clipping, all statistics);
2. ``Trainer(l2_norm_clip=1.0)``: per-example gradients with ``tf.vectorized_map``, each
   clipped, summed, divided by the batch size, then the same instrumented update;
3. the same with ``noise_multiplier=1.0``;
4. the ``tf.map_fn`` fallback (one example after another), forced;

and prints each one's ms/step and ratio to the ordinary step. Not a test: timings
depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_step import interleaved  # noqa: E402  (the step benchmark's interleaved rounds and medians)

import gradlab  # noqa: E402


def mlp():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((256,)),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed run")
    parser.add_argument("--reps", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    args = parser.parse_args()
    gpus = tf.config.list_physical_devices("GPU")
    print(
        f"# gradlab per-example benchmark: TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"device {'GPU: ' + gpus[0].name if gpus else 'CPU'} ({os.cpu_count()} CPU cores)"
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch * 8, 256)).astype("float32")
    y = rng.integers(0, 10, size=len(x)).astype("int32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch, drop_remainder=True).repeat().prefetch(2)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def trainer(map_fn=False, **per_example):
        t = gradlab.Trainer(mlp(), loss, keras.optimizers.SGD(0.01), gradlab.Scaler("global_norm", 1.0), **per_example)
        if map_fn:
            t.per_example.vectorized = False
        return lambda: t.fit(dataset=ds, steps=args.steps, progress=False)

    fns = {
        "ordinary": trainer(),
        "per_example": trainer(l2_norm_clip=1.0),
        "per_example_noise": trainer(l2_norm_clip=1.0, noise_multiplier=1.0),
        "map_fn": trainer(map_fn=True, l2_norm_clip=1.0),
    }
    for fn in fns.values():  # trace and warm up
        fn()
    t = interleaved(fns, args.reps)
    ms = {k: v / args.steps * 1e3 for k, v in t.items()}
    params = mlp().count_params()
    print(f"\n## Step: ~{params / 1e6:.2f}M-parameter MLP, batch {args.batch}, {args.steps} steps x {args.reps} rounds")
    print("| run | ms/step | ratio |\n|---|---|---|")
    rows = [
        ("Trainer, ordinary step (mean gradient, global_norm 1.0)", "ordinary"),
        ("Trainer(l2_norm_clip=1.0): per-example, tf.vectorized_map", "per_example"),
        ("Trainer(l2_norm_clip=1.0, noise_multiplier=1.0)", "per_example_noise"),
        ("Trainer(l2_norm_clip=1.0), tf.map_fn fallback (forced)", "map_fn"),
    ]
    for name, key in rows:
        print(f"| {name} | {ms[key]:.2f} | {ms[key] / ms['ordinary']:.2f} |")


if __name__ == "__main__":
    main()
