"""Image data sets for VAEs as ``tf.data`` pipelines or numpy arrays.

Three kinds of source are understood by :func:`load` and :func:`load_arrays`:

* ``"sample"``: a small MNIST subset shipped with the package
  (``tfvae/data/mnist_sample.npz``, splits ``"train"`` and ``"test"``);
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

import gzip
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

__all__ = [
    "KNOWN_DATASETS",
    "load",
    "load_arrays",
    "read_idx",
    "write_idx",
    "binarize_dynamic",
    "binarize_static",
]

#: Names accepted by :func:`load` (besides IDX folder paths).
KNOWN_DATASETS = (
    "sample",
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


def _tfds_source(name, split, data_dir, size, labels):
    """A dataset from tensorflow-datasets, converted to the common format."""
    import tensorflow_datasets as tfds  # imported lazily: slow and optional for "sample"/IDX

    base = name.split(":")[0]
    unlabeled = base in _UNLABELED
    if labels == "required" and unlabeled:
        raise ValueError(f"dataset {base!r} has no class labels; use with_labels=False")
    size = size or _DEFAULT_SIZE.get(base)
    ds = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=False)

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
    if isinstance(name, str) and name == "sample":
        if split not in ("train", "test"):
            raise ValueError(f"the 'sample' dataset has splits 'train' and 'test', not {split!r}")
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
    image_size=None,
    drop_remainder=False,
    cache=True,
) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` of float32 images ``(B, H, W, C)`` in [0, 1].

    Args:
      name: ``"sample"``, a tensorflow-datasets name from ``KNOWN_DATASETS``, or
        a folder of IDX files (``"idx:"`` prefix optional).
      split: split name (``"train"``, ``"test"``, a tfds slice such as
        ``"train[:90%]"``, or an IDX file prefix such as ``"train5k"``).
      batch_size: examples per batch.
      binarize: ``None``; ``"dynamic"`` (pixels re-drawn as Bernoulli(intensity)
        every time an example is seen, one op per batch); or ``"static"``
        (drawn once with ``seed``, default 0, before caching).
      shuffle: shuffle every epoch; defaults to True for training splits
        (names starting with ``"train"``).
      seed: makes shuffling and binarization reproducible (still different
        from one epoch to the next).
      with_labels: yield ``(images, labels)`` with int64 labels.
      data_dir: tensorflow-datasets data directory.
      take: keep only the first ``take`` examples (before shuffling).
      image_size: int or ``(height, width)`` to resize to (defaults: 28 for
        omniglot, 64 for celeb_a after a 140-pixel center crop).
      drop_remainder: drop the last incomplete batch.
      cache: cache the decoded examples in memory.

    Pipeline: decode -> take -> [static binarize] -> cache -> shuffle ->
    batch -> [dynamic binarize] -> prefetch.
    """
    _check_binarize(binarize)
    ds = _source(name, split, data_dir, image_size, "required" if with_labels else "none")
    if take is not None:
        ds = ds.take(int(take))
    if binarize == "static":
        ds = _static_binarize(ds, seed)
    if cache:
        ds = ds.cache()
    if shuffle is None:
        shuffle = str(split).startswith("train")
    if shuffle:
        n = int(ds.cardinality())
        buffer = n if 0 < n <= 100_000 else 10_000
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if binarize == "dynamic":
        # One int64 per batch, re-drawn each epoch (reproducibly when seeded),
        # used as the seed of a stateless batched Bernoulli draw.
        noise_seed = None if seed is None else int(seed) + 1
        seeds = tf.data.Dataset.random(seed=noise_seed, rerandomize_each_iteration=True)

        def draw(ex, s):
            return {**ex, "image": binarize_dynamic(ex["image"], seed=s)}

        ds = tf.data.Dataset.zip(ds, seeds).map(draw, num_parallel_calls=AUTOTUNE)
    if with_labels:
        ds = ds.map(lambda ex: (ex["image"], ex["label"]))
    else:
        ds = ds.map(lambda ex: ex["image"])
    return ds.prefetch(AUTOTUNE)


def load_arrays(
    name,
    split="test",
    *,
    binarize=None,
    seed=0,
    take=None,
    data_dir=None,
    image_size=None,
):
    """Load a whole split as numpy ``(x, y)`` for evaluation.

    ``x`` is float32 ``[N, H, W, C]`` in [0, 1]; ``y`` is int64 ``[N]`` (-1 for
    data sets without labels). Order is the source order. ``binarize="static"``
    gives the same images as ``load(..., binarize="static", seed=seed)``;
    ``"dynamic"`` draws once with ``seed``.
    """
    _check_binarize(binarize)
    ds = _source(name, split, data_dir, image_size, "optional")
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
