"""The optimisers through the Python package (every one the library has: momentum, Adam, RMSprop
with momentum, AdamW, ...): schedules
with each optimiser's kinds, exact reversal, every kind's hypergradient against central finite
differences of the whole training run, the forward trajectory against a plain numpy loop of the
same optimiser, the fused hvp_affine callback, and the errors."""
import numpy as np
import pytest

import revl
from tanh_model import SpreadModel, TanhNet

T = 20
OPTIMIZERS = list(revl.OPTIMIZERS)     # read from the library: a new optimiser is tested too
KINDS = {"momentum": ("alpha", "gamma", "weight_decay"), "adam": ("alpha", "beta1", "beta2", "eps"),
         "rmsprop": ("alpha", "gamma", "beta2", "eps", "weight_decay"),
         "adamw": ("alpha", "beta1", "beta2", "eps", "weight_decay")}
GRID = {"gamma": 2.0**-16, "beta1": 2.0**-24, "beta2": 2.0**-24}


def on_grid(x, kind):
    return np.round(x / GRID[kind]) * GRID[kind]


def random_schedule(s, rng):
    """Values typical of each kind, the rates exactly on their grids (so that finite-difference
    steps by grid multiples stay on the grid), eps large enough to matter."""
    shape = s.shape
    values = {"alpha": {"momentum": 0.05 + 0.1 * rng.random(shape),
                        "adam": 0.01 + 0.02 * rng.random(shape),
                        "adamw": 0.01 + 0.02 * rng.random(shape),
                        "rmsprop": 0.002 + 0.004 * rng.random(shape)}[s.optimizer],
              "gamma": on_grid(0.6 + 0.3 * rng.random(shape), "gamma"),
              "beta1": on_grid(0.7 + 0.25 * rng.random(shape), "beta1"),
              "beta2": on_grid(0.9 + 0.09 * rng.random(shape), "beta2"),
              "eps": 0.01 + 0.02 * rng.random(shape),
              # AdamW's decoupled decay is scaled by alpha; the coupled one (momentum,
              # RMSprop) is added to the gradient as it is
              "weight_decay": (0.5 if s.optimizer == "adamw" else 0.02) + rng.random(shape)
              * (1.0 if s.optimizer == "adamw" else 0.05)}
    s.set(**{k: values[k] for k in s.kinds})


def build(net, optimizer, fused=False, **trainer_kw):
    m = revl.Model(net.n_params, net.n_meta, grad=net.grad, hvp=net.hvp, groups=net.groups,
                   hvp_affine=net.hvp_affine if fused else None,
                   hvp_dir=net.hvp_dir if fused else None)
    s = revl.Schedule.for_model(m, T, optimizer=optimizer)
    random_schedule(s, np.random.default_rng(7))
    return m, s, revl.Trainer(m, s, **trainer_kw)


def objective(net, s, t, w0, meta):
    t.train(w0, meta)
    return net.valid(t.weights)[0]


def fd(f, h):
    """Central difference at 0 of f(x) along a direction, Richardson-extrapolated (error
    O(h^4)); f is evaluated at +-h and +-2h only, so grid multiples stay on the grid."""
    d1 = (f(h) - f(-h)) / (2 * h)
    d2 = (f(2 * h) - f(-2 * h)) / (4 * h)
    return (4 * d1 - d2) / 3


@pytest.fixture(scope="module", params=OPTIMIZERS)
def trained(request):
    net = TanhNet()
    m, s, t = build(net, request.param)
    w0, meta = net.init(), np.array([-2.0])
    t.train(w0, meta)
    wT = t.weights
    hg = t.hypergrad(net.valid(wT)[1])
    return net, s, t, w0, meta, wT, hg


def test_schedules_have_their_optimisers_kinds_and_defaults():
    assert set(KINDS) <= set(OPTIMIZERS)
    for opt in OPTIMIZERS:
        s = revl.Schedule(3, [0, 2, 5], optimizer=opt)
        assert s.optimizer == opt and s.kinds == KINDS.get(opt, s.kinds)
        for k in s.kinds:
            assert getattr(s, k).shape == (3, 2) and getattr(s, k).dtype == np.float64
    s = revl.Schedule(3, [0, 2, 5])
    assert s.optimizer == "momentum"
    np.testing.assert_array_equal(s.alpha, 0.1)
    np.testing.assert_array_equal(s.gamma, 0.9)
    np.testing.assert_array_equal(s.weight_decay, 0.0)      # coupled decay: off by default
    a = revl.Schedule(3, [0, 2, 5], optimizer="adam")
    for k, v in (("alpha", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)):
        np.testing.assert_array_equal(getattr(a, k), v)
    aw = revl.Schedule(3, [0, 2, 5], optimizer="adamw", weight_decay=0.05)
    np.testing.assert_array_equal(aw.weight_decay, 0.05)
    np.testing.assert_array_equal(revl.Schedule(3, [0, 2, 5], optimizer="adamw").weight_decay, 0.01)
    r = revl.Schedule(3, [0, 5], optimizer="RMSprop")
    for k, v in (("alpha", 1e-2), ("gamma", 0.9), ("beta2", 0.99), ("eps", 1e-8),
                 ("weight_decay", 0.0)):
        np.testing.assert_array_equal(getattr(r, k), v)
    m = revl.Model(5, grad=lambda step, w, meta: (0.0, w), groups=[0, 1, 5])
    f = revl.Schedule.for_model(m, 4, optimizer="adam", beta2=0.99)
    assert f.optimizer == "adam" and f.shape == (4, 2)
    np.testing.assert_array_equal(f.beta2, 0.99)


def test_kinds_are_assignable_and_read_only_copies():
    s = revl.Schedule(3, [0, 2, 5], optimizer="adam")
    s.beta1 = [0.5, 0.8]                       # broadcasts over steps
    np.testing.assert_array_equal(s.beta1, [[0.5, 0.8]] * 3)
    s.eps = np.full((3, 2), 1e-6)
    np.testing.assert_array_equal(s.eps, 1e-6)
    with pytest.raises(ValueError):
        s.beta2[0, 0] = 0.5
    s.fill(alpha=0.02, beta2=0.95)
    np.testing.assert_array_equal(s.alpha, 0.02)
    np.testing.assert_array_equal(s.beta2, 0.95)
    np.testing.assert_array_equal(s.beta1, [[0.5, 0.8]] * 3)


def test_applied_values():
    # the betas' grid is n / 2^24: 1 - beta within 0.03% of the request at 0.9999
    for beta in (0.9, 0.999, 0.9999):
        applied = revl.beta_applied(beta)
        assert applied == np.round(beta * 2**24) / 2**24
        assert abs((1 - applied) - (1 - beta)) <= 3e-4 * (1 - beta)
    assert revl.hyper_applied("gamma", 0.9) == revl.gamma_applied(0.9) == round(0.9 * 2**16) / 2**16
    assert revl.hyper_applied("eps", 1e-8) == 1e-8 and revl.hyper_applied("alpha", -3.0) == -3.0
    assert np.isnan(revl.hyper_applied("beta1", 1.0)) and np.isnan(revl.hyper_applied("eps", 0))
    np.testing.assert_array_equal(revl.hyper_applied("beta2", [0.5, 2.0]), [0.5, np.nan])
    s = revl.Schedule(2, [0, 3], optimizer="adam", beta2=0.999)
    np.testing.assert_array_equal(s.beta2_applied, revl.beta_applied(0.999))
    np.testing.assert_array_equal(s.eps_applied, 1e-8)
    with pytest.raises(revl.InvalidError, match="unknown hyperparameter kind 'delta'"):
        revl.hyper_applied("delta", 0.5)


def test_exact_reversal_bit_for_bit(trained):
    net, s, t, w0, meta, wT, hg = trained
    assert np.array_equal(t.weights, np.round(w0 * 2.0**52) / 2.0**52)
    assert not np.array_equal(wT, t.weights)
    assert t.stats["steps_done"] == 0


def test_hypergrad_has_one_array_per_kind(trained):
    net, s, t, w0, meta, wT, hg = trained
    assert hg.kinds == s.kinds
    for k in s.kinds:
        assert getattr(hg, k).shape == s.shape and np.all(np.isfinite(getattr(hg, k)))
    for k in set(KINDS["adam"] + KINDS["momentum"]) - set(s.kinds):
        with pytest.raises(AttributeError, match=f"no {k}: the schedule's kinds are"):
            getattr(hg, k)
    assert hg.w0.shape == (net.n_params,) and hg.meta.shape == (1,)


def perturbed(net, s, t, w0, meta, kind, d, x):
    base = s.get_kind(kind)
    s.set(**{kind: base + x * d})
    try:
        return objective(net, s, t, w0, meta)
    finally:
        s.set(**{kind: base})


@pytest.mark.parametrize("kind", list(revl.KINDS))
def test_every_kind_against_finite_differences(trained, kind):
    net, s, t, w0, meta, wT, hg = trained
    if kind not in s.kinds:
        assert not hasattr(hg, kind)
        return
    rng = np.random.default_rng(11)
    d = rng.choice([-1.0, 0.0, 1.0], size=s.shape)
    if kind in GRID:
        h = 64 * GRID[kind]                    # +-h, +-2h: whole grid steps, no rounding
        assert np.array_equal(s.get_kind(kind) + 2 * h * d, on_grid(s.get_kind(kind) + 2 * h * d, kind))
    else:
        h = 1e-4 * float(np.mean(s.get_kind(kind)))
    num = fd(lambda x: perturbed(net, s, t, w0, meta, kind, d, x), h)
    ana = float(np.sum(getattr(hg, kind) * d))
    assert abs(num) > 1e-6, "the direction must matter"
    np.testing.assert_allclose(ana, num, rtol=1e-7)    # measured: 4e-12 ... 6e-10
    t.train(w0, meta)


def test_w0_and_meta_against_finite_differences(trained):
    net, s, t, w0, meta, wT, hg = trained
    e = np.random.default_rng(12).normal(size=net.n_params)
    num = fd(lambda x: objective(net, s, t, w0 + x * e, meta), 1e-4)
    np.testing.assert_allclose(hg.w0 @ e, num, rtol=1e-5)
    num = fd(lambda x: objective(net, s, t, w0, meta + x), 1e-4)
    np.testing.assert_allclose(hg.meta[0], num, rtol=1e-5)


def numpy_run(model, s, w0):
    """The optimiser of the schedule as a plain double-precision loop (the formulas of the
    header: torch.optim.Adam, torch.optim.RMSprop with momentum, heavy-ball momentum, the last two
    with torch's coupled weight_decay), at the applied rates."""
    w = np.round(w0 * 2.0**52) / 2.0**52
    off = s.offsets
    per = {k: np.repeat(getattr(s, k + "_applied"), np.diff(off), axis=1) for k in s.kinds}
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    p1 = np.ones_like(w)
    p2 = np.ones_like(w)
    for step in range(s.n_steps):
        g = model.grad(step, w, None)[1]
        a = per["alpha"][step]
        if "weight_decay" in s.kinds and s.optimizer != "adamw":
            g = g + per["weight_decay"][step] * w       # coupled: torch.optim.SGD / RMSprop
        if s.optimizer == "momentum":
            gam = per["gamma"][step]
            m = gam * m - (1 - gam) * g
            w = w + a * m
        elif s.optimizer in ("adam", "adamw"):
            b1, b2, eps = per["beta1"][step], per["beta2"][step], per["eps"][step]
            if s.optimizer == "adamw":                 # torch.optim.AdamW: decoupled, first
                w = w * (1 - a * per["weight_decay"][step])
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            p1, p2 = p1 * b1, p2 * b2
            w = w - a * (m / (1 - p1)) / (np.sqrt(v / (1 - p2)) + eps)
        else:
            gam, b2, eps = per["gamma"][step], per["beta2"][step], per["eps"][step]
            v = b2 * v + (1 - b2) * g * g
            m = gam * m + g / (np.sqrt(v) + eps)
            w = w - a * m
    return w


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_forward_against_a_numpy_loop(optimizer):
    model = SpreadModel()
    m = revl.Model(model.n_params, grad=model.grad, hvp=model.hvp, groups=model.groups)
    n_steps = 60
    s = revl.Schedule.for_model(m, n_steps, optimizer=optimizer)
    rng = np.random.default_rng(5)
    s.alpha = {"momentum": 0.02, "adam": 0.01, "rmsprop": 0.001, "adamw": 0.01}[optimizer] \
        * (1 + rng.random(s.shape))
    if "eps" in s.kinds:
        s.eps = 1e-8
    if "beta2" in s.kinds:
        s.beta2 = 0.999
    if "weight_decay" in s.kinds and optimizer != "adamw":
        s.weight_decay = 0.1 * (1 + np.random.default_rng(6).random(s.shape))
    t = revl.Trainer(m, s)
    w0 = rng.normal(size=model.n_params)
    t.train(w0)
    g0 = np.abs(model.grad(0, w0, None)[1])
    assert g0.min() < 1e-5 * 5 and g0.max() > 10       # gradients over seven decades
    want = numpy_run(model, s, w0)
    moved = np.abs(want - np.round(w0 * 2.0**52) / 2.0**52)
    assert np.all(moved > 1e-4) or "adam" not in optimizer  # Adam moves every weight by ~alpha
    np.testing.assert_allclose(t.weights, want, rtol=1e-9, atol=0)


def test_fused_callbacks_give_the_same_bits_in_one_call_per_step():
    for opt in ("adam", "rmsprop"):
        net_a, net_b = TanhNet(), TanhNet()
        w0, meta = net_a.init(), np.array([-2.0])
        results = []
        for net, fused in ((net_a, False), (net_b, True)):
            m, s, t = build(net, opt, fused=fused)
            t.train(w0, meta)
            wT = t.weights
            before = dict(net.calls)
            hg = t.hypergrad(net.valid(wT)[1])
            results.append((wT, hg, {k: net.calls.get(k, 0) - before.get(k, 0)
                                     for k in ("grad", "hvp", "hvp_affine", "hvp_dir")}))
        (wa, ha, ca), (wb, hb, cb) = results
        assert np.array_equal(wa, wb)
        for k in ("w0", "meta") + ha.kinds:
            assert np.array_equal(getattr(ha, k), getattr(hb, k)), (opt, k)
        # without the fused callbacks: a gradient and an hvp call per reverse step; with them,
        # one call: Adam's hvp_affine, and RMSprop's hvp_dir (its direction is not affine in g:
        # it divides by sqrt(s_{t+1}), which holds g^2)
        assert ca == {"grad": T, "hvp": T, "hvp_affine": 0, "hvp_dir": 0}, ca
        fused = "hvp_affine" if opt == "adam" else "hvp_dir"
        assert cb == {"grad": 0, "hvp": 0, "hvp_affine": 0, "hvp_dir": 0, fused: T}, cb


def test_hvp_affine_exception_is_reraised():
    net = TanhNet()

    def broken(step, w, meta, a, b):
        if step == 3:
            raise KeyError("affine failed at step 3")
        return net.hvp_affine(step, w, meta, a, b)

    m = revl.Model(net.n_params, 1, grad=net.grad, hvp=net.hvp, hvp_affine=broken)
    t = revl.Trainer(m, revl.Schedule.for_model(m, 6, optimizer="adam", alpha=0.01))
    t.train(net.init(), [-2.0])
    with pytest.raises(KeyError, match="affine failed at step 3"):
        t.hypergrad(np.ones(net.n_params))
    bad = revl.Model(net.n_params, 1, grad=net.grad, hvp=net.hvp,
                     hvp_affine=lambda step, w, meta, a, b: (a, None))
    t = revl.Trainer(bad, revl.Schedule.for_model(bad, 4, optimizer="adam"))
    t.train(net.init(), [-2.0])
    with pytest.raises(revl.InvalidError, match=r"must return \(hv_w, hv_meta, g\)"):
        t.hypergrad(np.ones(net.n_params))
    with pytest.raises(revl.InvalidError, match="hvp_affine must be None or a callable"):
        revl.Model(3, grad=net.grad, hvp_affine=3)


def test_hvp_dir_misuse_and_exceptions():
    """An exception in hvp_dir is re-raised; a callback that returns without calling
    direction(g), calls it twice or returns the wrong shape fails with a clear error; a
    gradient that differs from the forward pass's is the direction's own failure, reported as
    itself (InexactError), not as the callback's."""
    net = TanhNet()

    def run(fused, steps=6):
        m = revl.Model(net.n_params, 1, grad=net.grad, hvp=net.hvp, hvp_dir=fused)
        t = revl.Trainer(m, revl.Schedule.for_model(m, steps, optimizer="rmsprop", alpha=0.01))
        t.train(net.init(), [-2.0])
        return t

    def raising(step, w, meta, direction):
        if step == 3:
            raise KeyError("dir failed at step 3")
        return net.hvp_dir(step, w, meta, direction)

    with pytest.raises(KeyError, match="dir failed at step 3"):
        run(raising).hypergrad(np.ones(net.n_params))
    with pytest.raises(revl.InvalidError, match="returned without calling direction"):
        run(lambda step, w, meta, direction: (np.zeros(net.n_params), None)).hypergrad(
            np.ones(net.n_params))

    def twice(step, w, meta, direction):
        g = net.grad(step, w, meta)[1]
        direction(g)
        return net.hvp(step, w, meta, direction(g))

    with pytest.raises(revl.InvalidError, match="called twice"):
        run(twice).hypergrad(np.ones(net.n_params))
    with pytest.raises(revl.InvalidError, match=r"must return \(hv_w, hv_meta\)"):
        run(lambda step, w, meta, direction: direction(net.grad(step, w, meta)[1])).hypergrad(
            np.ones(net.n_params))
    armed = []

    def drifting(step, w, meta, direction):  # the gradient 1 ulp off at step 2, reversing only
        g = net.grad(step, w, meta)[1].copy()
        if armed and step == 2:
            g[0] = np.nextafter(g[0], np.inf)
        return net.hvp(step, w, meta, direction(g))

    t = run(drifting)
    armed.append(1)
    with pytest.raises(revl.InexactError, match="the gradient at step 2 differs"):
        t.hypergrad(np.ones(net.n_params))
    with pytest.raises(revl.InvalidError, match="hvp_dir must be None or a callable"):
        revl.Model(3, grad=net.grad, hvp_dir=3)


def test_errors_name_the_kind_value_and_place():
    s = revl.Schedule(3, [0, 2, 5], optimizer="adam")
    before = {k: s.get_kind(k) for k in s.kinds}
    with pytest.raises(revl.InvalidError, match=r"beta1 = 1 outside \[2\^-24, 1-2\^-24\] at "
                                                r"step 0, group 0"):
        s.beta1 = 1.0
    with pytest.raises(revl.InvalidError, match=r"beta2 = 0 outside .* at step 2, group 1"):
        s.beta2 = [[0.9, 0.9], [0.9, 0.9], [0.9, 0.0]]
    with pytest.raises(revl.InvalidError, match=r"beta1 = nan outside"):
        s.beta1 = np.nan
    with pytest.raises(revl.InvalidError, match=r"eps = 0 must be finite and > 0 at step 0"):
        s.eps = 0.0
    with pytest.raises(revl.InvalidError, match=r"eps = -1e-08 must be finite and > 0"):
        s.eps = -1e-8
    # several kinds at once: the bad one last, and nothing changed
    with pytest.raises(revl.InvalidError, match="eps = -1 must be finite"):
        s.set(alpha=0.5, beta1=0.5, eps=-1.0)
    for k in s.kinds:
        np.testing.assert_array_equal(s.get_kind(k), before[k])
    with pytest.raises(revl.InvalidError, match="this adam schedule has no gamma"):
        s.gamma
    with pytest.raises(revl.InvalidError, match="this adam schedule has no gamma"):
        s.gamma = 0.5
    with pytest.raises(revl.InvalidError, match="this momentum schedule has no beta1"):
        revl.Schedule(3, [0, 5]).beta1 = 0.9
    with pytest.raises(revl.InvalidError, match="this momentum schedule has no eps"):
        revl.Schedule(3, [0, 5]).eps
    with pytest.raises(revl.InvalidError, match="optimizer must be one of"):
        revl.Schedule(3, [0, 5], optimizer="nesterov")
    with pytest.raises(revl.InvalidError, match="gamma"):
        revl.Schedule(3, [0, 5], optimizer="rmsprop").gamma = 1.5


def test_adam_zero_gradient_weight_gives_finite_hypergradients():
    # w[0] has gradient exactly 0 every step (the m = s = 0 case): no NaN
    def grad(step, w, meta):
        g = np.array([0.0, np.tanh(w[1] - 1.0), w[2] ** 3])
        return 0.0, g

    def hvp(step, w, meta, v):
        return np.array([0.0, (1 - np.tanh(w[1] - 1.0) ** 2) * v[1], 3 * w[2] ** 2 * v[2]]), None

    m = revl.Model(3, grad=grad, hvp=hvp, groups=[0, 1, 3])
    s = revl.Schedule.for_model(m, 8, optimizer="adam", alpha=0.05)
    t = revl.Trainer(m, s)
    t.train([0.3, 0.2, 0.5])
    wT = t.weights
    hg = t.hypergrad(np.ones(3))
    for k in ("w0",) + hg.kinds:
        assert np.all(np.isfinite(getattr(hg, k))), k
    assert hg.w0[0] == 1.0 and wT[0] == t.weights[0] == np.round(0.3 * 2.0**52) / 2.0**52
    # m and s of w[0] hold only the digits the exact multiply pops from the buffer (units of
    # 2^-100), so its group's hypergradients are that noise (d eps amplifies it by 1/eps^2):
    # finite and negligible beside the other group's
    for k in hg.kinds:
        g = getattr(hg, k)
        assert np.max(np.abs(g[:, 0])) < 1e-9 * np.max(np.abs(g[:, 1])), k


def test_adamw_against_torch_float64():
    """revl's AdamW against torch.optim.AdamW in float64 on a small smooth model, lr and
    weight_decay per step and group (torch's param_groups), betas on revl's grid (torch keeps them
    per group for the whole run): w_T within 1e-9 relative."""
    import torch                                # a dependency of the test suite (test_torch.py)
    n, n_steps, off = 6, 30, [0, 2, 6]
    a = np.linspace(0.5, 2.0, n)
    c = np.linspace(-1.0, 1.0, n)

    def grad(step, w, meta):
        d = w - c - 0.05 * (step % 3)
        return float(np.sum(0.5 * a * d * d + 0.3 * np.sin(w))), a * d + 0.3 * np.cos(w)

    def hvp(step, w, meta, v):
        return grad(step, w, meta)[1], (a - 0.3 * np.sin(w)) * v, np.zeros(0)

    m = revl.Model(n, grad=grad, hvp=hvp, groups=off)
    s = revl.Schedule.for_model(m, n_steps, optimizer="adamw")
    rng = np.random.default_rng(3)
    s.alpha = 0.01 * (1 + rng.random(s.shape))
    s.weight_decay = 0.5 * rng.random(s.shape)
    b1, b2 = on_grid(0.9, "beta1"), on_grid(0.99, "beta2")
    s.set(beta1=b1, beta2=b2, eps=1e-8)
    w0 = np.round(rng.normal(size=n) * 2.0**52) / 2.0**52
    t = revl.Trainer(m, s)
    t.train(w0)

    params = [torch.tensor(w0[off[g]:off[g + 1]], dtype=torch.float64, requires_grad=True)
              for g in range(2)]
    opt = torch.optim.AdamW([{"params": [p]} for p in params], betas=(b1, b2), eps=1e-8,
                            foreach=False)
    at, ct = torch.tensor(a), torch.tensor(c)
    for step in range(n_steps):
        for g, group in enumerate(opt.param_groups):
            group["lr"], group["weight_decay"] = s.alpha[step, g], s.weight_decay[step, g]
        opt.zero_grad()
        w = torch.cat(params)
        d = w - ct - 0.05 * (step % 3)
        (0.5 * at * d * d + 0.3 * torch.sin(w)).sum().backward()
        opt.step()
    want = torch.cat(params).detach().numpy()
    np.testing.assert_allclose(t.weights, want, rtol=1e-9, atol=0)

