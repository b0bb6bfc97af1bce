"""Each notebook's exercise check: passes the right answer, computed here from the
published formula, and refuses typical wrong ones with a hint (never a check that
cannot fail)."""

from __future__ import annotations

import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradlab
from gradlab.exercises import nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08, nb09


def test_nb00_clipnorm_update(capsys):
    # clipnorm=1 cuts [3, 4] (norm 5) to norm 1 and leaves [0.3, 0.4] (norm 0.5): sqrt(1 + 0.25)
    assert nb00.check_clipnorm_update(math.sqrt(1.25))
    assert not nb00.check_clipnorm_update(1.0)  # global_clipnorm's answer
    assert not nb00.check_clipnorm_update(math.sqrt(2))  # the second gradient is not cut to 1
    out = capsys.readouterr().out
    assert "global_clipnorm" in out and "already below 1" in out
    assert all(len(line) <= 88 for line in out.splitlines())  # JupyterLab breaks longer lines mid-word


@pytest.fixture(scope="module")
def short_run():
    p = gradlab.problems.deep_mlp(depth=3, samples=128)
    t = gradlab.Trainer(p.model(), p.loss, keras.optimizers.SGD(0.01), gradlab.Scaler("none"))
    return t.fit(p.x, p.y, steps=3, progress=False)


def test_nb01_global_norm_from_layer_norms(short_run, capsys):
    layers = short_run.layer_norm_before[1]
    assert nb01.check_global_norm(short_run, 1, math.sqrt(sum(float(n) ** 2 for n in layers)))
    assert not nb01.check_global_norm(short_run, 1, float(layers.sum()))
    assert "Norms do not add" in capsys.readouterr().out
    assert not nb01.check_global_norm(short_run, 1, float(np.square(layers).sum()))
    assert "square root" in capsys.readouterr().out
    assert not nb01.check_global_norm(short_run, 99, 1.0)


def test_nb02_same_clip():
    assert nb02.check_same_clip([0.0, 2.0])
    assert nb02.check_same_clip([-3.0, 0.0])
    assert not nb02.check_same_clip([2.0, 2.0])  # clipvalue turns it
    assert not nb02.check_same_clip([0.5, 0.0])  # neither option changes it
    assert not nb02.check_same_clip([0.9, 0.9])  # only clipnorm changes it
    assert not nb02.check_same_clip("up")


def test_nb03_percentile_threshold(capsys):
    norms = np.array([0.5, 2.0, 1.0, 4.0, 3.0, 1.5, 2.5, 0.8])
    # numpy.percentile's linear interpolation, by hand: position 0.75 * 7 = 5.25 in the sorted norms
    ordered = np.sort(norms)
    by_hand = ordered[5] + 0.25 * (ordered[6] - ordered[5])
    assert nb03.check_percentile_threshold(by_hand, norms)  # clip a quarter: the 75th percentile
    assert not nb03.check_percentile_threshold(np.percentile(norms, 25), norms)
    assert "25th percentile" in capsys.readouterr().out
    assert not nb03.check_percentile_threshold("high", norms)
    assert nb03.check_percentile_threshold(ordered[1] + 0.75 * (ordered[2] - ordered[1]), norms, q=25)


def test_nb03_checker_takes_the_answer_only(capsys):
    """Without a run, the check trains the notebook's unclipped digits run (same call as the notebook)."""
    (run,) = gradlab.compare(
        gradlab.problems.digits(), ["none"], optimizer=lambda: keras.optimizers.SGD(0.5), steps=200
    )
    assert np.allclose(nb03.notebook_run().norm_before, run.norm_before, rtol=1e-5)
    assert nb03.check_percentile_threshold(np.percentile(run.norm_before, 75))
    assert not nb03.check_percentile_threshold(np.percentile(run.norm_before, 25))
    out = capsys.readouterr().out
    assert "Correct:" in out and "Not yet:" in out
    assert all(len(line) <= 88 for line in out.splitlines())  # JupyterLab breaks longer lines mid-word


def test_nb04_global_clip(capsys):
    def right(grads, clip_norm):
        norm = math.sqrt(sum(float(tf.reduce_sum(g * g)) for g in grads))
        return [g * (clip_norm / max(norm, clip_norm)) for g in grads]

    def per_tensor(grads, clip_norm):
        return [tf.clip_by_norm(g, clip_norm) for g in grads]

    def always_scales(grads, clip_norm):  # normalizes: wrong below the bound
        norm = math.sqrt(sum(float(tf.reduce_sum(g * g)) for g in grads))
        return [g * (clip_norm / norm) for g in grads]

    def broken(grads, clip_norm):
        raise RuntimeError("oops")

    assert nb04.check_global_clip(right)
    assert not nb04.check_global_clip(per_tensor)
    assert "each tensor on its own" in capsys.readouterr().out
    assert not nb04.check_global_clip(always_scales)
    assert "below the bound" in capsys.readouterr().out
    assert not nb04.check_global_clip(broken)
    assert not nb04.check_global_clip(42)


def test_nb05_rescue_threshold(capsys):
    # SGD at 0.5 on the deep MLP explodes; a global norm of 0.3 makes it train (notebook 01 measures it)
    assert nb05.check_rescue_threshold(0.3)
    assert "Correct:" in capsys.readouterr().out
    assert not nb05.check_rescue_threshold(100.0)  # the notebook's placeholder: too large, the run diverges
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 90, out  # wrapped between words for a notebook
    hint = " ".join(out.split())
    assert "above 10" in hint and "Try a smaller threshold: 33.3 does better than 300." in hint
    # A diverging run is chaotic: the hint must not print its exact losses (they differ from CPU to CPU)
    assert not re.search(r"\d\.\d\d", hint), hint
    assert not nb05.check_rescue_threshold(0.001)  # stable but far too slow
    assert "Try a larger threshold: 0.003 does better than 0.000333." in " ".join(capsys.readouterr().out.split())
    assert not nb05.check_rescue_threshold("high")
    assert not nb05.check_rescue_threshold(-1.0)


def test_nb06_autoclip_and_agc():
    norms, p = nb06.AUTOCLIP_TASK["norms"], nb06.AUTOCLIP_TASK["percentile"]
    assert nb06.check_autoclip_bound(float(np.percentile(norms, p)))
    assert not nb06.check_autoclip_bound(float(np.percentile(norms[:-1], p)))  # this step's norm left out
    # AGC, Brock et al. 2021: G_i * min(1, lambda * max(||W_i||, eps) / ||G_i||), unit i = a column
    W, G, lam = (np.array(nb06.AGC_TASK[k], float) for k in ("W", "G", "clipping"))
    bound = lam * np.maximum(np.linalg.norm(W, axis=0), 1e-3)
    by_hand = G * np.minimum(1.0, bound / np.linalg.norm(G, axis=0))
    assert nb06.check_agc(by_hand.tolist())
    assert not nb06.check_agc(G.tolist())


def test_nb07_scaled_threshold_and_accumulation():
    s, c = nb07.SCALED_TASK["scale"], nb07.SCALED_TASK["threshold"]
    assert nb07.check_scaled_threshold(s * c)
    assert not nb07.check_scaled_threshold(c)
    assert not nb07.check_scaled_threshold(c / s)
    task = nb07.ACCUMULATE_TASK
    mean = np.mean(np.array(task["grads"], float), axis=0)
    clipped = mean * min(1.0, task["threshold"] / np.linalg.norm(mean))
    assert nb07.check_accumulated_update((-task["learning_rate"] * clipped).tolist())
    each = np.mean([g * min(1.0, task["threshold"] / np.linalg.norm(g)) for g in np.array(task["grads"], float)], 0)
    assert not nb07.check_accumulated_update((-task["learning_rate"] * each).tolist())


def test_nb08_replica_update():
    shares = [np.array(s, float) for s in nb08.REPLICA_TASK["shares"]]
    c, lr = nb08.REPLICA_TASK["global_clipnorm"], nb08.REPLICA_TASK["learning_rate"]
    clip = lambda g: g * min(1.0, c / np.linalg.norm(g))  # noqa: E731
    # Keras 3 on TensorFlow under MirroredStrategy: each replica's share clipped, then summed
    assert nb08.check_replica_update((-lr * (clip(shares[0]) + clip(shares[1]))).tolist())
    assert not nb08.check_replica_update((-lr * clip(shares[0] + shares[1])).tolist())  # one device's answer
    assert not nb08.check_replica_update((lr * (clip(shares[0]) + clip(shares[1]))).tolist())  # sign
    assert not nb08.check_replica_update([1.0])


def test_nb09_l2_gradient_and_decoupled_step():
    w, l2 = np.array(nb09.L2_TASK["w"]), nb09.L2_TASK["l2"]
    assert nb09.check_l2_gradient((2 * l2 * w).tolist())  # d/dw of l2 * sum(w**2)
    assert not nb09.check_l2_gradient((l2 * w).tolist())
    t = nb09.DECAY_TASK
    g = np.array(t["grad"], float)
    g = g * min(1.0, t["global_clipnorm"] / np.linalg.norm(g))
    # Keras: decoupled decay w -= lr * wd * w, then the clipped gradient step
    w0 = np.array(t["w"], float)
    after = w0 - t["learning_rate"] * t["weight_decay"] * w0 - t["learning_rate"] * g
    assert nb09.check_decoupled_step(after.tolist())
    assert not nb09.check_decoupled_step((w0 - t["learning_rate"] * g).tolist())  # decay forgotten


@pytest.mark.parametrize("module", [nb06, nb07, nb08, nb09], ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_nb06_to_nb09_messages_fit_a_notebook(module, capsys):
    """Every hint and verdict of these checks prints lines of at most 90 characters, broken between words."""
    answers = {
        nb06: [(nb06.check_autoclip_bound, 5.0), (nb06.check_agc, [[0.6, 0.0], [0.8, 2.0]])],
        nb07: [(nb07.check_scaled_threshold, 0.5), (nb07.check_accumulated_update, [-0.0333, -0.0667])],
        nb08: [(nb08.check_replica_update, [-0.5145, -0.8575]), (nb08.check_replica_update, [-0.6, -1.8])],
        nb09: [(nb09.check_l2_gradient, [0.025, -0.1, 0.15]), (nb09.check_decoupled_step, [3.931, -2.998])],
    }[module]
    for check, answer in answers:
        check(answer)
    out = capsys.readouterr().out
    assert out.count("Correct:") + out.count("Not yet:") == len(answers)
    assert max(len(line) for line in out.splitlines()) <= 90, out
