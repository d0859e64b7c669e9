"""revl.Family, revl.Tuner, revl.tune: argument checks, a family's transpose against finite
differences of its map, a tiny MLP tuned within 12 runs, the result's fields agreeing with each
other, determinism per seed, and checkpoint/resume bit for bit."""
import math

import numpy as np
import pytest

import revl
from builtin_util import need

W = [4, 6, 3]            # 2 layers: groups W0, b0, W1, b1


def family_only(test):
    """Marks a test that needs the families but not the tuner."""
    test.family_only = True
    return test


@pytest.fixture(autouse=True)
def tuner_available(request):
    need("family_create", "family_map", "family_vjp")
    if not getattr(request.function, "family_only", False):
        need("tuner_create", "tuner_step", "tuner_run", "tuner_get_result",
             "tuner_checkpoint_save", "mlp_batch_indices")


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 4)) + np.eye(3, 4)[y] * 2.0
    return revl.Dataset(x, y)


def mlp(seed=0):
    return revl.MLP(W, blobs(), batch_size=20, seed=seed, threads=1), blobs(seed=1)


def tuner(**kw):
    m, valid = mlp()
    kw.setdefault("budget_runs", 12)
    kw.setdefault("threads", 1)
    return revl.Tuner(m, valid, 8, **kw)


# ------------------------------------------------------------------ argument checks
@family_only
def test_family_arguments_are_checked():
    with pytest.raises(revl.InvalidError, match="type must be one of"):
        revl.Family("momentum", 10, 4, type="spline")
    with pytest.raises(revl.InvalidError, match="shape must be one of"):
        revl.Family("momentum", 10, 4, type="shape", shape="step")
    with pytest.raises(revl.InvalidError, match="optimizer"):
        revl.Family("lbfgs", 10, 4)
    with pytest.raises(revl.InvalidError, match="n_steps"):
        revl.Family("momentum", 0, 4)
    with pytest.raises(revl.InvalidError, match="needs map, vjp and n_theta"):
        revl.Family("momentum", 10, 4, type="user", map=lambda t: t)
    with pytest.raises(revl.InvalidError, match="for type='user' families"):
        revl.Family("momentum", 10, 4, type="shape", n_theta=3)
    with pytest.raises(revl.InvalidError, match="group_layer"):
        revl.Family("momentum", 10, 4, type="shape", n_layers=2, group_layer=[0, 1])
    with pytest.raises(revl.InvalidError, match="learn"):
        revl.Family("momentum", 10, 4, learn=["alpha", "everything"])
    f = revl.Family("momentum", 10, 4, type="shape", n_layers=2)
    with pytest.raises(revl.InvalidError, match="theta has shape"):
        f.map(np.zeros(f.n_theta + 1))
    with pytest.raises(revl.InvalidError, match="dz has shape"):
        f.vjp(np.zeros(f.n_theta), np.zeros(3))
    lo, hi = f.bounds
    with pytest.raises(revl.InvalidError):          # the library refuses lo >= hi
        f.bounds = (hi, lo)
    bad = lo.copy()
    bad[0] = np.nan
    with pytest.raises(revl.Error):
        f.bounds = (bad, hi)
    assert np.array_equal(f.bounds[0], lo) and np.array_equal(f.bounds[1], hi)  # unchanged
    with pytest.raises(revl.InvalidError):          # a shape family has no projection
        f.project(np.zeros(f.n_z))


def test_tuner_arguments_are_checked():
    m, valid = mlp()
    with pytest.raises(revl.InvalidError, match="model must be a revl.Model"):
        revl.Tuner("model", valid, 8)
    with pytest.raises(revl.InvalidError, match="valid must be a revl.Dataset"):
        revl.Tuner(m, np.zeros(3), 8)
    with pytest.raises(revl.InvalidError, match="test must be a revl.Dataset"):
        revl.Tuner(m, valid, 8, test="t10k")
    with pytest.raises(revl.InvalidError, match="validation data set or an objective"):
        revl.Tuner(m, None, 8)
    with pytest.raises(revl.InvalidError, match="n_steps"):
        revl.Tuner(m, valid, 0)
    with pytest.raises(revl.InvalidError, match="strategy must be one of"):
        revl.Tuner(m, valid, 8, strategy="grid")
    with pytest.raises(revl.InvalidError, match="refine_method must be one of"):
        revl.Tuner(m, valid, 8, refine_method="lbfgs")
    with pytest.raises(revl.InvalidError, match="report must be callable or 'print'"):
        revl.Tuner(m, valid, 8, report="verbose")
    with pytest.raises(revl.InvalidError, match="budget_runs"):
        revl.Tuner(m, valid, 8, budget_runs=-1)
    with pytest.raises(revl.InvalidError, match="search_fraction must be a number"):
        revl.Tuner(m, valid, 8, search_fraction="half")
    with pytest.raises(revl.InvalidError, match="search must be a revl.Family"):
        revl.Tuner(m, valid, 8, search="shape")
    with pytest.raises(revl.InvalidError):          # the library's own check: a fraction > 1
        revl.Tuner(m, valid, 8, search_fraction=1.5)
    wrong = revl.Family("momentum", 9, m.n_groups, type="shape")   # made for 9 steps, not 8
    with pytest.raises(revl.InvalidError):
        revl.Tuner(m, valid, 8, search=wrong)
    with pytest.raises(revl.InvalidError, match="no 'beta1'"):
        tuner().best("beta1")


# ------------------------------------------------------------------ families
def fd_check(f, theta, rng, h=1e-6):
    """vjp(theta, dz) . e against the central difference of map along e (a few e)."""
    dz = rng.normal(size=f.n_z)
    g = f.vjp(theta, dz)
    assert g.shape == (f.n_theta,)
    for _ in range(3):
        e = rng.normal(size=f.n_theta)
        fd = (f.map(theta + h * e) - f.map(theta - h * e)) @ dz / (2 * h)
        assert g @ e == pytest.approx(fd, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("kw", [dict(type="shape", shape="linear", n_layers=2),
                                dict(type="shape", shape="cosine", warmup=2),
                                dict(type="windows", window=3),
                                dict(type="per_step")])
@family_only
def test_family_transpose_matches_finite_differences(kw):
    rng = np.random.default_rng(1)
    f = revl.Family("momentum", 7, 4, 1, learn=["alpha", "gamma", "init_scale", "meta"], **kw)
    assert f.n_z == 3 * 7 * 4 + 4 + 1          # alpha, gamma, weight_decay; scales; meta
    assert len(f.coord_names) == f.n_theta and all(f.coord_names)
    lo, hi = f.bounds
    theta = lo + (hi - lo) * rng.uniform(0.2, 0.8, f.n_theta)
    fd_check(f, theta, rng)


@family_only
def test_adam_shape_family_is_the_8_parameter_family():
    f = revl.Family("adam", 20, 8, type="shape", learn=["alpha", "beta1", "init_scale"],
                    n_layers=4)
    assert f.n_theta == 8, f.coord_names
    assert f.n_z == 4 * 20 * 8 + 8
    fd_check(f, np.mean(f.bounds, axis=0), np.random.default_rng(2))


@family_only
def test_user_family_calls_back_and_reraises():
    rng = np.random.default_rng(3)
    n_z = 3 * 5 * 2 + 2                            # momentum: alpha, gamma, weight_decay
    a = rng.normal(size=(n_z, 3))
    f = revl.Family("momentum", 5, 2, type="user", n_theta=3, map=lambda t: a @ t,
                    vjp=lambda t, dz: a.T @ dz)
    assert (f.n_theta, f.n_z) == (3, n_z)
    theta, dz = rng.normal(size=3), rng.normal(size=n_z)
    assert np.allclose(f.map(theta), a @ theta, rtol=1e-15, atol=0)
    assert np.allclose(f.vjp(theta, dz), a.T @ dz, rtol=1e-15, atol=0)

    def broken(t):
        raise KeyError("no z today")
    g = revl.Family("momentum", 5, 2, type="user", n_theta=3, map=broken,
                    vjp=lambda t, dz: a.T @ dz)
    with pytest.raises(KeyError, match="no z today"):
        g.map(theta)
    short = revl.Family("momentum", 5, 2, type="user", n_theta=3, map=lambda t: t,
                        vjp=lambda t, dz: a.T @ dz)
    with pytest.raises(revl.InvalidError, match="returned z of shape"):
        short.map(theta)
    nan = revl.Family("momentum", 5, 2, type="user", n_theta=3,
                      map=lambda t: np.full(n_z, np.nan), vjp=lambda t, dz: a.T @ dz)
    with pytest.raises(revl.Error):                 # non-finite outputs are refused
        nan.map(theta)
    assert np.allclose(f.map(theta), a @ theta)     # the others still work


@family_only
def test_family_base_and_projection():
    f = revl.Family("momentum", 6, 2, type="windows", window=3, learn=["alpha"])
    z0 = f.base
    assert z0.shape == (f.n_z,)
    z1 = z0 + 0.25
    f.base = z1
    assert np.array_equal(f.base, z1)
    theta = np.linspace(-2, -1, f.n_theta)
    z = f.map(theta)
    assert np.allclose(f.project(z), theta, rtol=0, atol=1e-12)   # windows: exact on its image
    # gamma is not learned: it comes from the base point
    assert np.array_equal(z[6 * 2:2 * 6 * 2], z1[6 * 2:2 * 6 * 2])


# ------------------------------------------------------------------ tuning
def test_tiny_mlp_tuned_in_12_runs_improves_on_its_start():
    reports = []
    t = tuner(report=reports.append, seed=0)
    assert t.phase == "search"
    t.run()
    assert t.phase == "done" and t.step() is None
    r = t.result()
    assert reports and reports[0].phase == "search"
    assert math.isfinite(r.valid_loss)
    assert r.valid_loss < reports[0].loss           # better than the first point it tried
    assert r.runs <= 12 and reports[-1].runs == r.runs
    # best so far never rises, and ends at the result
    best = [x.best_loss for x in reports]
    assert all(b1 <= b0 for b0, b1 in zip(best, best[1:]))
    assert best[-1] == r.valid_loss
    assert r.search_evaluations + r.refine_iterations == len(reports)
    assert math.isnan(r.test_loss) and math.isnan(r.test_accuracy)   # no test set given
    assert r.best_phase in ("search", "refine")


def test_result_fields_agree():
    m, valid = mlp()
    test = blobs(seed=2)
    t = revl.Tuner(m, valid, 8, budget_runs=12, test=test, threads=1)
    t.run()
    r = t.result()
    w = t.best_weights()
    assert w.shape == (m.n_params,)
    ev = m.evaluate(valid, w)
    assert ev.loss == pytest.approx(r.valid_loss, rel=1e-12, abs=0)
    assert ev.accuracy == pytest.approx(r.valid_accuracy, rel=1e-12, abs=0)
    te = m.evaluate(test, w)
    assert te.loss == pytest.approx(r.test_loss, rel=1e-12, abs=0)
    s = t.best_schedule()
    for kind in ("alpha", "gamma"):
        assert t.best(kind).shape == (8, m.n_groups)
        assert np.array_equal(s.get_kind(kind), t.best(kind))
    scales, meta = t.best_scales_meta()
    assert scales.shape == (m.n_groups,) and meta.shape == (0,)
    z = t.best_z()
    assert z.shape == (t.n_z,)
    assert np.allclose(z[-m.n_groups:], scales, rtol=0, atol=0)   # z ends with the scales
    assert np.allclose(np.exp(z[:8 * m.n_groups]).reshape(8, -1), t.best("alpha"), rtol=1e-12)


def test_tune_returns_the_tuners_result():
    m, valid = mlp()
    lines = []
    res = revl.tune(m, valid, 8, budget_runs=12, threads=1, seed=4, report=lines.append)
    assert res.history == lines and len(lines) >= 2
    assert set(res.best) == {"alpha", "gamma", "weight_decay"}
    assert np.all(res.best["weight_decay"] == 0)   # not learned: the default, no decay
    assert res.valid_loss == res.summary.valid_loss == lines[-1].best_loss
    assert m.evaluate(valid, res.weights).loss == pytest.approx(res.valid_loss, rel=1e-12)
    assert res.log_init_scales.shape == (m.n_groups,)


def test_print_report(capsys):
    t = tuner(report="print", budget_runs=6)
    t.run()
    out = capsys.readouterr().out.splitlines()
    assert out and all(("search" in x or "refine" in x) and "best" in x for x in out)


def test_report_true_stops_and_exceptions_are_reraised():
    seen = []
    t = tuner(report=lambda r: seen.append(r) or len(seen) == 2)
    t.run()
    assert len(seen) == 2 and t.phase != "done"

    def boom(r):
        raise ZeroDivisionError("report failed")
    t = tuner(report=boom)
    with pytest.raises(ZeroDivisionError, match="report failed"):
        t.run()


def test_same_seed_same_best_values():
    a, b = tuner(seed=7), tuner(seed=7)
    a.run()
    b.run()
    assert np.array_equal(a.best_z(), b.best_z())
    assert np.array_equal(a.best_weights(), b.best_weights())
    assert a.result().valid_loss == b.result().valid_loss


def test_checkpoint_resumes_bit_for_bit(tmp_path):
    path = tmp_path / "tuner.ckpt"
    ref = tuner(seed=3)
    ref.run()
    a = tuner(seed=3)
    for _ in range(5):
        a.step()
    a.checkpoint_save(path)
    b = tuner(seed=3)
    b.checkpoint_load(path)
    while b.step() is not None:
        pass
    assert b.phase == "done"
    assert np.array_equal(b.best_z(), ref.best_z())
    assert np.array_equal(b.best_weights(), ref.best_weights())
    rb, rr = b.result(), ref.result()
    assert (rb.valid_loss, rb.runs, rb.search_evaluations, rb.refine_iterations) == (
        rr.valid_loss, rr.runs, rr.search_evaluations, rr.refine_iterations)
    other = revl.Tuner(*mlp(), 9, budget_runs=12, threads=1)     # made another way
    with pytest.raises(revl.FileError):
        other.checkpoint_load(path)


def test_checkpoint_from_a_report_callback_is_refused(tmp_path):
    caught = []

    def save(r):
        try:
            t.checkpoint_save(tmp_path / "x")
        except revl.StateError as e:
            caught.append(e)
        return True
    t = tuner(report=save)
    t.run()
    assert caught and "in use" in str(caught[0])


# ------------------------------------------------------------------ the MLP's minibatch order
def test_mlp_batch_indices_and_order_seed():
    m, _ = mlp(seed=5)
    first = [m.batch_indices(s) for s in range(3)]       # 60 examples, batches of 20
    assert all(b.shape == (20,) for b in first)
    assert sorted(np.concatenate(first).tolist()) == list(range(60))   # one epoch: a permutation
    m.set_order_seed(6)
    other = [m.batch_indices(s) for s in range(3)]
    assert any(not np.array_equal(x, y) for x, y in zip(first, other))
    m.set_order_seed(5)
    assert all(np.array_equal(x, m.batch_indices(s)) for s, x in enumerate(first))
    with pytest.raises(revl.InvalidError, match="step"):
        m.batch_indices(-1)


# ------------------------------------------------------------------ revl.optuna (no Optuna needed)
class FakeStudy:
    """What revl.optuna reads of an Optuna study: best_trial.params."""

    def __init__(self, params):
        self.best_trial = type("Trial", (), {"params": params})()


def test_optuna_refine_starts_from_the_best_trial():
    import revl.optuna
    m, valid = mlp()
    fam = revl.Family("momentum", 8, m.n_groups, type="shape", n_layers=2)
    lo, hi = fam.bounds
    theta = lo + 0.5 * (hi - lo)
    study = FakeStudy(dict(zip(fam.coord_names, theta)))
    assert np.array_equal(revl.optuna.best_theta(study, fam), theta)
    res = revl.optuna.refine(study, fam, m, valid, 8, budget_runs=8, threads=1)
    assert res.history and all(r.phase == "refine" for r in res.history)
    assert res.valid_loss <= res.history[0].loss     # only improvements are kept
    with pytest.raises(revl.InvalidError, match="coord_names"):
        revl.optuna.best_theta(FakeStudy({"lr": 0.1}), fam)
    with pytest.raises(revl.InvalidError, match="expected"):
        revl.optuna.best_theta(study, fam, params_to_theta=lambda p: [1.0, 2.0])


def test_objective_callback_gives_the_validation_sets_result():
    m, valid = mlp()
    judge, _ = mlp()        # the tuned model is in use during the run: another one evaluates

    def objective(w, meta):
        ev = judge.evaluate(valid, w, grad=True)
        return ev.loss, ev.grad, None
    a = revl.Tuner(m, valid, 8, budget_runs=12, seed=2, threads=1)
    b = revl.Tuner(m, None, 8, budget_runs=12, seed=2, threads=1, objective=objective)
    a.run()
    b.run()
    assert np.array_equal(a.best_z(), b.best_z())
    assert a.result().valid_loss == b.result().valid_loss
    assert math.isnan(b.result().valid_accuracy)        # an objective has no accuracy

    def broken(w, meta):
        raise ArithmeticError("objective failed")
    c = revl.Tuner(m, None, 8, budget_runs=12, threads=1, objective=broken)
    with pytest.raises(ArithmeticError, match="objective failed"):
        c.run()


def test_refine_point_is_the_refinement_state():
    t = tuner(strategy="refine")
    with pytest.raises(revl.StateError, match="no refinement start"):
        t.refine_point()
    t.step()
    theta, grad, loss = t.refine_point()
    assert theta.shape == grad.shape and theta.size > 0
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    assert loss == t.result().valid_loss      # the start is the best point so far
