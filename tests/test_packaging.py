"""Versions, environments, Binder set-up, Makefile, README, docs and import structure agree with each other.

pyproject.toml declares ranges (no ``==``): from the oldest supported set up.
requirements/lock-cpu.txt pins every package exactly, at versions inside those ranges: the
set the notebooks and notebooks/RESOURCES.md were measured with. `make`, environment.yml
(conda) and binder/postBuild install with ``-c requirements/lock-cpu.txt``.
requirements/oldest.txt is the oldest supported set: each requirement of gradlab[cpu] at the
lower bound of its range (`make test-oldest`, run by .ci/run, runs the unit tests there).

The YAML files are read with the small line-based parser below, so that these tests
need nothing that pyproject.toml does not list (PyYAML, when installed, cross-checks
the parser). Versions are compared with ``packaging``, which pytest itself requires.
"""

import ast
import importlib
import os
import re
import tomllib
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gradlab"
# Imports point one way, between rooms (docs/guide/development.md, "Layout: rooms"): each room is a folder of gradlab
# (the ground floor: the private helpers at the top level), and a module imports only from its
# own room and the rooms before it. Within a room, modules import each other without cycles.
ROOMS = ("ground", "scaling", "scaler", "training", "problems", "explore", "display", "lab", "exercises", "harness")
GROUND = ("_checks", "_extras", "_internals", "_state", "_text")
START_NOTEBOOK = "notebooks/00_start_here.ipynb"
LOCK = "requirements/lock-cpu.txt"
OLDEST = "requirements/oldest.txt"
# Requirements that must be ranges in pyproject.toml (the issue names them; every other one is checked too).
RANGED = ("keras", "tensorflow-cpu", "tensorflow", "plotly", "ipywidgets", "anywidget", "pandas", "scikit-learn")
# The test tools the unit tests use: the oldest set installs them too.
UNIT_TEST_TOOLS = ("pytest", "hypothesis", "psutil", "pytest-xdist")


# ---------------------------------------------------------------- parsing
def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement(line: str) -> tuple[str, str]:
    """``"scikit-learn==1.9.1"`` -> ``("scikit-learn", "==1.9.1")``; extras stay in the name."""
    m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*?)\s*", line)
    assert m, f"not a requirement: {line!r}"
    name, extras, spec = m.groups()
    return normalize(name) + (extras or ""), spec.replace(" ", "")


def requirements(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        name, spec = requirement(line)
        assert name not in out, f"{name} is listed twice"
        out[name] = spec
    return out


def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def self_references(lines) -> list[str]:
    """The extras of gradlab that ``lines`` name (``"gradlab[plots]"`` -> ``["plots"]``)."""
    out = []
    for line in lines:
        name, _ = requirement(line)
        if base(name) == "gradlab":
            out += name[len("gradlab[") : -1].split(",")
    return out


def with_self_references(extras) -> list[str]:
    """``extras`` and every extra they name through ``gradlab[...]``, each once, in order."""
    optional = pyproject()["project"]["optional-dependencies"]
    out: list[str] = []
    todo = list(extras)
    while todo:
        extra = todo.pop(0)
        if extra not in out:
            out.append(extra)
            todo += self_references(optional[extra])
    return out


def pyproject_requirements(*extras: str) -> dict[str, str]:
    """The requirements of gradlab with ``extras`` (and the extras they name), less gradlab itself."""
    project = pyproject()["project"]
    lines = list(project["dependencies"])
    for extra in with_self_references(extras):
        lines += project["optional-dependencies"][extra]
    return requirements(line for line in lines if base(requirement(line)[0]) != "gradlab")


def parse_env_yaml(text: str) -> dict:
    """Parse the subset of YAML that conda environment files use.

    Top-level ``key: value`` and ``key:`` followed by a ``- item`` list; list items
    are scalars or ``name:`` followed by a more indented ``- item`` list (``- pip:``).
    Comments and blank lines are skipped. Anything else is an error.
    """
    out: dict = {}
    key = None  # current top-level list
    sub = None  # current nested list (``- pip:``) and its item indent
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        if indent == 0:
            m = re.fullmatch(r"([A-Za-z_][\w-]*):\s*(.*)", body)
            assert m, f"line {number}: cannot parse {raw!r}"
            key, value = m.groups()
            out[key] = value if value else []
            sub = None
            continue
        assert body.startswith("- ") and key is not None and isinstance(out[key], list), (
            f"line {number}: cannot parse {raw!r}"
        )
        item = body[2:].strip()
        if sub is not None and indent > sub[1]:
            sub[0].append(item)
            continue
        m = re.fullmatch(r"([A-Za-z_][\w-]*):", item)
        if m:
            nested: list = []
            out[key].append({m.group(1): nested})
            sub = (nested, indent)
        else:
            out[key].append(item)
            sub = None
    return out


def env_file(path: str) -> dict:
    return parse_env_yaml((ROOT / path).read_text())


def conda_deps(env: dict) -> list[str]:
    return [d for d in env["dependencies"] if isinstance(d, str)]


def pip_lines(env: dict) -> list[str]:
    lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(lists) == 1, "expected one `- pip:` list under dependencies"
    return lists[0]


def pip_requirements(env: dict) -> dict[str, str]:
    return requirements(line for line in pip_lines(env) if not line.startswith("-"))


# ---------------------------------------------------------------- the parser itself
SAMPLE = """\
# comment
name: demo
channels:
  - conda-forge
dependencies:
  - python=3.11  # trailing comment
  - pip
  - pip:
      - keras==3.15.1
      # a comment inside the list
      - numpy>=1.26
      - -e .
"""


def test_env_parser_reads_a_conda_environment():
    assert parse_env_yaml(SAMPLE) == {
        "name": "demo",
        "channels": ["conda-forge"],
        "dependencies": ["python=3.11", "pip", {"pip": ["keras==3.15.1", "numpy>=1.26", "-e ."]}],
    }


@pytest.mark.parametrize("path", ["environment.yml", "binder/environment.yml"])
def test_env_parser_agrees_with_pyyaml(path):
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; the line parser is checked on SAMPLE only")
    assert env_file(path) == yaml.safe_load((ROOT / path).read_text())


# ---------------------------------------------------------------- pyproject ranges
def base(name: str) -> str:
    """``"tensorflow[and-cuda]"`` -> ``"tensorflow"``: the distribution a constraint names."""
    return name.split("[")[0]


def lower_bound(spec: str) -> Version:
    (bound,) = [s for s in SpecifierSet(spec) if s.operator == ">="]
    return Version(bound.version)


def all_requirements() -> dict[str, str]:
    return pyproject_requirements(*pyproject()["project"]["optional-dependencies"])


def test_pyproject_declares_ranges_not_pins():
    """Every requirement has one ``>=`` lower bound and no ``==``/``===``: exact versions live in the lock."""
    reqs = all_requirements()
    for name in RANGED:
        assert any(base(n) == name for n in reqs), f"pyproject.toml does not list {name}"
    for name, spec in reqs.items():
        assert "==" not in spec, f"pyproject.toml pins {name}{spec}: give a range; the lock holds exact versions"
        assert lower_bound(spec), name  # exactly one >=


def test_cpu_and_gpu_extras_allow_the_same_tensorflow():
    extras = pyproject()["project"]["optional-dependencies"]
    (cpu,) = requirements(extras["cpu"]).items()
    (gpu,) = requirements(extras["gpu"]).items()
    assert (cpu[0], gpu[0]) == ("tensorflow-cpu", "tensorflow[and-cuda]")
    assert cpu[1] == gpu[1]


# ---------------------------------------------------------------- constraints files
def pins(path: str) -> dict[str, Version]:
    """``name==version`` lines (comments and blank lines skipped): every line an exact pin."""
    out = {}
    for number, raw in enumerate((ROOT / path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!-]*)", line)
        assert m, f"{path}:{number}: not an exact name==version pin: {raw!r}"
        name = normalize(m.group(1))
        assert name not in out, f"{path}: {name} is pinned twice"
        out[name] = Version(m.group(2))
    return out


@pytest.mark.parametrize("path", [LOCK, OLDEST])
def test_constraints_files_open_with_a_comment_and_leave_gradlab_out(path):
    first = (ROOT / path).read_text().splitlines()[0]
    assert first.startswith("# ") and len(first) > 10, f"{path}: first line should say what the file is for"
    assert "gradlab" not in pins(path)


def test_lock_pins_every_requirement_inside_its_range():
    """Each requirement of pyproject (dependencies and every extra) is pinned, and the pin is in range."""
    lock = pins(LOCK)
    for name, spec in all_requirements().items():
        assert base(name) in lock, f"{LOCK} does not pin {base(name)}"
        assert lock[base(name)] in SpecifierSet(spec), f"{LOCK}: {base(name)}=={lock[base(name)]} is outside {spec}"


def test_lock_pins_one_tensorflow_for_cpu_and_gpu():
    lock = pins(LOCK)
    assert lock["tensorflow"] == lock["tensorflow-cpu"]


def test_lock_pins_the_whole_environment():
    """Not only the direct requirements: what they pull in too (a few well-known ones)."""
    lock = pins(LOCK)
    for name in (
        "tensorboard-data-server",
        "ml-dtypes",
        "protobuf",
        "jupyter-server",
        "jupyterlab-widgets",
        "packaging",
    ):
        assert name in lock, f"{LOCK} lacks {name}: regenerate it from `.venv/bin/pip freeze --exclude-editable`"


# What `make test-oldest` installs gradlab with: the unit tests draw figures and build the lab.
OLDEST_EXTRAS = ("cpu", "lab")


def test_oldest_set_is_each_lower_bound():
    """requirements/oldest.txt: gradlab[cpu,lab] and the unit-test tools, each at its lower bound."""
    reqs = pyproject_requirements(*OLDEST_EXTRAS, "test")
    expected = set(pyproject_requirements(*OLDEST_EXTRAS)) | set(UNIT_TEST_TOOLS)
    oldest = pins(OLDEST)
    assert set(oldest) == expected, (
        f"{OLDEST}: extra {sorted(set(oldest) - expected)}, missing {sorted(expected - set(oldest))}"
    )
    for name, version in oldest.items():
        assert version == lower_bound(reqs[name]), f"{OLDEST}: {name}=={version}, pyproject: {name}{reqs[name]}"


def test_oldest_set_is_older_than_the_lock():
    lock = pins(LOCK)
    for name, version in pins(OLDEST).items():
        assert version <= lock[name], f"{name}: oldest {version} is newer than the lock's {lock[name]}"


# ---------------------------------------------------------------- make and CI
def test_make_installs_from_the_lock():
    text = (ROOT / "Makefile").read_text()
    assert re.search(rf"^LOCK\s*\??=\s*{re.escape(LOCK)}\s*$", text, re.M), "Makefile: LOCK = requirements/lock-cpu.txt"
    (rule,) = re.findall(r"^\$\(STAMP\):([^|\n]*)", text, re.M)
    assert "$(LOCK)" in rule.split(), "the install stamp must depend on the lock"
    installs = re.findall(r"^\t\$\(BIN\)/python -m pip install (.*)$", text, re.M)
    assert any("-c $(LOCK)" in line and '-e ".[$(EXTRAS)]"' in line for line in installs), installs


def test_make_test_oldest_installs_the_oldest_set():
    text = (ROOT / "Makefile").read_text()
    assert re.search(rf"^OLDEST_PINS\s*\??=\s*{re.escape(OLDEST)}\s*$", text, re.M)
    assert re.search(r"^test-oldest:", text, re.M)
    (line,) = re.findall(r"pip install .*-c \$\(OLDEST_PINS\).*", text)
    (extras,) = re.findall(r'-e "\.\[([a-z,]+)\]"', line)
    assert tuple(extras.split(",")) == OLDEST_EXTRAS, line


def test_ci_runs_make_test_then_the_oldest_set():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "set -euo pipefail" in lines
    assert lines.index("make test") < lines.index("make test-oldest")


def test_oldest_venv_is_ignored_by_git():
    assert ".venv-oldest/" in (ROOT / ".gitignore").read_text().split()


# ---------------------------------------------------------------- environment.yml
def test_environment_yml_is_the_gradlab_env_on_conda_forge():
    env = env_file("environment.yml")
    assert env["name"] == "gradlab"
    assert env["channels"] == ["conda-forge"]
    assert "pip" in conda_deps(env)


@pytest.mark.parametrize("path", ["environment.yml", "binder/environment.yml"])
def test_python_is_3_11(path):
    """The conda files keep Python 3.11, where the lock was measured; gradlab supports 3.11-3.13 (requires-python)."""
    assert Version("3.11") in SpecifierSet(pyproject()["project"]["requires-python"])
    pythons = [d for d in conda_deps(env_file(path)) if re.match(r"python\b", d)]
    assert len(pythons) == 1, pythons
    assert re.fullmatch(r"python\s*==?\s*3\.11(\.\*)?", pythons[0]), pythons[0]


def test_environment_yml_installs_from_the_lock():
    """conda runs pip in the file's directory: the lock as constraints, then gradlab[cpu,lab,test], editable."""
    lines = pip_lines(env_file("environment.yml"))
    assert lines == [f"-c {LOCK}", "-e .[cpu,lab,test]"], lines
    assert not pip_requirements(env_file("environment.yml")), "versions come from the lock, not from here"


# ---------------------------------------------------------------- binder/
def test_binder_environment_leaves_packages_to_postbuild():
    """Binder ignores top-level files once binder/ exists; postBuild installs everything from the lock."""
    env = env_file("binder/environment.yml")
    assert conda_deps(env) and "pip" in conda_deps(env)
    assert not any(isinstance(d, dict) for d in env["dependencies"]), "no pip list: binder/postBuild installs"
    assert [d for d in conda_deps(env) if not re.match(r"(python|pip)\b", d)] == []


def test_binder_postbuild_is_executable_and_installs_gradlab_from_the_lock():
    path = ROOT / "binder" / "postBuild"
    assert os.access(path, os.X_OK), "binder/postBuild must be executable (chmod +x)"
    text = path.read_text()
    lines = [line.strip() for line in text.splitlines()]
    assert re.fullmatch(r"#!\s*(/usr/bin/env\s+bash|/bin/bash)", lines[0]), lines[0]
    assert lines[1].startswith("#"), "second line: a comment saying what the file is for"
    assert "set -euo pipefail" in lines
    installs = [line for line in lines if re.match(r"(python\s+-m\s+)?pip\s+install\b", line)]
    assert len(installs) == 1, installs
    words = installs[0].split()
    assert "--no-deps" not in words, "postBuild installs the dependencies, from the lock"
    assert words[words.index("-c") + 1] == LOCK, installs[0]
    assert words[-2] == "-e", installs[0]
    m = re.fullmatch(r"""(["']?)\.\[([a-z,-]+)\]\1""", words[-1])
    assert m, installs[0]
    extras = set(m.group(2).split(","))
    assert {"cpu", "lab"} <= extras and "gpu" not in extras, "Binder: CPU TensorFlow and JupyterLab"
    assert re.search(r'^cd\s+"\$\(dirname\s+"\$\{?(BASH_SOURCE\[0\]|0)\}?"\)/\.\."', text, re.M), (
        "postBuild must run the install from the repository root"
    )
    for rebuild in ("jupyter lab build", "jupyter labextension install", "jupyter-lab build"):
        assert rebuild not in text, f"{rebuild!r} rebuilds JupyterLab; extensions are prebuilt"


@pytest.mark.parametrize("path", ["environment.yml", "binder/environment.yml", "binder/postBuild"])
def test_environment_files_open_with_a_comment(path):
    lines = (ROOT / path).read_text().splitlines()
    first = lines[1] if lines[0].startswith("#!") else lines[0]
    assert first.startswith("# ") and len(first) > 10, f"{path}: first line should say what the file is for"


# ---------------------------------------------------------------- README
@pytest.fixture
def readme() -> str:
    path = ROOT / "README.md"
    if not path.exists():
        pytest.skip("README.md does not exist yet")
    return path.read_text()


@pytest.mark.parametrize("command", ["make lab", "make test"])
def test_readme_gives_the_two_commands(readme, command):
    assert command in readme


def test_readme_binder_badge_opens_the_start_notebook_in_jupyterlab(readme):
    badges = re.findall(
        r"\[!\[[^\]]*\]\(https://mybinder\.org/badge[^)]*\)\]\((https://mybinder\.org/v2/[^)\s]+)\)", readme
    )
    assert badges, "no mybinder badge in README.md"
    first = parse_qs(urlparse(badges[0]).query)
    assert first.get("urlpath") == [f"lab/tree/{START_NOTEBOOK}"], badges[0]
    for url in badges:  # every other badge opens a notebook that exists, in JupyterLab
        (urlpath,) = parse_qs(urlparse(url).query)["urlpath"]
        assert urlpath.startswith("lab/tree/notebooks/"), url
        assert (ROOT / urlpath.removeprefix("lab/tree/")).exists(), f"{url}: no such notebook"


def test_readme_lists_every_notebook(readme):
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert f"(notebooks/{nb.name})" in readme, f"README does not list {nb.name}"


# ---------------------------------------------------------------- imports point one way
def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name below ``gradlab`` (``"scaler.modes"``, ``"_checks"``)."""
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = p.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            out[".".join(parts)] = p
    return out


def room(module: str) -> str:
    top = module.split(".")[0]
    return "ground" if top in GROUND else top


def gradlab_imports(path: Path) -> set[str]:
    """The gradlab modules ``path`` imports anywhere in it, as dotted names below ``gradlab``
    (``"gradlab"`` for the package itself, whose namespace holds every module)."""
    modules = set(module_files())
    package = ".".join(path.relative_to(PACKAGE).parent.parts) if path.is_relative_to(PACKAGE) else ""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "gradlab":
                    found.add(".".join(parts[1:]) or "gradlab")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                if node.level - 1 > len(package.split(".") if package else []):
                    found.add("gradlab")  # above the package: treat as the package
                    continue
                name = ".".join([*base, *((node.module or "").split(".") if node.module else [])])
            elif (node.module or "").split(".")[0] == "gradlab":
                name = ".".join(node.module.split(".")[1:])
            else:
                continue
            for alias in node.names:
                sub = f"{name}.{alias.name}" if name else alias.name
                if sub in modules:
                    found.add(sub)
                elif name:
                    found.add(name)
                else:  # from gradlab import x, where x is not a module: the package's namespace
                    found.add("gradlab")
    return found


def test_import_parser_sees_every_form(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "import gradlab.scaling\nfrom gradlab import _checks, MODES\nfrom gradlab.scaler import modes\n"
        "def f():\n    from gradlab.training.trainer import Trainer\nimport numpy\n"
    )
    assert gradlab_imports(src) == {"scaling", "_checks", "gradlab", "scaler.modes", "training.trainer"}


def test_relative_imports_resolve_inside_their_room():
    found = gradlab_imports(PACKAGE / "scaler" / "compose.py")
    assert found and all(room(m) in ("ground", "scaling", "scaler") for m in found), found


def test_scaling_imports_only_the_ground_floor():
    for name, path in module_files().items():
        if room(name) == "scaling":
            assert {room(m) for m in gradlab_imports(path)} <= {"ground", "scaling"}, name


def test_every_module_is_in_a_room():
    unplaced = sorted(m for m in module_files() if room(m) not in ROOMS and m not in ("__main__",))
    assert not unplaced, f"put these modules in a room (a folder of gradlab named in ROOMS): {unplaced}"
    for name in ROOMS[1:]:
        assert (PACKAGE / name / "__init__.py").exists(), f"room {name!r} is not a folder"


def test_imports_point_one_way():
    files = module_files()
    wrong = []
    edges = {}
    for module, path in files.items():
        if module == "__main__":
            continue
        imported = gradlab_imports(path)
        if "gradlab" in imported:
            wrong.append(f"gradlab/{module} imports the gradlab package (and so every module)")
        mine = ROOMS.index(room(module))
        later = sorted(m for m in imported if m != "gradlab" and ROOMS.index(room(m)) > mine)
        if later:
            wrong.append(f"gradlab/{module} ({room(module)}) imports {later}")
        edges[module] = {m for m in imported if m != "gradlab" and room(m) == room(module) and m != module}
    assert not wrong, f"imports must point one way ({' < '.join(ROOMS)}): " + "; ".join(wrong)
    # no cycles inside a room (a room's __init__ may import its own modules, and they not it)
    for module, targets in edges.items():
        for t in targets:
            if module in files and "." in module and t == module.rsplit(".", 1)[0]:
                wrong.append(f"gradlab/{module} imports its room's __init__ ({t}): import the module itself")
    assert not wrong, "; ".join(wrong)

    def reach(start, seen):
        for t in edges.get(start, ()):
            if t not in seen:
                seen.add(t)
                reach(t, seen)
        return seen

    cycles = sorted(m for m in edges if m in reach(m, set()))
    assert not cycles, f"these modules import each other in a cycle: {cycles}"


# Private names of TensorFlow, Keras and plotly: used only through gradlab/_internals.py.
PRIVATE_NAMES = re.compile(r"tensorflow\.python|tf\.__internal__|keras\.src|_pywrap|_js2py_|_last_trace_edit_id")
# Uses that need a redesign rather than a move (gradlab/_internals.py names them): none may be added.
NOT_YET_BEHIND_THE_ADAPTER: set[tuple[str, str]] = set()


def test_private_apis_only_in_the_adapter_module():
    found = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ("gradlab/_internals.py", "tests/test_packaging.py"):
            continue
        text = path.read_text()
        found += [(rel, m.group(0)) for m in PRIVATE_NAMES.finditer(text)]
        found += [(rel, n) for r, n in NOT_YET_BEHIND_THE_ADAPTER if r != rel and n in text]
    assert found == []
    for rel, name in NOT_YET_BEHIND_THE_ADAPTER:
        assert name in (ROOT / rel).read_text(), f"{name} is gone from {rel}: remove it from the list"
        assert name in (PACKAGE / "_internals.py").read_text(), "the adapter's docstring names it"


def test_every_room_is_packaged():
    """A non-editable install (a wheel, Binder) must carry every folder of gradlab, not only the top one."""
    import tomllib
    from fnmatch import fnmatchcase

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert isinstance(config["packages"], dict), "list the packages with [tool.setuptools.packages.find], not by hand"
    include = config["packages"]["find"]["include"]  # setuptools matches these globs on dotted package names
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    left_out = sorted(f for f in folders if not any(fnmatchcase(f, pattern) for pattern in include))
    assert len(folders) > 5 and not left_out, left_out


# ---------------------------------------------------------------- modules a reader can hold
MAX_LINES = 500
# The training step's modules: what training/ may hold (the problems, the advisor and the harness have rooms of their own).
TRAINING_STEP = {
    "__init__",
    "trainer",
    "inputs",
    "evaluation",
    "progress",
    "update",
    "recording",
    "history",
    "optimizer",
    "optimizers",
    "callbacks",
    "per_example",
}


def test_no_module_is_over_500_lines():
    long = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            long[rel] = lines
    assert not long, f"modules over {MAX_LINES} lines (split them by responsibility): {long}"


def test_training_holds_only_the_training_step():
    found = {p.stem for p in (PACKAGE / "training").glob("*.py")}
    assert "trainer" in found and found <= TRAINING_STEP, f"not the training step: {sorted(found - TRAINING_STEP)}"


def private_uses(path: Path) -> list[str]:
    """Underscore names of other gradlab modules that ``path`` uses: ``from gradlab.x import _y`` and
    ``x._y`` on an imported gradlab module. The ground floor's modules (``_checks``, ...) are exempt:
    their helpers are there for every room. Dunder names and private modules (``exercises._common``) are
    not private names of a module."""
    modules = set(module_files())
    package = ".".join(path.relative_to(PACKAGE).parent.parts) if path.is_relative_to(PACKAGE) else ""

    def absolute(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = ["gradlab", *package.split(".")] if package else ["gradlab"]
        base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, *([node.module] if node.module else [])])

    def below(name: str) -> str | None:
        """``"gradlab.a.b"`` -> ``"a.b"`` (``"gradlab"`` for the package); None outside gradlab."""
        parts = name.split(".")
        return (".".join(parts[1:]) or "gradlab") if parts[0] == "gradlab" else None

    def exempt(module: str, attr: str) -> bool:
        return (
            not attr.startswith("_")
            or attr.startswith("__")
            or f"{module}.{attr}".removeprefix("gradlab.") in modules
            or room(module) == "ground"
        )

    tree = ast.parse(path.read_text(), str(path))
    bound: dict[str, str] = {}  # a local name -> the gradlab module it holds
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if below(alias.name) is not None:
                    if alias.asname:
                        bound[alias.asname] = below(alias.name)
                    else:
                        bound["gradlab"] = "gradlab"
        elif isinstance(node, ast.ImportFrom):
            source = below(absolute(node))
            if source is None:
                continue
            for alias in node.names:
                sub = alias.name if source == "gradlab" else f"{source}.{alias.name}"
                if sub in modules:
                    bound[alias.asname or alias.name] = sub
                elif not exempt(source, alias.name):
                    found.append(f"from {absolute(node)} import {alias.name}")

    def dotted(node) -> str | None:
        if isinstance(node, ast.Name):
            return bound.get(node.id)
        if isinstance(node, ast.Attribute):
            inner = dotted(node.value)
            if inner is None:
                return None
            name = node.attr if inner == "gradlab" else f"{inner}.{node.attr}"
            return name if name in modules else None
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            module = dotted(node.value)
            if module is not None and not exempt(module, node.attr):
                found.append(f"{module}.{node.attr}")
    return found


def test_private_name_parser_sees_both_forms(tmp_path):
    (tmp_path / "m.py").write_text(
        "from gradlab.display.plots import _list, finite\nfrom gradlab import _checks\n"
        "from gradlab.scaler import modes as m\nimport gradlab.display.plots\n"
        "m._by(1)\n_checks._fail('a', 'b', 1)\ngradlab.display.plots._thin(3, 2)\nm.__doc__\n"
    )
    assert private_uses(tmp_path / "m.py") == [
        "from gradlab.display.plots import _list",
        "scaler.modes._by",
        "display.plots._thin",
    ]


def test_no_module_uses_another_modules_private_names():
    found = {}
    for module, path in module_files().items():
        uses = private_uses(path)
        if uses:
            found[module] = uses
    assert not found, f"private names of other modules (make them public or keep them at home): {found}"


# ---------------------------------------------------------------- the front door
OPTIONAL_UI = ("plotly", "ipywidgets", "anywidget")


def python_in_subprocess(code: str) -> str:
    """Run ``code`` with this interpreter, this checkout first on the path; return its stdout."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_front_door_is_small():
    import gradlab

    assert len(gradlab.__all__) <= 20, gradlab.__all__
    assert len(set(gradlab.__all__)) == len(gradlab.__all__)
    for name in gradlab.__all__:
        assert getattr(gradlab, name) is not None, name


def test_moved_names_say_where_they_live():
    import gradlab

    for name, room_name in gradlab._MOVED.items():
        assert name not in gradlab.__all__
        assert hasattr(importlib.import_module(room_name), name), f"{room_name} has no {name}"
        with pytest.raises(AttributeError, match=re.escape(f"{room_name}.{name}")):
            getattr(gradlab, name)


CORE = ("gradlab", "gradlab.scaling", "gradlab.scaler", "gradlab.training", "gradlab.problems", "gradlab.explore")


def test_import_loads_no_plotting_or_widgets_until_used():
    """A training program that imports gradlab (or its core rooms) loads no plotly and no Jupyter
    widgets; ``gradlab.plots`` loads plotly, ``gradlab.Lab`` the widgets. One fresh interpreter."""
    code = (
        f"import sys, {', '.join(CORE)}\n"
        f"print([m for m in {OPTIONAL_UI!r} if m in sys.modules])\n"
        "gradlab.plots\n"
        "print('plotly' in sys.modules, 'ipywidgets' in sys.modules)\n"
        "print(gradlab.Lab.__module__, 'ipywidgets' in sys.modules, 'anywidget' in sys.modules)\n"
    )
    loaded, after_plots, after_lab = python_in_subprocess(code).splitlines()
    assert loaded == "[]", f"import {', '.join(CORE)} loaded {loaded}"
    assert after_plots == "True False", after_plots
    assert after_lab == "gradlab.lab.lab True True", after_lab


# Each group runs in one fresh interpreter with its packages hidden (None in sys.modules, as if not
# installed); each use must fail with the extra that brings the package. Uses that fail before they
# import anything share an interpreter.
MISSING = {
    "plotly": (["plotly"], [("gradlab.plots", "plotly", "plots"), ("gradlab.Lab", "plotly", "lab")]),
    "widgets": (["ipywidgets"], [("gradlab.Lab", "ipywidgets", "lab")]),
    "core-extras": (
        ["pandas", "sklearn", "tensorboard"],
        [
            ("gradlab.problems.digits()", "scikit-learn", "lab"),
            ("gradlab.History.empty(['dense'], ['none']).to_pandas()", "pandas", "plots"),
            ("gradlab.History.empty(['dense'], ['none']).to_tensorboard(TMP)", "tensorboard", "plots"),
        ],
    ),
}


@pytest.mark.parametrize("group", list(MISSING))
def test_missing_extra_says_what_to_install(group, tmp_path):
    hidden, uses = MISSING[group]
    lines = [f"import sys; sys.modules.update(dict.fromkeys({hidden!r}))", "import gradlab", f"TMP = {str(tmp_path)!r}"]
    for use, _, _ in uses:
        lines += [
            "try:",
            f"    {use}",
            "except ImportError as e:",
            "    print(repr(str(e)))",
            "else:",
            "    print('no error')",
        ]
    out = python_in_subprocess("\n".join(lines)).splitlines()
    assert len(out) == len(uses), out
    for line, (use, package, extra) in zip(out, uses):
        assert package in line and f'pip install "gradlab[{extra}]"' in line, f"{use}: {line}"


def test_extras_module_names_extras_that_exist():
    from gradlab import _extras

    extras = pyproject()["project"]["optional-dependencies"]
    for module, extra in _extras.EXTRAS.items():
        assert extra in extras, f"gradlab/_extras.py names extra {extra!r}, which pyproject.toml lacks"
        distribution = normalize(_extras.DISTRIBUTIONS.get(module, module))
        if module != "traitlets":  # ipywidgets brings it
            assert distribution in pyproject_requirements(extra), f"{distribution} is not in gradlab[{extra}]"


def test_core_needs_only_keras_and_numpy():
    """TensorFlow from its extra, the rest from `plots` and `lab`: a training server gets what it runs."""
    assert set(pyproject_requirements()) == {"keras", "numpy"}
    assert {"plotly", "pandas"} <= set(pyproject_requirements("plots"))
    lab = set(pyproject_requirements("lab"))
    assert {"plotly", "ipywidgets", "anywidget", "scikit-learn", "jupyterlab", "ipykernel"} <= lab


# ---------------------------------------------------------------- any supported Python
SUPPORTED = ("3.11", "3.12", "3.13")


def test_requires_python_and_classifiers_agree():
    project = pyproject()["project"]
    spec = SpecifierSet(project["requires-python"])
    for minor in range(9, 16):
        version = f"3.{minor}"
        assert (Version(version) in spec) == (version in SUPPORTED), f"requires-python {spec} and {version}"
    listed = {c.rsplit(" :: ", 1)[1] for c in project["classifiers"] if re.fullmatch(r".*Python :: 3\.\d+", c)}
    assert listed == set(SUPPORTED), listed


def test_makefile_has_no_fixed_python():
    text = (ROOT / "Makefile").read_text()
    assert not re.search(r"^PYTHON\s*\??:?=\s*python3\.\d+\s*$", text, re.M), "PYTHON must not default to one version"
    (check,) = re.findall(r"^PYTHON_IN_RANGE\s*:?=\s*(.*)$", text, re.M)
    low, high = SUPPORTED[0].split("."), SUPPORTED[-1].split(".")
    assert f"({low[0]}, {low[1]}) <= sys.version_info[:2] <= ({high[0]}, {high[1]})" in check, check
    for version in SUPPORTED:
        assert f"python{version}" in text, f"the Makefile does not look for python{version}"


def shim(folder: Path, name: str, target: str | None) -> None:
    """``folder/name``: the real interpreter (``target``), or a Python out of range (exits 1 on the check)."""
    path = folder / name
    if target:
        path.symlink_to(target)
    else:
        path.write_text("#!/bin/sh\nexit 1\n")
        path.chmod(0o755)


@pytest.mark.parametrize(
    ("on_path", "expected"),
    [
        ({"python3": True, "python3.11": True}, "python3"),
        ({"python3": False, "python3.12": True, "python3.11": True}, "python3.12"),
        ({"python3.13": True}, "python3.13"),
        ({"python3": False}, None),
    ],
    ids=["python3-in-range", "python3-out-of-range", "only-python3.13", "none"],
)
def test_make_finds_a_supported_python(tmp_path, on_path, expected):
    """`make which-python` with only the given interpreters on PATH (True: in range, False: out of range)."""
    import shutil
    import subprocess
    import sys

    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    for name, ok in on_path.items():
        shim(tmp_path, name, sys.executable if ok else None)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["PATH"] = str(tmp_path)
    done = subprocess.run([make, "-s", "which-python"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)
    if expected is None:
        assert done.returncode != 0 and "make PYTHON=" in done.stdout, done.stdout + done.stderr
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith(f"make: using {expected} (Python 3."), done.stdout


def test_make_refuses_a_python_out_of_range(tmp_path):
    import shutil
    import subprocess

    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    shim(tmp_path, "python3.10", None)
    done = subprocess.run(
        [make, "-s", "which-python", f"PYTHON={tmp_path / 'python3.10'}"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode != 0 and "needs Python 3.11, 3.12 or 3.13" in done.stdout, done.stdout


# ---------------------------------------------------------------- README and docs
README_LIMIT = 12_000


def test_readme_is_short(readme):
    assert len(readme) <= README_LIMIT, f"README.md has {len(readme)} characters; the guide is docs/guide/"


def test_readme_says_where_the_docs_are(readme):
    assert "make docs" in readme
    assert "docs/guide/" in readme


def test_ci_builds_the_docs_after_the_tests():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert lines.index("make test") < lines.index("make docs")


def test_make_docs_fails_on_any_warning():
    text = (ROOT / "Makefile").read_text()
    (rule,) = re.findall(r"^docs:.*\n((?:\t.*\n)+)", text, re.M)
    assert "EXTRAS=$(EXTRAS),docs" in rule, "make docs installs the docs extra from the lock"
    (build,) = [line for line in rule.splitlines() if "sphinx" in line]
    for flag in ("-W", "--keep-going", "-n"):
        assert flag in build.split(), f"make docs: sphinx without {flag}"
    assert "docs/_build" in (ROOT / ".gitignore").read_text()
