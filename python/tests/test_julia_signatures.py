"""julia/Revl.jl cannot be run here (no Julia on the project's machines), so check it
statically against include/revl.h: every ccall names a header function with the same return
type and the same number and types of arguments; every @cfunction matches its callback
typedef; the structs mirror the header's fields in order with matching types."""
import pathlib
import re

import pytest

import header_parse as hp

JL = pathlib.Path(__file__).resolve().parents[2] / "julia" / "Revl.jl"
if not JL.exists() or not hp.HEADER.exists():
    pytest.fail("julia/Revl.jl or include/revl.h not in this tree", pytrace=False)

HANDLES = {"revl_model", "revl_schedule", "revl_trainer", "revl_dataset", "revl_hyperopt",
           "revl_family", "revl_tuner"}
JL_STRUCTS = {
    "revl_comm": "Comm",
    "revl_dp_def": "DpDef",
    "revl_model_def": "ModelDef",
    "revl_trainer_options": "TrainerOptions",
    "revl_trainer_stats": "TrainerStats",
    "revl_mlp_options": "MlpOptions",
    "revl_hyperopt_report": "HyperoptReport",
    "revl_hyperopt_options": "HyperoptOptions",
    "revl_family_options": "FamilyOptions",
    "revl_tuner_report": "TunerReport",
    "revl_tuner_options": "TunerOptions",
    "revl_tuner_result": "TunerResult",
}
ENUMS = {"revl_activation", "revl_penalty", "revl_meta_method", "revl_chaos_action",
         "revl_optimizer", "revl_hyper", "revl_family_type", "revl_shape", "revl_tune_strategy",
         "revl_refine_method"}
FN_TYPEDEFS = {"revl_hvp_affine_fn", "revl_hvp_dir_fn", "revl_progress_fn"}  # callback types passed as arguments
SCALARS = {"int": "Cint", "unsigned": "Cuint", "unsignedint": "Cuint", "size_t": "Csize_t",
           "double": "Cdouble",
           "uint64_t": "UInt64", "int32_t": "Int32", "void": "Cvoid"}
TRAMPOLINES = {"_grad_trampoline": "revl_grad_fn", "_hvp_trampoline": "revl_hvp_fn",
               "_hvp_affine_trampoline": "revl_hvp_affine_fn",
               "_report_trampoline": "revl_report_fn",
               "_objective_trampoline": "revl_objective_fn",
               "_progress_trampoline": "revl_progress_fn",
               "_family_map_trampoline": "revl_family_map_fn",
               "_family_vjp_trampoline": "revl_family_vjp_fn",
               "_tuner_report_trampoline": "revl_tuner_report_fn"}


def allowed(ctype):
    """The Julia types that pass this C type correctly through ccall."""
    t = hp.norm(ctype)
    base = t.replace("const ", "").replace(" ", "")
    if base in SCALARS:
        return {SCALARS[base]}
    if base in ENUMS:
        return {"Cint"}
    if base in FN_TYPEDEFS:
        return {"Ptr{Cvoid}"}
    if base.endswith("*") and base[:-1] in ENUMS:
        return {"Ptr{Cint}", "Ref{Cint}"}
    if base == "double**":                  # double *const d_kinds[N]: an array of pointers
        return {"Ptr{Ptr{Cdouble}}"}
    if base == "char*":
        return {"Cstring", "Ptr{UInt8}", "Ptr{Cchar}"}
    if base.endswith("**") and base[:-2] in HANDLES:
        return {"Ref{Ptr{Cvoid}}", "Ptr{Ptr{Cvoid}}"}
    if base.endswith("*") and base[:-1] in HANDLES:
        return {"Ptr{Cvoid}"}
    if base.endswith("*") and base[:-1] in JL_STRUCTS:
        j = JL_STRUCTS[base[:-1]]
        return {f"Ref{{{j}}}", f"Ptr{{{j}}}"}
    if base == "revl_allocator*" or base == "void*":
        return {"Ptr{Cvoid}"}
    if base.endswith("*") and base[:-1] in SCALARS:
        j = SCALARS[base[:-1]]
        return {f"Ptr{{{j}}}", f"Ref{{{j}}}"}
    raise AssertionError(f"no Julia mapping for C type {ctype!r}")


def jl_source():
    text = JL.read_text()
    return re.sub(r"#[^\n]*", "", text)     # comments


def split_types(tuple_body):
    return [x.strip() for x in tuple_body.split(",") if x.strip()]


def ccalls():
    out = []
    for m in re.finditer(r"ccall\(\(:(\w+),\s*librevl\),\s*([^,]+?),\s*\(([^()]*)\)",
                         jl_source()):
        out.append((m.group(1), m.group(2).strip(), split_types(m.group(3))))
    return out


def test_every_ccall_matches_the_header():
    header = hp.prototypes()
    calls = ccalls()
    assert len(calls) > 55
    problems = []
    for name, ret, args in calls:
        if name not in header:
            problems.append(f"{name}: not in revl.h")
            continue
        cret, cargs = header[name]
        if ret not in allowed(cret):
            problems.append(f"{name}: returns {ret}, C returns {cret}")
        if len(args) != len(cargs):
            problems.append(f"{name}: {len(args)} arguments, C has {len(cargs)}")
            continue
        for i, (j, c) in enumerate(zip(args, cargs)):
            if j not in allowed(c):
                problems.append(f"{name}: argument {i + 1} is {j}, C has {c!r}")
    assert not problems, "\n".join(problems)


def test_every_header_function_is_wrapped():
    called = {c[0] for c in ccalls()}
    unwrapped = sorted(set(hp.prototypes()) - called
                       - {"revl_allocator_init", "revl_schedule_create_with"})
    assert not unwrapped, f"functions of revl.h without a ccall in Revl.jl: {unwrapped}"


def test_cfunctions_match_the_callback_typedefs():
    typedefs = hp.typedef_fns()
    found = {}
    for m in re.finditer(r"@cfunction\(\s*(\w+)\s*,\s*(\w+)\s*,\s*\(([^()]*)\)\s*\)",
                         jl_source()):
        found[m.group(1)] = (m.group(2), split_types(m.group(3)))
    assert set(found) == set(TRAMPOLINES)
    for fn, (ret, args) in found.items():
        cret, cargs = typedefs[TRAMPOLINES[fn]]
        assert ret in allowed(cret), fn
        assert len(args) == len(cargs), fn
        for j, c in zip(args, cargs):
            assert j in allowed(c), (fn, j, c)
    # the trampolines' own signatures agree with their @cfunction
    src = jl_source()
    for fn, (ret, args) in found.items():
        m = re.search(rf"function {fn}\(([^)]*)\)::(\w+)", src)
        assert m, fn
        params = [p.split("::")[1].strip() for p in m.group(1).split(",")]
        assert params == args and m.group(2) == ret, fn


def test_structs_mirror_the_header():
    cstructs = hp.structs()
    src = jl_source()
    for cname, jname in JL_STRUCTS.items():
        m = re.search(rf"(?:mutable\s+)?struct\s+{jname}\b(.*?)\n\s*end\b", src, flags=re.S)
        assert m, jname
        jfields = [tuple(x.strip() for x in line.split("::"))
                   for line in m.group(1).splitlines() if "::" in line]
        cfields = cstructs[cname]
        assert [f[0] for f in jfields] == [f[0] for f in cfields], jname
        for (fname, jt), (_, ct) in zip(jfields, cfields):
            if ct == "fnptr" or ct.endswith("_fn") or "*" in ct:
                assert jt == "Ptr{Cvoid}", (jname, fname, jt, ct)
            else:
                assert jt in allowed(ct), (jname, fname, jt, ct)


# ---- the optimisers, kinds, defaults and learn bits come from the library (issue 23, item 2):
# a new optimiser or kind needs no edit in Revl.jl, so Revl.jl must not list them
# what the original calls are about (revl_schedule_create, revl_schedule_set_all,
# revl_trainer_hypergrad, revl_hyperopt_create): momentum SGD with alpha and gamma
LEGACY = {"momentum", "alpha", "gamma"}


def registry_names():
    """The optimiser and kind names of the header's enums (revl_optimizer, revl_hyper)."""
    c = hp.enum_constants()
    opts = {k[len("REVL_OPTIM_"):].lower() for k in c if k.startswith("REVL_OPTIM_")}
    kinds = {k[len("REVL_HYPER_"):].lower() for k in c if k.startswith("REVL_HYPER_")}
    assert {"momentum", "adam", "rmsprop", "adamw"} <= opts and {"alpha", "beta1", "eps"} <= kinds
    # a name that is also a value of another enum (adam: REVL_META_ADAM, REVL_REFINE_ADAM)
    others = {k for k in c if not k.startswith(("REVL_OPTIM_", "REVL_HYPER_"))}
    shared = {n for n in opts | kinds if any(o.endswith("_" + n.upper()) for o in others)}
    return opts, kinds, shared


def jl_code():
    """Revl.jl without comments and docstrings (which may well name optimisers)."""
    return re.sub(r'"""(.*?)"""', '""', jl_source(), flags=re.S)


def test_no_optimizer_or_kind_name_in_the_code():
    opts, kinds, shared = registry_names()
    code = jl_code()
    found = sorted(n for n in (opts | kinds) - LEGACY - shared
                   if re.search(rf'(:{n}\b|"{n}")', code))
    assert not found, (f"Revl.jl names optimisers or kinds itself: {found}; read them from the "
                       f"library (OPTIMIZERS, KINDS, OPT_KINDS, DEFAULTS, LEARN)")


def test_no_table_of_optimizers_or_kinds():
    opts, kinds, _ = registry_names()
    tables = []
    for body in re.findall(r"Dict\(([^()]*)\)", jl_code()):
        keys = set(re.findall(r":(\w+)\s*=>", body))
        if len(keys & opts) >= 2 or len(keys & kinds) >= 2:
            tables.append(body.strip())
    assert not tables, f"Revl.jl keeps its own table of optimisers or kinds: {tables}"


def test_no_kind_or_optimizer_code_as_a_literal():
    code = jl_code()
    bad = re.findall(r"\b(?:HYPER|OPTIM)_COUNT\b", code)
    bad += re.findall(r"(?:KINDS|OPTIMIZERS)\[[^\]]*\]\s*(?:[<>]=?|[!=]=)\s*\d+", code)
    bad += re.findall(r"\b(?:opt|optc|code|kind)\s*(?:[<>]=?|[!=]=)\s*\d+", code)
    assert not bad, f"Revl.jl compares optimiser or kind codes with numbers: {bad}"
    # the one count it keeps is the fixed length of revl_trainer_hypergrad_kinds's d_kinds
    shipped = re.search(r"revl_trainer_hypergrad_kinds\([^;]*d_kinds\[(\d+)\]", hp.read())
    assert shipped, "revl_trainer_hypergrad_kinds(..., d_kinds[N], ...) not in revl.h"
    assert re.findall(r"const SHIPPED_KINDS = (\d+)", code) == [shipped.group(1)]


def test_the_registry_is_read_when_the_module_loads():
    code = jl_code()
    init = re.search(r"function __init__\(\)(.*?)\nend\b", code, flags=re.S)
    assert init and "_learn_registry!()" in init.group(1)
    reg = re.search(r"function _learn_registry!\(\)(.*?)\nend\b", code, flags=re.S)
    assert reg, "_learn_registry! not in Revl.jl"
    for table in ("OPTIMIZERS", "KINDS", "OPT_KINDS", "DEFAULTS", "LEARN"):
        assert re.search(rf"\bconst {table} = Dict{{[^\n]*?}}\(\)\n", code), \
            f"{table} is not an empty table filled from the library"
        assert table in reg.group(1), f"_learn_registry! does not fill {table}"
