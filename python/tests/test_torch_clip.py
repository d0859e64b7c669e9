"""Gradient clipping by global norm through the torch bridge: revl's trajectory with a clip per
step is torch.optim.Adam's after torch.nn.utils.clip_grad_norm_ (float64, w_T within 1e-9
relative), and revl's hypergradients (every kind, clip, w0, meta) equal the unrolled oracle's
(unrolled_hypergrad(..., clip=)) for momentum and Adam, with clipping at some (step, group) and
not others."""
import numpy as np
import pytest
import torch

import revl
import revl.torch as rt
from test_torch import bridge, close, data, mlp

F = torch.nn.functional
SHAPE = (5,)


def clip_values(shape, per_group=True):
    """About half the steps clipped (the MLP's gradient norm is ~0.3 .. 0.7), a third never
    (+inf); per_group: each group its own threshold, else one per step (clip_grad_norm_'s)."""
    rng = np.random.default_rng(9)
    tau = 0.1 + 0.8 * rng.random(shape if per_group else (shape[0], 1))
    tau = np.broadcast_to(tau, shape).copy()
    tau[np.arange(shape[0]) % 3 == 2] = np.inf
    return tau


def test_trajectory_equals_torch_clip_grad_norm_and_adam():
    T = 15
    net = mlp()
    tm = bridge(net, SHAPE)
    meta = np.linspace(-3.0, -2.0, tm.n_meta)
    b1, b2 = revl.beta_applied(0.9), revl.beta_applied(0.99)
    s = revl.Schedule.for_model(tm.model(), T, optimizer="adam")
    rng = np.random.default_rng(4)
    s.set(alpha=0.05 * (0.5 + rng.random(s.shape)), beta1=b1, beta2=b2, eps=1e-8)
    s.clip = clip_values(s.shape, per_group=False)
    t = revl.Trainer(tm.model(), s)
    t.train(tm.read_params(), meta)

    params = [p for p in net.parameters() if p.requires_grad]
    assert len(params) == s.shape[1]
    opt = torch.optim.Adam([{"params": [p]} for p in params], betas=(b1, b2), eps=1e-8,
                           foreach=False)
    mt, clipped = torch.tensor(meta), 0
    for step in range(T):
        for g, group in enumerate(opt.param_groups):
            group["lr"] = s.alpha[step, g]
        opt.zero_grad()
        x, y = tm.batch(step)
        loss = F.cross_entropy(net(x), y) + tm.penalty(dict(net.named_parameters()), mt)
        loss.backward()
        if np.isfinite(s.clip[step, 0]):
            norm = torch.nn.utils.clip_grad_norm_(params, s.clip[step, 0])
            clipped += bool(norm > s.clip[step, 0])
        opt.step()
    assert 3 <= clipped <= 7                           # of the 10 finite
    want = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
    np.testing.assert_allclose(t.weights, want, rtol=1e-9, atol=0)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_hypergradients_equal_unrolled_oracle_with_clip(optimizer):
    tol, T = 1e-8, 12
    tm = bridge(mlp(), SHAPE)
    meta = np.linspace(-3.0, -2.0, tm.n_meta)
    valid = data(SHAPE, 30, 2)
    m = tm.model()
    s = revl.Schedule.for_model(m, T, optimizer=optimizer)
    rng = np.random.default_rng(3)
    if optimizer == "momentum":
        s.set(alpha=0.25 * (0.5 + rng.random(s.shape)), gamma=0.875)
    else:
        s.set(alpha=0.02 * (0.5 + rng.random(s.shape)), beta1=0.8 + 0.15 * rng.random(s.shape),
              beta2=0.9 + 0.09 * rng.random(s.shape), eps=1e-3 * (0.5 + rng.random(s.shape)))
    s.clip = clip_values(s.shape)
    t = revl.Trainer(m, s)
    w0 = tm.read_params()
    t.train(w0, meta)
    f, dfdw = tm.evaluate(t.weights, *valid)
    hg = t.hypergrad(dfdw)
    assert np.array_equal(t.weights, w0)
    assert hg.kinds == s.kinds + ("clip",)
    kw = {k: getattr(s, k) for k in s.kinds if k != "alpha"}
    ref = rt.unrolled_hypergrad(tm, s.alpha, w0=w0, meta=meta, optimizer=optimizer,
                                clip=s.clip, objective=lambda w: tm.loss_on(w, *valid), **kw)
    assert ref.kinds == hg.kinds
    assert f == pytest.approx(ref.f, rel=10 * tol)
    for kind in ("w0", "meta") + hg.kinds:
        close(getattr(hg, kind), getattr(ref, kind), tol)
    nz = hg.clip[np.isfinite(s.clip)] != 0
    assert nz.sum() >= 5 and (~nz).sum() >= 5         # clipped and not, at finite clips
    assert np.all(hg.clip[~np.isfinite(s.clip)] == 0)
