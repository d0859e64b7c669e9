"""Lets `python3 -c "import revl"` work from the top of a checkout after `make`.

The package itself lives in python/revl (install it with `pip install ./python`); this shim puts
python/ first on the module path and hands the import over to that package."""
import os as _os
import sys as _sys

_sys.path.insert(0, _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "python"))
del _sys.modules[__name__]
import revl as _package  # noqa: E402  (now python/revl)

_sys.modules[__name__] = _package
