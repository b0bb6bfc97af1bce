"""Explore: run, compare and inspect; the advisor.

- :mod:`~gradlab.explore.compare`: :func:`compare`, one run per mode from the same start.
- :mod:`~gradlab.explore.advise`: :func:`advise`, thresholds read from your model's own
  gradient norms, then verified by short runs (:mod:`~gradlab.explore.verify`); the rules
  that read them are tables in :mod:`~gradlab.explore.rules`.
- :mod:`~gradlab.explore.inspect`: compare gradients and weights (:func:`max_diff`,
  :func:`distance`, :func:`cosine`, :func:`flatten`, :func:`diff_text`) and read what a Keras
  optimizer really applied (:func:`applied_gradient`).
"""

from gradlab.explore.advise import Advice, Verification, advise
from gradlab.explore.compare import compare
from gradlab.explore.inspect import applied_gradient, cosine, diff_text, distance, flatten, max_diff

__all__ = [
    "Advice",
    "Verification",
    "advise",
    "applied_gradient",
    "compare",
    "cosine",
    "diff_text",
    "distance",
    "flatten",
    "max_diff",
]
