"""Test setup: import revl from this checkout (python/revl) unless REVL_TEST_INSTALLED=1, in
which case the installed package is tested."""
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
if os.environ.get("REVL_TEST_INSTALLED") != "1":
    sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))     # helper modules (tanh_model, header_parse)
