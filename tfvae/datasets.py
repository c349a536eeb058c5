"""Image data sets for VAEs as ``tf.data`` pipelines or numpy arrays.

Four kinds of source are understood by :func:`load` and :func:`load_arrays`:

* ``"sample"``: a small MNIST subset shipped with the package
  (``tfvae/data/mnist_sample.npz``, splits ``"train"`` and ``"test"``);
* ``"four_points"``: the toy data set of Adversarial Variational Bayes (Mescheder et al.
  2017, Sec. 5.1), four 2×2 binary images with one pixel on each, built in memory (both
  splits hold the same four; :func:`load` repeats them :data:`FOUR_POINTS_REPEATS` times
  per epoch);
* a tensorflow-datasets name from :data:`KNOWN_DATASETS` (``"mnist"``,
  ``"binarized_mnist"``, ``"fashion_mnist"``, ``"kmnist"``, ``"omniglot"``,
  ``"svhn_cropped"``, ``"cifar10"``, ``"celeb_a"``), optionally with a
  version (``"mnist:3.*.*"``);
* a folder of IDX files (``"idx:/path"`` or just a path), e.g. an MNIST,
  Fashion-MNIST or KMNIST download.

Images always come out as float32 in ``[0, 1]`` with shape ``(H, W, C)``.
This module depends only on TensorFlow, numpy and (lazily) tensorflow-datasets.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

__all__ = [
    "KNOWN_DATASETS",
    "FOUR_POINTS_REPEATS",
    "load",
    "load_arrays",
    "read_idx",
    "write_idx",
    "binarize_dynamic",
    "binarize_static",
    "OfflineError",
    "EpochCounter",
    "num_examples",
    "dequantize",
    "labelled_subset",
    "gaussian_mixture_2d",
]

#: Names accepted by :func:`load` (besides IDX folder paths).
KNOWN_DATASETS = (
    "sample",
    "four_points",
    "mnist",
    "binarized_mnist",
    "fashion_mnist",
    "kmnist",
    "omniglot",
    "svhn_cropped",
    "cifar10",
    "celeb_a",
)

SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "mnist_sample.npz"

#: Passes over the four images in one epoch of ``load("four_points")``: 4 × 256 = 1024
#: examples, so a batch size of 64 gives 16 steps per epoch.
FOUR_POINTS_REPEATS = 256
# Data sets built in memory, with these splits (each split holds all of the data).
_ARRAY_SPLITS = ("train", "test")

_BINARIZE_MODES = (None, "dynamic", "static")
# tfds data sets without a class label.
_UNLABELED = ("binarized_mnist", "celeb_a")
# Default output size (height, width) for data sets that are resized.
_DEFAULT_SIZE = {"omniglot": (28, 28), "celeb_a": (64, 64)}
_CELEBA_CROP = 140

AUTOTUNE = tf.data.AUTOTUNE

# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("=") if dt.itemsize > 1 else dt: code for code, dt in _IDX_DTYPES.items()}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into a numpy array in native byte order.

    Raises ``ValueError`` when the file does not start with a valid IDX magic
    number or its size does not match the header.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: not an IDX file (magic bytes {data[:4].hex() or 'missing'}; expected "
            "00 00 <type 08,09,0b,0c,0d,0e> <ndim>)"
        )
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"{path}: IDX size mismatch: header says shape {shape} ({expected} bytes), "
            f"file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when ``path`` ends in ``.gz``.

    Supported dtypes: uint8, int8, int16, int32, float32, float64.
    """
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=") if array.dtype.itemsize > 1 else array.dtype
    if native not in _IDX_CODES:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX type code")
    code = _IDX_CODES[native]
    if array.ndim > 255:
        raise ValueError("write_idx: too many dimensions")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    payload = header + np.ascontiguousarray(array, _IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)


def _idx_file(folder: Path, split: str, kind: str, required: bool):
    """Find ``<prefix>-<kind>[.gz]`` for ``split`` in ``folder``."""
    prefixes = [split] + (["t10k"] if split == "test" else [])
    names = [f"{p}-{kind}" for p in prefixes]
    for name in names:
        for candidate in (name, name + ".gz"):
            if (folder / candidate).is_file():
                return folder / candidate
    if required:
        raise FileNotFoundError(
            f"IDX file for split {split!r} not found: expected "
            + " or ".join(str(folder / n) + "[.gz]" for n in names)
        )
    return None


def _idx_arrays(folder, split: str, labels: str):
    """Images (N, H, W[, C]) and labels (N,) or None from an IDX folder."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"IDX folder not found: {folder}")
    x = read_idx(_idx_file(folder, split, "images-idx3-ubyte", True))
    y = None
    if labels != "none":
        label_path = _idx_file(folder, split, "labels-idx1-ubyte", labels == "required")
        if label_path is not None:
            y = read_idx(label_path).astype(np.int64)
            if len(y) != len(x):
                raise ValueError(f"{label_path}: {len(y)} labels for {len(x)} images")
    return x, y


# ---------------------------------------------------------------------------
# Binarization
# ---------------------------------------------------------------------------


def _seed_pair(seed):
    """An int64 shape-[2] seed for ``tf.random.stateless_*`` from an int or pair."""
    seed = tf.convert_to_tensor(seed)
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0, tf.int64)])
    return seed


def binarize_dynamic(x, seed=None):
    """Draw every pixel as Bernoulli(intensity): returns 0/1 in ``x``'s dtype.

    Works on a whole batch at once. With ``seed=None`` it uses TF's stateful
    RNG (a new draw per call); with an int or a shape-[2] seed it is stateless
    and reproducible.
    """
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    if seed is None:
        u = tf.random.uniform(tf.shape(x), dtype=x.dtype)
    else:
        u = tf.random.stateless_uniform(tf.shape(x), _seed_pair(seed), dtype=x.dtype)
    return tf.cast(u < x, x.dtype)


def binarize_static(x, seed=0):
    """Binarize ``x`` once with a fixed seed: the same input and seed always give the same result."""
    return binarize_dynamic(x, seed=0 if seed is None else seed)


# ---------------------------------------------------------------------------
# Sources: each yields unbatched dicts {"image": float32 [H,W,C], "label": int64}
# ---------------------------------------------------------------------------


def _as_size(image_size):
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    size = tuple(int(s) for s in image_size)
    if len(size) != 2:
        raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}")
    return size


def _resize(x, size):
    """Resize a float image in [0, 1] (antialiased bilinear), keeping the range."""
    if size is None:
        return x
    return tf.clip_by_value(tf.image.resize(x, size, antialias=True), 0.0, 1.0)


def _array_source(x, y, size, labels):
    """A dataset from uint8 images (N, H, W[, C]) and optional labels."""
    if x.ndim == 3:
        x = x[..., None]
    if labels == "optional" and y is None:
        y = np.full(len(x), -1, np.int64)

    def convert(ex):
        image = _resize(tf.cast(ex["image"], tf.float32) / 255.0, size)
        return {"image": image, **({"label": ex["label"]} if "label" in ex else {})}

    features = {"image": x}
    if labels != "none":
        features["label"] = np.asarray(y, np.int64)
    return tf.data.Dataset.from_tensor_slices(features).map(convert, num_parallel_calls=AUTOTUNE)


def _four_points():
    """The four-point data set of AVB (Mescheder et al. 2017, Sec. 5.1) as uint8 arrays:
    images ``[4, 2, 2]`` where image i has pixel i (row-major) at 255 and the others at 0,
    and labels ``[0, 1, 2, 3]``."""
    return np.eye(4, dtype=np.uint8).reshape(4, 2, 2) * np.uint8(255), np.arange(4, dtype=np.int64)


def _tfds_image(base, image, size):
    """Convert one uint8 tfds image of data set ``base`` to float32 in [0, 1]."""
    if base == "binarized_mnist":
        x = tf.cast(image > 0, tf.float32)
    elif base == "omniglot":
        gray = tf.image.rgb_to_grayscale(image) if image.shape[-1] == 3 else image
        x = 1.0 - tf.cast(gray, tf.float32) / 255.0  # strokes become 1
    elif base == "celeb_a":
        x = tf.image.resize_with_crop_or_pad(image, _CELEBA_CROP, _CELEBA_CROP)
        x = tf.cast(x, tf.float32) / 255.0
    else:
        x = tf.cast(image, tf.float32) / 255.0
    return _resize(x, size)


class OfflineError(ConnectionError):
    """A tensorflow-datasets data set is not prepared locally and cannot be downloaded."""


#: ``host:port`` probed instead of the download hosts (test hook, see :func:`_require_network`).
_PROBE_ENV = "TFVAE_TFDS_PROBE"
_PROBE_TIMEOUT = 3.0  # seconds, name resolution included
_DEFAULT_DOWNLOAD_URL = "https://storage.googleapis.com/"  # where tfds keeps most of its files


def _probe_addresses(urls):
    """The ``(host, port)`` pairs a download of ``urls`` connects to first (hosts or proxies)."""
    import urllib.request
    from urllib.parse import urlsplit

    override = os.environ.get(_PROBE_ENV, "").strip()
    if override:
        host, sep, port = override.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"{_PROBE_ENV} must be host:port, not {override!r}")
        return [(host.strip("[]"), int(port))]
    proxies = urllib.request.getproxies()
    addresses = []
    for url in list(urls or ()) or [_DEFAULT_DOWNLOAD_URL]:
        parts = urlsplit(str(url))
        if not parts.hostname:
            continue
        proxy = proxies.get(parts.scheme)
        if proxy and not urllib.request.proxy_bypass(parts.hostname):
            parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        if address not in addresses:
            addresses.append(address)
    return addresses


def _require_network(urls=(), timeout=_PROBE_TIMEOUT):
    """Raise ``OSError`` unless a TCP connection to the host of every URL in ``urls``
    (or to its proxy) opens within ``timeout`` seconds; no URLs: the GCS host tfds uses.

    This is a quick check before a tensorflow-datasets download, which otherwise retries
    for minutes without a network. Test hook: the environment variable
    ``TFVAE_TFDS_PROBE=host:port`` replaces the hosts probed, e.g. ``127.0.0.1:9`` (a closed
    local port) to act as if offline whether or not the machine has a network.
    """
    import socket
    import threading

    for host, port in _probe_addresses(urls):
        outcome = []

        def connect(address=(host, port)):
            try:
                socket.create_connection(address, timeout=timeout).close()
                outcome.append(None)
            except OSError as error:
                outcome.append(error)

        # In a thread: the socket timeout does not bound the name lookup.
        thread = threading.Thread(target=connect, name="tfvae-network-probe", daemon=True)
        thread.start()
        thread.join(timeout)
        if not outcome or outcome[0] is not None:
            reason = outcome[0] if outcome else f"no answer within {timeout:g} s"
            raise OSError(f"{host}:{port} cannot be reached ({reason})")


def _tfds_mocked(builder) -> bool:
    """True inside ``tfds.testing.mock_data``, where ``download_and_prepare`` is a no-op."""
    method = getattr(type(builder), "download_and_prepare", None)
    return str(getattr(method, "__module__", "")).startswith("tensorflow_datasets.testing")


@contextlib.contextmanager
def _removed_on_failure(root, name):
    """Remove what a failed (or interrupted) ``download_and_prepare`` created in ``root``.

    ``root`` is the tfds data dir: if it did not exist, it goes (with any parents
    created for it); otherwise the new entries of ``root``, ``root/downloads``,
    ``root/downloads/extracted`` and ``root/name`` (``<version>.incomplete*``) go.
    What existed before stays.
    """
    if "://" in str(root):  # gs:// and other remote data dirs: leave them to tfds
        yield
        return
    root = Path(root)
    top = None  # the highest directory of ``root`` that does not exist yet
    path = root
    while not path.exists() and path != path.parent:
        top, path = path, path.parent
    watched = (root, root / "downloads", root / "downloads" / "extracted", root / name)
    before = {folder: set(os.listdir(folder)) for folder in watched if folder.is_dir()}
    try:
        yield
    except BaseException:
        if top is not None:
            shutil.rmtree(top, ignore_errors=True)
        for folder, entries in before.items():
            for entry in (set(os.listdir(folder)) - entries) if folder.is_dir() else ():
                new = folder / entry
                if new.is_dir() and not new.is_symlink():
                    shutil.rmtree(new, ignore_errors=True)
                else:
                    new.unlink(missing_ok=True)
        raise


def _tfds_builder(name, data_dir):
    """The tfds builder of ``name``, prepared: downloaded only after a quick network check.

    Raises :class:`OfflineError` within seconds when the data set is not in the data dir
    and the download host cannot be reached; a failed download leaves nothing behind.
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.read_only_builder import ReadOnlyBuilder

    builder = tfds.builder(name, data_dir=data_dir)
    if isinstance(builder, ReadOnlyBuilder) or _tfds_mocked(builder):
        return builder  # read from files found in the data dir / fake data: nothing to download
    # (data_path first: is_prepared() logs a warning about a missing folder)
    if builder.data_path.exists() and builder.is_prepared():
        return builder
    root = builder.data_dir_root
    try:
        urls = list(builder.url_infos or ())
    except Exception:  # no checksums file: probe the default host
        urls = []
    try:
        _require_network(urls)
    except OSError as error:
        raise OfflineError(
            f"{name.split(':')[0]!r} is not in the tensorflow-datasets data dir {root} "
            f"and cannot be downloaded: {error}; offline, use 'sample' (the bundled MNIST "
            f"subset, --dataset sample) or a folder of IDX files, 'idx:/path' (e.g. "
            f"idx:/usr/share/datasets/fashion-mnist after apt-get install dataset-fashion-mnist)"
        ) from error
    with _removed_on_failure(root, builder.name):
        builder.download_and_prepare()
    return builder


def _tfds_source(name, split, data_dir, size, labels):
    """A dataset from tensorflow-datasets, converted to the common format."""
    base = name.split(":")[0]
    unlabeled = base in _UNLABELED
    if labels == "required" and unlabeled:
        raise ValueError(f"dataset {base!r} has no class labels; use with_labels=False")
    size = size or _DEFAULT_SIZE.get(base)
    ds = _tfds_builder(name, data_dir).as_dataset(split=split, shuffle_files=False)

    def convert(ex):
        out = {"image": _tfds_image(base, ex["image"], size)}
        if labels != "none":
            out["label"] = (
                tf.constant(-1, tf.int64) if unlabeled else tf.cast(ex["label"], tf.int64)
            )
        return out

    return ds.map(convert, num_parallel_calls=AUTOTUNE)


def _is_path(name) -> bool:
    if isinstance(name, os.PathLike):
        return True
    return name.startswith("idx:") or "/" in name or os.sep in name or Path(name).is_dir()


def _source(name, split, data_dir, image_size, labels):
    """Unbatched dataset of {"image", ["label"]} for any supported ``name``.

    ``labels`` is "required" (error if missing), "optional" (-1 when missing)
    or "none" (no label key).
    """
    size = _as_size(image_size)
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"dataset name must be a string or path, got {type(name).__name__}")
    if isinstance(name, str) and name in ("sample", "four_points"):
        if split not in _ARRAY_SPLITS:
            raise ValueError(f"the {name!r} dataset has splits 'train' and 'test', not {split!r}")
        if name == "four_points":
            return _array_source(*_four_points(), size, labels)
        with np.load(SAMPLE_PATH) as data:
            x, y = data[f"x_{split}"], data[f"y_{split}"].astype(np.int64)
        return _array_source(x, y, size, labels)
    if isinstance(name, str) and name.split(":")[0] in KNOWN_DATASETS:
        return _tfds_source(name, split, data_dir, size, labels)
    if _is_path(name):
        folder = str(name)
        folder = folder[len("idx:"):] if folder.startswith("idx:") else folder
        x, y = _idx_arrays(folder, split, labels)
        return _array_source(x, y, size, labels)
    raise ValueError(
        f"unknown dataset {name!r}; known names: {', '.join(KNOWN_DATASETS)} "
        "(or a folder of IDX files, optionally prefixed with 'idx:')"
    )


def _check_binarize(binarize):
    if binarize not in _BINARIZE_MODES:
        raise ValueError(f"binarize must be one of {_BINARIZE_MODES}, got {binarize!r}")


def _check_count(value, name):
    """``value`` as an int >= 1 (numpy integers too), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"load: expected {name} as an integer >= 1; got {value!r}.")
    return int(value)


def _static_binarize(ds, seed):
    """Binarize each example once, seeded by (seed, example index)."""
    seed = 0 if seed is None else int(seed)

    def draw(i, ex):
        pair = tf.stack([tf.constant(seed, tf.int64), i])
        return {**ex, "image": binarize_static(ex["image"], seed=pair)}

    return ds.enumerate().map(draw, num_parallel_calls=AUTOTUNE)


# ---------------------------------------------------------------------------
# Public loaders
# ---------------------------------------------------------------------------


class EpochCounter:
    """Which pass over a data set the next iterator of a :func:`load` pipeline makes.

    Every new iterator (one per epoch in ``fit()``) reads the counter and advances it, so the
    data order and the dynamic binarization of pass ``e`` are a function of ``(seed, e)`` alone.
    tfvae models set it at the start of every epoch (``set_epoch``), so a run resumed at epoch
    ``e`` by ``keras.callbacks.BackupAndRestore`` sees exactly the data an uninterrupted run saw.
    Create pipelines outside any ``tf.distribute`` strategy scope.
    """

    def __init__(self):
        with tf.init_scope():
            self.variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")

    def set_epoch(self, epoch):
        """Make the next iterator start pass `epoch` (what `fit()` does at each epoch's start)."""
        self.variable.assign(int(epoch))

    @property
    def epoch(self):
        """The pass the next iterator will make."""
        return int(self.variable.numpy())

    def take_next(self):
        """(Inside the pipeline) the current pass number, advancing the counter by one."""
        return self.variable.assign_add(1) - 1


_ORDER_GRAPH_SEED = 20160101  # any fixed non-zero value


def labelled_subset(labels, num_labelled, seed=0):
    """Indices of `num_labelled` examples, the same number from every class of `labels` (int
    `[N]`), chosen with `seed`: the labelled part of a semi-supervised training set."""
    labels = np.asarray(labels)
    classes = np.unique(labels[labels >= 0])
    if num_labelled % len(classes):
        raise ValueError(f"labelled={num_labelled} cannot be split evenly over the "
                         f"{len(classes)} classes; use a multiple of {len(classes)}")
    per_class = num_labelled // len(classes)
    rng = np.random.default_rng(0 if seed is None else int(seed))
    chosen = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(f"class {c} has {len(members)} examples; labelled={num_labelled} "
                             f"needs {per_class} per class")
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def _keep_labels(ds, num_labelled, seed):
    """`ds` with every label but those of `labelled_subset(...)` replaced by -1."""
    labels = np.concatenate([b.numpy() for b in ds.map(lambda ex: ex["label"]).batch(10_000)])
    keep = np.zeros(len(labels), bool)
    keep[labelled_subset(labels, num_labelled, seed)] = True
    keep = tf.constant(keep)
    return ds.enumerate().map(
        lambda i, ex: {**ex, "label": tf.where(keep[i], ex["label"], tf.constant(-1, tf.int64))},
        num_parallel_calls=AUTOTUNE)


def _epoch_seed(seed, epoch, stream):
    """A stateless seed pair for pass ``epoch`` of the random stream ``stream`` (0: order, 1: noise)."""
    base = tf.stack([tf.constant(int(seed), tf.int64), tf.constant(stream, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, epoch)


def num_examples(name, split="train", *, data_dir=None) -> int:
    """The number of examples in ``split`` of data set ``name`` (without reading the images).

    For ``"four_points"`` this is 4, the distinct images; an epoch of :func:`load` holds
    ``FOUR_POINTS_REPEATS`` times as many.
    """
    n = int(_source(name, split, data_dir, None, "none").cardinality())
    if n < 0:
        n = sum(1 for _ in _source(name, split, data_dir, None, "none"))
    return n


def dequantize(x, seed=0, levels=256):
    """Uniformly dequantized pixels: ``(round(x·(levels−1)) + u) / levels``, u ~ U(0, 1) per pixel.

    For a continuous density p on [0, 1]^D evaluated on these values, −log p(x̃) + D·log(levels)
    bounds the negative log-probability of the discrete image (Theis et al. 2016, Sec. 3.1), so
    it can be reported in bits per dimension. ``seed`` makes the noise reproducible.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    u = tf.random.stateless_uniform(tf.shape(x), _seed_pair(seed))
    return (tf.round(x * (levels - 1)) + u) / levels


def load(
    name,
    split="train",
    *,
    batch_size=100,
    binarize=None,
    shuffle=None,
    seed=None,
    with_labels=False,
    data_dir=None,
    take=None,
    skip=None,
    labelled=None,
    image_size=None,
    drop_remainder=False,
    cache=True,
    repeats=None,
) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` of float32 images ``(B, H, W, C)`` in [0, 1].

    Args:
      name: ``"sample"``, ``"four_points"``, a tensorflow-datasets name from
        ``KNOWN_DATASETS``, or a folder of IDX files (``"idx:"`` prefix optional).
      split: split name (``"train"``, ``"test"``, a tfds slice such as
        ``"train[:90%]"``, or an IDX file prefix such as ``"train5k"``).
      batch_size: examples per batch.
      binarize: ``None``; ``"dynamic"`` (pixels re-drawn as Bernoulli(intensity)
        every time an example is seen, one op per batch); or ``"static"``
        (drawn once with ``seed``, default 0, before caching).
      shuffle: shuffle every epoch; defaults to True for training splits
        (names starting with ``"train"``).
      seed: makes shuffling and binarization reproducible: pass ``e`` over the
        data (epoch ``e`` of ``fit()``) has an order and a binarization noise that
        depend on ``(seed, e)`` only, so a resumed run sees the same data as an
        uninterrupted one (see ``EpochCounter``, at ``dataset.epoch_counter``).
        ``None``: a fresh random order and noise every pass.
      with_labels: yield ``(images, labels)`` with int64 labels.
      data_dir: tensorflow-datasets data directory.
      take: keep only the first ``take`` examples (after ``skip``, before shuffling).
      skip: leave out the first ``skip`` examples (e.g. a held-out validation part).
      labelled: with ``with_labels``, keep the labels of only this many examples (the same
        number from every class, chosen with ``seed``) and mark the others unlabelled with -1,
        the semi-supervised setting of ``tfvae.SemiSupervisedAAE``.
      image_size: int or ``(height, width)`` to resize to (defaults: 28 for
        omniglot, 64 for celeb_a after a 140-pixel center crop).
      drop_remainder: drop the last incomplete batch.
      cache: cache the decoded examples in memory.
      repeats: passes over the (skipped, taken) examples in one epoch; default
        ``FOUR_POINTS_REPEATS`` for ``"four_points"`` (an epoch of 1024 examples, the four
        images in turn, so unshuffled batches of a multiple of 4 hold each image equally
        often; shuffled, each epoch does), 1 otherwise.

    Pipeline: decode -> skip -> take -> [static binarize] -> cache -> repeat -> then, for
    pass e: shuffle(seed, e) -> batch -> [dynamic binarize(seed, e, batch)] -> prefetch.
    """
    _check_binarize(binarize)
    batch_size = _check_count(batch_size, "batch_size")
    if repeats is None:
        repeats = FOUR_POINTS_REPEATS if isinstance(name, str) and name == "four_points" else 1
    repeats = _check_count(repeats, "repeats")
    ds = _source(name, split, data_dir, image_size, "required" if with_labels else "none")
    if skip is not None:
        ds = ds.skip(int(skip))
    if take is not None:
        ds = ds.take(int(take))
    if labelled is not None:
        if not with_labels:
            raise ValueError("labelled= keeps some of the labels: it needs with_labels=True")
        ds = _keep_labels(ds, int(labelled), seed)
    if binarize == "static":
        ds = _static_binarize(ds, seed)
    if cache:
        ds = ds.cache()
    if repeats > 1:
        ds = ds.repeat(repeats)
    if shuffle is None:
        shuffle = str(split).startswith("train")
    num_examples = int(ds.cardinality())
    counter = None
    if seed is None:
        if shuffle:
            buffer = num_examples if 0 < num_examples <= 100_000 else 10_000
            ds = ds.shuffle(buffer, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        if binarize == "dynamic":
            ds = ds.map(lambda ex: {**ex, "image": binarize_dynamic(ex["image"])},
                        num_parallel_calls=AUTOTUNE)
    elif shuffle or binarize == "dynamic":
        counter = EpochCounter()
        examples = ds
        buffer = num_examples if 0 < num_examples <= 100_000 else 10_000

        def one_pass(_):
            epoch = counter.take_next()
            ds = examples
            if shuffle:
                order_seed = tf.random.stateless_uniform(
                    [], _epoch_seed(seed, epoch, 0), minval=None, maxval=None, dtype=tf.int64)
                # shuffle() pairs its op seed with the graph's seed; fixing this function's graph
                # seed makes the order depend on (seed, epoch) alone, not on tf.random.set_seed
                # (whose value 0 would also break shuffle()'s check of a tensor op seed).
                tf.compat.v1.get_default_graph().seed = _ORDER_GRAPH_SEED
                ds = ds.shuffle(buffer, seed=order_seed, reshuffle_each_iteration=False)
            ds = ds.batch(batch_size, drop_remainder=drop_remainder)
            if binarize == "dynamic":
                noise = _epoch_seed(seed, epoch, 1)

                def draw(index, ex):
                    pair = tf.random.experimental.stateless_fold_in(noise, index)
                    return {**ex, "image": binarize_dynamic(ex["image"], seed=pair)}

                ds = ds.enumerate().map(draw, num_parallel_calls=AUTOTUNE)
            return ds

        ds = tf.data.Dataset.from_tensors(0).flat_map(one_pass)
        if num_examples > 0:
            batches = num_examples // batch_size if drop_remainder else -(-num_examples // batch_size)
            ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    else:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if with_labels:
        ds = ds.map(lambda ex: (ex["image"], ex["label"]))
    else:
        ds = ds.map(lambda ex: ex["image"])
    ds = ds.prefetch(AUTOTUNE)
    ds.epoch_counter = counter
    return ds


def load_arrays(
    name,
    split="test",
    *,
    binarize=None,
    seed=0,
    take=None,
    skip=None,
    data_dir=None,
    image_size=None,
):
    """Load a whole split as numpy ``(x, y)`` for evaluation.

    ``x`` is float32 ``[N, H, W, C]`` in [0, 1]; ``y`` is int64 ``[N]`` (-1 for
    data sets without labels). Order is the source order; ``skip`` and ``take``
    select examples as in :func:`load`. ``binarize="static"``
    gives the same images as ``load(..., binarize="static", seed=seed)``;
    ``"dynamic"`` draws once with ``seed``.
    """
    _check_binarize(binarize)
    ds = _source(name, split, data_dir, image_size, "optional")
    if skip is not None:
        ds = ds.skip(int(skip))
    if take is not None:
        ds = ds.take(int(take))
    if binarize == "static":
        ds = _static_binarize(ds, seed)
    xs, ys = [], []
    for ex in ds.batch(1000).prefetch(AUTOTUNE):
        xs.append(ex["image"].numpy())
        ys.append(ex["label"].numpy())
    if not xs:
        raise ValueError(f"dataset {name!r} split {split!r} is empty")
    x, y = np.concatenate(xs), np.concatenate(ys).astype(np.int64)
    if binarize == "dynamic":
        x = binarize_dynamic(x, seed=seed).numpy()
    return x, y


# ---------------------------------------------------------------------------
# Mixtures of Gaussians in the plane
# ---------------------------------------------------------------------------

#: Default std of each component: (grid, ring).
_MIXTURE_STD = {"grid": 0.05, "ring": 0.02}


def gaussian_mixture_2d(kind="grid", num_samples=10000, *, seed=0, std=None):
    """Points from the mode-collapse benchmarks' mixtures of Gaussians in the plane, used by the
    implicit autoencoder's mixture experiment (Makhzani 2018) and GAN mode-coverage studies.

    * ``"grid"``: 25 components at the centres {-4, -2, 0, 2, 4}², std 0.05 (the
      widely used 5×5 grid; 3σ = 0.15 is far below the spacing 2);
    * ``"ring"``: 8 components evenly spaced on the circle of radius 2 (the first at (2, 0)),
      std 0.02.

    Each point picks a component uniformly at random (so the counts per mode vary
    multinomially), then adds isotropic Gaussian noise of std ``std`` (None: the default of
    ``kind``). Deterministic in ``seed`` (a numpy ``default_rng``).

    Returns ``(points float32 [N, 2], centres float32 [K, 2], std float)``.
    """
    if kind not in _MIXTURE_STD:
        raise ValueError(f"gaussian_mixture_2d: expected kind as one of {sorted(_MIXTURE_STD)}; got {kind!r}.")
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"gaussian_mixture_2d: expected num_samples as an integer >= 1; got {num_samples!r}.")
    std = _MIXTURE_STD[kind] if std is None else float(std)
    if not std > 0:
        raise ValueError(f"gaussian_mixture_2d: expected std > 0; got {std!r}.")
    if kind == "grid":
        axis = np.arange(-4.0, 5.0, 2.0)
        centres = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    else:
        angles = 2.0 * np.pi * np.arange(8) / 8
        centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], -1)
    rng = np.random.default_rng(seed)
    components = rng.integers(len(centres), size=num_samples)
    points = centres[components] + std * rng.standard_normal((num_samples, 2))
    return points.astype(np.float32), centres.astype(np.float32), std
