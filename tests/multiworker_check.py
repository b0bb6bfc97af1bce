"""One worker of a two-process MultiWorkerMirroredStrategy run on this machine (loopback).

    python tests/multiworker_check.py INDEX PORT0 PORT1 OUT.json

Each worker trains the same model with gradlab's Trainer on the same global batches
(each worker takes half of every global batch) and writes its final weights and
recorded norms; tests/test_distributed.py compares them with one device. It also
records whether Keras' own model.fit runs under this strategy.
"""

import json
import os
import sys


def main(index: int, port0: str, port1: str, out: str) -> None:
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{port0}", f"127.0.0.1:{port1}"]},
            "task": {"type": "worker", "index": index},
        }
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import keras
    import tensorflow as tf

    import gradlab

    STEPS, BATCH = 10, 32
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    problem = gradlab.problems.deep_mlp(depth=3, width=16, samples=STEPS * BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

    def global_batches():
        ds = tf.data.Dataset.from_tensor_slices((problem.x, problem.y)).batch(BATCH, drop_remainder=True)
        return ds.with_options(options)

    # Keras 3.15's model.fit fails here before training starts, with or without gradlab
    # (its symbolic build reduces a PerReplica batch with the collective all-reduce):
    # record that, and run gradlab's Trainer, which does not go through it.
    with strategy.scope():
        plain = problem.model()
        plain.compile(keras.optimizers.SGD(0.05, global_clipnorm=0.1), problem.loss)
    try:
        plain.fit(global_batches(), epochs=1, verbose=0)
        keras_fit = "ran"
    except Exception as err:  # noqa: BLE001 - reported, not hidden
        keras_fit = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"

    with strategy.scope():
        trainer = gradlab.Trainer(
            problem.model(), problem.loss, keras.optimizers.SGD(0.05), gradlab.Scaler("global_norm", 0.1)
        )
    h = trainer.fit(dataset=global_batches(), steps=STEPS // 2, progress=False)  # each worker: half the batches

    with open(out, "w") as f:
        json.dump(
            {
                "replicas": strategy.num_replicas_in_sync,
                "keras_fit": keras_fit,
                "trainer": [w.tolist() for w in trainer.model.get_weights()],
                "trainer_norm_before": h.norm_before.tolist(),
            },
            f,
        )


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
