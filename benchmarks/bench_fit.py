"""Side-by-side benchmark: ``model.fit`` with gradlab's ScaledOptimizer against Keras' own clipping.

    python benchmarks/bench_fit.py            (in: make bench)

What a practitioner would otherwise write is ``Adam(global_clipnorm=1.0)``. For each model, with
and without XLA (``jit_compile="auto"``, Keras' default, which compiles with XLA on TensorFlow, and
``jit_compile=False``), three compiled models train side by side in one process:

- ``keras``: ``Adam(1e-3, global_clipnorm=1.0)``;
- ``scaled``: ``ScaledOptimizer(Adam(1e-3), "global_norm", 1.0)``;
- ``scaled+stats``: the same, with the :class:`~gradlab.GradientStats` callback recording every statistic.

Each round calls ``fit`` once per variant (interleaved), for ``--steps`` steps. A callback takes
``time.perf_counter()`` at every ``on_train_batch_end``; the per-step time of a round is the median
of the differences after the first ``WARM`` steps (``fit``'s set-up, about 50 ms, is left out), and the
printed figure is the median over rounds. Ratios are against ``keras`` in the same run.
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

WARM = 4  # steps of each fit call left out of its timing
BATCH = 64


def mobilenet():
    """MobileNetV3Small without pretrained weights, 32x32 inputs, 10 classes (about 150 tensors)."""
    model = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), weights=None, classes=10, include_preprocessing=False, classifier_activation=None
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * 8, 32, 32, 3)).astype("float32")
    return model, x, rng.integers(0, 10, size=len(x))


def transformer(blocks: int = 4, vocab: int = 2000, length: int = 32, dim: int = 64, heads: int = 4):
    """A Transformer encoder classifier: token and position embeddings, ``blocks`` blocks of
    MultiHeadAttention + feed-forward with LayerNorm, pooled into 2 classes (keras-io's text classifier)."""
    tokens = keras.Input((length,), dtype="int32")
    positions = keras.ops.arange(length)
    h = keras.layers.Embedding(vocab, dim)(tokens) + keras.layers.Embedding(length, dim)(positions)
    for _ in range(blocks):
        a = keras.layers.MultiHeadAttention(heads, dim // heads)(h, h)
        h = keras.layers.LayerNormalization(epsilon=1e-6)(h + a)
        f = keras.layers.Dense(dim, activation="relu")(keras.layers.Dense(4 * dim, activation="relu")(h))
        h = keras.layers.LayerNormalization(epsilon=1e-6)(h + f)
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h))
    rng = np.random.default_rng(0)
    x = rng.integers(0, vocab, size=(BATCH * 8, length)).astype("int32")
    return keras.Model(tokens, out), x, rng.integers(0, 2, size=len(x))


def deep_mlp(depth: int = 12, width: int = 384):
    """A ``depth``-layer GELU MLP of width ``width`` (the Trainer benchmark's model with many tensors)."""
    model = keras.Sequential(
        [keras.Input((width,))]
        + [keras.layers.Dense(width, activation="gelu") for _ in range(depth)]
        + [keras.layers.Dense(10)]
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * 8, width)).astype("float32")
    return model, x, rng.integers(0, 10, size=len(x))


MODELS = {"MobileNetV3Small": mobilenet, "Transformer encoder": transformer, "12-layer MLP": deep_mlp}


class StepTimes(keras.callbacks.Callback):
    """``perf_counter`` at every batch end; ``median`` of the differences after ``WARM`` steps."""

    def on_train_begin(self, logs=None):
        self.stamps = []

    def on_train_batch_end(self, batch, logs=None):
        self.stamps.append(time.perf_counter())

    def median(self) -> float:
        return statistics.median(np.diff(self.stamps[WARM:]))


def variants(build, jit):
    """The three compiled models of one row, each ``run(steps)`` returning seconds a step."""
    out = {}
    for name in ("keras", "scaled", "scaled+stats"):
        keras.utils.set_random_seed(0)
        model, x, y = build()
        if name == "keras":
            opt = keras.optimizers.Adam(1e-3, global_clipnorm=1.0)
        else:
            opt = gradlab.ScaledOptimizer(keras.optimizers.Adam(1e-3), "global_norm", 1.0)
        model.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH, drop_remainder=True).repeat().prefetch(2)
        timer = StepTimes()
        callbacks = [timer, gradlab.GradientStats()] if name == "scaled+stats" else [timer]

        def run(steps, model=model, ds=ds, timer=timer, callbacks=callbacks):
            model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=callbacks, shuffle=False)
            return timer.median()

        out[name] = run
    return out


def bench(models, steps: int, rounds: int) -> None:
    print("| model | jit_compile | keras ms/step | scaled / keras | scaled+stats / keras |\n|---|---|---|---|---|")
    for label in models:
        for jit in ("auto", False):
            runs = variants(MODELS[label], jit)
            for run in runs.values():  # trace (and compile) outside the timing
                run(WARM + 2)
            times = {k: [] for k in runs}
            for _ in range(rounds):
                for k, run in runs.items():
                    times[k].append(run(steps))
            ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            print(
                f"| {label} | {jit!r} | {ms['keras']:.2f} | {ms['scaled'] / ms['keras']:.3f} | "
                f"{ms['scaled+stats'] / ms['keras']:.3f} |",
                flush=True,
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=24, help="steps per fit call")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    gpus = tf.config.list_physical_devices("GPU")
    print(
        f"# model.fit: ScaledOptimizer against Keras' own global_clipnorm (Adam, batch {BATCH}). "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"{'GPU: ' + gpus[0].name if gpus else 'CPU'} ({os.cpu_count()} CPU cores); "
        f"{args.steps} steps x {args.rounds} interleaved rounds, medians"
    )
    print("goals: scaled / keras <= 1.00; scaled+stats / keras <= 1.05\n")
    bench(args.models, args.steps, args.rounds)


if __name__ == "__main__":
    main()
