"""Builds librevl with the checkout's own Makefile and installs it inside the package as
revl/_native/librevl.so.0, so that `pip install --no-build-isolation ./python` gives a package
that needs no `make install` (docs/python.md, "Install"). The rest of the metadata is in
pyproject.toml.

The checkout is the directory above this one, or REVL_CHECKOUT. Without one (a copy of python/
alone) the package is pure Python and finds librevl as before (REVL_LIBRARY, the system
loader); REVL_BUNDLE=0 asks for that explicitly. `make lib` is incremental: when the checkout is
built already, nothing is compiled again."""
import os
import pathlib
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = pathlib.Path(__file__).resolve().parent
NATIVE = "_native"          # revl/_native/: not revl/_lib, which is the module _lib.py
SONAME = "librevl.so.0"


def checkout():
    """The revl checkout to build from, or None (with the reason printed)."""
    if os.environ.get("REVL_BUNDLE", "1") == "0":
        print("revl: REVL_BUNDLE=0: not bundling librevl", file=sys.stderr)
        return None
    root = pathlib.Path(os.environ.get("REVL_CHECKOUT") or HERE.parent).resolve()
    if (root / "include" / "revl.h").is_file() and (root / "Makefile").is_file():
        return root
    print(f"revl: {root} is not a revl checkout (no include/revl.h and Makefile): librevl is "
          f"not bundled; the package will look for it through REVL_LIBRARY and the system "
          f"loader", file=sys.stderr)
    return None


ROOT = checkout()


def build_library(root):
    """`make lib` in the checkout; the path of the shared library it built."""
    make = os.environ.get("MAKE", "make")
    cmd = [make, "--no-print-directory", "-C", str(root), "lib"]
    print("revl: building librevl:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    lib = (root / "lib" / SONAME).resolve()        # the soname link names the versioned file
    if not lib.is_file():
        raise RuntimeError(f"revl: make lib did not leave {root / 'lib' / SONAME}")
    return lib


class BuildPyWithLibrary(build_py):
    """build_py, then the library copied (a regular file, not a link) into the package."""

    def run(self):
        super().run()
        if ROOT is None:
            return
        dest = pathlib.Path(self.build_lib) / "revl" / NATIVE
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(build_library(ROOT), dest / SONAME)
        os.chmod(dest / SONAME, 0o755)


class BinaryDistribution(Distribution):
    """A wheel that carries a shared library is platform-specific, not pure Python."""

    def has_ext_modules(self):
        return ROOT is not None


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=BinaryDistribution)
