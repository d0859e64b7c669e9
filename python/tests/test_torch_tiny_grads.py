"""Issue 24 item 13 through the torch bridge: Adam and RMSprop train ordinary networks whose
step-0 gradient has entries 0 < |g| < 3e-14 (below the resolution at which (1 - beta2) g^2
adds to s, where the exact arithmetic once stopped with "s is 0 while m is not"): a
zero-initialised output layer on a balanced full batch, and a convolution with a bias followed
by BatchNorm2d(track_running_stats=False), whose bias gradient is a rounding residue. Each
trains, walks back to w0 exactly, gives finite hypergradients equal to unrolled PyTorch's, and
its trajectory is torch.optim.Adam's (float64)."""
import numpy as np
import pytest
import torch

import revl
import revl.torch as rt
from test_torch import close, l2_penalty

F = torch.nn.functional
META = np.array([-3.0, -2.5])


def balanced(shape, n, seed):
    """n examples, classes 0, 1, 2 in turn: a full batch holds each class n/3 times (15: the
    zero-output network's bias residue is 3.5e-17; 12 gives exactly 0)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n,) + shape, generator=g, dtype=torch.float64), torch.arange(n) % 3


def zero_output_mlp():
    """A new head fine-tuned on a frozen feature layer (Linear, tanh), the head all zeros: at
    step 0 every softmax is 1/3, so on a balanced batch the head's bias gradient is 1/3 minus
    each class's share, a rounding residue. (The feature layer is frozen so that unrolled
    PyTorch, which differentiates sqrt(s) at s = 0 where a gradient is exactly 0, gives finite
    numbers to compare with: a trainable layer under a zero head has gradient 0 at step 0.)"""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(),
                              torch.nn.Linear(7, 3)).double()
    with torch.no_grad():
        net[2].weight.zero_()
        net[2].bias.zero_()
    for p in net[0].parameters():
        p.requires_grad_(False)
    return net, (5,), ["2.weight", "2.bias"]


def conv_bias_bn():
    """A convolution with a bias, then batch norm on batch statistics only (what docs/torch.md
    recommends): batch norm takes the mean out, so the bias's gradient is a rounding residue."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3),
                              torch.nn.BatchNorm2d(2, track_running_stats=False),
                              torch.nn.Tanh(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 5 * 5, 3)).double()
    return net, (1, 7, 7), ["0.weight", "4.weight"]


NETS = {"zero-output-mlp": zero_output_mlp, "conv-bias-batchnorm": conv_bias_bn}


def bridge(make):
    net, shape, penalised = make()
    tm = rt.TorchModel(net, F.cross_entropy, balanced(shape, 15, 1), batch_size=15,
                       n_meta=2, penalty=l2_penalty(penalised))
    return net, shape, tm


def tiny_entries(tm):
    """The step-0 gradient's entries with 0 < |g| < 3e-14: the case this file is about."""
    _, g = tm.grad(0, tm.read_params(), META)
    g = np.abs(np.asarray(g))
    return int(np.sum((g > 0) & (g < 3e-14)))


def schedule(m, T, optimizer):
    """Every (step, group) its own alpha; constant betas and eps (as torch.optim keeps them).
    eps = 1e-6: a residue gradient g (about 1e-16, noise that revl's fixed-point w and torch's
    float w round differently) moves its weight by up to alpha g / eps per step, which must
    stay far below the tolerances (1e-10 of the largest |w|)."""
    s = revl.Schedule.for_model(m, T, optimizer=optimizer)
    rng = np.random.default_rng(6)
    s.alpha = 0.01 * (0.5 + rng.random(s.shape))
    s.set(beta2=revl.beta_applied(0.999 if optimizer == "adam" else 0.99), eps=1e-6)
    if optimizer == "adam":
        s.set(beta1=revl.beta_applied(0.9))
    return s


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
@pytest.mark.parametrize("name", list(NETS))
def test_tiny_step0_gradients_train_and_reverse(name, optimizer):
    net, shape, tm = bridge(NETS[name])
    assert tiny_entries(tm) > 0
    T = 8
    m = tm.model()
    s = schedule(m, T, optimizer)
    t = revl.Trainer(m, s)
    w0 = tm.read_params()
    t.train(w0, META)
    wT = t.weights
    assert np.all(np.isfinite(wT)) and not np.array_equal(wT, w0)
    valid = balanced(shape, 9, 2)
    f, dfdw = tm.evaluate(wT, *valid)
    hg = t.hypergrad(dfdw)
    assert np.array_equal(t.weights, w0)               # the walk back ended on w0 exactly
    for kind in ("w0", "meta") + hg.kinds:
        assert np.all(np.isfinite(getattr(hg, kind))), kind
    if optimizer == "rmsprop":    # unrolled_hypergrad has no RMSprop
        return
    # PyTorch's own unrolled Adam on the same schedule: the same hypergradients
    ref = rt.unrolled_hypergrad(tm, s.alpha, w0=w0, meta=META, optimizer="adam",
                                beta1=s.beta1, beta2=s.beta2, eps=s.eps,
                                objective=lambda w: tm.loss_on(w, *valid))
    assert f == pytest.approx(ref.f, rel=1e-10)
    close(wT, ref.w, 1e-10, floor=0)
    # measured: every kind within 2e-13 of its largest entry but w0 of the zero-output network,
    # 2.8e-8: the unit (2^-100) every g != 0 adds to s (docs/errors.md) makes sqrt(s_hat) about
    # sqrt(2^-100 / (1 - beta2)) = 2.8e-14 where unrolled Adam has |g| = 3.5e-17, which shifts
    # d(update)/dg = alpha eps / (sqrt(s_hat) + eps)^2 by 2 x 2.8e-14 / eps relative; that
    # derivative is what d_w0 carries back through the residue's dependence on w0
    floor_shift = 2 * np.sqrt(2.0**-100 / (1 - s.beta2.max())) / s.eps.min()
    for kind in ("w0", "meta") + hg.kinds:
        close(getattr(hg, kind), getattr(ref, kind), max(1e-12, 1.1 * floor_shift)
              if kind == "w0" else 1e-12, floor=0)


@pytest.mark.parametrize("name", list(NETS))
def test_tiny_step0_gradients_follow_torch_optim_adam(name):
    """torch.optim.Adam on the module itself (one param group per tensor, lr per step and
    group) against revl's Adam through the bridge: w_T within 1e-9 of its largest entry."""
    net, shape, tm = bridge(NETS[name])
    T = 8
    s = schedule(tm.model(), T, "adam")
    t = revl.Trainer(tm.model(), s)
    t.train(tm.read_params(), META)
    params = [p for p in net.parameters() if p.requires_grad]
    assert len(params) == s.shape[1]
    opt = torch.optim.Adam([{"params": [p]} for p in params],
                           betas=(float(s.beta1[0, 0]), float(s.beta2[0, 0])), eps=1e-6,
                           foreach=False)
    meta = torch.tensor(META)
    for step in range(T):
        for g, group in enumerate(opt.param_groups):
            group["lr"] = s.alpha[step, g]
        opt.zero_grad()
        x, y = tm.batch(step)
        loss = F.cross_entropy(net(x), y) + tm.penalty(dict(net.named_parameters()), meta)
        loss.backward()
        opt.step()
    want = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
    close(t.weights, want, 1e-9, floor=0)
