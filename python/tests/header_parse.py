"""A small parser for include/revl.h: exported prototypes, struct fields, enum constants.
Good enough for this header's plain C style (no macros in declarations but REVL_API)."""
import os
import pathlib
import re

HEADER = pathlib.Path(os.environ.get(
    "REVL_HEADER", pathlib.Path(__file__).resolve().parents[2] / "include" / "revl.h"))


def read(path=HEADER):
    text = pathlib.Path(path).read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return text


def norm(t):
    t = " ".join(t.replace("*", " * ").split())
    return t.replace("* *", "**")


def split_param(p):
    """'const double *w' -> 'const double *'; 'size_t n' -> 'size_t'; an array parameter
    'double *const d[N]' -> 'double * const *' (what it decays to)."""
    p = norm(p)
    arr = re.match(r"^(.*\w)\s*\[[^\]]*\]$", p)
    if arr:
        return norm(split_param(arr.group(1)) + " *")
    if p == "void":
        return None
    m = re.match(r"^(.*?)\s*\b([A-Za-z_]\w*)$", p)
    if m and m.group(1) and m.group(1) not in ("const", "unsigned", "struct"):
        return norm(m.group(1))
    return p


def prototypes(path=HEADER):
    """{name: (return type, (argument types...))} of every REVL_API function."""
    text = read(path)
    out = {}
    for m in re.finditer(r"REVL_API\s+([^;(]*?)\b(revl_\w+)\s*\(([^)]*)\)\s*;", text):
        ret, name, args = norm(m.group(1)), m.group(2), m.group(3)
        params = [split_param(a) for a in args.split(",")] if args.strip() else []
        out[name] = (ret, tuple(p for p in params if p is not None))
    return out


def structs(path=HEADER):
    """{struct name: [(field name, type)]}; function-pointer fields get type 'fnptr'."""
    text = read(path)
    out = {}
    for m in re.finditer(r"typedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*(\w+)\s*;", text, flags=re.S):
        fields = []
        for decl in m.group(2).split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            fp = re.match(r"^(.*?)\(\s*\*\s*(\w+)\s*\)\s*\(.*\)$", decl)
            if fp:
                fields.append((fp.group(2), "fnptr"))
                continue
            first, *rest = [x.strip() for x in decl.split(",")]
            fm = re.match(r"^(.*?)([A-Za-z_]\w*)$", first)
            base = norm(fm.group(1))
            fields.append((fm.group(2), base))
            base_noptr = base.rstrip("* ").strip()
            for r in rest:
                stars = len(r) - len(r.lstrip("*"))
                fields.append((r.lstrip("* "), norm(base_noptr + " " + "*" * stars)
                               if stars else base))
        out[m.group(3)] = fields
    return out


def typedef_fns(path=HEADER):
    """{typedef name: (return type, (argument types...))} of function-pointer typedefs."""
    text = read(path)
    out = {}
    for m in re.finditer(r"typedef\s+([^;()]*?)\(\s*\*\s*(\w+)\s*\)\s*\(([^)]*)\)\s*;", text):
        params = [split_param(a) for a in m.group(3).split(",")]
        out[m.group(2)] = (norm(m.group(1)), tuple(p for p in params if p is not None))
    return out


def enum_constants(path=HEADER):
    """{NAME: value} of every enumerator (explicit values only, as this header writes them)."""
    text = read(path)
    out = {}
    for body in re.findall(r"enum\s*\w*\s*\{(.*?)\}", text, flags=re.S):
        for item in body.split(","):
            m = re.match(r"\s*(REVL_\w+)\s*=\s*(-?\s*\d+)\s*$", item)
            if m:
                out[m.group(1)] = int(m.group(2).replace(" ", ""))
    return out
