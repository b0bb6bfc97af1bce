import faulthandler
import os
import sys
import threading

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (derandomize: seeded by each test's name), so that
# `make test` and CI pass or fail the same way twice; HYPOTHESIS_PROFILE=explore draws new random ones
# (how the two flaky edge cases of 2026-12-06 were found: a 3e-14 example, a subnormal 1e-45).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

SLOW_FILES = ("test_browser.py", "test_browser_lab.py", "test_distributed.py", "test_notebooks.py")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: runs JupyterLab in headless Chromium (needs /usr/bin/chromium)")
    config.addinivalue_line(
        "markers", "slow: left out of the fast loop (`make check`): browsers, subprocesses, XLA compiles, notebooks"
    )


def pytest_collection_modifyitems(config, items):
    """Mark what `make check` leaves out: the browser, distributed and notebook tests, XLA compiles, nbval cells."""
    for item in items:
        path = str(getattr(item, "path", item.fspath))
        if path.endswith(".ipynb") or path.endswith(SLOW_FILES) or "xla" in item.name.lower():
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session, exitstatus):
    left = [t.name for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]
    if left:  # a lab or a trainer left running by a test
        print(f"\nconftest: Python threads still running at the end: {left}", file=sys.stderr)


@pytest.fixture(autouse=True)
def _no_training_thread_left_running():
    """A test must not leave a lab's or a comparison's training thread running.

    The likely cause of the hang after the summary seen in two runs (2026-12-01: the main thread waited on
    a futex inside the final garbage collection until a debugger attached) is a daemon thread still
    running TensorFlow ops while the interpreter collects and tears down. Each test now waits for the
    gradlab threads it started (up to 30 s) and fails if one is still running.
    """
    yield
    left = [t for t in threading.enumerate() if t.name.startswith("gradlab-") and t.is_alive()]
    for t in left:
        t.join(timeout=30)
    still = [t.name for t in left if t.is_alive()]
    assert not still, f"the test left gradlab threads running: {still} (pause the lab, or run it with wait=True)"


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """If the process has not ended 300 s after pytest is done, print every thread's stack and exit 1.

    The process ends on its own (no forced exit). The watchdog only turns a hang, should one come back,
    into a failure that says where each thread waits, instead of a CI run that waits for its time limit.
    """
    faulthandler.dump_traceback_later(300, exit=True)
