"""gradlab.harness.distributed: the harness notebook 08 and tests/*_check.py share.

The multi-process run itself (``run_workers``) is exercised by tests/test_distributed.py
(through tests/multiworker_check.py) and by notebook 08; here the pieces it is made of.
"""

import json
import socket

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradlab
from gradlab.explore.inspect import max_diff
from gradlab.harness import distributed


def test_tf_config_names_the_cluster_and_the_task():
    config = json.loads(distributed.tf_config(["a:1", "b:2", "c:3"], 2))
    assert config == {"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker", "index": 2}}


@pytest.mark.parametrize(
    "addresses, index, match",
    [
        (["a:1", "b:2"], 2, r"below the number of workers \(2\). Received: index=2"),
        (["a:1"], -1, "index"),
        ([], 0, "addresses"),
        ([1234], 0, "addresses"),
    ],
    ids=["index-too-large", "negative-index", "no-workers", "not-strings"],
)
def test_tf_config_refuses_bad_input(addresses, index, match):
    with pytest.raises(ValueError, match=match):
        distributed.tf_config(addresses, index)


def test_free_port_can_be_bound():
    port = distributed.free_port()
    assert 0 < port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free now: binding it again works


def test_global_batches_in_order_and_sharded_by_data():
    p = gradlab.problems.deep_mlp(depth=2, samples=70)
    plain = distributed.global_batches(p, 32)
    batches = list(plain)
    assert len(batches) == 2  # the partial batch of 6 is dropped
    np.testing.assert_array_equal(batches[1][0].numpy(), p.x[32:64])
    policy = tf.data.experimental.AutoShardPolicy
    sharded = distributed.global_batches(p, 32, shard_by_data=True)
    assert sharded.options().experimental_distribute.auto_shard_policy == policy.DATA
    assert plain.options().experimental_distribute.auto_shard_policy != policy.DATA


def test_trainer_run_equals_model_fit_with_the_same_clipping_on_one_device():
    """The two runners train the same model on the same batches: gradlab's Trainer with
    global_norm 0.1 and model.fit with Keras' global_clipnorm=0.1 end on the same weights."""
    p = gradlab.problems.deep_mlp(depth=2, width=8, samples=5 * 32)
    weights, history = distributed.trainer_run(p, distributed.global_batches(p, 32), steps=5)
    model = distributed.fit_model(p, lambda: keras.optimizers.SGD(0.05, global_clipnorm=0.1))
    assert len(history) == 5
    assert max_diff(weights, model) < 1e-6
    unclipped = distributed.fit_model(p, lambda: keras.optimizers.SGD(0.05))
    assert max_diff(weights, unclipped) > 1e-4  # the clipping did something: the comparison can fail


def test_try_model_fit_reports_success_and_failure():
    p = gradlab.problems.deep_mlp(depth=2, width=8, samples=64)
    assert distributed.try_model_fit(p, keras.optimizers.SGD(0.01), distributed.global_batches(p, 32)) == "ran"
    bad = tf.data.Dataset.from_tensor_slices((np.zeros((64, 3), "float32"), p.y)).batch(32)  # wrong input width
    outcome = distributed.try_model_fit(p, keras.optimizers.SGD(0.01), bad)
    assert outcome != "ran" and outcome.split(":")[0].endswith("Error")
    assert "\n" not in outcome


def test_logical_cpus_keeps_initialised_devices():
    tf.constant(1.0)  # TensorFlow has initialised its devices in this process
    before = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert distributed.logical_cpus(3) == before
    with pytest.raises(ValueError, match="n"):
        distributed.logical_cpus(0)
