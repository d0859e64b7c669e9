"""Handles: context managers, close(), finalizers, dependencies kept alive, no leak over many
create/free cycles (RSS from /proc/self/statm)."""
import gc
import os
import weakref

import numpy as np
import pytest

import revl


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def quad_model(P):
    A = np.linspace(0.5, 2.0, P)
    return revl.Model(P, grad=lambda k, w, m: (0.5 * w @ (A * w), A * w),
                      hvp=lambda k, w, m, v: (A * v, None))


def test_context_managers_close():
    with quad_model(3) as m, revl.Schedule(4, [0, 3]) as s, revl.Trainer(m, s) as t:
        t.train(np.ones(3))
    assert m.closed and s.closed and t.closed


def test_trainer_keeps_model_and_schedule_alive():
    m, s = quad_model(5), revl.Schedule(8, [0, 5])
    t = revl.Trainer(m, s)
    hm, hs = weakref.ref(m._h), weakref.ref(s._h)
    m.close()
    s.close()
    del m, s
    gc.collect()
    assert hm() is not None and hs() is not None      # still used by the trainer
    t.train(np.ones(5))                                # and the trainer works
    t.hypergrad(np.ones(5))
    assert np.array_equal(t.weights, np.ones(5))
    t.close()
    assert hm() is None and hs() is None               # freed with the last user


def test_finalizer_frees_without_close():
    m = quad_model(3)
    h = weakref.ref(m._h)
    fin = m._h._fin
    del m
    assert h() is None and not fin.alive


def test_user_object_cycle_is_collected():
    class Holder:
        def __init__(self):
            self.model = revl.Model(3, grad=self.grad)

        def grad(self, k, w, m):
            return 0.0, w

    x = Holder()
    h = weakref.ref(x.model._h)
    del x
    gc.collect()
    assert h() is None


def cycle(P, T, w0, dfdw, explicit_close, fail):
    def grad(k, w, m):
        if fail and k == T // 2:
            raise RuntimeError("planned")
        return 0.0, 0.5 * w

    m = revl.Model(P, grad=grad, hvp=lambda k, w, m, v: (0.5 * v, None))
    s = revl.Schedule(T, [0, P // 2, P])
    t = revl.Trainer(m, s, threads=1)
    try:
        t.train(w0)
        t.hypergrad(dfdw)
    except RuntimeError:
        pass
    if explicit_close:
        t.close()
        s.close()
        m.close()


@pytest.mark.parametrize("explicit_close,fail", [(True, False), (False, False), (False, True)])
def test_no_leak_over_many_cycles(explicit_close, fail):
    P, T = 2000, 4                       # ~0.2 MB of C memory per trainer: a leak shows at once
    w0, dfdw = np.full(P, 0.5), np.ones(P)
    for _ in range(200):
        cycle(P, T, w0, dfdw, explicit_close, fail)
    gc.collect()
    before = rss_bytes()
    for _ in range(2000):
        cycle(P, T, w0, dfdw, explicit_close, fail)
    gc.collect()
    grown = rss_bytes() - before
    assert grown < 16 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 2000 cycles"
