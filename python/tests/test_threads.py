"""Threads: distinct handles run concurrently (ctypes releases the GIL around C calls; callbacks
take it back) and give the same bits as run one after another; a handle in use by one thread is
refused to another."""
import threading

import numpy as np
import pytest

import revl
from tanh_model import TanhNet


def run_one(seed):
    net = TanhNet(seed=seed)
    m = revl.Model(net.n_params, 1, grad=net.grad, hvp=net.hvp, groups=net.groups)
    t = revl.Trainer(m, revl.Schedule.for_model(m, 40, alpha=0.1, gamma=0.875))
    t.train(net.init(), [-2.0])
    hg = t.hypergrad(net.valid(t.weights)[1])
    return hg.w0.tobytes() + hg.alpha.tobytes() + hg.gamma.tobytes() + hg.meta.tobytes()


def test_distinct_handles_in_threads_match_sequential():
    seeds = [0, 1, 2, 3]
    sequential = [run_one(s) for s in seeds]
    out = [None] * len(seeds)
    errors = []

    def work(i):
        try:
            out[i] = run_one(seeds[i])
        except BaseException as e:   # noqa: B902
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(seeds))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert out == sequential


def test_a_busy_trainer_is_refused_to_another_thread():
    entered, release = threading.Event(), threading.Event()

    def grad(k, w, m):
        if k == 1:
            entered.set()
            release.wait(10)
        return 0.0, 0.5 * w

    t = revl.Trainer(revl.Model(3, grad=grad), revl.Schedule(3, [0, 3]))
    th = threading.Thread(target=t.train, args=(np.ones(3),))
    th.start()
    try:
        assert entered.wait(10)
        with pytest.raises(revl.StateError, match="in use"):
            t.train(np.ones(3))
        with pytest.raises(revl.StateError, match="in use"):   # its model too
            t.model.grad(0, np.ones(3))
    finally:
        release.set()
        th.join()
    assert t.stats["steps_done"] == 3


def test_a_training_trainer_refuses_checkpoint_calls_from_another_thread(tmp_path):
    """set_checkpoint (which frees the path the running train's saves read), save and load
    from a second thread during train() are refused; the training saves where it was told."""
    entered, release = threading.Event(), threading.Event()

    def grad(k, w, m):
        if k == 1:
            entered.set()
            release.wait(10)
        return 0.0, 0.5 * w

    t = revl.Trainer(revl.Model(3, grad=grad), revl.Schedule(3, [0, 3]))
    path = tmp_path / "a.ckpt"
    t.set_checkpoint(path, 1)
    th = threading.Thread(target=t.train, args=(np.ones(3),))
    th.start()
    try:
        assert entered.wait(10)
        for call in (lambda: t.set_checkpoint(tmp_path / "b.ckpt", 1),
                     lambda: t.set_checkpoint(None), lambda: t.save(tmp_path / "c.ckpt"),
                     lambda: t.load(path)):
            with pytest.raises(revl.StateError, match="in use"):
                call()
    finally:
        release.set()
        th.join()
    assert t.stats["steps_done"] == 3
    assert path.exists() and not (tmp_path / "b.ckpt").exists()


@pytest.mark.parametrize("phase", ["train", "hypergrad"])
def test_every_trainer_call_is_refused_to_another_thread(tmp_path, phase):
    """Every Trainer call that touches its state (issue 24 item 2), made from a second thread
    while train() or hypergrad() runs, raises StateError and changes nothing; the running call
    gives the same bits as an undisturbed trainer."""
    entered, release = threading.Event(), threading.Event()

    def grad(k, w, m):
        if k == 1 and parked[0]:
            parked[0] = False
            entered.set()
            release.wait(10)
        return 0.5 * float(w @ w), 0.5 * w + 0.1 * np.sin(w)

    def make():
        return revl.Trainer(revl.Model(3, grad=grad), revl.Schedule(3, [0, 3], alpha=0.1,
                                                                    gamma=0.9))

    parked = [False]
    w0, dfdw = np.array([1.0, -0.5, 0.25]), np.array([0.3, 0.2, -0.1])
    ref = make()
    ref.train(w0)
    ref_w, ref_hg = ref.weights, ref.hypergrad(dfdw)
    t = make()
    if phase == "hypergrad":
        t.train(w0)
    out = {}
    run = ((lambda: t.train(w0)) if phase == "train"
           else (lambda: out.setdefault("hg", t.hypergrad(dfdw))))
    parked[0] = True
    th = threading.Thread(target=run)
    th.start()
    try:
        assert entered.wait(10)
        calls = {"train": lambda: t.train(w0),
                 "train forward": lambda: t.train(w0, forward_only=True),
                 "train_resume": t.train_resume,
                 "hypergrad": lambda: t.hypergrad(dfdw),
                 "hypergrad_resume": t.hypergrad_resume,
                 "save": lambda: t.save(tmp_path / "c.ckpt"),
                 "load": lambda: t.load(tmp_path / "c.ckpt"),
                 "set_checkpoint": lambda: t.set_checkpoint(tmp_path / "b.ckpt", 1),
                 "set_progress": lambda: t.set_progress(None),
                 "weights": lambda: t.weights,
                 "stats": lambda: t.stats}
        for name, call in calls.items():
            with pytest.raises(revl.StateError, match="in use") as e:
                call()
            assert e.value is not None, name
    finally:
        release.set()
        th.join()
    assert not list(tmp_path.iterdir())
    if phase == "train":
        assert t.weights.tobytes() == ref_w.tobytes()
    else:
        for k in ("w0", "alpha", "gamma"):
            assert getattr(out["hg"], k).tobytes() == getattr(ref_hg, k).tobytes(), k


def test_the_progress_callback_reads_its_own_trainer():
    """weights and stats from the running call's own progress callback answer (the trainer
    stands at the step the callback is told), in train and in hypergrad."""
    seen = []
    t = revl.Trainer(revl.Model(3, grad=lambda k, w, m: (0.5 * float(w @ w), w)),
                     revl.Schedule(3, [0, 3], alpha=0.1, gamma=0.5))

    def watch(p):
        seen.append((p.phase, p.step, t.stats["steps_done"], t.weights.copy()))

    t.set_progress(watch)
    t.train(np.ones(3))
    wT = t.weights
    t.hypergrad(np.ones(3))
    assert [s[:3] for s in seen] == [("forward", k, k) for k in (1, 2, 3)] + \
        [("reverse", k, k) for k in (2, 1, 0)]
    assert np.array_equal(seen[2][3], wT) and np.array_equal(seen[-1][3], np.ones(3))
