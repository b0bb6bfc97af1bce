"""Helpers for the real-browser tests (tests/test_browser.py): JupyterLab + headless Debian Chromium.

Not a test module. Facts behind the choices are in the project notes ("JupyterLab in a real browser"):
Chromium comes from apt (`/usr/bin/chromium`), never from `playwright install`.
"""

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import psutil
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1400, "height": 1000}
INSTALL_HINT = "install it with tools/chromium.sh (apt-get, as root; make test runs it), never `playwright install`"

# JupyterLab settings for the test server. No news/update toast: it asks the user a question, and CI is offline.
# Windowing off: every cell is attached to the DOM, so prompts and outputs of all cells can be read and counted.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}

# DOM selectors (JupyterLab 4.6). PANEL is the notebook on show (Playwright's :visible; other tabs are hidden).
PANEL = ".jp-NotebookPanel:visible"
CELL = f"{PANEL} .jp-Notebook .jp-Cell"
CODE_PROMPT = f"{PANEL} .jp-CodeCell .jp-InputPrompt"  # a cell with hidden source has an empty placeholder prompt
KERNEL_NAME = f"{PANEL} .jp-Toolbar .jp-KernelName"  # 'No Kernel' before one is chosen
INDICATOR = f"{PANEL} .jp-Notebook-ExecutionIndicator"  # data-status: kernel status; progressbar: share of run cells
DIALOG = ".jp-Dialog"
ERROR_OUTPUTS = (
    f"{PANEL} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']:has-text('Traceback'), "
    f"{PANEL} .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


@contextlib.contextmanager
def jupyterlab_server(root_dir, timeout: float = 60):
    """Run `jupyter lab` on 127.0.0.1 over `root_dir`; yield (base_url, token).

    All Jupyter/IPython state (config, data, runtime, settings, workspaces) lives in a temporary folder, so nothing
    from the user's home leaks in or is written there. On exit the server, its kernels and their children are ended.
    The server's log is in `<state>/server.log`; it is shown if the server does not start.
    """
    jupyter = Path(sys.executable).parent / "jupyter"
    token = secrets.token_hex(16)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="gradlab-lab-") as state:
        state = Path(state)
        dirs = {
            "JUPYTER_CONFIG_DIR": state / "config",
            "JUPYTER_DATA_DIR": state / "data",
            "JUPYTER_RUNTIME_DIR": state / "runtime",
            "JUPYTERLAB_SETTINGS_DIR": state / "settings",
            "JUPYTERLAB_WORKSPACES_DIR": state / "workspaces",
            "IPYTHONDIR": state / "ipython",
        }
        for d in dirs.values():
            d.mkdir()
        for name, value in LAB_SETTINGS.items():
            path = dirs["JUPYTERLAB_SETTINGS_DIR"] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        env = {**os.environ, **{k: str(v) for k, v in dirs.items()}}
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        env["PATH"] = f"{jupyter.parent}{os.pathsep}{env.get('PATH', '')}"  # kernelspec argv[0] is "python"
        env.pop("JUPYTER_PATH", None)
        env.pop("JUPYTER_TOKEN", None)
        log_path = state / "server.log"
        cmd = [
            str(jupyter), "lab", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
            f"--ServerApp.token={token}", "--allow-root", f"--ServerApp.root_dir={root_dir}",
            "--ServerApp.port_retries=0",
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, env=env, cwd=root_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{_tail(log_path)}")
                try:
                    with urllib.request.urlopen(f"{base_url}/api/status?token={token}", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not answer within {timeout} s:\n{_tail(log_path)}")
                time.sleep(0.25)
            yield base_url, token
        finally:
            _stop_server(proc)


def _stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM lets the server shut its kernels down; whatever is left after 10 s is killed.

    Kernels run in sessions of their own (jupyter_client starts them with start_new_session), so they are found as
    descendants of the server before it is stopped rather than through its process group.
    """
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    _, alive = psutil.wait_procs(family, timeout=5)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


@contextlib.contextmanager
def chromium_page(playwright):
    """Launch headless Debian Chromium; yield (page, errors).

    `errors` is a list that fills up while the page lives with "console: ..." for console messages of type error and
    "pageerror: ..." for uncaught exceptions. Without /usr/bin/chromium the test fails under CI (CI set) and is
    skipped locally; a Chromium that is there but does not start always fails the test.
    """
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as exc:
        pytest.fail(f"Chromium at {CHROMIUM} did not start ({exc}); {INSTALL_HINT}", pytrace=False)
    try:
        page = browser.new_page(viewport=VIEWPORT)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        yield page, errors
    finally:
        browser.close()


def copy_notebooks(src, dst, clear_outputs: bool = True) -> Path:
    """Copy the folder `src` (e.g. notebooks/) to `dst`; strip outputs and execution counts from every .ipynb.

    Stripping makes the browser run meaningful: every prompt number and output seen afterwards comes from that run.
    Returns `dst` as a Path.
    """
    dst = Path(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"), dirs_exist_ok=True)
    if clear_outputs:
        for path in dst.rglob("*.ipynb"):
            nb = nbformat.read(path, as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs = []
                    cell.execution_count = None
            nb.metadata.pop("widgets", None)
            nbformat.write(nb, path)
    return dst


def count_code_cells(notebook_path) -> int:
    """Number of code cells stored in the notebook file."""
    return sum(c.cell_type == "code" for c in nbformat.read(notebook_path, as_version=4).cells)


def prompts(page) -> list[str]:
    """Text inside the brackets of every code cell's input prompt, in order: '' (never run), '*' or '12'.

    A cell whose source is hidden (metadata jupyter.source_hidden) shows no prompt: '' whatever its state.
    """
    texts = page.locator(CODE_PROMPT).all_inner_texts()
    return [m.group(1).strip() if (m := re.search(r"\[(.*)\]", t)) else t.strip() for t in texts]


def error_outputs(page) -> list[str]:
    """Texts of the outputs on show that hold a traceback or an error."""
    return page.locator(ERROR_OUTPUTS).all_inner_texts()


def kernel_status(page) -> tuple[str, float | None]:
    """(status, progress) from the notebook toolbar's execution indicator.

    status: the kernel's, 'idle', 'busy', ... ('idle' also while no kernel is chosen); progress: the percentage of
    the cells scheduled by the last run that have finished (100 before any run), or None.
    """
    return page.locator(INDICATOR).first.evaluate(
        """e => [e.dataset.status || '',
                 (p => p ? Number(p.getAttribute('aria-valuenow')) : null)(e.querySelector('[role=progressbar]'))]"""
    )


def _accept_kernel_dialog(page) -> None:
    """Notebooks without a kernelspec make JupyterLab ask for a kernel: accept its default choice.

    Any other dialog is unexpected: fail with its text.
    """
    dialog = page.locator(DIALOG)
    if not dialog.count():
        return
    text = dialog.first.inner_text()
    if "Select Kernel" not in text:
        raise AssertionError(f"unexpected JupyterLab dialog: {text!r}")
    dialog.locator(".jp-mod-accept").first.click()
    dialog.wait_for(state="detached", timeout=10_000)


def _menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(menu)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def open_notebook(page, base_url: str, token: str, notebook_path: str, timeout: float = 60) -> None:
    """Open `notebook_path` (relative to the server's root_dir) in a reset workspace.

    Returns once all its cells are on the page and its kernel is idle (a kernel dialog, if any, is accepted).
    """
    url = f"{base_url}/api/contents/{urllib.parse.quote(notebook_path)}?content=1&token={token}"
    with urllib.request.urlopen(url, timeout=10) as r:
        n_cells = len(json.load(r)["content"]["cells"])
    page.goto(f"{base_url}/lab/tree/{urllib.parse.quote(notebook_path)}?reset&token={token}", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    # The cells render after the kernel can be idle, and 'idle' also shows while there is no kernel: check all three.
    while not (
        page.locator(CELL).count() == n_cells
        and page.locator(KERNEL_NAME).count()
        and page.locator(KERNEL_NAME).first.inner_text().strip() not in ("", "No Kernel")
        and kernel_status(page)[0] == "idle"
    ):
        _accept_kernel_dialog(page)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{notebook_path}: {page.locator(CELL).count()} of {n_cells} cells on the page and no idle kernel "
                f"after {timeout} s"
            )
        page.wait_for_timeout(200)


def run_all(page, timeout: float = 180) -> float:
    """Run > Run All Cells in the notebook on show; wait until it has finished. Returns the seconds it took.

    Finished: no prompt shows '*' and the kernel is idle, with every scheduled cell done (a cell that raises stops
    the run: the cells after it keep an empty prompt) or, failing that, for 1 s.
    """
    before = prompts(page)
    start = time.monotonic()
    _menu(page, "Run", "Run All Cells")
    deadline = start + timeout
    started, idle_since = False, None
    while True:
        _accept_kernel_dialog(page)
        now, (status, progress) = prompts(page), kernel_status(page)
        numbers = [p for p in now if p.isdigit()]
        started = started or "*" in now or status == "busy" or numbers != [p for p in before if p.isdigit()]
        if started and "*" not in now and status == "idle":
            idle_since = idle_since or time.monotonic()
            if progress == 100 or time.monotonic() - idle_since >= 1:
                return time.monotonic() - start
        else:
            idle_since = None
        if time.monotonic() > deadline:
            raise TimeoutError(f"cells still running after {timeout} s; prompts: {now}, kernel: {status}")
        page.wait_for_timeout(100)


def open_and_run_all(page, base_url: str, token: str, notebook_path: str, timeout: float = 180) -> float:
    """Open the notebook, run all its cells from the Run menu, wait for the end; return the seconds the run took."""
    open_notebook(page, base_url, token, notebook_path)
    return run_all(page, timeout=timeout)


def save_notebook(page, path, timeout: float = 30):
    """File > Save Notebook for the notebook on show, whose file is `path`; return the saved file (nbformat node).

    What the browser holds after a run (execution counts, outputs) can then be checked in full, hidden cells too.
    """
    path = Path(path)
    mtime = path.stat().st_mtime_ns
    _menu(page, "File", "Save Notebook")
    deadline = time.monotonic() + timeout
    while path.stat().st_mtime_ns == mtime or page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").count():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} was not saved within {timeout} s")
        page.wait_for_timeout(100)
    return nbformat.read(path, as_version=4)
