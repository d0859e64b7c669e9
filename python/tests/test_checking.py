"""Finite-difference checks on revl's grids (docs/checking.md): revl.fixed_round gives the w0
training starts from and returns to; gamma steps must be multiples of revl.GAMMA_GRID."""
import numpy as np
import pytest

import revl

P, T = 4, 30
C = np.arange(1.0, P + 1)


def grad(step, w, meta):
    c = C * (1 + 0.1 * (step % 3))
    return 0.5 * np.sum(c * (w - 1) ** 2), c * (w - 1)


def hvp(step, w, meta, v):
    return C * (1 + 0.1 * (step % 3)) * v, None


def run(w0, gamma, frac_bits=52):
    m = revl.Model(P, grad=grad, hvp=hvp)
    s = revl.Schedule(T, [0, P], alpha=0.1, gamma=gamma)
    t = revl.Trainer(m, s, frac_bits=frac_bits)
    t.train(w0)
    w = t.weights
    hg = t.hypergrad(dfdw=w)
    return 0.5 * w @ w, hg, t.weights


def test_fixed_round():
    assert np.array_equal(revl.fixed_round([0.1, -0.1, 2.5], frac_bits=10),
                          [102 / 1024, -102 / 1024, 2.5])
    with pytest.raises(revl.RangeError, match=r"w\[1\] = 2048.0 is outside the fixed-point "
                                              r"range \|w\| < 2\^11 \["):
        revl.fixed_round([0.0, 2048.0])
    # NaN said once, not "w[0] = nan is not finite or outside ..." (issue 24)
    with pytest.raises(revl.RangeError) as ei:
        revl.fixed_round([np.nan])
    assert ei.value.message == "w[0] is NaN"
    with pytest.raises(revl.RangeError) as ei:
        revl.fixed_round([0.0, -np.inf])
    assert ei.value.message == "w[1] = -inf is not finite"
    with pytest.raises(revl.InvalidError, match="frac_bits"):
        revl.fixed_round([0.0], frac_bits=63)


@pytest.mark.parametrize("frac_bits", [52, 20])
def test_weights_equal_w0_only_on_the_grid(frac_bits):
    w0 = np.array([0.1, -0.7, 1 / 3, 0.25])
    _, _, back = run(w0, 0.5, frac_bits)
    assert np.array_equal(back, revl.fixed_round(w0, frac_bits))
    assert not np.array_equal(back, w0)
    on_grid = revl.fixed_round(w0, frac_bits)
    _, _, back = run(on_grid, 0.5, frac_bits)
    assert np.array_equal(back, on_grid)


def test_gamma_differences_need_grid_steps():
    w0 = revl.fixed_round([0.5, -0.25, 0.75, 0.1])
    g = np.full((T, 1), revl.gamma_applied(0.9))
    f, hg, _ = run(w0, g)
    k, h = 7, 64 * revl.GAMMA_GRID
    gp, gm = g.copy(), g.copy()
    gp[k] += h
    gm[k] -= h
    fd = (run(w0, gp)[0] - run(w0, gm)[0]) / (2 * h)
    assert abs(fd - hg.gamma[k, 0]) <= 1e-5 * abs(hg.gamma[k, 0])
    gp[k], gm[k] = g[k] + revl.GAMMA_GRID / 4, g[k] - revl.GAMMA_GRID / 4
    assert run(w0, gp)[0] == run(w0, gm)[0] == f     # below the grid: nothing changes
