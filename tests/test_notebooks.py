"""What the committed notebooks contain, and what they cost to run (see tools/run_notebooks.py)."""

import base64
import hashlib
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import nbformat
import plotly.graph_objects as go
import plotly.io as pio
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
RESOURCES = NOTEBOOKS / "RESOURCES.md"
NESTED = "GRADLAB_NBVAL_OTHER_KERNELS"  # set inside the nested nbval run below
TOOL = NOTEBOOKS.parent / "tools" / "run_notebooks.py"
PLOTLY, PNG = "application/vnd.plotly.v1+json", "image/png"
# Figure outputs (Plotly JSON) in the committed notebooks: 15 plots and 2 labs when this was written.
# A floor, so that the static-image test cannot pass by finding no figure at all.
MIN_FIGURES = 15


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


# JupyterLab breaks longer text lines mid-word in a notebook about 1000 px wide (gradlab._text.WIDTH).
TEXT_WIDTH = 88


def _long_text_lines(nb: dict) -> list[str]:
    """Printed lines (stream outputs and text/plain) longer than TEXT_WIDTH characters, with their cell."""
    found = []
    for index, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            texts = [out.get("text", ""), out.get("data", {}).get("text/plain", "")]
            for line in "".join("".join(t) if isinstance(t, list) else t for t in texts).splitlines():
                if len(line) > TEXT_WIDTH:
                    found.append(f"cell {index} ({len(line)} characters): {line}")
    return found


def test_long_text_lines_are_found():
    """The check below is not vacuous: it finds a long line in a stream and in text/plain, not a short one."""
    long, short = "x" * (TEXT_WIDTH + 1), "x" * TEXT_WIDTH
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "print()", outputs=[nbformat.v4.new_output("stream", name="stdout", text=[short, "\n" + long])]
        ),
        nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("execute_result", data={"text/plain": long})]),
        nbformat.v4.new_code_cell("y", outputs=[nbformat.v4.new_output("execute_result", data={"text/plain": short})]),
    ]
    assert [f.split(" (")[0] for f in _long_text_lines(json.loads(nbformat.writes(nb)))] == ["cell 0", "cell 1"]


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_printed_lines_fit_the_notebook(path):
    """No stored printed line (stream or text/plain) is longer than 88 characters: none wraps mid-word."""
    assert _long_text_lines(json.loads(path.read_text())) == []


def _resources():
    rows = re.findall(r"^\| (\S+\.ipynb) \| ([\d.]+) \| (\d+) \|", RESOURCES.read_text(), re.M)
    return {name: (float(s), int(mib)) for name, s, mib in rows}


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_fits_binder(path):
    """Measured run time < 60 s on 2 cores and kernel peak memory < 1.5 GB."""
    measured = _resources()
    assert path.name in measured, f"measure it: python tools/run_notebooks.py {path.relative_to(NOTEBOOKS.parent)}"
    seconds, mib = measured[path.name]
    assert seconds < 60, f"{path.name} ran {seconds} s"
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


# ---------------------------------------------------------------- figures without a kernel
def _tool():
    spec = importlib.util.spec_from_file_location("run_notebooks", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def _figure_outputs(nb: dict):
    """(cell index, output) of every output that carries a Plotly figure's JSON."""
    for index, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if PLOTLY in out.get("data", {}):
                yield index, out


def _png_size(raw: bytes) -> tuple[int, int]:
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", raw[16:24])


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_every_figure_has_a_static_image(path):
    """GitHub and nbviewer draw neither Plotly's JSON nor widgets: each figure output carries a PNG of itself."""
    nb = json.loads(path.read_text())
    missing = []
    for index, out in _figure_outputs(nb):
        if PNG not in out["data"]:
            missing.append(index)
            continue
        width, height = _png_size(base64.b64decode(_text(out["data"][PNG])))
        layout = out["data"][PLOTLY].get("layout", {})
        # drawn from this figure's JSON: at its layout size (run_notebooks.DEFAULT_SIZE where it sets none)
        assert (width, height) == (layout.get("width") or 900, layout.get("height") or 500), (index, width, height)
    assert not missing, (
        f"{path.name}: figure outputs without a static image in cells {missing}: "
        f"run `python tools/run_notebooks.py --images-only notebooks/{path.name}` (or execute it with the tool)"
    )


def test_the_committed_notebooks_have_figures():
    found = sum(1 for path in PATHS for _ in _figure_outputs(json.loads(path.read_text())))
    assert found >= MIN_FIGURES, f"only {found} Plotly figure outputs in {len(PATHS)} notebooks"


# plotly.js itself (its banner), Plotly's HTML output (with the library inlined, from a CDN or a
# directory, through require.js) and any script that calls Plotly: each needs plotly.js in the page.
PLOTLY_JS = re.compile(
    r"plotly\.js v\d|Copyright 2012-\d{4}, Plotly|window\.PlotlyConfig|cdn\.plot\.ly|Plotly\.(newPlot|react)\("
    r"|require\(\[[\'\"]plotly[\'\"]\]"
)


def _plotly_js_in(nb: dict) -> list[str]:
    """Where a notebook's outputs (or its metadata: widget state) hold plotly.js or need it."""
    found = []
    for index, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            texts = {key: _text(value) for key, value in out.get("data", {}).items() if key != PNG}
            texts = {key: value if isinstance(value, str) else json.dumps(value) for key, value in texts.items()}
            texts["text"] = _text(out.get("text", ""))
            found += [f"cell {index} {key}" for key, value in texts.items() if PLOTLY_JS.search(value)]
    if PLOTLY_JS.search(json.dumps(nb.get("metadata", {}))):
        found.append("metadata")
    return found


def _notebook_with(data: dict) -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("fig", outputs=[nbformat.v4.new_output("display_data", data=data)])]
    return json.loads(nbformat.writes(nb))


def test_plotly_js_is_found_however_it_is_embedded():
    """The check below is not vacuous: it finds each way plotly writes plotly.js into HTML, and not the JSON."""
    fig = go.Figure(go.Scatter(y=[1, 3, 2]), layout=dict(title="t", xaxis_title="x", yaxis_title="y"))
    for include in (True, "cdn", "require", "directory", False):
        html = pio.to_html(fig, include_plotlyjs=include, full_html=False)
        assert _plotly_js_in(_notebook_with({"text/html": html})) == ["cell 0 text/html"], include
    assert _plotly_js_in(_notebook_with({PLOTLY: json.loads(pio.to_json(fig)), "text/plain": "Figure"})) == []


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_no_notebook_embeds_plotly_js(path):
    """Plotly's mimetype output (JSON) only: plotly.js is 4.8 MB, and a CDN does not load offline."""
    assert _plotly_js_in(json.loads(path.read_text())) == []


class _FakeImages:
    def __init__(self):
        self.drawn = []

    def png(self, spec):
        self.drawn.append(spec)
        return b"\x89PNG\r\n\x1a\n" + bytes(len(self.drawn)), 900, 500


def test_the_tool_puts_a_png_beside_each_plotly_output_only():
    tool, fig = _tool(), json.loads(pio.to_json(go.Figure(go.Bar(y=[1, 2]))))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("fig", outputs=[nbformat.v4.new_output("display_data", data={PLOTLY: fig})]),
        nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", name="stdout", text="1\n")]),
        nbformat.v4.new_code_cell(
            "lab", outputs=[nbformat.v4.new_output("execute_result", data={"text/plain": "lab", PLOTLY: fig})]
        ),
        nbformat.v4.new_markdown_cell("text"),
    ]
    images = _FakeImages()
    assert tool.add_images(nb, images) == (2, 2 * 9 + 1)
    assert images.drawn == [fig, fig]
    first, lab = nb.cells[0].outputs[0], nb.cells[2].outputs[0]
    assert base64.b64decode(first.data[PNG]) == b"\x89PNG\r\n\x1a\n\x00"
    assert set(lab.data) == {"text/plain", PLOTLY, PNG} and "data" not in nb.cells[1].outputs[0]
    tool.add_images(nb, images)  # again (--images-only on a notebook that has them): replaced, not added
    assert base64.b64decode(first.data[PNG]) == b"\x89PNG\r\n\x1a\n\x00\x00\x00"
    nbformat.validate(nb)


def test_the_tool_says_what_to_install(monkeypatch, tmp_path):
    tool = _tool()
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on it
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    monkeypatch.setattr(tool, "_importable", lambda name: True)  # the browser is checked after the packages
    with pytest.raises(SystemExit, match=r"found none .*apt-get install chromium.*BROWSER_PATH"):
        tool.Images()
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "chrome"))
    with pytest.raises(SystemExit, match=r"BROWSER_PATH='.*chrome'.*apt-get install chromium"):
        tool.Images()
    monkeypatch.setattr(tool, "_importable", lambda name: name != "kaleido")
    with pytest.raises(SystemExit, match=re.escape("need kaleido (the `notebooks` extra): pip install -c ")):
        tool.Images()


def _browser():
    return os.environ.get("BROWSER_PATH") or next(filter(None, map(shutil.which, _tool().BROWSERS)), None)


@pytest.mark.skipif(
    importlib.util.find_spec("kaleido") is None or not _browser(),
    reason="the `notebooks` extra (kaleido) or Chromium is not installed",
)
def test_the_tool_draws_a_figure_with_kaleido():
    fig = go.Figure(go.Scatter(y=[1, 3, 2]), layout=dict(title="t", xaxis_title="x", yaxis_title="y", width=640))
    tool = _tool()
    with tool.Images() as images:
        png, width, height = images.png(json.loads(pio.to_json(fig)))
    assert _png_size(png) == (width, height) == (640, 500)
    assert 2_000 < len(png) < 100_000
