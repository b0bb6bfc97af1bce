"""A record or a setting is always what the user did.

- A change of mode and threshold from another thread never splits a step: every
  step runs with (and records) a pair that was set, never the new mode with the
  old threshold.
- A step that raises under ``nonfinite="raise"`` leaves no row behind, changes no
  weight, and the steps before it in the same call keep theirs.
"""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradlab

PAIRS = [("value", 0.02), ("global_norm", 0.5)]


def small_problem(samples=256):
    gradlab.setup(0)
    return gradlab.problems.deep_mlp(depth=2, samples=samples)


def test_a_thread_flipping_mode_and_threshold_never_splits_a_step():
    """Today's code before the fix: 146 of 300 steps ran with ('value', 0.5) or ('global_norm', 0.02)."""
    p = small_problem()
    scaler = gradlab.Scaler(*PAIRS[0])
    trainer = gradlab.Trainer(p.model(), p.loss, keras.optimizers.SGD(0.01), scaler)
    stop, flips = threading.Event(), [0]

    def flip():
        while not stop.is_set():
            flips[0] += 1
            scaler.set(*PAIRS[flips[0] % 2])

    thread = threading.Thread(target=flip, daemon=True)
    thread.start()
    try:
        h = trainer.fit(p.x, p.y, steps=300, batch_size=16, progress=False)
    finally:
        stop.set()
        thread.join()
    seen = list(zip(h.modes, np.round(h.threshold, 6).tolist()))
    assert flips[0] > 300, "the thread must change the settings many times during the run"
    assert set(seen) == set(PAIRS), "both settings ran (the flips reached the step)"
    split = [s for s in seen if s not in PAIRS]
    assert split == [], f"{len(split)} of {len(seen)} steps ran with a pair nobody set"
    # ... and each step did what its recorded pair says.
    params = sum(int(np.prod(v.shape)) for v in trainer.variables)
    for (mode, threshold), after in zip(seen, h.norm_after):
        bound = threshold * np.sqrt(params) if mode == "value" else threshold
        assert after <= bound * (1 + 1e-5)


def test_set_writes_mode_and_threshold_in_one_assignment():
    """Both live in one variable; a read gives the pair in force."""
    scaler = gradlab.Scaler("norm", 2.0)
    assert scaler.controls.numpy().tolist() == [gradlab.scaler.MODE_NAMES.index("norm"), 2.0]
    scaler.set(mode="value", threshold=0.25)
    assert scaler.controls.numpy().tolist() == [gradlab.scaler.MODE_NAMES.index("value"), 0.25]
    mode, threshold = scaler.read_controls()
    assert (int(mode), float(threshold)) == (gradlab.scaler.MODE_NAMES.index("value"), 0.25)
    assert (scaler.mode_name, float(scaler.threshold)) == ("value", 0.25)
    scaler.set(mode="global_norm")  # only the mode: the threshold is kept
    assert scaler.controls.numpy().tolist() == [gradlab.scaler.MODE_NAMES.index("global_norm"), 0.25]


def nan_batches(x, y, batch, bad):
    """Batches of ``batch`` samples in order; batch number ``bad`` holds NaN inputs."""
    xs = np.array(x[: batch * (bad + 3)], copy=True)
    xs[batch * bad : batch * (bad + 1)] = np.nan
    return tf.data.Dataset.from_tensor_slices((xs, y[: len(xs)])).batch(batch)


@pytest.mark.parametrize("steps_per_call", [1, 4])
def test_a_step_that_raises_leaves_no_row_and_no_change(steps_per_call):
    """3 good steps, then a bad one that raises, then the good steps after it."""
    p = small_problem()
    scaler = gradlab.Scaler("global_norm", 1.0, nonfinite="raise")
    trainer = gradlab.Trainer(p.model(), p.loss, keras.optimizers.SGD(0.01), scaler, steps_per_call=steps_per_call)
    ds = nan_batches(p.x, p.y, 16, bad=3)
    first = trainer.fit(dataset=ds, steps=3, progress=False)
    weights = [v.numpy().copy() for v in trainer.variables]
    iterations = int(trainer.optimizer.iterations.numpy())
    with pytest.raises(FloatingPointError, match=r"nonfinite='raise'"):
        trainer.fit(dataset=ds, steps=1, progress=False)
    for before, v in zip(weights, trainer.variables):
        np.testing.assert_array_equal(before, v.numpy(), err_msg=v.name)
    assert int(trainer.optimizer.iterations.numpy()) == iterations
    after = trainer.fit(dataset=ds, steps=1, progress=False)
    assert (len(first), len(after), len(trainer.history)) == (3, 1, 4)
    assert np.isfinite(after.loss).all() and not after.skipped.any()


def test_rows_of_the_steps_before_a_raise_in_the_same_call_are_kept():
    """With 4 steps per call and the 3rd batch bad, the 2 steps that trained keep their rows."""
    p = small_problem()
    scaler = gradlab.Scaler("global_norm", 1.0, nonfinite="raise")
    trainer = gradlab.Trainer(p.model(), p.loss, keras.optimizers.SGD(0.01), scaler, steps_per_call=4)
    with pytest.raises(FloatingPointError):
        trainer.fit(dataset=nan_batches(p.x, p.y, 16, bad=2), steps=4, progress=False)
    assert len(trainer.history) == 2
    assert int(trainer.optimizer.iterations.numpy()) == 2
    assert np.isfinite(trainer.history.loss).all()
