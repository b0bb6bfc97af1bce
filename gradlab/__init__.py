"""gradlab: understand, see and control how gradients are scaled in Keras.

The pure scaling functions (:mod:`gradlab.scaling`) take and return lists of
gradients. :class:`Scaler` builds any mode from a name and a threshold held in
``tf.Variable``s; :class:`ScaledOptimizer` runs it inside ``model.fit``.
"""

import os as _os

# Quiet TensorFlow's C++ start-up lines when gradlab is imported first.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from gradlab import exercises, plots, problems  # noqa: E402
from gradlab.adaptive import AutoClip, ZClip  # noqa: E402
from gradlab.history import History  # noqa: E402
from gradlab.optimizer import ScaledOptimizer  # noqa: E402
from gradlab.scaling import (  # noqa: E402
    adaptive_clip,
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    global_norm,
    normalize,
    normalize_global,
    tensor_norms,
)
from gradlab.training import GradientStats, Trainer, compare, setup  # noqa: E402
from gradlab.transforms import MODE_NAMES, MODES, NONFINITE_POLICIES, Chain, Info, Scaler, Selective  # noqa: E402
from gradlab.widgets import Lab  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "MODES",
    "MODE_NAMES",
    "NONFINITE_POLICIES",
    "AutoClip",
    "Chain",
    "GradientStats",
    "Lab",
    "History",
    "Trainer",
    "compare",
    "exercises",
    "plots",
    "problems",
    "setup",
    "Info",
    "ScaledOptimizer",
    "Scaler",
    "Selective",
    "ZClip",
    "adaptive_clip",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "global_norm",
    "normalize",
    "normalize_global",
    "tensor_norms",
]
