"""Tests for tfvae.datasets: bundled sample, IDX files, tfds loading, binarization."""

import gzip
import hashlib
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfvae import datasets as D
from tolerances import float32_tolerance

# uint8 / 255 in float32 against numpy's float64: a rounding or two of values in [0, 1]
INTENSITY_TOLERANCE = float32_tolerance(1.0)

MNIST_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
MNIST_T10K_SHA256 = "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b"


def _labels(ds):
    """All labels of one pass over a (x, y) dataset, concatenated."""
    return np.concatenate([y.numpy() for _, y in ds])


def _images(ds):
    return np.concatenate([x.numpy() for x in ds])


# --- bundled sample ---------------------------------------------------------


def test_sample_file_contents():
    with np.load(D.SAMPLE_PATH) as data:
        arrays = {k: data[k] for k in data.files}
    assert sorted(arrays) == ["x_test", "x_train", "y_test", "y_train"]
    for split, n in (("train", 2000), ("test", 1000)):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        assert x.shape == (n, 28, 28) and x.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.uint8
        assert np.bincount(y, minlength=10).tolist() == [n // 10] * 10
        assert x.max() == 255 and x.min() == 0
        # shuffled, not sorted by class
        assert (np.diff(y.astype(int)) != 0).sum() > n // 2
    with zipfile.ZipFile(D.SAMPLE_PATH) as zf:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())


def test_load_sample_batches_and_order():
    ds = D.load("sample", "test", batch_size=300, with_labels=True)
    batches = list(ds)
    assert [int(x.shape[0]) for x, _ in batches] == [300, 300, 300, 100]
    x, y = batches[0]
    assert x.shape == (300, 28, 28, 1) and x.dtype == tf.float32
    assert y.dtype == tf.int64
    with np.load(D.SAMPLE_PATH) as data:
        ref_x, ref_y = data["x_test"], data["y_test"]
    # test split is not shuffled by default: source order, intensities / 255
    np.testing.assert_array_equal(_labels(ds), ref_y)
    np.testing.assert_allclose(x.numpy()[..., 0], ref_x[:300] / 255.0, rtol=0, atol=INTENSITY_TOLERANCE)
    assert len(list(D.load("sample", "test", batch_size=300, drop_remainder=True))) == 3
    # images only, range [0, 1]
    xs = _images(D.load("sample", "test", batch_size=500))
    assert xs.shape == (1000, 28, 28, 1) and xs.min() == 0.0 and xs.max() == 1.0


def test_shuffle_is_seeded_and_reshuffles_each_epoch():
    def make(seed):
        return D.load("sample", batch_size=500, seed=seed, with_labels=True, take=1000)

    a, b = make(7), make(7)
    a1, a2 = _labels(a), _labels(a)
    np.testing.assert_array_equal(a1, _labels(b))  # same seed -> same order
    assert not np.array_equal(a1, a2)  # new order on the next epoch
    assert not np.array_equal(a1, _labels(make(8)))
    np.testing.assert_array_equal(np.sort(a1), np.sort(a2))  # a permutation
    unshuffled = _labels(D.load("sample", batch_size=500, shuffle=False, with_labels=True, take=1000))
    assert not np.array_equal(a1, unshuffled)
    np.testing.assert_array_equal(np.sort(a1), np.sort(unshuffled))


# --- four points (AVB, Mescheder et al. 2017, Sec. 5.1) -----------------------


def _point_index(x):
    """Which pixel (row-major) is on in each 2×2 image of ``x`` ``[N, 2, 2, 1]``."""
    flat = np.asarray(x).reshape(len(x), 4)
    assert set(np.unique(flat)) <= {0.0, 1.0} and (flat.sum(axis=1) == 1).all()
    return flat.argmax(axis=1)


def test_four_points_arrays():
    """Image i has exactly pixel i on, label i; both splits hold the same four images."""
    assert "four_points" in D.KNOWN_DATASETS
    for split in ("train", "test"):
        x, y = D.load_arrays("four_points", split)
        assert x.shape == (4, 2, 2, 1) and x.dtype == np.float32
        np.testing.assert_array_equal(x.reshape(4, 4), np.eye(4, dtype=np.float32))
        assert y.dtype == np.int64 and y.tolist() == [0, 1, 2, 3]
        assert D.num_examples("four_points", split) == 4
    # the data are binary already: binarization changes nothing
    for binarize in ("static", "dynamic"):
        np.testing.assert_array_equal(D.load_arrays("four_points", binarize=binarize, seed=1)[0], x)


def test_four_points_epoch_holds_each_image_equally():
    ds = D.load("four_points", batch_size=64, seed=0, with_labels=True)
    assert D.FOUR_POINTS_REPEATS == 256 and int(ds.cardinality()) == 16  # 1024 / 64 steps
    batches = list(ds)
    assert len(batches) == 16
    for x, y in batches:
        assert x.shape == (64, 2, 2, 1) and x.dtype == tf.float32 and y.dtype == tf.int64
        np.testing.assert_array_equal(_point_index(x), y.numpy())
    epoch = np.concatenate([y.numpy() for _, y in batches])
    assert np.bincount(epoch, minlength=4).tolist() == [256] * 4
    assert not np.array_equal(epoch, np.tile(np.arange(4), 256))  # "train" is shuffled
    assert int(D.load("four_points", batch_size=64).cardinality()) == 16  # unseeded too
    # unshuffled: the four images in turn, so every batch of a multiple of 4 is balanced
    for kwargs in (dict(split="test"), dict(shuffle=False, binarize="dynamic", seed=3),
                   dict(shuffle=False, binarize="static")):
        xs = _images(D.load("four_points", batch_size=12, **kwargs))
        assert xs.shape == (1024, 2, 2, 1)
        np.testing.assert_array_equal(_point_index(xs), np.tile(np.arange(4), 256))
    xs = _images(D.load("four_points", batch_size=3, repeats=2, shuffle=False))
    np.testing.assert_array_equal(_point_index(xs), [0, 1, 2, 3, 0, 1, 2, 3])


def test_four_points_shuffle_is_seeded():
    def epochs(seed, n=2, start=None):
        ds = D.load("four_points", batch_size=64, seed=seed)
        if start is not None:
            ds.epoch_counter.set_epoch(start)
        return [_point_index(_images(ds)) for _ in range(n)]

    first, second = epochs(5)
    np.testing.assert_array_equal(first, epochs(5, 1)[0])  # same seed, same order
    assert not np.array_equal(first, second)  # reshuffled next epoch
    np.testing.assert_array_equal(epochs(5, 1, start=1)[0], second)  # resumed at epoch 1
    assert not np.array_equal(first, epochs(6, 1)[0])
    assert np.bincount(second, minlength=4).tolist() == [256] * 4


@pytest.mark.parametrize("name", ["sample", "four_points"])
def test_bad_split_and_batch_size_errors_match(name):
    with pytest.raises(ValueError, match=f"the '{name}' dataset has splits 'train' and 'test', "
                                         "not 'validation'"):
        D.load(name, "validation")
    with pytest.raises(ValueError, match="splits 'train' and 'test'"):
        D.load_arrays(name, "valid")
    for batch_size in (0, -4, 2.5, True, "8"):
        for seed in (None, 0):
            with pytest.raises(ValueError, match=r"load: expected batch_size as an integer >= 1; "
                                                 rf"got {re.escape(repr(batch_size))}\."):
                D.load(name, batch_size=batch_size, seed=seed)
    with pytest.raises(ValueError, match="repeats as an integer >= 1"):
        D.load(name, repeats=0)


# --- binarization -----------------------------------------------------------


def test_binarize_dynamic_function():
    p = tf.constant(np.linspace(0.0, 1.0, 11, dtype=np.float32))
    x = tf.tile(p[None], [20000, 1])
    b = D.binarize_dynamic(x, seed=(1, 2)).numpy()
    assert set(np.unique(b)) <= {0.0, 1.0}
    np.testing.assert_allclose(b.mean(axis=0), p.numpy(), atol=0.015)
    assert b[:, 0].max() == 0.0 and b[:, -1].min() == 1.0
    np.testing.assert_array_equal(b, D.binarize_dynamic(x, seed=(1, 2)).numpy())
    assert not np.array_equal(b, D.binarize_dynamic(x, seed=(1, 3)).numpy())
    assert not np.array_equal(b, D.binarize_dynamic(x, seed=None).numpy())
    np.testing.assert_array_equal(D.binarize_static(x, seed=5), D.binarize_static(x, seed=5))


def test_dynamic_binarization_in_pipeline():
    kwargs = dict(batch_size=50, binarize="dynamic", seed=3, shuffle=False, take=50)
    ds = D.load("sample", "test", **kwargs)
    intensities = _images(D.load("sample", "test", batch_size=50, shuffle=False, take=50))
    draws = np.stack([_images(ds) for _ in range(100)])  # 100 epochs
    assert set(np.unique(draws)) == {0.0, 1.0}
    assert not np.array_equal(draws[0], draws[1])  # re-drawn each epoch
    # the Bernoulli mean matches the intensities
    err = np.abs(draws.mean(axis=0) - intensities)
    assert err.mean() < 0.02 and err.max() < 0.25
    assert abs(draws.mean() - intensities.mean()) < 0.005
    # pixels at 0 are never on, pixels at 1 always on
    assert draws[:, intensities == 0.0].max() == 0.0
    assert draws[:, intensities == 1.0].min() == 1.0
    # reproducible with the same seed, different with another
    again = D.load("sample", "test", **kwargs)
    np.testing.assert_array_equal(_images(again), draws[0])
    other = D.load("sample", "test", **{**kwargs, "seed": 4})
    assert not np.array_equal(_images(other), draws[0])


def test_static_binarization_is_fixed():
    ds = D.load("sample", "test", batch_size=100, binarize="static", seed=2, take=200)
    e1, e2 = _images(ds), _images(ds)
    assert set(np.unique(e1)) == {0.0, 1.0}
    np.testing.assert_array_equal(e1, e2)
    intensities = _images(D.load("sample", "test", batch_size=200, take=200))
    assert abs(e1.mean() - intensities.mean()) < 0.01
    x, _ = D.load_arrays("sample", "test", binarize="static", seed=2, take=200)
    np.testing.assert_array_equal(x, e1)
    x3, _ = D.load_arrays("sample", "test", binarize="static", seed=3, take=200)
    assert not np.array_equal(x3, e1)
    # static + shuffle: each example keeps its binarization across epochs
    ds = D.load("sample", "test", batch_size=200, binarize="static", seed=2, take=200,
                shuffle=True, with_labels=True)
    (xa, ya), = list(ds)
    (xb, yb), = list(ds)
    key = lambda xs: sorted(hashlib.sha1(v.tobytes()).hexdigest() for v in xs.numpy())
    assert not np.array_equal(ya, yb) and key(xa) == key(xb)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mnist.*fashion_mnist"):
        D.load("no_such_dataset")
    with pytest.raises(ValueError, match="binarize"):
        D.load("sample", binarize="sometimes")
    with pytest.raises(ValueError, match="split"):
        D.load("sample", "validation")
    assert "sample" in D.KNOWN_DATASETS and "celeb_a" in D.KNOWN_DATASETS


# --- IDX files --------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / f"a-idx3{suffix}"
    D.write_idx(path, array)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    header = gzip.decompress(raw)[:4] if suffix else raw[:4]
    assert header[:2] == b"\0\0" and header[3] == 3
    back = D.read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, array)


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01" + b"\0" * 8)
    with pytest.raises(ValueError, match="not an IDX file.*magic"):
        D.read_idx(bad)
    bad.write_bytes(b"\0\0\x0a\x01\0\0\0\x01x")  # 0x0A is no IDX type
    with pytest.raises(ValueError, match="magic"):
        D.read_idx(bad)
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(b"\0\0\x08\x02\0\0\0\x02\0\0\0\x02abc"))
    with pytest.raises(ValueError, match="size mismatch"):
        D.read_idx(short)
    with pytest.raises(ValueError, match="dtype"):
        D.write_idx(tmp_path / "c", np.zeros(3, np.complex64))


def _write_idx_folder(folder, prefix, n, seed, gz):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 6, 5), dtype=np.uint8)
    y = rng.integers(0, 10, size=n).astype(np.uint8)
    ext = ".gz" if gz else ""
    D.write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", x)
    D.write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", y)
    return x, y


def test_load_idx_folder(tmp_path):
    x_tr, y_tr = _write_idx_folder(tmp_path, "train", 10, 0, gz=True)
    x_te, y_te = _write_idx_folder(tmp_path, "t10k", 7, 1, gz=False)
    x_5k, _ = _write_idx_folder(tmp_path, "train5k", 4, 2, gz=True)

    ds = D.load(f"idx:{tmp_path}", "train", batch_size=4, shuffle=False, with_labels=True)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    assert [len(v) for v in ys] == [4, 4, 2]
    np.testing.assert_allclose(np.concatenate(xs)[..., 0], x_tr / 255.0, rtol=0, atol=INTENSITY_TOLERANCE)
    np.testing.assert_array_equal(np.concatenate(ys), y_tr)

    # plain path, "test" finds the t10k files; load_arrays agrees
    x, y = D.load_arrays(str(tmp_path), "test")
    assert x.shape == (7, 6, 5, 1) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[..., 0], x_te / 255.0, rtol=0, atol=INTENSITY_TOLERANCE)
    np.testing.assert_array_equal(y, y_te)
    assert _images(D.load(tmp_path, "train5k", batch_size=10)).shape == (4, 6, 5, 1)
    x, _ = D.load_arrays(tmp_path, "t10k", image_size=12)
    assert x.shape == (7, 12, 12, 1) and 0.0 <= x.min() and x.max() <= 1.0

    with pytest.raises(FileNotFoundError, match="valid-images-idx3-ubyte"):
        D.load(tmp_path, "valid")
    (tmp_path / "train5k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="train5k-labels-idx1-ubyte"):
        D.load(tmp_path, "train5k", with_labels=True)
    with pytest.raises(FileNotFoundError, match="not found"):
        D.load(tmp_path / "missing", "train")


# --- tensorflow-datasets (mocked, offline) ----------------------------------


@pytest.mark.parametrize(
    "name, shape, labeled",
    [
        ("mnist", (28, 28, 1), True),
        ("fashion_mnist", (28, 28, 1), True),
        ("cifar10", (32, 32, 3), True),
        ("binarized_mnist", (28, 28, 1), False),
        ("omniglot", (28, 28, 1), True),
    ],
)
def test_tfds_loading_mocked(name, shape, labeled):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=8):
        ds = D.load(name, "train", batch_size=5, with_labels=labeled, seed=0)
        batches = list(ds)
        x, y = D.load_arrays(name, "test")
    images = [b[0] if labeled else b for b in batches]
    assert [int(b.shape[0]) for b in images] == [5, 3]
    for b in images:
        assert b.shape[1:] == shape and b.dtype == tf.float32
        assert 0.0 <= float(tf.reduce_min(b)) and float(tf.reduce_max(b)) <= 1.0
    assert x.shape == (8,) + shape and x.dtype == np.float32 and y.dtype == np.int64
    if labeled:
        assert batches[0][1].dtype == tf.int64
        assert (y >= 0).all()
    else:
        assert (y == -1).all()
    if name == "binarized_mnist":
        assert set(np.unique(x)) <= {0.0, 1.0}


def test_omniglot_and_celeba_conversion():
    # omniglot: white RGB page with a black vertical stroke -> stroke is 1, page 0
    page = np.full((105, 105, 3), 255, np.uint8)
    page[:, 40:65] = 0
    x = D._tfds_image("omniglot", tf.constant(page), (28, 28)).numpy()
    assert x.shape == (28, 28, 1)
    assert x[:, 14].min() > 0.95 and x[:, :5].max() < 0.05 and x[:, -5:].max() < 0.05
    # celeb_a: center 140x140 crop of 218x178, then resize; the border is cut off
    face = np.zeros((218, 178, 3), np.uint8)
    face[39:179, 19:159] = 255
    y = D._tfds_image("celeb_a", tf.constant(face), (64, 64)).numpy()
    assert y.shape == (64, 64, 3) and y.min() > 0.99


def test_tfds_unlabeled_rejects_labels():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(ValueError, match="no class labels"):
            D.load("binarized_mnist", with_labels=True)


# --- real MNIST beside the project -----------------------------------------


def test_real_mnist_test_set():
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not available at {MNIST_DIR.resolve()}")
    images_path = MNIST_DIR / "t10k-images-idx3-ubyte.gz"
    assert hashlib.sha256(images_path.read_bytes()).hexdigest() == MNIST_T10K_SHA256
    raw = D.read_idx(images_path)
    assert raw.shape == (10000, 28, 28) and raw.dtype == np.uint8
    x, y = D.load_arrays(MNIST_DIR, "test")
    assert x.shape == (10000, 28, 28, 1) and x.dtype == np.float32
    assert sorted(np.unique(y)) == list(range(10)) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    np.testing.assert_allclose(x[..., 0], raw / 255.0, rtol=0, atol=INTENSITY_TOLERANCE)
    # every bundled test image is an MNIST test image with the same label
    index = {img.tobytes(): label for img, label in zip(raw, y)}
    with np.load(D.SAMPLE_PATH) as data:
        for img, label in zip(data["x_test"], data["y_test"]):
            assert index[img.tobytes()] == label


# --- tensorflow-datasets without a network (issue 8, item 6) -----------------

REPO_ROOT = Path(__file__).resolve().parents[1]


def _tree(folder):
    """Every path under ``folder`` (relative), to see that nothing was created or removed."""
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _offline_env(monkeypatch, tmp_path):
    """No ~/tensorflow_datasets of the real user; socket connections fail at once."""
    import socket

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "env_tfds"))
    monkeypatch.delenv("TFVAE_TFDS_PROBE", raising=False)
    # tfds reads TFDS_DATA_DIR / HOME once, when it is imported
    from tensorflow_datasets.core import constants

    monkeypatch.setattr(constants, "DATA_DIR", str(tmp_path / "env_tfds"))

    def no_network(*args, **kwargs):
        raise OSError("no network (test)")

    monkeypatch.setattr(socket, "create_connection", no_network)


def test_tfds_offline_fails_fast_and_leaves_nothing(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    _offline_env(monkeypatch, tmp_path)
    existing = tmp_path / "existing"
    (existing / "downloads").mkdir(parents=True)
    (existing / "other").mkdir()
    before = _tree(tmp_path)
    for data_dir in (tmp_path / "tfds", existing):
        start = time.monotonic()
        with pytest.raises(ConnectionError) as info:
            D.load("mnist", data_dir=data_dir, batch_size=10)
        assert time.monotonic() - start < 15
        message = str(info.value)
        assert isinstance(info.value, D.OfflineError) and "\n" not in message
        for part in ("'sample'", "--dataset sample", "idx:", str(data_dir), "no network (test)"):
            assert part in message
        assert _tree(tmp_path) == before
    # default data dir (TFDS_DATA_DIR), load_arrays, a versioned name
    with pytest.raises(D.OfflineError, match="env_tfds"):
        D.load_arrays("fashion_mnist:3.*.*", "test")
    assert _tree(tmp_path) == before


def test_tfds_prepared_locally_never_probes(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.core import dataset_builder

    _offline_env(monkeypatch, tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("no network access for a prepared data set")

    monkeypatch.setattr(D, "_require_network", forbidden)
    monkeypatch.setattr(dataset_builder.DatasetBuilder, "download_and_prepare", forbidden)
    monkeypatch.setattr(dataset_builder.DatasetBuilder, "is_prepared", lambda self: True)
    images = np.arange(4 * 28 * 28, dtype=np.int64).reshape(4, 28, 28, 1) % 256

    def as_dataset(self, split, shuffle_files=False, **kwargs):
        return tf.data.Dataset.from_tensor_slices(
            {"image": images.astype(np.uint8), "label": np.arange(4, dtype=np.int64)}
        )

    monkeypatch.setattr(dataset_builder.DatasetBuilder, "as_dataset", as_dataset)
    data_dir = tmp_path / "tfds"
    (data_dir / "mnist" / str(tfds.builder("mnist", data_dir=data_dir).version)).mkdir(parents=True)
    x, y = D.load_arrays("mnist", "test", data_dir=data_dir)
    np.testing.assert_allclose(x, images / 255.0, rtol=0, atol=INTENSITY_TOLERANCE)
    assert y.tolist() == [0, 1, 2, 3]


def test_tfds_failed_download_is_cleaned_up(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.core import dataset_builder

    _offline_env(monkeypatch, tmp_path)
    monkeypatch.setattr(D, "_require_network", lambda *args, **kwargs: None)  # host "reachable"

    def failing_download(self, *args, **kwargs):
        root = Path(self.data_dir_root)
        (root / "downloads" / "storage.googleapis.com_mnist.tmp.0123").mkdir(parents=True)
        (root / "downloads" / "storage.googleapis.com_mnist.tmp.0123" / "part").write_bytes(b"x")
        (root / "downloads" / "extracted").mkdir(exist_ok=True)
        (root / self.name / f"{self.version}.incomplete.ABCD").mkdir(parents=True)
        raise ConnectionError("connection reset (test)")

    monkeypatch.setattr(dataset_builder.DatasetBuilder, "download_and_prepare", failing_download)
    # a data dir that does not exist (nor its parent): all of it goes
    with pytest.raises(ConnectionError, match="connection reset"):
        D.load("mnist", data_dir=tmp_path / "new" / "tfds")
    assert not (tmp_path / "new").exists()
    # an existing data dir: only what the attempt created goes
    existing = tmp_path / "existing"
    (existing / "downloads" / "kept.zip").parent.mkdir(parents=True)
    (existing / "downloads" / "kept.zip").write_bytes(b"zip")
    (existing / "mnist" / "1.0.0").mkdir(parents=True)
    (existing / "other").mkdir()
    before = _tree(tmp_path)
    with pytest.raises(ConnectionError, match="connection reset"):
        D.load("mnist", data_dir=existing)
    assert _tree(tmp_path) == before


def test_tfds_offline_command_fails_fast(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    import socket

    # A bound socket that does not listen: connecting to it is refused, network or not.
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    env = dict(os.environ, HOME=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="3",
               TFVAE_TFDS_PROBE=f"127.0.0.1:{closed.getsockname()[1]}")
    env.pop("TFDS_DATA_DIR", None)
    start = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tfvae", "train", "iwae", "--dataset", "mnist",
             "--epochs", "1", "--out", str(tmp_path / "out")],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
    finally:
        closed.close()
    elapsed = time.monotonic() - start
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tfvae: error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("tfvae: error: cannot load dataset 'mnist': ")
    assert "--dataset sample" in errors[0] and "idx:" in errors[0]
    assert str(tmp_path / "tensorflow_datasets") in errors[0]
    assert "Traceback" not in result.stderr and "WARNING:absl" not in result.stderr
    assert elapsed < 60
    assert not (tmp_path / "tensorflow_datasets").exists()


def _passes(ds, epochs):
    """[(labels, pixel sum) per batch] for each pass over `ds`."""
    return [[(y.numpy().tolist(), float(x.numpy().sum())) for x, y in ds] for _ in range(epochs)]


def test_each_pass_is_a_function_of_the_seed_and_its_epoch():
    """Order and dynamic binarization of pass e depend on (seed, e) alone: a pipeline built anew
    and set to epoch e (as a resumed run is) sees what pass e of the first one saw, whatever
    the global seed."""
    import tensorflow as tf

    kwargs = dict(batch_size=500, seed=3, with_labels=True, binarize="dynamic")
    first = _passes(D.load("sample", **kwargs), 3)
    assert first[0] != first[1] != first[2]  # a new order and new noise every pass
    tf.random.set_seed(0)
    again = D.load("sample", **kwargs)
    again.epoch_counter.set_epoch(2)
    assert _passes(again, 1)[0] == first[2]
    assert again.epoch_counter.epoch == 3
    other = D.load("sample", **{**kwargs, "seed": 4})
    assert _passes(other, 1)[0] != first[0]


def test_fit_keeps_the_pipeline_at_its_epoch(mnist_sample):
    import keras

    import tfvae

    ds = D.load("sample", batch_size=500, seed=0, binarize="dynamic", take=1000)
    model = tfvae.VAE((28, 28, 1), 2, encoder=tfvae.networks.mlp([8]),
                      decoder=tfvae.networks.mlp([8]), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    model.fit(ds, epochs=4, initial_epoch=2, verbose=0)  # as BackupAndRestore resumes at 2
    assert ds.epoch_counter.epoch == 4  # passes 2 and 3 read, not 0 and 1


def test_labelled_keeps_as_many_labels_per_class_and_marks_the_rest():
    ds = D.load("sample", with_labels=True, labelled=50, seed=1, batch_size=500, shuffle=False)
    labels = np.concatenate([y.numpy() for _, y in ds])
    with np.load(D.SAMPLE_PATH) as data:
        true = data["y_train"].astype(np.int64)
    kept = labels >= 0
    assert kept.sum() == 50 and np.all(np.bincount(labels[kept], minlength=10) == 5)
    assert np.array_equal(labels[kept], true[kept]) and np.all(labels[~kept] == -1)
    again = np.concatenate([y.numpy() for _, y in D.load(
        "sample", with_labels=True, labelled=50, seed=1, batch_size=500, shuffle=False)])
    assert np.array_equal(again, labels)  # the same examples for the same seed
    with pytest.raises(ValueError, match="evenly"):
        D.load("sample", with_labels=True, labelled=55)
    with pytest.raises(ValueError, match="with_labels"):
        D.load("sample", labelled=50)
