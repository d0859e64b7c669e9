"""Installing the Python package where no package index can be reached (docs/python.md):
`pip install --no-build-isolation` into a venv that sees Debian's numpy and setuptools, and
`--no-deps --target` into a plain directory; each is imported from another directory against
a librevl installed with `make install` into a temporary prefix, found by the system loader."""
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
