"""A numpy tanh network as a callback model: its HVP against finite differences of its gradient,
then the library's hypergradients (w0, alpha, gamma, meta) against central finite differences of
the whole training run, and exact reversal bit for bit."""
import numpy as np
import pytest

import revl
from tanh_model import TanhNet

T = 30
Q = 65536.0


def make(net, alpha=None, gamma=None, threads=0, truncate=0):
    m = revl.Model(net.n_params, net.n_meta, grad=net.grad, hvp=net.hvp, groups=net.groups)
    s = revl.Schedule.for_model(m, T)
    rng = np.random.default_rng(7)
    G = len(net.groups) - 1
    s.alpha = alpha if alpha is not None else 0.05 + 0.1 * rng.random((T, G))
    # gammas exactly on the 2^-16 grid, so perturbations by k/2^16 stay on it
    s.gamma = gamma if gamma is not None else np.round((0.8 + 0.15 * rng.random((T, G))) * Q) / Q
    t = revl.Trainer(m, s, threads=threads, truncate=truncate)
    return m, s, t


def run(net, s, t, w0, meta):
    t.train(w0, meta)
    return net.valid(t.weights)[0]


def test_hvp_matches_finite_differences_of_the_gradient():
    net = TanhNet()
    rng = np.random.default_rng(3)
    w, v, meta = net.init(), rng.normal(size=net.n_params), np.array([-1.3])
    hv, hm = net.hvp(4, w, meta, v)
    h = 1e-6
    fd = (net.grad(4, w + h * v, meta)[1] - net.grad(4, w - h * v, meta)[1]) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=1e-7, atol=1e-9)
    fdm = (net.grad(4, w, meta + h)[1] @ v - net.grad(4, w, meta - h)[1] @ v) / (2 * h)
    np.testing.assert_allclose(hm, [fdm], rtol=1e-7)
    # and the gradient against finite differences of the loss
    e = rng.normal(size=net.n_params)
    fdl = (net.grad(4, w + h * e, meta)[0] - net.grad(4, w - h * e, meta)[0]) / (2 * h)
    np.testing.assert_allclose(net.grad(4, w, meta)[1] @ e, fdl, rtol=1e-7)


def test_model_calls_reach_the_callbacks():
    net = TanhNet()
    m = revl.Model(net.n_params, 1, grad=net.grad, hvp=net.hvp)
    w, v, meta = net.init(), net.init(seed=5), np.array([-2.0])
    loss, g = m.grad(3, w, meta)
    l2, g2 = net.grad(3, w, meta)
    assert loss == l2 and np.array_equal(g, g2)
    hv, hm = m.hvp(3, w, meta, v)
    hv2, hm2 = net.hvp(3, w, meta, v)
    assert np.array_equal(hv, hv2) and np.array_equal(hm, hm2)


def fd_direction(f, x, d, h):
    """Central difference of f along d, with Richardson extrapolation (error O(h^4))."""
    d1 = (f(x + h * d) - f(x - h * d)) / (2 * h)
    d2 = (f(x + 2 * h * d) - f(x - 2 * h * d)) / (4 * h)
    return (4 * d1 - d2) / 3


@pytest.fixture(scope="module")
def setup():
    net = TanhNet()
    m, s, t = make(net)
    w0, meta = net.init(), np.array([-2.0])
    t.train(w0, meta)
    wT = t.weights
    f, dfdw = net.valid(wT)
    hg = t.hypergrad(dfdw)
    return net, m, s, t, w0, meta, hg


def test_exact_reversal_bit_for_bit(setup):
    net, m, s, t, w0, meta, hg = setup
    w0_fixed = np.round(w0 * 2.0**52) / 2.0**52       # w0 as held in fixed point
    assert t.weights.tobytes() == w0_fixed.tobytes()
    assert t.stats["steps_done"] == 0
    assert t.stats["buffer_bits"] == 0


def test_training_is_deterministic_and_thread_independent():
    net = TanhNet()
    w0, meta = net.init(), np.array([-2.0])
    results = []
    for threads in (1, 2, 0):
        m, s, t = make(net, threads=threads)
        t.train(w0, meta)
        wT = t.weights
        hg = t.hypergrad(net.valid(wT)[1])
        results.append((wT.tobytes(), hg.w0.tobytes(), hg.alpha.tobytes(), hg.gamma.tobytes(),
                        hg.meta.tobytes()))
    assert results[0] == results[1] == results[2]


def test_hypergrad_w0(setup):
    net, m, s, t, w0, meta, hg = setup
    f = lambda w: run(net, s, t, w, meta)   # noqa: E731
    rng = np.random.default_rng(11)
    for _ in range(3):
        d = rng.normal(size=net.n_params)
        np.testing.assert_allclose(hg.w0 @ d, fd_direction(f, w0, d, 1e-4), rtol=1e-6)
    for i in (0, 5, net.n_params - 1):
        e = np.zeros(net.n_params)
        e[i] = 1
        np.testing.assert_allclose(hg.w0[i], fd_direction(f, w0, e, 1e-4), rtol=1e-5, atol=1e-9)


def test_hypergrad_alpha(setup):
    net, m, s, t, w0, meta, hg = setup
    alpha0 = s.alpha.copy()

    def f(a):
        s.alpha = a
        return run(net, s, t, w0, meta)

    try:
        rng = np.random.default_rng(12)
        d = rng.normal(size=alpha0.shape)
        np.testing.assert_allclose(np.sum(hg.alpha * d), fd_direction(f, alpha0, d, 1e-5),
                                   rtol=1e-6)
        for (k, g) in ((0, 0), (T // 2, 2), (T - 1, 3)):
            e = np.zeros(alpha0.shape)
            e[k, g] = 1
            np.testing.assert_allclose(hg.alpha[k, g], fd_direction(f, alpha0, e, 1e-5),
                                       rtol=1e-5, atol=1e-10)
    finally:
        s.alpha = alpha0


def test_hypergrad_gamma(setup):
    """gamma is applied as the nearest n/2^16: steps of whole multiples of 2^-16 only."""
    net, m, s, t, w0, meta, hg = setup
    gamma0 = s.gamma.copy()
    assert np.array_equal(gamma0, s.gamma_applied)

    def f(g):
        s.gamma = g
        assert np.array_equal(s.gamma, s.gamma_applied)
        return run(net, s, t, w0, meta)

    try:
        rng = np.random.default_rng(13)
        d = rng.integers(-1, 2, size=gamma0.shape).astype(float)   # integer direction
        h = 16 / Q
        np.testing.assert_allclose(np.sum(hg.gamma * d), fd_direction(f, gamma0, d, h),
                                   rtol=1e-5)
        for (k, g) in ((1, 0), (T // 2, 1), (T - 2, 3)):
            e = np.zeros(gamma0.shape)
            e[k, g] = 1
            np.testing.assert_allclose(hg.gamma[k, g], fd_direction(f, gamma0, e, 64 / Q),
                                       rtol=1e-4, atol=1e-9)
    finally:
        s.gamma = gamma0


def test_hypergrad_meta(setup):
    net, m, s, t, w0, meta, hg = setup
    f = lambda lam: run(net, s, t, w0, lam)   # noqa: E731
    np.testing.assert_allclose(hg.meta, [fd_direction(f, meta, np.ones(1), 1e-4)], rtol=1e-6)


def test_dfdmeta_is_added(setup):
    net, m, s, t, w0, meta, hg = setup
    t.train(w0, meta)
    dfdw = net.valid(t.weights)[1]
    hg2 = t.hypergrad(dfdw, dfdmeta=[0.25])
    np.testing.assert_allclose(hg2.meta, hg.meta + 0.25, rtol=1e-12)
    assert np.array_equal(hg2.w0, hg.w0)


def test_finite_difference_hvp_fallback():
    """Without hvp the library differentiates the gradient numerically: close, not exact."""
    net = TanhNet()
    w0, meta = net.init(), np.array([-2.0])
    m1, s1, t1 = make(net)
    t1.train(w0, meta)
    hg1 = t1.hypergrad(net.valid(t1.weights)[1])
    m2 = revl.Model(net.n_params, 1, grad=net.grad, groups=net.groups)
    s2 = revl.Schedule.for_model(m2, T, s1.alpha, s1.gamma)
    t2 = revl.Trainer(m2, s2)
    t2.train(w0, meta)
    hg2 = t2.hypergrad(net.valid(t2.weights)[1])
    np.testing.assert_allclose(hg2.w0, hg1.w0, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(hg2.meta, hg1.meta, rtol=1e-5)


def test_hvp_gives_grad_fused():
    net = TanhNet()

    def fused(step, w, meta, v):
        hv, hm = net.hvp(step, w, meta, v)
        return hv, hm, net.grad(step, w, meta)[1]

    w0, meta = net.init(), np.array([-2.0])
    m1, s1, t1 = make(net)
    t1.train(w0, meta)
    hg1 = t1.hypergrad(net.valid(t1.weights)[1])
    m2 = revl.Model(net.n_params, 1, grad=net.grad, hvp=fused, hvp_gives_grad=True,
                    groups=net.groups)
    t2 = revl.Trainer(m2, revl.Schedule.for_model(m2, T, s1.alpha, s1.gamma))
    t2.train(w0, meta)
    hg2 = t2.hypergrad(net.valid(t2.weights)[1])
    assert np.array_equal(hg1.w0, hg2.w0) and np.array_equal(hg1.alpha, hg2.alpha)


def test_truncated_hypergrad():
    net = TanhNet(n_meta=0)
    w0 = net.init()
    m, s, t = make(net, truncate=10)
    t.train(w0)
    wT = t.weights
    hg = t.hypergrad(net.valid(wT)[1])
    assert np.all(hg.alpha[:T - 10] == 0) and np.all(hg.gamma[:T - 10] == 0)
    assert np.any(hg.alpha[T - 10:] != 0)
    assert hg.meta.shape == (0,)
    assert t.stats["steps_done"] == T - 10


def test_init_weights_and_scales_grad():
    net = TanhNet()
    m = revl.Model(net.n_params, 1, grad=net.grad, groups=net.groups)
    ls = np.array([-1.0, -2.0, -0.5, -3.0])
    w0 = m.init_weights(ls, seed=42)
    assert np.array_equal(w0, m.init_weights(ls, seed=42))
    assert not np.array_equal(w0, m.init_weights(ls, seed=43))
    z = m.init_weights(np.zeros(4), seed=42)
    for g in range(4):
        sl = slice(net.groups[g], net.groups[g + 1])
        np.testing.assert_allclose(w0[sl], np.exp(ls[g]) * z[sl], rtol=1e-15)
    d = np.random.default_rng(0).normal(size=net.n_params)
    dls = m.init_scales_grad(w0, d)
    np.testing.assert_allclose(dls, [d[net.groups[g]:net.groups[g + 1]] @
                                     w0[net.groups[g]:net.groups[g + 1]] for g in range(4)])
    assert np.array_equal(m.init_weights(-1.0, seed=1), m.init_weights([-1.0] * 4, seed=1))
