"""Dataset: a labelled data set held by the library (for the built-in models)."""

import ctypes
import os

import numpy as np

from . import _errors
from ._base import F64, Wrapper, _Busy, _CHandle, as_f64, as_int, as_path, check, ptr
from ._errors import InvalidError, StateError
from ._lib import lib

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


class Dataset(Wrapper):
    """n examples of ``dim`` float64 features with int labels in [0, n_classes).

    ``Dataset(x, labels, n_classes=None)`` copies numpy arrays in (x of shape (n, dim), labels of
    shape (n,), n_classes default max(labels)+1); ``Dataset()`` is empty;
    ``Dataset.load_idx(images, labels)`` reads MNIST-format IDX files (gzip or plain).  ``x`` and
    ``labels`` read as copies.  A data set used by a built-in model or a hyper-optimiser cannot
    be changed (set, standardize) while they exist.  Every call that reads or changes the C data
    set holds it in use: a conflicting call from another thread gets StateError, as for
    trainers.
    """

    _kind = "data set"

    def __init__(self, x=None, labels=None, n_classes=None):
        out = ctypes.c_void_p()
        check(lib.dataset_create(ctypes.byref(out), None), "revl_dataset_create")
        self._init_handle(_CHandle(out.value, lib.dataset_free, "data set"))
        if x is not None or labels is not None:
            self.set(x, labels, n_classes)

    def _check(self, rc, function, h):
        check(rc, function, h.ptr, lib.dataset_last_error)

    def _describe(self):
        if self.closed:
            return ""
        return f"n={self.n} dim={self.dim} n_classes={self.n_classes}"

    def _mutable(self, function):
        h = self._handle()
        if h.users[0]:
            raise StateError(_errors.ERR_STATE,
                             f"the data set is used by {h.users[0]} model(s) or "
                             f"hyper-optimiser(s) and must not change while they exist", function)
        return h

    def set(self, x, labels, n_classes=None):
        """Replace the contents with copies of x (n, dim) and labels (n,)."""
        if x is None or labels is None:
            raise InvalidError(_errors.ERR_INVALID, "both x and labels are needed", "Dataset.set")
        xa = np.asarray(x)
        if xa.ndim != 2:
            raise InvalidError(_errors.ERR_INVALID,
                               f"x must have shape (n, dim), got {xa.shape}", "Dataset.set")
        xa = as_f64(xa, xa.shape, "x", "Dataset.set")
        la = np.asarray(labels)
        if la.shape != (xa.shape[0],) or (la.size and la.dtype.kind not in "iu"):
            raise InvalidError(_errors.ERR_INVALID,
                               f"labels must be {xa.shape[0]} integers (shape ({xa.shape[0]},)), "
                               f"got shape {la.shape} dtype {la.dtype}", "Dataset.set")
        if la.size and (la.min() < 0 or la.max() > np.iinfo(np.int32).max):
            raise InvalidError(_errors.ERR_INVALID, "labels must be >= 0 and fit in int32",
                               "Dataset.set")
        la = np.ascontiguousarray(la, dtype=np.int32)
        if n_classes is None:
            n_classes = int(la.max()) + 1 if la.size else 0
        n_classes = as_int(n_classes, "n_classes", "Dataset.set")
        if la.size and la.max() >= n_classes:
            raise InvalidError(_errors.ERR_INVALID,
                               f"label {int(la.max())} is not below n_classes = {n_classes}",
                               "Dataset.set")
        with _Busy((self._handle(),)):
            h = self._mutable("Dataset.set")  # inside the hold: no model can start using it now
            rc = lib.dataset_set(h.ptr, xa.shape[0], xa.shape[1], n_classes, ptr(xa), ptr(la))
        self._check(rc, "revl_dataset_set", h)
        return self

    @classmethod
    def load_idx(cls, images_path, labels_path, max_n=0):
        """Load an IDX image file and its label file (at most max_n examples, 0 = all); pixels
        scaled to [0, 1]."""
        ip = as_path(images_path, "images_path", "Dataset.load_idx")
        lp = as_path(labels_path, "labels_path", "Dataset.load_idx")
        max_n = as_int(max_n, "max_n", "Dataset.load_idx")
        d = cls()
        h = d._handle()
        d._check(lib.dataset_load_idx(h.ptr, ip, lp, max_n), "revl_dataset_load_idx", h)
        return d

    @classmethod
    def fashion_mnist(cls, split="train", max_n=0, root=FASHION_MNIST_DIR):
        """Fashion-MNIST from Debian's dataset-fashion-mnist package: split 'train' (60,000) or
        'test' (10,000)."""
        prefix = {"train": "train", "test": "t10k"}.get(split)
        if prefix is None:
            raise InvalidError(_errors.ERR_INVALID, f"split must be 'train' or 'test', got "
                               f"{split!r}", "Dataset.fashion_mnist")
        return cls.load_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"),
                            os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"), max_n)

    def subset(self, first, count):
        """A new data set with copies of examples [first, first+count)."""
        h = self._handle()
        first = as_int(first, "first", "Dataset.subset")
        count = as_int(count, "count", "Dataset.subset")
        d = Dataset()
        dh = d._handle()
        with _Busy((h,)):
            rc = lib.dataset_subset(dh.ptr, h.ptr, first, count)
        d._check(rc, "revl_dataset_subset", dh)
        return d

    def standardize(self, reference=None):
        """Standardise each feature with the mean and standard deviation of ``reference``
        (this data set when None); constant features get sd 1.  In place; returns self."""
        h = self._handle()
        rh = None if reference is None else reference._handle()
        with _Busy((h,) if rh is None or rh is h else (h, rh)):
            self._mutable("Dataset.standardize")
            rc = lib.dataset_standardize(h.ptr, None if rh is None else rh.ptr)
        self._check(rc, "revl_dataset_standardize", h)
        return self

    @property
    def n(self):
        return int(lib.dataset_n(self._handle().ptr))

    def __len__(self):
        return self.n

    @property
    def dim(self):
        return int(lib.dataset_dim(self._handle().ptr))

    @property
    def n_classes(self):
        return int(lib.dataset_n_classes(self._handle().ptr))

    @property
    def x(self):
        """The features, (n, dim) float64 (a copy)."""
        h = self._handle()
        with _Busy((h,)):  # a set() on another thread would free the array under the copy
            n, dim = self.n, self.dim
            p = lib.dataset_x(h.ptr)
            if not p or n * dim == 0:
                return np.empty((n, dim), dtype=F64)
            return np.frombuffer((ctypes.c_double * (n * dim)).from_address(p), F64).reshape(
                n, dim).copy()

    @property
    def labels(self):
        """The labels, (n,) int32 (a copy)."""
        h = self._handle()
        with _Busy((h,)):
            n = self.n
            p = lib.dataset_labels(h.ptr)
            if not p or n == 0:
                return np.empty(n, dtype=np.int32)
            return np.frombuffer((ctypes.c_int32 * n).from_address(p), np.int32).copy()

    def to_numpy(self):
        """(x, labels) as numpy copies."""
        return self.x, self.labels
