"""Where `import revl` finds librevl: REVL_LIBRARY, then the copy pip installed inside the
package (revl/_native/), then the checkout's lib/, then the system loader; a failure names every
place tried."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import revl

PKG = pathlib.Path(revl.__file__).resolve().parent
CHECKOUT_LIB = PKG.parent.parent / "lib" / "librevl.so.0"


def probe(env_changes, cwd, path_entry):
    env = {k: v for k, v in os.environ.items() if k not in ("REVL_LIBRARY", "LD_LIBRARY_PATH")}
    env.update(env_changes)
    code = (f"import sys; sys.path.insert(0, {str(path_entry)!r}); import revl; "
            f"print(revl.library_path); print(revl.version())")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=60)


def test_revl_library_wins_and_is_strict(tmp_path):
    r = probe({"REVL_LIBRARY": revl.library_path}, tmp_path, PKG.parent)
    assert r.returncode == 0 and r.stdout.splitlines()[0] == revl.library_path
    r = probe({"REVL_LIBRARY": str(tmp_path / "missing.so")}, tmp_path, PKG.parent)
    assert r.returncode != 0
    assert "REVL_LIBRARY" in r.stderr and "missing.so" in r.stderr
    assert "no other place was tried" in r.stderr


def test_checkout_build_directory():
    if not CHECKOUT_LIB.exists():
        pytest.skip("not running from a built checkout")
    r = probe({}, "/", PKG.parent)
    assert r.returncode == 0, r.stderr
    assert pathlib.Path(r.stdout.splitlines()[0]).resolve() == CHECKOUT_LIB.resolve()


def test_carried_library_after_revl_library_before_the_system_loader(tmp_path):
    """A package with revl/_native/librevl.so.0 (what pip installs from a checkout) loads that
    copy, even when the system loader would find another one; REVL_LIBRARY still wins."""
    shutil.copytree(PKG, tmp_path / "revl", ignore=shutil.ignore_patterns("__pycache__"))
    real = pathlib.Path(revl.library_path).resolve()
    (tmp_path / "revl" / "_native").mkdir()
    carried = tmp_path / "revl" / "_native" / "librevl.so.0"
    shutil.copyfile(real, carried)
    other = tmp_path / "sys"
    other.mkdir()
    os.symlink(real, other / "librevl.so.0")
    r = probe({"LD_LIBRARY_PATH": str(other)}, tmp_path, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == str(carried)
    r = probe({"REVL_LIBRARY": str(other / "librevl.so.0")}, tmp_path, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == str(other / "librevl.so.0")


def test_system_loader_and_the_failure_message(tmp_path):
    shutil.copytree(PKG, tmp_path / "revl", ignore=shutil.ignore_patterns("__pycache__"))
    lib = tmp_path / "sys"
    lib.mkdir()
    os.symlink(pathlib.Path(revl.library_path).resolve(), lib / "librevl.so.0")
    r = probe({"LD_LIBRARY_PATH": str(lib)}, tmp_path, tmp_path)
    assert r.returncode == 0, r.stderr
    # the file actually loaded, not the soname the loader was asked for
    assert r.stdout.splitlines()[0] == str(lib / "librevl.so.0")
    r = probe({}, tmp_path, tmp_path)
    if r.returncode == 0:
        pytest.skip(f"librevl is installed system-wide ({r.stdout.split()[0]})")
    err = r.stderr
    for place in ("REVL_LIBRARY: not set", str(tmp_path / "revl" / "_native" / "librevl.so.0"),
                  "not installed by pip from a checkout", "not inside a revl checkout",
                  "find_library('revl')", "system loader, librevl.so.0"):
        assert place in err, err
