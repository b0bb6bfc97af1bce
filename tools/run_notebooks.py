"""Execute notebooks in place, as they are committed, and measure them.

    python tools/run_notebooks.py                 # every notebooks/NN_*.ipynb (`make notebooks`)
    python tools/run_notebooks.py notebooks/05_live_lab.ipynb
    python tools/run_notebooks.py --images-only   # add the static images only, without running

Needs the ``notebooks`` extra (kaleido, Pillow) and a Chromium (Debian: ``apt-get install
chromium``; another browser: set ``BROWSER_PATH``): ``pip install -c requirements/lock-cpu.txt
-e ".[notebooks]"``. Running the notebooks themselves (Binder, the tests) needs neither.

For each notebook: run all cells in a fresh python3 kernel (cwd notebooks/),
store the outputs without widget state (a FigureWidget's state holds all of
plotly.js), drop TensorFlow's C++ start-up lines (TensorFlow 2.21 prints them on
stderr whatever TF_CPP_MIN_LOG_LEVEL says; under nbval they do not appear),
then run all cells a second time in the same kernel to check that this works
too. Wall time of the first run and the peak memory (RSS) of the kernel
process are written to notebooks/RESOURCES.md; tests/test_notebooks.py checks
them against the limits (60 s, 1.5 GB).

Static images: GitHub and nbviewer show neither Plotly's JSON output nor a widget. Every
output that carries ``application/vnd.plotly.v1+json`` also gets an ``image/png`` in the
same bundle, rendered by kaleido from that JSON (the figure's layout width, else 900 px, by
its layout height, else 500 px; scale 1; reduced to 256 colours). JupyterLab, with or
without a kernel, still draws the Plotly JSON (its renderer outranks images), and nbval
does not compare ``image/png`` outputs, so the checked cells are unchanged.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import shutil
import sys
import threading
import time
import warnings
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
REPORT = NOTEBOOKS / "RESOURCES.md"
PLOTLY = "application/vnd.plotly.v1+json"
PNG = "image/png"
DEFAULT_SIZE = (900, 500)  # px, for a figure whose layout sets no width or height
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL = 'pip install -c requirements/lock-cpu.txt -e ".[notebooks]"'
TF_LOG = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]\d{4} \d\d:\d\d:\d\d\.\d+ )")


def _clean(nb) -> None:
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            if out.output_type == "stream" and out.name == "stderr":
                lines = [ln for ln in out.text.splitlines(keepends=True) if not TF_LOG.match(ln)]
                if not "".join(lines).strip():
                    continue
                out.text = "".join(lines)
            kept.append(out)
        cell.outputs = kept
    nb.metadata.pop("widgets", None)


# ------------------------------------------------------------------ static images
class Images:
    """kaleido with one browser kept open: one start (about 8 s), then well under a second per figure.

    Creating it checks that kaleido, Pillow and a browser are there (fails with what to install);
    ``with images:`` starts the browser.
    """

    def __init__(self):
        missing = [name for name in ("kaleido", "PIL") if not _importable(name)]
        if missing:
            raise SystemExit(
                f"run_notebooks.py: static images of the figures need {' and '.join(missing)} "
                f"(the `notebooks` extra): {INSTALL}"
            )
        browser = os.environ.get("BROWSER_PATH") or next(filter(None, map(shutil.which, BROWSERS)), None)
        if not browser or not os.access(browser, os.X_OK):
            raise SystemExit(
                "run_notebooks.py: kaleido needs Chromium or Chrome to draw the figures' static images, "
                f"and found none (BROWSER_PATH={os.environ.get('BROWSER_PATH')!r}, none of {', '.join(BROWSERS)} "
                "on PATH). Debian/Ubuntu: apt-get install chromium; elsewhere set BROWSER_PATH to a Chrome or "
                "Chromium executable."
            )
        os.environ["BROWSER_PATH"] = browser

    def __enter__(self):
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
        self._kaleido = kaleido
        return self

    def __exit__(self, *exc):
        self._kaleido.stop_sync_server(silence_warnings=True)

    def png(self, spec: dict) -> tuple[bytes, int, int]:
        """A Plotly figure's JSON (a notebook output's ``application/vnd.plotly.v1+json``) as a PNG."""
        import plotly.io as pio
        from PIL import Image

        fig = pio.from_json(json.dumps({k: spec[k] for k in ("data", "layout", "frames") if k in spec}))
        width, height = fig.layout.width or DEFAULT_SIZE[0], fig.layout.height or DEFAULT_SIZE[1]
        try:
            with warnings.catch_warnings():  # plotly passes kaleido options that a running server ignores
                warnings.filterwarnings("ignore", message="The kopts argument is ignored", category=UserWarning)
                raw = pio.to_image(fig, format="png", width=width, height=height, scale=1)
        except Exception as err:  # kaleido's errors (no browser start, a timeout) name no remedy
            raise SystemExit(
                f"run_notebooks.py: kaleido could not draw a figure with {os.environ['BROWSER_PATH']}: "
                f"{type(err).__name__}: {err}"
            ) from err
        # 256 colours: a third of the size, and the same to the eye for plots (flat colours, thin lines).
        out = io.BytesIO()
        Image.open(io.BytesIO(raw)).convert("RGB").quantize(256).save(out, "PNG", optimize=True)
        return out.getvalue(), width, height


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def add_images(nb, images: Images) -> tuple[int, int]:
    """Put a PNG beside every Plotly JSON output (replacing an older one); return (figures, PNG bytes)."""
    count = size = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            spec = out.get("data", {}).get(PLOTLY)
            if spec is None:
                continue
            png, width, height = images.png(spec)
            out.data[PNG] = base64.b64encode(png).decode("ascii")
            out.setdefault("metadata", {})[PNG] = {"width": width, "height": height}
            count, size = count + 1, size + len(png)
    return count, size


class _PeakMemory:
    """Sample the kernel process's RSS every 50 ms."""

    def __init__(self, pid: int):
        self.proc, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run(path: Path) -> tuple[float, int]:
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    os.environ.update(env)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        store_widget_state=False,
    )
    with client.setup_kernel():
        memory = _PeakMemory(client.km.provisioner.process.pid)
        start = time.perf_counter()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        seconds = time.perf_counter() - start
        # Run all a second time in the same kernel: it must work too (outputs not kept).
        second = nbformat.reads(nbformat.writes(nb), as_version=4)
        for index, cell in enumerate(second.cells):
            client.execute_cell(cell, index)
        peak = memory.stop()
    _clean(nb)
    nbformat.write(nb, path)
    return seconds, peak


def _images_only(path: Path, images: Images) -> tuple[int, int]:
    nb = nbformat.read(path, as_version=4)
    added = add_images(nb, images)
    nbformat.write(nb, path)
    return added


def _say_images(added: tuple[int, int]) -> str:
    figures, size = added
    return f"{figures} figure(s): {size / 1024:.0f} KiB of PNG, {size * 4 / 3 / 1024:.0f} KiB added to the file"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb")
    parser.add_argument(
        "--images-only",
        action="store_true",
        help="do not run: add the figures' static images to notebooks as they are stored",
    )
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        if not path.is_file():
            raise SystemExit(f"run_notebooks.py: no notebook {path}")
    images = Images()  # fails here, before any notebook runs, if kaleido or the browser is missing
    if not args.images_only:
        rows = _read_report()
        for path in paths:
            seconds, peak = run(path)
            rows[path.name] = (seconds, peak)
            print(f"{path.name}: {seconds:.1f} s, peak kernel memory {peak / 2**20:.0f} MiB (run all twice: ok)")
            _write_report(rows)  # after each notebook: an interrupted run keeps what it measured
    # After all runs, so that no browser competes with the notebooks being timed.
    with images:
        for path in paths:
            print(f"{path.name}: static images of {_say_images(_images_only(path, images))}")
    return 0


def _read_report() -> dict:
    rows = {}
    if REPORT.exists():
        for m in re.finditer(r"^\| (\S+\.ipynb) \| ([\d.]+) \| (\d+) \|", REPORT.read_text(), re.M):
            rows[m.group(1)] = (float(m.group(2)), int(m.group(3)) * 2**20)
    return rows


def _write_report(rows: dict) -> None:
    lines = [
        "# Notebook resources",
        "",
        "Measured by `python tools/run_notebooks.py` on a 2-core CPU machine: wall time of one run of all",
        "cells, and the peak resident memory of the kernel process (sampled every 50 ms) over two runs of",
        "all cells in the same kernel. Limits: 60 s and 1536 MiB (Binder gives 2 GB).",
        "",
        "| notebook | seconds | peak MiB |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {s:.1f} | {peak // 2**20} |" for name, (s, peak) in sorted(rows.items())]
    REPORT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
