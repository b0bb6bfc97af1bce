"""AutoClip and ZClip under the module path the explore room still imports them by.

They live in :mod:`gradlab.scaling.autoclip` and :mod:`gradlab.scaling.zclip`; this module
goes once ``gradlab/explore/advise.py`` imports them from there (branch explore-lab).
"""

from gradlab.scaling.autoclip import AUTOCLIP_VARIANTS, AutoClip
from gradlab.scaling.zclip import ZClip

__all__ = ["AUTOCLIP_VARIANTS", "AutoClip", "ZClip"]
