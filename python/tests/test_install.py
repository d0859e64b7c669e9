"""Installing the Python package where no package index can be reached (docs/python.md):
`pip install --no-build-isolation ./python` from a checkout into a venv that sees Debian's numpy
and setuptools builds librevl with the checkout's Makefile and carries it (revl/_native/), so
the venv trains a model with no REVL_LIBRARY and no installed library; a copy of python/ alone
installs pure Python, with `--no-build-isolation` into a venv and `--no-deps --target` into a
plain directory, each imported from another directory against a librevl installed with
`make install` into a temporary prefix, found by the system loader."""
import os
import pathlib
import shutil
import subprocess
import sys

import revl

PYTHON_DIR = pathlib.Path(revl.__file__).resolve().parent.parent
CHECKOUT = PYTHON_DIR.parent
# the interpreter the venv is made from: Debian's, whose site-packages hold numpy and setuptools
SYSTEM_PYTHON = os.environ.get("REVL_SYSTEM_PYTHON", "/usr/bin/python3")
OFFLINE = ["--no-index", "--no-build-isolation", "--disable-pip-version-check", "--quiet"]


def run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{cmd}:\n{r.stdout}\n{r.stderr}"
    return r


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("REVL_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH")}
    env.update({"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull}, **extra)
    return env


def installed_library(tmp_path):
    """make install PREFIX=<tmp>: the prefix's lib directory."""
    prefix = tmp_path / "prefix"
    run(["make", "--no-print-directory", "-C", CHECKOUT, "install", f"PREFIX={prefix}"])
    assert (prefix / "lib" / "librevl.so.0").exists()
    return prefix / "lib"


def source_copy(tmp_path):
    """python/ without its tests, copied so that pip's in-tree build leaves the checkout clean."""
    src = tmp_path / "src"
    shutil.copytree(PYTHON_DIR, src, ignore=shutil.ignore_patterns(
        "tests", "__pycache__", "build", "*.egg-info"))
    return src


PROBE = ("import revl, sys; print(revl.__file__); print(revl.library_path); "
         "print(revl.version())")


def check_probe(r, package_root, libdir):
    file, lib_path, version = r.stdout.splitlines()[:3]
    assert pathlib.Path(file).resolve().is_relative_to(package_root.resolve()), file
    assert lib_path == str(libdir / "librevl.so.0")      # the file actually loaded
    assert version == revl.version()


def checkout_view(tmp_path):
    """A checkout whose python/ is a copy (pip's in-tree build writes python/build/ and
    *.egg-info there, never into the real checkout) and whose Makefile, sources and build
    directories are the real ones (linked), so that the package's `make lib` finds the library
    built already and compiles nothing."""
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("Makefile", "include", "src", "lib", "build"):
        if (CHECKOUT / name).exists():
            os.symlink(CHECKOUT / name, root / name)
    shutil.copytree(PYTHON_DIR, root / "python", ignore=shutil.ignore_patterns(
        "tests", "__pycache__", "build", "*.egg-info"))
    return root


# trains a small model and takes its hypergradient: the carried library really works
TRAIN = """
import numpy as np, revl
A = np.linspace(0.5, 2.0, 6)
m = revl.Model(6, grad=lambda step, w, meta: (0.5 * w @ (A * w), A * w),
               hvp=lambda step, w, meta, v: (A * v, None))
s = revl.Schedule(20, [0, 6], alpha=0.1, gamma=0.9)
t = revl.Trainer(m, s)
t.train(np.ones(6))
wT = t.weights
hg = t.hypergrad(dfdw=2 * wT)              # reverses the run back to w0 = 1, bit for bit
assert np.all(np.abs(wT) < 0.5) and np.all(hg.alpha < 0) and np.all(t.weights == 1), (wT, hg)
print("trained")
"""


def test_venv_install_carries_the_library(tmp_path):
    """pip install ./python from a checkout: the library comes with the package, found first
    (before the system loader), with neither REVL_LIBRARY nor LD_LIBRARY_PATH nor a
    `make install`."""
    root = checkout_view(tmp_path)
    venv = tmp_path / "venv"
    run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", venv])
    py = venv / "bin" / "python"
    run([py, "-m", "pip", "install", *OFFLINE, root / "python"], env=clean_env())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = run([py, "-c", PROBE + TRAIN], cwd=elsewhere, env=clean_env())
    file, lib_path = r.stdout.splitlines()[:2]
    package = pathlib.Path(file).parent
    assert package.resolve().is_relative_to(venv.resolve()), file
    carried = package / "_native" / "librevl.so.0"
    assert lib_path == str(carried), r.stdout          # the file actually loaded
    assert carried.is_file() and not carried.is_symlink()
    assert r.stdout.splitlines()[-1] == "trained"
    # the same library the checkout built (bit for bit), not some other copy
    assert carried.read_bytes() == (CHECKOUT / "lib" / "librevl.so.0").read_bytes()


def test_venv_install_without_build_isolation(tmp_path):
    libdir = installed_library(tmp_path)
    venv = tmp_path / "venv"
    run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", venv])
    py = venv / "bin" / "python"
    run([py, "-m", "pip", "install", *OFFLINE, source_copy(tmp_path)], env=clean_env())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = run([py, "-c", PROBE], cwd=elsewhere, env=clean_env(LD_LIBRARY_PATH=str(libdir)))
    check_probe(r, venv, libdir)


def test_target_install_without_deps(tmp_path):
    libdir = installed_library(tmp_path)
    target = tmp_path / "target"
    run([SYSTEM_PYTHON, "-m", "pip", "install", *OFFLINE, "--no-deps", "--target", target,
         source_copy(tmp_path)], env=clean_env())
    assert (target / "revl" / "__init__.py").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = run([SYSTEM_PYTHON, "-c", PROBE], cwd=elsewhere,
            env=clean_env(PYTHONPATH=str(target), LD_LIBRARY_PATH=str(libdir)))
    check_probe(r, target, libdir)


def test_running_a_script_from_python_dir(tmp_path):
    """A script in python/ (or python/examples/) does not see the package by itself
    (sys.path[0] is the script's folder); PYTHONPATH=python, as the docs say, fixes it."""
    script = tmp_path / "probe.py"
    script.write_text(PROBE + "\n")
    env = clean_env(PYTHONPATH=str(PYTHON_DIR))
    r = run([sys.executable, script], cwd=tmp_path, env=env)
    assert r.stdout.splitlines()[1] == str(CHECKOUT / "lib" / "librevl.so.0")
