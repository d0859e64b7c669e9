"""Model, Schedule, Trainer: the exact forward training and the reverse hypergradient."""

import collections
import ctypes
import sys
import threading

import numpy as np

from . import _errors
from ._base import (F64, INT_MAX, KIND_NAMES, KINDS, OPTIMIZER_NAMES, CallbackState, Wrapper,
                    _Busy, _CHandle, as_f64, as_f64_broadcast, as_int, as_offsets, as_path, check,
                    hyper_applied, kind_code, optimizer_code, ptr)
from ._errors import InvalidError
from ._lib import (DIR_FN, GRAD_FN, HVP_AFFINE_FN, HVP_DIR_FN, HVP_FN, PROGRESS_FN, ModelDef, TrainerOptions,
                   TrainerStats, init_struct, lib)

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


def _parts(res, count, want, function):
    """A callback's result as a tuple of `count` parts, or InvalidError saying what it must
    return."""
    try:
        parts = tuple(res)
    except TypeError:
        parts = ()
    if len(parts) != count:
        raise InvalidError(_errors.ERR_INVALID, f"the {function} callback must return {want}, "
                           f"got {type(res).__name__}", function)
    return parts


def _store_products(parts, out_view, m_out, hv_w_p, hv_meta_p, nm, function):
    """hv_w (parts[0]) into the library's array, and hv_meta (parts[1]; None: zeros) where the
    library asked for it."""
    _store(out_view(hv_w_p), parts[0], "hv_w", function)
    if hv_meta_p and nm:
        out = m_out(hv_meta_p)
        if parts[1] is None:
            out[...] = 0.0
        else:
            _store(out, parts[1], "hv_meta", function)


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
            parts = _parts(fn(step, w, meta, v), n_out,
                           "(hv_w, hv_meta, g)" if gives_grad else "(hv_w, hv_meta)", "hvp")
            _store_products(parts, out_view, m_out, hv_w_p, hv_meta_p, nm, "hvp")
            if gives_grad and grad_p:
                _store(out_view(grad_p), parts[2], "g", "hvp")
            return 0
        except BaseException as e:  # noqa: B902
            return state.fail(e, "hvp")

    return HVP_FN(hvp_trampoline)


def _make_hvp_affine_trampoline(fn, n, nm, state, copy_inputs):
    """revl_hvp_affine_fn around fn(step, w, meta, a, b) -> (hv_w, hv_meta, g): the gradient g
    at w and the Hessian products along v = a + b * g, in one Python call."""
    in_view, out_view = _Views(n, False), _Views(n, True)
    m_view = _Views(nm, False) if nm else None
    m_out = _Views(nm, True) if nm else None

    def hvp_affine_trampoline(step, w_p, meta_p, a_p, b_p, grad_p, hv_w_p, hv_meta_p, user):
        if state.pending is not None:
            return 1
        try:
            w = in_view(w_p)
            meta = m_view(meta_p) if (nm and meta_p) else _EMPTY
            a, b = in_view(a_p), in_view(b_p)
            if copy_inputs:
                w, meta, a, b = w.copy(), meta.copy(), a.copy(), b.copy()
            parts = _parts(fn(step, w, meta, a, b), 3, "(hv_w, hv_meta, g)", "hvp_affine")
            _store(out_view(grad_p), parts[2], "g", "hvp_affine")
            _store_products(parts, out_view, m_out, hv_w_p, hv_meta_p, nm, "hvp_affine")
            return 0
        except BaseException as e:  # noqa: B902
            return state.fail(e, "hvp_affine")

    return HVP_AFFINE_FN(hvp_affine_trampoline)


class _DirectionFailed(Exception):
    """The library's direction failed (its message stays with the trainer): the fused callback
    stops with that status."""


def _make_hvp_dir_trampoline(fn, n, nm, state, copy_inputs):
    """revl_hvp_dir_fn around fn(step, w, meta, direction) -> (hv_w, hv_meta): direction(g)
    hands the gradient g to the library and returns its direction v (read-only, valid during
    the call), once per call."""
    in_view, out_view = _Views(n, False), _Views(n, True)
    m_view = _Views(nm, False) if nm else None
    m_out = _Views(nm, True) if nm else None

    def hvp_dir_trampoline(step, w_p, meta_p, dir_p, ctx, v_p, grad_p, hv_w_p, hv_meta_p, user):
        if state.pending is not None:
            return 1
        calls = []

        def direction(g):
            if calls:
                raise InvalidError(_errors.ERR_INVALID, "direction(g) called twice in one "
                                   "hvp_dir call (once per call)", "hvp_dir")
            calls.append(1)
            _store(out_view(grad_p), g, "g", "hvp_dir")
            rc = DIR_FN(dir_p)(ctx, grad_p)
            if rc:
                raise _DirectionFailed(rc)
            v = in_view(v_p)
            return v.copy() if copy_inputs else v

        try:
            w = in_view(w_p)
            meta = m_view(meta_p) if (nm and meta_p) else _EMPTY
            if copy_inputs:
                w, meta = w.copy(), meta.copy()
            parts = _parts(fn(step, w, meta, direction), 2, "(hv_w, hv_meta)", "hvp_dir")
            if not calls:
                raise InvalidError(_errors.ERR_INVALID, "the hvp_dir callback returned without "
                                   "calling direction(g)", "hvp_dir")
            _store_products(parts, out_view, m_out, hv_w_p, hv_meta_p, nm, "hvp_dir")
            return 0
        except _DirectionFailed as e:
            return e.args[0]
        except BaseException as e:  # noqa: B902
            return state.fail(e, "hvp_dir")

    return HVP_DIR_FN(hvp_dir_trampoline)


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
    return as_int(x, name, name, minimum)


class Model(Wrapper):
    """A training loss L(w, meta, step) given by Python callables.

    ``grad(step, w, meta) -> (loss, g)``: the training loss and its gradient with respect to w
    (g of shape (n_params,)).  ``hvp(step, w, meta, v) -> (hv_w, hv_meta)``: the
    Hessian-vector product d2L/dw2 v (shape (n_params,)) and d/dmeta (grad_w L . v) (shape
    (n_meta,), or None for zeros); without hvp the library uses central finite differences of
    grad.  With ``hvp_gives_grad=True`` hvp returns (hv_w, hv_meta, g), g bit-identical to
    grad's, saving one callback per reverse step.

    ``hvp_affine(step, w, meta, a, b) -> (hv_w, hv_meta, g)`` (optional, for Adam and RMSprop,
    whose Hessian direction depends on the gradient at the same point): g is the gradient at w
    (bit-identical to grad's), v = a + b * g elementwise (numpy's ``a + b * g`` computes exactly
    the library's v), hv_w = d2L/dw2 v and hv_meta = d/dmeta (grad_w L . v) (or None for zeros),
    all from one pass over the model.  Without it the library calls grad, then hvp: the same
    bits, one more callback per reverse step.

    ``hvp_dir(step, w, meta, direction) -> (hv_w, hv_meta)`` (optional, for RMSprop, whose
    Hessian direction is not affine in g, and for any optimiser's clipped steps): compute the
    gradient g at w (bit-identical to grad's), call ``v = direction(g)`` once (the library's
    direction from g, a read-only view), then return hv_w = d2L/dw2 v and hv_meta = d/dmeta
    (grad_w L . v) (or None for zeros), all from one pass over the model.  Without it the library
    calls grad, then hvp: the same bits, one more callback per reverse step.

    The arrays w, meta and v handed to the callbacks are read-only views of the library's memory,
    valid only during the call: copy them (or pass ``copy_inputs=True``) to keep them.  Results
    are copied into the library's buffers.  Callbacks must be deterministic in (step, w, meta):
    the reverse pass calls them again and needs the same bits.  An exception raised in a callback
    stops the run and is re-raised from the call that ran it (train, hypergrad, ...).
    """

    _kind = "model"

    def __init__(self, n_params, n_meta=0, grad=None, hvp=None, *, hvp_gives_grad=False,
                 groups=None, copy_inputs=False, hvp_affine=None, hvp_dir=None):
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
        if hvp_affine is not None and not callable(hvp_affine):
            raise InvalidError(_errors.ERR_INVALID, "hvp_affine must be None or a callable "
                               "hvp_affine(step, w, meta, a, b) -> (hv_w, hv_meta, g)", "Model")
        if hvp_dir is not None and not callable(hvp_dir):
            raise InvalidError(_errors.ERR_INVALID, "hvp_dir must be None or a callable "
                               "hvp_dir(step, w, meta, direction) -> (hv_w, hv_meta)", "Model")
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
        affine = None
        if hvp_affine is not None:
            affine = _make_hvp_affine_trampoline(hvp_affine, n_params, n_meta, state,
                                                 copy_inputs)
            keep.append(affine)
        fused_dir = None
        if hvp_dir is not None:
            fused_dir = _make_hvp_dir_trampoline(hvp_dir, n_params, n_meta, state, copy_inputs)
            keep.append(fused_dir)
        self._create(d, keep, (state,))
        self.grad_fn, self.hvp_fn, self.hvp_affine_fn = grad, hvp, hvp_affine
        self.hvp_dir_fn = hvp_dir
        if affine is not None:
            self._set_hvp_affine(ctypes.cast(affine, ctypes.c_void_p).value)
        if fused_dir is not None:
            self._set_hvp_dir(ctypes.cast(fused_dir, ctypes.c_void_p).value)
        if groups is not None:
            self.set_groups(groups)

    @classmethod
    def from_c(cls, n_params, n_meta, grad, hvp=None, user=None, *, hvp_gives_grad=False,
               keepalive=None, groups=None, hvp_affine=None, hvp_dir=None):
        """A model whose callbacks are C functions: ``grad``, ``hvp``, ``hvp_affine`` and
        ``hvp_dir`` are addresses (ints, or ctypes function pointers) of functions with the
        revl_grad_fn / revl_hvp_fn / revl_hvp_affine_fn / revl_hvp_dir_fn signatures, ``user``
        the void * they get.  ``keepalive``: any object (a loaded ctypes.CDLL, a buffer
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
        self._create(d, (keepalive, grad, hvp, user, hvp_affine, hvp_dir), ())
        self.grad_fn = self.hvp_fn = self.hvp_affine_fn = self.hvp_dir_fn = None
        if hvp_affine is not None:
            self._set_hvp_affine(_address(hvp_affine))
        if hvp_dir is not None:
            self._set_hvp_dir(_address(hvp_dir))
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

    def _set_hvp_affine(self, address):
        h = self._handle()
        self._check(lib.model_set_hvp_affine(h.ptr, address), "revl_model_set_hvp_affine", h)

    def _set_hvp_dir(self, address):
        h = self._handle()
        self._check(lib.model_set_hvp_dir(h.ptr, address), "revl_model_set_hvp_dir", h)

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
            rc = lib.model_grad(h.ptr, as_int(step, "step", "Model.grad"), ptr(w), ptr(m), ptr(g), ctypes.addressof(loss))
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
            rc = lib.model_hvp(h.ptr, as_int(step, "step", "Model.hvp"), ptr(w), ptr(m), ptr(v), ptr(hv),
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
        seed = as_int(seed, "seed", "Model.init_weights")
        self._check(lib.model_init_weights(h.ptr, ptr(ls), seed, ptr(w0)),
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


def _kind_property(kind):
    def get(self):
        return self.get_kind(kind)

    def set_(self, value):
        self.set(**{kind: value})

    return property(get, set_, doc=f"{kind} per (step, group): a read-only (n_steps, n_groups) "
                                   f"copy; assign to set it (InvalidError for a schedule "
                                   f"without {kind}).")


def _applied_property(kind):
    return property(lambda self: hyper_applied(kind, self.get_kind(kind)),
                    doc=f"The {kind} values actually applied (revl.hyper_applied).")


class Schedule(Wrapper):
    """The hyperparameters of an optimiser per step and per parameter group.

    ``optimizer``: 'momentum' (default; alpha, gamma, weight_decay: as torch.optim.SGD's,
    coupled, default 0), 'adam' (alpha, beta1, beta2, eps), 'rmsprop' (alpha, gamma, beta2, eps,
    weight_decay: coupled, default 0) or 'adamw' (alpha, beta1, beta2, eps, weight_decay: as
    torch.optim.AdamW), or any optimiser the loaded library has (``revl.OPTIMIZERS``);
    ``kinds`` lists the schedule's hyperparameters, as the library reports them.
    ``offsets``: n_groups+1 group boundaries as in C.  Each kind reads as a read-only
    (n_steps, n_groups) float64 copy (``s.alpha``, ``s.beta1``, ...) and is set by assignment (a
    scalar, or anything that broadcasts to (n_steps, n_groups)); in-place element assignment is
    refused because it would change only the copy.  A kind the optimiser does not have raises
    InvalidError.  Ranges: alpha finite; gamma in [2^-16, 1], applied as the nearest n/2^16;
    beta1, beta2 in [2^-24, 1 - 2^-24], applied as the nearest n/2^24; eps finite and > 0;
    weight_decay finite and >= 0, with alpha*weight_decay in [0, 1 - 2^-18] (checked when
    training) (``s.gamma_applied``, ``s.beta1_applied``, ... give the applied values).  A new schedule holds
    the optimiser's defaults: momentum alpha 0.1, gamma 0.9; Adam alpha 1e-3, beta1 0.9,
    beta2 0.999, eps 1e-8; RMSprop alpha 1e-2, gamma 0.9, beta2 0.99, eps 1e-8; AdamW as Adam
    and weight_decay 0.01.
    """

    _kind = "schedule"

    def __init__(self, n_steps, offsets, alpha=None, gamma=None, *, optimizer="momentum",
                 beta1=None, beta2=None, eps=None, **kinds):
        n_steps = _check_count(n_steps, "n_steps", 1)
        off = as_offsets(offsets, "offsets", "Schedule")
        opt = optimizer_code(optimizer, "Schedule")
        out = ctypes.c_void_p()
        rc = lib.schedule_create_for(ctypes.byref(out), opt, n_steps, off.size - 1, ptr(off),
                                     None)
        check(rc, "revl_schedule_create_for")
        self._init_handle(_CHandle(out.value, lib.schedule_free, "schedule"))
        self.n_steps = n_steps
        self.n_groups = off.size - 1
        self.shape = (self.n_steps, self.n_groups)
        n = lib.schedule_kinds(out.value, None)
        codes = (ctypes.c_int * n)()
        lib.schedule_kinds(out.value, ctypes.addressof(codes))
        self.kinds = tuple(KIND_NAMES[c] for c in codes)
        # the driver's kinds every schedule has besides the optimiser's (clip): the library
        # reads them but revl_schedule_kinds does not list them
        probe = np.empty(self.shape)
        self.driver_kinds = tuple(k for k in KINDS if k not in self.kinds and
                                  lib.schedule_get_kind(out.value, KINDS[k], ptr(probe)) == 0)
        self.optimizer = OPTIMIZER_NAMES[lib.schedule_optimizer(out.value)]
        for k in kinds:                 # kinds added to the library later (weight_decay, ...)
            kind_code(k, "Schedule")
        given = {k: v for k, v in (("alpha", alpha), ("gamma", gamma), ("beta1", beta1),
                                   ("beta2", beta2), ("eps", eps), *kinds.items())
                 if v is not None}
        if given:
            self.set(**given)

    @classmethod
    def for_model(cls, model, n_steps, alpha=None, gamma=None, **kw):
        """A schedule over the model's parameter groups (keywords as the constructor's)."""
        return cls(n_steps, model.offsets, alpha, gamma, **kw)

    def _active_driver_kinds(self, h=None):
        """The driver's kinds that do something in this schedule (clip: a finite value): the
        hypergradient has them too. h: the schedule's handle as a trainer keeps it (the
        Schedule object may be closed while the trainer lives)."""
        h = h or self._handle()
        out = np.empty(self.shape)
        active = []
        for k in self.driver_kinds:
            self._check(lib.schedule_get_kind(h.ptr, KINDS[k], ptr(out)),
                        "revl_schedule_get_kind", h)
            if np.isfinite(out).any():
                active.append(k)
        return tuple(active)

    def _describe(self):
        return f"{self.optimizer} n_steps={self.n_steps} n_groups={self.n_groups}"

    def _check(self, rc, function, h):
        check(rc, function, h.ptr, lib.schedule_last_error)

    @property
    def offsets(self):
        h = self._handle()
        out = np.empty(self.n_groups + 1, dtype=np.uintp)
        self._check(lib.schedule_offsets(h.ptr, ptr(out)), "revl_schedule_offsets", h)
        return out.astype(np.int64)

    def get_kind(self, kind):
        """One kind's values, a read-only (n_steps, n_groups) copy."""
        h = self._handle()
        code = kind_code(kind, "Schedule")
        if KIND_NAMES[code] not in self.kinds + self.driver_kinds:
            # the C getter takes a const handle and so cannot keep a message: say it here
            raise InvalidError(_errors.ERR_INVALID, f"this {self.optimizer} schedule has no "
                               f"{KIND_NAMES[code]} (its kinds: {', '.join(self.kinds)})",
                               "revl_schedule_get_kind")
        out = np.empty(self.shape)
        self._check(lib.schedule_get_kind(h.ptr, code, ptr(out)),
                    "revl_schedule_get_kind", h)
        out.flags.writeable = False
        return out

    def set(self, alpha=None, gamma=None, *, beta1=None, beta2=None, eps=None, **kinds):
        """Set any of the schedule's kinds together (None = unchanged; keywords for kinds added
        later, such as weight_decay); on error nothing changes."""
        h = self._handle()
        for k in kinds:
            kind_code(k, "Schedule.set")
        given = [(k, v) for k, v in (("alpha", alpha), ("gamma", gamma), ("beta1", beta1),
                                     ("beta2", beta2), ("eps", eps), *kinds.items())
                 if v is not None]
        arrays = [(k, as_f64_broadcast(v, self.shape, k, "Schedule")) for k, v in given]
        if "gamma" in self.kinds and all(k in ("alpha", "gamma") for k, _ in given):
            d = dict(arrays)                    # one C call checks both before changing any
            self._check(lib.schedule_set_all(h.ptr, ptr(d.get("alpha")), ptr(d.get("gamma"))),
                        "revl_schedule_set_all", h)
            return
        self._set_kinds(h, arrays, lambda k, a: lib.schedule_set_kind(h.ptr, KINDS[k], ptr(a)),
                        "revl_schedule_set_kind")

    def _set_kinds(self, h, arrays, set_one, function):
        # each C call is all-or-nothing for its kind; put back the kinds already set when a
        # later one fails, so the whole call changes nothing
        old = [(k, self.get_kind(k) if k in self.kinds + self.driver_kinds else None)
               for k, _ in arrays]
        for i, (k, a) in enumerate(arrays):
            rc = set_one(k, a)
            if rc != 0:
                for kk, prev in old[:i]:
                    set_one(kk, np.ascontiguousarray(prev))
                self._check(rc, function, h)

    def fill(self, alpha=None, gamma=None, *, beta1=None, beta2=None, eps=None):
        """Every step and group of the given kinds to one value each (None = unchanged)."""
        h = self._handle()
        given = [(k, v) for k, v in (("alpha", alpha), ("gamma", gamma), ("beta1", beta1),
                                     ("beta2", beta2), ("eps", eps)) if v is not None]
        if [k for k, _ in given] == ["alpha", "gamma"] and "gamma" in self.kinds:
            self._check(lib.schedule_fill(h.ptr, float(alpha), float(gamma)),
                        "revl_schedule_fill", h)
            return
        self.set(**{k: np.full(self.shape, float(v)) for k, v in given})




# s.alpha, s.alpha_applied, ... for every kind the loaded library has (revl_hyper_name)
for _k in KINDS:
    setattr(Schedule, _k, _kind_property(_k))
    setattr(Schedule, _k + "_applied", _applied_property(_k))
del _k


class Hypergrad:
    """Gradients of the objective f(w_T) with respect to the run's hyperparameters: ``w0``
    (n_params,), ``meta`` (n_meta,) and one (n_steps, n_groups) array per kind of the schedule
    (momentum: ``alpha``, ``gamma``; Adam: ``alpha``, ``beta1``, ``beta2``, ``eps``; RMSprop:
    ``alpha``, ``gamma``, ``beta2``, ``eps``; AdamW: Adam's and ``weight_decay``), gamma and the
    betas at their applied values.
    ``kinds`` names them; asking for a kind the schedule lacks raises AttributeError."""

    def __init__(self, w0, alpha=None, gamma=None, meta=None, **others):
        self.w0, self.meta = w0, meta
        kinds = {"alpha": alpha, "gamma": gamma, **others}
        self.kinds = tuple(k for k in KINDS if kinds.get(k) is not None)
        for k in self.kinds:
            setattr(self, k, kinds[k])

    def __getattr__(self, name):            # only reached for attributes not set
        if name in KINDS:
            raise AttributeError(f"this hypergradient has no {name}: the schedule's kinds are "
                                 f"{', '.join(self.kinds)}")
        raise AttributeError(name)

    def __repr__(self):
        parts = " ".join(f"{k}{getattr(self, k).shape}" for k in ("w0",) + self.kinds + ("meta",))
        return f"<revl.Hypergrad {parts}>"


Progress = collections.namedtuple("Progress", "step phase seconds loss n_steps")
Progress.__doc__ = """Where a train or hypergrad stands (revl_trainer_set_progress): phase
"forward" (``step`` steps done, ``loss`` that step's training loss) or "reverse" (walked back to
``step``, loss NaN); seconds since the call began; n_steps of the schedule."""


def print_progress(p, file=None):
    """A progress line on stderr (``progress=True``): phase, step of n_steps, seconds, loss."""
    done = p.step if p.phase == "forward" else p.n_steps - p.step
    loss = f"  loss {p.loss:.6g}" if p.phase == "forward" else ""
    print(f"revl {p.phase}: {done}/{p.n_steps} steps, {p.seconds:.1f} s{loss}",
          file=file or sys.stderr, flush=True)


def _make_progress_trampoline(fn, state, n_steps, here):
    """``here``: a threading.local whose ``active`` is true on the thread running ``fn``."""
    def progress_trampoline(step, phase, seconds, loss, user):
        if state.pending is not None:
            return 1
        here.active = True
        try:
            p = Progress(int(step), "reverse" if phase else "forward", seconds, loss, n_steps)
            return 1 if fn(p) else 0
        except BaseException as e:  # noqa: B902
            return state.fail(e, "progress")
        finally:
            here.active = False
    return PROGRESS_FN(progress_trampoline)


class Trainer(Wrapper):
    """Exact training of ``model`` with the optimiser and hyperparameters of ``schedule``, and
    its exact reversal.

    ``frac_bits``: fixed-point fractional bits (|w|, |v| < 2^(63-frac_bits)); ``truncate``: 0,
    or K to keep only the last K steps' bits; ``threads``: 0 = library default (results are
    bit-identical for any value); ``progress``, ``progress_every``: see set_progress.  The
    trainer keeps the model and the schedule alive.
    """

    _kind = "trainer"

    def __init__(self, model, schedule, frac_bits=52, truncate=0, threads=0, progress=None,
                 progress_every=1):
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
        o.threads = as_int(threads, "threads", "Trainer", 0, INT_MAX)
        out = ctypes.c_void_p()
        rc = lib.trainer_create(ctypes.byref(out), mh.ptr, sh.ptr, ctypes.byref(o))
        check(rc, "revl_trainer_create")
        self._progress_state = CallbackState()
        self._progress_here = threading.local()   # .active: this thread is in set_progress's fn
        self._init_handle(_CHandle(out.value, lib.trainer_free, "trainer", deps=(mh, sh),
                                   states=(self._progress_state,)))
        self.model, self.schedule = model, schedule
        self.n_params, self.n_meta = model.n_params, model.n_meta
        self.n_steps, self.n_groups = schedule.n_steps, schedule.n_groups
        self.frac_bits, self.truncate, self.threads = frac_bits, o.truncate, o.threads
        if progress is not None:
            self.set_progress(progress, progress_every)

    def _describe(self):
        return f"n_params={self.n_params} n_steps={self.n_steps} n_groups={self.n_groups}"

    def _check(self, rc, function, h):
        check(rc, function, h.ptr, lib.trainer_last_error, h.states)

    def train(self, w0, meta=None, forward_only=False):
        """Run the n_steps exact steps from w0 (v0 = 0).  meta: the model's meta-parameters
        (required when it has any).  The schedule is read now.  ``forward_only=True``: the same
        steps and the same w_T bits, keeping nothing to reverse (no buffer growth, no
        checkpoints; hypergrad and save then raise StateError), for evaluations that will
        never be reversed."""
        h = self._handle()
        w0 = as_f64(w0, (self.n_params,), "w0", "Trainer.train")
        m = _meta_arg(self.n_meta, meta, "Trainer.train")
        call, name = ((lib.trainer_train_forward, "revl_trainer_train_forward") if forward_only
                      else (lib.trainer_train, "revl_trainer_train"))
        with _Busy((h,) + h.deps):
            rc = call(h.ptr, ptr(w0), ptr(m))
        self._check(rc, name, h)

    def set_progress(self, fn, every=1):
        """Call ``fn(p: Progress)`` every ``every`` steps (and after the last step) of train,
        train_resume and hypergrad; a true return value stops the call with CallbackError
        ("stopped by the progress callback at step k"), an exception stops it and is re-raised;
        either way the trainer must be trained again.  ``fn=True``: print_progress lines on
        stderr; None: no more calls."""
        h = self._handle()
        if fn is True:
            fn = print_progress
        if fn is not None and not callable(fn):
            raise InvalidError(_errors.ERR_INVALID, "progress must be callable, True or None",
                               "Trainer.set_progress")
        every = as_int(every, "every", "Trainer.set_progress", 1)
        tramp = None if fn is None else _make_progress_trampoline(fn, self._progress_state,
                                                                  self.n_steps,
                                                                  self._progress_here)
        # not from inside a callback of this trainer: its running trampoline would be freed
        with _Busy((h,)):
            c_fn = None if tramp is None else ctypes.cast(tramp, ctypes.c_void_p)
            rc = lib.trainer_set_progress(h.ptr, c_fn, every, None)
            self._check(rc, "revl_trainer_set_progress", h)
            h.keep = () if tramp is None else (tramp,)

    def save(self, path):
        """Write a checkpoint of the trajectory so far (docs/file-formats.md)."""
        h = self._handle()
        path = as_path(path, "path", "Trainer.save")
        with _Busy((h,)):   # another thread's train or set_checkpoint: refused
            rc = lib.trainer_save(h.ptr, path)
        self._check(rc, "revl_trainer_save", h)

    def load(self, path):
        """Read a checkpoint written by a trainer made the same way; then hypergrad (a file
        written after the last step), train_resume (one written mid-training) or
        hypergrad_resume (one written during hypergrad)."""
        h = self._handle()
        path = as_path(path, "path", "Trainer.load")
        with _Busy((h,)):
            rc = lib.trainer_load(h.ptr, path)
        self._check(rc, "revl_trainer_load", h)

    def train_resume(self):
        """Take the steps a loaded mid-training checkpoint has not taken yet."""
        h = self._handle()
        with _Busy((h,) + h.deps):
            rc = lib.trainer_train_resume(h.ptr)
        self._check(rc, "revl_trainer_train_resume", h)

    def set_checkpoint(self, path, every=1):
        """Save a checkpoint to path every `every` steps of training and every `every` steps
        hypergrad walks back (None: stop)."""
        h = self._handle()
        if path is not None:
            path = as_path(path, "path", "Trainer.set_checkpoint")
            every = as_int(every, "every", "Trainer.set_checkpoint", 1)
        # the in-use guard of train: a running train's saves read the path this call frees
        with _Busy((h,)):
            rc = lib.trainer_set_checkpoint(h.ptr, path, 0 if path is None else every)
        self._check(rc, "revl_trainer_set_checkpoint", h)

    @property
    def weights(self):
        """w as it stands now (a copy): w_T after train, w0 again after hypergrad."""
        h = self._handle()
        w = np.empty(self.n_params)
        rc = self._read(h, lambda: lib.trainer_weights(h.ptr, ptr(w)))
        self._check(rc, "revl_trainer_weights", h)
        return w

    def _read(self, h, call):
        """A reading call: answered in this trainer's own progress callback (the trainer stands
        between two steps, as in C), refused to another thread while a call runs (mid-step it
        would read half a step)."""
        if getattr(self._progress_here, "active", False):
            return call()
        with _Busy((h,)):   # another thread's train: refused, not read mid-step
            return call()

    def hypergrad(self, dfdw, dfdmeta=None):
        """Reverse the training exactly from dfdw = grad f(w_T) (and df/dmeta, default 0);
        returns a Hypergrad with .w0, .meta and one array per kind of the schedule (.alpha,
        .gamma for momentum; .alpha, .beta1, .beta2, .eps for Adam).  Afterwards the trainer holds w0
        again (w_{T-K} with truncate = K)."""
        h = self._handle()
        dfdw = as_f64(dfdw, (self.n_params,), "dfdw", "Trainer.hypergrad")
        dm = None
        if dfdmeta is not None:
            dm = as_f64(dfdmeta, (self.n_meta,), "dfdmeta", "Trainer.hypergrad")
        shape = (self.n_steps, self.n_groups)
        kinds = self.schedule.kinds + self.schedule._active_driver_kinds(h.deps[1])
        arrays = {k: np.empty(shape) for k in kinds}
        r = Hypergrad(np.empty(self.n_params), meta=np.zeros(self.n_meta), **arrays)
        dmeta = ptr(r.meta) if self.n_meta else None
        with _Busy((h,) + h.deps):
            if kinds == ("alpha", "gamma"):     # momentum: the original call, as always
                rc = lib.trainer_hypergrad(h.ptr, ptr(dfdw), ptr(dm) if self.n_meta else None,
                                           ptr(r.w0), ptr(r.alpha), ptr(r.gamma), dmeta)
                function = "revl_trainer_hypergrad"
            else:
                table = (ctypes.c_void_p * len(KINDS))(*[ptr(arrays[KIND_NAMES[c]])
                                                          if KIND_NAMES[c] in arrays else None
                                                          for c in range(len(KINDS))])
                rc = lib.trainer_hypergrad_kinds_n(h.ptr, ptr(dfdw),
                                                   ptr(dm) if self.n_meta else None, ptr(r.w0),
                                                   len(KINDS), table, dmeta)
                function = "revl_trainer_hypergrad_kinds_n"
        self._check(rc, function, h)
        return r

    def hypergrad_resume(self, kinds=None):
        """Finish the reverse pass of a checkpoint written during hypergrad (load it first):
        the Hypergrad the uninterrupted pass returns, bit for bit.  kinds: the names wanted
        (default every kind of the schedule); the interrupted pass must have computed them."""
        h = self._handle()
        sk = self.schedule.kinds + self.schedule._active_driver_kinds(h.deps[1])
        names = sk if kinds is None else tuple(kinds)
        for k in names:
            if k not in sk:
                raise InvalidError(_errors.ERR_INVALID, f"kinds: {k!r} is not a kind of this "
                                   f"schedule {self.schedule.kinds}", "Trainer.hypergrad_resume")
        shape = (self.n_steps, self.n_groups)
        arrays = {k: np.empty(shape) for k in names}
        r = Hypergrad(np.empty(self.n_params), meta=np.zeros(self.n_meta), **arrays)
        table = (ctypes.c_void_p * len(KINDS))(*[ptr(arrays[KIND_NAMES[c]])
                                                  if KIND_NAMES[c] in arrays else None
                                                  for c in range(len(KINDS))])
        with _Busy((h,) + h.deps):
            rc = lib.trainer_hypergrad_resume(h.ptr, ptr(r.w0), len(KINDS), table,
                                              ptr(r.meta) if self.n_meta else None)
        self._check(rc, "revl_trainer_hypergrad_resume", h)
        return r

    @property
    def stats(self):
        """dict: steps_done, buffer_bits, buffer_bytes, peak_bytes, last_loss."""
        h = self._handle()
        s = TrainerStats()
        s.struct_size = ctypes.sizeof(s)
        rc = self._read(h, lambda: lib.trainer_get_stats(h.ptr, ctypes.byref(s)))
        self._check(rc, "revl_trainer_get_stats", h)
        return {name: getattr(s, name) for name, _ in TrainerStats._fields_[1:]}
