"""gradlab: understand, see and control how gradients are scaled in Keras.

The front door holds the names a learner and a practitioner use most; everything else lives
in its room, each a folder, imports pointing one way (each imports only the ones before it):

- :mod:`gradlab.scaling`: the pure math (clip by value, norm, global norm; AGC; the research
  transforms: AutoClip, ZClip, AdaGC, SPAM, per-example, block RMS, trust ratio).
- :mod:`gradlab.scaler`: modes by name with live controls (:class:`Scaler`), composition
  (``Chain``, ``Selective``), the table of modes (``MODES``).
- :mod:`gradlab.training`: the instrumented step (:class:`Trainer`), :class:`ScaledOptimizer`
  for ``model.fit``, :class:`GradientStats`, recording, :class:`History`.
- :mod:`gradlab.problems`: small seeded problems, and your own model as a problem.
- :mod:`gradlab.explore`: :func:`compare`, the advisor (:func:`advise`), inspection helpers.
- :mod:`gradlab.display`: Plotly figures (``gradlab.plots``) and the report.
- :mod:`gradlab.lab`: the live lab (:class:`Lab`).
- :mod:`gradlab.exercises`: the notebooks' exercise checks.
- :mod:`gradlab.harness`: the multi-worker harness that notebook 08 and the tests share.

``import gradlab`` loads the core only (keras, numpy, TensorFlow). The display and the lab,
with plotly and the Jupyter widgets, load when first used (``gradlab.plots``, ``gradlab.Lab``);
without their packages they raise an ImportError that names the extra to install
(``pip install "gradlab[lab]"``).
"""

import importlib as _importlib
import os as _os

# Quiet TensorFlow's C++ start-up lines when gradlab is imported first.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from gradlab import problems  # noqa: E402
from gradlab.explore import advise, compare  # noqa: E402
from gradlab.scaler import Scaler  # noqa: E402
from gradlab.scaling import (  # noqa: E402
    adaptive_clip,
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    global_norm,
    tensor_norms,
)
from gradlab.training import GradientStats, History, ScaledOptimizer, Trainer, setup  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    # train: the Keras way and the instrumented step
    "ScaledOptimizer",
    "GradientStats",
    "Trainer",
    "History",
    "Scaler",
    "setup",
    # the pure functions
    "clip_by_value",
    "clip_by_norm",
    "clip_by_global_norm",
    "global_norm",
    "tensor_norms",
    "adaptive_clip",
    # explore and see
    "problems",
    "compare",
    "advise",
    "plots",
    "report",
    "Lab",
]

# Loaded on first use (PEP 562): name -> (module, attribute or None for the module itself).
_LAZY = {
    "plots": ("gradlab.display.plots", None),
    "report": ("gradlab.display.report", "report"),
    "Lab": ("gradlab.lab", "Lab"),
    "display": ("gradlab.display", None),
    "lab": ("gradlab.lab", None),
    "exercises": ("gradlab.exercises", None),
    "harness": ("gradlab.harness", None),
}

# Names that left the front door, and the room that holds them now.
_MOVED = {
    **dict.fromkeys(("MODES", "MODE_NAMES", "NONFINITE_POLICIES", "Chain", "Selective", "Info"), "gradlab.scaler"),
    **dict.fromkeys(
        (
            "AdaGC",
            "AutoClip",
            "SpikeAwareClip",
            "ZClip",
            "clip_by_block_rms",
            "normalize",
            "normalize_global",
            "per_example_global_norm_clip",
            "per_example_layer_norm_clip",
            "scale_by_trust_ratio",
        ),
        "gradlab.scaling",
    ),
    **dict.fromkeys(("Advice", "Verification"), "gradlab.explore"),
    **dict.fromkeys(("advice_figure", "verification_figure"), "gradlab.display"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = _importlib.import_module(module)
        if attribute is not None:
            value = getattr(value, attribute)
        globals()[name] = value
        return value
    if name in _MOVED:
        raise AttributeError(
            f"module 'gradlab' has no attribute {name!r}: it lives in its room, {_MOVED[name]}.{name}", name=name
        )
    raise AttributeError(f"module 'gradlab' has no attribute {name!r}", name=name)


def __dir__():
    return sorted({*globals(), *_LAZY})
