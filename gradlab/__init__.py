"""gradlab: understand, see and control how gradients are scaled in Keras.

Rooms, each a folder, imports pointing one way (each imports only the ones before it):

- :mod:`gradlab.scaling`: the pure math (clip by value, norm, global norm; AGC; AutoClip; ZClip).
- :mod:`gradlab.scaler`: modes by name with live controls (:class:`Scaler`), composition.
- :mod:`gradlab.training`: the instrumented step (:class:`Trainer`), :class:`ScaledOptimizer`
  for ``model.fit``, recording, :class:`History`.
- :mod:`gradlab.problems`: small seeded problems, and your own model as a problem.
- :mod:`gradlab.explore`: :func:`compare`, the advisor (:func:`advise`), inspection helpers.
- :mod:`gradlab.display`: Plotly figures (``gradlab.plots``) and the report.
- :mod:`gradlab.lab`: the live lab (:class:`Lab`).
- :mod:`gradlab.exercises`: the notebooks' exercise checks.
- :mod:`gradlab.harness`: the multi-worker harness that notebook 08 and the tests share.
"""

import os as _os

# Quiet TensorFlow's C++ start-up lines when gradlab is imported first.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from gradlab import (
    exercises,  # noqa: E402
    problems,  # noqa: E402
)
from gradlab.display import plots  # noqa: E402
from gradlab.display.advice import advice_figure, verification_figure  # noqa: E402
from gradlab.display.report import report  # noqa: E402
from gradlab.explore import Advice, Verification, advise, compare  # noqa: E402
from gradlab.lab import Lab  # noqa: E402
from gradlab.scaler import MODE_NAMES, MODES, NONFINITE_POLICIES, Chain, Info, Scaler, Selective, SkipSpikes  # noqa: E402
from gradlab.scaling import (  # noqa: E402
    AdaGC,
    AutoClip,
    SpikeAwareClip,
    ZClip,
    adaptive_clip,
    clip_by_block_rms,
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    global_norm,
    normalize,
    normalize_global,
    per_example_global_norm_clip,
    per_example_layer_norm_clip,
    scale_by_trust_ratio,
    tensor_norms,
)
from gradlab.training import GradientStats, History, ScaledOptimizer, Trainer, setup  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Advice",
    "Verification",
    "advice_figure",
    "advise",
    "report",
    "verification_figure",
    "MODES",
    "MODE_NAMES",
    "NONFINITE_POLICIES",
    "AdaGC",
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
    "SkipSpikes",
    "SpikeAwareClip",
    "ZClip",
    "adaptive_clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "global_norm",
    "normalize",
    "normalize_global",
    "per_example_global_norm_clip",
    "per_example_layer_norm_clip",
    "scale_by_trust_ratio",
    "tensor_norms",
]
