"""Handle ownership, error checking and array conversion shared by the wrapper classes.

Ownership.  Each C object is owned by a private ``_CHandle``.  The public object (Model,
Trainer, ...) holds its handle; an object the C side keeps a pointer to (a trainer's model and
schedule, an MLP's data set, a hyper-optimiser's model and data) is kept alive by the dependent
handle holding the dependency's handle.  ``close()`` drops the public object's claim: the C
object is freed at once when nothing else uses it, and otherwise as soon as the last dependent is
freed.  A ``weakref.finalize`` on each handle frees it when it becomes garbage (not at
interpreter exit, when the process's memory goes back to the system anyway and the order of
finalizers is no longer ours).
"""

import ctypes
import os
import threading
import weakref

import numpy as np

from . import _errors
from ._errors import InvalidError, StateError, error_for
from ._lib import lib, strerror


def _release(free, ptr, user_counts):
    free(ptr)
    for c in user_counts:
        c[0] -= 1


class _CHandle:
    """Owns one C object. ``deps``: handles this one needs alive; ``keep``: Python objects the C
    side points into (callback function objects); ``states``: callback states whose pending
    exceptions must be checked after calls on this handle (its own and its dependencies')."""

    __slots__ = ("ptr", "kind", "deps", "keep", "states", "users", "lock", "_fin",
                 "__weakref__")

    def __init__(self, ptr, free, kind, deps=(), keep=(), states=()):
        self.ptr = ptr
        self.kind = kind
        self.deps = tuple(deps)
        self.keep = tuple(keep)
        st = list(states)
        for d in self.deps:
            st.extend(s for s in d.states if s not in st)
        self.states = tuple(st)
        self.users = [0]          # handles that depend on this one and are not freed yet
        for d in self.deps:
            d.users[0] += 1
        self.lock = threading.Lock()
        # The finalizer's arguments must not reference this handle (or it would never die):
        # the free function, an int and the dependencies' counters only.
        self._fin = weakref.finalize(self, _release, free, ptr,
                                     tuple(d.users for d in self.deps))
        self._fin.atexit = False


class _Busy:
    """Non-blocking locks on the handles a call uses: a callback re-entering a handle that is
    running, or a second thread using it, get StateError instead of corrupting it."""

    __slots__ = ("handles", "taken")

    def __init__(self, handles):
        self.handles = handles
        self.taken = []

    def __enter__(self):
        for h in self.handles:
            if not h.lock.acquire(False):
                for t in self.taken:
                    t.lock.release()
                self.taken = []
                raise StateError(_errors.ERR_STATE,
                                 f"the {h.kind} is in use by another call (a callback calling "
                                 f"back into it, or another thread: a handle is for one thread "
                                 f"at a time)")
            self.taken.append(h)
        return self

    def __exit__(self, *exc):
        for t in self.taken:
            t.lock.release()
        self.taken = []
        return False


class CallbackState:
    """What a callback trampoline shares with the caller: the exception it caught."""

    __slots__ = ("pending", "where")

    def __init__(self):
        self.pending = None
        self.where = None

    def fail(self, exc, where):
        if self.pending is None:
            self.pending = exc
            self.where = where
        return 1


def raise_pending(states, function):
    """Re-raise the first exception a callback caught during the C call, with its traceback."""
    exc = None
    for s in states:
        if s.pending is not None:
            if exc is None:
                exc, where = s.pending, s.where
            s.pending = None
    if exc is not None:
        if hasattr(exc, "add_note"):
            exc.add_note(f"(raised in the revl {where} callback, during {function})")
        raise exc.with_traceback(exc.__traceback__)


def check(rc, function, handle=None, last_error=None, states=()):
    """Raise for a failed C call: first any exception a Python callback raised, then the status
    with the handle's last_error message."""
    raise_pending(states, function)
    if rc:
        msg = None
        if handle is not None and last_error is not None:
            raw = last_error(handle)
            msg = raw.decode("utf-8", "replace") if raw else None
        raise error_for(rc, msg or strerror(rc), function)


class Wrapper:
    """Base of the public classes: holds the handle, context manager, close()."""

    _kind = "object"

    def _init_handle(self, h):
        self._h = h

    @property
    def closed(self):
        return getattr(self, "_h", None) is None

    def _handle(self):
        h = getattr(self, "_h", None)
        if h is None:
            raise StateError(_errors.ERR_STATE, f"the {self._kind} is closed")
        return h

    def close(self):
        """Release this object's C handle.  Freed at once unless another revl object still
        uses it (e.g. a trainer using this model), then when that one goes.  Idempotent."""
        self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        state = "closed" if self.closed else f"at 0x{self._h.ptr:x}"
        return f"<revl.{type(self).__name__} {self._describe()} {state}>"

    def _describe(self):
        return ""


# ------------------------------------------------------------------ integers and paths
# ctypes masks a Python int into a C integer silently (2**64 + 2 becomes 2, -1 becomes
# 2**64 - 1), so every integer that crosses into C is range-checked here first.
SIZE_MAX = 2**64 - 1
INT_MAX = 2**31 - 1


def as_int(x, name, function, minimum=0, maximum=SIZE_MAX):
    """x as a Python int in [minimum, maximum] (an int or numpy integer, not a bool)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise InvalidError(_errors.ERR_INVALID,
                           f"{name} must be an integer, got {x!r}", function)
    if not minimum <= int(x) <= maximum:
        raise InvalidError(_errors.ERR_INVALID,
                           f"{name} must be in [{minimum}, {maximum}], got {int(x)}", function)
    return int(x)


def as_path(path, name, function):
    """A file system path as bytes for C, refusing a NUL byte (C would cut the path there)."""
    b = os.fsencode(path)
    if b"\0" in b:
        raise InvalidError(_errors.ERR_INVALID,
                           f"{name} contains a NUL byte: {path!r}", function)
    return b


# ------------------------------------------------------------------ arrays
F64 = np.dtype(np.float64)
_NUMERIC = "biuf"


def as_f64(x, shape, name, function):
    """x as a C-contiguous float64 array of exactly this shape (no copy when it already is)."""
    a = np.asarray(x)
    if a.dtype.kind not in _NUMERIC:
        raise InvalidError(_errors.ERR_INVALID,
                           f"{name} must be a real numeric array, got dtype {a.dtype}", function)
    if a.shape != tuple(shape):
        raise InvalidError(_errors.ERR_INVALID,
                           f"{name} has shape {a.shape}, expected {tuple(shape)}", function)
    return np.ascontiguousarray(a, dtype=F64)


def as_f64_broadcast(x, shape, name, function):
    """Like as_f64 but a scalar or any array broadcastable to shape is accepted."""
    a = np.asarray(x)
    if a.dtype.kind not in _NUMERIC:
        raise InvalidError(_errors.ERR_INVALID,
                           f"{name} must be a real numeric array, got dtype {a.dtype}", function)
    try:
        a = np.broadcast_to(a, tuple(shape))
    except ValueError:
        raise InvalidError(_errors.ERR_INVALID,
                           f"{name} has shape {a.shape}, expected {tuple(shape)} (or a shape "
                           f"that broadcasts to it)", function) from None
    return np.ascontiguousarray(a, dtype=F64)


def as_offsets(offsets, name, function):
    a = np.asarray(offsets)
    if a.ndim != 1 or a.size < 2 or a.dtype.kind not in "iu":
        raise InvalidError(_errors.ERR_INVALID,
                           f"{name} must be a 1-D sequence of at least 2 integers (n_groups+1 "
                           f"group boundaries), got {offsets!r}", function)
    if a[0] != 0 or np.any(np.diff(a) <= 0):
        raise InvalidError(_errors.ERR_INVALID,
                           f"{name} must start at 0 and increase strictly, got {a.tolist()}",
                           function)
    return np.ascontiguousarray(a, dtype=np.uintp)


def ptr(a):
    """Address of an array's data, or None for None."""
    return None if a is None else a.ctypes.data


def version():
    """The linked library's version string, e.g. '0.1.0'."""
    return lib.version_string().decode()


def version_number():
    """MAJOR*10000 + MINOR*100 + PATCH of the linked library."""
    return int(lib.version_number())


def blas_threads(n=0):
    """The BLAS library's thread count for the whole process, on which the built-in MLP's dense
    products run: ``n > 0`` sets it, ``0`` only asks.  Returns the count before the call, or 0
    when the BLAS library offers no such control (nothing changed).  The MLP's bits depend on the
    count, so fix it for results that reproduce; which count is faster depends on the machine
    and its load (docs/performance.md, "BLAS threads").  Numpy on Debian loads the same OpenBLAS,
    so this is numpy's count too.  Call it before work starts, from one thread."""
    n = as_int(n, "n", "revl_blas_threads", 0, INT_MAX)
    return int(lib.blas_threads(n))


GAMMA_GRID = 2.0 ** -16   # gamma is applied as the nearest multiple of this


def fixed_round(w, frac_bits=52):
    """A copy of w rounded to the fixed-point grid of frac_bits fractional bits: the w0 that
    Trainer(frac_bits=...) really starts from and returns to after hypergrad (so
    ``t.weights == fixed_round(w0)`` holds bit for bit, and ``== w0`` only when w0 is on the
    grid).  Start finite differences from it (docs/checking.md).  RangeError for a value that
    is not finite or too large for the grid."""
    x = np.array(w, dtype=F64, order="C", copy=True)
    if not 1 <= int(frac_bits) <= 62:
        raise InvalidError(_errors.ERR_INVALID, f"frac_bits must be within 1..62, got {frac_bits}",
                           "revl_fixed_round")
    rc = lib.fixed_round(int(frac_bits), ptr(x), x.size)
    if rc:
        k = 63 - int(frac_bits)
        bad = np.flatnonzero(~(np.abs(x.ravel()) < 2.0 ** k))
        v = x.ravel()[bad[0]] if bad.size else None
        # each kind of value said once: not "w[0] = nan is not finite or outside ..."
        grid = f"outside the fixed-point range |w| < 2^{k}"
        what = (f"a value is {grid}" if v is None
                else f"w[{bad[0]}] is NaN" if np.isnan(v)
                else f"w[{bad[0]}] = {v!r} is not finite" if np.isinf(v)
                else f"w[{bad[0]}] = {v!r} is {grid}")
        raise error_for(rc, what, "revl_fixed_round")
    return x


def _enum_names(name_fn):
    """{name: code} of a revl enum, read from the loaded library (its *_name function returns
    NULL past the last value), so that an optimiser or kind added to the library needs no edit
    here."""
    names = {}
    while True:
        name = name_fn(len(names))
        if not name:
            return names
        names[name.decode()] = len(names)


OPTIMIZERS = _enum_names(lib.optimizer_name)   # revl_optimizer: momentum, adam, rmsprop, ...
KINDS = _enum_names(lib.hyper_name)            # revl_hyper: alpha, gamma, beta1, beta2, eps, ...
OPTIMIZER_NAMES = {v: k for k, v in OPTIMIZERS.items()}
KIND_NAMES = {v: k for k, v in KINDS.items()}


def _optimizer_kinds(code):
    """The kind names of an optimiser, in the library's order, from a one-step schedule."""
    out = ctypes.c_void_p()
    off = np.array([0, 1], dtype=np.uintp)
    rc = lib.schedule_create_for(ctypes.byref(out), code, 1, 1, off.ctypes.data, None)
    if rc:
        raise error_for(rc, f"cannot list the kinds of optimizer {code}", "revl_schedule_create_for")
    try:
        codes = (ctypes.c_int * int(lib.schedule_kinds(out.value, None)))()
        lib.schedule_kinds(out.value, ctypes.addressof(codes))
        return tuple(KIND_NAMES[c] for c in codes)
    finally:
        lib.schedule_free(out.value)


OPTIMIZER_KINDS = {name: _optimizer_kinds(code) for name, code in OPTIMIZERS.items()}


def optimizer_code(optimizer, function):
    """revl_optimizer of a name ('momentum', 'adam', 'rmsprop'), or InvalidError."""
    key = str(optimizer).lower()
    if key not in OPTIMIZERS:
        raise InvalidError(_errors.ERR_INVALID, f"optimizer must be one of "
                           f"{sorted(OPTIMIZERS)}, got {optimizer!r}", function)
    return OPTIMIZERS[key]


def kind_code(kind, function):
    """revl_hyper of a name ('alpha', 'gamma', 'beta1', 'beta2', 'eps'), or InvalidError."""
    key = str(kind).lower()
    if key not in KINDS:
        raise InvalidError(_errors.ERR_INVALID, f"unknown hyperparameter kind {kind!r}; choose "
                           f"from {list(KINDS)}", function)
    return KINDS[key]


def hyper_applied(kind, value):
    """The value the library applies for a requested one of a kind: gamma on the 2^-16 grid,
    beta1 and beta2 on the 2^-24 grid, alpha and eps as they are; NaN outside the kind's range.
    Works elementwise on arrays."""
    k = kind_code(kind, "hyper_applied")
    x = np.asarray(value, dtype=F64)
    if x.ndim == 0:
        return float(lib.hyper_applied(k, float(x)))
    return np.vectorize(lambda v: lib.hyper_applied(k, float(v)), otypes=[F64])(x)


def beta_applied(beta):
    """The beta (Adam's beta1 or beta2, RMSprop's beta2) the library applies for a requested
    one: round(beta * 2^24) / 2^24 (NaN outside [2^-24, 1 - 2^-24]).  Elementwise on arrays."""
    return hyper_applied("beta1", beta)


def gamma_applied(gamma):
    """The momentum the library applies for a requested gamma: the nearest n/2^16 (NaN outside
    [2^-16, 1]).  Works elementwise on arrays."""
    g = np.asarray(gamma, dtype=F64)
    if g.ndim == 0:
        return float(lib.gamma_applied(float(g)))
    return np.vectorize(lambda x: lib.gamma_applied(float(x)), otypes=[F64])(g)
