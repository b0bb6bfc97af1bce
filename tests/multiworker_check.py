"""One worker of a two-process MultiWorkerMirroredStrategy run on this machine (loopback).

    python tests/multiworker_check.py INDEX PORT0 PORT1 OUT.json

Each worker runs gradlab.harness.distributed.worker (the harness notebook 08 uses too): the
same model trained with gradlab's Trainer on the same global batches (each worker takes its
part of every global batch), its final weights and recorded norms written to OUT.json;
tests/test_distributed.py compares them with one device. It also records whether Keras'
own model.fit runs under this strategy.
"""

import json
import os
import sys

STEPS, SAMPLES = 5, 320


def main(index: int, port0: str, port1: str, out: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from gradlab.harness.distributed import tf_config, worker

    os.environ["TF_CONFIG"] = tf_config([f"127.0.0.1:{port0}", f"127.0.0.1:{port1}"], index)
    report = worker(steps=STEPS, samples=SAMPLES)
    with open(out, "w") as f:
        json.dump(
            {
                "replicas": report["replicas"],
                # Keras 3.15's model.fit fails here before training starts, with or without gradlab.
                "keras_fit": report["keras_fit"]["Keras global_clipnorm"],
                "trainer": report["weights"],
                "trainer_norm_before": report["norm_before"],
            },
            f,
        )


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
