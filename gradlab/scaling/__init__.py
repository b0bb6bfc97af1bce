"""The pure math: gradient scaling functions on lists of gradients.

- :mod:`~gradlab.scaling.clipping`: clip by value, by each tensor's norm, by the
  global norm; normalization; the norms themselves.
- :mod:`~gradlab.scaling.agc`: adaptive gradient clipping, unit by unit.
- :mod:`~gradlab.scaling.adaptive`: AutoClip and ZClip, which keep state.

Nothing here knows about modes, optimizers or training.
"""

from gradlab.scaling.adaptive import AutoClip, ZClip
from gradlab.scaling.agc import adaptive_clip, unit_norms
from gradlab.scaling.clipping import (
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    fused_squared_norm,
    global_norm,
    normalize,
    normalize_global,
    squared_norm,
    tensor_norms,
)

__all__ = [
    "AutoClip",
    "ZClip",
    "adaptive_clip",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "fused_squared_norm",
    "global_norm",
    "normalize",
    "normalize_global",
    "squared_norm",
    "tensor_norms",
    "unit_norms",
]
