"""Side-by-side benchmark: the advisor's probe against the instrumented Trainer it is built on.

    python benchmarks/bench_advise.py            (--steps 10,160 --reps 3)

Prints, measured in one run with interleaved repetitions and medians, the cost per
training step of

1. ``gradlab.advise(...)`` as a whole (probe, statistics, recommendations, ZClip and
   AutoClip run over the probe's norms, warnings), and its probe's training steps alone;
2. gradlab's instrumented ``Trainer`` with ``global_norm`` clipping (what
   ``benchmarks/bench_step.py`` measures against ``model.fit``),

on the same ~1M-parameter MLP, batch 256, same data. Each cost per step is the
difference between a long and a short run divided by the difference in steps, so
that building the model and tracing the step (paid once by both) cancel out.
The ratio advise / Trainer is the benchmark line: at most about 1 means the probe
costs no more per step than the Trainer. Not a test: timings depend on the machine
and its load.
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
from bench_step import mlp  # noqa: E402  (the same ~1M-parameter MLP as the step benchmark)

import gradlab  # noqa: E402
from gradlab.explore.advise import advise  # noqa: E402


def bench_advise(short: int, long: int, reps: int) -> list[tuple[str, float, float]]:
    """Per-step milliseconds of advise() (whole, and its probe) and of the Trainer; and their ratios."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256 * 8, 256)).astype("float32")
    y = rng.integers(0, 10, size=len(x)).astype("int32")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = mlp()

    def run_advise(steps):
        t0 = time.perf_counter()
        a = advise(model, x, y, loss=loss, optimizer=lambda: keras.optimizers.SGD(0.01), steps=steps, batch_size=256)
        return time.perf_counter() - t0, a.probe_seconds

    def run_trainer(steps):
        t0 = time.perf_counter()
        t = gradlab.Trainer(mlp(), loss, keras.optimizers.SGD(0.01), gradlab.Scaler("global_norm", 1.0))
        start = time.perf_counter()
        t.fit(x, y, steps=steps, batch_size=256, progress=False)
        end = time.perf_counter()
        return end - t0, end - start

    runs = {"advise": run_advise, "trainer": run_trainer}
    for fn in runs.values():  # warm up: first traces, TensorFlow's own start-up
        fn(short)
    times = {(k, n): [] for k in runs for n in (short, long)}
    for _ in range(reps):  # interleaved: the machine's load falls on every run alike
        for k, fn in runs.items():
            for n in (short, long):
                times[(k, n)].append(fn(n))

    def per_step(k, i):
        a = statistics.median(t[i] for t in times[(k, long)])
        b = statistics.median(t[i] for t in times[(k, short)])
        return (a - b) / (long - short) * 1e3

    whole, probe = per_step("advise", 0), per_step("advise", 1)
    trainer, trainer_fit = per_step("trainer", 0), per_step("trainer", 1)
    print(
        f"\n## Advisor probe: ~{model.count_params() / 1e6:.2f}M-parameter MLP, batch 256, "
        f"({long} - {short}) steps, {reps} interleaved rounds, medians"
    )
    print("| run | ms/step | ratio |\n|---|---|---|")
    rows = [
        ("gradlab Trainer, global_norm (all statistics), fit", trainer_fit, 1.0),
        ("gradlab Trainer, global_norm, built and fit", trainer, trainer / trainer_fit),
        ("advise(): the probe's training steps", probe, probe / trainer_fit),
        ("advise(): whole (probe, statistics, recommendations, warnings)", whole, whole / trainer_fit),
    ]
    for name, ms, ratio in rows:
        print(f"| {name} | {ms:.2f} | {ratio:.2f} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="10,160", help="short,long: steps of the two timed runs")
    parser.add_argument("--reps", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()
    short, long = (int(s) for s in args.steps.split(","))
    if not 1 <= short < long:
        parser.error(f"Argument `--steps` must be short,long with 1 <= short < long. Received: --steps={args.steps!r}")
    gpus = tf.config.list_physical_devices("GPU")
    print(
        f"# gradlab advisor benchmark: TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"device {'GPU: ' + gpus[0].name if gpus else 'CPU'} ({os.cpu_count()} CPU cores)"
    )
    bench_advise(short, long, args.reps)


if __name__ == "__main__":
    main()
