"""Red-team findings of issue 11 in the Python binding: data sets used by two calls at once
(use-after-free, double free, segfault), HyperOpt values replaced from inside a meta-iteration,
integers that ctypes would wrap silently, and a NUL byte that cuts a path.  Each test failed (or
crashed the interpreter) before its fix.

The conflicts are made deterministic by holding a handle in use the way a running call does
(its lock, which a call on another thread would hold), instead of racing two threads."""
import contextlib
import os
import threading

import numpy as np
import pytest

import revl

W = [4, 6, 3]


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 4)) + np.eye(3, 4)[y] * 2.0
    return revl.Dataset(x, y)


@contextlib.contextmanager
def in_use(obj):
    """Hold obj's handle as a call running on another thread holds it."""
    h = obj._h
    assert h.lock.acquire(False)
    try:
        yield
    finally:
        h.lock.release()


# ------------------------------------------------------------------ item 1: data sets
def test_dataset_calls_hold_the_data_set():
    d, ref = blobs(), blobs(seed=1)
    x, y = d.x, d.labels
    with in_use(d):
        for call in (lambda: d.set(x, y), lambda: d.x, lambda: d.labels,
                     lambda: d.subset(0, 5), lambda: d.standardize(),
                     lambda: ref.standardize(reference=d)):
            with pytest.raises(revl.StateError, match="data set is in use"):
                call()
    # nothing changed, and everything works again once the other call is over
    np.testing.assert_array_equal(d.x, x)
    np.testing.assert_array_equal(ref.x, blobs(seed=1).x)
    d.set(x, y)
    assert d.subset(0, 5).n == 5
    ref.standardize(reference=d)


def test_evaluate_holds_its_data_set():
    train, valid = blobs(), blobs(seed=2)
    m = revl.MLP(W, train)
    w = np.zeros(m.n_params)
    with in_use(valid):
        with pytest.raises(revl.StateError, match="data set is in use"):
            m.evaluate(valid, w)
    assert np.isclose(m.evaluate(valid, w).loss, np.log(3))


def test_mlp_create_holds_its_training_set():
    train = blobs()
    with in_use(train):
        with pytest.raises(revl.StateError, match="data set is in use"):
            revl.MLP(W, train)
    revl.MLP(W, train)


def test_threads_evaluate_against_set():
    """The crash of the report, run for real: one thread evaluates while another replaces the
    data set.  Each call either runs whole or gets StateError; the interpreter survives and
    every loss is that of one of the two contents."""
    train, valid = blobs(), blobs(seed=3)
    m = revl.MLP(W, train)
    w = np.random.default_rng(0).normal(size=m.n_params) * 0.1
    a, b = blobs(n=60, seed=4), blobs(n=30, seed=5)
    contents = [(a.x, a.labels), (b.x, b.labels)]
    valid.set(*contents[0])
    want = {m.evaluate(a, w).loss, m.evaluate(b, w).loss}
    losses, errors = [], []

    def evaluate():
        for _ in range(300):
            try:
                losses.append(m.evaluate(valid, w).loss)
            except revl.StateError:
                pass
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

    def replace():
        for k in range(300):
            try:
                valid.set(*contents[k % 2])
            except revl.StateError:
                pass
            except Exception as e:  # pragma: no cover
                errors.append(e)

    ts = [threading.Thread(target=evaluate), threading.Thread(target=replace)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert losses and set(losses) <= want


# ------------------------------------------------------------------ item 6: HyperOpt.set/load
def hyperopt(objective=None, **kw):
    m = revl.MLP(W, blobs(), batch_size=20)
    if objective is None:
        return revl.HyperOpt(m, blobs(seed=1), 4, **kw)
    return revl.HyperOpt(m, None, 4, objective=objective, **kw)


def test_hyperopt_set_and_load_refused_inside_the_objective(tmp_path):
    path = tmp_path / "h.txt"
    seen = []
    box = {}

    def objective(w, meta):
        for call in (lambda: box["h"].set(alpha=5.0), lambda: box["h"].load(path)):
            try:
                call()
                seen.append("accepted")
            except revl.StateError:
                seen.append("refused")
        return 0.5 * float(w @ w), w.copy(), None

    h = box["h"] = hyperopt(objective)
    h.save(path, best=False)
    before = h.get().alpha.copy()
    h.step()
    assert seen == ["refused", "refused"]
    np.testing.assert_array_equal(h.get(best=True).alpha, before)


def test_hyperopt_set_and_load_refused_while_running_elsewhere(tmp_path):
    h = hyperopt()
    path = tmp_path / "h.txt"
    h.save(path, best=False)
    with in_use(h):
        with pytest.raises(revl.StateError, match="hyper-optimiser is in use"):
            h.set(alpha=5.0)
        with pytest.raises(revl.StateError, match="hyper-optimiser is in use"):
            h.load(path)
    h.set(alpha=0.2)
    h.load(path)


def test_hyperopt_checkpoint_load_refused_while_running_elsewhere(tmp_path):
    """Issue 24 item 4: a checkpoint_load from another thread during a step would replace the
    state the step is using."""
    h = hyperopt()
    path = tmp_path / "h.ckpt"
    h.checkpoint_save(path)
    before = h.get().alpha.copy()
    with in_use(h):
        with pytest.raises(revl.StateError, match="hyper-optimiser is in use"):
            h.checkpoint_load(path)
    np.testing.assert_array_equal(h.get().alpha, before)
    h.checkpoint_load(path)


# ------------------------------------------------------------------ item 10: integers
@pytest.mark.parametrize("make, what", [
    (lambda m, s: revl.Trainer(m, s, truncate=2**64 + 2), "truncate"),
    (lambda m, s: revl.Trainer(m, s, truncate=-1), "truncate"),
    (lambda m, s: revl.Trainer(m, s, threads=2**31), "threads"),
    (lambda m, s: revl.Trainer(m, s, threads=-1), "threads"),
    (lambda m, s: revl.Trainer(m, s, frac_bits=2**64 + 52), "frac_bits"),
    (lambda m, s: revl.MLP(W, blobs(), batch_size=-1), "batch_size"),
    (lambda m, s: revl.MLP(W, blobs(), batch_size=2**64 + 20), "batch_size"),
    (lambda m, s: revl.MLP(W, blobs(), seed=-1), "seed"),
    (lambda m, s: revl.MLP(W, blobs(), threads=2**32), "threads"),
    (lambda m, s: revl.HyperOpt(m, blobs(seed=1), 4, iterations=-1), "iterations"),
    (lambda m, s: revl.HyperOpt(m, blobs(seed=1), 4, frac_bits=2**32 + 52), "frac_bits"),
    (lambda m, s: revl.HyperOpt(m, blobs(seed=1), 4, threads=-1), "threads"),
    (lambda m, s: revl.HyperOpt(m, blobs(seed=1), 4, seed=2**64), "seed"),
    (lambda m, s: revl.HyperOpt(m, blobs(seed=1), 2**64 + 4), "n_steps"),
    (lambda m, s: revl.Schedule(2**64 + 3, m.offsets), "n_steps"),
    (lambda m, s: m.grad(-1, np.zeros(m.n_params)), "step"),
    (lambda m, s: m.hvp(2**64, np.zeros(m.n_params), None, np.zeros(m.n_params)), "step"),
    (lambda m, s: m.init_weights(-3.0, seed=-1), "seed"),
    (lambda m, s: blobs().subset(-1, 3), "first"),
    (lambda m, s: blobs().subset(0, 2**64 + 3), "count"),
    (lambda m, s: revl.Dataset.load_idx("a", "b", max_n=-1), "max_n"),
    (lambda m, s: revl.Dataset(np.zeros((2, 2)), [0, 1], n_classes=2**64 + 2), "n_classes"),
    # issue 24 item 14: ctypes made -1 SIZE_MAX and 2**64 + 2 two
    (lambda m, s: revl.Trainer(m, s).set_checkpoint("x.ckpt", -1), "every"),
    (lambda m, s: revl.Trainer(m, s).set_checkpoint("x.ckpt", 2**64 + 2), "every"),
    (lambda m, s: revl.Trainer(m, s).set_checkpoint("x.ckpt", 0), "every"),
    (lambda m, s: revl.Trainer(m, s).set_checkpoint("x.ckpt", 1.5), "every"),
])
def test_integers_are_range_checked(make, what):
    m = revl.MLP(W, blobs())
    s = revl.Schedule.for_model(m, 3)
    with pytest.raises(revl.InvalidError, match=what):
        make(m, s)


def test_integers_at_the_ends_of_their_ranges():
    m = revl.MLP(W, blobs(), seed=2**64 - 1, batch_size=0)
    assert m.seed == 2**64 - 1
    t = revl.Trainer(m, revl.Schedule.for_model(m, 3), truncate=0, threads=0)
    assert t.truncate == 0
    assert m.init_weights(-3.0, seed=2**64 - 1).shape == (m.n_params,)


# ------------------------------------------------------------------ item 12: NUL in a path
def test_nul_byte_in_a_path(tmp_path):
    h = hyperopt()
    cut = tmp_path / "x"
    with pytest.raises(revl.InvalidError, match="NUL"):
        h.save(str(cut) + "\0.txt")
    assert not cut.exists()
    with pytest.raises(revl.InvalidError, match="NUL"):
        h.load(str(cut) + "\0.txt")
    with pytest.raises(revl.InvalidError, match="NUL"):
        revl.Dataset.load_idx(str(cut) + "\0a", str(cut))
    h.save(tmp_path / "ok.txt")
    assert os.path.exists(tmp_path / "ok.txt")


def test_nul_byte_in_a_checkpoint_path(tmp_path):
    """Issue 24 item 14: every checkpoint path, as the other paths."""
    h = hyperopt()
    m = revl.MLP(W, blobs())
    t = revl.Trainer(m, revl.Schedule.for_model(m, 3))
    cut = tmp_path / "x"
    bad = str(cut) + "\0.ckpt"
    for call in (lambda: h.checkpoint_save(bad), lambda: h.checkpoint_load(bad),
                 lambda: t.save(bad), lambda: t.load(bad), lambda: t.set_checkpoint(bad, 1)):
        with pytest.raises(revl.InvalidError, match="NUL"):
            call()
    t.train(m.init_weights(-1.0), [-3.0] * m.n_meta)
    assert not cut.exists()
    t.set_checkpoint(None)
    t.set_checkpoint(tmp_path / "ok.ckpt", 2)


# ------------------------------------------------------------------ pinned: init noise
def _splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) % 2**64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return state, z ^ (z >> 31)


def test_init_weights_are_the_documented_normals():
    """revl.h: w0[i] = exp(log_scales[g]) z_i, z_i standard normal from the seed, the same on
    every platform: splitmix64, 53-bit uniforms in (0, 1) (offset half a unit), Box-Muller.
    Recomputed here bit for bit (Python's math calls the same libm)."""
    import math
    m = revl.Model(7, grad=lambda step, w, meta: (0.0, np.zeros(7)), groups=[0, 3, 7])
    scales = np.array([0.0, np.log(2.0)])
    got = m.init_weights(scales, seed=12345)
    state, want = 12345, []
    for i in range(7):
        state, a = _splitmix64(state)
        state, b = _splitmix64(state)
        u1 = ((a >> 11) + 0.5) * 2.0**-53
        u2 = ((b >> 11) + 0.5) * 2.0**-53
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)
        want.append(math.exp(scales[0 if i < 3 else 1]) * z)
    assert got.tolist() == want


def test_standardize_by_a_reference_with_a_constant_feature():
    """A feature constant in the reference gets sd 1 (revl.h): the data set's own values of it
    are shifted by the reference's value and not scaled."""
    d = revl.Dataset(np.array([[1.0, 5.0], [2.0, 7.0], [4.0, 3.0]]), [0, 1, 0])
    ref = revl.Dataset(np.array([[3.0, 4.0], [3.0, 6.0]]), [0, 1])
    d.standardize(reference=ref)
    np.testing.assert_array_equal(d.x, [[-2.0, 0.0], [-1.0, 2.0], [1.0, -2.0]])


# ------------------------------------------------------------------ issue 24 item 24
def test_grad_callback_returning_none_as_loss_is_nan():
    """A loss the callback does not know (None) is NaN, not a plausible 0."""
    m = revl.Model(3, grad=lambda k, w, meta: (None, 0.5 * w))
    loss, g = m.grad(0, np.ones(3))
    assert np.isnan(loss)
    np.testing.assert_array_equal(g, 0.5 * np.ones(3))
    t = revl.Trainer(m, revl.Schedule(3, [0, 3]))
    t.train(np.ones(3))
    assert np.isnan(t.stats["last_loss"])
