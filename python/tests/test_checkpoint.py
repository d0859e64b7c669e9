"""Trainer checkpoints from Python: a run interrupted after step k (a callback error), saved
every step, loaded into a fresh trainer and resumed gives the uninterrupted run's w_T and
hypergradients bit for bit; a damaged file is revl.FileError and changes nothing."""
import numpy as np
import pytest

import revl
from tanh_model import TanhNet

T = 12


class Stop(Exception):
    pass


def make(net, stop_at=None):
    def grad(step, w, meta):
        if stop_at is not None and step == stop_at:
            raise Stop()
        return net.grad(step, w, meta)

    m = revl.Model(net.n_params, net.n_meta, grad=grad, hvp=net.hvp, groups=net.groups)
    s = revl.Schedule.for_model(m, T)
    G = len(net.groups) - 1
    s.alpha = np.full((T, G), 0.05)
    s.gamma = np.full((T, G), 0.9)
    return m, s, revl.Trainer(m, s)


def finish(net, t):
    wT = t.weights
    hg = t.hypergrad(net.valid(wT)[1])
    return wT, hg


@pytest.mark.parametrize("k", [1, 5, T - 1])
def test_resume_gives_the_same_bits(tmp_path, k):
    net = TanhNet()
    w0, meta = net.init(), np.array([-1.3])
    _, _, ref = make(net)
    ref.train(w0, meta)
    want_w, want = finish(net, ref)

    path = str(tmp_path / "run.ckpt")
    _, _, a = make(net, stop_at=k)
    a.set_checkpoint(path, 1)
    with pytest.raises(Exception):
        a.train(w0, meta)
    _, _, b = make(net)
    b.load(path)
    b.train_resume()
    got_w, got = finish(net, b)
    assert np.array_equal(got_w, want_w)
    assert np.array_equal(got.w0, want.w0)
    assert np.array_equal(got.alpha, want.alpha)
    assert np.array_equal(got.gamma, want.gamma)
    assert np.array_equal(got.meta, want.meta)


def test_damaged_file_is_refused(tmp_path):
    net = TanhNet()
    _, _, t = make(net)
    t.train(net.init(), np.array([-1.3]))
    path = tmp_path / "run.ckpt"
    t.save(str(path))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    before = t.weights
    with pytest.raises(revl.FileError) as e:
        t.load(str(path))
    assert "checksum" in str(e.value)
    assert np.array_equal(t.weights, before)


@pytest.mark.parametrize("every", [1, 2, 3])
def test_reverse_resume_gives_the_same_bits(tmp_path, every):
    """hypergrad interrupted at step 4 of its walk back, checkpointed every `every` steps walked:
    a fresh trainer loads the file and hypergrad_resume returns the uninterrupted pass's bits;
    hypergrad, save and train_resume are refused on it."""
    net = TanhNet()
    w0, meta = net.init(), np.array([-1.3])
    _, _, ref = make(net)
    ref.train(w0, meta)
    wT, want = finish(net, ref)

    path = str(tmp_path / "rev.ckpt")
    stop = {"at": None}

    def grad(step, w, m):
        if step == stop["at"]:
            raise Stop()
        return net.grad(step, w, m)

    def hvp(step, w, m, v):
        if step == stop["at"]:
            raise Stop()
        return net.hvp(step, w, m, v)

    mo = revl.Model(net.n_params, net.n_meta, grad=grad, hvp=hvp, groups=net.groups)
    _, s, _ = make(net)
    a = revl.Trainer(mo, s)
    a.train(w0, meta)
    a.set_checkpoint(path, every)
    stop["at"] = 4
    with pytest.raises(Exception):
        a.hypergrad(net.valid(wT)[1])
    _, _, b = make(net)
    b.load(path)
    assert b.stats["steps_done"] == 4 + 1 + (T - 5) % every
    for call in (lambda: b.hypergrad(net.valid(wT)[1]), b.train_resume,
                 lambda: b.save(str(tmp_path / "x.ckpt"))):
        with pytest.raises(revl.StateError):
            call()
    with pytest.raises(revl.InvalidError):
        b.hypergrad_resume(kinds=["beta1"])
    got = b.hypergrad_resume()
    assert np.array_equal(got.w0, want.w0)
    assert np.array_equal(got.alpha, want.alpha)
    assert np.array_equal(got.gamma, want.gamma)
    assert np.array_equal(got.meta, want.meta)
    with pytest.raises(revl.StateError):
        b.hypergrad_resume()
