"""revl: exact hypergradients by reversing training (momentum SGD, Adam, RMSprop with momentum;
ctypes wrapper of librevl).

    import numpy as np, revl
    m = revl.Model(n_params, grad=grad_fn, hvp=hvp_fn)   # grad_fn(step, w, meta) -> (loss, g)
    s = revl.Schedule(n_steps, [0, n_params])            # s.alpha, s.gamma: (n_steps, n_groups)
    t = revl.Trainer(m, s)
    t.train(w0)
    hg = t.hypergrad(dfdw)                               # hg.w0, hg.alpha, hg.gamma, hg.meta
    s = revl.Schedule(n_steps, [0, n_params], optimizer="adam")  # s.alpha, s.beta1, s.beta2,
                                                                 # s.eps; hg.beta1, ... likewise

See docs/python.md.  The shared library is found through REVL_LIBRARY, then the checkout's
lib/ directory, then the system loader (revl.library_path says which one was loaded).
"""

from ._base import (GAMMA_GRID, beta_applied, blas_threads, fixed_round, gamma_applied,
                    hyper_applied, version, version_number)
from ._base import KINDS as _KINDS, OPTIMIZER_KINDS as _OPTIMIZER_KINDS
from ._errors import (CallbackError, Error, FileError, InexactError, InvalidError,
                      NoMemoryError, RangeError, StateError, Unavailable)
from ._lib import lib as _the_lib
from .core import Hypergrad, Model, Progress, Schedule, Trainer, print_progress
from .data import Dataset
from .hyperopt import HyperOpt, Hyperparams, Report
from .mlp import MLP, Block, Evaluation
from .tuner import Family, Tuner, TunerReport, TunerResult, TuneResult, print_report, tune

library_path = _the_lib.path   # the file actually loaded
# read from the loaded library at import: the optimisers by name, each one's kinds in its order,
# and every hyperparameter kind
OPTIMIZERS = dict(_OPTIMIZER_KINDS)
KINDS = tuple(_KINDS)
MLP_LOG_L2_START = -9.210340371976182   # REVL_MLP_LOG_L2_START = log(1e-4): HyperOpt's start for MLP penalties
__version__ = "0.1.0"


def available(name):
    """Whether the loaded library exports revl_<name> (e.g. available('mlp_create'))."""
    return _the_lib.has(name)


def strerror(status):
    """The library's name for a status code."""
    return _the_lib.strerror(int(status)).decode()


__all__ = [
    "version", "version_number", "blas_threads", "gamma_applied", "beta_applied", "hyper_applied", "available",
    "strerror", "library_path", "MLP_LOG_L2_START", "fixed_round", "GAMMA_GRID", "OPTIMIZERS",
    "KINDS",
    "Model", "Schedule", "Trainer", "Hypergrad", "Progress", "print_progress", "Dataset", "MLP",
    "Block", "Evaluation",
    "HyperOpt", "Hyperparams", "Report",
    "Family", "Tuner", "TunerReport", "TunerResult", "TuneResult", "tune", "print_report",
    "Error", "InvalidError", "NoMemoryError", "CallbackError", "RangeError", "StateError",
    "InexactError", "FileError", "Unavailable",
]
