"""The live lab in JupyterLab in headless Chromium, driven as a reader would drive it.

Checks: the widgets and the FigureWidget render without console errors; Run makes the
traces grow; moving the threshold slider mid-run changes the drawn threshold line and the
post-clipping norms; changing the mode mid-run works; Pause stops the growth. Prints the
slider-to-redraw latency (goal <= 0.5 s). With GRADLAB_SCREENSHOT=path it also saves a
screenshot of the lab there (the README's image: docs/lab.png).
"""

import os
import time
from pathlib import Path

import nbformat
import pytest
from browser import chromium_page, error_outputs, jupyterlab_server, open_and_run_all
from playwright.sync_api import sync_playwright

pytestmark = pytest.mark.browser

LAB = ".gradlab-lab"
PLOT = f"{LAB} .js-plotly-plot"
SETUP = """import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import gradlab
gradlab.setup(seed=0)"""
MAKE_LAB = """lab = gradlab.Lab(problem="deep_mlp", mode="global_norm", threshold=1.0, learning_rate=0.5,
                  steps=50000, chunk=5, redraw_ms=100)
lab"""


@pytest.fixture(scope="module")
def lab_notebook(tmp_path_factory):
    root = tmp_path_factory.mktemp("livelab")
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(MAKE_LAB)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}},
    )
    nbformat.write(nb, root / "lab.ipynb")
    with jupyterlab_server(root) as (base_url, token):
        yield base_url, token


def traces(page, since=0):
    """What the FigureWidget in the page draws: steps so far (n), and the drawn points
    (step, threshold, post-clip norm) of the steps from `since` on (long runs are thinned).
    Gaps (NaN in the typed arrays plotly receives) read as None. Only the points asked for
    cross from the page, so polling stays cheap for the browser."""
    return page.evaluate(
        """([sel, since]) => { const gd = document.querySelector(sel); if (!gd || !gd.data) return null;
           const d = gd.data, all = a => (a ? Array.from(a) : []), x = all(d[0].x);
           const bound = all(d[3].y), after = all(d[2].y);
           const num = v => (typeof v === "number" && Number.isFinite(v) ? v : null);
           const out = {n: x.length ? x[x.length - 1] + 1 : 0, x: [], bound: [], after: []};
           for (let i = 0; i < x.length; i++) if (x[i] >= since) {
             out.x.push(x[i]); out.bound.push(num(bound[i])); out.after.push(num(after[i])); }
           return out; }""",
        [PLOT, since],
    )


def drawn_since(page, step):
    """Drawn (threshold, post-clip norm) pairs of the steps from `step` on."""
    t = traces(page, step)
    return list(zip(t["bound"], t["after"]))


def status(page):
    return page.locator(f"{LAB} .gradlab-status").inner_text()


def wait_for(predicate, timeout=30.0, every=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")


def test_live_lab_in_a_real_browser(lab_notebook, tmp_path):
    base_url, token = lab_notebook
    with sync_playwright() as playwright, chromium_page(playwright) as (page, errors):
        open_and_run_all(page, base_url, token, "lab.ipynb")
        try:
            drive_the_lab(page)
        except AssertionError as err:  # show what the reader would have seen
            shot = tmp_path / "lab-failure.png"
            page.screenshot(path=str(shot))
            said = page.locator(f"{LAB} .gradlab-status").all_inner_texts()
            raise AssertionError(f"{err}; lab status: {said}; screenshot: {shot}; console: {errors}") from err
        assert not errors, errors


def drive_the_lab(page):
    assert not error_outputs(page)
    page.wait_for_selector(PLOT, timeout=60_000)
    assert page.locator(f"{LAB} .widget-dropdown select").count() == 2  # problem, mode
    assert page.locator(f"{LAB} .widget-slider").count() >= 3  # threshold, learning rate, steps

    # Run: the traces grow.
    page.locator(f"{LAB} button", has_text="Run").click()
    wait_for(lambda: (traces(page) or {}).get("n", 0) >= 30)
    start = traces(page, 0)
    assert start["bound"][-1] == pytest.approx(1.0)
    wait_for(lambda: traces(page)["n"] > start["n"] + 20)

    # Move the threshold slider mid-run (ArrowLeft: -0.05 in log10 per press; 20 presses: 1.0 -> 0.1).
    handle = page.locator(f"{LAB} .widget-slider .noUi-handle").first
    handle.focus()
    pressing = time.monotonic()
    for _ in range(20):
        handle.press("ArrowLeft")
    moved = time.monotonic()
    print(f"\n20 key presses on the slider took {moved - pressing:.3f} s")
    n_at_move = traces(page)["n"]
    wait_for(lambda: any(b is not None and b < 0.2 for b, _ in drawn_since(page, n_at_move - 5)))
    latency = time.monotonic() - moved
    print(f"slider-to-redraw latency: {latency:.3f} s (goal <= 0.5 s)")
    # The whole burst lands: the newest value (10 ** -1) is drawn, not a queue of older ones.
    wait_for(lambda: any(b == pytest.approx(0.1, rel=1e-3) for b, _ in drawn_since(page, n_at_move)))
    drawn = time.monotonic()
    print(
        f"burst of 20 slider steps, last one drawn after: {drawn - moved:.3f} s ({drawn - pressing:.3f} s from the first)"
    )
    wait_for(lambda: traces(page)["n"] > n_at_move + 30)
    new = [(b, a) for b, a in drawn_since(page, n_at_move) if b is not None and b < 0.2]
    assert new, "no step ran with the new threshold"
    assert all(a is None or a <= b * (1 + 1e-5) for b, a in new), "post-clip norms above the new threshold"
    if os.environ.get("GRADLAB_SCREENSHOT"):
        path = Path(os.environ["GRADLAB_SCREENSHOT"])
        path.parent.mkdir(parents=True, exist_ok=True)
        page.locator(LAB).screenshot(path=str(path))

    # Change the mode mid-run: zclip's warm-up has no bound (drawn as a gap), the run goes on.
    page.locator(f"{LAB} .widget-dropdown select").nth(1).select_option("zclip")
    switched = time.monotonic()
    n_at_mode = traces(page)["n"]
    # The warm-up's gap appears, and the run goes on after it.
    wait_for(lambda: any(b is None for b, _ in drawn_since(page, n_at_mode)))
    print(f"mode-switch-to-redraw latency: {time.monotonic() - switched:.3f} s")
    n_at_gap = traces(page)["n"]
    wait_for(lambda: traces(page)["n"] > n_at_gap + 30)

    # Pause: no more growth.
    page.locator(f"{LAB} button", has_text="Pause").click()
    clicked = time.monotonic()
    # The kernel says "paused" after the run's last frame, on the same channel: once the
    # page shows it, the drawn run is final.
    wait_for(lambda: "paused" in status(page))
    print(f"pause-to-paused latency: {time.monotonic() - clicked:.3f} s")
    time.sleep(0.5)
    paused = traces(page)["n"]
    time.sleep(1.5)
    assert traces(page)["n"] == paused
