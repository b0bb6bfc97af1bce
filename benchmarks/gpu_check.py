"""GPU check: run on a machine with an NVIDIA GPU (gradlab installed with the `gpu` extra).

    make gpu-check        (python benchmarks/gpu_check.py)

1. prints the device TensorFlow sees;
2. trains the same run on CPU and on GPU (every mode, from identical weights) and
   checks that the recorded statistics agree within float tolerance;
3. runs the GPU-relevant tests (training, accumulation, optimizer, scaling);
4. runs the step benchmark (benchmarks/bench_step.py: ratios against model.fit,
   XLA off and on).
Exits 2 when no GPU is visible, 1 when a check fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import gradlab  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("loss", "norm_before", "norm_after", "layer_norm_before", "update_ratio")


def run_on(device: str) -> list:
    with tf.device(device):
        p = gradlab.problems.deep_mlp(depth=4, width=32, samples=512)
        return gradlab.compare(
            p,
            [m for m in gradlab.scaler.MODE_NAMES if m != "none"],
            steps=30,
            optimizer=lambda: keras.optimizers.SGD(0.05),
        )


def main() -> int:
    gpus = tf.config.list_physical_devices("GPU")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}; GPUs: {[g.name for g in gpus] or 'none'}")
    if not gpus:
        print("No GPU visible: install with `pip install -e .[gpu,lab,test]` on a machine with an NVIDIA GPU.")
        return 2
    details = tf.config.experimental.get_device_details(gpus[0])
    print(f"device: {details.get('device_name', gpus[0].name)}, compute capability {details.get('compute_capability')}")
    cpu, gpu = run_on("/CPU:0"), run_on("/GPU:0")
    worst = 0.0
    for a, b in zip(cpu, gpu):
        for field in FIELDS:
            x, y = getattr(a, field), getattr(b, field)
            ok = np.isfinite(x) & np.isfinite(y)
            rel = float(np.max(np.abs(x[ok] - y[ok]) / np.maximum(np.abs(x[ok]), 1e-6))) if ok.any() else 0.0
            worst = max(worst, rel)
        print(f"  {a.label:>16}: CPU vs GPU, largest relative difference so far {worst:.2e}")
    same = worst < 1e-3
    print(f"CPU and GPU statistics agree within 1e-3: {same} (largest relative difference {worst:.2e})")
    tests = ["tests/test_training.py", "tests/test_accumulation.py", "tests/test_optimizer.py", "tests/test_scaling.py"]
    code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:nbval", "-o", "addopts=", *tests], cwd=ROOT)
    print(f"GPU-relevant tests: {'passed' if code == 0 else 'FAILED'}")
    bench = subprocess.call([sys.executable, str(ROOT / "benchmarks" / "bench_step.py")], cwd=ROOT)
    return 0 if same and code == 0 and bench == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
