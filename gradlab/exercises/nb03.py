"""Notebook 03 (custom training loops): a clipping threshold from measured norms.

:func:`check_percentile_threshold` takes the reader's threshold only: it trains the
notebook's unclipped digits run itself (or takes the run it is given), recomputes
the percentile from that run's global norms before clipping (finite steps only),
says how far off the answer is and which share of the steps it would have clipped,
and recognises the usual slips (the share given as the percentile, a fraction given
to ``numpy.percentile``, the norms after clipping instead of before).
"""

from __future__ import annotations

import functools

import keras
import numpy as np

from gradlab import _checks
from gradlab.exercises._common import say
from gradlab.explore.compare import compare
from gradlab.problems.builtin import digits
from gradlab.training.history import History

__all__ = ["check_percentile_threshold", "notebook_run"]


@functools.lru_cache(maxsize=1)
def notebook_run() -> History:
    """Notebook 03's unclipped run: digits, plain SGD at 0.5, batches of 32, 200 steps.

    The same call as the notebook's ``gradlab.compare(digits, ["none"], ...)``: the same
    initial weights and batch order, so the same global norms (trained once, then kept).
    """
    (run,) = compare(digits(), ["none"], optimizer=lambda: keras.optimizers.SGD(0.5), steps=200)
    return run


def _norms(run, which="norm_before") -> np.ndarray:
    """The finite, not skipped global norms of a History (or the finite values of an array)."""
    if isinstance(run, History):
        values = np.asarray(getattr(run, which), np.float64)
        return values[np.isfinite(values) & (run.skipped == 0)]
    values = np.asarray(run, np.float64).ravel()
    return values[np.isfinite(values)]


def check_percentile_threshold(threshold, run=None, *, q: float = 75) -> bool:
    """A ``global_norm`` threshold that would have clipped ``100 - q`` percent of a run's steps.

    The notebook passes its answer only: ``check_percentile_threshold(my_threshold)``.

    Args:
      threshold: the reader's answer, one number.
      run: the :class:`~gradlab.training.history.History` of an unclipped run (its
        ``norm_before`` is used), or an array of global norms. ``None`` (the
        default): notebook 03's unclipped digits run (:func:`notebook_run`).
      q: the exercise's setting, a percentile from 0 to 100 (default 75: clip a
        quarter of the steps). Not the reader's to pass: it is the answer.

    Returns:
      ``True`` when ``threshold`` is within 0.1% of ``numpy.percentile(norms, q)``.
    """
    _checks.python_number("q", q, low=0, high=100, low_open=False)  # the exercise's setting, not the answer
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        return say(False, f"the threshold is one number. Received: {threshold!r}")
    run = notebook_run() if run is None else run
    norms = _norms(run)
    if norms.size == 0:
        return say(False, "the run has no finite global norm to take a percentile of: pass the unclipped run.")
    right = float(np.percentile(norms, q))
    share = float(np.mean(norms > threshold))
    if np.isclose(threshold, right, rtol=1e-3):
        return say(
            True,
            f"the {q:g}th percentile of these {norms.size} norms is {right:.4g}; on this run it would have "
            f"clipped {share:.0%} of the steps (the aim: {100 - q:g}%).",
        )
    off = (
        f"{threshold:.4g} is {threshold / right:.3g} times the answer and would have clipped {share:.0%} of these steps"
    )
    if np.isclose(threshold, np.percentile(norms, 100 - q), rtol=1e-3):
        hint = (
            f"that is the {100 - q:g}th percentile. A threshold at the p-th percentile clips the steps "
            "above it: 100 - p percent of them."
        )
    elif 0 < q <= 100 and np.isclose(threshold, np.percentile(norms, q / 100), rtol=1e-3):
        hint = f"numpy.percentile takes q from 0 to 100 (numpy.quantile takes 0 to 1): use {q:g}, not {q / 100:g}."
    elif isinstance(run, History) and np.isclose(threshold, np.percentile(_norms(run, "norm_after"), q), rtol=1e-3):
        hint = "you took the norms after clipping (`norm_after`); the threshold is compared with `norm_before`."
    else:
        hint = f"take numpy.percentile of the run's `norm_before`: at which q are {100 - q:g}% of the norms above it?"
    return say(False, f"{off}, not {100 - q:g}%: {hint}")
