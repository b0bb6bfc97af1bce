"""Sphinx configuration of gradlab's documentation site (`make docs`, offline).

The site: the user's guide (docs/guide/*.md), the performance page, the notebooks with their
stored outputs (copied from notebooks/ at build time, never executed), and an API reference
generated from the docstrings: one page per room, listing the room's ``__all__``.
"""

import os
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gradlab  # noqa: E402

project = "gradlab"
author = "the gradlab developers"
copyright = "the gradlab developers, Apache-2.0"
release = version = gradlab.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_templates", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
html_theme = "furo"
html_title = f"gradlab {release}"
nitpicky = True

# ---------------------------------------------------------------- notebooks: stored outputs, never run
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
# The committed notebooks carry a static PNG beside every Plotly figure; widgets have no stored
# state, so their views would draw nothing: the HTML shows the PNG (or the text) instead.
nb_mime_priority_overrides = [
    ("html", "application/vnd.jupyter.widget-view+json", None),
    ("html", "application/vnd.plotly.v1+json", None),
]


def copy_notebooks() -> None:
    """notebooks/NN_*.ipynb -> docs/notebooks/ (generated, ignored by git), copied only when changed."""
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    sources = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for stale in set(target.glob("*.ipynb")) - {target / s.name for s in sources}:
        stale.unlink()
    for source in sources:
        copy = target / source.name
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            shutil.copyfile(source, copy)
    lines = ["# Notebooks", "", "Each notebook as committed, with its stored outputs and static figures", ""]
    lines += ["```{toctree}", ":maxdepth: 1", "", *[s.stem for s in sources], "```", ""]
    index = target / "index.md"
    text = "\n".join(lines)
    if not index.exists() or index.read_text() != text:
        index.write_text(text)


# ---------------------------------------------------------------- API reference: one page per room
ROOMS = ("scaling", "scaler", "training", "problems", "explore", "display", "lab")
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
# gradlab's own docstrings only: a method that overrides Keras' (ScaledOptimizer's) does not show Keras' text.
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# A dataclass's "Attributes:" section as fields of the class, not a second description of each attribute.
napoleon_use_ivar = True
# The notebooks' Plotly outputs are drawn from the static PNG stored beside each (see above).
suppress_warnings = ["mystnb.unknown_mime_type"]
# Without the network there is no intersphinx: names from TensorFlow, Keras, numpy, plotly, pandas
# and ipywidgets are not resolved. gradlab's own names are, and a broken one fails the build.
nitpick_ignore_regex = [
    (r"py:.*", r"(tf|tensorflow|keras|np|numpy|go|plotly|pd|pandas|ipywidgets|w|traitlets|anywidget)(\..*)?"),
]


def submodules(package) -> list[str]:
    """The modules of a room's folder (``gradlab.scaling.clipping``, ...), private ones left out."""
    import pkgutil

    return [
        f"{package.__name__}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    ]


def write_room_pages() -> None:
    """docs/api/rooms/<room>.rst (generated): the room's docstring, an autosummary of its ``__all__``,
    and each of its modules' docstrings (the reading path; their names are documented in the room)."""
    import importlib
    import inspect

    out = DOCS / "api" / "rooms"
    out.mkdir(parents=True, exist_ok=True)
    for name in ROOMS:
        module = importlib.import_module(f"gradlab.{name}")
        title = f"gradlab.{name}"
        lines = [title, "=" * len(title), "", f".. automodule:: gradlab.{name}", "   :no-members:", ""]
        members = list(getattr(module, "__all__", []))
        # Tables (MODES, PROBLEMS) have no docstring of their own: listed here, not summarised.
        tables = [m for m in members if not callable(getattr(module, m)) and not inspect.ismodule(getattr(module, m))]
        summarised = [m for m in members if m not in tables]
        if summarised:
            lines += [".. autosummary::", "   :toctree: ../generated", "   :nosignatures:", ""]
            lines += [f"   {member}" for member in summarised]
            lines.append("")
        for table in tables:
            lines += [f".. py:data:: {table}", "", f"   A table of the room: ``gradlab.{name}.{table}``.", ""]
        modules = [m for m in submodules(module) if m.rsplit(".", 1)[1] not in members]
        if modules:
            lines += ["Modules", "-------", ""]
            for sub in modules:
                lines += [f".. automodule:: {sub}", "   :no-members:", ""]
        text = "\n".join(lines)
        page = out / f"{name}.rst"
        if not page.exists() or page.read_text() != text:
            page.write_text(text)


def where(name: str) -> str:
    """The documented path of a front-door name: the room that holds it (``"gradlab.training.Trainer"``)."""
    value = getattr(gradlab, name)
    if isinstance(value, type(gradlab)):
        return value.__name__
    for room in ROOMS:
        module = sys.modules.get(f"gradlab.{room}")
        if module is not None and name in getattr(module, "__all__", ()) and getattr(module, name) is value:
            return f"gradlab.{room}.{name}"
    return f"{value.__module__}.{name}"


def summary(value) -> str:
    """The first line of a docstring."""
    return ((value.__doc__ or "").strip().splitlines() or [""])[0]


def write_front_door() -> None:
    """docs/api/front-door.rst (generated): each name of ``gradlab.__all__``, a target for
    ``gradlab.<name>`` in docstrings, pointing to the room page that documents it."""
    import inspect

    title = "gradlab: the front door"
    lines = [title, "=" * len(title), "", ".. automodule:: gradlab", "   :no-members:", ""]
    for name in gradlab.__all__:
        value = getattr(gradlab, name)
        path = where(name)
        if inspect.ismodule(value):
            lines += [f"``gradlab.{name}``: the module :mod:`{path}`.", ""]
            continue
        kind = "class" if inspect.isclass(value) else "function"
        lines += [f".. py:{kind}:: {name}", "", f"   {summary(value)}", ""]
        lines += [f"   In its room: :py:{kind[:5] if kind == 'class' else 'func'}:`{path}`.", ""]
    text = "\n".join(lines)
    page = DOCS / "api" / "front-door.rst"
    if not page.exists() or page.read_text() != text:
        page.write_text(text)


# ---------------------------------------------------------------- references to re-exported names
# gradlab documents each public name once, where its room exports it (gradlab.scaling.clip_by_norm),
# while docstrings name objects as their own module sees them (clip_by_norm inside
# gradlab.scaling.clipping, Trainer.fit inside gradlab.explore.compare). A reference Sphinx does not
# find is looked up as Python would, and resolved to the page of the object it names. A name that
# imports nothing (a stale path such as gradlab.transforms.Scaler) stays a warning, and fails the build;
# a name that exists but is not public (a private helper) is shown as text, without a link.
_MISSING = object()


def lookup(dotted: str):
    """The object ``dotted`` names (a module path, then attributes), or _MISSING."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attribute in parts[cut:]:
                value = getattr(value, attribute)
        except AttributeError:
            return _MISSING
        return value
    return _MISSING


def documented(env) -> dict:
    """id(object) -> the name it is documented under, for every object the Python domain holds."""
    cache = getattr(env, "_gradlab_documented", None)
    objects = env.get_domain("py").objects
    if cache is None or cache[0] != len(objects):
        table = {}
        # the room's name wins: the front door's entries (gradlab.X) only point to it; then the shortest
        for fullname in sorted(objects, key=lambda n: (n.count(".") == 1, len(n))):
            value = lookup(fullname)
            if value is not _MISSING:
                table.setdefault(id(value), fullname)
        cache = env._gradlab_documented = (len(objects), table)
    return cache[1]


def resolve_alias(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    if " " in target or not target:  # napoleon's free-text return types, not names
        return contnode
    module, klass = node.get("py:module"), node.get("py:class")
    if klass and node["reftype"] == "attr" and "." not in target:
        return contnode  # an instance attribute, set in __init__: nothing to look up or link
    candidates = [target]
    if module:
        candidates.insert(0, f"{module}.{target}")
        if klass:
            candidates.insert(0, f"{module}.{klass}.{target}")
        # a room's page documents objects of its modules: look in those modules too
        candidates += [f"{name}.{target}" for name in sorted(sys.modules) if name.startswith(module + ".")]
    table = documented(env)
    found = False
    for candidate in candidates:
        value = lookup(candidate)
        if value is _MISSING:
            continue
        found = True
        name = table.get(id(value))
        if name is not None:
            return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, "obj", name, node, contnode)
    if not found:  # by its last parts, as Sphinx does for `.name`: one documented object ending so
        matches = {n for n in env.get_domain("py").objects if n.endswith("." + target)}
        values = {id(lookup(n)) for n in matches}
        if len(values) == 1:
            name = min(matches, key=len)
            return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, "obj", name, node, contnode)
        return None  # names nothing: a broken reference
    return contnode  # exists, not public: text without a link


def setup(app):
    app.connect("missing-reference", resolve_alias)


copy_notebooks()
write_room_pages()
write_front_door()
