"""Execute notebooks in place, as they are committed, and measure them.

    python tools/run_notebooks.py                 # every notebooks/NN_*.ipynb
    python tools/run_notebooks.py notebooks/05_live_lab.ipynb

For each notebook: run all cells in a fresh python3 kernel (cwd notebooks/),
store the outputs without widget state (a FigureWidget's state holds all of
plotly.js), drop TensorFlow's C++ start-up lines (TensorFlow 2.21 prints them on
stderr whatever TF_CPP_MIN_LOG_LEVEL says; under nbval they do not appear),
then run all cells a second time in the same kernel to check that this works
too. Wall time of the first run and the peak memory (RSS) of the kernel
process are written to notebooks/RESOURCES.md; tests/test_notebooks.py checks
them against the limits (90 s, 1.5 GB).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
REPORT = NOTEBOOKS / "RESOURCES.md"
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


def main(argv: list[str]) -> int:
    paths = [Path(p).resolve() for p in argv] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    rows = _read_report()
    for path in paths:
        seconds, peak = run(path)
        rows[path.name] = (seconds, peak)
        print(f"{path.name}: {seconds:.1f} s, peak kernel memory {peak / 2**20:.0f} MiB (run all twice: ok)")
    _write_report(rows)
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
        "all cells in the same kernel. Limits: 90 s and 1536 MiB (Binder gives 2 GB).",
        "",
        "| notebook | seconds | peak MiB |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {s:.1f} | {peak // 2**20} |" for name, (s, peak) in sorted(rows.items())]
    REPORT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
