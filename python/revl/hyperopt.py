"""HyperOpt: meta-iterations of train -> validation objective -> hypergradient -> update."""

import ctypes
import dataclasses
import warnings

import numpy as np

from . import _errors
from ._base import (INT_MAX, KINDS, OPTIMIZER_KINDS, OPTIMIZER_NAMES, CallbackState, Wrapper,
                    _Busy, _CHandle,
                    as_f64_broadcast, as_int, as_path, check, optimizer_code, ptr)
from ._errors import InvalidError
from ._lib import (OBJECTIVE_FN, REPORT_FN, HyperoptOptions, HyperoptReport, init_struct, lib)
from .core import Model, _view, _store, _EMPTY
from .data import Dataset

# REVL_LEARN_*: init_scale and meta (not kinds) as revl.h has them, each kind's bit from the
# library (revl_hyper_learn_bit), so that a kind added to the library needs no edit here
LEARN = {"alpha": 1, "gamma": 2, "init_scale": 4, "meta": 8}
if lib.has("hyper_learn_bit"):
    LEARN.update({k: lib.hyper_learn_bit(c) for k, c in KINDS.items()})
else:                               # a library older than the call: the bits it shipped with
    LEARN.update({k: b for k, b in (("beta1", 16), ("beta2", 32), ("eps", 64),
                                    ("weight_decay", 128)) if k in KINDS})
_ALL_LEARN = sum(LEARN.values())
# the kinds of each optimiser, in the library's order (revl_schedule_kinds, read at import)
_OPT_KINDS = OPTIMIZER_KINDS
METHODS = {"adam": 0, "sgd": 1}
CHAOS_ACTIONS = {"shrink": 0, "stop": 1}


@dataclasses.dataclass(frozen=True)
class Report:
    """One meta-iteration (revl_hyperopt_report)."""
    iteration: int
    train_loss: float
    valid_loss: float
    valid_accuracy: float
    hypergrad_norm: float
    step_size: float
    seconds: float
    chaos: bool

    @classmethod
    def _from_c(cls, r):
        return cls(int(r.iteration), r.train_loss, r.valid_loss, r.valid_accuracy,
                   r.hypergrad_norm, r.step_size, r.seconds, bool(r.chaos))

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Hyperparams:
    """Hyperparameters in natural units: alpha, gamma, beta1, beta2, eps, weight_decay
    (n_steps, n_groups; None for a kind the optimiser does not have), log_init_scales
    (n_groups,), meta (n_meta,)."""
    alpha: np.ndarray
    gamma: np.ndarray
    log_init_scales: np.ndarray
    meta: np.ndarray
    beta1: np.ndarray = None
    beta2: np.ndarray = None
    eps: np.ndarray = None
    weight_decay: np.ndarray = None
    clip: np.ndarray = None          # the driver's kind every optimiser has (+inf: no clipping)


def _option_names(opts):
    """The options with the enumerations as the names the constructor takes: method "adam",
    chaos_action "shrink", learn a list such as ["alpha", "gamma", "init_scale"]."""
    by_value = lambda table: {v: k for k, v in table.items()}  # noqa: E731
    opts["method"] = by_value(METHODS).get(opts["method"], opts["method"])
    opts["chaos_action"] = by_value(CHAOS_ACTIONS).get(opts["chaos_action"],
                                                         opts["chaos_action"])
    opts["learn"] = [name for name, bit in LEARN.items() if opts["learn"] & bit]
    opts["fresh_seed"] = bool(opts["fresh_seed"])
    return opts


def _learn_bits(learn):
    if isinstance(learn, (int, np.integer)):
        if learn < 0 or learn & ~_ALL_LEARN:
            raise InvalidError(_errors.ERR_INVALID, f"learn bits must be within 0..{_ALL_LEARN}, got "
                               f"{learn}", "HyperOpt")
        return int(learn)
    if isinstance(learn, str):
        learn = [x for x in learn.replace("|", ",").replace("+", ",").split(",") if x.strip()]
    bits = 0
    for name in learn:
        key = str(name).strip().lower().replace("-", "_")
        if key not in LEARN:
            raise InvalidError(_errors.ERR_INVALID, f"learn: unknown {name!r}; choose from "
                               f"{sorted(LEARN)}", "HyperOpt")
        bits |= LEARN[key]
    return bits


def _choice(value, table, name):
    key = str(value).lower()
    if key not in table:
        raise InvalidError(_errors.ERR_INVALID, f"{name} must be one of {sorted(table)}, got "
                           f"{value!r}", "HyperOpt")
    return table[key]


def _make_report_trampoline(fn, state, report_cls=None, fn_type=REPORT_FN):
    """A C report callback calling fn(report_cls._from_c(report)); a true result stops."""
    report_cls = report_cls or Report

    def report_trampoline(r_p, user):
        if state.pending is not None:
            return 1
        try:
            return 1 if fn(report_cls._from_c(r_p.contents)) else 0
        except BaseException as e:  # noqa: B902
            return state.fail(e, "report")
    return fn_type(report_trampoline)


def _make_objective_trampoline(fn, n, nm, state):
    vec_n = ctypes.c_double * n
    vec_m = ctypes.c_double * nm if nm else None

    def objective_trampoline(w_p, meta_p, f_p, dfdw_p, dfdmeta_p, user):
        if state.pending is not None:
            return 1
        try:
            w = _view(vec_n, w_p, False)
            meta = _view(vec_m, meta_p, False) if (nm and meta_p) else _EMPTY
            res = fn(w, meta)
            try:
                f, dfdw, dfdmeta = res
            except (TypeError, ValueError):
                raise InvalidError(_errors.ERR_INVALID, "the objective callback must return "
                                   "(f, dfdw, dfdmeta or None)", "objective") from None
            _store(_view(vec_n, dfdw_p, True), dfdw, "dfdw", "objective")
            if dfdmeta_p and nm:
                out = _view(vec_m, dfdmeta_p, True)
                if dfdmeta is None:
                    out[...] = 0.0
                else:
                    _store(out, dfdmeta, "dfdmeta", "objective")
            ctypes.c_double.from_address(f_p).value = float(f)
            return 0
        except BaseException as e:  # noqa: B902
            return state.fail(e, "objective")
    return OBJECTIVE_FN(objective_trampoline)


class HyperOpt(Wrapper):
    """Learns the inner optimiser's hyperparameters (per step and group), log init scales (per
    group) and the model's meta-parameters by gradient steps on the hypergradient of the
    validation loss.

    ``optimizer``: the inner optimiser, 'momentum' (default; alpha, gamma), 'adam' (alpha,
    beta1, beta2, eps) or 'rmsprop' (alpha, gamma, beta2, eps); it starts at that optimiser's
    schedule defaults (momentum: alpha = e^-1, gamma = 0.5).  Learned coordinates: log alpha,
    logit gamma / beta1 / beta2, log eps.

    ``HyperOpt(model, valid, n_steps, **options)``: the objective is the model's mean
    cross-entropy on ``valid`` (a built-in model), or ``objective(w, meta) -> (f, dfdw,
    dfdmeta or None)`` (then valid may be None).  Options, default = the library's:
    learn ('alpha', 'gamma', 'beta1', 'beta2', 'eps', 'weight_decay', 'clip', 'init_scale', 'meta'
    as a list, a comma-separated string or bits; a learned clip starts from set(clip=...)),
    method ('adam' | 'sgd'), step_size, momentum, adam_beta1, adam_beta2, adam_eps, iterations,
    fresh_seed, seed, chaos_factor, chaos_action ('shrink' | 'stop'), frac_bits, threads.
    ``report(r: Report)`` is called after each meta-iteration of run(); a true return value stops
    run().  Exceptions in report or objective stop the run and are re-raised by step()/run().
    """

    _kind = "hyper-optimiser"

    def __init__(self, model, valid=None, n_steps=100, *, optimizer="momentum", learn=None,
                 method=None,
                 step_size=None, momentum=None, adam_beta1=None, adam_beta2=None, adam_eps=None,
                 iterations=None, fresh_seed=None, seed=None, chaos_factor=None,
                 chaos_action=None, report=None, objective=None, frac_bits=None, threads=None):
        if not isinstance(model, Model):
            raise InvalidError(_errors.ERR_INVALID, f"model must be a revl.Model, got "
                               f"{type(model).__name__}", "HyperOpt")
        if valid is not None and not isinstance(valid, Dataset):
            raise InvalidError(_errors.ERR_INVALID, f"valid must be a revl.Dataset or None, got "
                               f"{type(valid).__name__}", "HyperOpt")
        if valid is None and objective is None:
            raise InvalidError(_errors.ERR_INVALID, "give a validation data set or an objective "
                               "callable", "HyperOpt")
        n_steps = as_int(n_steps, "n_steps", "HyperOpt", 1)
        opt = optimizer_code(optimizer, "HyperOpt")
        mh = model._handle()
        vh = None if valid is None else valid._handle()
        o = init_struct(HyperoptOptions, lib.hyperopt_options_init)
        if learn is not None:
            o.learn = _learn_bits(learn)
        if method is not None:
            o.method = _choice(method, METHODS, "method")
        if chaos_action is not None:
            o.chaos_action = _choice(chaos_action, CHAOS_ACTIONS, "chaos_action")
        for name, value in (("step_size", step_size), ("momentum", momentum),
                            ("adam_beta1", adam_beta1), ("adam_beta2", adam_beta2),
                            ("adam_eps", adam_eps), ("chaos_factor", chaos_factor)):
            if value is not None:
                setattr(o, name, float(value))
        for name, value, maximum in (("iterations", iterations, 2**64 - 1),
                                     ("frac_bits", frac_bits, 2**32 - 1),
                                     ("threads", threads, INT_MAX)):
            if value is not None:
                setattr(o, name, as_int(value, name, "HyperOpt", 0, maximum))
        if fresh_seed is not None:
            o.fresh_seed = 1 if fresh_seed else 0
        if seed is not None:
            o.seed = as_int(seed, "seed", "HyperOpt")
        state = CallbackState()
        keep = [state]
        if report is not None:
            if not callable(report):
                raise InvalidError(_errors.ERR_INVALID, "report must be callable", "HyperOpt")
            keep.append(_make_report_trampoline(report, state))
            o.report = ctypes.cast(keep[-1], ctypes.c_void_p).value
        if objective is not None:
            if not callable(objective):
                raise InvalidError(_errors.ERR_INVALID, "objective must be callable",
                                   "HyperOpt")
            keep.append(_make_objective_trampoline(objective, model.n_params, model.n_meta,
                                                   state))
            o.objective = ctypes.cast(keep[-1], ctypes.c_void_p).value
        out = ctypes.c_void_p()
        with _Busy((mh,)):
            rc = lib.hyperopt_create_for(ctypes.byref(out), mh.ptr,
                                         None if vh is None else vh.ptr, int(n_steps), opt,
                                         ctypes.byref(o))
        check(rc, "revl_hyperopt_create_for", states=(state,) + mh.states)
        deps = (mh,) if vh is None else (mh, vh)
        self._init_handle(_CHandle(out.value, lib.hyperopt_free, "hyper-optimiser", deps=deps,
                                   keep=keep, states=(state,)))
        self.model, self.valid = model, valid
        self.n_steps = int(lib.hyperopt_n_steps(out.value))
        self.n_groups = int(lib.hyperopt_n_groups(out.value))
        self.n_meta = model.n_meta
        self.optimizer = OPTIMIZER_NAMES[lib.hyperopt_optimizer(out.value)]
        self.kinds = _OPT_KINDS[self.optimizer]
        # the driver's kinds (clip), which the optimiser's list lacks: those the library reads
        probe = np.empty((self.n_steps, self.n_groups))
        self.driver_kinds = tuple(k for k in KINDS if k not in self.kinds and
                                  lib.hyperopt_get_kind(out.value, 0, KINDS[k], ptr(probe)) == 0)
        self.options = _option_names({name: getattr(o, name) for name, _ in HyperoptOptions._fields_
                                      if name not in ("struct_size", "report", "report_user",
                                                      "objective", "objective_user",
                                                      "allocator")})

    def _describe(self):
        return f"n_steps={self.n_steps} n_groups={self.n_groups}"

    def _check(self, rc, function, h):
        check(rc, function, h.ptr, lib.hyperopt_last_error, h.states)

    def _warn(self, h):
        """The library's "warning: ..." notes (e.g. a first run no better than chance) as a
        RuntimeWarning; other notes (chaos guard, stopped by report) stay in last_error."""
        msg = lib.hyperopt_last_error(h.ptr).decode(errors="replace")
        if msg.startswith("warning:"):
            warnings.warn(f"revl.HyperOpt: {msg[len('warning:'):].strip()}", RuntimeWarning,
                          stacklevel=3)

    def step(self):
        """One meta-iteration; returns its Report (the report callback is not called)."""
        h = self._handle()
        r = HyperoptReport()
        r.struct_size = ctypes.sizeof(r)
        with _Busy((h,) + h.deps):
            rc = lib.hyperopt_step(h.ptr, ctypes.byref(r))
        self._check(rc, "revl_hyperopt_step", h)
        self._warn(h)
        return Report._from_c(r)

    def run(self):
        """``iterations`` meta-iterations, or until report returns true or the chaos guard
        stops."""
        h = self._handle()
        with _Busy((h,) + h.deps):
            rc = lib.hyperopt_run(h.ptr)
        self._check(rc, "revl_hyperopt_run", h)
        self._warn(h)

    def get_kind(self, kind, best=False):
        """One kind's current (or best-so-far) values, (n_steps, n_groups)."""
        h = self._handle()
        self._need_kind(kind, "revl_hyperopt_get_kind")
        out = np.empty((self.n_steps, self.n_groups))
        self._check(lib.hyperopt_get_kind(h.ptr, 1 if best else 0, KINDS[kind], ptr(out)),
                    "revl_hyperopt_get_kind", h)
        return out

    def _need_kind(self, kind, function):
        if kind not in KINDS:
            raise InvalidError(_errors.ERR_INVALID, f"unknown hyperparameter kind {kind!r}; "
                               f"choose from {list(KINDS)}", function)
        if kind not in self.kinds + self.driver_kinds:
            # the C getter takes a const handle and so cannot keep a message: say it here
            raise InvalidError(_errors.ERR_INVALID, f"this {self.optimizer} hyper-optimiser has "
                               f"no {kind} (its kinds: {', '.join(self.kinds)})", function)

    def get(self, best=False):
        """Current hyperparameters (best=True: those of the lowest validation loss so far);
        the kinds the optimiser lacks are None."""
        h = self._handle()
        # not held in use: reading is what a report callback may do while run() holds the handle
        p = Hyperparams(None, None, np.empty(self.n_groups), np.empty(self.n_meta))
        self._check(lib.hyperopt_get(h.ptr, 1 if best else 0, None, None,
                                     ptr(p.log_init_scales),
                                     ptr(p.meta) if self.n_meta else None),
                    "revl_hyperopt_get", h)
        for k in self.kinds + self.driver_kinds:
            setattr(p, k, self.get_kind(k, best))
        return p

    def set(self, alpha=None, gamma=None, log_init_scales=None, meta=None, *, beta1=None,
            beta2=None, eps=None, weight_decay=None, **more):
        """Set hyperparameters in natural units (None = unchanged; scalars broadcast); more: any
        other kind by its library name, e.g. clip (a learned clip must start finite).  On error
        nothing changes."""
        h = self._handle()
        shape = (self.n_steps, self.n_groups)
        for k in more:
            self._need_kind(k, "revl_hyperopt_set_kind")
        kinds = [(k, as_f64_broadcast(v, shape, k, "HyperOpt.set"))
                 for k, v in (("alpha", alpha), ("gamma", gamma), ("beta1", beta1),
                              ("beta2", beta2), ("eps", eps), ("weight_decay", weight_decay),
                              *more.items())
                 if v is not None]
        s = None if log_init_scales is None else as_f64_broadcast(
            log_init_scales, (self.n_groups,), "log_init_scales", "HyperOpt.set")
        m = None
        if meta is not None:
            m = as_f64_broadcast(meta, (self.n_meta,), "meta", "HyperOpt.set")
        for k, _ in kinds:
            self._need_kind(k, "revl_hyperopt_set_kind")
        # each C call is all-or-nothing: put back what was set when a later call fails
        old = [(k, self.get_kind(k)) for k, _ in kinds]
        done = 0
        # held in use: from inside the objective (or another thread, during step/run) the new
        # values would replace those the meta-iteration is using
        busy = _Busy((h,))
        busy.__enter__()
        try:
            for k, a in kinds:
                self._check(lib.hyperopt_set_kind(h.ptr, KINDS[k], ptr(a)),
                            "revl_hyperopt_set_kind", h)
                done += 1
            if s is not None or m is not None:
                self._check(lib.hyperopt_set(h.ptr, None, None, ptr(s),
                                             ptr(m) if self.n_meta else None),
                            "revl_hyperopt_set", h)
        except Exception:
            for k, prev in old[:done]:
                lib.hyperopt_set_kind(h.ptr, KINDS[k], ptr(prev))
            raise
        finally:
            busy.__exit__(None, None, None)

    def save(self, path, best=True):
        """Write the best (or current) hyperparameters as plain text."""
        h = self._handle()
        path = as_path(path, "path", "HyperOpt.save")
        rc = lib.hyperopt_save(h.ptr, 1 if best else 0, path)  # a read, like get()
        self._check(rc, "revl_hyperopt_save", h)

    def load(self, path):
        """Read hyperparameters written by save (sizes must match)."""
        h = self._handle()
        path = as_path(path, "path", "HyperOpt.load")
        with _Busy((h,)):
            rc = lib.hyperopt_load(h.ptr, path)
        self._check(rc, "revl_hyperopt_load", h)

    def checkpoint_save(self, path):
        """Write the whole state between meta-iterations (binary; docs/file-formats.md)."""
        h = self._handle()
        path = as_path(path, "path", "HyperOpt.checkpoint_save")
        self._check(lib.hyperopt_checkpoint_save(h.ptr, path), "revl_hyperopt_checkpoint_save", h)

    def checkpoint_load(self, path):
        """Continue from a checkpoint of a hyper-optimiser made the same way."""
        h = self._handle()
        path = as_path(path, "path", "HyperOpt.checkpoint_load")
        with _Busy((h,)):   # a step or run on another thread: its state is not replaced mid-way
            rc = lib.hyperopt_checkpoint_load(h.ptr, path)
        self._check(rc, "revl_hyperopt_checkpoint_load", h)

    @property
    def iterations_done(self):
        """Meta-iterations done (counted on across checkpoint_load)."""
        return lib.hyperopt_iterations_done(self._handle().ptr)
