"""Where a training step's time goes: gradlab's instrumented step beside a hand-written one.

    python benchmarks/profile_step.py            (or: make profile)

The same ~1M-parameter MLP, batch 256 and data as ``bench_step.py``. Three steps, each a
``tf.function`` that fetches its batch from an iterator, without and with XLA:

- ``hand``: what a user writes without gradlab (``GradientTape``, ``tf.clip_by_global_norm``,
  ``optimizer.apply``), no statistics;
- ``scaled``: gradlab's instrumented update without a recorder (``Scaler("global_norm")``:
  norms, decision, scaling, non-finite check), no statistics;
- ``no_ratio``: the same instrumented update writing every statistic to a ``Recorder`` except
  the update-to-weight ratio (no weights' norms before the step, no change measured);
- ``trainer``: ``gradlab.Trainer``, every statistic recorded (the weights' norms before the
  step, each variable's change, per-layer norms, one row written to the buffer).

1. Per-step time, interleaved rounds, medians: the ratio of each to ``hand``; the
   differences split the Trainer's extra cost into scaling, the other statistics and the
   update-to-weight ratio.
2. An op-by-op profile (``tf.profiler``) of ``hand`` and ``trainer``: milliseconds per step
   by op type (TensorFlow) or by HLO instruction kind (XLA thunks), and the ops the Trainer
   runs that the hand-written step does not, largest first.
Not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import re
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

# The same model, data, loss and hand-written step as the step benchmark (run from benchmarks/).
from bench_step import LOSS, dataset, hand_step, interleaved, looped, mlp  # noqa: E402

import gradlab  # noqa: E402
from gradlab import _internals  # noqa: E402
from gradlab.training.recording import Recorder, Update  # noqa: E402
from gradlab.training.update import instrumented_update  # noqa: E402


def hand(jit):
    return hand_step(jit, dataset())


def scaled(jit, recorder=False):
    """gradlab's instrumented update in a hand-written step; with ``recorder``, a Recorder
    gets every statistic but the update-to-weight ratio (no weights' norms, no change)."""
    m, opt, scaler = mlp(), keras.optimizers.SGD(0.01), gradlab.Scaler("global_norm", 1.0)
    opt.build(m.trainable_variables)
    rec, n = (Recorder(m.trainable_variables) if recorder else None), len(m.trainable_variables)

    def step(x, y):
        with tf.GradientTape() as tape:
            value = LOSS(y, m(x, training=True))
        grads = tape.gradient(value, m.trainable_variables)
        info = instrumented_update(scaler, grads, m.trainable_variables, lambda g: opt.apply(g, m.trainable_variables))
        if rec is not None:
            rec.record(loss=value, info=info, update=Update(tf.ones([n]), tf.zeros([n])), loss_scale=1.0)

    run = looped(step, jit, dataset())

    def run_and_empty(k):  # empties the buffer as Trainer.fit does
        run(k)
        if rec is not None:
            rec.flush()

    return run_and_empty


def trainer(jit):
    t = gradlab.Trainer(mlp(), LOSS, keras.optimizers.SGD(0.01), gradlab.Scaler("global_norm", 1.0), jit_compile=jit)
    ds = dataset()
    return lambda n: t.fit(dataset=ds, steps=n, progress=False)


STEPS = {"hand": hand, "scaled": scaled, "no_ratio": functools.partial(scaled, recorder=True), "trainer": trainer}


def timings(runs: dict, steps: int, reps: int) -> dict:
    """Median ms per step of each run, measured in interleaved rounds (bench_step.interleaved)."""
    seconds = interleaved({name: functools.partial(run, steps) for name, run in runs.items()}, reps)
    return {name: t / steps * 1e3 for name, t in seconds.items()}


def kind(event: str, xla: bool) -> str:
    """The op type of a TensorFlow event ("name:Type"), or the HLO instruction kind of an XLA thunk."""
    if not xla:
        return event.rsplit(":", 1)[-1]
    return re.sub(r"[._]\d+$", "", event.split(":")[0])


def profile(run, steps: int) -> dict:
    """ms per step in each op of ``run(steps)`` (traced and warm before)."""
    logdir = tempfile.mkdtemp(prefix="gradlab-profile-")
    tf.profiler.experimental.start(logdir)
    try:
        run(steps)
    finally:
        tf.profiler.experimental.stop()
    return {k: v * 1e3 / steps for k, v in _internals.profiled_op_times(logdir).items()}


def table(rows, header):
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="steps per timed run")
    parser.add_argument("--reps", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--top", type=int, default=12, help="rows of each op table")
    args = parser.parse_args()
    print(
        f"# Where the step's time goes: TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} cores"
    )
    for jit in (False, True):
        runs = {name: make(jit) for name, make in STEPS.items()}
        for run in runs.values():  # trace, compile, warm up
            run(3)
        ms = timings(runs, args.steps, args.reps)
        xla = ", XLA" if jit else ""
        print(f"\n## Per step{xla}: {args.steps} steps x {args.reps} interleaved rounds, medians")
        table(
            [[k, f"{v:.2f}", f"{v / ms['hand']:.3f}", f"{v - ms['hand']:+.2f}"] for k, v in ms.items()],
            ["step", "ms/step", "/ hand", "ms over hand"],
        )
        print(
            f"scaling (scaled - hand): {ms['scaled'] - ms['hand']:+.2f} ms; "
            f"the other statistics (no_ratio - scaled): {ms['no_ratio'] - ms['scaled']:+.2f} ms; "
            f"the update-to-weight ratio (trainer - no_ratio): {ms['trainer'] - ms['no_ratio']:+.2f} ms"
        )
        ops = {name: profile(runs[name], args.steps) for name in ("hand", "trainer")}
        by_kind = {}
        for name, times in ops.items():
            total = collections.Counter()
            for event, t in times.items():
                total[kind(event, jit)] += t
            by_kind[name] = total
        print(f"\n### Op by op{xla} (tf.profiler, ms per step, summed over the compute threads)")
        print(f"in ops: hand {sum(ops['hand'].values()):.2f}, trainer {sum(ops['trainer'].values()):.2f}")
        kinds = sorted(set(by_kind["hand"]) | set(by_kind["trainer"]), key=lambda k: -by_kind["trainer"][k])
        table(
            [
                [k, f"{by_kind['hand'][k]:.3f}", f"{by_kind['trainer'][k]:.3f}"]
                + [f"{by_kind['trainer'][k] - by_kind['hand'][k]:+.3f}"]
                for k in kinds[: args.top]
            ],
            ["op" if not jit else "HLO kind", "hand", "trainer", "difference"],
        )
        extra = sorted(((k, by_kind["trainer"][k] - by_kind["hand"][k]) for k in kinds), key=lambda kv: -abs(kv[1]))[
            : args.top
        ]
        print(f"\nLargest differences{xla}: " + ", ".join(f"{k} {d:+.3f}" for k, d in extra))


if __name__ == "__main__":
    main()
