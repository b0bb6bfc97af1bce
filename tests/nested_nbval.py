"""nbval over notebooks/ on the other float kernels, in a subprocess started early (see conftest.py).

The run takes minutes of its own (every notebook again); started when collection ends, it runs beside
the other tests instead of after them, and `test_stored_outputs_do_not_depend_on_float_kernels`
collects its result.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NESTED = "GRADLAB_NBVAL_OTHER_KERNELS"  # set inside the nested run
GUARD = "test_stored_outputs_do_not_depend_on_float_kernels"
_run = {}


def inside() -> bool:
    return os.environ.get(NESTED) == "1"


def other_onednn_setting() -> str:
    """The ``TF_ENABLE_ONEDNN_OPTS`` value that selects the float kernels this process does not use.

    TensorFlow turns oneDNN on by default only on x86 CPUs with AVX-512 VNNI, AMX and the like: there "0"
    takes the other kernel path. On CPUs without them (AVX2 only) oneDNN is already off, "0" changes
    nothing and "1" switches it on.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port  # private: the one place TensorFlow says so

        return "0" if _pywrap_util_port.IsMklEnabled() else "1"
    except (ImportError, AttributeError):
        return "0"


def start() -> dict:
    """Start the nested run once per session (same python, same addopts, notebooks/ only)."""
    if not _run:
        setting = other_onednn_setting()
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=setting, **{NESTED: "1"})
        command = [sys.executable, "-m", "pytest", "notebooks/", "-p", "no:cacheprovider", "-q"]
        log = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        _run.update(proc=proc, log=log, setting=setting)
    return _run


def result(timeout: float) -> tuple[int, str, str]:
    """Wait for the nested run: (exit code, its output's tail, the setting it ran with)."""
    run = start()
    code = run["proc"].wait(timeout=timeout)
    run["log"].seek(0)
    return code, run["log"].read()[-4000:], run["setting"]


def stop() -> None:
    """End a nested run the session no longer waits for (an aborted session)."""
    if _run and _run["proc"].poll() is None:
        _run["proc"].kill()
        _run["proc"].wait()
