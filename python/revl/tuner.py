"""Family, Tuner, tune: revl's default way to tune (docs/hyperopt.md).

A schedule family maps a short vector theta to every hyperparameter of a training run (in the
hyper-optimiser's unconstrained coordinates z); the tuner searches a compact family's box with
forward-only trainings, then refines the best point with exact hypergradients in a finer family.
"""

import ctypes
import dataclasses
import os
import sys

import numpy as np

from . import _errors
from ._base import (INT_MAX, KINDS, OPTIMIZER_NAMES, CallbackState, Wrapper, _Busy, _CHandle,
                    as_f64, as_int, check, optimizer_code, ptr)
from ._errors import InvalidError
from ._lib import (FAMILY_MAP_FN, FAMILY_VJP_FN, TUNER_REPORT_FN, FamilyOptions, TunerOptions,
                   TunerReport as _CReport, TunerResult as _CResult, init_struct, lib)
from .core import Model, Schedule, _view
from .data import Dataset
from .hyperopt import (_OPT_KINDS, _learn_bits, _make_objective_trampoline,
                       _make_report_trampoline)

FAMILY_TYPES = {"per_step": 0, "windows": 1, "shape": 2, "user": 3}   # revl_family_type
SHAPES = {"constant": 0, "linear": 1, "cosine": 2}                    # revl_shape
STRATEGIES = {"search_then_refine": 0, "search": 1, "refine": 2}      # revl_tune_strategy
REFINE_METHODS = {"backtrack": 0, "adam": 1}                          # revl_refine_method
PHASES = {0: "search", 1: "refine", 2: "done"}                        # REVL_TUNE_PHASE_*


def _choice(value, table, name, function):
    key = str(value).lower().replace("-", "_")
    if key not in table:
        raise InvalidError(_errors.ERR_INVALID, f"{name} must be one of {sorted(table)}, got "
                           f"{value!r}", function)
    return table[key]


def _callable(fn, name, function):
    if not callable(fn):
        raise InvalidError(_errors.ERR_INVALID, f"{name} must be callable, got "
                           f"{type(fn).__name__}", function)


# ------------------------------------------------------------------ families
def _store_result(out_p, n, value, what, callback):
    """Copy a family callback's result into the C buffer of n doubles at out_p."""
    a = np.asarray(value)
    if a.dtype.kind not in "biuf" or a.shape != (n,):
        raise InvalidError(_errors.ERR_INVALID, f"the family's {callback} callback returned "
                           f"{what} of shape {a.shape} dtype {a.dtype}, expected {n} real "
                           f"numbers", callback)
    _view(ctypes.c_double * n, out_p, True)[...] = a


def _make_map_trampoline(fn, n_theta, n_z_ref, state):
    vec = ctypes.c_double * n_theta

    def map_trampoline(theta_p, z_p, user):
        if state.pending is not None:
            return 1
        try:
            _store_result(z_p, n_z_ref[0], fn(_view(vec, theta_p, False).copy()), "z", "map")
            return 0
        except BaseException as e:  # noqa: B902
            return state.fail(e, "family map")
    return FAMILY_MAP_FN(map_trampoline)


def _make_vjp_trampoline(fn, n_theta, n_z_ref, state):
    vec = ctypes.c_double * n_theta

    def vjp_trampoline(theta_p, dz_p, dtheta_p, user):
        if state.pending is not None:
            return 1
        try:
            theta = _view(vec, theta_p, False).copy()
            dz = _view(ctypes.c_double * n_z_ref[0], dz_p, False).copy()
            _store_result(dtheta_p, n_theta, fn(theta, dz), "dtheta", "vjp")
            return 0
        except BaseException as e:  # noqa: B902
            return state.fail(e, "family vjp")
    return FAMILY_VJP_FN(vjp_trampoline)


class Family(Wrapper):
    """A schedule family: theta (n_theta numbers) -> z (n_z numbers: for each kind of the
    optimiser a step-major (n_steps, n_groups) block of log alpha / logit gamma / logit beta1 /
    logit beta2 / log eps, then n_groups log init scales, then n_meta meta-parameters, then,
    when learn has "clip", a (n_steps, n_groups) block of log clip).

    ``type``: 'per_step' (the library's default: a value per step, group and learned kind),
    'windows' (a value per ``window`` steps), 'shape' (log alpha = a + log shape(t) + c[layer];
    ``shape`` 'constant' | 'linear' | 'cosine', ``warmup`` steps, ``n_layers`` multipliers,
    ``group_layer`` the multiplier of each group) or 'user' (``map(theta) -> z`` and
    ``vjp(theta, dz) -> dtheta`` callables, ``n_theta``).  ``learn``: the kinds theta controls
    (as HyperOpt's: 'alpha', 'gamma', 'beta1', 'beta2', 'eps', 'init_scale', 'meta'); the rest
    come from ``base``.  Options left as None keep the library's defaults."""

    _kind = "family"

    def __init__(self, optimizer, n_steps, n_groups, n_meta=0, type="per_step", *, learn=None,
                 window=None, shape=None, warmup=None, n_layers=None, group_layer=None,
                 map=None, vjp=None, n_theta=None):
        fn = "Family"
        opt = optimizer_code(optimizer, fn)
        n_steps = as_int(n_steps, "n_steps", fn, 1)
        n_groups = as_int(n_groups, "n_groups", fn, 1)
        n_meta = as_int(n_meta, "n_meta", fn)
        o = init_struct(FamilyOptions, lib.family_options_init)
        o.type = _choice(type, FAMILY_TYPES, "type", fn)
        if learn is not None:
            o.learn = _learn_bits(learn)
        if window is not None:
            o.window = as_int(window, "window", fn, 1)
        if shape is not None:
            o.shape = _choice(shape, SHAPES, "shape", fn)
        if warmup is not None:
            o.warmup = as_int(warmup, "warmup", fn)
        if n_layers is not None:
            o.n_layers = as_int(n_layers, "n_layers", fn)
        layers = None
        if group_layer is not None:
            layers = np.asarray(group_layer)
            if layers.shape != (n_groups,) or layers.dtype.kind not in "iu" or (
                    layers.size and layers.min() < 0):
                raise InvalidError(_errors.ERR_INVALID, f"group_layer must be {n_groups} "
                                   f"non-negative integers (one per group), got "
                                   f"{group_layer!r}", fn)
            layers = np.ascontiguousarray(layers, dtype=np.uintp)
            o.group_layer = layers.ctypes.data        # copied by revl_family_create
        state = CallbackState()
        keep = [state]
        user = o.type == FAMILY_TYPES["user"]
        if user:
            if map is None or vjp is None or n_theta is None:
                raise InvalidError(_errors.ERR_INVALID, "a 'user' family needs map, vjp and "
                                   "n_theta", fn)
            _callable(map, "map", fn)
            _callable(vjp, "vjp", fn)
            o.n_theta = as_int(n_theta, "n_theta", fn, 1)
            n_z_ref = [0]       # known once created; the callbacks run only after that
            keep.append(_make_map_trampoline(map, o.n_theta, n_z_ref, state))
            o.map = ctypes.cast(keep[-1], ctypes.c_void_p).value
            keep.append(_make_vjp_trampoline(vjp, o.n_theta, n_z_ref, state))
            o.vjp = ctypes.cast(keep[-1], ctypes.c_void_p).value
        elif map is not None or vjp is not None or n_theta is not None:
            raise InvalidError(_errors.ERR_INVALID, f"map, vjp and n_theta are for type='user' "
                               f"families, not {type!r}", fn)
        out = ctypes.c_void_p()
        rc = lib.family_create(ctypes.byref(out), opt, n_steps, n_groups, n_meta,
                               ctypes.byref(o))
        check(rc, "revl_family_create", states=(state,))
        self._init_handle(_CHandle(out.value, lib.family_free, "family", keep=keep,
                                   states=(state,)))
        self.optimizer = OPTIMIZER_NAMES[opt]
        self.n_steps, self.n_groups, self.n_meta = n_steps, n_groups, n_meta
        self.type = [k for k, v in FAMILY_TYPES.items() if v == o.type][0]
        self.n_theta = int(lib.family_n_theta(out.value))
        self.n_z = int(lib.family_n_z(out.value))
        if user:
            n_z_ref[0] = self.n_z

    def _describe(self):
        return f"{self.type} {self.optimizer} n_theta={self.n_theta} n_z={self.n_z}"

    def _check(self, rc, function, h):
        check(rc, function, h.ptr, lib.family_last_error, h.states)

    def map(self, theta):
        """z (n_z,) of theta (n_theta,)."""
        h = self._handle()
        t = as_f64(theta, (self.n_theta,), "theta", "Family.map")
        z = np.empty(self.n_z)
        with _Busy((h,)):
            rc = lib.family_map(h.ptr, ptr(t), ptr(z))
        self._check(rc, "revl_family_map", h)
        return z

    def vjp(self, theta, dz):
        """J(theta)^T dz: a gradient with respect to z made one with respect to theta."""
        h = self._handle()
        t = as_f64(theta, (self.n_theta,), "theta", "Family.vjp")
        d = as_f64(dz, (self.n_z,), "dz", "Family.vjp")
        out = np.empty(self.n_theta)
        with _Busy((h,)):
            rc = lib.family_vjp(h.ptr, ptr(t), ptr(d), ptr(out))
        self._check(rc, "revl_family_vjp", h)
        return out

    def project(self, z):
        """The theta whose map is nearest z (per_step and windows families only)."""
        h = self._handle()
        zz = as_f64(z, (self.n_z,), "z", "Family.project")
        out = np.empty(self.n_theta)
        with _Busy((h,)):
            rc = lib.family_project(h.ptr, ptr(zz), ptr(out))
        self._check(rc, "revl_family_project", h)
        return out

    @property
    def base(self):
        """The base point z0 (n_z,) for the coordinates theta does not control (a copy)."""
        h = self._handle()
        z = np.empty(self.n_z)
        self._check(lib.family_get_base(h.ptr, ptr(z)), "revl_family_get_base", h)
        return z

    @base.setter
    def base(self, z0):
        h = self._handle()
        z = as_f64(z0, (self.n_z,), "base", "Family.base")
        with _Busy((h,)):
            rc = lib.family_set_base(h.ptr, ptr(z))
        self._check(rc, "revl_family_set_base", h)

    @property
    def bounds(self):
        """The search box (lo, hi), two (n_theta,) arrays; set with a pair."""
        h = self._handle()
        lo, hi = np.empty(self.n_theta), np.empty(self.n_theta)
        self._check(lib.family_get_bounds(h.ptr, ptr(lo), ptr(hi)), "revl_family_get_bounds", h)
        return lo, hi

    @bounds.setter
    def bounds(self, lo_hi):
        h = self._handle()
        try:
            lo, hi = lo_hi
        except (TypeError, ValueError):
            raise InvalidError(_errors.ERR_INVALID, "bounds must be a pair (lo, hi)",
                               "Family.bounds") from None
        lo = as_f64(lo, (self.n_theta,), "lo", "Family.bounds")
        hi = as_f64(hi, (self.n_theta,), "hi", "Family.bounds")
        with _Busy((h,)):
            rc = lib.family_set_bounds(h.ptr, ptr(lo), ptr(hi))
        self._check(rc, "revl_family_set_bounds", h)

    @property
    def coord_names(self):
        """What each coordinate of theta is, e.g. 'log alpha multiplier of layer 2'."""
        h = self._handle()
        buf = ctypes.create_string_buffer(256)
        names = []
        for i in range(self.n_theta):
            self._check(lib.family_coord_name(h.ptr, i, buf, len(buf)),
                        "revl_family_coord_name", h)
            names.append(buf.value.decode("utf-8", "replace"))
        return names


# ------------------------------------------------------------------ reports and results
@dataclasses.dataclass(frozen=True)
class TunerReport:
    """One evaluation of the search or one meta-iteration of the refinement
    (revl_tuner_report); phase is 'search' or 'refine'."""
    phase: str
    index: int
    loss: float
    best_loss: float
    step_size: float
    accepted: bool
    start: int
    seconds: float
    eta_seconds: float
    runs: int

    @classmethod
    def _from_c(cls, r):
        return cls(PHASES.get(r.phase, str(r.phase)), int(r.index), r.loss, r.best_loss,
                   r.step_size, bool(r.accepted), int(r.start), r.seconds, r.eta_seconds,
                   int(r.runs))

    def as_dict(self):
        return dataclasses.asdict(self)

    def line(self):
        """The one-line progress report that report='print' prints."""
        step = "" if self.phase == "search" else (
            f"  start {self.start} step {self.step_size:.3g} "
            f"{'kept' if self.accepted else 'refused'}")
        eta = "" if not np.isfinite(self.eta_seconds) else f"  ETA {self.eta_seconds:.2f} s"
        return (f"{self.phase:<6} {self.index:5d}  loss {self.loss:<9.5g} best "
                f"{self.best_loss:<9.5g}{step}  {self.seconds:.2f} s{eta}")


def print_report(r, file=None):
    """Print a TunerReport's line (what report='print' does); returns None (do not stop)."""
    print(r.line(), file=file or sys.stdout, flush=True)


@dataclasses.dataclass(frozen=True)
class TunerResult:
    """revl_tuner_result: the best point's validation (and test, NaN without a test set) loss
    and accuracy, the work done and where the best point was found."""
    valid_loss: float
    valid_accuracy: float
    test_loss: float
    test_accuracy: float
    search_evaluations: int
    refine_iterations: int
    runs: int
    seconds: float
    best_phase: str


# ------------------------------------------------------------------ tuner
_FLOATS = ("budget_seconds", "search_fraction", "good_fraction", "refine_step", "step_grow",
           "step_shrink", "min_step")
_COUNTS = ("budget_runs", "n_initial", "n_candidates", "refine_starts", "n_orders")


class Tuner(Wrapper):
    """revl's default way to tune the inner optimiser's hyperparameters: a global search over a
    compact family's box (forward-only trainings), then refinement of the best point by exact
    hypergradients in a finer family, each meta-step kept only when the validation loss falls.

    ``Tuner(model, valid, n_steps, optimizer='momentum', search=None, refine=None, **options)``:
    ``search`` and ``refine`` are Families (None: the library's defaults, a linear-decay shape
    family with a multiplier per layer, and per step per group).  Options (None = the library's
    default): strategy ('search_then_refine' | 'search' | 'refine'), budget_seconds and/or
    budget_runs (one is needed; the first spent ends the run), cpu_time (budget_seconds counts
    this process's CPU time), search_fraction (0.5), n_initial, n_candidates (24),
    good_fraction (0.25), refine_starts (3), refine_method ('backtrack' | 'adam'),
    refine_step (0.05), step_grow (1.5), step_shrink (0.5), min_step (0.003), n_orders
    (1), seed (0), test (a Dataset: reported, never used to choose), objective
    ((w, meta) -> (f, dfdw, dfdmeta or None), instead of ``valid``), frac_bits, threads.
    ``report``: a callable given a TunerReport after each evaluation or meta-iteration of run()
    (a true return stops the run), or 'print' for a progress line each time.
    """

    _kind = "tuner"

    def __init__(self, model, valid=None, n_steps=100, optimizer="momentum", search=None,
                 refine=None, *, strategy=None, budget_seconds=None, budget_runs=None,
                 cpu_time=None, search_fraction=None, n_initial=None, n_candidates=None, good_fraction=None,
                 refine_starts=None, refine_method=None, refine_step=None, step_grow=None,
                 step_shrink=None, min_step=None, n_orders=None, seed=None, test=None,
                 report=None, objective=None, frac_bits=None, threads=None):
        fn = "Tuner"
        if not isinstance(model, Model):
            raise InvalidError(_errors.ERR_INVALID, f"model must be a revl.Model, got "
                               f"{type(model).__name__}", fn)
        for name, d in (("valid", valid), ("test", test)):
            if d is not None and not isinstance(d, Dataset):
                raise InvalidError(_errors.ERR_INVALID, f"{name} must be a revl.Dataset or "
                                   f"None, got {type(d).__name__}", fn)
        for name, f in (("search", search), ("refine", refine)):
            if f is not None and not isinstance(f, Family):
                raise InvalidError(_errors.ERR_INVALID, f"{name} must be a revl.Family or "
                                   f"None, got {type(f).__name__}", fn)
        if valid is None and objective is None:
            raise InvalidError(_errors.ERR_INVALID, "give a validation data set or an objective "
                               "callable", fn)
        n_steps = as_int(n_steps, "n_steps", fn, 1)
        opt = optimizer_code(optimizer, fn)
        o = init_struct(TunerOptions, lib.tuner_options_init)
        if strategy is not None:
            o.strategy = _choice(strategy, STRATEGIES, "strategy", fn)
        if refine_method is not None:
            o.refine_method = _choice(refine_method, REFINE_METHODS, "refine_method", fn)
        given = dict(budget_seconds=budget_seconds, search_fraction=search_fraction,
                     good_fraction=good_fraction, refine_step=refine_step, step_grow=step_grow,
                     step_shrink=step_shrink, min_step=min_step, budget_runs=budget_runs,
                     n_initial=n_initial, n_candidates=n_candidates, refine_starts=refine_starts,
                     n_orders=n_orders)
        for name in _FLOATS:
            if given[name] is not None:
                try:
                    setattr(o, name, float(given[name]))
                except (TypeError, ValueError):
                    raise InvalidError(_errors.ERR_INVALID, f"{name} must be a number, got "
                                       f"{given[name]!r}", fn) from None
        for name in _COUNTS:
            if given[name] is not None:
                setattr(o, name, as_int(given[name], name, fn))
        for name, value, maximum in (("frac_bits", frac_bits, 2**32 - 1),
                                     ("threads", threads, INT_MAX)):
            if value is not None:
                setattr(o, name, as_int(value, name, fn, 0, maximum))
        if seed is not None:
            o.seed = as_int(seed, "seed", fn)
        if cpu_time is not None:
            o.cpu_time = 1 if cpu_time else 0
        state = CallbackState()
        keep = [state]
        if isinstance(report, str):
            if report != "print":
                raise InvalidError(_errors.ERR_INVALID, f"report must be callable or 'print', "
                                   f"got {report!r}", fn)
            report = print_report
        if report is not None:
            _callable(report, "report", fn)
            keep.append(_make_report_trampoline(report, state, TunerReport, TUNER_REPORT_FN))
            o.report = ctypes.cast(keep[-1], ctypes.c_void_p).value
        if objective is not None:
            _callable(objective, "objective", fn)
            keep.append(_make_objective_trampoline(objective, model.n_params, model.n_meta,
                                                   state))
            o.objective = ctypes.cast(keep[-1], ctypes.c_void_p).value
        # the C tuner keeps pointers to the model and the data sets, and shares a user
        # family's callbacks (held alive by the family's handle)
        deps = [model._handle()]
        deps += [d._handle() for d in (valid, test, search, refine) if d is not None]
        o.test = test._handle().ptr if test is not None else None
        out = ctypes.c_void_p()
        fam = [None if f is None else f._handle().ptr for f in (search, refine)]
        with _Busy(tuple(dict.fromkeys(deps))):
            rc = lib.tuner_create(ctypes.byref(out), deps[0].ptr,
                                  None if valid is None else valid._handle().ptr, n_steps, opt,
                                  fam[0], fam[1], ctypes.byref(o))
        states = [state] + [s for d in deps for s in d.states]
        check(rc, "revl_tuner_create", states=states)
        self._init_handle(_CHandle(out.value, lib.tuner_free, "tuner",
                                   deps=tuple(dict.fromkeys(deps)), keep=keep, states=(state,)))
        self.model, self.valid, self.test = model, valid, test
        self.n_steps, self.n_groups, self.n_meta = n_steps, model.n_groups, model.n_meta
        self.optimizer = OPTIMIZER_NAMES[opt]
        self.kinds = _OPT_KINDS[self.optimizer]
        self.n_z = len(self.kinds) * n_steps * self.n_groups + self.n_groups + self.n_meta

    def _describe(self):
        return f"{self.optimizer} n_steps={self.n_steps} n_groups={self.n_groups}"

    def _check(self, rc, function, h):
        check(rc, function, h.ptr, lib.tuner_last_error, h.states)

    def step(self):
        """One evaluation of the search or one meta-iteration of the refinement: its
        TunerReport, or None when the budget was already spent (phase 'done')."""
        h = self._handle()
        if self.phase == "done":
            return None
        r = init_struct(_CReport, lib.tuner_report_init)
        with _Busy((h,) + h.deps):
            rc = lib.tuner_step(h.ptr, ctypes.byref(r))
        self._check(rc, "revl_tuner_step", h)
        return TunerReport._from_c(r)

    def run(self):
        """Steps until the budget is spent or the report callback returns true."""
        h = self._handle()
        with _Busy((h,) + h.deps):
            rc = lib.tuner_run(h.ptr)
        self._check(rc, "revl_tuner_run", h)
        return self

    @property
    def phase(self):
        """'search', 'refine' or 'done'."""
        return PHASES[int(lib.tuner_phase(self._handle().ptr))]

    def result(self):
        """The best point's losses and the work done so far (TunerResult)."""
        h = self._handle()
        r = init_struct(_CResult, lib.tuner_result_init)
        self._check(lib.tuner_get_result(h.ptr, ctypes.byref(r)), "revl_tuner_get_result", h)
        return TunerResult(r.valid_loss, r.valid_accuracy, r.test_loss, r.test_accuracy,
                           int(r.search_evaluations), int(r.refine_iterations), int(r.runs),
                           r.seconds, PHASES.get(r.best_phase, str(r.best_phase)))

    # reads of the best point are not held in use: a report callback may make them
    def best(self, kind="alpha"):
        """The best point's values of one kind, (n_steps, n_groups) in natural units."""
        h = self._handle()
        if kind not in KINDS or kind not in self.kinds:
            raise InvalidError(_errors.ERR_INVALID, f"this {self.optimizer} tuner has no "
                               f"{kind!r} (its kinds: {', '.join(self.kinds)})",
                               "revl_tuner_best_kind")
        out = np.empty((self.n_steps, self.n_groups))
        self._check(lib.tuner_best_kind(h.ptr, KINDS[kind], ptr(out)), "revl_tuner_best_kind",
                    h)
        return out

    def best_values(self):
        """{kind: (n_steps, n_groups) array} of the best point, for every kind of the
        optimiser."""
        return {k: self.best(k) for k in self.kinds}

    def best_scales_meta(self):
        """(log_init_scales (n_groups,), meta (n_meta,)) of the best point."""
        h = self._handle()
        s, m = np.empty(self.n_groups), np.empty(self.n_meta)
        self._check(lib.tuner_best_scales_meta(h.ptr, ptr(s), ptr(m) if self.n_meta else None),
                    "revl_tuner_best_scales_meta", h)
        return s, m

    def best_z(self):
        """All of the best point's z (n_z,): the families' coordinates."""
        h = self._handle()
        z = np.empty(self.n_z)
        self._check(lib.tuner_best_z(h.ptr, ptr(z)), "revl_tuner_best_z", h)
        return z

    def refine_point(self):
        """The refinement's current point: (theta, hypergradient d loss / d theta, loss) in the
        refine family's coordinates; StateError when no refinement start is in progress."""
        h = self._handle()
        n = int(lib.tuner_n_theta(h.ptr, 1))
        theta, grad, loss = np.empty(n), np.empty(n), ctypes.c_double()
        self._check(lib.tuner_refine_point(h.ptr, ptr(theta), ptr(grad), ctypes.byref(loss)),
                    "revl_tuner_refine_point", h)
        return theta, grad, loss.value

    def best_weights(self):
        """The trained weights w_T (n_params,) of the training that gave the best loss."""
        h = self._handle()
        w = np.empty(self.model.n_params)
        self._check(lib.tuner_best_weights(h.ptr, ptr(w)), "revl_tuner_best_weights", h)
        return w

    def best_schedule(self, schedule=None):
        """A Schedule (the given one, filled in place, or a new one over the model's groups)
        holding the best point's values."""
        h = self._handle()
        if schedule is None:
            schedule = Schedule.for_model(self.model, self.n_steps, optimizer=self.optimizer)
        elif not isinstance(schedule, Schedule):
            raise InvalidError(_errors.ERR_INVALID, f"schedule must be a revl.Schedule, got "
                               f"{type(schedule).__name__}", "Tuner.best_schedule")
        sh = schedule._handle()
        with _Busy((sh,)):
            rc = lib.tuner_best_schedule(h.ptr, sh.ptr)
        self._check(rc, "revl_tuner_best_schedule", h)
        return schedule

    def checkpoint_save(self, path):
        """Write the whole state between steps (binary; docs/file-formats.md)."""
        h = self._handle()
        with _Busy((h,)):
            rc = lib.tuner_checkpoint_save(h.ptr, os.fsencode(path))
        self._check(rc, "revl_tuner_checkpoint_save", h)

    def checkpoint_load(self, path):
        """Continue from a checkpoint of a tuner made the same way."""
        h = self._handle()
        with _Busy((h,)):
            rc = lib.tuner_checkpoint_load(h.ptr, os.fsencode(path))
        self._check(rc, "revl_tuner_checkpoint_load", h)


@dataclasses.dataclass
class TuneResult:
    """What revl.tune returns: the best point's losses (test NaN without a test set), its
    values per kind ({kind: (n_steps, n_groups)}), log init scales, meta, trained weights, the
    tuner's summary (TunerResult) and every report in order."""
    valid_loss: float
    valid_accuracy: float
    test_loss: float
    test_accuracy: float
    best: dict
    log_init_scales: np.ndarray
    meta: np.ndarray
    weights: np.ndarray
    summary: TunerResult
    history: list


def tune(model, valid=None, n_steps=100, optimizer="momentum", search=None, refine=None,
         **options):
    """Tune with revl's default (Tuner's keywords) and return a TuneResult; ``report`` (a
    callable or 'print') still sees every report."""
    history = []
    user_report = options.pop("report", None)
    if isinstance(user_report, str):
        if user_report != "print":
            raise InvalidError(_errors.ERR_INVALID, f"report must be callable or 'print', got "
                               f"{user_report!r}", "tune")
        user_report = print_report
    if user_report is not None:
        _callable(user_report, "report", "tune")

    def collect(r):
        history.append(r)
        return user_report(r) if user_report is not None else None

    t = Tuner(model, valid, n_steps, optimizer, search, refine, report=collect, **options)
    try:
        t.run()
        s = t.result()
        scales, meta = t.best_scales_meta()
        return TuneResult(s.valid_loss, s.valid_accuracy, s.test_loss, s.test_accuracy,
                          t.best_values(), scales, meta, t.best_weights(), s, history)
    finally:
        t.close()
