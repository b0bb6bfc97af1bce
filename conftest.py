"""pytest set-up shared by tests and doctests (quiet TensorFlow, common names)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    import gradlab

    doctest_namespace.update(tf=tf, keras=keras, np=np, gradlab=gradlab)


# Scripts that tests run in subprocesses (they configure devices or join a cluster when
# run): not test modules, and --doctest-modules must not import them.
collect_ignore = ["tests/distributed_check.py", "tests/multiworker_check.py"]
