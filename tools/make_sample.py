"""Build the bundled MNIST sample ``tfvae/data/mnist_sample.npz``.

Reads the MNIST IDX files in ``../shared/data/mnist`` (relative to the repo
root; override with ``--src``) and keeps, with seed 0:

* ``x_train``/``y_train``: 2,000 images of ``train5k``, 200 per class;
* ``x_test``/``y_test``: 1,000 images of ``t10k``, 100 per class;

each set shuffled.  Arrays are uint8 (images ``(N, 28, 28)``, labels ``(N,)``),
written with ``np.savez_compressed``.  Usage::

    python tools/make_sample.py [--src DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SRC = ROOT.parent / "shared" / "data" / "mnist"
DEFAULT_OUT = ROOT / "tfvae" / "data" / "mnist_sample.npz"
SEED = 0


def read_idx_uint8(path: Path) -> np.ndarray:
    """Read a gzipped unsigned-byte IDX file (the only kind MNIST uses)."""
    data = gzip.open(path, "rb").read()
    if data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def select(x, y, per_class, rng):
    """``per_class`` random examples of each class 0..9, then shuffled."""
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]
    )
    idx = rng.permutation(idx)
    return x[idx], y[idx].astype(np.uint8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(SEED)
    arrays = {}
    for split, prefix, per_class in (("train", "train5k", 200), ("test", "t10k", 100)):
        x = read_idx_uint8(args.src / f"{prefix}-images-idx3-ubyte.gz")
        y = read_idx_uint8(args.src / f"{prefix}-labels-idx1-ubyte.gz")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = select(x, y, per_class, rng)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    for k, v in arrays.items():
        print(f"{k}: {v.shape} {v.dtype}")
    print(f"{digest}  {args.out.name}")


if __name__ == "__main__":
    main()
