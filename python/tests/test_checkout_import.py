"""`python3 -c "import revl"` works from the top of the checkout (the revl.py shim there)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_import_from_checkout_root():
    out = subprocess.run([sys.executable, "-c", "import revl; print(revl.version(), revl.__file__)"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    version, path = out.split()
    assert version.count(".") == 2
    assert path.startswith(os.path.join(ROOT, "python", "revl"))
