"""The built-in MLP through Python: layout, gradient and HVP against finite differences,
evaluate, exact reversal and hypergradients, keeping its data set alive and unchanged."""
import ctypes
import gc
import weakref

import numpy as np
import pytest

import revl
from builtin_util import need, skip_if_unimplemented

W = [4, 6, 3]


@pytest.fixture(autouse=True)
def mlp_available():
    need("mlp_create", "mlp_options_init", "model_evaluate", "dataset_create")


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 4)) + np.eye(3, 4)[y] * 2.0
    return revl.Dataset(x, y)


def make(**kw):
    d = blobs()
    with skip_if_unimplemented():
        m = revl.MLP(W, d, **kw)
    return d, m


def test_layout_and_groups():
    d, m = make()
    assert m.n_params == 4 * 6 + 6 + 6 * 3 + 3 and m.n_meta == 0
    assert m.n_groups == 4
    assert list(m.offsets) == [0, 24, 30, 48, 51]
    assert [b.name for b in m.layout] == ["W0", "b0", "W1", "b1"]
    assert [b.offset for b in m.layout] == [0, 24, 30, 48]
    w = np.arange(m.n_params, dtype=float)
    W0, b0, W1, b1 = m.unpack(w)
    assert W0.shape == (4, 6) and W0[1, 0] == 6 and b1.shape == (3,) and b1[0] == 48
    s = revl.Schedule.for_model(m, 5)
    assert s.n_groups == 4


def test_full_batch_gradient_matches_evaluate_and_finite_differences():
    d, m = make(batch_size=0)
    w = m.init_weights(-1.0, seed=3)
    loss, g = m.grad(0, w)
    ev = m.evaluate(d, w, grad=True)
    np.testing.assert_allclose(loss, ev.loss, rtol=1e-12)
    np.testing.assert_allclose(g, ev.grad, rtol=1e-10, atol=1e-14)
    assert 0 <= ev.accuracy <= 1
    rng = np.random.default_rng(0)
    for _ in range(3):
        e = rng.normal(size=m.n_params)
        h = 1e-6
        fd = (m.evaluate(d, w + h * e).loss - m.evaluate(d, w - h * e).loss) / (2 * h)
        np.testing.assert_allclose(g @ e, fd, rtol=1e-6)


@pytest.mark.parametrize("activation", ["tanh", "relu", "logistic"])
def test_hvp_matches_finite_differences(activation):
    d, m = make(batch_size=20, activation=activation, penalty="per_layer")
    assert m.n_meta == 2
    w = m.init_weights(-0.5, seed=4)
    meta = np.array([-2.0, -3.0])
    v = np.random.default_rng(1).normal(size=m.n_params)
    hv, hm = m.hvp(2, w, meta, v)
    h = 1e-6
    fd = (m.grad(2, w + h * v, meta)[1] - m.grad(2, w - h * v, meta)[1]) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=1e-5, atol=1e-7)
    for j in range(2):
        e = np.eye(2)[j] * h
        fdm = (m.grad(2, w, meta + e)[1] @ v - m.grad(2, w, meta - e)[1] @ v) / (2 * h)
        np.testing.assert_allclose(hm[j], fdm, rtol=1e-6)


def test_minibatches_are_deterministic_per_step():
    d, m = make(batch_size=10, seed=5)
    w = m.init_weights(-1.0, seed=1)
    assert np.array_equal(m.grad(3, w)[1], m.grad(3, w)[1])
    assert not np.array_equal(m.grad(3, w)[1], m.grad(4, w)[1])


def test_exact_reversal_and_alpha_hypergradient():
    d, m = make(batch_size=20)
    valid = blobs(seed=9)
    T = 20
    s = revl.Schedule.for_model(m, T, alpha=0.3, gamma=0.875)
    t = revl.Trainer(m, s)
    w0 = m.init_weights(-1.0, seed=2)
    t.train(w0)
    ev = m.evaluate(valid, t.weights, grad=True)
    hg = t.hypergrad(ev.grad)
    assert t.weights.tobytes() == (np.round(w0 * 2.0**52) / 2.0**52).tobytes()
    a0 = s.alpha.copy()
    dirn = np.random.default_rng(2).normal(size=a0.shape)

    def f(a):
        s.alpha = a
        t.train(w0)
        return m.evaluate(valid, t.weights).loss

    h = 1e-5
    fd = (f(a0 + h * dirn) - f(a0 - h * dirn)) / (2 * h)
    np.testing.assert_allclose(np.sum(hg.alpha * dirn), fd, rtol=1e-5)
    # init scales by the chain rule
    dls = m.init_scales_grad(w0, hg.w0)
    s.alpha = a0

    def g(ls):
        t.train(m.init_weights(ls, seed=2))
        return m.evaluate(valid, t.weights).loss

    ls0 = np.full(4, -1.0)
    e = np.eye(4)[2] * 1e-5
    np.testing.assert_allclose(dls[2], (g(ls0 + e) - g(ls0 - e)) / 2e-5, rtol=1e-5)


def test_model_keeps_its_data_alive_and_unchanged():
    d, m = make()
    hd = weakref.ref(d._h)
    with pytest.raises(revl.StateError, match="must not change"):
        d.standardize()
    with pytest.raises(revl.StateError, match="must not change"):
        d.set(np.zeros((3, 4)), [0, 1, 2])
    del d
    gc.collect()
    assert hd() is not None
    w = m.init_weights(-1.0)
    assert np.isfinite(m.grad(0, w)[0])
    assert m.train_data.n == 60
    x = m.train_data
    m.close()
    del m
    gc.collect()
    x.standardize()          # free to change now


def test_bad_arguments():
    d = blobs()
    with pytest.raises(revl.InvalidError, match="widths\\[0\\] is 5"):
        revl.MLP([5, 3], d)
    with pytest.raises(revl.InvalidError, match="3 classes, widths\\[-1\\] is 2"):
        revl.MLP([4, 2], d)
    with pytest.raises(revl.InvalidError, match="activation"):
        revl.MLP(W, d, activation="swish")
    with pytest.raises(revl.InvalidError, match="widths"):
        revl.MLP([4], d)
    m = revl.MLP(W, d)
    with pytest.raises(revl.InvalidError, match="features"):
        m.evaluate(revl.Dataset(np.zeros((3, 5)), [0, 1, 2]), np.zeros(m.n_params))
    cb = revl.Model(3, grad=lambda k, w, mm: (0.0, w))
    with pytest.raises(AttributeError):
        cb.evaluate


def test_blas_threads_sets_and_reports_openblas_count():
    # the OpenBLAS instance librevl (and numpy) loaded: the same soname is the same library
    openblas = ctypes.CDLL("libopenblas.so.0")
    start = openblas.openblas_get_num_threads()
    try:
        assert revl.blas_threads() == start
        assert revl.blas_threads(1) == start
        assert openblas.openblas_get_num_threads() == 1
        assert revl.blas_threads(0) == 1
        assert revl.blas_threads(2) == 1
        assert openblas.openblas_get_num_threads() == 2
        for bad in (-1, 1.5, True):
            with pytest.raises(revl.InvalidError):
                revl.blas_threads(bad)
        assert openblas.openblas_get_num_threads() == 2
    finally:
        revl.blas_threads(start)
    assert openblas.openblas_get_num_threads() == start
