"""The package's transcription of the C API against include/revl.h: every exported function is
wrapped with the header's signature; struct layouts agree with the C compiler; enum values agree."""
import ctypes
import shutil
import subprocess

import pytest

import revl
from revl import _base, _errors, _lib, hyperopt, mlp
import header_parse as hp

if not hp.HEADER.exists():
    pytest.fail(f"no header at {hp.HEADER} (set REVL_HEADER)", pytrace=False)


def test_every_header_function_is_wrapped_with_its_signature():
    header = hp.prototypes()
    assert len(header) > 50
    ours = {name: (hp.norm(ret), tuple(hp.norm(a) for a in args))
            for name, ret, args in _lib.PROTOTYPES}
    missing = sorted(set(header) - set(ours))
    extra = sorted(set(ours) - set(header))
    assert not missing, (f"revl.h functions the Python package does not declare: {missing}; add "
                         f"them to PROTOTYPES in python/revl/_lib.py (and wrap them in a class)")
    assert not extra, f"wrapped functions not in the header: {extra}"
    wrong = {n: (ours[n], header[n]) for n in header if ours[n] != header[n]}
    assert not wrong, f"signatures differ (ours, header): {wrong}"


def test_callback_typedefs_match():
    header = hp.typedef_fns()
    for name, (ret, args) in _lib.CALLBACK_TYPES.items():
        assert header[name] == (ret, tuple(hp.norm(a) for a in args)), name
    assert set(_lib.CALLBACK_TYPES) == {n for n in header if n.endswith("_fn")}


def test_struct_fields_match_the_header():
    header = hp.structs()
    for cname, cls in _lib.STRUCTS.items():
        names = [f[0] for f in header[cname]]
        assert [f[0] for f in cls._fields_] == names, cname


def test_enum_values_match():
    e = hp.enum_constants()
    assert {k: v for k, v in e.items() if k.startswith("REVL_ERR_") or k == "REVL_OK"} == {
        "REVL_OK": _errors.OK, "REVL_ERR_INVALID": _errors.ERR_INVALID,
        "REVL_ERR_NOMEM": _errors.ERR_NOMEM, "REVL_ERR_CALLBACK": _errors.ERR_CALLBACK,
        "REVL_ERR_RANGE": _errors.ERR_RANGE, "REVL_ERR_STATE": _errors.ERR_STATE,
        "REVL_ERR_INEXACT": _errors.ERR_INEXACT, "REVL_ERR_IO": _errors.ERR_IO}
    for name, v in mlp.ACTIVATIONS.items():
        assert e["REVL_ACT_" + name.upper()] == v
    for name, v in mlp.PENALTIES.items():
        assert e["REVL_PENALTY_" + name.upper()] == v
    for name, v in hyperopt.LEARN.items():
        assert e["REVL_LEARN_" + name.upper()] == v
    for name, v in hyperopt.METHODS.items():
        assert e["REVL_META_" + name.upper()] == v
    for name, v in hyperopt.CHAOS_ACTIONS.items():
        assert e["REVL_CHAOS_" + name.upper()] == v
    assert {k[len("REVL_OPTIM_"):].lower(): v for k, v in e.items()
            if k.startswith("REVL_OPTIM_")} == _base.OPTIMIZERS
    assert {k[len("REVL_HYPER_"):].lower(): v for k, v in e.items()
            if k.startswith("REVL_HYPER_")} == _base.KINDS
    for name, code in _base.OPTIMIZERS.items():
        assert _lib.lib.optimizer_name(code).decode() == name
    for name, code in _base.KINDS.items():
        assert _lib.lib.hyper_name(code).decode() == name


def test_struct_layout_matches_the_c_compiler(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "no C compiler (build-essential)"
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "revl.h"', "int main(void) {"]
    for cname, cls in _lib.STRUCTS.items():
        lines.append(f'printf("{cname} %zu\\n", sizeof({cname}));')
        for fname, _ in cls._fields_:
            lines.append(f'printf("{cname}.{fname} %zu\\n", offsetof({cname}, {fname}));')
    lines += ["return 0; }"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-I", str(hp.HEADER.parent), str(src), "-o", str(exe)],
                   check=True)
    got = dict(line.split() for line in subprocess.run(
        [str(exe)], check=True, capture_output=True, text=True).stdout.splitlines())
    for cname, cls in _lib.STRUCTS.items():
        assert int(got[cname]) == ctypes.sizeof(cls), cname
        for fname, _ in cls._fields_:
            assert int(got[f"{cname}.{fname}"]) == getattr(cls, fname).offset, (cname, fname)


def test_version_matches_the_header():
    text = hp.HEADER.read_text()
    import re
    parts = [re.search(rf"#define REVL_VERSION_{k} (\d+)", text).group(1)
             for k in ("MAJOR", "MINOR", "PATCH")]
    assert revl.version() == ".".join(parts)
    assert revl.version_number() == int(parts[0]) * 10000 + int(parts[1]) * 100 + int(parts[2])
