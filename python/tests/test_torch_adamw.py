"""revl.torch with AdamW (decoupled weight decay per step and tensor) on a CNN with batch norm and
a frozen layer: revl's hypergradients (every kind, w0, meta) equal unrolled PyTorch's AdamW
(unrolled_hypergrad(..., optimizer="adamw")), its trajectory is torch.optim.AdamW's, weight
decay 0 is Adam bit for bit, and revl.HyperOpt learns the weight decay through the bridge with
the oracle's hypergradient."""
import numpy as np
import pytest
import torch

import revl
import revl.torch as rt
from test_torch import close, data
from test_torch_bn import SHAPE, bn_bridge, bn_cnn, stats_equal

F = torch.nn.functional
KINDS = ("alpha", "beta1", "beta2", "eps", "weight_decay")
META = np.array([-3.0, -2.0])


def schedule(m, T, optimizer="adamw", weight_decay=None):
    """Every (step, group) its own alpha, beta1, beta2, eps and (AdamW) weight decay, with
    alpha * weight_decay up to 0.01; the same draws for Adam and AdamW."""
    s = revl.Schedule.for_model(m, T, optimizer=optimizer)
    rng = np.random.default_rng(5)
    s.set(alpha=0.02 * (0.5 + rng.random(s.shape)), beta1=0.8 + 0.15 * rng.random(s.shape),
          beta2=0.9 + 0.09 * rng.random(s.shape), eps=1e-3 * (0.5 + rng.random(s.shape)))
    lam = 0.5 * rng.random(s.shape) if weight_decay is None else weight_decay
    if optimizer == "adamw":
        s.set(weight_decay=lam)
    return s


def run(tm, s, valid, meta=META):
    """Train, evaluate and reverse: (w_T, running statistics of w_T, f, hypergradients)."""
    t = revl.Trainer(tm.model(), s)
    w0 = tm.read_params()
    t.train(w0, meta)
    wT, stats = t.weights.copy(), tm.running_stats()
    f, dfdw = tm.evaluate(wT, *valid)
    hg = t.hypergrad(dfdw)
    assert np.array_equal(t.weights, w0)               # the walk back ended on w0 exactly
    return wT, stats, f, hg


def oracle(tm, s, valid, meta=META):
    return rt.unrolled_hypergrad(tm, s.alpha, w0=tm.read_params(), meta=meta,
                                 optimizer="adamw", beta1=s.beta1, beta2=s.beta2, eps=s.eps,
                                 weight_decay=s.weight_decay,
                                 objective=lambda w: tm.loss_on(w, *valid))


# measured: at most 4e-14 of each kind's largest entry (alpha, eps), w_T 1e-15
def test_hypergradients_equal_unrolled_pytorch_adamw():
    tm, valid, T = bn_bridge(bn_cnn()), data(SHAPE, 30, 2), 12
    s = schedule(tm.model(), T)
    wT, stats, f, hg = run(tm, s, valid)
    assert hg.kinds == KINDS
    ref = oracle(tm, s, valid)
    assert ref.kinds == KINDS
    assert f == pytest.approx(ref.f, rel=1e-10)
    close(wT, ref.w, 1e-10, floor=0)
    for kind in ("w0",) + KINDS + ("meta",):
        close(getattr(hg, kind), getattr(ref, kind), 1e-8, floor=0)
        assert np.all(np.abs(getattr(hg, kind)).max(axis=0) > 0), kind   # every group
    for k in stats:
        close(stats[k].numpy(), ref.stats[k].numpy(), 1e-10, floor=0)
    # the decay matters: the oracle without it (Adam from the same draws) is another run
    adam = rt.unrolled_hypergrad(tm, s.alpha, w0=tm.read_params(), meta=META, optimizer="adam",
                                 beta1=s.beta1, beta2=s.beta2, eps=s.eps,
                                 objective=lambda w: tm.loss_on(w, *valid))
    assert np.max(np.abs(adam.alpha - hg.alpha)) > 1e-3 * np.max(np.abs(hg.alpha))


def test_trajectory_equals_torch_optim_adamw():
    """torch.optim.AdamW on the module itself (one param group per tensor; lr and weight_decay
    set per step and group, betas and eps constant as torch keeps them; the batch norms update
    the module's buffers), against revl's AdamW through the bridge (float64): w_T and the
    running statistics within 1e-9 relative."""
    T = 15
    net = bn_cnn()
    tm = bn_bridge(net)
    b1, b2 = revl.beta_applied(0.9), revl.beta_applied(0.99)
    s = schedule(tm.model(), T)
    s.set(beta1=b1, beta2=b2, eps=1e-8)
    t = revl.Trainer(tm.model(), s)
    t.train(tm.read_params(), META)

    params = [p for p in net.parameters() if p.requires_grad]
    assert len(params) == s.shape[1]                   # one group per trainable tensor
    opt = torch.optim.AdamW([{"params": [p]} for p in params], betas=(b1, b2), eps=1e-8,
                            foreach=False)
    penalty = tm.penalty
    meta = torch.tensor(META)
    for step in range(T):
        for g, group in enumerate(opt.param_groups):
            group["lr"], group["weight_decay"] = s.alpha[step, g], s.weight_decay[step, g]
        opt.zero_grad()
        x, y = tm.batch(step)
        loss = F.cross_entropy(net(x), y) + penalty(dict(net.named_parameters()), meta)
        loss.backward()
        opt.step()
    want = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
    # measured: 7e-14 relative (elementwise), 2e-15 of the largest |w|; the statistics 4e-15
    np.testing.assert_allclose(t.weights, want, rtol=1e-9, atol=0)
    stats = tm.running_stats()
    for k, v in net.named_buffers():
        np.testing.assert_allclose(stats[k].numpy(), v.numpy(), rtol=1e-9, atol=0)


def test_weight_decay_zero_is_adam_bit_for_bit():
    """AdamW with weight_decay = 0 everywhere gives Adam's w_T, running statistics and
    hypergradients with the same bits through the bridge; its d weight_decay is the oracle's."""
    valid, T = data(SHAPE, 30, 2), 10
    out = {}
    for optimizer in ("adam", "adamw"):
        tm = bn_bridge(bn_cnn())
        s = schedule(tm.model(), T, optimizer, weight_decay=0.0)
        out[optimizer] = run(tm, s, valid) + (tm, s)
    (wa, sa, fa, ha, _, _), (ww, sw, fw, hw, tm, s) = out["adam"], out["adamw"]
    assert np.array_equal(wa, ww) and fa == fw and stats_equal(sa, sw)
    for kind in ("w0", "alpha", "beta1", "beta2", "eps", "meta"):
        assert np.array_equal(getattr(ha, kind), getattr(hw, kind)), kind
    ref = oracle(tm, s, valid)
    close(hw.weight_decay, ref.weight_decay, 1e-8, floor=0)
    assert np.all(np.abs(hw.weight_decay).max(axis=0) > 0)


def test_hyperopt_learns_weight_decay_with_the_oracles_hypergradient():
    """revl.HyperOpt(optimizer="adamw") on the bridge, learning log alpha and log weight decay
    by plain gradient steps (SGD without momentum, no chaos guard): one meta-iteration moves
    each log value by -step_size * value * (d f / d value), and d f / d value is unrolled
    PyTorch's at the starting point."""
    tm, (xv, yv), T = bn_bridge(bn_cnn()), data(SHAPE, 30, 2), 8
    m = tm.model()

    def objective(w, meta):
        f, dfdw = tm.evaluate(w, xv, yv)
        return f, dfdw, None

    step = 1.0
    h = revl.HyperOpt(m, None, T, optimizer="adamw", learn="alpha,weight_decay", method="sgd",
                      momentum=0.0, step_size=step, chaos_factor=0, objective=objective, seed=3)
    assert h.kinds == KINDS
    rng = np.random.default_rng(6)
    h.set(alpha=0.01 * (0.5 + rng.random((T, m.n_groups))), meta=META,
          weight_decay=0.05 + 0.5 * rng.random((T, m.n_groups)), log_init_scales=np.log(0.3))
    before = h.get()
    h.step()
    after = h.get()
    w0 = m.init_weights(before.log_init_scales, 3)
    ref = rt.unrolled_hypergrad(tm, before.alpha, w0=w0, meta=META, optimizer="adamw",
                                beta1=before.beta1, beta2=before.beta2, eps=before.eps,
                                weight_decay=before.weight_decay,
                                objective=lambda w: tm.loss_on(w, xv, yv))
    for kind in ("alpha", "weight_decay"):
        x0, x1 = getattr(before, kind), getattr(after, kind)
        learned = -(np.log(x1) - np.log(x0)) / (step * x0)
        close(learned, getattr(ref, kind), 1e-8, floor=0)
        assert np.all(np.abs(learned).max(axis=0) > 0), kind
    for kind in ("beta1", "beta2", "eps"):                 # not learned: the same bits
        assert np.array_equal(getattr(before, kind), getattr(after, kind))


def test_oracle_needs_the_weight_decay():
    tm = bn_bridge(bn_cnn())
    s = schedule(tm.model(), 2)
    with pytest.raises(ValueError, match="optimizer 'adamw' needs weight_decay"):
        rt.unrolled_hypergrad(tm, s.alpha, w0=tm.read_params(), meta=META, optimizer="adamw",
                              beta1=s.beta1, beta2=s.beta2, eps=s.eps, objective=lambda w: 0)
