# Revl.jl: a thin Julia wrapper of librevl (exact hypergradients by reversing training with
# any of the library's optimisers, which it reads from the library: Revl.optimizers()).
#
# UNTESTED: Julia is not installable on the project's machines, so this file has never been
# run. What CI does check (python/tests/test_julia_signatures.py) is that every ccall below
# names a function of include/revl.h with the same number and types of arguments and the same
# return type, that every @cfunction matches its C callback typedef, and that the structs
# mirror the header's field by field. See docs/julia.md.
#
#   include("julia/Revl.jl"); using .Revl
#   m = Revl.Model(P; grad = (step, w, meta) -> (loss, g), hvp = (step, w, meta, v) -> (hv, nothing))
#   s = Revl.Schedule(T, [0, P]); Revl.setalpha!(s, 0.1); Revl.setgamma!(s, 0.9)
#   t = Revl.Trainer(m, s); Revl.train!(t, w0); hg = Revl.hypergrad(t, dfdw)
#   a = Revl.Schedule(T, [0, P]; optimizer=:adam); Revl.setkind!(a, :beta2, 0.99)
#   hg = Revl.hypergrad(Revl.Trainer(m, a), dfdw)   # hg.alpha, hg.beta1, hg.beta2, hg.eps
#
# Library lookup: ENV["REVL_LIBRARY"], else <checkout>/lib/librevl.so.0 (this file is
# <checkout>/julia/Revl.jl), else "librevl.so.0" through the system loader.
module Revl

using Libdl

export RevlError, Model, Schedule, Trainer, Dataset, MLP, HyperOpt, Family, Tuner, fixed_round,
       blas_threads,
       train!, weights, hypergrad, stats, setalpha!, setgamma!, alpha, gamma, evaluate,
       init_weights, init_scales_grad, step!, run!, hyperparams, sethyperparams!, save, load!,
       optimizer, kinds, getkind, setkind!, fillkind!, hyper_applied, set_progress!,
       optimizers, defaults, inrange,
       familymap, familyvjp, bounds, setbounds!, base, setbase!, project, coordnames, phase,
       result, best, best_scales_meta, best_z, best_weights, best_schedule!, refine_point, batch_indices,
       set_order_seed!

function _find_library()
    env = get(ENV, "REVL_LIBRARY", "")
    isempty(env) || return env
    local_build = normpath(joinpath(@__DIR__, "..", "lib", "librevl.so.0"))
    isfile(local_build) && return local_build
    return "librevl.so.0"
end

const librevl = _find_library()

# ------------------------------------------------------------------ status and errors
const OK = 0
const ERR_INVALID = -1
const ERR_NOMEM = -2
const ERR_CALLBACK = -3
const ERR_RANGE = -4
const ERR_STATE = -5
const ERR_INEXACT = -6
const ERR_IO = -7

"""A failed revl call: `status` (negative revl_status), `message` (the handle's last error),
`func` (the C function)."""
struct RevlError <: Exception
    status::Int
    message::String
    func::String
end

# the function once: a message that already starts with it (revl_trainer_hypergrad_kinds: ...)
# is not prefixed again
Base.showerror(io::IO, e::RevlError) =
    print(io, "RevlError: ", startswith(e.message, e.func) ? "" : string(e.func, ": "),
          e.message, " [", strerror(e.status), ", status ", e.status, "]")

strerror(status::Integer) =
    unsafe_string(ccall((:revl_strerror, librevl), Cstring, (Cint,), status))

version() = unsafe_string(ccall((:revl_version_string, librevl), Cstring, ()))
version_number() = Int(ccall((:revl_version_number, librevl), Cuint, ()))
gamma_applied(g::Real) = ccall((:revl_gamma_applied, librevl), Cdouble, (Cdouble,), g)

"""fixed_round(w; frac_bits=52): a copy of w on the fixed-point grid training starts from and
the reverse pass returns to (docs/checking.md)."""
function fixed_round(w::AbstractVector{<:Real}; frac_bits::Integer=52)
    x = Vector{Cdouble}(w)
    rc = ccall((:revl_fixed_round, librevl), Cint, (Cuint, Ptr{Cdouble}, Csize_t), frac_bits, x,
               length(x))
    rc == 0 || throw(RevlError(rc, "frac_bits outside 1..62, or a value not finite or out of range",
                               "revl_fixed_round"))
    return x
end

"""blas_threads(n=0): the BLAS library's thread count for the whole process (the built-in MLP's
products run on it, and their bits depend on it); n > 0 sets it, 0 only asks. Returns the count
before the call, or 0 when the BLAS offers no such control (docs/performance.md, "BLAS threads").
Julia's own BLAS is a separate library with its own count (BLAS.set_num_threads)."""
function blas_threads(n::Integer=0)
    rc = ccall((:revl_blas_threads, librevl), Cint, (Cint,), n)
    rc >= 0 || throw(RevlError(rc, "n must be >= 0", "revl_blas_threads"))
    return Int(rc)
end

"""Why the last revl_*_create on this thread failed ("" after a success)."""
last_create_error() = unsafe_string(ccall((:revl_last_create_error, librevl), Cstring, ()))

# ------------------------------------------------------------------ optimisers and kinds
# Learnt from the loaded library when the module initialises (__init__ below), never listed
# here, so that an optimiser or kind added to the library needs no edit in this file:
#   OPTIMIZERS  name => revl_optimizer code   (revl_optimizer_name until NULL)
#   KINDS       name => revl_hyper code       (revl_hyper_name until NULL)
#   OPT_KINDS   optimiser => its kinds in the library's order (revl_schedule_kinds)
#   DEFAULTS    optimiser => kind => default  (a new schedule's values, revl_schedule_get_kind)
#   LEARN       name => REVL_LEARN_* bit      (revl_hyper_learn_bit per kind; init_scale, meta)
# Ranges are the library's too: hyper_applied is NaN outside a kind's range.
const OPTIMIZERS = Dict{Symbol,Int}()
const KINDS = Dict{Symbol,Int}()
const OPT_KINDS = Dict{Symbol,Vector{Symbol}}()
const DEFAULTS = Dict{Symbol,Dict{Symbol,Float64}}()
const LEARN = Dict{Symbol,Int}()
const LEARN_INIT_SCALE = 4   # REVL_LEARN_INIT_SCALE, REVL_LEARN_META: not kinds
const LEARN_META = 8
# revl_trainer_hypergrad_kinds reads exactly d_kinds[5] (the kinds revl 0.1 shipped with),
# whatever the library's kind count: a fixed fact of that call, not the number of kinds
const SHIPPED_KINDS = 5

_name_ptr(f::Symbol, code::Integer) = f === :optimizer ?
    ccall((:revl_optimizer_name, librevl), Ptr{UInt8}, (Cint,), code) :
    ccall((:revl_hyper_name, librevl), Ptr{UInt8}, (Cint,), code)
function _symbol_or_nothing(p::Ptr{UInt8})
    return p == C_NULL ? nothing : Symbol(unsafe_string(p))
end
optimizer_name(o::Integer) = _symbol_or_nothing(_name_ptr(:optimizer, o))
hyper_name(k::Integer) = _symbol_or_nothing(_name_ptr(:kind, k))

"""name => code of a revl enum whose *_name function returns NULL past the last value."""
function _enum_names(name::Function)
    table = Dict{Symbol,Int}()
    while (n = name(length(table))) !== nothing
        table[n] = length(table)
    end
    return table
end

"""The kinds of an optimiser in the library's order, and their defaults, from a one-step
schedule of one group."""
function _kinds_and_defaults(opt::Integer)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    offs = Csize_t[0, 1]
    rc = ccall((:revl_schedule_create_for, librevl), Cint,
               (Ref{Ptr{Cvoid}}, Cint, Csize_t, Csize_t, Ptr{Csize_t}, Ptr{Cvoid}),
               out, opt, 1, 1, offs, C_NULL)
    rc == 0 || throw(RevlError(rc, last_create_error(), "revl_schedule_create_for"))
    try
        n = Int(ccall((:revl_schedule_kinds, librevl), Csize_t, (Ptr{Cvoid}, Ptr{Cint}), out[], C_NULL))
        codes = Vector{Cint}(undef, n)
        ccall((:revl_schedule_kinds, librevl), Csize_t, (Ptr{Cvoid}, Ptr{Cint}), out[], codes)
        kinds = Symbol[hyper_name(c) for c in codes]
        defaults = Dict{Symbol,Float64}()
        for (k, c) in zip(kinds, codes)
            v = Ref{Cdouble}(NaN)
            rc = ccall((:revl_schedule_get_kind, librevl), Cint, (Ptr{Cvoid}, Cint, Ptr{Cdouble}),
                       out[], c, v)
            rc == 0 || throw(RevlError(rc, "cannot read the default of $k", "revl_schedule_get_kind"))
            defaults[k] = v[]
        end
        return kinds, defaults
    finally
        ccall((:revl_schedule_free, librevl), Cvoid, (Ptr{Cvoid},), out[])
    end
end

function _learn_registry!()
    merge!(OPTIMIZERS, _enum_names(optimizer_name))
    merge!(KINDS, _enum_names(hyper_name))
    for (name, code) in OPTIMIZERS
        OPT_KINDS[name], DEFAULTS[name] = _kinds_and_defaults(code)
    end
    merge!(LEARN, Dict(:init_scale => LEARN_INIT_SCALE, :meta => LEARN_META))
    for (name, code) in KINDS
        LEARN[name] = Int(ccall((:revl_hyper_learn_bit, librevl), Cuint, (Cint,), code))
    end
    return nothing
end

function _code(table::Dict{Symbol,Int}, x::Symbol, what::String)
    haskey(table, x) || throw(RevlError(ERR_INVALID, "unknown $what $x; choose from $(sort(collect(keys(table))))", "Revl"))
    return table[x]
end

"""The optimisers of the loaded library (Symbols, in code order)."""
optimizers() = sort(collect(keys(OPTIMIZERS)); by=k -> OPTIMIZERS[k])

_known_optimizer(o::Symbol) = (_code(OPTIMIZERS, o, "optimizer"); o)

"""The kinds of an optimiser, in the library's order (a new schedule's `kinds`)."""
kinds(optimizer::Symbol) = copy(OPT_KINDS[_known_optimizer(optimizer)])

"""The values a new schedule of this optimiser starts from: kind => default."""
defaults(optimizer::Symbol) = copy(DEFAULTS[_known_optimizer(optimizer)])

"""The value the library applies for a requested one of a kind (the grid of the momentum and
the betas, the others as they are); NaN outside the kind's range (include/revl.h)."""
hyper_applied(kind::Symbol, v::Real) =
    ccall((:revl_hyper_applied, librevl), Cdouble, (Cint, Cdouble), _code(KINDS, kind, "kind"), v)
"""Whether v is inside the range of the kind (the library's check)."""
inrange(kind::Symbol, v::Real) = !isnan(hyper_applied(kind, v))

# ------------------------------------------------------------------ structs (as in revl.h)
mutable struct ModelDef
    struct_size::Csize_t
    n_params::Csize_t
    n_meta::Csize_t
    grad::Ptr{Cvoid}
    hvp::Ptr{Cvoid}
    hvp_gives_grad::Cint
    user::Ptr{Cvoid}
    user_free::Ptr{Cvoid}
    allocator::Ptr{Cvoid}
end
ModelDef() = ModelDef(sizeof(ModelDef), 0, 0, C_NULL, C_NULL, 0, C_NULL, C_NULL, C_NULL)

# ------------------------------------------------------------------ data parallel (docs/mpi.md)
# The communicator and the per-micro-batch model definition, laid out as in revl.h. Julia code
# fills the function pointers with @cfunction; the MPI implementation is librevl_mpi's.
mutable struct Comm
    struct_size::Csize_t
    rank::Cint
    size::Cint
    allreduce_i64::Ptr{Cvoid}
    user::Ptr{Cvoid}
end
"""The single-process communicator (rank 0 of 1)."""
function comm_local()
    c = Comm(0, 0, 0, C_NULL, C_NULL)
    ccall((:revl_comm_init_local, librevl), Cvoid, (Ref{Comm},), c)
    return c
end

"""The micro-batches [first, first + count) of `rank` of `size`, 0-based first."""
function micro_range(n_micro::Integer, rank::Integer, size::Integer)
    first = Ref{Csize_t}(0)
    count = Ref{Csize_t}(0)
    rc = ccall((:revl_dp_micro_range, librevl), Cint,
               (Csize_t, Cint, Cint, Ptr{Csize_t}, Ptr{Csize_t}), n_micro, rank, size, first, count)
    rc == 0 || throw(RevlError(rc, "n_micro 0, or rank outside [0, size)", "revl_dp_micro_range"))
    return (Int(first[]), Int(count[]))
end

mutable struct DpDef
    struct_size::Csize_t
    n_params::Csize_t
    n_meta::Csize_t
    n_micro::Csize_t
    grad::Ptr{Cvoid}
    hvp::Ptr{Cvoid}
    hvp_gives_grad::Cint
    grad_frac_bits::Cuint
    comm::Ptr{Cvoid}
    user::Ptr{Cvoid}
    user_free::Ptr{Cvoid}
    allocator::Ptr{Cvoid}
end
"""A data-parallel model definition with the library's defaults (fill grad, hvp, n_params)."""
function dp_def()
    d = DpDef(0, 0, 0, 0, C_NULL, C_NULL, 0, 0, C_NULL, C_NULL, C_NULL, C_NULL)
    ccall((:revl_dp_def_init, librevl), Cvoid, (Ref{DpDef},), d)
    return d
end

"""The raw handle of a data-parallel model from a filled DpDef (the callbacks and `user` must
stay alive as long as the model); free it with ccall(:revl_model_free)."""
function dp_model_create(d::DpDef)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    rc = ccall((:revl_dp_model_create, librevl), Cint, (Ref{Ptr{Cvoid}}, Ref{DpDef}), out, d)
    _check(rc, "revl_dp_model_create", _nomsg)
    return out[]
end

mutable struct TrainerOptions
    struct_size::Csize_t
    frac_bits::Cuint
    truncate::Csize_t
    threads::Cint
    allocator::Ptr{Cvoid}
end
TrainerOptions() = TrainerOptions(sizeof(TrainerOptions), 52, 0, 0, C_NULL)

struct TrainerStats
    struct_size::Csize_t
    steps_done::Csize_t
    buffer_bits::Cdouble
    buffer_bytes::Csize_t
    peak_bytes::Csize_t
    last_loss::Cdouble
end
TrainerStats() = TrainerStats(sizeof(TrainerStats), 0, 0, 0, 0, NaN)

mutable struct MlpOptions
    struct_size::Csize_t
    activation::Cint
    penalty::Cint
    batch_size::Csize_t
    seed::UInt64
    threads::Cint
    allocator::Ptr{Cvoid}
end
MlpOptions() = MlpOptions(sizeof(MlpOptions), 0, 0, 200, 0, 0, C_NULL)

struct HyperoptReport
    struct_size::Csize_t
    iteration::Csize_t
    train_loss::Cdouble
    valid_loss::Cdouble
    valid_accuracy::Cdouble
    hypergrad_norm::Cdouble
    step_size::Cdouble
    seconds::Cdouble
    chaos::Cint
end
HyperoptReport() = HyperoptReport(sizeof(HyperoptReport), 0, NaN, NaN, NaN, NaN, NaN, 0, 0)

mutable struct HyperoptOptions
    struct_size::Csize_t
    learn::Cuint
    method::Cint
    step_size::Cdouble
    momentum::Cdouble
    adam_beta1::Cdouble
    adam_beta2::Cdouble
    adam_eps::Cdouble
    iterations::Csize_t
    fresh_seed::Cint
    seed::UInt64
    chaos_factor::Cdouble
    chaos_action::Cint
    report::Ptr{Cvoid}
    report_user::Ptr{Cvoid}
    objective::Ptr{Cvoid}
    objective_user::Ptr{Cvoid}
    frac_bits::Cuint
    threads::Cint
    allocator::Ptr{Cvoid}
end
HyperoptOptions() = HyperoptOptions(sizeof(HyperoptOptions), 7, 0, 0.04, 0.9, 0.9, 0.999, 1e-8,
                                    50, 0, 0, 10.0, 0, C_NULL, C_NULL, C_NULL, C_NULL, 52, 0,
                                    C_NULL)

# The library's own defaults, filled by its *_init functions.
function _init(::Type{TrainerOptions})
    o = TrainerOptions()
    ccall((:revl_trainer_options_init, librevl), Cvoid, (Ref{TrainerOptions},), o)
    o.struct_size = sizeof(TrainerOptions)
    return o
end
function _init(::Type{MlpOptions})
    o = MlpOptions()
    ccall((:revl_mlp_options_init, librevl), Cvoid, (Ref{MlpOptions},), o)
    o.struct_size = sizeof(MlpOptions)
    return o
end
function _init(::Type{HyperoptOptions})
    o = HyperoptOptions()
    ccall((:revl_hyperopt_options_init, librevl), Cvoid, (Ref{HyperoptOptions},), o)
    o.struct_size = sizeof(HyperoptOptions)
    return o
end
function _init(::Type{ModelDef})
    d = ModelDef()
    ccall((:revl_model_def_init, librevl), Cvoid, (Ref{ModelDef},), d)
    d.struct_size = sizeof(ModelDef)
    return d
end

# ------------------------------------------------------------------ callbacks
# The C side gets `user` = pointer_from_objref(state); the trampolines find the Julia
# functions there. An exception inside a callback is caught (with its backtrace), the callback
# returns 1 so the C run stops, and _check rethrows it from the caller.
mutable struct CallbackState
    n::Int
    nm::Int
    grad::Any        # (step, w, meta) -> (loss, g)
    hvp::Any         # (step, w, meta, v) -> (hv_w, hv_meta or nothing)
    report::Any      # (report::HyperoptReport) -> Bool (true stops)
    objective::Any   # (w, meta) -> (f, dfdw, dfdmeta or nothing)
    hvp_affine::Any  # (step, w, meta, a, b) -> (hv_w, hv_meta or nothing, g)
    progress::Any    # (step, phase :forward or :reverse, seconds, loss) -> Bool (true stops)
    err::Any         # nothing or a CapturedException
end
CallbackState(n, nm) = CallbackState(n, nm, nothing, nothing, nothing, nothing, nothing, nothing,
                                     nothing)

_state(user::Ptr{Cvoid}) = unsafe_pointer_to_objref(user)::CallbackState

# Views of C memory: valid only during the callback (copy to keep).
_view(p::Ptr{Cdouble}, n::Int) = (p == C_NULL || n == 0) ? Float64[] : unsafe_wrap(Array, p, n)

function _put!(p::Ptr{Cdouble}, n::Int, x, what::String)
    length(x) == n || throw(DimensionMismatch("callback returned $what of length $(length(x)), expected $n"))
    copyto!(unsafe_wrap(Array, p, n), x)
    return nothing
end

function _grad_trampoline(step::Csize_t, w::Ptr{Cdouble}, meta::Ptr{Cdouble}, g::Ptr{Cdouble},
                          loss::Ptr{Cdouble}, user::Ptr{Cvoid})::Cint
    st = _state(user)
    st.err === nothing || return Cint(1)
    try
        l, gv = st.grad(Int(step), _view(w, st.n), _view(meta, st.nm))
        _put!(g, st.n, gv, "g")
        loss == C_NULL || unsafe_store!(loss, Float64(l))
        return Cint(0)
    catch e
        st.err = CapturedException(e, catch_backtrace())
        return Cint(1)
    end
end

function _hvp_trampoline(step::Csize_t, w::Ptr{Cdouble}, meta::Ptr{Cdouble}, v::Ptr{Cdouble},
                         g::Ptr{Cdouble}, hv_w::Ptr{Cdouble}, hv_meta::Ptr{Cdouble},
                         user::Ptr{Cvoid})::Cint
    st = _state(user)
    st.err === nothing || return Cint(1)
    try
        hv, hm = st.hvp(Int(step), _view(w, st.n), _view(meta, st.nm), _view(v, st.n))
        _put!(hv_w, st.n, hv, "hv_w")
        if hv_meta != C_NULL && st.nm > 0
            hm === nothing ? fill!(unsafe_wrap(Array, hv_meta, st.nm), 0.0) :
                             _put!(hv_meta, st.nm, hm, "hv_meta")
        end
        return Cint(0)
    catch e
        st.err = CapturedException(e, catch_backtrace())
        return Cint(1)
    end
end

function _hvp_affine_trampoline(step::Csize_t, w::Ptr{Cdouble}, meta::Ptr{Cdouble}, a::Ptr{Cdouble},
                                b::Ptr{Cdouble}, g::Ptr{Cdouble}, hv_w::Ptr{Cdouble},
                                hv_meta::Ptr{Cdouble}, user::Ptr{Cvoid})::Cint
    st = _state(user)
    st.err === nothing || return Cint(1)
    try
        hv, hm, gv = st.hvp_affine(Int(step), _view(w, st.n), _view(meta, st.nm), _view(a, st.n),
                                   _view(b, st.n))
        _put!(g, st.n, gv, "g")
        _put!(hv_w, st.n, hv, "hv_w")
        if hv_meta != C_NULL && st.nm > 0
            hm === nothing ? fill!(unsafe_wrap(Array, hv_meta, st.nm), 0.0) :
                             _put!(hv_meta, st.nm, hm, "hv_meta")
        end
        return Cint(0)
    catch e
        st.err = CapturedException(e, catch_backtrace())
        return Cint(1)
    end
end

# The report callbacks of the hyper-optimiser and the tuner: a true result stops the run.
function _report_call(r::Ptr, user::Ptr{Cvoid})::Cint
    st = _state(user)
    st.err === nothing || return Cint(1)
    try
        return st.report(unsafe_load(r)) === true ? Cint(1) : Cint(0)
    catch e
        st.err = CapturedException(e, catch_backtrace())
        return Cint(1)
    end
end
function _report_trampoline(r::Ptr{HyperoptReport}, user::Ptr{Cvoid})::Cint
    return _report_call(r, user)
end

function _objective_trampoline(w::Ptr{Cdouble}, meta::Ptr{Cdouble}, f::Ptr{Cdouble},
                               dfdw::Ptr{Cdouble}, dfdmeta::Ptr{Cdouble}, user::Ptr{Cvoid})::Cint
    st = _state(user)
    st.err === nothing || return Cint(1)
    try
        fv, gw, gm = st.objective(_view(w, st.n), _view(meta, st.nm))
        _put!(dfdw, st.n, gw, "dfdw")
        if dfdmeta != C_NULL && st.nm > 0
            gm === nothing ? fill!(unsafe_wrap(Array, dfdmeta, st.nm), 0.0) :
                             _put!(dfdmeta, st.nm, gm, "dfdmeta")
        end
        unsafe_store!(f, Float64(fv))
        return Cint(0)
    catch e
        st.err = CapturedException(e, catch_backtrace())
        return Cint(1)
    end
end

function _progress_trampoline(step::Csize_t, phase::Cint, seconds::Cdouble, loss::Cdouble,
                              user::Ptr{Cvoid})::Cint
    st = _state(user)
    st.err === nothing || return Cint(1)
    try
        p = phase == 0 ? :forward : :reverse
        return st.progress(Int(step), p, seconds, loss) === true ? Cint(1) : Cint(0)
    catch e
        st.err = CapturedException(e, catch_backtrace())
        return Cint(1)
    end
end

# C function pointers are made at load time (they cannot be precompiled).
const GRAD_FN = Ref{Ptr{Cvoid}}(C_NULL)
const HVP_FN = Ref{Ptr{Cvoid}}(C_NULL)
const HVP_AFFINE_FN = Ref{Ptr{Cvoid}}(C_NULL)
const REPORT_FN = Ref{Ptr{Cvoid}}(C_NULL)
const OBJECTIVE_FN = Ref{Ptr{Cvoid}}(C_NULL)
const PROGRESS_FN = Ref{Ptr{Cvoid}}(C_NULL)
const FAMILY_MAP_FN = Ref{Ptr{Cvoid}}(C_NULL)
const FAMILY_VJP_FN = Ref{Ptr{Cvoid}}(C_NULL)
const TUNER_REPORT_FN = Ref{Ptr{Cvoid}}(C_NULL)

function __init__()
    GRAD_FN[] = @cfunction(_grad_trampoline, Cint,
                           (Csize_t, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cvoid}))
    HVP_FN[] = @cfunction(_hvp_trampoline, Cint,
                          (Csize_t, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cvoid}))
    HVP_AFFINE_FN[] = @cfunction(_hvp_affine_trampoline, Cint,
                                 (Csize_t, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cvoid}))
    REPORT_FN[] = @cfunction(_report_trampoline, Cint, (Ptr{HyperoptReport}, Ptr{Cvoid}))
    OBJECTIVE_FN[] = @cfunction(_objective_trampoline, Cint,
                                (Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cvoid}))
    PROGRESS_FN[] = @cfunction(_progress_trampoline, Cint,
                               (Csize_t, Cint, Cdouble, Cdouble, Ptr{Cvoid}))
    FAMILY_MAP_FN[] = @cfunction(_family_map_trampoline, Cint, (Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cvoid}))
    FAMILY_VJP_FN[] = @cfunction(_family_vjp_trampoline, Cint,
                                 (Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cvoid}))
    TUNER_REPORT_FN[] = @cfunction(_tuner_report_trampoline, Cint, (Ptr{TunerReport}, Ptr{Cvoid}))
    _learn_registry!()      # the optimisers, kinds, defaults and learn bits of this library
    return nothing
end

# Rethrow a callback's exception, else turn a status into a RevlError with the handle's message.
function _check(rc::Cint, func::String, msg::Function, states...)
    for st in states
        st === nothing && continue
        if st.err !== nothing
            e = st.err
            st.err = nothing
            throw(e)
        end
    end
    rc == 0 && return nothing
    throw(RevlError(rc, msg(), func))
end
_nomsg() = ""

# ------------------------------------------------------------------ model
mutable struct Model
    ptr::Ptr{Cvoid}
    n_params::Int
    n_meta::Int
    state::Union{CallbackState,Nothing}
    deps::Vector{Any}            # objects the C side points into (an MLP's data set)
end

function _free!(m::Model)
    m.ptr == C_NULL || ccall((:revl_model_free, librevl), Cvoid, (Ptr{Cvoid},), m.ptr)
    m.ptr = C_NULL
    return nothing
end

_lasterr(m::Model) = () -> unsafe_string(ccall((:revl_model_last_error, librevl), Cstring,
                                              (Ptr{Cvoid},), m.ptr))

"""Model(n_params; n_meta=0, grad, hvp=nothing, hvp_affine=nothing): the training loss as
Julia functions `grad(step, w, meta) -> (loss, g)` and `hvp(step, w, meta, v) -> (hv_w, hv_meta
or nothing)` (nothing: finite differences of grad). w, meta, v are views of C memory, valid
during the call. Optional `hvp_affine(step, w, meta, a, b) -> (hv_w, hv_meta or nothing, g)`:
the gradient g at w and the Hessian products along v = a .+ b .* g in one pass (Adam uses it:
one callback per reverse step instead of two, the same bits)."""
function Model(n_params::Integer; n_meta::Integer=0, grad, hvp=nothing, hvp_affine=nothing)
    st = CallbackState(n_params, n_meta)
    st.grad = grad
    st.hvp = hvp
    st.hvp_affine = hvp_affine
    d = _init(ModelDef)
    d.n_params = n_params
    d.n_meta = n_meta
    d.grad = GRAD_FN[]
    d.hvp = hvp === nothing ? C_NULL : HVP_FN[]
    d.user = pointer_from_objref(st)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    rc = ccall((:revl_model_create, librevl), Cint, (Ref{Ptr{Cvoid}}, Ref{ModelDef}), out, d)
    _check(rc, "revl_model_create", _nomsg)
    m = Model(out[], n_params, n_meta, st, Any[])
    finalizer(_free!, m)
    hvp_affine === nothing || set_hvp_affine!(m, HVP_AFFINE_FN[])
    return m
end

"""Register (a C function pointer of the revl_hvp_affine_fn type) or remove (C_NULL) the model's
fused gradient + affine-direction HVP; Model(...; hvp_affine=f) does this for a Julia f."""
function set_hvp_affine!(m::Model, fn::Ptr{Cvoid})
    rc = ccall((:revl_model_set_hvp_affine, librevl), Cint, (Ptr{Cvoid}, Ptr{Cvoid}), _live(m), fn)
    _check(rc, "revl_model_set_hvp_affine", _lasterr(m))
    return m
end

"""Register (a C function pointer of the revl_hvp_dir_fn type) or remove (C_NULL) the model's
fused gradient + Hessian-direction callback (RMSprop's reverse step, and clipped steps, in one
model pass)."""
function set_hvp_dir!(m::Model, fn::Ptr{Cvoid})
    rc = ccall((:revl_model_set_hvp_dir, librevl), Cint, (Ptr{Cvoid}, Ptr{Cvoid}), _live(m), fn)
    _check(rc, "revl_model_set_hvp_dir", _lasterr(m))
    return m
end

Base.close(m::Model) = _free!(m)

_live(x) = x.ptr == C_NULL ? throw(RevlError(ERR_STATE, "the object is closed", "Revl")) : x.ptr

n_groups(m::Model) = Int(ccall((:revl_model_n_groups, librevl), Csize_t, (Ptr{Cvoid},), _live(m)))

function offsets(m::Model)
    out = Vector{Csize_t}(undef, n_groups(m) + 1)
    rc = ccall((:revl_model_group_offsets, librevl), Cint, (Ptr{Cvoid}, Ptr{Csize_t}), _live(m), out)
    _check(rc, "revl_model_group_offsets", _lasterr(m))
    return Int.(out)
end

function set_groups!(m::Model, offs::AbstractVector{<:Integer})
    o = Csize_t.(offs)
    rc = ccall((:revl_model_set_groups, librevl), Cint, (Ptr{Cvoid}, Csize_t, Ptr{Csize_t}),
               _live(m), length(o) - 1, o)
    _check(rc, "revl_model_set_groups", _lasterr(m))
    return m
end

function _meta(m, meta)
    m.n_meta == 0 && return C_NULL
    length(meta) == m.n_meta || throw(DimensionMismatch("meta has length $(length(meta)), expected $(m.n_meta)"))
    return Vector{Float64}(meta)
end

function _vec(x, n, what)
    length(x) == n || throw(DimensionMismatch("$what has length $(length(x)), expected $n"))
    return Vector{Float64}(x)
end

"""(loss, gradient) of the model at step `step`."""
function grad(m::Model, step::Integer, w::AbstractVector, meta=Float64[])
    wv = _vec(w, m.n_params, "w")
    mv = _meta(m, meta)
    g = Vector{Float64}(undef, m.n_params)
    loss = Ref{Cdouble}(NaN)
    rc = ccall((:revl_model_grad, librevl), Cint,
               (Ptr{Cvoid}, Csize_t, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ref{Cdouble}),
               _live(m), step, wv, mv, g, loss)
    _check(rc, "revl_model_grad", _lasterr(m), m.state)
    return loss[], g
end

"""(hv_w, hv_meta) of the model at step `step` along v."""
function hvp(m::Model, step::Integer, w::AbstractVector, meta, v::AbstractVector)
    wv = _vec(w, m.n_params, "w")
    vv = _vec(v, m.n_params, "v")
    mv = _meta(m, meta)
    hv = Vector{Float64}(undef, m.n_params)
    hm = Vector{Float64}(undef, m.n_meta)
    rc = ccall((:revl_model_hvp, librevl), Cint,
               (Ptr{Cvoid}, Csize_t, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(m), step, wv, mv, vv, hv, m.n_meta == 0 ? C_NULL : hm)
    _check(rc, "revl_model_hvp", _lasterr(m), m.state)
    return hv, hm
end

"""w0 = exp(log_scales[g]) * standard normal noise from `seed`, per parameter group."""
function init_weights(m::Model, log_scales::AbstractVector; seed::Integer=0)
    ls = _vec(log_scales, n_groups(m), "log_scales")
    w0 = Vector{Float64}(undef, m.n_params)
    rc = ccall((:revl_model_init_weights, librevl), Cint,
               (Ptr{Cvoid}, Ptr{Cdouble}, UInt64, Ptr{Cdouble}), _live(m), ls, seed, w0)
    _check(rc, "revl_model_init_weights", _lasterr(m))
    return w0
end

function init_scales_grad(m::Model, w0::AbstractVector, d_w0::AbstractVector)
    out = Vector{Float64}(undef, n_groups(m))
    rc = ccall((:revl_model_init_scales_grad, librevl), Cint,
               (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(m), _vec(w0, m.n_params, "w0"), _vec(d_w0, m.n_params, "d_w0"), out)
    _check(rc, "revl_model_init_scales_grad", _lasterr(m))
    return out
end

# ------------------------------------------------------------------ schedule
mutable struct Schedule
    ptr::Ptr{Cvoid}
    n_steps::Int
    n_groups::Int
    optimizer::Symbol
    kinds::Vector{Symbol}      # in the library's order (momentum: alpha, gamma; ...)
end

function _free!(s::Schedule)
    s.ptr == C_NULL || ccall((:revl_schedule_free, librevl), Cvoid, (Ptr{Cvoid},), s.ptr)
    s.ptr = C_NULL
    return nothing
end
Base.close(s::Schedule) = _free!(s)
_lasterr(s::Schedule) = () -> unsafe_string(ccall((:revl_schedule_last_error, librevl), Cstring,
                                                 (Ptr{Cvoid},), s.ptr))

"""Schedule(n_steps, offsets; optimizer=:momentum): the optimiser's hyperparameters per
(step, group), starting at its defaults (`Revl.defaults(optimizer)`; `Revl.optimizers()` lists
the optimisers of the loaded library)."""
function Schedule(n_steps::Integer, offs::AbstractVector{<:Integer}; optimizer::Symbol=:momentum)
    o = Csize_t.(offs)
    opt = _code(OPTIMIZERS, optimizer, "optimizer")
    out = Ref{Ptr{Cvoid}}(C_NULL)
    if optimizer === :momentum          # the original call, which makes momentum schedules
        rc = ccall((:revl_schedule_create, librevl), Cint,
                   (Ref{Ptr{Cvoid}}, Csize_t, Csize_t, Ptr{Csize_t}), out, n_steps, length(o) - 1, o)
        _check(rc, "revl_schedule_create", _nomsg)
    else
        rc = ccall((:revl_schedule_create_for, librevl), Cint,
                   (Ref{Ptr{Cvoid}}, Cint, Csize_t, Csize_t, Ptr{Csize_t}, Ptr{Cvoid}),
                   out, opt, n_steps, length(o) - 1, o, C_NULL)
        _check(rc, "revl_schedule_create_for", _nomsg)
    end
    n = Int(ccall((:revl_schedule_kinds, librevl), Csize_t, (Ptr{Cvoid}, Ptr{Cint}), out[], C_NULL))
    codes = Vector{Cint}(undef, n)
    ccall((:revl_schedule_kinds, librevl), Csize_t, (Ptr{Cvoid}, Ptr{Cint}), out[], codes)
    optc = ccall((:revl_schedule_optimizer, librevl), Cint, (Ptr{Cvoid},), out[])
    s = Schedule(out[], n_steps, length(o) - 1, optimizer_name(optc), [hyper_name(c) for c in codes])
    finalizer(_free!, s)
    return s
end
optimizer(s::Schedule) = s.optimizer
kinds(s::Schedule) = copy(s.kinds)

# C arrays are step-major ([step * G + g]); Julia matrices here are (n_steps, n_groups).
_to_c(s::Schedule, x::Real) = fill(Float64(x), s.n_steps * s.n_groups)
function _to_c(s::Schedule, x::AbstractMatrix)
    size(x) == (s.n_steps, s.n_groups) || throw(DimensionMismatch("expected a $(s.n_steps)x$(s.n_groups) matrix, got $(size(x))"))
    return vec(permutedims(Matrix{Float64}(x)))
end
_from_c(s::Schedule, v::Vector{Float64}) = permutedims(reshape(v, s.n_groups, s.n_steps))

function _set!(s::Schedule, a, g)
    rc = ccall((:revl_schedule_set_all, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(s), a === nothing ? C_NULL : _to_c(s, a), g === nothing ? C_NULL : _to_c(s, g))
    _check(rc, "revl_schedule_set_all", _lasterr(s))
    return s
end
setalpha!(s::Schedule, a) = :gamma in s.kinds ? _set!(s, a, nothing) : setkind!(s, :alpha, a)
setgamma!(s::Schedule, g) = _set!(s, nothing, g)

function _get(s::Schedule)
    a = Vector{Float64}(undef, s.n_steps * s.n_groups)
    g = similar(a)
    rc = ccall((:revl_schedule_get_all, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(s), a, g)
    _check(rc, "revl_schedule_get_all", _lasterr(s))
    return _from_c(s, a), _from_c(s, g)
end
# alpha and gamma of a schedule that has both in one call (momentum, RMSprop), else per kind
alpha(s::Schedule) = :gamma in s.kinds ? _get(s)[1] : getkind(s, :alpha)
gamma(s::Schedule) = :gamma in s.kinds ? _get(s)[2] : getkind(s, :gamma)

function _need_kind(kinds::Vector{Symbol}, what::String, kind::Symbol, func::String)
    code = _code(KINDS, kind, "kind")
    kind in kinds || throw(RevlError(ERR_INVALID, "this $what has no $kind (its kinds: $(join(kinds, ", ")))", func))
    return code
end

"""One kind's values as an (n_steps, n_groups) matrix (a copy)."""
function getkind(s::Schedule, kind::Symbol)
    code = _need_kind(s.kinds, "$(s.optimizer) schedule", kind, "revl_schedule_get_kind")
    v = Vector{Float64}(undef, s.n_steps * s.n_groups)
    rc = ccall((:revl_schedule_get_kind, librevl), Cint, (Ptr{Cvoid}, Cint, Ptr{Cdouble}),
               _live(s), code, v)
    _check(rc, "revl_schedule_get_kind", _lasterr(s))
    return _from_c(s, v)
end

"""Set one kind to a scalar or an (n_steps, n_groups) matrix; on error nothing changes."""
function setkind!(s::Schedule, kind::Symbol, x)
    rc = ccall((:revl_schedule_set_kind, librevl), Cint, (Ptr{Cvoid}, Cint, Ptr{Cdouble}),
               _live(s), _code(KINDS, kind, "kind"), _to_c(s, x))
    _check(rc, "revl_schedule_set_kind", _lasterr(s))
    return s
end

function fillkind!(s::Schedule, kind::Symbol, x::Real)
    rc = ccall((:revl_schedule_fill_kind, librevl), Cint, (Ptr{Cvoid}, Cint, Cdouble),
               _live(s), _code(KINDS, kind, "kind"), x)
    _check(rc, "revl_schedule_fill_kind", _lasterr(s))
    return s
end

"""Set alpha and gamma of one (step, group); step and group are 0-based as in C."""
function setstep!(s::Schedule, step::Integer, group::Integer, a::Real, g::Real)
    rc = ccall((:revl_schedule_set, librevl), Cint, (Ptr{Cvoid}, Csize_t, Csize_t, Cdouble, Cdouble),
               _live(s), step, group, a, g)
    _check(rc, "revl_schedule_set", _lasterr(s))
    return s
end

n_steps(s::Schedule) = Int(ccall((:revl_schedule_n_steps, librevl), Csize_t, (Ptr{Cvoid},), _live(s)))
n_groups(s::Schedule) = Int(ccall((:revl_schedule_n_groups, librevl), Csize_t, (Ptr{Cvoid},), _live(s)))

function offsets(s::Schedule)
    out = Vector{Csize_t}(undef, s.n_groups + 1)
    rc = ccall((:revl_schedule_offsets, librevl), Cint, (Ptr{Cvoid}, Ptr{Csize_t}), _live(s), out)
    _check(rc, "revl_schedule_offsets", _lasterr(s))
    return Int.(out)
end

function Base.fill!(s::Schedule, a::Real, g::Real)
    rc = ccall((:revl_schedule_fill, librevl), Cint, (Ptr{Cvoid}, Cdouble, Cdouble), _live(s), a, g)
    _check(rc, "revl_schedule_fill", _lasterr(s))
    return s
end

# ------------------------------------------------------------------ trainer
mutable struct Trainer
    ptr::Ptr{Cvoid}
    model::Model          # kept alive: the C trainer points at it
    schedule::Schedule
    progress::Union{CallbackState,Nothing} # set_progress!'s, kept alive likewise
end

function _free!(t::Trainer)
    t.ptr == C_NULL || ccall((:revl_trainer_free, librevl), Cvoid, (Ptr{Cvoid},), t.ptr)
    t.ptr = C_NULL
    return nothing
end
Base.close(t::Trainer) = _free!(t)
_lasterr(t::Trainer) = () -> unsafe_string(ccall((:revl_trainer_last_error, librevl), Cstring,
                                                (Ptr{Cvoid},), t.ptr))

# comm: shard the trainer's state over its ranks (revl_trainer_create_sharded, docs/mpi.md).
function Trainer(m::Model, s::Schedule; frac_bits::Integer=52, truncate::Integer=0,
                 threads::Integer=0, comm::Union{Nothing,Comm}=nothing)
    o = _init(TrainerOptions)
    o.frac_bits = frac_bits
    o.truncate = truncate
    o.threads = threads
    out = Ref{Ptr{Cvoid}}(C_NULL)
    rc = comm === nothing ?
         ccall((:revl_trainer_create, librevl), Cint,
               (Ref{Ptr{Cvoid}}, Ptr{Cvoid}, Ptr{Cvoid}, Ref{TrainerOptions}),
               out, _live(m), _live(s), o) :
         ccall((:revl_trainer_create_sharded, librevl), Cint,
               (Ref{Ptr{Cvoid}}, Ptr{Cvoid}, Ptr{Cvoid}, Ref{TrainerOptions}, Ref{Comm}),
               out, _live(m), _live(s), o, comm)
    _check(rc, "revl_trainer_create", _nomsg)
    t = Trainer(out[], m, s, nothing)
    finalizer(_free!, t)
    return t
end

# forward_only: the same steps and w_T bits, keeping nothing to reverse
# (revl_trainer_train_forward; hypergrad and save_checkpoint then refuse).
function train!(t::Trainer, w0::AbstractVector, meta=Float64[]; forward_only::Bool=false)
    m = t.model
    w, me = _vec(w0, m.n_params, "w0"), _meta(m, meta)
    rc = forward_only ?
         ccall((:revl_trainer_train_forward, librevl), Cint,
               (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}), _live(t), w, me) :
         ccall((:revl_trainer_train, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(t), w, me)
    _check(rc, forward_only ? "revl_trainer_train_forward" : "revl_trainer_train", _lasterr(t),
           m.state, t.progress)
    return t
end

"""fn(step, phase, seconds, loss) (phase :forward or :reverse) every `every` steps of train!,
train_resume! and hypergrad, and after the last; returning true stops the call (RevlError,
REVL_ERR_CALLBACK), and the trainer must be trained again. fn nothing: no more calls."""
function set_progress!(t::Trainer, fn, every::Integer=1)
    st = fn === nothing ? nothing : CallbackState(0, 0)
    st === nothing || (st.progress = fn)
    rc = ccall((:revl_trainer_set_progress, librevl), Cint,
               (Ptr{Cvoid}, Ptr{Cvoid}, Csize_t, Ptr{Cvoid}),
               _live(t), st === nothing ? C_NULL : PROGRESS_FN[], st === nothing ? 0 : every,
               st === nothing ? C_NULL : pointer_from_objref(st))
    _check(rc, "revl_trainer_set_progress", _lasterr(t))
    t.progress = st
    return t
end

function weights(t::Trainer)
    w = Vector{Float64}(undef, t.model.n_params)
    rc = ccall((:revl_trainer_weights, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}), _live(t), w)
    _check(rc, "revl_trainer_weights", _lasterr(t))
    return w
end

"""Checkpoints of the trajectory so far (docs/file-formats.md)."""
function save_checkpoint(t::Trainer, path::AbstractString)
    rc = ccall((:revl_trainer_save, librevl), Cint, (Ptr{Cvoid}, Cstring), _live(t), path)
    _check(rc, "revl_trainer_save", _lasterr(t))
    return path
end

function load_checkpoint!(t::Trainer, path::AbstractString)
    rc = ccall((:revl_trainer_load, librevl), Cint, (Ptr{Cvoid}, Cstring), _live(t), path)
    _check(rc, "revl_trainer_load", _lasterr(t))
    return t
end

function train_resume!(t::Trainer)
    rc = ccall((:revl_trainer_train_resume, librevl), Cint, (Ptr{Cvoid},), _live(t))
    _check(rc, "revl_trainer_train_resume", _lasterr(t), t.model.state, t.progress)
    return t
end

"""The array of hypergradient pointers the library reads, indexed by revl_hyper code (NULL for
a kind not wanted), as long as the library's kind count."""
function _kind_table(out::Dict{Symbol,Vector{Float64}}, ks)
    table = fill(Ptr{Cdouble}(C_NULL), length(KINDS))
    for k in ks
        table[KINDS[k] + 1] = pointer(out[k])
    end
    return table
end

"""Finish the reverse pass of a checkpoint written during hypergrad (load_checkpoint! it
first): the NamedTuple hypergrad returns, bit for bit. kinds: the ones wanted (default every kind
of the schedule); the interrupted pass must have computed them."""
function hypergrad_resume(t::Trainer, kinds=nothing)
    m, s = t.model, t.schedule
    ks = kinds === nothing ? s.kinds : collect(kinds)
    dw0 = Vector{Float64}(undef, m.n_params)
    dm = zeros(m.n_meta)
    out = Dict(k => Vector{Float64}(undef, s.n_steps * s.n_groups) for k in ks)
    table = _kind_table(out, ks)
    rc = GC.@preserve out ccall((:revl_trainer_hypergrad_resume, librevl), Cint,
               (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Ptr{Cdouble}}, Ptr{Cdouble}),
               _live(t), dw0, length(table), table, m.n_meta == 0 ? C_NULL : dm)
    _check(rc, "revl_trainer_hypergrad_resume", _lasterr(t), m.state, t.progress)
    names = (:w0, ks..., :meta)
    return NamedTuple{names}((dw0, (_from_c(s, out[k]) for k in ks)..., dm))
end

function set_checkpoint!(t::Trainer, path::AbstractString, every::Integer=1)
    rc = ccall((:revl_trainer_set_checkpoint, librevl), Cint, (Ptr{Cvoid}, Cstring, Csize_t),
               _live(t), path, every)
    _check(rc, "revl_trainer_set_checkpoint", _lasterr(t))
    return t
end

"""Hypergradient: a NamedTuple (w0, one (n_steps, n_groups) matrix per kind of the schedule,
meta): momentum (w0, alpha, gamma, meta); Adam (w0, alpha, beta1, beta2, eps, meta)."""
function hypergrad(t::Trainer, dfdw::AbstractVector, dfdmeta=nothing)
    m, s = t.model, t.schedule
    s.kinds == [:alpha, :gamma] || return _hypergrad_kinds(t, dfdw, dfdmeta)
    dw0 = Vector{Float64}(undef, m.n_params)
    da = Vector{Float64}(undef, s.n_steps * s.n_groups)
    dg = similar(da)
    dm = zeros(m.n_meta)
    dfm = dfdmeta === nothing || m.n_meta == 0 ? C_NULL : _vec(dfdmeta, m.n_meta, "dfdmeta")
    rc = ccall((:revl_trainer_hypergrad, librevl), Cint,
               (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(t), _vec(dfdw, m.n_params, "dfdw"), dfm, dw0, da, dg,
               m.n_meta == 0 ? C_NULL : dm)
    _check(rc, "revl_trainer_hypergrad", _lasterr(t), m.state, t.progress)
    return (w0=dw0, alpha=_from_c(s, da), gamma=_from_c(s, dg), meta=dm)
end

function _hypergrad_kinds(t::Trainer, dfdw::AbstractVector, dfdmeta)
    m, s = t.model, t.schedule
    dw0 = Vector{Float64}(undef, m.n_params)
    dm = zeros(m.n_meta)
    dfm = dfdmeta === nothing || m.n_meta == 0 ? C_NULL : _vec(dfdmeta, m.n_meta, "dfdmeta")
    out = Dict(k => Vector{Float64}(undef, s.n_steps * s.n_groups) for k in s.kinds)
    table = _kind_table(out, s.kinds)
    # the kinds revl 0.1 shipped with go through the original call (it reads exactly
    # SHIPPED_KINDS entries); later kinds need the counted one
    func = "revl_trainer_hypergrad_kinds"
    if all(KINDS[k] < SHIPPED_KINDS for k in s.kinds)
        rc = GC.@preserve out ccall((:revl_trainer_hypergrad_kinds, librevl), Cint,
                   (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Ptr{Cdouble}},
                    Ptr{Cdouble}),
                   _live(t), _vec(dfdw, m.n_params, "dfdw"), dfm, dw0, table[1:SHIPPED_KINDS],
                   m.n_meta == 0 ? C_NULL : dm)
    else
        func = "revl_trainer_hypergrad_kinds_n"
        rc = GC.@preserve out ccall((:revl_trainer_hypergrad_kinds_n, librevl), Cint,
                   (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t,
                    Ptr{Ptr{Cdouble}}, Ptr{Cdouble}),
                   _live(t), _vec(dfdw, m.n_params, "dfdw"), dfm, dw0, length(table), table,
                   m.n_meta == 0 ? C_NULL : dm)
    end
    _check(rc, func, _lasterr(t), m.state, t.progress)
    names = (:w0, s.kinds..., :meta)
    return NamedTuple{names}((dw0, (_from_c(s, out[k]) for k in s.kinds)..., dm))
end

function stats(t::Trainer)
    ref = Ref(TrainerStats())
    ccall((:revl_trainer_stats_init, librevl), Cvoid, (Ref{TrainerStats},), ref)
    rc = ccall((:revl_trainer_get_stats, librevl), Cint, (Ptr{Cvoid}, Ref{TrainerStats}), _live(t), ref)
    _check(rc, "revl_trainer_get_stats", _lasterr(t))
    st = ref[]
    return (steps_done=Int(st.steps_done), buffer_bits=st.buffer_bits,
            buffer_bytes=Int(st.buffer_bytes), peak_bytes=Int(st.peak_bytes),
            last_loss=st.last_loss)
end

# ------------------------------------------------------------------ data
mutable struct Dataset
    ptr::Ptr{Cvoid}
end

function _free!(d::Dataset)
    d.ptr == C_NULL || ccall((:revl_dataset_free, librevl), Cvoid, (Ptr{Cvoid},), d.ptr)
    d.ptr = C_NULL
    return nothing
end
Base.close(d::Dataset) = _free!(d)
_lasterr(d::Dataset) = () -> unsafe_string(ccall((:revl_dataset_last_error, librevl), Cstring,
                                                (Ptr{Cvoid},), d.ptr))

function Dataset()
    out = Ref{Ptr{Cvoid}}(C_NULL)
    rc = ccall((:revl_dataset_create, librevl), Cint, (Ref{Ptr{Cvoid}}, Ptr{Cvoid}), out, C_NULL)
    _check(rc, "revl_dataset_create", _nomsg)
    d = Dataset(out[])
    finalizer(_free!, d)
    return d
end

"""Dataset(x, labels; n_classes): x is (n, dim) with one example per row."""
function Dataset(x::AbstractMatrix, labels::AbstractVector{<:Integer}; n_classes=maximum(labels) + 1)
    d = Dataset()
    n, dim = size(x)
    xr = vec(permutedims(Matrix{Float64}(x)))        # row-major for C
    rc = ccall((:revl_dataset_set, librevl), Cint,
               (Ptr{Cvoid}, Csize_t, Csize_t, Csize_t, Ptr{Cdouble}, Ptr{Int32}),
               d.ptr, n, dim, n_classes, xr, Int32.(labels))
    _check(rc, "revl_dataset_set", _lasterr(d))
    return d
end

function load_idx(images::AbstractString, labels::AbstractString; max_n::Integer=0)
    d = Dataset()
    rc = ccall((:revl_dataset_load_idx, librevl), Cint, (Ptr{Cvoid}, Cstring, Cstring, Csize_t),
               d.ptr, images, labels, max_n)
    _check(rc, "revl_dataset_load_idx", _lasterr(d))
    return d
end

function subset(src::Dataset, first::Integer, count::Integer)
    d = Dataset()
    rc = ccall((:revl_dataset_subset, librevl), Cint, (Ptr{Cvoid}, Ptr{Cvoid}, Csize_t, Csize_t),
               d.ptr, _live(src), first, count)
    _check(rc, "revl_dataset_subset", _lasterr(d))
    return d
end

function standardize!(d::Dataset, reference::Union{Dataset,Nothing}=nothing)
    rc = ccall((:revl_dataset_standardize, librevl), Cint, (Ptr{Cvoid}, Ptr{Cvoid}),
               _live(d), reference === nothing ? C_NULL : _live(reference))
    _check(rc, "revl_dataset_standardize", _lasterr(d))
    return d
end

Base.length(d::Dataset) = Int(ccall((:revl_dataset_n, librevl), Csize_t, (Ptr{Cvoid},), _live(d)))
dim(d::Dataset) = Int(ccall((:revl_dataset_dim, librevl), Csize_t, (Ptr{Cvoid},), _live(d)))
n_classes(d::Dataset) = Int(ccall((:revl_dataset_n_classes, librevl), Csize_t, (Ptr{Cvoid},), _live(d)))

"""The features as an (n, dim) matrix (a copy)."""
function features(d::Dataset)
    n, k = length(d), dim(d)
    p = ccall((:revl_dataset_x, librevl), Ptr{Cdouble}, (Ptr{Cvoid},), _live(d))
    return permutedims(copy(unsafe_wrap(Array, p, (k, n))))
end

function labels(d::Dataset)
    p = ccall((:revl_dataset_labels, librevl), Ptr{Int32}, (Ptr{Cvoid},), _live(d))
    return copy(unsafe_wrap(Array, p, length(d)))
end

# ------------------------------------------------------------------ built-in MLP
const ACTIVATIONS = Dict(:tanh => 0, :relu => 1, :logistic => 2)
const PENALTIES = Dict(:none => 0, :per_layer => 1, :per_weight => 2)

"""MLP(widths, train; activation=:tanh, penalty=:none, batch_size=200, seed=0, threads=0):
a Model computed in C; `train` is kept alive by the model."""
function MLP(widths::AbstractVector{<:Integer}, train::Dataset; activation::Symbol=:tanh,
             penalty::Symbol=:none, batch_size=nothing, seed=nothing, threads=nothing)
    o = _init(MlpOptions)
    o.activation = ACTIVATIONS[activation]
    o.penalty = PENALTIES[penalty]
    batch_size === nothing || (o.batch_size = batch_size)
    seed === nothing || (o.seed = seed)
    threads === nothing || (o.threads = threads)
    w = Csize_t.(widths)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    rc = ccall((:revl_mlp_create, librevl), Cint,
               (Ref{Ptr{Cvoid}}, Csize_t, Ptr{Csize_t}, Ptr{Cvoid}, Ref{MlpOptions}),
               out, length(w), w, _live(train), o)
    _check(rc, "revl_mlp_create", _nomsg)
    np = Int(ccall((:revl_model_n_params, librevl), Csize_t, (Ptr{Cvoid},), out[]))
    nm = Int(ccall((:revl_model_n_meta, librevl), Csize_t, (Ptr{Cvoid},), out[]))
    m = Model(out[], np, nm, nothing, Any[train])
    finalizer(_free!, m)
    return m
end

"""MLP_dp(widths, train, comm; n_micro=1, grad_frac_bits=0, options as MLP): the built-in MLP
as an exact data-parallel model over `comm` (a Comm; every rank makes the same calls)."""
function MLP_dp(widths::AbstractVector{<:Integer}, train::Dataset, comm::Comm; n_micro::Integer=1,
                grad_frac_bits::Integer=0, activation::Symbol=:tanh, penalty::Symbol=:none)
    o = _init(MlpOptions)
    o.activation = ACTIVATIONS[activation]
    o.penalty = PENALTIES[penalty]
    w = Csize_t.(widths)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    rc = ccall((:revl_mlp_dp_create, librevl), Cint,
               (Ref{Ptr{Cvoid}}, Csize_t, Ptr{Csize_t}, Ptr{Cvoid}, Ref{MlpOptions}, Csize_t, Cuint,
                Ref{Comm}),
               out, length(w), w, _live(train), o, n_micro, grad_frac_bits, comm)
    _check(rc, "revl_mlp_dp_create", _nomsg)
    np = Int(ccall((:revl_model_n_params, librevl), Csize_t, (Ptr{Cvoid},), out[]))
    nm = Int(ccall((:revl_model_n_meta, librevl), Csize_t, (Ptr{Cvoid},), out[]))
    m = Model(out[], np, nm, nothing, Any[train, comm])
    finalizer(_free!, m)
    return m
end

"""(loss, accuracy, grad or nothing) of a built-in model on `data` at w."""
function evaluate(m::Model, data::Dataset, w::AbstractVector; withgrad::Bool=false)
    loss, acc = Ref{Cdouble}(NaN), Ref{Cdouble}(NaN)
    g = withgrad ? Vector{Float64}(undef, m.n_params) : nothing
    rc = ccall((:revl_model_evaluate, librevl), Cint,
               (Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cdouble}, Ref{Cdouble}, Ptr{Cdouble}, Ref{Cdouble}),
               _live(m), _live(data), _vec(w, m.n_params, "w"), loss,
               g === nothing ? C_NULL : g, acc)
    _check(rc, "revl_model_evaluate", _lasterr(m))
    return (loss=loss[], accuracy=acc[], grad=g)
end

# ------------------------------------------------------------------ hyper-optimiser
mutable struct HyperOpt
    ptr::Ptr{Cvoid}
    model::Model
    valid::Union{Dataset,Nothing}
    state::CallbackState
    n_steps::Int
    n_groups::Int
    optimizer::Symbol
    kinds::Vector{Symbol}
end
optimizer(h::HyperOpt) = h.optimizer
kinds(h::HyperOpt) = copy(h.kinds)

function _free!(h::HyperOpt)
    h.ptr == C_NULL || ccall((:revl_hyperopt_free, librevl), Cvoid, (Ptr{Cvoid},), h.ptr)
    h.ptr = C_NULL
    return nothing
end
Base.close(h::HyperOpt) = _free!(h)
_lasterr(h::HyperOpt) = () -> unsafe_string(ccall((:revl_hyperopt_last_error, librevl), Cstring,
                                                 (Ptr{Cvoid},), h.ptr))

"""HyperOpt(model, valid, n_steps; optimizer=:momentum (any of `Revl.optimizers()`: the inner
optimiser, starting at its schedule defaults), learn=[:alpha, :gamma, :init_scale] (any of
LEARN's keys: the library's kinds, :init_scale, :meta), method=:adam,
step_size, iterations, seed, report=(r -> stop::Bool), objective=((w, meta) -> (f, dfdw,
dfdmeta or nothing)), ...): options left out keep the library's defaults."""
function HyperOpt(m::Model, valid::Union{Dataset,Nothing}, n_steps::Integer;
                  optimizer::Symbol=:momentum, learn=nothing, method=nothing, step_size=nothing, momentum=nothing,
                  iterations=nothing, fresh_seed=nothing, seed=nothing, chaos_factor=nothing,
                  chaos_action=nothing, report=nothing, objective=nothing, frac_bits=nothing,
                  threads=nothing)
    o = _init(HyperoptOptions)
    opt = _code(OPTIMIZERS, optimizer, "optimizer")
    learn === nothing || (o.learn = reduce(|, (_code(LEARN, k, "learn") for k in learn); init=0))
    method === nothing || (o.method = method === :sgd ? 1 : 0)
    step_size === nothing || (o.step_size = step_size)
    momentum === nothing || (o.momentum = momentum)
    iterations === nothing || (o.iterations = iterations)
    fresh_seed === nothing || (o.fresh_seed = fresh_seed ? 1 : 0)
    seed === nothing || (o.seed = seed)
    chaos_factor === nothing || (o.chaos_factor = chaos_factor)
    chaos_action === nothing || (o.chaos_action = chaos_action === :stop ? 1 : 0)
    frac_bits === nothing || (o.frac_bits = frac_bits)
    threads === nothing || (o.threads = threads)
    st = CallbackState(m.n_params, m.n_meta)
    st.report = report
    st.objective = objective
    if report !== nothing
        o.report = REPORT_FN[]
        o.report_user = pointer_from_objref(st)
    end
    if objective !== nothing
        o.objective = OBJECTIVE_FN[]
        o.objective_user = pointer_from_objref(st)
    end
    out = Ref{Ptr{Cvoid}}(C_NULL)
    if optimizer === :momentum          # the original call, for momentum SGD
        rc = ccall((:revl_hyperopt_create, librevl), Cint,
                   (Ref{Ptr{Cvoid}}, Ptr{Cvoid}, Ptr{Cvoid}, Csize_t, Ref{HyperoptOptions}),
                   out, _live(m), valid === nothing ? C_NULL : _live(valid), n_steps, o)
        _check(rc, "revl_hyperopt_create", _nomsg, st, m.state)
    else
        rc = ccall((:revl_hyperopt_create_for, librevl), Cint,
                   (Ref{Ptr{Cvoid}}, Ptr{Cvoid}, Ptr{Cvoid}, Csize_t, Cint, Ref{HyperoptOptions}),
                   out, _live(m), valid === nothing ? C_NULL : _live(valid), n_steps, opt, o)
        _check(rc, "revl_hyperopt_create_for", _nomsg, st, m.state)
    end
    ns = Int(ccall((:revl_hyperopt_n_steps, librevl), Csize_t, (Ptr{Cvoid},), out[]))
    ng = Int(ccall((:revl_hyperopt_n_groups, librevl), Csize_t, (Ptr{Cvoid},), out[]))
    optn = optimizer_name(ccall((:revl_hyperopt_optimizer, librevl), Cint, (Ptr{Cvoid},), out[]))
    h = HyperOpt(out[], m, valid, st, ns, ng, optn, OPT_KINDS[optn])
    finalizer(_free!, h)
    return h
end

function step!(h::HyperOpt)
    r = Ref(HyperoptReport())
    ccall((:revl_hyperopt_report_init, librevl), Cvoid, (Ref{HyperoptReport},), r)
    rc = ccall((:revl_hyperopt_step, librevl), Cint, (Ptr{Cvoid}, Ref{HyperoptReport}), _live(h), r)
    _check(rc, "revl_hyperopt_step", _lasterr(h), h.state, h.model.state)
    return r[]
end

function run!(h::HyperOpt)
    rc = ccall((:revl_hyperopt_run, librevl), Cint, (Ptr{Cvoid},), _live(h))
    _check(rc, "revl_hyperopt_run", _lasterr(h), h.state, h.model.state)
    return h
end

_hshape(h::HyperOpt, v::Vector{Float64}) = permutedims(reshape(v, h.n_groups, h.n_steps))

"""Current (best=false) or best-so-far hyperparameters: a NamedTuple of the optimiser's kinds
((n_steps, n_groups) each), log_init_scales and meta."""
function hyperparams(h::HyperOpt; best::Bool=false)
    ls = Vector{Float64}(undef, h.n_groups)
    nm = h.model.n_meta
    mt = Vector{Float64}(undef, nm)
    rc = ccall((:revl_hyperopt_get, librevl), Cint,
               (Ptr{Cvoid}, Cint, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(h), best ? 1 : 0, C_NULL, C_NULL, ls, nm == 0 ? C_NULL : mt)
    _check(rc, "revl_hyperopt_get", _lasterr(h))
    names = (h.kinds..., :log_init_scales, :meta)
    return NamedTuple{names}(((getkind(h, k; best=best) for k in h.kinds)..., ls, mt))
end

function getkind(h::HyperOpt, kind::Symbol; best::Bool=false)
    # the optimiser's kinds and the driver's (:clip), which the library reads for every one
    code = _code(KINDS, kind, "kind")
    v = Vector{Float64}(undef, h.n_steps * h.n_groups)
    rc = ccall((:revl_hyperopt_get_kind, librevl), Cint, (Ptr{Cvoid}, Cint, Cint, Ptr{Cdouble}),
               _live(h), best ? 1 : 0, code, v)
    rc == 0 || _need_kind(h.kinds, "$(h.optimizer) hyper-optimiser", kind, "revl_hyperopt_get_kind")
    _check(rc, "revl_hyperopt_get_kind", _lasterr(h))
    return _hshape(h, v)
end

function setkind!(h::HyperOpt, kind::Symbol, x)
    v = x isa Real ? fill(Float64(x), h.n_steps * h.n_groups) : vec(permutedims(Matrix{Float64}(x)))
    rc = ccall((:revl_hyperopt_set_kind, librevl), Cint, (Ptr{Cvoid}, Cint, Ptr{Cdouble}),
               _live(h), _code(KINDS, kind, "kind"), v)
    _check(rc, "revl_hyperopt_set_kind", _lasterr(h))
    return h
end

"""Set any of the kinds (keywords named as the kinds: scalars or (n_steps, n_groups)
matrices), log_init_scales, meta; nothing = unchanged. Each kind is checked and set on its
own."""
function sethyperparams!(h::HyperOpt; log_init_scales=nothing, meta=nothing, values...)
    for (k, x) in values
        x === nothing || setkind!(h, k, x)
    end
    rc = ccall((:revl_hyperopt_set, librevl), Cint,
               (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(h), C_NULL, C_NULL,
               log_init_scales === nothing ? C_NULL : Vector{Float64}(log_init_scales),
               meta === nothing ? C_NULL : Vector{Float64}(meta))
    _check(rc, "revl_hyperopt_set", _lasterr(h))
    return h
end

function save(h::HyperOpt, path::AbstractString; best::Bool=true)
    rc = ccall((:revl_hyperopt_save, librevl), Cint, (Ptr{Cvoid}, Cint, Cstring), _live(h),
               best ? 1 : 0, path)
    _check(rc, "revl_hyperopt_save", _lasterr(h))
    return path
end

function load!(h::HyperOpt, path::AbstractString)
    rc = ccall((:revl_hyperopt_load, librevl), Cint, (Ptr{Cvoid}, Cstring), _live(h), path)
    _check(rc, "revl_hyperopt_load", _lasterr(h))
    return h
end

function save_checkpoint(h::HyperOpt, path::AbstractString)
    rc = ccall((:revl_hyperopt_checkpoint_save, librevl), Cint, (Ptr{Cvoid}, Cstring), _live(h),
               path)
    _check(rc, "revl_hyperopt_checkpoint_save", _lasterr(h))
    return path
end

function load_checkpoint!(h::HyperOpt, path::AbstractString)
    rc = ccall((:revl_hyperopt_checkpoint_load, librevl), Cint, (Ptr{Cvoid}, Cstring), _live(h),
               path)
    _check(rc, "revl_hyperopt_checkpoint_load", _lasterr(h))
    return h
end

iterations_done(h::HyperOpt) =
    Int(ccall((:revl_hyperopt_iterations_done, librevl), Csize_t, (Ptr{Cvoid},), _live(h)))

# ------------------------------------------------------------------ schedule families and the tuner
# (docs/hyperopt.md) A Family maps theta to z (every hyperparameter in unconstrained
# coordinates) with its transpose; a Tuner searches a compact family's box, then refines the
# best point with exact hypergradients.
mutable struct FamilyOptions
    struct_size::Csize_t
    type::Cint
    learn::Cuint
    window::Csize_t
    shape::Cint
    warmup::Csize_t
    n_layers::Csize_t
    group_layer::Ptr{Cvoid}
    n_theta::Csize_t
    map::Ptr{Cvoid}
    vjp::Ptr{Cvoid}
    user::Ptr{Cvoid}
end
FamilyOptions() = FamilyOptions(sizeof(FamilyOptions), 0, 7, 10, 1, 0, 0, C_NULL, 0, C_NULL,
                                C_NULL, C_NULL)

struct TunerReport
    struct_size::Csize_t
    phase::Cint
    index::Csize_t
    loss::Cdouble
    best_loss::Cdouble
    step_size::Cdouble
    accepted::Cint
    start::Csize_t
    seconds::Cdouble
    eta_seconds::Cdouble
    runs::Csize_t
end
TunerReport() = TunerReport(sizeof(TunerReport), 0, 0, NaN, NaN, NaN, 0, 0, 0.0, NaN, 0)

mutable struct TunerOptions
    struct_size::Csize_t
    strategy::Cint
    budget_seconds::Cdouble
    budget_runs::Csize_t
    cpu_time::Cint
    search_fraction::Cdouble
    n_initial::Csize_t
    n_candidates::Csize_t
    good_fraction::Cdouble
    refine_starts::Csize_t
    refine_method::Cint
    refine_step::Cdouble
    step_grow::Cdouble
    step_shrink::Cdouble
    min_step::Cdouble
    n_orders::Csize_t
    seed::UInt64
    test::Ptr{Cvoid}
    report::Ptr{Cvoid}
    report_user::Ptr{Cvoid}
    objective::Ptr{Cvoid}
    objective_user::Ptr{Cvoid}
    frac_bits::Cuint
    threads::Cint
    allocator::Ptr{Cvoid}
end
TunerOptions() = TunerOptions(sizeof(TunerOptions), 0, 0.0, 0, 0, 0.5, 0, 24, 0.25, 3, 0, 0.05,
                              1.5, 0.5, 0.003, 1, 0, C_NULL, C_NULL, C_NULL, C_NULL, C_NULL, 52,
                              0, C_NULL)

struct TunerResult
    struct_size::Csize_t
    valid_loss::Cdouble
    valid_accuracy::Cdouble
    test_loss::Cdouble
    test_accuracy::Cdouble
    search_evaluations::Csize_t
    refine_iterations::Csize_t
    runs::Csize_t
    seconds::Cdouble
    best_phase::Cint
end
TunerResult() = TunerResult(sizeof(TunerResult), NaN, NaN, NaN, NaN, 0, 0, 0, 0.0, 0)

function _init(::Type{FamilyOptions})
    o = FamilyOptions()
    ccall((:revl_family_options_init, librevl), Cvoid, (Ref{FamilyOptions},), o)
    o.struct_size = sizeof(FamilyOptions)
    return o
end
function _init(::Type{TunerOptions})
    o = TunerOptions()
    ccall((:revl_tuner_options_init, librevl), Cvoid, (Ref{TunerOptions},), o)
    o.struct_size = sizeof(TunerOptions)
    return o
end

# A user family's callbacks: map(theta) -> z, vjp(theta, dz) -> dtheta.
mutable struct FamilyState
    n_theta::Int
    n_z::Int
    map::Any
    vjp::Any
    err::Any
end

function _family_map_trampoline(theta::Ptr{Cdouble}, z::Ptr{Cdouble}, user::Ptr{Cvoid})::Cint
    st = unsafe_pointer_to_objref(user)::FamilyState
    st.err === nothing || return Cint(1)
    try
        _put!(z, st.n_z, st.map(copy(_view(theta, st.n_theta))), "z")
        return Cint(0)
    catch e
        st.err = CapturedException(e, catch_backtrace())
        return Cint(1)
    end
end

function _family_vjp_trampoline(theta::Ptr{Cdouble}, dz::Ptr{Cdouble}, dtheta::Ptr{Cdouble},
                                user::Ptr{Cvoid})::Cint
    st = unsafe_pointer_to_objref(user)::FamilyState
    st.err === nothing || return Cint(1)
    try
        _put!(dtheta, st.n_theta,
              st.vjp(copy(_view(theta, st.n_theta)), copy(_view(dz, st.n_z))), "dtheta")
        return Cint(0)
    catch e
        st.err = CapturedException(e, catch_backtrace())
        return Cint(1)
    end
end

function _tuner_report_trampoline(r::Ptr{TunerReport}, user::Ptr{Cvoid})::Cint
    return _report_call(r, user)
end

mutable struct Family
    ptr::Ptr{Cvoid}
    state::Union{FamilyState,Nothing}
    optimizer::Symbol
    n_theta::Int
    n_z::Int
end

function _free!(f::Family)
    f.ptr == C_NULL || ccall((:revl_family_free, librevl), Cvoid, (Ptr{Cvoid},), f.ptr)
    f.ptr = C_NULL
    return nothing
end
Base.close(f::Family) = _free!(f)
_lasterr(f::Family) = () -> unsafe_string(ccall((:revl_family_last_error, librevl), Cstring,
                                               (Ptr{Cvoid},), f.ptr))

const FAMILY_TYPES = Dict(:per_step => 0, :windows => 1, :shape => 2, :user => 3)
const SHAPES = Dict(:constant => 0, :linear => 1, :cosine => 2)

"""Family(optimizer, n_steps, n_groups; n_meta=0, type=:per_step (:windows, :shape, :user),
learn=[:alpha, :gamma, :init_scale], window, shape=:linear, warmup, n_layers, group_layer,
map=(theta -> z), vjp=((theta, dz) -> dtheta), n_theta): options left out keep the library's
defaults."""
function Family(optimizer::Symbol, n_steps::Integer, n_groups::Integer; n_meta::Integer=0,
                type::Symbol=:per_step, learn=nothing, window=nothing, shape=nothing,
                warmup=nothing, n_layers=nothing, group_layer=nothing, map=nothing, vjp=nothing,
                n_theta=nothing)
    o = _init(FamilyOptions)
    o.type = _code(FAMILY_TYPES, type, "family type")
    learn === nothing || (o.learn = reduce(|, (_code(LEARN, k, "learn") for k in learn); init=0))
    window === nothing || (o.window = window)
    shape === nothing || (o.shape = _code(SHAPES, shape, "shape"))
    warmup === nothing || (o.warmup = warmup)
    n_layers === nothing || (o.n_layers = n_layers)
    layers = group_layer === nothing ? nothing : Csize_t.(group_layer)
    st = nothing
    if type === :user
        (map === nothing || vjp === nothing || n_theta === nothing) &&
            throw(RevlError(ERR_INVALID, "a :user family needs map, vjp and n_theta", "Family"))
        st = FamilyState(n_theta, 0, map, vjp, nothing)
        o.n_theta = n_theta
        o.map = FAMILY_MAP_FN[]
        o.vjp = FAMILY_VJP_FN[]
        o.user = pointer_from_objref(st)
    end
    out = Ref{Ptr{Cvoid}}(C_NULL)
    GC.@preserve layers begin
        layers === nothing || (o.group_layer = pointer(layers))
        rc = ccall((:revl_family_create, librevl), Cint,
                   (Ref{Ptr{Cvoid}}, Cint, Csize_t, Csize_t, Csize_t, Ref{FamilyOptions}),
                   out, _code(OPTIMIZERS, optimizer, "optimizer"), n_steps, n_groups, n_meta, o)
    end
    _check(rc, "revl_family_create", _nomsg, st)
    nt = Int(ccall((:revl_family_n_theta, librevl), Csize_t, (Ptr{Cvoid},), out[]))
    nz = Int(ccall((:revl_family_n_z, librevl), Csize_t, (Ptr{Cvoid},), out[]))
    st === nothing || (st.n_z = nz)
    f = Family(out[], st, optimizer, nt, nz)
    finalizer(_free!, f)
    return f
end

"""z = map(theta) of the family."""
function familymap(f::Family, theta::AbstractVector)
    z = Vector{Float64}(undef, f.n_z)
    rc = ccall((:revl_family_map, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(f), _vec(theta, f.n_theta, "theta"), z)
    _check(rc, "revl_family_map", _lasterr(f), f.state)
    return z
end

"""J(theta)' dz: a gradient in z made one in theta."""
function familyvjp(f::Family, theta::AbstractVector, dz::AbstractVector)
    out = Vector{Float64}(undef, f.n_theta)
    rc = ccall((:revl_family_vjp, librevl), Cint,
               (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(f), _vec(theta, f.n_theta, "theta"), _vec(dz, f.n_z, "dz"), out)
    _check(rc, "revl_family_vjp", _lasterr(f), f.state)
    return out
end

function project(f::Family, z::AbstractVector)
    out = Vector{Float64}(undef, f.n_theta)
    rc = ccall((:revl_family_project, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(f), _vec(z, f.n_z, "z"), out)
    _check(rc, "revl_family_project", _lasterr(f), f.state)
    return out
end

function base(f::Family)
    z = Vector{Float64}(undef, f.n_z)
    rc = ccall((:revl_family_get_base, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}), _live(f), z)
    _check(rc, "revl_family_get_base", _lasterr(f))
    return z
end

function setbase!(f::Family, z0::AbstractVector)
    rc = ccall((:revl_family_set_base, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}), _live(f),
               _vec(z0, f.n_z, "z0"))
    _check(rc, "revl_family_set_base", _lasterr(f))
    return f
end

"""The search box (lo, hi) of theta."""
function bounds(f::Family)
    lo, hi = Vector{Float64}(undef, f.n_theta), Vector{Float64}(undef, f.n_theta)
    rc = ccall((:revl_family_get_bounds, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(f), lo, hi)
    _check(rc, "revl_family_get_bounds", _lasterr(f))
    return lo, hi
end

function setbounds!(f::Family, lo::AbstractVector, hi::AbstractVector)
    rc = ccall((:revl_family_set_bounds, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(f), _vec(lo, f.n_theta, "lo"), _vec(hi, f.n_theta, "hi"))
    _check(rc, "revl_family_set_bounds", _lasterr(f))
    return f
end

"""What each coordinate of theta is."""
function coordnames(f::Family)
    buf = Vector{UInt8}(undef, 256)
    names = String[]
    for i in 0:f.n_theta - 1
        rc = ccall((:revl_family_coord_name, librevl), Cint, (Ptr{Cvoid}, Csize_t, Ptr{UInt8}, Csize_t),
                   _live(f), i, buf, length(buf))
        _check(rc, "revl_family_coord_name", _lasterr(f))
        push!(names, unsafe_string(pointer(buf)))
    end
    return names
end

mutable struct Tuner
    ptr::Ptr{Cvoid}
    model::Model
    deps::Vector{Any}           # valid, test, families: the C side points into them
    state::CallbackState
    n_steps::Int
    n_groups::Int
    optimizer::Symbol
    kinds::Vector{Symbol}
end

function _free!(t::Tuner)
    t.ptr == C_NULL || ccall((:revl_tuner_free, librevl), Cvoid, (Ptr{Cvoid},), t.ptr)
    t.ptr = C_NULL
    return nothing
end
Base.close(t::Tuner) = _free!(t)
_lasterr(t::Tuner) = () -> unsafe_string(ccall((:revl_tuner_last_error, librevl), Cstring,
                                              (Ptr{Cvoid},), t.ptr))

const STRATEGIES = Dict(:search_then_refine => 0, :search => 1, :refine => 2)
const REFINE_METHODS = Dict(:backtrack => 0, :adam => 1)
const PHASES = Dict(0 => :search, 1 => :refine, 2 => :done)

"""Tuner(model, valid, n_steps; optimizer=:momentum, search=nothing, refine=nothing (Families),
strategy=:search_then_refine, budget_seconds, budget_runs, seed, test, report=(r::TunerReport ->
stop::Bool), objective, and the other fields of TunerOptions as keywords): options left out
keep the library's defaults."""
function Tuner(m::Model, valid::Union{Dataset,Nothing}, n_steps::Integer;
               optimizer::Symbol=:momentum, search::Union{Family,Nothing}=nothing,
               refine::Union{Family,Nothing}=nothing, strategy=nothing, refine_method=nothing,
               test::Union{Dataset,Nothing}=nothing, report=nothing, objective=nothing, kw...)
    o = _init(TunerOptions)
    strategy === nothing || (o.strategy = _code(STRATEGIES, strategy, "strategy"))
    refine_method === nothing || (o.refine_method = _code(REFINE_METHODS, refine_method, "refine_method"))
    for (k, v) in kw
        k in fieldnames(TunerOptions) && !(k in (:struct_size, :report, :report_user, :objective,
                                                  :objective_user, :test, :allocator)) ||
            throw(RevlError(ERR_INVALID, "unknown tuner option $k", "Tuner"))
        setfield!(o, k, convert(fieldtype(TunerOptions, k), v))
    end
    test === nothing || (o.test = _live(test))
    st = CallbackState(m.n_params, m.n_meta)
    st.report = report
    st.objective = objective
    if report !== nothing
        o.report = TUNER_REPORT_FN[]
        o.report_user = pointer_from_objref(st)
    end
    if objective !== nothing
        o.objective = OBJECTIVE_FN[]
        o.objective_user = pointer_from_objref(st)
    end
    out = Ref{Ptr{Cvoid}}(C_NULL)
    rc = ccall((:revl_tuner_create, librevl), Cint,
               (Ref{Ptr{Cvoid}}, Ptr{Cvoid}, Ptr{Cvoid}, Csize_t, Cint, Ptr{Cvoid}, Ptr{Cvoid},
                Ref{TunerOptions}),
               out, _live(m), valid === nothing ? C_NULL : _live(valid), n_steps,
               _code(OPTIMIZERS, optimizer, "optimizer"),
               search === nothing ? C_NULL : _live(search),
               refine === nothing ? C_NULL : _live(refine), o)
    _check(rc, "revl_tuner_create", _nomsg, st, m.state,
           search === nothing ? nothing : search.state, refine === nothing ? nothing : refine.state)
    t = Tuner(out[], m, Any[valid, test, search, refine], st, n_steps, n_groups(m), optimizer,
              OPT_KINDS[optimizer])
    finalizer(_free!, t)
    return t
end

_fstates(t::Tuner) = (f === nothing || !(f isa Family) ? nothing : f.state for f in t.deps)

"""One evaluation or meta-iteration; its TunerReport."""
function step!(t::Tuner)
    r = Ref(TunerReport())
    ccall((:revl_tuner_report_init, librevl), Cvoid, (Ref{TunerReport},), r)
    rc = ccall((:revl_tuner_step, librevl), Cint, (Ptr{Cvoid}, Ref{TunerReport}), _live(t), r)
    _check(rc, "revl_tuner_step", _lasterr(t), t.state, t.model.state, _fstates(t)...)
    return r[]
end

function run!(t::Tuner)
    rc = ccall((:revl_tuner_run, librevl), Cint, (Ptr{Cvoid},), _live(t))
    _check(rc, "revl_tuner_run", _lasterr(t), t.state, t.model.state, _fstates(t)...)
    return t
end

""":search, :refine or :done."""
phase(t::Tuner) = PHASES[Int(ccall((:revl_tuner_phase, librevl), Cint, (Ptr{Cvoid},), _live(t)))]

function result(t::Tuner)
    r = Ref(TunerResult())
    ccall((:revl_tuner_result_init, librevl), Cvoid, (Ref{TunerResult},), r)
    rc = ccall((:revl_tuner_get_result, librevl), Cint, (Ptr{Cvoid}, Ref{TunerResult}), _live(t), r)
    _check(rc, "revl_tuner_get_result", _lasterr(t))
    return r[]
end

"""The best point's values of one kind, (n_steps, n_groups)."""
function best(t::Tuner, kind::Symbol)
    code = _need_kind(t.kinds, "$(t.optimizer) tuner", kind, "revl_tuner_best_kind")
    v = Vector{Float64}(undef, t.n_steps * t.n_groups)
    rc = ccall((:revl_tuner_best_kind, librevl), Cint, (Ptr{Cvoid}, Cint, Ptr{Cdouble}),
               _live(t), code, v)
    _check(rc, "revl_tuner_best_kind", _lasterr(t))
    return permutedims(reshape(v, t.n_groups, t.n_steps))
end

function best_scales_meta(t::Tuner)
    ls = Vector{Float64}(undef, t.n_groups)
    mt = Vector{Float64}(undef, t.model.n_meta)
    rc = ccall((:revl_tuner_best_scales_meta, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}),
               _live(t), ls, t.model.n_meta == 0 ? C_NULL : mt)
    _check(rc, "revl_tuner_best_scales_meta", _lasterr(t))
    return (log_init_scales=ls, meta=mt)
end

function best_z(t::Tuner)
    z = Vector{Float64}(undef, length(t.kinds) * t.n_steps * t.n_groups + t.n_groups + t.model.n_meta)
    rc = ccall((:revl_tuner_best_z, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}), _live(t), z)
    _check(rc, "revl_tuner_best_z", _lasterr(t))
    return z
end

"""The refinement's current point: (theta, grad, loss) in the refine family's coordinates."""
function refine_point(t::Tuner)
    n = Int(ccall((:revl_tuner_n_theta, librevl), Csize_t, (Ptr{Cvoid}, Cint), _live(t), 1))
    theta = Vector{Float64}(undef, n)
    grad = Vector{Float64}(undef, n)
    loss = Ref{Cdouble}(NaN)
    rc = ccall((:revl_tuner_refine_point, librevl), Cint,
               (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Ptr{Cdouble}), _live(t), theta, grad, loss)
    _check(rc, "revl_tuner_refine_point", _lasterr(t))
    return (theta=theta, grad=grad, loss=loss[])
end

"""The trained weights of the best point's training (no retraining)."""
function best_weights(t::Tuner)
    w = Vector{Float64}(undef, t.model.n_params)
    rc = ccall((:revl_tuner_best_weights, librevl), Cint, (Ptr{Cvoid}, Ptr{Cdouble}), _live(t), w)
    _check(rc, "revl_tuner_best_weights", _lasterr(t))
    return w
end

function best_schedule!(t::Tuner, s::Schedule)
    rc = ccall((:revl_tuner_best_schedule, librevl), Cint, (Ptr{Cvoid}, Ptr{Cvoid}), _live(t), _live(s))
    _check(rc, "revl_tuner_best_schedule", _lasterr(t))
    return s
end

function save_checkpoint(t::Tuner, path::AbstractString)
    rc = ccall((:revl_tuner_checkpoint_save, librevl), Cint, (Ptr{Cvoid}, Cstring), _live(t), path)
    _check(rc, "revl_tuner_checkpoint_save", _lasterr(t))
    return path
end

function load_checkpoint!(t::Tuner, path::AbstractString)
    rc = ccall((:revl_tuner_checkpoint_load, librevl), Cint, (Ptr{Cvoid}, Cstring), _live(t), path)
    _check(rc, "revl_tuner_checkpoint_load", _lasterr(t))
    return t
end

"""The built-in MLP's example indices (0-based, into its training set) of step `step`."""
function batch_indices(m::Model, step::Integer, batch_size::Integer)
    idx = Vector{Csize_t}(undef, batch_size)
    count = Ref{Csize_t}(0)
    rc = ccall((:revl_mlp_batch_indices, librevl), Cint, (Ptr{Cvoid}, Csize_t, Ptr{Csize_t}, Ref{Csize_t}),
               _live(m), step, idx, count)
    _check(rc, "revl_mlp_batch_indices", _lasterr(m))
    return Int.(idx[1:count[]])
end

function set_order_seed!(m::Model, seed::Integer)
    rc = ccall((:revl_mlp_set_order_seed, librevl), Cint, (Ptr{Cvoid}, UInt64), _live(m), seed)
    _check(rc, "revl_mlp_set_order_seed", _lasterr(m))
    return m
end

end # module
