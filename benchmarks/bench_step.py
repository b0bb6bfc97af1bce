"""Side-by-side benchmark: gradlab vs what a user would otherwise run.

    python benchmarks/bench_step.py            (or: make bench)

Prints, measured in one run with interleaved repetitions and medians:
1. per-step time of gradlab's instrumented Trainer step (recording every
   statistic) / ``model.fit`` with the same built-in clipping
   (``global_clipnorm``), same ~1M-parameter MLP, batch 256, same data;
   with and without XLA, and with 10 steps per call; a hand-written
   ``tf.function`` step without statistics is shown beside them;
2. ``gradlab.clip_by_global_norm`` / ``tf.clip_by_global_norm`` over 100 tensors
   of 10M parameters in all, and the same clip / one elementwise pass;
3. the tracing count after 100 changes of mode and threshold during a run.
Not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import gradlab  # noqa: E402


def mlp():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((256,)),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(768, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def interleaved(fns: dict, reps: int) -> dict:
    """Run each function once per round, ``reps`` rounds; return median seconds."""
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def dataset():
    """The benchmark's data: 8 batches of 256 samples for the MLP, repeated."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256 * 8, 256)).astype("float32")
    y = rng.integers(0, 10, size=len(x)).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(256, drop_remainder=True).repeat().prefetch(2)


def hand_step(jit: bool, ds):
    """What a user would write without gradlab (GradientTape, tf.clip_by_global_norm, no statistics):
    ``run(n)`` trains n steps, each call fetching its batch from an iterator, as the Trainer does."""
    m = mlp()
    opt = keras.optimizers.SGD(0.01)
    opt.build(m.trainable_variables)

    def step(x, y):
        with tf.GradientTape() as tape:
            value = LOSS(y, m(x, training=True))
        grads, _ = tf.clip_by_global_norm(tape.gradient(value, m.trainable_variables), 1.0)
        opt.apply(grads, m.trainable_variables)

    return looped(step, jit, ds)


def looped(step, jit: bool, ds):
    """``run(n)``: n calls of ``step(x, y)``, compiled (XLA optional) inside a function that fetches
    the batch from an iterator over ``ds``, as the Trainer and model.fit do."""
    iterator = iter(ds)
    inner = tf.function(step, jit_compile=jit)
    call = tf.function(lambda it: inner(*next(it)))

    def run(n):
        for _ in range(n):
            call(iterator)

    return run


def bench_step(steps: int, reps: int) -> list[tuple[str, float]]:
    ds, loss = dataset(), LOSS

    def fit_fn(jit):
        m = mlp()
        m.compile(keras.optimizers.SGD(0.01, global_clipnorm=1.0), loss, jit_compile=jit)
        return lambda: m.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)

    def hand_fn(jit):
        run = hand_step(jit, ds)
        return lambda: run(steps)

    def gradlab_fn(jit, per_call=1):
        m = mlp()
        t = gradlab.Trainer(
            m,
            loss,
            keras.optimizers.SGD(0.01),
            gradlab.Scaler("global_norm", 1.0),
            jit_compile=jit,
            steps_per_call=per_call,
        )
        return lambda: t.fit(dataset=ds, steps=steps, progress=False)

    fns = {
        "fit": fit_fn(False),
        "hand": hand_fn(False),
        "gradlab": gradlab_fn(False),
        "fit_xla": fit_fn(True),
        "hand_xla": hand_fn(True),
        "gradlab_xla": gradlab_fn(True),
        "gradlab_10": gradlab_fn(False, 10),
    }
    for fn in fns.values():  # trace and warm up
        fn()
    t = interleaved(fns, reps)
    ms = {k: v / steps * 1e3 for k, v in t.items()}
    print(f"\n## Step: ~{mlp().count_params() / 1e6:.2f}M-parameter MLP, batch 256, {steps} steps x {reps} rounds")
    print("| run | ms/step | / model.fit | / hand-written |\n|---|---|---|---|")
    rows = [
        ("model.fit, global_clipnorm", "fit", "fit", "hand"),
        ("hand-written tf.function step, tf.clip_by_global_norm, no statistics", "hand", "fit", "hand"),
        ("gradlab Trainer, global_norm (all statistics)", "gradlab", "fit", "hand"),
        ("model.fit, global_clipnorm, XLA", "fit_xla", "fit_xla", "hand_xla"),
        ("hand-written step, XLA", "hand_xla", "fit_xla", "hand_xla"),
        ("gradlab Trainer, XLA", "gradlab_xla", "fit_xla", "hand_xla"),
        ("gradlab Trainer, 10 steps per call", "gradlab_10", "fit", "hand"),
    ]
    rows = [(name, ms[k], ms[k] / ms[fit], ms[k] / ms[hand]) for name, k, fit, hand in rows]
    for name, step_ms, to_fit, to_hand in rows:
        print(f"| {name} | {step_ms:.2f} | {to_fit:.3f} | {to_hand:.3f} |")
    print(
        f"goals: Trainer / hand-written <= 1.05: {ms['gradlab'] / ms['hand']:.3f}, XLA {ms['gradlab_xla'] / ms['hand_xla']:.3f}; "
        f"Trainer XLA / model.fit XLA <= 0.90: {ms['gradlab_xla'] / ms['fit_xla']:.3f}"
    )
    return rows


def bench_clip(reps: int):
    rng = np.random.default_rng(0)
    grads = [tf.constant(rng.normal(size=(100_000,)).astype("float32")) for _ in range(100)]
    ours = tf.function(lambda g: gradlab.clip_by_global_norm(g, 1.0))
    theirs = tf.function(lambda g: tf.clip_by_global_norm(g, 1.0)[0])
    one_pass = tf.function(lambda g: [t * 2.0 for t in g])
    fns = {"gradlab": lambda: ours(grads), "tf": lambda: theirs(grads), "pass": lambda: one_pass(grads)}
    for fn in fns.values():
        fn()
    t = interleaved(fns, reps)
    print("\n## clip_by_global_norm: 100 tensors, 10M parameters")
    print("| run | ms | ratio |\n|---|---|---|")
    print(f"| tf.clip_by_global_norm | {t['tf'] * 1e3:.2f} | 1.00 |")
    print(f"| gradlab.clip_by_global_norm | {t['gradlab'] * 1e3:.2f} | {t['gradlab'] / t['tf']:.2f} |")
    print(f"| one elementwise pass (x * 2) | {t['pass'] * 1e3:.2f} | gradlab / pass = {t['gradlab'] / t['pass']:.2f} |")


def bench_tracing(changes: int):
    p = gradlab.problems.deep_mlp(depth=3, samples=256)
    scaler = gradlab.Scaler("global_norm", 1.0, modes="all")  # autoclip and zclip keep a state: built for them
    t = gradlab.Trainer(p.model(), p.loss, keras.optimizers.SGD(0.01), scaler)
    settings = [("value", 0.5), ("norm", 1.0), ("global_norm", 2.0), ("autoclip", 10.0), ("zclip", 2.5), ("agc", 0.01)]
    for i in range(changes):
        mode, threshold = settings[i % len(settings)]
        t.scaler.set(mode=mode, threshold=threshold * (1 + i / changes))
        t.fit(p.x, p.y, steps=1, batch_size=32, progress=False)
    followed = np.allclose(t.history.threshold[-1], settings[(changes - 1) % len(settings)][1] * (2 - 1 / changes))
    print(f"\n## Tracing: {changes} changes of mode and threshold during a run")
    print(f"tracing count: {t.tracing_count} (recorded threshold follows the changes: {followed})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="steps per timed run")
    parser.add_argument("--reps", type=int, default=7, help="interleaved rounds")
    args = parser.parse_args()
    gpus = tf.config.list_physical_devices("GPU")
    print(
        f"# gradlab benchmark: TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"device {'GPU: ' + gpus[0].name if gpus else 'CPU'} ({os.cpu_count()} CPU cores)"
    )
    bench_step(args.steps, args.reps)
    bench_clip(args.reps * 3)
    bench_tracing(100)


if __name__ == "__main__":
    main()
