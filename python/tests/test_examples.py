"""The Python example and the overhead benchmark run (quick settings)."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import revl
from builtin_util import need

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run(args, timeout=300):
    env = dict(os.environ)
    env.setdefault("REVL_LIBRARY", revl.library_path)
    return subprocess.run([sys.executable] + args, capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.parametrize("engine", ["python", "c"])
def test_lr_schedule_quick(engine):
    need("mlp_create", "dataset_load_idx", "model_evaluate")
    if engine == "c":
        need("hyperopt_create", "hyperopt_run")
    assert os.path.exists(os.path.join(revl.data.FASHION_MNIST_DIR,
                                       "train-images-idx3-ubyte.gz")), \
        "Fashion-MNIST missing: install the Debian package dataset-fashion-mnist (make deps)"
    r = run([str(ROOT / "python" / "examples" / "lr_schedule.py"), "--quick", "--engine", engine])
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "valid" in ln and "|hypergrad|" in ln]
    assert len(lines) == 5, r.stdout
    assert "init scale" in r.stdout


def test_overhead_benchmark_runs():
    assert shutil.which("cc") or shutil.which("gcc"), "no C compiler (build-essential)"
    r = run([str(ROOT / "bench" / "python_callback_overhead.py"), "--T", "100", "--repeat", "1"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("bit for bit: True") == 2
