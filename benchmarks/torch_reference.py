"""Plain PyTorch reference for the IWAE paper's 1-stochastic-layer MNIST model.

Burda, Grosse & Salakhutdinov (2016), "Importance Weighted Autoencoders", section 5:

* encoder q(z|x): 784 -> 200 -> 200 (tanh), then linear heads giving the mean and the
  log standard deviation of a 50-dimensional diagonal Gaussian;
* decoder p(x|z): 50 -> 200 -> 200 (tanh) -> 784 Bernoulli logits;
* prior p(z) = N(0, I);
* objective: the k-sample importance-weighted bound
  ``log (1/k) sum_i p(x, z_i) / q(z_i | x)``, reparameterized; k = 1 is the VAE ELBO
  with a Monte-Carlo KL term;
* Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-4).

The k samples are drawn as one ``[k, B, 50]`` tensor and decoded in one pass (``nn.Linear``
folds the leading dimensions into one matmul), so there is no Python loop over k.

This module is deliberately independent of ``tfvae``; it exists so the benchmark script
can compare training throughput against an idiomatic PyTorch implementation.
"""

from __future__ import annotations

import gzip
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IWAE", "iwae_loss", "train_throughput", "load_mnist_images"]

_LOG_2PI = math.log(2.0 * math.pi)


class IWAE(nn.Module):
    """The IWAE paper's one-stochastic-layer architecture."""

    def __init__(self, x_dim: int = 784, h_dim: int = 200, z_dim: int = 50):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(x_dim, h_dim), nn.Tanh(),
            nn.Linear(h_dim, h_dim), nn.Tanh(),
        )
        self.enc_mean = nn.Linear(h_dim, z_dim)
        self.enc_log_std = nn.Linear(h_dim, z_dim)
        self.decoder = nn.Sequential(
            nn.Linear(z_dim, h_dim), nn.Tanh(),
            nn.Linear(h_dim, h_dim), nn.Tanh(),
            nn.Linear(h_dim, x_dim),
        )
        self.z_dim = z_dim

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Log importance weights ``log p(x, z) - log q(z | x)``, shape ``[k, B]``."""
        h = self.encoder(x)
        mean = self.enc_mean(h)
        log_std = self.enc_log_std(h)
        eps = torch.randn((k,) + mean.shape, dtype=mean.dtype, device=mean.device)
        z = mean + log_std.exp() * eps                                 # [k, B, z]
        logits = self.decoder(z)                                       # [k, B, 784]
        # Bernoulli log-likelihood: x * logits - softplus(logits) (x broadcasts over k).
        logits = logits.float()  # under bfloat16 autocast, densities stay float32 (as in tfvae)
        log_px_z = (x * logits - F.softplus(logits)).sum(-1)           # [k, B]
        log_pz = -0.5 * (z.square() + _LOG_2PI).sum(-1)                # [k, B]
        # (z - mean) / std == eps exactly, so use eps directly.
        log_qz_x = (-0.5 * (eps.square() + _LOG_2PI) - log_std).sum(-1)  # [k, B]
        return log_px_z + log_pz - log_qz_x

    def forward(self, x: torch.Tensor, k: int = 1) -> torch.Tensor:
        """Per-example k-sample IWAE bound, shape ``[B]`` (nats, higher is better)."""
        log_w = self.log_weights(x, k)
        return torch.logsumexp(log_w, dim=0) - math.log(k)


def iwae_loss(model: IWAE, x: torch.Tensor, k: int) -> torch.Tensor:
    """Negative batch-mean IWAE bound (the training loss)."""
    return -model(x, k).mean()


def train_throughput(
    x_train: np.ndarray,
    *,
    k: int,
    batch_size: int = 100,
    steps: int = 200,
    warmup_steps: int = 20,
    threads: int | None = None,
    seed: int = 0,
    compile: bool = False,
    window_steps: int | None = None,
    precision: str = "float32",
) -> dict:
    """Time ``steps`` training steps of the IWAE model on CPU (after ``warmup_steps``).

    ``x_train`` is float32 ``[N, 784]`` with values in [0, 1]. Each step takes the next
    batch of a per-epoch shuffle, binarizes it dynamically (``torch.bernoulli``) and does one
    Adam step on the k-sample IWAE loss. ``threads`` sets ``torch.set_num_threads`` for the
    duration of the call (the previous setting is restored afterwards). ``compile=True``
    wraps the step in ``torch.compile``; if that fails the run falls back to eager mode and
    the error is reported under ``"compile_error"``. ``precision="bfloat16"`` runs the forward
    pass under ``torch.autocast("cpu", torch.bfloat16)`` (bfloat16 matmuls, float32 weights and
    log-likelihoods: the counterpart of Keras' ``mixed_bfloat16`` policy).

    The timed steps are split into windows of ``window_steps`` steps (default: all in one);
    ``window_s`` lists their durations, ``best_examples_per_s`` comes from the fastest window and
    ``examples_per_s`` from all steps together.

    Returns a dict with ``examples_per_s``, ``seconds``, ``steps``, ``k``, ``batch_size``,
    ``torch_version``, ``threads`` and a few extras (``compiled``, ``compile_error``,
    ``warmup_steps``, ``final_loss``: the loss of the last timed step, nats).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    window_steps = steps if window_steps is None else max(1, min(window_steps, steps))
    x_np = np.ascontiguousarray(x_train, dtype=np.float32).reshape(len(x_train), -1)
    if x_np.shape[0] < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} examples, got {x_np.shape[0]}")

    prev_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        data = torch.from_numpy(x_np)
        gen = torch.Generator().manual_seed(seed)
        model = IWAE(x_dim=data.shape[1])
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-4)

        def step(x_batch: torch.Tensor) -> torch.Tensor:
            x_bin = torch.bernoulli(x_batch)
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
                loss = iwae_loss(model, x_bin, k)
            loss.backward()
            opt.step()
            return loss.detach()

        run_step = step
        compiled, compile_error = False, None
        if compile:
            try:
                run_step = torch.compile(step)
                compiled = True
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                compile_error = f"{type(e).__name__}: {e}"

        n = data.shape[0]
        n_batches = n // batch_size
        perm = torch.randperm(n, generator=gen)
        cursor = 0

        def next_batch() -> torch.Tensor:
            nonlocal perm, cursor
            if cursor >= n_batches:
                perm = torch.randperm(n, generator=gen)
                cursor = 0
            idx = perm[cursor * batch_size:(cursor + 1) * batch_size]
            cursor += 1
            return data.index_select(0, idx)

        # Warm-up (also triggers compilation if requested).
        for i in range(max(warmup_steps, 1 if compiled else 0)):
            try:
                run_step(next_batch())
            except Exception as e:  # noqa: BLE001
                if not compiled:
                    raise
                compile_error = f"{type(e).__name__}: {e}"
                compiled, run_step = False, step
                run_step(next_batch())

        loss = None
        windows = []
        t0 = time.perf_counter()
        for i in range(steps):
            if i % window_steps == 0:
                window_start = time.perf_counter()
            loss = run_step(next_batch())
            if (i + 1) % window_steps == 0:  # CPU: no device sync needed
                windows.append(time.perf_counter() - window_start)
        final_loss = float(loss) if loss is not None else float("nan")
        seconds = time.perf_counter() - t0

        return {
            "examples_per_s": steps * batch_size / seconds if seconds > 0 else float("nan"),
            "best_examples_per_s": window_steps * batch_size / min(windows) if windows else float("nan"),
            "median_examples_per_s": (window_steps * batch_size / statistics.median(windows)
                                      if windows else float("nan")),
            "window_s": windows,
            "precision": precision,
            "seconds": seconds,
            "steps": steps,
            "k": k,
            "batch_size": batch_size,
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "warmup_steps": warmup_steps,
            "compiled": compiled,
            "compile_error": compile_error,
            "final_loss": final_loss,
        }
    finally:
        torch.set_num_threads(prev_threads)


def _read_idx_images(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in range(0, 16, 4))
    if magic != 2051:
        raise ValueError(f"{path}: not an IDX image file (magic {magic})")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows * cols)


def load_mnist_images(data_dir: str | Path | None = None) -> np.ndarray | None:
    """MNIST training images (train5k) as float32 [N, 784] in [0, 1], or None if absent.

    Looks in ``data_dir`` or, by default, ``<repo root>/../shared/data/mnist``.
    """
    if data_dir is None:
        data_dir = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"
    path = Path(data_dir) / "train5k-images-idx3-ubyte.gz"
    if not path.exists():
        return None
    return _read_idx_images(path).astype(np.float32) / 255.0


def main(argv=None):
    import argparse
    import json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--k", type=int, nargs="+", default=[1, 50])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--config", help="JSON: train_throughput's keyword arguments plus 'data' and "
                   "'train_examples' (used by run.py); prints one JSON line")
    args = p.parse_args(argv)
    if args.config:
        kwargs = json.loads(args.config)
        x = load_mnist_images(kwargs.pop("data", None))
        if x is None:
            x = np.random.default_rng(0).random((5000, 784), dtype=np.float32)
        x = x[:kwargs.pop("train_examples", None)]
        print(json.dumps(train_throughput(x, **kwargs)))
        return 0

    x = load_mnist_images()
    source = "mnist train5k"
    if x is None:
        x = np.random.default_rng(0).random((5000, 784), dtype=np.float32)
        source = "random uniform"
    print(f"data: {source}, shape {x.shape}")
    for k_ in args.k:
        res = train_throughput(
            x, k=k_, batch_size=args.batch_size, steps=args.steps,
            warmup_steps=args.warmup_steps, threads=args.threads, compile=args.compile,
        )
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
