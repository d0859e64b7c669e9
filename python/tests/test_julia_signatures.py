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
FN_TYPEDEFS = {"revl_hvp_affine_fn", "revl_progress_fn"}  # callback types passed as arguments
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
