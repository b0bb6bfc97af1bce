"""Training across devices and worker processes: the harness notebook 08 and the tests share.

- :func:`logical_cpus` splits the CPU into logical devices (before TensorFlow starts).
- :func:`fit_model` and :func:`trainer_run` train one problem under a strategy, with
  ``model.fit`` or gradlab's :class:`~gradlab.Trainer`, on the same global batches.
- :func:`tf_config`, :func:`free_port` and :func:`run_workers` run a
  ``MultiWorkerMirroredStrategy`` cluster as processes on this machine (loopback ports);
  each process runs :func:`worker` (``python -m gradlab.harness.distributed``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile

import keras
import tensorflow as tf

from gradlab import _checks
from gradlab.problems.builtin import Problem, deep_mlp
from gradlab.scaler.scaler import Scaler
from gradlab.training.trainer import Trainer

__all__ = [
    "fit_model",
    "free_port",
    "global_batches",
    "logical_cpus",
    "run_workers",
    "tf_config",
    "trainer_run",
    "try_model_fit",
    "worker",
    "worker_problem",
]


def logical_cpus(n: int) -> list[str]:
    """Split the first CPU into ``n`` logical devices; return the logical CPU device names.

    Only possible before TensorFlow initialises its devices (its first operation); afterwards
    the devices it already has are kept and returned.
    """
    n = _checks.size("n", n)
    try:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:  # devices already initialised: keep them
        pass
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def global_batches(problem: Problem, batch_size: int = 32, shard_by_data: bool = False) -> tf.data.Dataset:
    """The problem's data in order, in global batches of ``batch_size`` (the last partial one dropped).

    ``shard_by_data`` sets ``AutoShardPolicy.DATA``, so that under ``MultiWorkerMirroredStrategy``
    every worker reads the same batches and takes its part of each.
    """
    ds = tf.data.Dataset.from_tensor_slices((problem.x, problem.y)).batch(batch_size, drop_remainder=True)
    if shard_by_data:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        ds = ds.with_options(options)
    return ds


def fit_model(problem: Problem, make_optimizer, strategy=None, batch_size: int = 32, epochs: int = 1) -> keras.Model:
    """The problem's model built in ``strategy.scope()``, trained with ``model.fit`` (no shuffling).

    ``make_optimizer()`` returns a fresh optimizer; ``strategy`` None: the default (one device).
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = problem.model()
        model.compile(make_optimizer(), problem.loss)
    model.fit(problem.x, problem.y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    return model


def trainer_run(problem: Problem, dataset, strategy=None, steps: int = 20, make_optimizer=None, scaler=None):
    """``(weights, history)`` of gradlab's Trainer built in ``strategy.scope()`` on ``dataset``.

    Defaults: ``SGD(0.05)`` and ``Scaler("global_norm", 0.1)`` (notebook 08's run).
    """
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        optimizer = make_optimizer() if make_optimizer is not None else keras.optimizers.SGD(0.05)
        scaler = scaler if scaler is not None else Scaler("global_norm", 0.1)
        trainer = Trainer(problem.model(), problem.loss, optimizer, scaler)
    history = trainer.fit(dataset=dataset, steps=steps, progress=False)
    return trainer.model.get_weights(), history


def try_model_fit(problem: Problem, optimizer, dataset, strategy=None) -> str:
    """``"ran"``, or the error Keras' ``model.fit`` raised, as ``"Type: first line"`` (a per-replica
    value's contents elided)."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = problem.model()
        model.compile(optimizer, problem.loss)
    try:
        model.fit(dataset, epochs=1, verbose=0)
        return "ran"
    except Exception as error:  # noqa: BLE001 - reported, not hidden
        text = re.sub(r"\(PerReplica:.*\}\)", "(PerReplica:{...})", str(error), flags=re.S)
        return f"{type(error).__name__}: {text.strip().splitlines()[0] if text.strip() else ''}"


def tf_config(addresses, index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of workers at ``addresses`` ("host:port")."""
    addresses = list(addresses)
    if not addresses or not all(isinstance(a, str) for a in addresses):
        raise ValueError(
            f"Argument `addresses` must be a list of 'host:port' strings. Received: addresses={addresses!r}"
        )
    _checks.number("index", index, low=0, low_open=False, integer=True)
    if index >= len(addresses):
        raise ValueError(
            f"Argument `index` must be below the number of workers ({len(addresses)}). Received: index={index}"
        )
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_problem(samples: int = 640) -> Problem:
    """The workers' problem: notebook 08's deep MLP, ``deep_mlp(depth=3, width=16, samples=samples)``."""
    return deep_mlp(depth=3, width=16, samples=samples)


def worker(steps: int = 10, samples: int = 640) -> dict:
    """One worker of a ``MultiWorkerMirroredStrategy`` cluster described by ``TF_CONFIG``.

    Trains :func:`worker_problem` (``steps`` global batches of 32, SGD 0.05, global norm 0.1)
    with gradlab's Trainer and tries Keras' ``model.fit`` with Keras' ``global_clipnorm`` and
    with gradlab's ``ScaledOptimizer``. Returns ``replicas``, ``keras_fit`` (name -> outcome),
    ``weights`` and ``norm_before`` (lists, JSON-ready).
    """
    from gradlab.training.optimizer import ScaledOptimizer

    steps, samples = _checks.size("steps", steps), _checks.size("samples", samples)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    problem = worker_problem(samples)
    data = global_batches(problem, 32, shard_by_data=True)
    keras_fit = {
        "Keras global_clipnorm": try_model_fit(
            problem, keras.optimizers.SGD(0.05, global_clipnorm=0.1), data, strategy
        ),
        "gradlab ScaledOptimizer": try_model_fit(
            problem, ScaledOptimizer(keras.optimizers.SGD(0.05), "global_norm", 0.1), data, strategy
        ),
    }
    weights, history = trainer_run(problem, data, strategy, steps=steps)
    return {
        "replicas": strategy.num_replicas_in_sync,
        "keras_fit": keras_fit,
        "weights": [w.tolist() for w in weights],
        "norm_before": history.norm_before.tolist(),
    }


def run_workers(num_workers: int = 2, steps: int = 10, samples: int = 640, timeout: float = 300) -> list[dict]:
    """Run :func:`worker` in ``num_workers`` processes on loopback ports; return their reports.

    Raises ``RuntimeError`` with a worker's stderr if one fails.
    """
    num_workers, steps = _checks.size("num_workers", num_workers), _checks.size("steps", steps)
    samples = _checks.size("samples", samples)
    folder = tempfile.mkdtemp(prefix="gradlab_workers_")
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(num_workers)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    outs = [os.path.join(folder, f"worker{i}.json") for i in range(num_workers)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gradlab.harness.distributed",
                tf_config(addresses, i),
                outs[i],
                str(steps),
                str(samples),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(num_workers)
    ]
    try:
        errors = [p.communicate(timeout=timeout)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (p, err) in enumerate(zip(procs, errors)):
        if p.returncode != 0:
            raise RuntimeError(f"worker {i} exited with {p.returncode}:\n{err[-3000:]}")
    reports = []
    for out in outs:
        with open(out) as f:
            reports.append(json.load(f))
    return reports


def _main(argv) -> None:
    """``python -m gradlab.harness.distributed TF_CONFIG OUT.json [STEPS [SAMPLES]]``: one worker, its
    report written to OUT.json."""
    os.environ["TF_CONFIG"] = argv[0]
    report = worker(*(int(a) for a in argv[2:4]))
    with open(argv[1], "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    _main(sys.argv[1:])
