"""revl.torch with batch norm and frozen parameters: the running statistics follow unrolled
PyTorch's semantics (updated by every training step, held, not differentiated; evaluation in
eval mode with those of w_T; reverse calls never change them; resumable), frozen parameters
are constants, and the hypergradients equal unrolled PyTorch's."""
import numpy as np
import pytest
import torch

import revl
import revl.torch as rt
from test_torch import ADAM_KINDS, adam_reference, adam_run, close, data, l2_penalty, revl_run

F = torch.nn.functional
SHAPE = (1, 7, 7)


def bn_cnn(seed=0, frozen=True):
    """conv, batch norm, tanh, pool, conv (frozen), batch norm, tanh, linear: 7x7 -> 3 (the
    first conv has no bias: batch norm cancels it, its gradient is 0)."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, bias=False), torch.nn.BatchNorm2d(2), torch.nn.Tanh(),
                              torch.nn.MaxPool2d(2), torch.nn.Conv2d(2, 3, 2),
                              torch.nn.BatchNorm2d(3), torch.nn.Tanh(), torch.nn.Flatten(),
                              torch.nn.Linear(3, 3)).double()
    if frozen:
        for p in net[4].parameters():
            p.requires_grad_(False)
    return net


def bn_bridge(net, **kw):
    if "batch" not in kw:
        kw.update(data=data(SHAPE, 40, 1), batch_size=10)
    return rt.TorchModel(net, F.cross_entropy, n_meta=2,
                         penalty=l2_penalty(["0.weight", "8.weight"]), **kw)


def stats_equal(a, b):
    assert list(a) == list(b)
    return all(torch.equal(a[k], b[k]) for k in a)


def direct_eval_loss(tm, net, w, x, y):
    """The validation loss as a torch user computes it: the trained weights and running
    statistics written into the module, module.eval(), a plain call."""
    tm.write_params(w)
    tm.write_buffers()
    net.eval()
    try:
        with torch.no_grad():
            return float(F.cross_entropy(net(x), y))
    finally:
        net.train()


def test_layout_excludes_frozen_and_holds_the_statistics():
    net = bn_cnn()
    tm = bn_bridge(net)
    assert tm.frozen_names == ["4.weight", "4.bias"]
    assert "4.weight" not in tm.names and tm.n_params == sum(
        p.numel() for p in net.parameters() if p.requires_grad)
    assert tm.stats_names == [f"{i}.{k}" for i in (1, 5) for k in
                              ("running_mean", "running_var", "num_batches_tracked")]
    w = np.random.default_rng(0).normal(size=tm.n_params)
    frozen = net[4].weight.detach().clone()
    tm.write_params(w)
    assert np.array_equal(tm.read_params(), w) and torch.equal(net[4].weight, frozen)
    # the frozen tensors are constants copied at construction: changing the module's later
    # does not change the bridge's loss
    x, y = data(SHAPE, 30, 2)
    f = tm.evaluate(w, x, y)[0]
    with torch.no_grad():
        net[4].weight.add_(1.0)
    assert tm.evaluate(w, x, y)[0] == f


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_hypergradients_equal_unrolled_pytorch(optimizer):
    net = bn_cnn()
    tm = bn_bridge(net)
    module_stats = {k: v.clone() for k, v in net.named_buffers()}
    meta, valid = np.array([-3.0, -2.0]), data(SHAPE, 30, 2)
    T = 12
    if optimizer == "momentum":
        s, w0, f, hg = revl_run(tm, T, meta, valid)
        ref = rt.unrolled_hypergrad(tm, s.alpha, s.gamma_applied, w0, meta,
                                    lambda w: tm.loss_on(w, *valid))
        kinds = ("w0", "alpha", "gamma", "meta")
    else:
        s, w0, f, hg = adam_run(tm, T, meta, valid)
        ref = adam_reference(tm, s, w0, meta, valid)
        kinds = ADAM_KINDS
    for kind in kinds:
        close(getattr(hg, kind), getattr(ref, kind), 1e-8)
        assert np.all(np.abs(getattr(hg, kind)).max(axis=0) > 0)   # every group compared
    assert f == pytest.approx(ref.f, rel=1e-10)
    after = tm.running_stats()
    # the statistics moved with every step (T batches tracked) and match the tape's run (whose
    # weights are unrounded float64: not the same bits)
    assert int(after["1.num_batches_tracked"]) == T == int(ref.stats["5.num_batches_tracked"])
    assert not torch.equal(after["5.running_mean"], tm.initial_stats()["5.running_mean"])
    for k in after:
        close(after[k].numpy(), ref.stats[k].numpy(), 1e-10)
    # the module's own buffers are never touched by training or reversal
    assert stats_equal(module_stats, dict(net.named_buffers()))


def test_eval_mode_uses_the_running_statistics_of_w_T():
    net = bn_cnn()
    tm = bn_bridge(net)
    meta, (xv, yv) = np.array([-3.0, -2.0]), data(SHAPE, 30, 2)
    m = tm.model()
    t = revl.Trainer(m, revl.Schedule.for_model(m, 10, alpha=0.3, gamma=0.9))
    w0 = tm.read_params()
    t.train(w0, meta)
    wT = t.weights
    f, dfdw = tm.evaluate(wT, xv, yv)
    stats_T = tm.running_stats()
    assert f == direct_eval_loss(tm, net, wT, xv, yv)        # the same bits as module.eval()
    with tm.holding_stats(tm.initial_stats()):                # not the initial statistics
        assert tm.evaluate(wT, xv, yv)[0] != f
    # d f / d w holds the statistics constant: a finite difference along a direction with them
    # held agrees
    v = np.random.default_rng(1).normal(size=tm.n_params)
    eps = 1e-6
    fd = (tm.evaluate(wT + eps * v, xv, yv)[0] - tm.evaluate(wT - eps * v, xv, yv)[0]) / (2 * eps)
    assert dfdw @ v == pytest.approx(fd, rel=1e-6)
    # the reverse pass (every step called again) leaves them as they were, bit for bit
    t.hypergrad(dfdw)
    assert stats_equal(tm.running_stats(), stats_T)
    assert tm.evaluate(wT, xv, yv)[0] == f



@pytest.mark.parametrize("fused", [True, False])
def test_reverse_calls_and_new_runs(fused):
    """The unfused Adam reverse pass calls grad at every step again (down to step 0, at the
    weights of the forward pass): the statistics of w_T stay.  A new run from the same w0 with
    another schedule keeps step 0's update and replaces the later ones: its statistics are a
    fresh bridge's."""
    meta, valid = np.array([-3.0, -2.0]), data(SHAPE, 30, 2)
    tm, fresh = bn_bridge(bn_cnn()), bn_bridge(bn_cnn())
    m = tm.model() if fused else revl.Model(tm.n_params, tm.n_meta, tm.grad, tm.hvp,
                                            hvp_gives_grad=True, groups=tm.offsets)
    s, w0, f, hg = adam_run(tm, 8, meta, valid, m)
    t = revl.Trainer(m, s)
    t.train(w0, meta)
    stats_T = tm.running_stats()
    t.hypergrad(tm.evaluate(t.weights, *valid)[1])
    assert stats_equal(tm.running_stats(), stats_T) and len(tm._stats) == 9
    s.alpha = 2 * s.alpha
    for bridge in (tm, fresh):
        mm = tm.model() if bridge is tm else fresh.model()
        revl.Trainer(mm if fused or bridge is fresh else m, s).train(w0, meta)
    assert stats_equal(tm.running_stats(), fresh.running_stats())
    assert not stats_equal(tm.running_stats(), stats_T)


def test_running_statistics_survive_a_resume(tmp_path):
    meta, valid = np.array([-3.0, -2.0]), data(SHAPE, 30, 2)
    T, ckpt, state = 12, str(tmp_path / "ckpt.bin"), str(tmp_path / "bridge.pt")

    def trainer(tm):
        m = tm.model()
        return revl.Trainer(m, revl.Schedule.for_model(m, T, alpha=0.3, gamma=0.9))

    x, y = data(SHAPE, 40, 1)
    crash = {"at": 11}

    def batch(step):                       # the first run dies at step 11
        if step == crash["at"]:
            raise RuntimeError("killed")
        k = step % 4 * 10
        return x[k:k + 10], y[k:k + 10]

    dying = bn_bridge(bn_cnn(), batch=batch)
    t = trainer(dying)
    t.set_checkpoint(ckpt, 5)              # the file holds step 10 when it dies
    w0 = dying.read_params()
    with pytest.raises(Exception, match="killed"):
        t.train(w0, meta)
    dying.save_state(state)

    crash["at"] = None
    tm = bn_bridge(bn_cnn(), batch=batch)  # the uninterrupted run
    t = trainer(tm)
    t.train(w0, meta)
    stats, wT = tm.running_stats(), t.weights
    hg = t.hypergrad(tm.evaluate(wT, *valid)[1])

    fresh = bn_bridge(bn_cnn(), batch=batch)  # a new process: no statistics past step 0
    t2 = trainer(fresh)
    t2.load(ckpt)
    assert t2.stats["steps_done"] == 10
    with pytest.raises(revl.InvalidError, match="statistics before step 10 are not known"):
        t2.train_resume()

    resumed = bn_bridge(bn_cnn(), batch=batch)
    resumed.load_state(state, step=10)     # steps 10 and 11 compute theirs
    assert len(resumed._stats) == 11
    t3 = trainer(resumed)
    t3.load(ckpt)
    t3.train_resume()
    assert np.array_equal(t3.weights, wT)
    assert stats_equal(resumed.running_stats(), stats)
    hg3 = t3.hypergrad(resumed.evaluate(wT, *valid)[1])
    for kind in ("w0", "alpha", "gamma", "meta"):
        assert np.array_equal(getattr(hg3, kind), getattr(hg, kind)), kind
    with pytest.raises(revl.InvalidError, match="not of step 12"):
        resumed.load_state(state, step=12)


def test_dropout_is_off_in_evaluation():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Dropout(0.5),
                              torch.nn.Linear(7, 3)).double()
    tm = rt.TorchModel(net, F.cross_entropy, data((5,), 40, 1), batch_size=10)
    w, (x, y) = tm.read_params(), data((5,), 30, 2)
    net.eval()
    with torch.no_grad():
        want = float(F.cross_entropy(net(x), y))
    net.train()
    assert tm.evaluate(w, x, y)[0] == want
    assert net.training and net[2].training                 # the module's modes put back


def test_buffers_other_than_running_statistics_are_refused():
    class Counting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(5, 3).double()
            self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

        def forward(self, x):
            self.calls += 1
            return self.fc(x)

    with pytest.raises(revl.InvalidError, match=r"buffers \['calls'\] that are not batch-norm"):
        rt.TorchModel(Counting(), F.cross_entropy, data((5,), 40, 1))


def sliced_params_of(tm):
    """The bridge's former parameter cut (one slice and one cast per tensor)."""
    def params_of(flat):
        out, o = {}, 0
        for name, shape, n in zip(tm.names, tm.shapes, tm.sizes):
            out[name] = flat[o:o + n].view(shape).to(tm.dtype)
            o += n
        return out
    return params_of


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_one_cast_and_split_gives_the_per_tensor_bits(dtype):
    """params_of casts w once and splits it into views; the former per-tensor slices and casts
    give the same bits for the gradient and the fused Hessian-vector product."""
    fast, slow = bn_bridge(bn_cnn().to(dtype)), bn_bridge(bn_cnn().to(dtype))
    slow.params_of = sliced_params_of(slow)
    rng = np.random.default_rng(2)
    w, meta = fast.read_params(), np.array([-1.0, -2.0])
    a, b = rng.normal(size=fast.n_params), rng.normal(size=fast.n_params)
    for step in range(3):
        lf, gf = fast.grad(step, w, meta)
        ls, gs = slow.grad(step, w, meta)
        assert lf == ls and np.array_equal(gf, gs)
        for x, y in zip(fast.hvp_affine(step, w, meta, a, b), slow.hvp_affine(step, w, meta, a, b)):
            assert np.array_equal(x, y)
    assert stats_equal(fast.running_stats(), slow.running_stats())


def test_resnet_example_quick(tmp_path):
    import subprocess
    import sys
    root = revl.__file__.rsplit("/python/revl/", 1)[0]
    r = subprocess.run([sys.executable, f"{root}/python/examples/torch_resnet.py", "--quick",
                        "--iterations", "2", "--steps", "4", "--torch-steps", "2",
                        "--n-train", "64", "--n-valid", "64", "--n-test", "64",
                        "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300,
                       env={"REVL_LIBRARY": revl.library_path, "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1].startswith("RESULT: ok"), r.stdout
    assert "P = 77562 parameters in 5 layers" in r.stdout and "7 batch norms" in r.stdout
    assert "test accuracy" in r.stdout and "unrolled PyTorch" in r.stdout
    assert "T = 4 steps of adamw" in r.stdout and "best weight_decay per layer" in r.stdout
    assert np.loadtxt(tmp_path / "schedule.dat").shape == (4, 6)
    decay = np.loadtxt(tmp_path / "weight_decay.dat")      # learned: moved from 0.01
    assert decay.shape == (4, 6) and np.all(decay[:, 1:] > 0) and np.any(decay[:, 1:] != 0.01)
    assert np.loadtxt(tmp_path / "curve.dat").shape == (2, 6)


def test_a_batch_norm_kept_in_eval_mode():
    """A batch norm set to eval() before the bridge is made (a frozen batch norm when
    fine-tuning) trains with its running statistics, which then never change; the other one
    trains on batch statistics; the hypergradients still equal unrolled PyTorch's."""
    net = bn_cnn()
    with torch.no_grad():              # statistics that differ from the batch's
        net[1].running_mean.fill_(0.3)
        net[1].running_var.fill_(2.0)
    net[1].eval()
    tm = bn_bridge(net)
    assert net[1].training is False and net.training     # the user's modes are kept
    meta, valid = np.array([-3.0, -2.0]), data(SHAPE, 30, 2)
    s, w0, f, hg = revl_run(tm, 8, meta, valid)
    after, before = tm.running_stats(), tm.initial_stats()
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith("1."))
    assert int(after["5.num_batches_tracked"]) == 8
    ref = rt.unrolled_hypergrad(tm, s.alpha, s.gamma_applied, w0, meta,
                                lambda w: tm.loss_on(w, *valid))
    for kind in ("w0", "alpha", "gamma", "meta"):
        close(getattr(hg, kind), getattr(ref, kind), 1e-8)
    # in training, that batch norm normalises with its running statistics, not the batch's
    flat = torch.tensor(w0)
    trained = tm.loss_at(0, flat, torch.tensor(meta))
    net[1].train()
    other = bn_bridge(net)
    assert other.loss_at(0, flat, torch.tensor(meta)) != trained
