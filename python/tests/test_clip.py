"""Gradient clipping by global norm (the library's driver kind "clip", every optimiser): the kind
read from the library, its default (+inf: no clipping), bad values, and d clip and d alpha
against central differences of the whole run with clipping at some steps and not others."""
import numpy as np
import pytest

import revl
from tanh_model import TanhNet

T = 12


def test_clip_is_every_schedules_driver_kind():
    assert "clip" in revl.KINDS
    for opt in revl.OPTIMIZERS:
        s = revl.Schedule(T, [0, 3, 6], optimizer=opt)
        assert "clip" not in s.kinds and s.driver_kinds == ("clip",)
        assert np.all(s.clip == np.inf)
        s.clip = 2.0
        assert np.all(s.clip == 2.0)
        bad = np.full(s.shape, 1.0)
        bad[3, 1] = 0.0
        with pytest.raises(revl.InvalidError, match="clip = 0 must be > 0.*at step 3, group 1"):
            s.clip = bad
        with pytest.raises(revl.InvalidError, match="clip = nan"):
            s.clip = np.nan
        assert np.all(s.clip == 2.0)        # unchanged by the failed calls


def _run(opt, clip_scale=1.0, alpha_scale=1.0):
    net = TanhNet(seed=3)
    m = revl.Model(net.n_params, net.n_meta, grad=net.grad, hvp=net.hvp, groups=net.groups)
    s = revl.Schedule.for_model(m, T, optimizer=opt)
    lr = {"momentum": 0.3, "rmsprop": 0.01}.get(opt, 0.03)
    s.set(alpha=alpha_scale * np.full(s.shape, lr))
    # clipping at about half the (step, group): finite at steps t % 3 != 2, small in the
    # groups of W1 and w2, large (never clips) in the biases'
    tau = np.full(s.shape, np.inf)
    tau[np.arange(T) % 3 != 2] = [0.05, 50.0, 0.08, 50.0]
    s.clip = clip_scale * tau
    t = revl.Trainer(m, s)
    w0 = 0.5 * np.sin(np.arange(net.n_params) + 1.0)
    meta = np.array([-2.0])
    t.train(w0, meta)
    return net, t, w0, meta


@pytest.mark.parametrize("opt", list(revl.OPTIMIZERS))
def test_clip_hypergrad_against_finite_differences(opt):
    net, t, w0, meta = _run(opt)
    loss, grad = net.valid(t.weights)
    hg = t.hypergrad(grad)
    assert "clip" in hg.kinds
    finite = np.isfinite(t.schedule.clip)
    clipped = hg.clip[finite] != 0
    assert clipped.sum() >= 8 and (~clipped).sum() >= 8   # some clip, some do not
    assert np.all(hg.clip[~finite] == 0)

    def f(**scale):
        _, tt, _, _ = _run(opt, **scale)
        return net.valid(tt.weights)[0]

    tau, alpha = t.schedule.clip, t.schedule.alpha
    for name, h, direction in (("clip", 1e-5, np.where(finite, tau, 0.0)), ("alpha", 1e-5, alpha)):
        fd = (f(**{name + "_scale": 1 + h}) - f(**{name + "_scale": 1 - h})) / (2 * h)
        rev = float(np.sum(getattr(hg, name) * direction))
        assert abs(fd - rev) <= 1e-5 * max(abs(fd), abs(rev)) + 1e-9, (name, fd, rev)


@pytest.mark.parametrize("opt", list(revl.OPTIMIZERS))
def test_family_learns_log_clip(opt):
    """Family(learn=['clip']): a last (T, G) block of log clip in z (base 0, i.e. clip 1, box
    [log 0.1, log 10]); per_step's theta is that block, copied bit for bit."""
    plain = revl.Family(opt, T, 3)
    f = revl.Family(opt, T, 3, learn=["clip"])
    assert f.n_z == plain.n_z + T * 3 and f.n_theta == T * 3
    lo, hi = f.bounds
    np.testing.assert_allclose(lo, np.log(0.1), rtol=1e-15)
    np.testing.assert_allclose(hi, np.log(10.0), rtol=1e-15)
    theta = np.linspace(-1, 1, T * 3)
    z = f.map(theta)
    np.testing.assert_array_equal(z[-T * 3:], theta)
    np.testing.assert_array_equal(z[:plain.n_z], f.base[:plain.n_z])
    assert f.coord_names[0] == "log clip at step 0, group 0"
