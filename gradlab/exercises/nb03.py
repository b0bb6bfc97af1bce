"""Notebook 03 (custom training loops): a clipping threshold from measured norms.

:func:`check_percentile_threshold` recomputes the percentile itself from the run
it is given (its global norms before clipping, finite steps only), says how far
off the answer is and which share of that run's steps it would have clipped, and
recognises the usual slips (the share given as the percentile, ``q`` given as a
fraction, the norms after clipping instead of before).
"""

from __future__ import annotations

import numpy as np

from gradlab import _checks
from gradlab.exercises._common import say
from gradlab.training.history import History

__all__ = ["check_percentile_threshold"]


def _norms(run, which="norm_before") -> np.ndarray:
    """The finite, not skipped global norms of a History (or the finite values of an array)."""
    if isinstance(run, History):
        values = np.asarray(getattr(run, which), np.float64)
        return values[np.isfinite(values) & (run.skipped == 0)]
    values = np.asarray(run, np.float64).ravel()
    return values[np.isfinite(values)]


def check_percentile_threshold(threshold, run, q: float = 75) -> bool:
    """A ``global_norm`` threshold at the ``q``-th percentile of ``run``'s global norms.

    Args:
      threshold: the reader's answer, one number.
      run: the :class:`~gradlab.history.History` of an unclipped run (its
        ``norm_before`` is used), or an array of global norms.
      q: the percentile, 0 to 100; such a threshold clips ``100 - q`` percent of
        that run's steps.

    Returns:
      ``True`` when ``threshold`` is within 0.1% of ``numpy.percentile(norms, q)``.
    """
    _checks.python_number("q", q, low=0, high=100, low_open=False)  # the exercise's setting, not the answer
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        return say(False, f"the threshold is one number. Received: {threshold!r}")
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
            f"that is the {100 - q:g}th percentile. A threshold at the p-th percentile clips the steps above it, "
            f"{100 - q:g}% of them when p = {q:g}: the share to clip is 100 - p."
        )
    elif 0 < q <= 100 and np.isclose(threshold, np.percentile(norms, q / 100), rtol=1e-3):
        hint = f"numpy.percentile takes q from 0 to 100 (numpy.quantile takes 0 to 1): use {q:g}, not {q / 100:g}."
    elif isinstance(run, History) and np.isclose(threshold, np.percentile(_norms(run, "norm_after"), q), rtol=1e-3):
        hint = "you took the norms after clipping (`norm_after`); the threshold is compared with `norm_before`."
    else:
        hint = f"take numpy.percentile of the run's `norm_before` at q = {q:g}."
    return say(False, f"{off}, not {100 - q:g}%: {hint}")
