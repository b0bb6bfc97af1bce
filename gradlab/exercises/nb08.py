"""Notebook 08 (more than one device): the update Keras applies when it clips each replica."""

from __future__ import annotations

import numpy as np

from gradlab.exercises._common import clipped as _clip
from gradlab.exercises._common import say

__all__ = ["check_replica_update"]


REPLICA_TASK = {"shares": ((3.0, 4.0), (0.0, 1.0)), "global_clipnorm": 1.0, "learning_rate": 1.0}


def check_replica_update(
    answer,
    shares=REPLICA_TASK["shares"],
    global_clipnorm=REPLICA_TASK["global_clipnorm"],
    learning_rate=REPLICA_TASK["learning_rate"],
) -> bool:
    """The SGD update (new weights minus old) that Keras 3 on TensorFlow applies under
    ``MirroredStrategy`` when replica ``i`` contributes ``shares[i]`` to the summed
    gradient and the optimizer has ``global_clipnorm``: each share is clipped, then summed.
    """
    shares = [np.asarray(s, np.float64) for s in shares]
    try:
        a = np.asarray(answer, np.float64).reshape(shares[0].shape)
    except (TypeError, ValueError):
        return say(False, f"the answer is a list of {shares[0].size} numbers, the update. Received: {answer!r}")
    per_replica = -learning_rate * sum(_clip(s, global_clipnorm) for s in shares)
    after_reduce = -learning_rate * _clip(sum(shares), global_clipnorm)
    unclipped = -learning_rate * sum(shares)
    fmt = lambda v: np.round(v, 4).tolist()  # noqa: E731
    if np.allclose(a, per_replica, atol=1e-3):
        return say(
            True,
            f"Keras clips each share to norm {global_clipnorm:g} and sums: the update {fmt(per_replica)} has norm "
            f"{np.linalg.norm(per_replica):.4g}, above the bound. Clipping after the all-reduce (gradlab) gives "
            f"{fmt(after_reduce)}, norm {np.linalg.norm(after_reduce):.4g}.",
        )
    if np.allclose(a, after_reduce, atol=1e-3):
        return say(False, "that is one device's update (and gradlab's): clip the sum. Keras clips each share first.")
    if np.allclose(a, -per_replica, atol=1e-3) or np.allclose(a, -after_reduce, atol=1e-3):
        return say(False, "mind the sign: SGD moves against the gradient.")
    if np.allclose(a, unclipped, atol=1e-3):
        return say(False, "that is the update without any clipping.")
    return say(False, "clip each replica's share to the global_clipnorm, add them up, times -learning_rate.")
