"""revl.HyperOpt: runs with a report callback, stops on request, re-raises callback exceptions,
get/set/save/load, a Python objective over a callback model."""
import traceback

import numpy as np
import pytest

import revl
from builtin_util import need, skip_if_unimplemented
from tanh_model import TanhNet

W = [4, 6, 3]


@pytest.fixture(autouse=True)
def hyperopt_available():
    need("hyperopt_create", "hyperopt_options_init", "hyperopt_step", "hyperopt_run",
         "hyperopt_get", "hyperopt_set", "hyperopt_free")


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 4)) + np.eye(3, 4)[y] * 2.0
    return revl.Dataset(x, y)


def mlp():
    need("mlp_create")
    with skip_if_unimplemented():
        return revl.MLP(W, blobs(), batch_size=20), blobs(seed=1)


def make(n_steps=10, **kw):
    m, valid = mlp()
    with skip_if_unimplemented():
        return revl.HyperOpt(m, valid, n_steps, **kw)


def test_options_are_checked():
    m, valid = mlp()
    with pytest.raises(revl.InvalidError, match="learn"):
        revl.HyperOpt(m, valid, 10, learn=["alpha", "everything"])
    with pytest.raises(revl.InvalidError, match="method"):
        revl.HyperOpt(m, valid, 10, method="lbfgs")
    with pytest.raises(revl.InvalidError, match="validation data set or an objective"):
        revl.HyperOpt(m, None, 10)
    with pytest.raises(revl.InvalidError, match="n_steps"):
        revl.HyperOpt(m, valid, 0)


def test_run_calls_report_each_iteration():
    reports = []
    h = make(iterations=3, report=reports.append)
    assert h.n_steps == 10 and h.n_groups == 4
    assert h.options["iterations"] == 3
    # options read back as the names the constructor takes, not the C enumeration values
    assert h.options["learn"] == ["alpha", "gamma", "init_scale"]
    assert h.options["method"] == "adam" and h.options["chaos_action"] == "shrink"
    assert h.options["fresh_seed"] is False
    h2 = make(iterations=1, method="sgd", chaos_action="stop", learn="alpha,meta")
    assert h2.options["method"] == "sgd" and h2.options["chaos_action"] == "stop"
    assert h2.options["learn"] == ["alpha", "meta"]
    h.run()
    assert [r.iteration for r in reports] == [0, 1, 2]
    for r in reports:
        assert np.isfinite(r.valid_loss) and np.isfinite(r.train_loss)
        assert 0 <= r.valid_accuracy <= 1 and r.hypergrad_norm > 0 and r.seconds >= 0
    assert set(reports[0].as_dict()) >= {"iteration", "valid_loss", "chaos"}


def test_report_true_stops_the_run():
    reports = []

    def report(r):
        reports.append(r)
        return True

    make(iterations=5, report=report).run()
    assert len(reports) == 1


def failing_report(r):
    if r.iteration == 1:
        raise ValueError("stop here")


def test_report_exception_is_reraised():
    h = make(iterations=5, report=failing_report)
    with pytest.raises(ValueError, match="stop here") as ei:
        h.run()
    assert "failing_report" in [f.name for f in traceback.extract_tb(ei.value.__traceback__)]


def test_defaults_get_set_step():
    h = make(n_steps=8, learn="alpha,gamma")
    p = h.get()
    assert p.alpha.shape == (8, 4) and p.gamma.shape == (8, 4) and p.log_init_scales.shape == (4,)
    np.testing.assert_allclose(p.alpha, np.exp(-1))
    np.testing.assert_allclose(p.gamma, 0.5)
    np.testing.assert_allclose(p.log_init_scales, -3)
    h.set(alpha=0.2, log_init_scales=[-2, -3, -2, -3])
    p = h.get()
    np.testing.assert_allclose(p.alpha, 0.2)
    np.testing.assert_allclose(p.log_init_scales, [-2, -3, -2, -3])
    r = h.step()
    assert r.iteration == 0 and np.isfinite(r.valid_loss)
    q = h.get()
    assert not np.allclose(q.alpha, 0.2)                 # learned
    np.testing.assert_allclose(q.log_init_scales, [-2, -3, -2, -3])   # not learned
    with pytest.raises(revl.InvalidError, match="alpha"):
        h.set(alpha=np.zeros((3, 3)))


def test_save_and_load(tmp_path):
    h = make(n_steps=6)
    h.step()
    h.step()
    path = tmp_path / "hp.txt"
    h.save(path, best=False)
    assert path.read_text().strip()
    h2 = make(n_steps=6)
    h2.load(path)
    a, b = h.get(), h2.get()
    np.testing.assert_allclose(b.alpha, a.alpha, rtol=1e-12)
    np.testing.assert_allclose(b.gamma, a.gamma, rtol=1e-12)
    np.testing.assert_allclose(b.log_init_scales, a.log_init_scales, rtol=1e-12)
    h.save(tmp_path / "best.txt", best=True)
    (tmp_path / "bad.txt").write_text("not a hyperparameter file\n")
    with pytest.raises(revl.FileError):
        h2.load(tmp_path / "bad.txt")
    with pytest.raises(revl.FileError):
        make(n_steps=7).load(path)                      # sizes differ


def test_learning_lowers_the_validation_loss():
    reports = []
    make(n_steps=20, iterations=8, report=reports.append).run()
    assert min(r.valid_loss for r in reports[1:]) < reports[0].valid_loss


def test_python_objective_over_a_callback_model():
    net = TanhNet()
    model = revl.Model(net.n_params, 1, grad=net.grad, hvp=net.hvp, groups=net.groups)
    calls = []

    def objective(w, meta):
        calls.append(1)
        f, g = net.valid(w)
        return f, g, None

    reports = []
    with skip_if_unimplemented():
        h = revl.HyperOpt(model, None, 10, learn=["alpha", "meta"], objective=objective,
                          iterations=3, report=reports.append, step_size=0.02)
    h.set(meta=[-2.0])
    h.run()
    assert len(reports) == 3 and len(calls) >= 3
    assert all(np.isnan(r.valid_accuracy) for r in reports)
    assert h.get().meta.shape == (1,) and h.get().meta[0] != -2.0

    def bad_objective(w, meta):
        raise ArithmeticError("objective failed")

    h2 = revl.HyperOpt(model, None, 10, objective=bad_objective)
    with pytest.raises(ArithmeticError, match="objective failed"):
        h2.step()


def test_python_meta_loop_reproduces_the_library():
    """examples/lr_schedule.py's meta-loop, written against Trainer + MLP.evaluate + numpy Adam,
    follows the same path as revl_hyperopt_run: same validation losses per iteration."""
    import argparse
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "lr_schedule.py"
    spec = importlib.util.spec_from_file_location("lr_schedule_example", path)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    a = argparse.Namespace(steps=10, iterations=4, step_size=0.04, seed=0, threads=0, save=None)
    got = []
    ex.line = got.append                      # collect the reports instead of printing
    m, valid = mlp()
    ex.run_python(m, valid, a)
    ref = []
    m2, valid2 = mlp()
    revl.HyperOpt(m2, valid2, 10, learn=["alpha", "gamma", "init_scale"], iterations=4,
                  report=ref.append).run()
    assert len(got) == len(ref) == 4
    for p, c in zip(got, ref):
        np.testing.assert_allclose(p.valid_loss, c.valid_loss, rtol=1e-9)
        np.testing.assert_allclose(p.hypergrad_norm, c.hypergrad_norm, rtol=1e-6)


def test_log_penalty_starts_small_and_chance_warns():
    """The MLP's log L2 meta-parameters start at log 1e-4 (revl.MLP_LOG_L2_START), and a first
    meta-iteration no better than chance gives a RuntimeWarning."""
    m = revl.MLP(W, blobs(), batch_size=20, penalty="per_layer")
    h = revl.HyperOpt(m, blobs(seed=1), 10, learn="alpha,meta")
    assert np.all(h.get().meta == np.log(1e-4)) and revl.MLP_LOG_L2_START == np.log(1e-4)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # from the documented start: no warning
        h.step()
    h = revl.HyperOpt(m, blobs(seed=1), 10, learn="alpha,meta")
    h.set(alpha=1e-9, meta=5.0)
    with pytest.warns(RuntimeWarning, match="no better than chance"):
        h.step()
