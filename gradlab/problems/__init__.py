"""Problems: small offline models and data to train, and your own model as a problem.

- :mod:`~gradlab.problems.builtin`: :class:`Problem`, the seeded built-in problems
  (:func:`deep_mlp`, :func:`digits`, the adding problems, ...) and :func:`from_model`.
- :mod:`~gradlab.problems.recurrent`: the adding problem's data and recurrent models, and the
  two-parameter "cliff" of an RNN.
"""

from gradlab.problems import recurrent
from gradlab.problems.builtin import (
    PROBLEMS,
    Problem,
    adding_lstm,
    adding_rnn,
    deep_mlp,
    digits,
    from_model,
    imbalanced_digits,
    make_problem,
    replay,
    wide_mlp,
)

__all__ = [
    "PROBLEMS",
    "Problem",
    "adding_lstm",
    "adding_rnn",
    "deep_mlp",
    "digits",
    "from_model",
    "imbalanced_digits",
    "make_problem",
    "recurrent",
    "replay",
    "wide_mlp",
]
