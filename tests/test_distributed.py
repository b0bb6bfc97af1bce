"""gradlab under tf.distribute.MirroredStrategy (two logical CPU devices) clips the
all-reduced gradient: the same weights as one device on the same global batches.
Keras' built-in clipping clips each replica's gradient before the sum and differs.

The devices must be configured before TensorFlow starts: the work runs in a
subprocess (tests/distributed_check.py) that prints its measurements as JSON.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gradlab

SCRIPT = Path(__file__).with_name("distributed_check.py")


@pytest.fixture(scope="module")
def result():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_two_replicas(result):
    assert result["replicas"] == 2


@pytest.mark.parametrize("mode", gradlab.MODE_NAMES)
def test_trainer_equals_one_device_for_every_mode(result, mode):
    r = result["trainer"][mode]
    assert r["steps"] == 20
    assert r["weights"] < 1e-6, f"{mode}: weights differ by {r['weights']}"
    assert r["norm_before"] < 1e-5, "the recorded norm is the norm of the reduced gradient"
    assert r["clip_rate"][0] == r["clip_rate"][1]


def test_clipping_modes_really_clip(result):
    """The equality above is not vacuous: these modes changed the gradients on both sides.

    (ZClip clips upward spikes only; this run's norms fall after its warm-up, so it
    never clips here; its state updates are checked below.)
    """
    rates = {m: r["clip_rate"][0] for m, r in result["trainer"].items()}
    assert rates["none"] == 0
    assert all(rates[m] > 0 for m in gradlab.MODE_NAMES if m not in ("none", "zclip")), rates


def test_stateful_modes_keep_one_state(result):
    """AutoClip and ZClip update one state per step from the reduced norm, not one per replica."""
    assert result["trainer"]["autoclip"]["counts"][:2] == [20, 20]
    assert result["trainer"]["zclip"]["counts"][2:] == [20, 20]
    assert result["fit"]["zclip"]["zclip_count"] == 20


@pytest.mark.parametrize("mode", ["global_norm", "zclip", "agc"])
def test_model_fit_with_scaled_optimizer_equals_one_device(result, mode):
    assert result["fit"][mode]["weights"] < 1e-6


def test_keras_global_clipnorm_differs_under_mirrored_strategy(result):
    """Documented difference: Keras clips per replica before the all-reduce."""
    assert result["keras_global_clipnorm"] > 1e-3
