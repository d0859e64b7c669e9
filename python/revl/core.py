"""Model, Schedule, Trainer: the exact forward training and the reverse hypergradient."""

import os
import ctypes

import numpy as np

from . import _errors
from ._base import (F64, CallbackState, Wrapper, _Busy, _CHandle, as_f64, as_f64_broadcast,
                    as_offsets, check, ptr)
from ._errors import InvalidError
from ._lib import GRAD_FN, HVP_FN, ModelDef, TrainerOptions, TrainerStats, init_struct, lib

_EMPTY = np.empty(0, dtype=F64)
_EMPTY.flags.writeable = False


def _view(vec_type, address, writeable):
    """A numpy view of C memory (no copy).  Valid only while the C call that lent it runs."""
    a = np.frombuffer(vec_type.from_address(address), F64)
    if not writeable:
        a.flags.writeable = False
    return a


class _Views:
    """Views of the buffers a callback is handed, cached by address: the library passes the same
    few work arrays at every step, and a view of n doubles at an address is the same view
    whenever the library lends that address again (a view never outlives the promise: it is only
    handed out while the library vouches for the memory)."""

    __slots__ = ("vec", "writeable", "cache")

    def __init__(self, n, writeable):
        self.vec = ctypes.c_double * n
        self.writeable = writeable
        self.cache = {}

    def __call__(self, address):
        a = self.cache.get(address)
        if a is None:
            if len(self.cache) >= 32:
                self.cache.clear()
            a = self.cache[address] = _view(self.vec, address, self.writeable)
        return a


def _store(out, value, what, callback):
    """Copy a callback's result into the C buffer `out`, checking shape and type."""
    a = np.asarray(value)
    if a.shape != out.shape:
        raise InvalidError(_errors.ERR_INVALID,
                           f"the {callback} callback returned {what} of shape {a.shape}, "
                           f"expected {out.shape}", callback)
    if a.dtype.kind not in "biuf":
        raise InvalidError(_errors.ERR_INVALID,
                           f"the {callback} callback returned {what} of dtype {a.dtype}, "
                           f"expected real numbers", callback)
    out[...] = a


def _make_grad_trampoline(fn, n, nm, state, copy_inputs):
    w_view, out_view = _Views(n, False), _Views(n, True)
    m_view = _Views(nm, False) if nm else None
    c_double = ctypes.c_double

    def grad_trampoline(step, w_p, meta_p, grad_p, loss_p, user):
        if state.pending is not None:
            return 1
        try:
            w = w_view(w_p)
            meta = m_view(meta_p) if (nm and meta_p) else _EMPTY
            if copy_inputs:
                w, meta = w.copy(), meta.copy()
            res = fn(step, w, meta)
            try:
                loss, g = res
            except (TypeError, ValueError):
                raise InvalidError(_errors.ERR_INVALID,
                                   f"the grad callback must return (loss, g), got "
                                   f"{type(res).__name__}", "grad") from None
            _store(out_view(grad_p), g, "g", "grad")
            if loss_p:
                c_double.from_address(loss_p).value = float("nan") if loss is None else float(loss)
            return 0
        except BaseException as e:  # noqa: B902 -- KeyboardInterrupt too: stop the C run cleanly
            return state.fail(e, "grad")

    return GRAD_FN(grad_trampoline)


def _make_hvp_trampoline(fn, n, nm, state, copy_inputs, gives_grad):
    in_view, out_view = _Views(n, False), _Views(n, True)
    m_view = _Views(nm, False) if nm else None
    m_out = _Views(nm, True) if nm else None
    n_out = 3 if gives_grad else 2

    def hvp_trampoline(step, w_p, meta_p, v_p, grad_p, hv_w_p, hv_meta_p, user):
        if state.pending is not None:
            return 1
        try:
            w = in_view(w_p)
            meta = m_view(meta_p) if (nm and meta_p) else _EMPTY
            v = in_view(v_p)
            if copy_inputs:
                w, meta, v = w.copy(), meta.copy(), v.copy()
            res = fn(step, w, meta, v)
            try:
                parts = tuple(res)
            except TypeError:
                parts = ()
            if len(parts) != n_out:
                want = "(hv_w, hv_meta, g)" if gives_grad else "(hv_w, hv_meta)"
                raise InvalidError(_errors.ERR_INVALID,
                                   f"the hvp callback must return {want}, got "
                                   f"{type(res).__name__}", "hvp")
            _store(out_view(hv_w_p), parts[0], "hv_w", "hvp")
            if hv_meta_p and nm:
                out = m_out(hv_meta_p)
                if parts[1] is None:
                    out[...] = 0.0
                else:
                    _store(out, parts[1], "hv_meta", "hvp")
            if gives_grad and grad_p:
                _store(out_view(grad_p), parts[2], "g", "hvp")
            return 0
        except BaseException as e:  # noqa: B902
            return state.fail(e, "hvp")

    return HVP_FN(hvp_trampoline)


def _address(x):
    """An address from None, an int, a ctypes function pointer, c_void_p or a ctypes object."""
    if x is None or isinstance(x, int):
        return x
    if isinstance(x, ctypes._CFuncPtr):
        return ctypes.cast(x, ctypes.c_void_p).value
    if isinstance(x, ctypes.c_void_p):
        return x.value
    if isinstance(x, ctypes._Pointer):
        return ctypes.cast(x, ctypes.c_void_p).value
    return ctypes.addressof(x)


def _meta_arg(n_meta, meta, function):
    if n_meta == 0:
        if meta is not None and np.size(meta) != 0:
            raise InvalidError(_errors.ERR_INVALID,
                               f"the model has no meta-parameters, got meta of shape "
                               f"{np.shape(meta)}", function)
        return None
    if meta is None:
        raise InvalidError(_errors.ERR_INVALID,
                           f"the model has {n_meta} meta-parameters: meta is required", function)
    return as_f64(meta, (n_meta,), "meta", function)


def _check_count(x, name, minimum):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)) or x < minimum:
        raise InvalidError(_errors.ERR_INVALID,
                           f"{name} must be an integer >= {minimum}, got {x!r}", name)
    return int(x)


class Model(Wrapper):
    """A training loss L(w, meta, step) given by Python callables.

    ``grad(step, w, meta) -> (loss, g)``: the training loss and its gradient with respect to w
    (g of shape (n_params,)).  ``hvp(step, w, meta, v) -> (hv_w, hv_meta)``: the
    Hessian-vector product d2L/dw2 v (shape (n_params,)) and d/dmeta (grad_w L . v) (shape
    (n_meta,), or None for zeros); without hvp the library uses central finite differences of
    grad.  With ``hvp_gives_grad=True`` hvp returns (hv_w, hv_meta, g), g bit-identical to
    grad's, saving one callback per reverse step.

    The arrays w, meta and v handed to the callbacks are read-only views of the library's memory,
    valid only during the call: copy them (or pass ``copy_inputs=True``) to keep them.  Results
    are copied into the library's buffers.  Callbacks must be deterministic in (step, w, meta):
    the reverse pass calls them again and needs the same bits.  An exception raised in a callback
    stops the run and is re-raised from the call that ran it (train, hypergrad, ...).
    """

    _kind = "model"

    def __init__(self, n_params, n_meta=0, grad=None, hvp=None, *, hvp_gives_grad=False,
                 groups=None, copy_inputs=False):
        n_params = _check_count(n_params, "n_params", 1)
        n_meta = _check_count(n_meta, "n_meta", 0)
        if not callable(grad):
            raise InvalidError(_errors.ERR_INVALID, "grad must be a callable "
                               "grad(step, w, meta) -> (loss, g)", "Model")
        if hvp is not None and not callable(hvp):
            raise InvalidError(_errors.ERR_INVALID, "hvp must be None or a callable "
                               "hvp(step, w, meta, v) -> (hv_w, hv_meta)", "Model")
        if hvp_gives_grad and hvp is None:
            raise InvalidError(_errors.ERR_INVALID, "hvp_gives_grad needs an hvp callable",
                               "Model")
        state = CallbackState()
        keep = [state, _make_grad_trampoline(grad, n_params, n_meta, state, copy_inputs)]
        if hvp is not None:
            keep.append(_make_hvp_trampoline(hvp, n_params, n_meta, state, copy_inputs,
                                             bool(hvp_gives_grad)))
        d = init_struct(ModelDef, lib.model_def_init)
        d.n_params, d.n_meta = n_params, n_meta
        d.grad = ctypes.cast(keep[1], ctypes.c_void_p).value
        d.hvp = ctypes.cast(keep[2], ctypes.c_void_p).value if hvp is not None else None
        d.hvp_gives_grad = 1 if hvp_gives_grad else 0
        self._create(d, keep, (state,))
        self.grad_fn, self.hvp_fn = grad, hvp
        if groups is not None:
            self.set_groups(groups)

    @classmethod
    def from_c(cls, n_params, n_meta, grad, hvp=None, user=None, *, hvp_gives_grad=False,
               keepalive=None, groups=None):
        """A model whose callbacks are C functions: ``grad`` and ``hvp`` are addresses (ints, or
        ctypes function pointers) of functions with the revl_grad_fn / revl_hvp_fn signatures,
        ``user`` the void * they get.  ``keepalive``: any object (a loaded ctypes.CDLL, a buffer
        behind ``user``) that must live as long as the model.  No Python runs per step."""
        self = cls.__new__(cls)
        n_params = _check_count(n_params, "n_params", 1)
        n_meta = _check_count(n_meta, "n_meta", 0)

        d = init_struct(ModelDef, lib.model_def_init)
        d.n_params, d.n_meta = n_params, n_meta
        d.grad, d.hvp, d.user = _address(grad), _address(hvp), _address(user)
        if not d.grad:
            raise InvalidError(_errors.ERR_INVALID, "grad must be a C function address",
                               "Model.from_c")
        d.hvp_gives_grad = 1 if hvp_gives_grad else 0
        self._create(d, (keepalive, grad, hvp, user), ())
        self.grad_fn = self.hvp_fn = None
        if groups is not None:
            self.set_groups(groups)
        return self

    def _create(self, d, keep, states):
        out = ctypes.c_void_p()
        rc = lib.model_create(ctypes.byref(out), ctypes.byref(d))
        check(rc, "revl_model_create")
        self._init_handle(_CHandle(out.value, lib.model_free, "model", keep=keep,
                                   states=states))
        self.n_params = int(lib.model_n_params(out.value))
        self.n_meta = int(lib.model_n_meta(out.value))

    def _describe(self):
        return f"n_params={self.n_params} n_meta={self.n_meta}"

    def _check(self, rc, function, h):
        check(rc, function, h.ptr, lib.model_last_error, h.states)

    # ---- groups
    @property
    def n_groups(self):
        return int(lib.model_n_groups(self._handle().ptr))

    @property
    def offsets(self):
        """Group boundaries, n_groups+1 ints (a copy)."""
        h = self._handle()
        out = np.empty(lib.model_n_groups(h.ptr) + 1, dtype=np.uintp)
        self._check(lib.model_group_offsets(h.ptr, ptr(out)), "revl_model_group_offsets", h)
        return out.astype(np.int64)

    def set_groups(self, offsets):
        """Parameter groups: contiguous ranges [offsets[g], offsets[g+1]) that share alpha and
        gamma in a schedule; offsets[-1] must equal n_params."""
        h = self._handle()
        off = as_offsets(offsets, "offsets", "Model.set_groups")
        with _Busy((h,)):
            self._check(lib.model_set_groups(h.ptr, off.size - 1, ptr(off)),
                        "revl_model_set_groups", h)

    # ---- calling the model directly
    def grad(self, step, w, meta=None):
        """(loss, gradient) of the training loss at step ``step`` (calls the callbacks, or the
        built-in model)."""
        h = self._handle()
        w = as_f64(w, (self.n_params,), "w", "Model.grad")
        m = _meta_arg(self.n_meta, meta, "Model.grad")
        g = np.empty(self.n_params)
        loss = ctypes.c_double(np.nan)
        with _Busy((h,)):
            rc = lib.model_grad(h.ptr, int(step), ptr(w), ptr(m), ptr(g), ctypes.addressof(loss))
        self._check(rc, "revl_model_grad", h)
        return loss.value, g

    def hvp(self, step, w, meta, v):
        """(hv_w, hv_meta): d2L/dw2 v and d/dmeta (grad_w L . v) at step ``step``."""
        h = self._handle()
        w = as_f64(w, (self.n_params,), "w", "Model.hvp")
        v = as_f64(v, (self.n_params,), "v", "Model.hvp")
        m = _meta_arg(self.n_meta, meta, "Model.hvp")
        hv = np.empty(self.n_params)
        hm = np.empty(self.n_meta)
        with _Busy((h,)):
            rc = lib.model_hvp(h.ptr, int(step), ptr(w), ptr(m), ptr(v), ptr(hv),
                               ptr(hm) if self.n_meta else None)
        self._check(rc, "revl_model_hvp", h)
        return hv, hm

    # ---- initial weights
    def init_weights(self, log_scales, seed=0):
        """w0[i] = exp(log_scales[g]) * z_i, z_i standard normal from ``seed`` (the same on every
        platform); one log scale per group."""
        h = self._handle()
        ls = as_f64_broadcast(log_scales, (self.n_groups,), "log_scales",
                              "Model.init_weights")
        w0 = np.empty(self.n_params)
        self._check(lib.model_init_weights(h.ptr, ptr(ls), int(seed) & (2**64 - 1), ptr(w0)),
                    "revl_model_init_weights", h)
        return w0

    def init_scales_grad(self, w0, d_w0):
        """Chain rule from d f/d w0 to d f/d log_scales for weights made by init_weights."""
        h = self._handle()
        w0 = as_f64(w0, (self.n_params,), "w0", "Model.init_scales_grad")
        d_w0 = as_f64(d_w0, (self.n_params,), "d_w0", "Model.init_scales_grad")
        out = np.empty(self.n_groups)
        self._check(lib.model_init_scales_grad(h.ptr, ptr(w0), ptr(d_w0), ptr(out)),
                    "revl_model_init_scales_grad", h)
        return out


class Schedule(Wrapper):
    """alpha and gamma per step and per parameter group.

    ``offsets``: n_groups+1 group boundaries as in C.  ``alpha`` and ``gamma`` read as
    read-only (n_steps, n_groups) float64 copies and are set by assignment (a scalar, or anything
    that broadcasts to (n_steps, n_groups)); in-place element assignment is refused because it
    would change only the copy.  gamma must lie in [2^-16, 1] and is applied as the nearest
    n/2^16 (``gamma_applied``).  A new schedule holds alpha = 0.1, gamma = 0.9.
    """

    _kind = "schedule"

    def __init__(self, n_steps, offsets, alpha=None, gamma=None):
        n_steps = _check_count(n_steps, "n_steps", 1)
        off = as_offsets(offsets, "offsets", "Schedule")
        out = ctypes.c_void_p()
        rc = lib.schedule_create(ctypes.byref(out), n_steps, off.size - 1, ptr(off))
        check(rc, "revl_schedule_create")
        self._init_handle(_CHandle(out.value, lib.schedule_free, "schedule"))
        self.n_steps = n_steps
        self.n_groups = off.size - 1
        self.shape = (self.n_steps, self.n_groups)
        if alpha is not None or gamma is not None:
            self.set(alpha, gamma)

    @classmethod
    def for_model(cls, model, n_steps, alpha=None, gamma=None):
        """A schedule over the model's parameter groups."""
        return cls(n_steps, model.offsets, alpha, gamma)

    def _describe(self):
        return f"n_steps={self.n_steps} n_groups={self.n_groups}"

    def _check(self, rc, function, h):
        check(rc, function, h.ptr, lib.schedule_last_error)

    @property
    def offsets(self):
        h = self._handle()
        out = np.empty(self.n_groups + 1, dtype=np.uintp)
        self._check(lib.schedule_offsets(h.ptr, ptr(out)), "revl_schedule_offsets", h)
        return out.astype(np.int64)

    def _get(self):
        h = self._handle()
        a = np.empty(self.shape)
        g = np.empty(self.shape)
        self._check(lib.schedule_get_all(h.ptr, ptr(a), ptr(g)), "revl_schedule_get_all", h)
        a.flags.writeable = False
        g.flags.writeable = False
        return a, g

    def set(self, alpha=None, gamma=None):
        """Set alpha and/or gamma together (None = unchanged); on error nothing changes."""
        h = self._handle()
        a = None if alpha is None else as_f64_broadcast(alpha, self.shape, "alpha", "Schedule")
        g = None if gamma is None else as_f64_broadcast(gamma, self.shape, "gamma", "Schedule")
        self._check(lib.schedule_set_all(h.ptr, ptr(a), ptr(g)), "revl_schedule_set_all", h)

    def fill(self, alpha, gamma):
        h = self._handle()
        self._check(lib.schedule_fill(h.ptr, float(alpha), float(gamma)), "revl_schedule_fill", h)

    @property
    def alpha(self):
        return self._get()[0]

    @alpha.setter
    def alpha(self, value):
        self.set(alpha=value)

    @property
    def gamma(self):
        return self._get()[1]

    @gamma.setter
    def gamma(self, value):
        self.set(gamma=value)

    @property
    def gamma_applied(self):
        """The momenta actually applied: round(gamma * 2^16) / 2^16."""
        return np.round(self._get()[1] * 65536.0) / 65536.0


class Hypergrad:
    """Gradients of the objective f(w_T) with respect to the run's hyperparameters:
    ``w0`` (n_params,), ``alpha`` and ``gamma`` (n_steps, n_groups, gamma at its applied value),
    ``meta`` (n_meta,)."""

    __slots__ = ("w0", "alpha", "gamma", "meta")

    def __init__(self, w0, alpha, gamma, meta):
        self.w0, self.alpha, self.gamma, self.meta = w0, alpha, gamma, meta

    def __repr__(self):
        return (f"<revl.Hypergrad w0{self.w0.shape} alpha{self.alpha.shape} "
                f"gamma{self.gamma.shape} meta{self.meta.shape}>")


class Trainer(Wrapper):
    """Exact momentum-SGD training of ``model`` under ``schedule`` and its exact reversal.

    ``frac_bits``: fixed-point fractional bits (|w|, |v| < 2^(63-frac_bits)); ``truncate``: 0,
    or K to keep only the last K steps' bits; ``threads``: 0 = library default (results are
    bit-identical for any value).  The trainer keeps the model and the schedule alive.
    """

    _kind = "trainer"

    def __init__(self, model, schedule, frac_bits=52, truncate=0, threads=0):
        if not isinstance(model, Model):
            raise InvalidError(_errors.ERR_INVALID,
                               f"model must be a revl.Model, got {type(model).__name__}",
                               "Trainer")
        if not isinstance(schedule, Schedule):
            raise InvalidError(_errors.ERR_INVALID, f"schedule must be a revl.Schedule, got "
                               f"{type(schedule).__name__}", "Trainer")
        mh, sh = model._handle(), schedule._handle()
        soff = schedule.offsets
        if soff[-1] != model.n_params:
            raise InvalidError(_errors.ERR_INVALID,
                               f"the schedule's groups cover {soff[-1]} parameters, the model "
                               f"has {model.n_params}", "Trainer")
        frac_bits = _check_count(frac_bits, "frac_bits", 1)
        if frac_bits > 62:
            raise InvalidError(_errors.ERR_INVALID, f"frac_bits must be in 1..62, got "
                               f"{frac_bits}", "Trainer")
        o = init_struct(TrainerOptions, lib.trainer_options_init)
        o.frac_bits = frac_bits
        o.truncate = _check_count(truncate, "truncate", 0)
        o.threads = int(threads)
        out = ctypes.c_void_p()
        rc = lib.trainer_create(ctypes.byref(out), mh.ptr, sh.ptr, ctypes.byref(o))
        check(rc, "revl_trainer_create")
        self._init_handle(_CHandle(out.value, lib.trainer_free, "trainer", deps=(mh, sh)))
        self.model, self.schedule = model, schedule
        self.n_params, self.n_meta = model.n_params, model.n_meta
        self.n_steps, self.n_groups = schedule.n_steps, schedule.n_groups
        self.frac_bits, self.truncate, self.threads = frac_bits, o.truncate, o.threads

    def _describe(self):
        return f"n_params={self.n_params} n_steps={self.n_steps} n_groups={self.n_groups}"

    def _check(self, rc, function, h):
        check(rc, function, h.ptr, lib.trainer_last_error, h.states)

    def train(self, w0, meta=None):
        """Run the n_steps exact steps from w0 (v0 = 0).  meta: the model's meta-parameters
        (required when it has any).  The schedule is read now."""
        h = self._handle()
        w0 = as_f64(w0, (self.n_params,), "w0", "Trainer.train")
        m = _meta_arg(self.n_meta, meta, "Trainer.train")
        with _Busy((h,) + h.deps):
            rc = lib.trainer_train(h.ptr, ptr(w0), ptr(m))
        self._check(rc, "revl_trainer_train", h)

    def save(self, path):
        """Write a checkpoint of the trajectory so far (docs/file-formats.md)."""
        h = self._handle()
        self._check(lib.trainer_save(h.ptr, os.fsencode(path)), "revl_trainer_save", h)

    def load(self, path):
        """Read a checkpoint written by a trainer made the same way; then hypergrad (a file
        written after the last step) or train_resume (one written mid-training)."""
        h = self._handle()
        self._check(lib.trainer_load(h.ptr, os.fsencode(path)), "revl_trainer_load", h)

    def train_resume(self):
        """Take the steps a loaded mid-training checkpoint has not taken yet."""
        h = self._handle()
        with _Busy((h,) + h.deps):
            rc = lib.trainer_train_resume(h.ptr)
        self._check(rc, "revl_trainer_train_resume", h)

    def set_checkpoint(self, path, every=1):
        """Save a checkpoint to path every `every` steps of training (None: stop)."""
        h = self._handle()
        rc = lib.trainer_set_checkpoint(h.ptr, None if path is None else os.fsencode(path),
                                        0 if path is None else every)
        self._check(rc, "revl_trainer_set_checkpoint", h)

    @property
    def weights(self):
        """w as it stands now (a copy): w_T after train, w0 again after hypergrad."""
        h = self._handle()
        w = np.empty(self.n_params)
        self._check(lib.trainer_weights(h.ptr, ptr(w)), "revl_trainer_weights", h)
        return w

    def hypergrad(self, dfdw, dfdmeta=None):
        """Reverse the training exactly from dfdw = grad f(w_T) (and df/dmeta, default 0);
        returns a Hypergrad with .w0, .alpha, .gamma, .meta.  Afterwards the trainer holds w0
        again (w_{T-K} with truncate = K)."""
        h = self._handle()
        dfdw = as_f64(dfdw, (self.n_params,), "dfdw", "Trainer.hypergrad")
        dm = None
        if dfdmeta is not None:
            dm = as_f64(dfdmeta, (self.n_meta,), "dfdmeta", "Trainer.hypergrad")
        shape = (self.n_steps, self.n_groups)
        r = Hypergrad(np.empty(self.n_params), np.empty(shape), np.empty(shape),
                      np.zeros(self.n_meta))
        with _Busy((h,) + h.deps):
            rc = lib.trainer_hypergrad(h.ptr, ptr(dfdw), ptr(dm) if self.n_meta else None,
                                       ptr(r.w0), ptr(r.alpha), ptr(r.gamma),
                                       ptr(r.meta) if self.n_meta else None)
        self._check(rc, "revl_trainer_hypergrad", h)
        return r

    @property
    def stats(self):
        """dict: steps_done, buffer_bits, buffer_bytes, peak_bytes, last_loss."""
        h = self._handle()
        s = TrainerStats()
        s.struct_size = ctypes.sizeof(s)
        self._check(lib.trainer_get_stats(h.ptr, ctypes.byref(s)), "revl_trainer_get_stats", h)
        return {name: getattr(s, name) for name, _ in TrainerStats._fields_[1:]}
