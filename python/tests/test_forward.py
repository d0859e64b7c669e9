"""Forward-only training and progress from Python: Trainer.train(forward_only=True) gives
train's w_T and last loss bit for bit for every optimiser, keeps nothing to reverse (hypergrad
and save raise StateError; a train after it reverses exactly); set_progress / progress= report
each phase at the right steps, a true return stops with CallbackError, an exception in the
callback is re-raised, and the trainer trains again afterwards."""
import io

import numpy as np
import pytest

import revl
from tanh_model import TanhNet

T = 12
OPTIMIZERS = ["momentum", "adam", "rmsprop"]


def make(net, optimizer="momentum", **kw):
    m = revl.Model(net.n_params, net.n_meta, grad=net.grad, hvp=net.hvp, groups=net.groups)
    s = revl.Schedule.for_model(m, T, optimizer=optimizer)
    s.alpha = np.full((T, len(net.groups) - 1), 0.05 if optimizer == "momentum" else 0.01)
    return m, s, revl.Trainer(m, s, **kw)


def start(net):
    return net.init(), np.array([-1.3])


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("truncate", [0, 4])
def test_forward_only_same_bits(optimizer, truncate):
    net = TanhNet()
    w0, meta = start(net)
    _, _, ref = make(net, optimizer, truncate=truncate)
    ref.train(w0, meta)
    want_w, want_loss = ref.weights, ref.stats["last_loss"]
    want_hg = ref.hypergrad(net.valid(want_w)[1])

    _, _, t = make(net, optimizer, truncate=truncate, threads=2)
    t.train(w0, meta, forward_only=True)
    assert t.weights.tobytes() == want_w.tobytes()
    assert np.float64(t.stats["last_loss"]).tobytes() == np.float64(want_loss).tobytes()
    assert t.stats["steps_done"] == T
    with pytest.raises(revl.StateError, match="trained forward-only: nothing to reverse"):
        t.hypergrad(net.valid(want_w)[1])
    # a train afterwards reverses with the reference's bits
    t.train(w0, meta)
    hg = t.hypergrad(net.valid(t.weights)[1])
    for k in ("w0", "meta") + want_hg.kinds:
        assert getattr(hg, k).tobytes() == getattr(want_hg, k).tobytes(), k


def test_forward_only_refuses_save_and_writes_no_checkpoint(tmp_path):
    net = TanhNet()
    w0, meta = start(net)
    _, _, t = make(net)
    path = tmp_path / "run.ckpt"
    t.set_checkpoint(path, every=2)
    t.train(w0, meta, forward_only=True)
    assert not path.exists()
    with pytest.raises(revl.StateError, match="trained forward-only"):
        t.save(path)
    assert not path.exists()
    t.train(w0, meta)
    assert path.exists()


def test_progress_steps_and_phases():
    net = TanhNet()
    w0, meta = start(net)
    seen = []
    _, _, t = make(net, progress=seen.append, progress_every=5, truncate=0)
    t.train(w0, meta)
    assert [(p.step, p.phase, p.n_steps) for p in seen] == [(5, "forward", T),
                                                             (10, "forward", T),
                                                             (12, "forward", T)]
    assert all(np.isfinite(p.loss) and p.seconds >= 0 for p in seen)
    assert seen[-1].loss == t.stats["last_loss"]
    seen.clear()
    t.hypergrad(net.valid(t.weights)[1])
    assert [(p.step, p.phase) for p in seen] == [(7, "reverse"), (2, "reverse"), (0, "reverse")]
    assert all(np.isnan(p.loss) for p in seen)
    seen.clear()
    t.train(w0, meta, forward_only=True)
    assert [p.step for p in seen] == [5, 10, 12]
    seen.clear()
    t.set_progress(None)
    t.train(w0, meta)
    assert seen == []


@pytest.mark.parametrize("where", ["train", "forward_only", "hypergrad"])
def test_progress_stop_and_exception(where):
    net = TanhNet()
    w0, meta = start(net)
    _, _, ref = make(net)
    ref.train(w0, meta)
    want = ref.weights.tobytes()

    phase = "reverse" if where == "hypergrad" else "forward"
    _, _, t = make(net)
    t.set_progress(lambda p: p.phase == phase and p.step == 6, every=3)

    def run():
        if where == "hypergrad":
            t.train(w0, meta)
            t.hypergrad(net.valid(t.weights)[1])
        else:
            t.train(w0, meta, forward_only=where == "forward_only")

    with pytest.raises(revl.CallbackError, match="stopped by the progress callback at step 6"):
        run()
    with pytest.raises(revl.StateError, match="no completed training"):
        t.hypergrad(net.valid(t.weights)[1])

    class Boom(Exception):
        pass

    def boom(p):
        if p.phase == phase and p.step == 6:
            raise Boom()

    t.set_progress(boom, every=3)
    with pytest.raises(Boom):
        run()
    # usable again: the same bits as a trainer never stopped
    t.set_progress(lambda p: False)
    t.train(w0, meta)
    assert t.weights.tobytes() == want
    t.hypergrad(net.valid(t.weights)[1])


def test_progress_arguments_and_printer():
    net = TanhNet()
    w0, meta = start(net)
    _, _, t = make(net)
    with pytest.raises(revl.InvalidError, match="every"):
        t.set_progress(print, every=0)
    with pytest.raises(revl.InvalidError, match="callable"):
        t.set_progress(3)
    buf = io.StringIO()
    revl.print_progress(revl.Progress(6, "forward", 1.25, 0.5, 12), file=buf)
    revl.print_progress(revl.Progress(4, "reverse", 2.0, float("nan"), 12), file=buf)
    assert buf.getvalue().splitlines() == ["revl forward: 6/12 steps, 1.2 s  loss 0.5",
                                           "revl reverse: 8/12 steps, 2.0 s"]
    t.set_progress(True, every=6)       # lines on stderr; the run is unchanged
    t.train(w0, meta)
    # a callback that calls the trainer back: refused (StateError re-raised), trainer usable
    t.set_progress(lambda p: t.set_progress(None))
    with pytest.raises(revl.StateError, match="in use"):
        t.train(w0, meta)
    t.set_progress(None)
    t.train(w0, meta)
