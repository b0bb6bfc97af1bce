"""What the committed notebooks contain, and what they cost to run (see tools/run_notebooks.py)."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
RESOURCES = NOTEBOOKS / "RESOURCES.md"
NESTED = "GRADLAB_NBVAL_OTHER_KERNELS"  # set inside the nested nbval run below


def test_there_are_notebooks():
    assert PATHS, "no notebooks/NN_topic.ipynb found"


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_stored_notebook_is_clean(path):
    text = path.read_text()
    nb = json.loads(text)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"  # no kernel dialog in JupyterLab
    assert len(text) < 1_500_000, "plotly.js or large outputs embedded?"
    assert "cdn.plot.ly" not in text and "widget-state" not in text
    assert not re.search(r"absl::InitializeLog|cpu_feature_guard|port\.cc:\d+\]", text), "TensorFlow log lines"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "stored with outputs: run tools/run_notebooks.py"
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors
    first = "".join(nb["cells"][0]["source"])
    assert first.startswith("# ") and "learn" in first.lower(), "open with what the reader will learn"
    assert "summary" in "".join(nb["cells"][-1]["source"]).lower(), "close with a summary"


def _resources():
    rows = re.findall(r"^\| (\S+\.ipynb) \| ([\d.]+) \| (\d+) \|", RESOURCES.read_text(), re.M)
    return {name: (float(s), int(mib)) for name, s, mib in rows}


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_fits_binder(path):
    """Measured run time < 90 s on 2 cores and kernel peak memory < 1.5 GB."""
    measured = _resources()
    assert path.name in measured, f"measure it: python tools/run_notebooks.py {path.relative_to(NOTEBOOKS.parent)}"
    seconds, mib = measured[path.name]
    assert seconds < 90, f"{path.name} ran {seconds} s"
    assert mib < 1536, f"{path.name} kernel peaked at {mib} MiB"


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_has_prediction_and_graded_exercise(path):
    """A "predict, then run" prompt; an exercise graded by a gradlab check; its solution hidden."""
    nb = json.loads(path.read_text())
    markdown = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert any("predict" in m.lower() for m in markdown), "no 'predict, then run' prompt"
    checks = [c for c in code if re.search(r"gradlab\.exercises|from gradlab\.exercises import", "".join(c["source"]))]
    assert checks, "no exercise graded by a gradlab.exercises check"
    verdicts = "".join("".join(o.get("text", "")) for c in code for o in c["outputs"])  # text: str or lines
    assert "Not yet:" in verdicts and "Correct:" in verdicts, "show a wrong answer's hint and the solution passing"
    assert any(c["metadata"].get("jupyter", {}).get("source_hidden") for c in code), "hide the solution cell"


def _other_onednn_setting() -> str:
    """The ``TF_ENABLE_ONEDNN_OPTS`` value that selects the float kernels this process does not use.

    TensorFlow turns oneDNN on by default only on x86 CPUs with AVX-512 VNNI, AMX and the like: there "0"
    takes the other kernel path. On CPUs without them (AVX2 only) oneDNN is already off, "0" changes
    nothing and "1" switches it on.
    """
    from gradlab._internals import onednn_enabled  # private TensorFlow API, behind gradlab's adapter

    return "0" if onednn_enabled() else "1"


VERIFIED = NOTEBOOKS / "OTHER_KERNELS.sha256"  # notebooks whose stored outputs passed nbval on the other kernels


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(setting: str) -> dict[str, str]:
    """``{notebook name: sha256}`` of the notebooks already checked with this TF_ENABLE_ONEDNN_OPTS setting."""
    if not VERIFIED.exists():
        return {}
    rows = re.findall(r"^([0-9a-f]{64})  (\S+\.ipynb)  TF_ENABLE_ONEDNN_OPTS=(\d)$", VERIFIED.read_text(), re.M)
    return {name: digest for digest, name, s in rows if s == setting}


def _record_verified(setting: str, paths) -> None:
    known = {}
    if VERIFIED.exists():
        known = {
            (name, s): digest
            for digest, name, s in re.findall(
                r"^([0-9a-f]{64})  (\S+\.ipynb)  TF_ENABLE_ONEDNN_OPTS=(\d)$", VERIFIED.read_text(), re.M
            )
        }
    known.update({(p.name, setting): _sha256(p) for p in paths})
    lines = [f"{d}  {name}  TF_ENABLE_ONEDNN_OPTS={s}" for (name, s), d in sorted(known.items())]
    header = (
        "# Notebooks whose stored outputs passed nbval with the other oneDNN float kernels\n"
        "# (tests/test_notebooks.py::test_stored_outputs_do_not_depend_on_float_kernels writes this file).\n"
    )
    VERIFIED.write_text(header + "\n".join(lines) + "\n")


@pytest.mark.skipif(os.environ.get(NESTED) == "1", reason="already inside the nested nbval run")
def test_stored_outputs_do_not_depend_on_float_kernels():
    """The stored outputs must not depend on the CPU's float kernels.

    Op determinism makes runs bit-identical on one machine, but another CPU's kernels round differently in
    the last bits, and an exploding run amplifies that at every step: a checked cell must print only what
    holds with a wide margin (chaotic figures go in `# NBVAL_IGNORE_OUTPUT` cells). Switching oneDNN
    (`TF_ENABLE_ONEDNN_OPTS`) takes another kernel path with other rounding, a stand-in for another CPU:
    nbval must pass there too. It runs in a subprocess with the same python and the same addopts
    (pyproject.toml), on the notebooks only, so it does not collect this test again.

    Only notebooks that changed since they last passed there run (notebooks/OTHER_KERNELS.sha256 keeps the
    sha256 of each notebook file that passed, per setting): the whole run costs about 5 minutes, and a
    notebook's sensitivity to rounding comes from what its cells compute and print. A change in gradlab
    that alters a notebook's numbers changes its stored outputs, and so its hash, when it is re-executed.
    """
    setting = _other_onednn_setting()
    verified = _verified(setting)
    changed = [p for p in PATHS if verified.get(p.name) != _sha256(p)]
    if changed:
        _nbval_on_other_kernels(setting, changed)
    unverified = [p.name for p in PATHS if _verified(setting).get(p.name) != _sha256(p)]
    assert unverified == [], f"not checked with TF_ENABLE_ONEDNN_OPTS={setting}: {unverified}"


def _nbval_on_other_kernels(setting: str, changed) -> None:
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting, **{NESTED: "1"})
    targets = [str(p.relative_to(NOTEBOOKS.parent)) for p in changed]
    command = [sys.executable, "-m", "pytest", *targets, "-p", "no:cacheprovider", "-q"]
    run = subprocess.run(command, cwd=NOTEBOOKS.parent, env=env, capture_output=True, text=True, timeout=1800)
    tail = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, f"nbval with TF_ENABLE_ONEDNN_OPTS={setting} failed (exit {run.returncode}):\n{tail}"
    assert re.search(r"\d+ passed", run.stdout), tail
    _record_verified(setting, changed)
