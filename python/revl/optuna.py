"""Refine an Optuna study's best trial with exact hypergradients.

    import optuna, revl, revl.optuna
    family = revl.Family("momentum", T, model.n_groups, type="shape", n_layers=4)
    def objective(trial):                     # the study's trials: points of the family's box
        lo, hi = family.bounds
        theta = [trial.suggest_float(n, a, b) for n, a, b in zip(family.coord_names, lo, hi)]
        ...train the schedule family.map(theta) and return its validation loss...
    study.optimize(objective, n_trials=50)
    res = revl.optuna.refine(study, family, model, valid, T, budget_runs=40)

The best trial's parameters are read as theta (by the family's coordinate names, or by a
``params_to_theta`` callable); ``family.map(theta)`` is where the refinement starts, in a
per-step family (a value per step, group and learned kind) moved by exact hypergradients, each
step kept only when the validation loss falls.  Optuna is not imported here: anything with
``best_trial.params`` (or ``best_params``) is a study; revl never depends on Optuna.
"""

import numpy as np

from . import _errors
from ._errors import InvalidError
from .tuner import Family, tune


def best_theta(study, family, params_to_theta=None):
    """The study's best trial as the family's theta (n_theta,)."""
    trial = getattr(study, "best_trial", None)
    params = getattr(trial, "params", None)
    if params is None:
        params = getattr(study, "best_params", None)
    if params is None:
        raise InvalidError(_errors.ERR_INVALID, "study has no best_trial.params (has it "
                           "finished a trial?)", "revl.optuna.best_theta")
    if params_to_theta is not None:
        theta = np.asarray(params_to_theta(dict(params)), dtype=float)
    else:
        names = family.coord_names
        missing = [n for n in names if n not in params]
        if missing:
            raise InvalidError(_errors.ERR_INVALID, f"the best trial has no parameter(s) "
                               f"{missing}: name the study's parameters as the family's "
                               f"coord_names, or give params_to_theta", "revl.optuna.best_theta")
        theta = np.array([float(params[n]) for n in names])
    if theta.shape != (family.n_theta,):
        raise InvalidError(_errors.ERR_INVALID, f"params_to_theta gave shape {theta.shape}, "
                           f"expected ({family.n_theta},)", "revl.optuna.best_theta")
    return theta


def refine(study, family, model, valid, n_steps, *, learn=None, params_to_theta=None,
           **options):
    """Exact-hypergradient refinement (revl.Tuner, strategy 'refine') from the study's best
    trial; ``learn``: the kinds refined per step (None: the library's default, alpha, gamma or
    the betas, init scales); other keywords as revl.tune's.  Returns revl.tune's TuneResult."""
    if not isinstance(family, Family):
        raise InvalidError(_errors.ERR_INVALID, f"family must be a revl.Family, got "
                           f"{type(family).__name__}", "revl.optuna.refine")
    z0 = family.map(best_theta(study, family, params_to_theta))
    fine = Family(family.optimizer, family.n_steps, family.n_groups, family.n_meta, "per_step",
                  learn=learn)
    fine.base = z0
    return tune(model, valid, n_steps, family.optimizer, None, fine, strategy="refine",
                **options)
