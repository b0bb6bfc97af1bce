"""The pure math: gradient scaling functions on lists of gradients.

- :mod:`~gradlab.scaling.clipping`: clip by value, by each tensor's norm, by the
  global norm; normalization; the norms themselves. Read it first.
- :mod:`~gradlab.scaling.kernels`: the kernels under them (a gradient's values, the
  fast sum of squares).
- :mod:`~gradlab.scaling.agc`: adaptive gradient clipping, unit by unit.
- :mod:`~gradlab.scaling.autoclip`: AutoClip, clipping at a percentile of past norms.
- :mod:`~gradlab.scaling.zclip`: ZClip, clipping z-score spikes against an EMA of norms.
- :mod:`~gradlab.scaling.per_example`: per-example clipping (DP-SGD's clipping step).
- :mod:`~gradlab.scaling.rms`: block-RMS clipping (Adafactor's update clipping).
- :mod:`~gradlab.scaling.trust_ratio`: the layer-wise trust ratio of LARS and LAMB.
- :mod:`~gradlab.scaling.adagc`: AdaGC, per-tensor clipping against an EMA of its norms.
- :mod:`~gradlab.scaling.spam`: SPAM's spike-aware clipping of entries.

Nothing here knows about modes, optimizers or training.
"""

from gradlab.scaling.adagc import AdaGC
from gradlab.scaling.agc import adaptive_clip, unit_norms
from gradlab.scaling.autoclip import AUTOCLIP_VARIANTS, AutoClip
from gradlab.scaling.clipping import (
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    global_norm,
    normalize,
    normalize_global,
    tensor_norms,
)
from gradlab.scaling.kernels import squared_norm
from gradlab.scaling.per_example import per_example_global_norm_clip, per_example_layer_norm_clip, per_example_norms
from gradlab.scaling.rms import block_rms, clip_by_block_rms
from gradlab.scaling.spam import SpikeAwareClip
from gradlab.scaling.trust_ratio import scale_by_trust_ratio, trust_ratios
from gradlab.scaling.zclip import ZClip

__all__ = [
    "AUTOCLIP_VARIANTS",
    "AdaGC",
    "AutoClip",
    "SpikeAwareClip",
    "ZClip",
    "adaptive_clip",
    "block_rms",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "global_norm",
    "normalize",
    "normalize_global",
    "per_example_global_norm_clip",
    "per_example_layer_norm_clip",
    "per_example_norms",
    "scale_by_trust_ratio",
    "squared_norm",
    "tensor_norms",
    "trust_ratios",
    "unit_norms",
]
