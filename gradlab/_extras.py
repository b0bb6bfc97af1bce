"""Optional dependencies: import one, or say which extra of gradlab installs it.

The core (``gradlab.scaling``, ``gradlab.scaler``, ``gradlab.training``, ``gradlab.problems``,
``gradlab.explore``) needs keras, numpy and TensorFlow. The rest comes with an extra:

- ``plots``: plotly and pandas (the figures, the report, tables of a run) and tensorboard
  (``History.to_tensorboard``).
- ``lab``: what ``plots`` brings, plus ipywidgets, anywidget, scikit-learn (the ``digits``
  problems), JupyterLab and ipykernel: everything the notebooks and the live lab use.

Nothing here imports the rest of gradlab.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The extra that brings each optional module (by its top-level import name).
EXTRAS = {
    "plotly": "plots",
    "pandas": "plots",
    "tensorboard": "plots",
    "ipywidgets": "lab",
    "anywidget": "lab",
    "traitlets": "lab",
    "sklearn": "lab",
}
# The distribution to name where it differs from the import name.
DISTRIBUTIONS = {"sklearn": "scikit-learn"}


def missing(module: str, needed_by: str, extra: str | None = None) -> ImportError:
    """The ImportError for ``module`` missing: what needs it, and the install command."""
    top = module.split(".")[0]
    extra = extra or EXTRAS.get(top, "lab")
    return ImportError(
        f"{needed_by} needs {DISTRIBUTIONS.get(top, top)}, which comes with gradlab's `{extra}` extra. "
        f'Install it with: pip install "gradlab[{extra}]" (or `make install` in a clone of the repository).',
        name=top,
    )


def require(module: str, needed_by: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` (a dotted name), or raise the ImportError of :func:`missing`.

    Args:
      module: what to import, for example ``"plotly.graph_objects"``.
      needed_by: what needs it, for the message (``"gradlab.display"``).
      extra: the extra to name; by default the one that brings ``module`` (:data:`EXTRAS`).

    Returns:
      The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        # Only the optional package itself missing gets the install hint; a broken install of it stays as it is.
        if (error.name or module).split(".")[0] != module.split(".")[0]:
            raise
        raise missing(module, needed_by, extra) from error
