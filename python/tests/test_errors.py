"""Errors: bad shapes and types, NaN, out-of-range values, call order; status codes and the
handle's message; exceptions raised in callbacks stop the run and come back with their
traceback."""
import traceback

import numpy as np
import pytest

import revl
from tanh_model import TanhNet


def quad(P=4):
    A = np.arange(1.0, P + 1)
    return revl.Model(P, grad=lambda k, w, m: (0.5 * w @ (A * w), A * w),
                      hvp=lambda k, w, m, v: (A * v, None))


def trainer(model, T=10):
    return revl.Trainer(model, revl.Schedule(T, [0, model.n_params]))


def test_error_hierarchy_and_fields():
    assert issubclass(revl.InvalidError, revl.Error) and issubclass(revl.InvalidError, ValueError)
    assert issubclass(revl.RangeError, ArithmeticError)
    assert issubclass(revl.FileError, OSError) and issubclass(revl.NoMemoryError, MemoryError)
    e = revl.StateError(-5, "something", "revl_x")
    assert e.status == -5 and e.message == "something" and e.function == "revl_x"
    assert "something" in str(e) and "status -5" in str(e)
    assert revl.strerror(-6) == "reversal not exact"


def test_bad_shapes_are_caught_before_c():
    m = quad(4)
    t = trainer(m)
    with pytest.raises(revl.InvalidError, match=r"w0 has shape \(3,\), expected \(4,\)"):
        t.train(np.zeros(3))
    with pytest.raises(revl.InvalidError, match="dtype"):
        t.train(np.array(["a", "b", "c", "d"]))
    with pytest.raises(ValueError, match="no meta-parameters"):
        t.train(np.zeros(4), meta=[1.0])
    with pytest.raises(revl.InvalidError, match="n_params"):
        revl.Model(0, grad=lambda k, w, m: (0, w))
    with pytest.raises(revl.InvalidError, match="grad must be a callable"):
        revl.Model(3)
    with pytest.raises(revl.InvalidError, match="increase strictly"):
        revl.Schedule(5, [0, 2, 2, 4])
    with pytest.raises(revl.InvalidError, match="cover 5 parameters, the model has 4"):
        revl.Trainer(m, revl.Schedule(5, [0, 5]))
    s = revl.Schedule(5, [0, 1, 4])
    with pytest.raises(revl.InvalidError, match=r"expected \(5, 2\)"):
        s.alpha = np.zeros((4, 2))
    with pytest.raises(ValueError, match="read-only"):
        s.alpha[0, 0] = 1.0      # the getter returns a read-only copy
    s.alpha = 0.3                # a scalar broadcasts
    s.gamma = [0.5, 0.75]        # so does a row per group
    assert np.all(s.alpha == 0.3) and np.all(s.gamma[:, 1] == 0.75)


def test_meta_required_with_message():
    net = TanhNet()
    m = revl.Model(net.n_params, 1, grad=net.grad)
    t = trainer(m)
    with pytest.raises(revl.InvalidError, match="1 meta-parameters: meta is required"):
        t.train(net.init())


def test_status_and_message_from_the_library():
    s = revl.Schedule(5, [0, 4])
    with pytest.raises(revl.InvalidError) as ei:
        s.gamma = 1.5
    assert ei.value.status == -1
    assert ei.value.function == "revl_schedule_set_all"
    assert "gamma = 1.5 outside [2^-16, 1] at step 0, group 0" in ei.value.message
    assert np.all(s.gamma == 0.9)     # nothing changed

    t = trainer(quad(4))
    with pytest.raises(revl.StateError) as ei:
        t.hypergrad(np.ones(4))
    assert ei.value.status == -5 and ei.value.message

    with pytest.raises(revl.RangeError, match=r"w0\[2\] = 1e\+06 is outside the fixed-point"):
        t.train([0, 0, 1e6, 0])
    assert t.stats["steps_done"] == 0


def test_hypergrad_message_names_the_function_once():
    """Adam's hypergradient goes through revl_trainer_hypergrad_kinds_n: its message carries that
    one prefix (not "revl_trainer_hypergrad_kinds_n: revl_trainer_hypergrad: ...", issue 24)."""
    m = quad(4)
    t = revl.Trainer(m, revl.Schedule.for_model(m, 5, optimizer="adam", alpha=0.01))
    t.train(np.ones(4))
    t.hypergrad(np.ones(4))
    with pytest.raises(revl.StateError) as ei:
        t.hypergrad(np.ones(4))
    assert ei.value.function == "revl_trainer_hypergrad_kinds_n"
    assert str(ei.value) == ("revl_trainer_hypergrad_kinds_n: already reversed; call "
                             "revl_trainer_train first [call out of order, status -5]")


def test_nan_gradient_names_step_and_parameter():
    def grad(k, w, m):
        g = w.copy()
        if k == 3:
            g[2] = np.nan
        return 0.0, g
    t = trainer(revl.Model(4, grad=grad))
    with pytest.raises(revl.RangeError) as ei:
        t.train(np.ones(4))
    assert ei.value.status == -4
    assert "gradient is NaN at step 3, parameter 2" in ei.value.message
    with pytest.raises(revl.RangeError, match="dfdw"):
        t2 = trainer(quad(4))
        t2.train(np.ones(4))
        t2.hypergrad([0, np.inf, 0, 0])


def test_callback_wrong_shape_is_reraised_with_message():
    t = trainer(revl.Model(4, grad=lambda k, w, m: (0.0, np.zeros(5))))
    with pytest.raises(revl.InvalidError, match=r"returned g of shape \(5,\), expected \(4,\)"):
        t.train(np.ones(4))
    t = trainer(revl.Model(4, grad=lambda k, w, m: np.zeros(4)))
    with pytest.raises(revl.InvalidError, match=r"must return \(loss, g\)"):
        t.train(np.ones(4))
    m = revl.Model(4, grad=lambda k, w, m: (0.0, w), hvp=lambda k, w, m, v: v)
    t = trainer(m)
    t.train(np.ones(4))
    with pytest.raises(revl.InvalidError, match=r"must return \(hv_w, hv_meta\)"):
        t.hypergrad(np.ones(4))


class Boom(Exception):
    pass


def user_gradient_that_fails(k, w, m):
    if k == 5:
        raise Boom(f"boom at step {k}")
    return 0.0, 0.1 * w


def test_callback_exception_reraised_with_original_traceback():
    model = revl.Model(4, grad=user_gradient_that_fails)
    t = trainer(model)
    with pytest.raises(Boom, match="boom at step 5") as ei:
        t.train(np.ones(4))
    frames = [f.name for f in traceback.extract_tb(ei.value.__traceback__)]
    assert "user_gradient_that_fails" in frames          # where it was raised
    assert "test_callback_exception_reraised_with_original_traceback" in frames
    notes = getattr(ei.value, "__notes__", [""])
    assert any("grad callback" in n for n in notes) or not hasattr(ei.value, "add_note")
    # the run stopped at step 5 and the trainer is usable again
    assert t.stats["steps_done"] == 5
    with pytest.raises(revl.StateError):
        t.hypergrad(np.ones(4))


def test_callback_exception_in_reverse_pass():
    calls = {"n": 0}

    def hvp(k, w, m, v):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyError("in hvp")
        return v, None

    t = trainer(revl.Model(4, grad=lambda k, w, m: (0.0, w), hvp=hvp))
    t.train(np.ones(4))
    with pytest.raises(KeyError, match="in hvp"):
        t.hypergrad(np.ones(4))


def test_keyboard_interrupt_in_callback_stops_the_run():
    def grad(k, w, m):
        if k == 2:
            raise KeyboardInterrupt
        return 0.0, w
    t = trainer(revl.Model(4, grad=grad))
    with pytest.raises(KeyboardInterrupt):
        t.train(np.ones(4))
    assert t.stats["steps_done"] == 2


def test_callback_inputs_are_read_only_views():
    seen = []

    def grad(k, w, m):
        seen.append(w.flags.writeable)
        w[0] = 1.0           # must fail: the library's memory is const
        return 0.0, w

    t = trainer(revl.Model(4, grad=grad))
    with pytest.raises(ValueError, match="read-only"):
        t.train(np.ones(4))
    assert seen == [False]


def test_copy_inputs_gives_private_arrays():
    kept = []

    def grad(k, w, m):
        kept.append(w)
        return 0.0, 0.1 * w

    t = revl.Trainer(revl.Model(3, grad=grad, copy_inputs=True), revl.Schedule(4, [0, 3]))
    t.train(np.ones(3))
    assert all(a.flags.writeable for a in kept)
    assert not np.array_equal(kept[0], kept[-1])     # each call its own copy


def test_reentering_a_running_trainer_is_refused():
    holder = {}

    def grad(k, w, m):
        holder["t"].train(np.ones(2))
        return 0.0, w

    t = trainer(revl.Model(2, grad=grad))
    holder["t"] = t
    with pytest.raises(revl.StateError, match="in use by another call"):
        t.train(np.ones(2))
    holder.clear()


def test_closed_objects_refuse_calls():
    m = quad(4)
    m.close()
    assert m.closed
    with pytest.raises(revl.StateError, match="model is closed"):
        m.grad(0, np.zeros(4))
    with pytest.raises(revl.StateError, match="closed"):
        revl.Trainer(m, revl.Schedule(3, [0, 4]))
    m.close()  # idempotent
