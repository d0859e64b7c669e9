"""revl.Dataset: numpy round trip, subset, standardize, IDX loading (our own small files and,
when installed, Fashion-MNIST), errors."""
import gzip
import os
import struct

import numpy as np
import pytest

import revl
from builtin_util import need, skip_if_unimplemented

pytestmark = pytest.mark.usefixtures("dataset_available")


@pytest.fixture
def dataset_available():
    need("dataset_create", "dataset_set", "dataset_x", "dataset_labels")


def data(n=20, dim=3, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)) * [1, 10, 0.1] + [0, 5, -2], rng.integers(0, k, n)


def test_round_trip_copies():
    x, y = data()
    with skip_if_unimplemented():
        d = revl.Dataset(x, y, n_classes=5)
    assert (d.n, d.dim, d.n_classes, len(d)) == (20, 3, 5, 20)
    assert np.array_equal(d.x, x) and np.array_equal(d.labels, y)
    assert d.labels.dtype == np.int32
    x[0, 0] = 99.0                      # the data set holds its own copy
    assert d.x[0, 0] != 99.0
    xs, ys = d.to_numpy()
    xs[0, 0] = 7.0                      # and hands out copies
    assert d.x[0, 0] != 7.0
    assert revl.Dataset(x, y).n_classes == int(y.max()) + 1
    # non-contiguous and integer input is converted
    d2 = revl.Dataset(np.asfortranarray(x[:, ::-1]).astype(np.float32), y)
    np.testing.assert_allclose(d2.x, x[:, ::-1].astype(np.float32))


def test_bad_input():
    x, y = data()
    with pytest.raises(revl.InvalidError, match=r"shape \(n, dim\)"):
        revl.Dataset(x.ravel(), y)
    with pytest.raises(revl.InvalidError, match="labels must be 20 integers"):
        revl.Dataset(x, y[:5])
    with pytest.raises(revl.InvalidError, match="labels must be 20 integers"):
        revl.Dataset(x, y.astype(float))
    with pytest.raises(revl.InvalidError, match="not below n_classes"):
        revl.Dataset(x, y, n_classes=2)
    with pytest.raises(revl.InvalidError, match=">= 0"):
        revl.Dataset(x, -y - 1)


def test_subset_and_standardize():
    x, y = data(n=50)
    d = revl.Dataset(x, y)
    with skip_if_unimplemented():
        s = d.subset(10, 15)
    assert np.array_equal(s.x, x[10:25]) and np.array_equal(s.labels, y[10:25])
    with pytest.raises(revl.InvalidError):
        d.subset(40, 20)
    with skip_if_unimplemented():
        d.standardize()
    np.testing.assert_allclose(d.x.mean(0), 0, atol=1e-12)
    sd = d.x.std(0)
    assert np.all(np.abs(sd - 1) < 0.05)     # population or sample sd, either is fine
    s.standardize(reference=revl.Dataset(x, y))   # with another set's statistics
    np.testing.assert_allclose(s.x, d.x[10:25], rtol=1e-12, atol=1e-12)
    const = np.column_stack([np.ones(10), np.arange(10.0)])
    c = revl.Dataset(const, np.zeros(10, dtype=int)).standardize()
    assert np.all(np.isfinite(c.x)) and np.allclose(c.x[:, 0], 0)


def write_idx(path, images, labels, compress):
    op = gzip.open if compress else open
    n, r, c = images.shape
    with op(path + "-images", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, r, c) + images.astype(np.uint8).tobytes())
    with op(path + "-labels", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes())
    return path + "-images", path + "-labels"


@pytest.mark.parametrize("compress", [False, True])
def test_load_idx(tmp_path, compress):
    need("dataset_load_idx")
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(12, 3, 4))
    labs = rng.integers(0, 10, 12)
    labs[0] = 9
    ip, lp = write_idx(str(tmp_path / "t"), imgs, labs, compress)
    with skip_if_unimplemented():
        d = revl.Dataset.load_idx(ip, lp)
    assert (d.n, d.dim, d.n_classes) == (12, 12, 10)
    np.testing.assert_allclose(d.x, imgs.reshape(12, 12) / 255.0, rtol=1e-12)
    assert np.array_equal(d.labels, labs)
    assert revl.Dataset.load_idx(ip, lp, max_n=5).n == 5


def test_load_idx_errors(tmp_path):
    need("dataset_load_idx")
    with pytest.raises(revl.FileError) as ei:
        revl.Dataset.load_idx(tmp_path / "nope-images", tmp_path / "nope-labels")
    assert ei.value.status == -7 and "nope-images" in ei.value.message
    assert isinstance(ei.value, OSError)
    imgs = np.zeros((4, 2, 2))
    ip, lp = write_idx(str(tmp_path / "t"), imgs, np.arange(3), False)   # 4 images, 3 labels
    with pytest.raises(revl.FileError):
        revl.Dataset.load_idx(ip, lp)
    with open(ip, "r+b") as f:
        f.write(b"\0\0\0\0")                                              # bad magic
    with pytest.raises(revl.FileError, match="magic|format|IDX"):
        revl.Dataset.load_idx(ip, lp)


def test_fashion_mnist():
    # no skip when the data is absent: `make check` installs dataset-fashion-mnist (DEB_PKGS)
    assert os.path.exists(os.path.join(revl.data.FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz")), \
        "Fashion-MNIST missing: install the Debian package dataset-fashion-mnist (make deps)"
    need("dataset_load_idx")
    d = revl.Dataset.fashion_mnist("test", max_n=300)
    assert (d.n, d.dim, d.n_classes) == (300, 784, 10)
    assert 0 <= d.x.min() and d.x.max() <= 1
