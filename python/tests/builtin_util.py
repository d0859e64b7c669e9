"""Guards for library parts a test needs.  They fail, never skip: `make check` must not turn a
missing export or an unimplemented call into a green run (issue 11)."""
import contextlib

import pytest

import revl


def need(*symbols):
    missing = [s for s in symbols if not revl.available(s)]
    if missing:
        pytest.fail(f"the linked librevl does not export {', '.join('revl_' + s for s in missing)}"
                    f" ({revl.library_path})", pytrace=False)


@contextlib.contextmanager
def skip_if_unimplemented():
    """Kept for the tests that use it: a missing export or an unimplemented call now fails the
    test with the library's own error (it used to skip)."""
    yield
