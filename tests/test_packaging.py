"""The pins, environments, Binder set-up, README and import structure agree with each other.

pyproject.toml is the reference. environment.yml (conda, development) repeats its
dependencies and the cpu, lab and test extras; binder/environment.yml repeats the
dependencies and the cpu and lab extras, and binder/postBuild installs gradlab.

The YAML files are read with the small line-based parser below, so that these tests
need nothing that pyproject.toml does not list (PyYAML, when installed, cross-checks
the parser).
"""

import ast
import os
import re
import tomllib
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gradlab"
# Imports point one way, from later to earlier modules (README, "Layout").
# Math, then training, then display, then controls: a module imports only modules before it.
IMPORT_ORDER = (
    "_checks",
    "_state",
    "scaling",
    "adaptive",
    "transforms",
    "history",
    "recording",
    "optimizer",
    "problems",
    "training",
    "plots",
    "widgets",
    "exercises",
    "report",
)
START_NOTEBOOK = "notebooks/00_start_here.ipynb"


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


def pyproject_requirements(*extras: str) -> dict[str, str]:
    project = pyproject()["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return requirements(lines)


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


# ---------------------------------------------------------------- environment.yml
def test_environment_yml_is_the_gradlab_env_on_conda_forge():
    env = env_file("environment.yml")
    assert env["name"] == "gradlab"
    assert env["channels"] == ["conda-forge"]
    assert "pip" in conda_deps(env)


@pytest.mark.parametrize("path", ["environment.yml", "binder/environment.yml"])
def test_python_is_3_11(path):
    pythons = [d for d in conda_deps(env_file(path)) if re.match(r"python\b", d)]
    assert len(pythons) == 1, pythons
    assert re.fullmatch(r"python\s*==?\s*3\.11(\.\*)?", pythons[0]), pythons[0]


def test_environment_yml_pins_equal_pyproject():
    """Every requirement of pyproject (dependencies + cpu, lab, test) with the same version, and nothing else."""
    expected = pyproject_requirements("cpu", "lab", "test")
    got = pip_requirements(env_file("environment.yml"))
    pinned = {name: spec for name, spec in expected.items() if spec.startswith("==")}
    assert pinned, "pyproject.toml pins nothing?"
    for name, spec in pinned.items():
        assert got.get(name) == spec, f"environment.yml: {name}{got.get(name, ' missing')}, pyproject: {name}{spec}"
    assert got == expected


def test_environment_yml_installs_gradlab_editable_last():
    lines = pip_lines(env_file("environment.yml"))
    assert lines[-1] == "-e ."
    assert lines.count("-e .") == 1


# ---------------------------------------------------------------- binder/
def test_binder_pins_agree_with_pyproject():
    expected = pyproject_requirements("cpu", "lab", "test", "gpu")
    got = pip_requirements(env_file("binder/environment.yml"))
    for name, spec in got.items():
        assert name in expected, f"binder/environment.yml lists {name}, which pyproject.toml does not"
        assert spec == expected[name], f"binder: {name}{spec}, pyproject: {name}{expected[name]}"


def test_binder_has_every_runtime_and_lab_requirement():
    """Binder ignores top-level files once binder/ exists: binder/ must bring everything itself."""
    got = pip_requirements(env_file("binder/environment.yml"))
    missing = set(pyproject_requirements("cpu", "lab")) - set(got)
    assert not missing, f"binder/environment.yml lacks {sorted(missing)}"


def test_binder_uses_cpu_tensorflow_and_jupyterlab():
    got = pip_requirements(env_file("binder/environment.yml"))
    assert "tensorflow-cpu" in got
    assert not any(name.startswith("tensorflow[") or name == "tensorflow" for name in got), sorted(got)
    assert "jupyterlab" in got


def test_binder_postbuild_is_executable_and_installs_gradlab():
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
    assert "--no-deps" in words, "the pins come from binder/environment.yml"
    assert words[-2:] == ["-e", "."], installs[0]
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
    return {p.stem: p for p in sorted(PACKAGE.glob("*.py")) if p.stem != "__init__"}


def gradlab_imports(path: Path) -> set[str]:
    """The gradlab modules ``path`` imports anywhere in it (``"gradlab"`` for the package itself)."""
    modules = set(module_files())
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "gradlab":
                    found.add(parts[1] if len(parts) > 1 else "gradlab")
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1:
                found.add("gradlab")  # above the package: treat as the package
                continue
            parts = (node.module or "").split(".") if node.module else []
            if node.level == 1:
                parts = ["gradlab", *parts]
            if not parts or parts[0] != "gradlab":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from gradlab import x: a module if x is one, else the package's namespace
                for alias in node.names:
                    found.add(alias.name if alias.name in modules else "gradlab")
    return found


def test_import_parser_sees_every_form(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "import gradlab.scaling\nfrom gradlab import _checks, MODES\nfrom .adaptive import AutoClip\n"
        "def f():\n    from gradlab.transforms import Scaler\nimport numpy\n"
    )
    assert gradlab_imports(src) == {"scaling", "_checks", "gradlab", "adaptive", "transforms"}


def test_scaling_imports_only_checks_from_gradlab():
    assert gradlab_imports(PACKAGE / "scaling.py") <= {"_checks"}


def test_imports_point_one_way():
    files = module_files()
    present = [m for m in IMPORT_ORDER if m in files]
    assert {"_checks", "scaling"} <= set(present), present
    unplaced = sorted(set(files) - set(IMPORT_ORDER) - {"__init__", "__main__"})
    assert not unplaced, f"place these modules in IMPORT_ORDER: {unplaced}"
    wrong = []
    for i, module in enumerate(present):
        imported = gradlab_imports(files[module])
        later = sorted(m for m in present[i + 1 :] if m in imported)
        if later:
            wrong.append(f"gradlab/{module}.py imports {later}")
        if "gradlab" in imported:
            wrong.append(f"gradlab/{module}.py imports the gradlab package (and so every module)")
    assert not wrong, f"imports must point one way ({' < '.join(present)}): " + "; ".join(wrong)
