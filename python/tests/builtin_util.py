"""Skipping helpers for library parts that may not have landed yet."""
import contextlib

import pytest

import revl


def need(*symbols):
    for s in symbols:
        if not revl.available(s):
            pytest.skip(f"the linked librevl does not export revl_{s} yet")


@contextlib.contextmanager
def skip_if_unimplemented():
    """Skip when a call raises revl.Unavailable or an error saying it is not implemented."""
    try:
        yield
    except revl.Unavailable as e:
        pytest.skip(str(e))
    except revl.Error as e:
        if "implement" in (e.message or "").lower():
            pytest.skip(f"not implemented in this build: {e}")
        raise
