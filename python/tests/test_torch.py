"""revl.torch: a torch module through the bridge gives PyTorch's own unrolled hypergradients,
the reversal stays exact in float32, non-determinism is caught at its step, and bad modules and
data are refused with the reason."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import revl
import revl.torch as rt

F = torch.nn.functional


def mlp(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(),
                               torch.nn.Linear(7, 3)).to(dtype)


def cnn(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Tanh(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(2, 3, 2), torch.nn.Tanh(), torch.nn.Flatten(),
                               torch.nn.Linear(3, 3)).to(dtype)


def data(shape, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n,) + shape, generator=g, dtype=torch.float64), \
        torch.randint(0, 3, (n,), generator=g)


def l2_penalty(names):
    """exp(meta[i])/2 |W_i|^2 over the named weight tensors: per-layer log weight decay."""
    def penalty(p, m):
        return sum(0.5 * torch.exp(m[i]) * (p[n] ** 2).sum() for i, n in enumerate(names))
    return penalty


def bridge(net, shape, **kw):
    weights = [n for n, _ in net.named_parameters() if n.endswith("weight")]
    kw.setdefault("penalty", l2_penalty(weights))
    kw.setdefault("n_meta", len(weights))
    return rt.TorchModel(net, F.cross_entropy, data(shape, 40, 1), batch_size=10, **kw)


def revl_run(tm, T, meta, valid, alpha=0.25, gamma=0.875):
    m = tm.model()
    s = revl.Schedule.for_model(m, T)
    rng = np.random.default_rng(3)
    s.alpha = alpha * (0.5 + rng.random(s.shape))      # every (step, group) its own value
    s.gamma = gamma
    t = revl.Trainer(m, s)
    w0 = tm.read_params()
    t.train(w0, meta)
    f, dfdw = tm.evaluate(t.weights, *valid)
    hg = t.hypergrad(dfdw)
    assert np.array_equal(t.weights, w0)               # the walk back ended on w0 exactly
    return s, w0, f, hg


def close(a, b, tol, floor=1.0):
    """max |a - b| <= tol * max(floor, max |b|)"""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    scale = max(floor, float(np.max(np.abs(b))))
    err = float(np.max(np.abs(a - b)))
    assert err <= tol * scale, f"max difference {err:.3g} > {tol:g} x {scale:.3g}"


@pytest.mark.parametrize("make,shape", [(mlp, (5,)), (cnn, (1, 7, 7))], ids=["mlp", "cnn"])
def test_hypergradients_equal_unrolled_pytorch(make, shape):
    tm = bridge(make(), shape)
    meta = np.linspace(-3.0, -2.0, tm.n_meta)
    valid = data(shape, 30, 2)
    T = 12
    s, w0, f, hg = revl_run(tm, T, meta, valid)
    revl_run(tm, T, meta + 0.5, valid)
    assert len(tm._seen) == T          # the fingerprints of one run only, not of every run
    ref = rt.unrolled_hypergrad(tm, s.alpha, s.gamma_applied, w0, meta,
                                lambda w: tm.loss_on(w, *valid))
    assert f == pytest.approx(ref.f, rel=1e-12)
    assert hg.alpha.shape == (T, len(tm.names))
    for kind in ("w0", "alpha", "gamma", "meta"):
        close(getattr(hg, kind), getattr(ref, kind), 1e-8)
    assert np.all(np.abs(hg.alpha).max(axis=0) > 0)    # every group's alpha is compared
    assert np.all(np.abs(hg.meta) > 0)


def test_float32_module_reverses_exactly_close_to_float64():
    valid = data((5,), 30, 2)
    meta = np.array([-3.0, -2.5])
    hgs = []
    for dtype in (torch.float64, torch.float32):
        tm = bridge(mlp(dtype), (5,))
        assert tm.dtype == dtype
        hgs.append(revl_run(tm, 10, meta, valid)[3])   # asserts the exact walk back to w0
    h64, h32 = hgs
    # float32 forward/backward: relative rounding 6e-8 per operation, accumulated along the run
    # (measured: 2e-7 to 5e-7 of the largest entry); bound 1e-5 of the largest entry
    for kind in ("w0", "alpha", "gamma", "meta"):
        close(getattr(h32, kind), getattr(h64, kind), 1e-5, floor=0.0)


def test_dropout_is_seeded_per_step_and_exact():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Dropout(0.3),
                              torch.nn.Linear(7, 3)).double()
    tm = bridge(net, (5,))
    valid = data((5,), 30, 2)
    before = torch.random.get_rng_state()
    s, w0, f, hg = revl_run(tm, 8, np.array([-3.0, -3.0]), valid)
    assert torch.equal(torch.random.get_rng_state(), before)   # the user's generator untouched
    ref = rt.unrolled_hypergrad(tm, s.alpha, s.gamma_applied, w0, np.array([-3.0, -3.0]),
                                lambda w: tm.loss_on(w, *valid))
    close(hg.alpha, ref.alpha, 1e-8)
    full = rt.TorchModel(net, F.cross_entropy, data((5,), 40, 1))     # the same batch each step
    flat, m = torch.tensor(w0), torch.zeros(0)
    assert full.loss_at(1, flat, m) == full.loss_at(1, flat, m)
    assert full.loss_at(1, flat, m) != full.loss_at(2, flat, m)       # a new mask each step


def test_unseeded_dropout_is_inexact_at_the_last_step():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Dropout(0.3),
                              torch.nn.Linear(7, 3)).double()
    tm = bridge(net, (5,), seed_rng=False)
    with pytest.raises(revl.InexactError, match="at step 7 differs"):
        revl_run(tm, 8, np.array([-3.0, -3.0]), data((5,), 30, 2))


def test_nondeterminism_caught_at_its_step():
    x, y = data((5,), 40, 1)
    calls = {}

    def batch(step):
        calls[step] = calls.get(step, 0) + 1
        xb = x[step % 4 * 10:(step % 4 + 1) * 10]
        if step == 5 and calls[step] > 1:                  # step 5 differs when called again
            xb = xb + 1e-9
        return xb, y[step % 4 * 10:(step % 4 + 1) * 10]

    tm = rt.TorchModel(mlp(), F.cross_entropy, batch=batch)
    with pytest.raises(revl.InexactError, match="at step 5 differs"):
        revl_run(tm, 9, None, data((5,), 30, 2))


def test_thread_count_is_kept():
    tm = bridge(mlp(), (5,))
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)                           # user code changes it between calls
    try:
        tm.grad(0, tm.read_params(), np.zeros(tm.n_meta))
        assert torch.get_num_threads() == 1            # the bridge put its count back
    finally:
        torch.set_num_threads(1)


def fd_check(tm, step, w, meta, a, b):
    hv, hm, g = tm.hvp_affine(step, w, meta, a, b)
    loss, g_ref = tm.grad(step, w, meta)
    assert np.array_equal(g, g_ref)                    # the same bits as grad's: one pass
    v = a + b * g
    eps = 1e-5
    fd = (tm.grad(step, w + eps * v, meta)[1] - tm.grad(step, w - eps * v, meta)[1]) / (2 * eps)
    close(hv, fd, 1e-7)
    for i in range(tm.n_meta):
        e = np.zeros(tm.n_meta)
        e[i] = eps
        d = (tm.grad(step, w, meta + e)[1] @ v - tm.grad(step, w, meta - e)[1] @ v) / (2 * eps)
        assert hm[i] == pytest.approx(d, rel=1e-6, abs=1e-9)
    return g, hv, hm


def test_hvp_affine_against_finite_differences():
    tm = bridge(cnn(), (1, 7, 7))
    rng = np.random.default_rng(5)
    w = tm.read_params()
    meta = np.array([-1.0, -1.5, -0.5])
    a, b = rng.normal(size=tm.n_params), rng.normal(size=tm.n_params)
    fd_check(tm, 2, w, meta, a, b)
    g, hv_a, _ = fd_check(tm, 2, w, meta, a, np.zeros(tm.n_params))
    hv_ab, _, _ = tm.hvp_affine(2, w, meta, a, b)
    hv_b, _, _ = tm.hvp_affine(2, w, meta, np.zeros(tm.n_params), b)
    close(hv_ab, hv_a + hv_b, 1e-12)                   # b is multiplied by g, not by w
    hv, hm, g2 = tm.hvp(2, w, meta, a)
    assert np.array_equal(hv, hv_a) and np.array_equal(g2, g)


def test_layout_round_trip_and_groups():
    net = cnn()
    tm = bridge(net, (1, 7, 7))
    assert tm.names == [n for n, _ in net.named_parameters()]
    assert tm.offsets[-1] == tm.n_params == sum(p.numel() for p in net.parameters())
    assert tm.model().n_groups == len(tm.names) and list(tm.model().offsets) == tm.offsets
    w = np.random.default_rng(0).normal(size=tm.n_params)
    tm.write_params(w)
    assert np.array_equal(tm.read_params(), w)
    for (n, p), (n2, view) in zip(net.named_parameters(), tm.unpack(w).items()):
        assert n == n2 and np.array_equal(p.detach().numpy(), view)
    merged = rt.TorchModel(cnn(), F.cross_entropy, data((1, 7, 7), 40, 1), batch_size=10,
                           groups=["0.", "3.", "6."])
    assert merged.group_names == ["0.", "3.", "6."]
    assert merged.offsets == [0, tm.offsets[2], tm.offsets[4], tm.n_params]
    with pytest.raises(revl.InvalidError, match="shape"):
        tm.write_params(w[:-1])


def test_refused_with_the_reason():
    d = data((5,), 40, 1)
    frozen = mlp()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(revl.InvalidError, match="no parameters that require grad"):
        rt.TorchModel(frozen, F.cross_entropy, d)
    mixed = mlp()
    mixed[2].float()
    with pytest.raises(revl.InvalidError, match="all float32 or all float64"):
        rt.TorchModel(mixed, F.cross_entropy, d)
    with pytest.raises(revl.InvalidError, match="same number"):
        rt.TorchModel(mlp(), F.cross_entropy, (d[0], d[1][:-1]))
    with pytest.raises(revl.InvalidError, match="failed on the batch of step 0.*shape \\(10, 4\\)"):
        rt.TorchModel(mlp(), F.cross_entropy, (d[0][:, :4], d[1]), batch_size=10)
    with pytest.raises(revl.InvalidError, match="batch_size must be"):
        rt.TorchModel(mlp(), F.cross_entropy, d, batch_size=41)
    with pytest.raises(revl.InvalidError, match="scalar"):
        rt.TorchModel(mlp(), lambda out, y: out, d)
    with pytest.raises(revl.InvalidError, match="not consecutive"):
        rt.TorchModel(mlp(), F.cross_entropy, d, groups=["0.weight", "2.weight", ""])
    def no_batch(step):
        raise KeyError(step)
    with pytest.raises(revl.InvalidError, match="failed on the batch of step 0.*KeyError"):
        rt.TorchModel(mlp(), F.cross_entropy, batch=no_batch)
    with pytest.raises(revl.InvalidError, match="either data"):
        rt.TorchModel(mlp(), F.cross_entropy)


def test_batches_are_a_function_of_the_step():
    tm = bridge(mlp(), (5,))
    x3, _ = tm.batch(3)
    tm.batch(0)
    assert torch.equal(tm.batch(3)[0], x3)
    seen = torch.cat([tm.batch(t)[0] for t in range(4)])   # one epoch: every example once
    assert torch.equal(seen.sort(dim=0).values, tm.x.sort(dim=0).values)


def test_import_revl_does_not_load_torch():
    code = "import sys, revl; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=str(revl.__file__).rsplit("/revl/", 1)[0])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_cnn_example_quick(tmp_path, optimizer):
    root = revl.__file__.rsplit("/python/revl/", 1)[0]
    r = subprocess.run([sys.executable, f"{root}/python/examples/torch_cnn.py", "--quick",
                        "--iterations", "1", "--steps", "10", "--n-train", "200",
                        "--n-valid", "200", "--n-test", "200", "--out", str(tmp_path),
                        "--optimizer", optimizer],
                       capture_output=True, text=True, timeout=300,
                       env={"REVL_LIBRARY": revl.library_path, "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].startswith("RESULT: ok"), r.stdout
    assert "test loss" in r.stdout and f"steps of {optimizer}" in r.stdout
    rows = np.loadtxt(tmp_path / "schedule.dat")
    assert rows.shape == (10, 7) and np.all(rows[:, 1:] > 0)
    assert np.loadtxt(tmp_path / "meta.dat").shape == (2, 6)


# ---- Adam: the bridge's fused callback, and PyTorch's own unrolled Adam as the reference

def adam_run(tm, T, meta, valid, model=None):
    """An Adam run with every (step, group) its own alpha, beta1, beta2 and eps."""
    m = model or tm.model()
    s = revl.Schedule.for_model(m, T, optimizer="adam")
    rng = np.random.default_rng(4)
    s.set(alpha=0.02 * (0.5 + rng.random(s.shape)), beta1=0.8 + 0.15 * rng.random(s.shape),
          beta2=0.9 + 0.09 * rng.random(s.shape), eps=1e-3 * (0.5 + rng.random(s.shape)))
    t = revl.Trainer(m, s)
    w0 = tm.read_params()
    t.train(w0, meta)
    f, dfdw = tm.evaluate(t.weights, *valid)
    hg = t.hypergrad(dfdw)
    assert np.array_equal(t.weights, w0)
    return s, w0, f, hg


def adam_reference(tm, s, w0, meta, valid):
    # the requested betas: unrolled_hypergrad applies them as revl does (revl.beta_applied)
    return rt.unrolled_hypergrad(tm, s.alpha, w0=w0, meta=meta, optimizer="adam",
                                 beta1=s.beta1, beta2=s.beta2, eps=s.eps,
                                 objective=lambda w: tm.loss_on(w, *valid))


ADAM_KINDS = ("w0", "alpha", "beta1", "beta2", "eps", "meta")


# measured: 1e-16 (float64), 4e-17 (float32: the tape's module sees the same float32 casts)
@pytest.mark.parametrize("make,shape,dtype", [(mlp, (5,), torch.float64),
                                              (cnn, (1, 7, 7), torch.float64),
                                              (mlp, (5,), torch.float32)],
                         ids=["mlp", "cnn", "mlp-float32"])
def test_adam_hypergradients_equal_unrolled_pytorch(make, shape, dtype):
    tol = 1e-8
    tm = bridge(make(dtype), shape)
    meta = np.linspace(-3.0, -2.0, tm.n_meta)
    valid = data(shape, 30, 2)
    s, w0, f, hg = adam_run(tm, 10, meta, valid)
    assert hg.kinds == ("alpha", "beta1", "beta2", "eps")
    ref = adam_reference(tm, s, w0, meta, valid)
    assert ref.kinds == hg.kinds
    assert f == pytest.approx(ref.f, rel=10 * tol)
    for kind in ADAM_KINDS:
        close(getattr(hg, kind), getattr(ref, kind), tol)
        assert np.all(np.abs(getattr(hg, kind)).max(axis=0) > 0)   # every group compared


def counting(tm):
    """Count the bridge's gradient and fused calls (hvp is hvp_affine with b = None) and its
    torch forward passes."""
    calls = {"grad": 0, "hvp_affine": 0, "hvp_dir": 0, "forward": 0}
    for name in ("grad", "hvp_affine", "hvp_dir", "loss_at"):
        fn = getattr(tm, name)

        def counted(*args, _fn=fn, _name=name):
            calls["forward" if _name == "loss_at" else _name] += 1
            return _fn(*args)
        setattr(tm, name, counted)
    return calls


def fused_and_unfused(run):
    """run(tm, model) -> hypergradient, once with the bridge's model (its fused callbacks) and
    once with a model of its grad and hvp alone: (fused, unfused) results and call counts."""
    runs = {}
    for fused in (True, False):
        tm = bridge(mlp(), (5,))
        calls = counting(tm)
        m = tm.model() if fused else revl.Model(tm.n_params, tm.n_meta, tm.grad, tm.hvp,
                                                hvp_gives_grad=True, groups=tm.offsets)
        runs[fused] = run(tm, m), calls
    return runs[True], runs[False]


def test_adam_fused_callback_is_one_pass_and_bit_identical():
    T, meta, valid = 6, np.array([-3.0, -2.5]), data((5,), 30, 2)
    (fused, c1), (plain, c2) = fused_and_unfused(
        lambda tm, m: adam_run(tm, T, meta, valid, m)[3])
    for kind in ADAM_KINDS:
        assert np.array_equal(getattr(fused, kind), getattr(plain, kind)), kind
    # forward: T gradients; reverse: one fused call per step (one torch pass), or a gradient
    # then an hvp (two)
    assert c1 == {"grad": T, "hvp_affine": T, "hvp_dir": 0, "forward": 2 * T}, c1
    assert c2 == {"grad": 2 * T, "hvp_affine": T, "hvp_dir": 0, "forward": 3 * T}, c2


def test_rmsprop_fused_callback_is_one_pass_and_bit_identical():
    """RMSprop's direction is not affine in g: the bridge's hvp_dir hands g to the library for
    it and makes the product from the same torch pass; the bits of a gradient call and then an
    hvp call."""
    T, meta, valid = 6, np.array([-3.0, -2.5]), data((5,), 30, 2)

    def rmsprop_run(tm, m):
        t = revl.Trainer(m, revl.Schedule.for_model(m, T, optimizer="rmsprop", alpha=0.01))
        w0 = tm.read_params()
        t.train(w0, meta)
        hg = t.hypergrad(tm.evaluate(t.weights, *valid)[1])
        assert np.array_equal(t.weights, w0)
        return hg

    (fused, c1), (plain, c2) = fused_and_unfused(rmsprop_run)
    assert fused.kinds == plain.kinds and "beta2" in fused.kinds
    for kind in ("w0", "meta") + fused.kinds:
        assert np.array_equal(getattr(fused, kind), getattr(plain, kind)), kind
        assert np.any(getattr(fused, kind) != 0), kind
    assert c1 == {"grad": T, "hvp_affine": 0, "hvp_dir": T, "forward": 2 * T}, c1
    assert c2 == {"grad": 2 * T, "hvp_affine": T, "hvp_dir": 0, "forward": 3 * T}, c2


def test_adam_parameter_with_zero_gradient_is_finite_where_unrolled_is_nan():
    """Input 0 is always 0, so the first layer's weights from it get gradient 0 at every step
    (no penalty on that layer): m = s = 0.  revl's hypergradients are finite and equal those
    of the network without that input; unrolled Adam differentiates sqrt at s = 0 and gives
    NaN."""
    def zero_first(d):
        x, y = d
        x = x.clone()
        x[:, 0] = 0.0
        return x, y

    def make(n_in):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(n_in, 7), torch.nn.Tanh(),
                                   torch.nn.Linear(7, 3)).double()

    def model(net, d):
        return rt.TorchModel(net, F.cross_entropy, d, batch_size=10, n_meta=1,
                             penalty=l2_penalty(["2.weight"]))

    train, valid = zero_first(data((5,), 40, 1)), zero_first(data((5,), 30, 2))
    full = model(make(5), train)
    meta = np.array([-2.0])
    s, w0, f, hg = adam_run(full, 8, meta, valid)
    for kind in ADAM_KINDS:
        assert np.all(np.isfinite(getattr(hg, kind))), kind
    dead = np.zeros(full.n_params, bool)
    dead[np.arange(7) * 5] = True                       # 0.weight[:, 0]
    assert np.all(hg.w0[dead] == 0)

    ref = adam_reference(full, s, w0, meta, valid)
    # unrolled Adam: d sqrt(s)/ds = inf at s = 0 times 0 is NaN, and it spreads (measured:
    # every d w0 and d meta, 29 of 32 d beta2)
    assert np.isnan(ref.beta2).any() and np.isnan(ref.meta).all()

    small = model(make(4), (train[0][:, 1:], train[1]))  # the same network without input 0
    small.write_params(w0[~dead])
    ref = adam_reference(small, s, w0[~dead], meta, (valid[0][:, 1:], valid[1]))
    close(hg.w0[~dead], ref.w0, 1e-8)
    for kind in ADAM_KINDS[1:]:
        close(getattr(hg, kind), getattr(ref, kind), 1e-8)


class TiedNet(torch.nn.Module):
    """One nn.Parameter under two names (a.weight and b.weight), as tied embeddings are."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.a = torch.nn.Linear(3, 3)
        self.b = torch.nn.Linear(3, 3)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def test_tied_parameters_match_the_modules_own_autograd():
    """Issue 24 item 3: every name of a tied parameter is bound to its slice of w, so the
    gradient and the Hessian-vector product are the module's own (autograd on the module, not
    the bridge's functional call)."""
    net = TiedNet().double()
    x, y = data((3,), 12, 5)
    tm = rt.TorchModel(net, F.cross_entropy, (x, y), batch_size=12)
    assert tm.names == ["a.weight", "a.bias", "b.bias"]
    w = tm.read_params() + 0.1 * np.cos(np.arange(tm.n_params))
    tm.write_params(w)
    xb, yb = tm.batch(0)
    params = list(net.parameters())
    loss = F.cross_entropy(net(xb), yb)
    g_ref = torch.autograd.grad(loss, params, create_graph=True)
    v = np.sin(np.arange(tm.n_params) + 1.0)
    vt = [torch.tensor(v[o:o + n]).view(p.shape)
          for p, o, n in zip(params, tm.offsets_of_tensors(), tm.sizes)]
    hv_ref = torch.autograd.grad(sum((g * u).sum() for g, u in zip(g_ref, vt)), params)
    g_ref = np.concatenate([g.detach().reshape(-1).numpy() for g in g_ref])
    hv_ref = np.concatenate([h.reshape(-1).numpy() for h in hv_ref])
    f, g = tm.grad(0, w)
    assert f == pytest.approx(float(loss), rel=1e-14)
    close(g, g_ref, 1e-13)
    hv, _, g2 = tm.hvp(0, w, (), v)
    assert np.array_equal(g2, g)
    close(hv, hv_ref, 1e-13)
    # and revl trains the module's network: w_T is momentum on the module's own gradients
    m = tm.model()
    s = revl.Schedule.for_model(m, 3, alpha=0.5, gamma=0.5)
    t = revl.Trainer(m, s)
    t.train(w)
    vel = np.zeros(tm.n_params)
    for k in range(3):
        xb, yb = tm.batch(k)
        net.zero_grad()
        F.cross_entropy(net(xb), yb).backward()
        vel = 0.5 * vel - 0.5 * np.concatenate([p.grad.reshape(-1).numpy() for p in params])
        tm.write_params(tm.read_params() + 0.5 * vel)
    close(t.weights, tm.read_params(), 1e-12)


def test_every_epoch_its_own_permutation_of_full_batches():
    """Issue 24 item 24: 40 examples in batches of 15 make 2 full batches per epoch (the 10
    left over are not a short third batch); each epoch draws its own permutation."""
    x, y = data((5,), 40, 1)
    tm = rt.TorchModel(mlp(), F.cross_entropy, (x, y), batch_size=15)
    assert tm.n_batches == 2
    epochs = []
    for e in range(4):
        xs = [tm.batch(2 * e + k)[0] for k in range(2)]
        assert [len(b) for b in xs] == [15, 15]
        xe = torch.cat(xs)
        assert len(torch.unique(xe, dim=0)) == 30          # no example twice in an epoch
        epochs.append(xe)
    assert all(not torch.equal(epochs[0], e) for e in epochs[1:])


def test_nondeterminism_at_step_0_is_the_bridges_message():
    """A batch that differs at step 0 in the reverse pass is caught by the bridge itself,
    naming the module (not only by revl's own fingerprint check)."""
    x, y = data((5,), 40, 1)
    reversing = []

    def batch(step):
        xb = x[step % 4 * 10:(step % 4 + 1) * 10]
        if step == 0 and reversing:
            xb = xb + 1e-9
        return xb, y[step % 4 * 10:(step % 4 + 1) * 10]

    tm = rt.TorchModel(mlp(), F.cross_entropy, batch=batch)
    t = revl.Trainer(tm.model(), revl.Schedule.for_model(tm.model(), 3))
    t.train(tm.read_params())
    reversing.append(1)
    with pytest.raises(revl.InexactError, match="torch model's gradient at step 0 differs"):
        t.hypergrad(np.ones(tm.n_params))
