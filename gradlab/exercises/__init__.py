"""Check functions for the notebooks' exercises, one module per notebook.

Each ``check_*`` function computes the answer itself (nothing the reader could
copy is hard-coded), prints a short verdict with a hint when the answer is
wrong, and returns ``True`` or ``False``. Solutions live in the notebooks, in
collapsed cells.
"""

from gradlab.exercises._common import say
from gradlab.exercises.nb05 import check_rescue_threshold

__all__ = ["check_rescue_threshold", "say"]
