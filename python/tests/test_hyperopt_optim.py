"""revl.HyperOpt over Adam and RMSprop: starts at the optimiser's defaults, get/set of each kind,
learning any subset of kinds lowers the validation loss, the version 2 file round trip, errors."""
import numpy as np
import pytest

import revl

W = [4, 6, 3]


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 4)) + np.eye(3, 4)[y] * 2.0
    return revl.Dataset(x, y)


def make(n_steps=10, optimizer="adam", **kw):
    return revl.HyperOpt(revl.MLP(W, blobs(), batch_size=20), blobs(seed=1), n_steps,
                         optimizer=optimizer, **kw)


def test_starts_at_the_optimisers_defaults():
    h = make(8)
    assert h.optimizer == "adam" and h.kinds == ("alpha", "beta1", "beta2", "eps")
    p = h.get()
    assert p.gamma is None and p.alpha.shape == (8, 4)
    for k, v in (("alpha", 1e-3), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8)):
        np.testing.assert_allclose(getattr(p, k), v, rtol=1e-12)
        np.testing.assert_allclose(h.get_kind(k), v, rtol=1e-12)
    np.testing.assert_allclose(p.log_init_scales, -3)
    hm = make(4, optimizer="momentum")
    assert hm.kinds == ("alpha", "gamma", "weight_decay")
    np.testing.assert_array_equal(hm.get_kind("weight_decay"), 0.0)    # coupled decay: off
    r = make(4, optimizer="rmsprop")
    assert r.optimizer == "rmsprop" and r.get().beta1 is None
    assert r.kinds == ("alpha", "gamma", "beta2", "eps", "weight_decay")
    np.testing.assert_allclose(r.get().beta2, 0.99)
    np.testing.assert_array_equal(r.get_kind("weight_decay"), 0.0)


def test_set_and_get_each_kind():
    h = make(5)
    h.set(alpha=0.05, beta1=[0.8, 0.85, 0.9, 0.95], eps=1e-6, log_init_scales=-2.0)
    p = h.get()
    np.testing.assert_allclose(p.alpha, 0.05)
    np.testing.assert_allclose(p.beta1, [[0.8, 0.85, 0.9, 0.95]] * 5)
    np.testing.assert_allclose(p.beta2, 0.999)
    np.testing.assert_allclose(p.eps, 1e-6)
    np.testing.assert_allclose(p.log_init_scales, -2.0)


def test_errors_name_the_kind():
    h = make(5)
    with pytest.raises(revl.InvalidError, match="this adam hyper-optimiser has no gamma"):
        h.set(gamma=0.5)
    with pytest.raises(revl.InvalidError, match="this adam hyper-optimiser has no gamma"):
        h.get_kind("gamma")
    with pytest.raises(revl.InvalidError, match="beta2"):
        h.set(beta2=1.0)
    # a bad value after good ones: nothing changed
    with pytest.raises(revl.InvalidError, match="eps"):
        h.set(alpha=0.3, beta1=0.5, eps=-1.0)
    np.testing.assert_allclose(h.get().alpha, 1e-3)
    np.testing.assert_allclose(h.get().beta1, 0.9)
    with pytest.raises(revl.InvalidError, match="optimizer must be one of"):
        make(5, optimizer="lion")
    with pytest.raises(revl.InvalidError, match="learn: unknown 'beta3'"):
        make(5, learn="alpha,beta3")
    with pytest.raises(revl.InvalidError, match="no beta1"):
        make(5, optimizer="momentum").set(beta1=0.9)


@pytest.mark.parametrize("learn", ["alpha,beta1,beta2,init_scale", "beta1,eps"])
def test_learning_adam_kinds_lowers_the_validation_loss(learn):
    reports = []
    h = make(20, learn=learn, iterations=8, report=reports.append, step_size=0.1)
    assert sorted(h.options["learn"]) == sorted(learn.split(","))
    h.set(alpha=0.05, eps=1e-3)
    start = {k: h.get_kind(k) for k in h.kinds}
    h.run()
    assert min(r.valid_loss for r in reports[1:]) < reports[0].valid_loss - 1e-3
    p = h.get()
    best = h.get(best=True)
    for k in h.kinds:             # exactly the learned kinds moved
        moved = not np.array_equal(getattr(p, k), start[k])
        assert moved == (k in learn.split(",")), k
        # the best-so-far values were evaluated; the current ones are the update after the last
        # evaluation, so they differ where something is learned
        assert (not np.array_equal(getattr(best, k), getattr(p, k))) == moved, k
        np.testing.assert_array_equal(h.get_kind(k, best=True), getattr(best, k))


def test_file_round_trip(tmp_path):
    h = make(6, learn="alpha,beta1,beta2,eps,init_scale")
    h.set(alpha=0.05)
    h.step()
    h.step()
    path = tmp_path / "adam.txt"
    h.save(path, best=False)
    text = path.read_text()
    assert "adam" in text
    for k in ("alpha", "beta1", "beta2", "eps"):
        assert k in text
    h2 = make(6)
    h2.load(path)
    a, b = h.get(), h2.get()
    for k in ("alpha", "beta1", "beta2", "eps", "log_init_scales"):
        np.testing.assert_allclose(getattr(b, k), getattr(a, k), rtol=1e-12)
    with pytest.raises(revl.FileError):
        make(6, optimizer="momentum").load(path)          # another optimiser's file
    with pytest.raises(revl.FileError):
        make(7).load(path)                                # sizes differ


def test_adamw_learns_weight_decay():
    """optimizer='adamw' (its kinds from the library), log weight_decay learned: read, set and
    moved by a step; the version 2 file has its section."""
    h = make(6, optimizer="adamw", learn="alpha,weight_decay", step_size=0.2)
    assert h.kinds == ("alpha", "beta1", "beta2", "eps", "weight_decay")
    np.testing.assert_allclose(h.get().weight_decay, 0.01)
    h.set(alpha=0.05, weight_decay=0.2)
    before = h.get().weight_decay.copy()
    np.testing.assert_array_equal(before, 0.2)
    h.step()
    assert not np.array_equal(h.get().weight_decay, before)
    assert h.get().gamma is None


@pytest.mark.parametrize("opt", list(revl.OPTIMIZERS))
def test_learns_log_clip(opt, tmp_path):
    """learn=['clip'] (its bit and the driver kind from the library, every optimiser): the clip
    starts at the schedule's +inf, which a step refuses naming step and group; set(clip=...)
    gives the start, a step moves only the clip, and save/load carry it."""
    h = make(6, optimizer=opt, learn=["clip"], step_size=0.2)
    assert h.driver_kinds == ("clip",) and "clip" not in h.kinds
    assert h.options["learn"] == ["clip"]
    assert np.all(h.get().clip == np.inf)
    with pytest.raises(revl.InvalidError, match="clip = inf at step 0, group 0: log clip is learned"):
        h.step()
    h.set(clip=0.05)
    start = h.get()
    h.step()
    p = h.get()
    assert not np.array_equal(p.clip, start.clip) and np.all(np.isfinite(p.clip))
    for k in h.kinds:
        np.testing.assert_array_equal(getattr(p, k), getattr(start, k))
    path = tmp_path / "clip.txt"
    h.save(path, best=False)
    assert "# clip" in path.read_text()
    h2 = make(6, optimizer=opt, learn=["clip"])
    h2.load(path)
    np.testing.assert_array_equal(h2.get().clip, p.clip)
    # not learned: a fixed clip (the owned schedule's), read back as set
    h3 = make(6, optimizer=opt)
    h3.set(clip=0.5)
    np.testing.assert_array_equal(h3.get().clip, 0.5)


def test_learning_log_clip_lowers_the_validation_loss():
    reports = []
    h = make(20, learn="clip", iterations=10, report=reports.append, step_size=0.3)
    h.set(alpha=0.05, clip=0.01)
    h.run()
    assert min(r.valid_loss for r in reports[1:]) < reports[0].valid_loss - 1e-3
