import os
import sys
import threading

import pytest

_session = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: runs JupyterLab in headless Chromium (needs /usr/bin/chromium)")


def pytest_sessionfinish(session, exitstatus):
    _session["status"] = int(exitstatus)
    left = [t.name for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]
    if left:  # a lab or a trainer left running by a test
        print(f"\nconftest: Python threads still running at the end: {left}", file=sys.stderr)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """End the process once pytest has reported, with pytest's exit status.

    In one full run (2026-12-01) the process stayed alive for about 100 s after the summary, idle, with
    its main thread waiting on a futex in TensorFlow's teardown, and it went on only when a debugger
    attached. A test run must not hang after its result is known, so it leaves without interpreter
    teardown. Every report (terminal, files of other plugins) is written by then: this hook runs last.
    """
    if "status" in _session:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_session["status"])
