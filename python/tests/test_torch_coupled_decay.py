"""revl.torch with momentum SGD and RMSprop and their coupled weight decay (torch.optim.SGD's and
RMSprop's weight_decay: the gradient becomes g + lambda w_t) per step and tensor, on a CNN with
batch norm and a frozen layer: revl's trajectory is torch.optim.SGD's / RMSprop's, its
hypergradients (every kind, weight_decay included, w0, meta) equal unrolled PyTorch's
(unrolled_hypergrad(..., optimizer="momentum" / "rmsprop", weight_decay=)), and weight_decay near
0 still gives the oracle's d weight_decay."""
import numpy as np
import pytest
import torch

import revl
import revl.torch as rt
from test_torch import close, data
from test_torch_bn import SHAPE, bn_bridge, bn_cnn

F = torch.nn.functional
META = np.array([-3.0, -2.0])
KINDS = {"momentum": ("alpha", "gamma", "weight_decay"),
         "rmsprop": ("alpha", "gamma", "beta2", "eps", "weight_decay")}


def schedule(m, T, optimizer, weight_decay=None):
    """Every (step, group) its own value of every kind; weight decay up to 0.05 unless given."""
    s = revl.Schedule.for_model(m, T, optimizer=optimizer)
    rng = np.random.default_rng(5)
    if optimizer == "momentum":
        s.set(alpha=0.3 * (0.5 + rng.random(s.shape)), gamma=0.5 + 0.4 * rng.random(s.shape))
    else:
        s.set(alpha=0.005 * (0.5 + rng.random(s.shape)), gamma=0.5 + 0.4 * rng.random(s.shape),
              beta2=0.9 + 0.09 * rng.random(s.shape), eps=1e-3 * (0.5 + rng.random(s.shape)))
    s.weight_decay = 0.05 * rng.random(s.shape) if weight_decay is None else weight_decay
    return s


def run(tm, s, valid, meta=META):
    t = revl.Trainer(tm.model(), s)
    w0 = tm.read_params()
    t.train(w0, meta)
    wT = t.weights.copy()
    f, dfdw = tm.evaluate(wT, *valid)
    hg = t.hypergrad(dfdw)
    assert np.array_equal(t.weights, w0)               # the walk back ended on w0 exactly
    return wT, f, hg


def oracle(tm, s, valid, meta=META, **kw):
    extra = {} if s.optimizer == "momentum" else {"beta2": s.beta2, "eps": s.eps}
    return rt.unrolled_hypergrad(tm, s.alpha, s.gamma, w0=tm.read_params(), meta=meta,
                                 optimizer=s.optimizer, objective=lambda w: tm.loss_on(w, *valid),
                                 **extra, **kw)


@pytest.mark.parametrize("optimizer", ["momentum", "rmsprop"])
def test_hypergradients_equal_unrolled_pytorch(optimizer):
    tm, valid, T = bn_bridge(bn_cnn()), data(SHAPE, 30, 2), 12
    s = schedule(tm.model(), T, optimizer)
    wT, f, hg = run(tm, s, valid)
    assert hg.kinds == KINDS[optimizer]
    ref = oracle(tm, s, valid, weight_decay=s.weight_decay)
    assert ref.kinds == KINDS[optimizer]
    assert f == pytest.approx(ref.f, rel=1e-10)
    close(wT, ref.w, 1e-10, floor=0)
    for kind in ("w0",) + KINDS[optimizer] + ("meta",):
        close(getattr(hg, kind), getattr(ref, kind), 1e-8, floor=0)
        assert np.all(np.abs(getattr(hg, kind)).max(axis=0) > 0), kind   # every group
    # the decay matters: the oracle without it is another run
    bare = oracle(tm, s, valid)
    assert np.max(np.abs(bare.alpha - hg.alpha)) > 1e-4 * np.max(np.abs(hg.alpha))


@pytest.mark.parametrize("optimizer", ["momentum", "rmsprop"])
def test_weight_decay_near_zero(optimizer):
    """lambda = 0 at every other step and 1e-9 at the rest: d weight_decay is the oracle's
    (not 0 at lambda = 0, where w_t is not 0), and lambda = 0 everywhere gives the run of the default schedule bit
    for bit."""
    tm, valid, T = bn_bridge(bn_cnn()), data(SHAPE, 30, 2), 8
    s = schedule(tm.model(), T, optimizer)
    lam = np.zeros(s.shape)
    lam[1::2] = 1e-9
    s.weight_decay = lam
    wT, f, hg = run(tm, s, valid)
    ref = oracle(tm, s, valid, weight_decay=s.weight_decay)
    close(hg.weight_decay, ref.weight_decay, 1e-8, floor=0)
    assert np.all(np.abs(hg.weight_decay[0::2]).max(axis=0) > 0)   # at lambda = 0, every group
    s.weight_decay = 0.0
    tm0 = bn_bridge(bn_cnn())
    s0 = schedule(tm0.model(), T, optimizer)
    s0.weight_decay = revl.Schedule.for_model(tm0.model(), T, optimizer=optimizer).weight_decay
    a, b = run(tm, s, valid), run(tm0, s0, valid)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    for kind in ("w0", "meta") + KINDS[optimizer]:
        assert np.array_equal(getattr(a[2], kind), getattr(b[2], kind)), kind


@pytest.mark.parametrize("optimizer", ["momentum", "rmsprop"])
def test_trajectory_equals_torch_optim(optimizer):
    """torch.optim.SGD / RMSprop on the module itself (one param group per tensor, every
    hyperparameter set per step and group), against revl's through the bridge (float64): w_T
    within 1e-9 relative. revl's momentum v <- gamma v - (1-gamma) g', w <- w + alpha v is SGD
    with momentum = dampening = gamma and lr = alpha from a zero momentum buffer (torch starts
    the buffer at g' itself when it has none); RMSprop's beta2 is torch's alpha, its gamma
    torch's momentum."""
    T = 15
    net = bn_cnn()
    tm = bn_bridge(net)
    s = schedule(tm.model(), T, optimizer)
    t = revl.Trainer(tm.model(), s)
    t.train(tm.read_params(), META)

    params = [p for p in net.parameters() if p.requires_grad]
    assert len(params) == s.shape[1]                   # one group per trainable tensor
    groups = [{"params": [p]} for p in params]
    if optimizer == "momentum":
        opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9, foreach=False)
        for p in params:
            opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
    else:
        opt = torch.optim.RMSprop(groups, lr=0.1, momentum=0.9, foreach=False)
    penalty, meta = tm.penalty, torch.tensor(META)
    gam = s.gamma_applied
    for step in range(T):
        for g, group in enumerate(opt.param_groups):
            group["lr"], group["weight_decay"] = s.alpha[step, g], s.weight_decay[step, g]
            group["momentum"] = gam[step, g]
            if optimizer == "momentum":
                group["dampening"] = gam[step, g]
            else:
                group["alpha"], group["eps"] = s.beta2_applied[step, g], s.eps[step, g]
        opt.zero_grad()
        x, y = tm.batch(step)
        loss = F.cross_entropy(net(x), y) + penalty(dict(net.named_parameters()), meta)
        loss.backward()
        opt.step()
    want = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
    np.testing.assert_allclose(t.weights, want, rtol=1e-9, atol=0)


def test_oracle_weight_decay_is_optional_for_coupled_decay_only():
    tm = bn_bridge(bn_cnn())
    s = schedule(tm.model(), 2, "momentum")
    ref = oracle(tm, s, data(SHAPE, 30, 2))               # no weight_decay: 0
    assert ref.kinds == KINDS["momentum"] and ref.weight_decay.shape == s.shape
    with pytest.raises(ValueError, match="optimizer 'adamw' needs weight_decay"):
        rt.unrolled_hypergrad(tm, s.alpha, w0=tm.read_params(), meta=META, optimizer="adamw",
                              beta1=0.9, beta2=0.99, eps=1e-8, objective=lambda w: 0)
