"""The notebooks in JupyterLab in a real (headless Chromium) browser: run all cells, as a reader would.

Helpers live in tests/browser.py. The notebooks are copied (outputs stripped) into a temporary folder, so the
repository's files are never touched by the run.
"""

from pathlib import Path

import pytest
from browser import (
    chromium_page,
    copy_notebooks,
    count_code_cells,
    error_outputs,
    jupyterlab_server,
    open_and_run_all,
    prompts,
    save_notebook,
)
from playwright.sync_api import sync_playwright

pytestmark = pytest.mark.browser

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab server for the module over a stripped copy of notebooks/: (root_dir, base_url, token)."""
    root = copy_notebooks(NOTEBOOKS, tmp_path_factory.mktemp("lab") / "notebooks")
    with jupyterlab_server(root) as (base_url, token):
        yield root, base_url, token


@pytest.fixture
def lab_page():
    """A fresh headless Chromium page per test: (page, errors), errors filled with console errors and page errors."""
    with sync_playwright() as playwright, chromium_page(playwright) as (page, errors):
        yield page, errors


def test_start_here_notebook_runs_in_jupyterlab(lab, lab_page):
    root, base_url, token = lab
    page, errors = lab_page
    name = "00_start_here.ipynb"
    assert (root / name).exists(), f"notebooks/{name} is missing"

    seconds = open_and_run_all(page, base_url, token, name)
    print(f"{name}: all cells ran in {seconds:.1f} s in JupyterLab")

    assert not error_outputs(page)
    saved = save_notebook(page, root / name)  # the browser's view of the run, hidden cells included
    code = [c for c in saved.cells if c.cell_type == "code"]
    executed = [c for c in code if c.execution_count]
    assert len(executed) == len(code) == count_code_cells(NOTEBOOKS / name), f"prompts: {prompts(page)}"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
