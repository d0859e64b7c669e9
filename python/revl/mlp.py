"""MLP: the library's built-in multilayer perceptron (softmax cross-entropy output)."""

import collections
import ctypes

import numpy as np

from . import _errors
from ._base import INT_MAX, _Busy, _CHandle, as_f64, as_int, check, ptr
from ._errors import InvalidError
from ._lib import MlpOptions, init_struct, lib
from .core import Model
from .data import Dataset

ACTIVATIONS = {"tanh": 0, "relu": 1, "logistic": 2}
PENALTIES = {"none": 0, "per_layer": 1, "per_weight": 2}

Evaluation = collections.namedtuple("Evaluation", "loss accuracy grad")
Evaluation.__doc__ = "Mean cross-entropy (no penalty), accuracy, and the gradient (or None)."

Block = collections.namedtuple("Block", "name layer kind offset shape group")
Block.__doc__ = ("One block of the parameter vector: name 'W0', 'b0', ...; layer index; kind 'W' "
                 "or 'b'; offset into w; shape; parameter group index.")


def _enum(value, table, name):
    if isinstance(value, str):
        key = value.lower().replace("-", "_")
        if key not in table:
            raise InvalidError(_errors.ERR_INVALID, f"{name} must be one of {sorted(table)}, "
                               f"got {value!r}", "MLP")
        return table[key]
    if int(value) not in table.values():
        raise InvalidError(_errors.ERR_INVALID, f"{name} must be one of {sorted(table)}, got "
                           f"{value!r}", "MLP")
    return int(value)


class MLP(Model):
    """A dense network widths[0] -> ... -> widths[-1] on the data set ``train`` (kept alive by
    the model and not changeable while it exists), with a tanh / relu / logistic hidden
    activation and softmax cross-entropy output; two widths = multinomial logistic regression.

    Layout: per layer l, weights W_l (widths[l], widths[l+1]) row-major, then biases b_l; group
    2l = W_l, group 2l+1 = b_l (``layout``, ``offsets``, ``unpack``).  penalty: 'none',
    'per_layer' (n_meta = layers, adds exp(meta[l])/2 |w_l|^2) or 'per_weight' (n_meta =
    n_params).  Gradient and Hessian-vector products are exact and computed in C: no Python runs
    per step.
    """

    _kind = "model"

    def __init__(self, widths, train, *, activation="tanh", penalty="none", batch_size=None,
                 seed=None, threads=None):
        if not isinstance(train, Dataset):
            raise InvalidError(_errors.ERR_INVALID, f"train must be a revl.Dataset, got "
                               f"{type(train).__name__}", "MLP")
        w = np.asarray(widths)
        if w.ndim != 1 or w.size < 2 or w.dtype.kind not in "iu" or np.any(w <= 0):
            raise InvalidError(_errors.ERR_INVALID, f"widths must be at least 2 positive "
                               f"integers, got {widths!r}", "MLP")
        w = np.ascontiguousarray(w, dtype=np.uintp)
        th = train._handle()
        o = init_struct(MlpOptions, lib.mlp_options_init)
        o.activation = _enum(activation, ACTIVATIONS, "activation")
        o.penalty = _enum(penalty, PENALTIES, "penalty")
        if batch_size is not None:
            o.batch_size = as_int(batch_size, "batch_size", "MLP")
        if seed is not None:
            o.seed = as_int(seed, "seed", "MLP")
        if threads is not None:
            o.threads = as_int(threads, "threads", "MLP", 0, INT_MAX)
        if train.n == 0:
            raise InvalidError(_errors.ERR_INVALID, "the training data set is empty", "MLP")
        if train.dim != int(w[0]):
            raise InvalidError(_errors.ERR_INVALID, f"the data set has dim {train.dim}, "
                               f"widths[0] is {int(w[0])}", "MLP")
        if train.n_classes > int(w[-1]):
            raise InvalidError(_errors.ERR_INVALID, f"the data set has {train.n_classes} "
                               f"classes, widths[-1] is {int(w[-1])}", "MLP")
        out = ctypes.c_void_p()
        # the training set is read (and from then on may not change): held in use meanwhile,
        # so that a Dataset.set on another thread cannot slip in between
        with _Busy((th,)):
            rc = lib.mlp_create(ctypes.byref(out), w.size, ptr(w), th.ptr, ctypes.byref(o))
            check(rc, "revl_mlp_create")
            self._init_handle(_CHandle(out.value, lib.model_free, "model", deps=(th,)))
        self.n_params = int(lib.model_n_params(out.value))
        self.n_meta = int(lib.model_n_meta(out.value))
        self.grad_fn = self.hvp_fn = None
        self.widths = tuple(int(x) for x in w)
        self.train_data = train
        self.activation = [k for k, v in ACTIVATIONS.items() if v == o.activation][0]
        self.penalty = [k for k, v in PENALTIES.items() if v == o.penalty][0]
        self.batch_size, self.seed = int(o.batch_size), int(o.seed)

    def _describe(self):
        return f"widths={self.widths} n_params={self.n_params} n_meta={self.n_meta}"

    @property
    def layout(self):
        """The blocks of w, in order (Block: name, layer, kind, offset, shape, group)."""
        blocks, off = [], 0
        for layer in range(len(self.widths) - 1):
            a, b = self.widths[layer], self.widths[layer + 1]
            blocks.append(Block(f"W{layer}", layer, "W", off, (a, b), 2 * layer))
            off += a * b
            blocks.append(Block(f"b{layer}", layer, "b", off, (b,), 2 * layer + 1))
            off += b
        return blocks

    def unpack(self, w):
        """Views of w as [W0, b0, W1, b1, ...] with their shapes (no copies)."""
        w = np.asarray(w)
        if w.shape != (self.n_params,):
            raise InvalidError(_errors.ERR_INVALID, f"w has shape {w.shape}, expected "
                               f"({self.n_params},)", "MLP.unpack")
        return [w[b.offset:b.offset + int(np.prod(b.shape))].reshape(b.shape)
                for b in self.layout]

    def evaluate(self, data, w, grad=False):
        """Mean cross-entropy on ``data`` (no penalty) at w, accuracy, and with grad=True the
        gradient with respect to w: an Evaluation(loss, accuracy, grad)."""
        h = self._handle()
        if not isinstance(data, Dataset):
            raise InvalidError(_errors.ERR_INVALID, f"data must be a revl.Dataset, got "
                               f"{type(data).__name__}", "MLP.evaluate")
        dh = data._handle()
        w = as_f64(w, (self.n_params,), "w", "MLP.evaluate")
        g = np.empty(self.n_params) if grad else None
        loss, acc = ctypes.c_double(np.nan), ctypes.c_double(np.nan)
        # the model reads its own handle and `data`, which another thread must not change
        with _Busy((h, dh)):
            rc = lib.model_evaluate(h.ptr, dh.ptr, ptr(w), ctypes.addressof(loss), ptr(g),
                                    ctypes.addressof(acc))
        self._check(rc, "revl_model_evaluate", h)
        return Evaluation(loss.value, acc.value, g)

    def batch_indices(self, step):
        """The example indices (into the training set) of the minibatch of inner step ``step``,
        in order: the model's minibatch order, to reproduce a training elsewhere."""
        h = self._handle()
        step = as_int(step, "step", "MLP.batch_indices")
        n = self.train_data.n   # batch_size 0 or >= n is the full batch
        out = np.empty(n if self.batch_size == 0 or self.batch_size >= n else self.batch_size,
                       dtype=np.uintp)
        count = ctypes.c_size_t(0)
        with _Busy((h,)):
            rc = lib.mlp_batch_indices(h.ptr, step, ptr(out), ctypes.addressof(count))
        self._check(rc, "revl_mlp_batch_indices", h)
        return out[:count.value].astype(np.int64)

    def set_order_seed(self, seed):
        """Draw the minibatch order again from ``seed`` (every epoch's permutation)."""
        h = self._handle()
        seed = as_int(seed, "seed", "MLP.set_order_seed")
        with _Busy((h,)):
            rc = lib.mlp_set_order_seed(h.ptr, seed)
        self._check(rc, "revl_mlp_set_order_seed", h)
        self.seed = seed
