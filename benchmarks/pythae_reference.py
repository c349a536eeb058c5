"""pythae's VAE and IWAE on the IWAE paper's MNIST model, and its VQ-VAE on tfvae's default VQ
networks, timed per epoch (benchmarks/run.py's pythae side).

pythae (Chadebec et al. 2022) is the PyTorch library a user would otherwise pick for this family.
Its models are trained here the way its documentation trains them: ``pythae.models.VAE`` or
``pythae.models.IWAE`` (``number_samples=k``) with ``reconstruction_loss="bce"``, under
``pythae.trainers.BaseTrainer``; one epoch is ``trainer.train_step(epoch)``, pythae's DataLoader
included (``train()`` also deep-copies the best model and logs after every epoch; that is left
out, in pythae's favour).

Networks: the IWAE paper's (Burda et al. 2016, section 5), as in benchmarks/torch_reference.py:
encoder 784-200-200 (tanh) with linear heads for the mean and the log-variance (pythae's
``log_covariance``) of a 50-dimensional Gaussian, decoder 50-200-200 (tanh)-784 with a sigmoid
(pythae's ``bce`` takes probabilities). Adam(1e-3, eps 1e-4), batch 100. pythae has no dynamic
binarization, so it trains on the grayscale intensities (the same cost per step; tfvae pays for
the binarization it does).

VQ-VAE (``model="vqvae"``): ``pythae.models.VQVAE`` (K = 512 codes of D = 64, β = 0.25; the
plain codebook, or ``ema=True`` for pythae's EMA quantizer with decay 0.99) with encoder and
decoder nn.Modules of the architecture of ``tfvae.networks.vq_encoder(filters)`` /
``vq_decoder(filters)``: two 4×4 stride-2 convolutions (ReLU), residual blocks
x + Conv1×1(ReLU(Conv3×3(ReLU(x)))) and a ReLU, a 1×1 convolution to D channels (28×28 → a 7×7
grid); the decoder a 3×3 convolution, the same residual blocks, two 4×4 stride-2 transposed
convolutions (ReLU between), and a sigmoid. pythae's VQVAE hard-codes a summed squared error as
its reconstruction loss (``AEConfig`` has no ``reconstruction_loss``); ``reconstruction="bce"``
(the default here, like tfvae's Bernoulli likelihood) overrides ``loss_function`` with the binary
cross-entropy summed over the pixels, pythae's own VAE formula; ``"mse"`` keeps pythae's. The two
cost the same to a few per cent of a step: the convolutions dominate.

This module does not import tfvae. It runs in any interpreter with torch and pythae; run.py calls
it as a subprocess (``--config JSON``: one JSON line on stdout), so pythae may live in its own
virtual environment (see benchmarks/torch_aae_reference.py for one):

    /tmp/aae-torch-venv/bin/python benchmarks/pythae_reference.py --k 50 --epochs 3
    /tmp/aae-torch-venv/bin/python benchmarks/pythae_reference.py --model vqvae --filters 64 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from importlib.metadata import version as dist_version

import numpy as np
import torch
from torch import nn

from torch_reference import load_mnist_images

__all__ = ["train_throughput", "vq_networks"]


def _networks(dims, hidden, latent_dim):
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(dims, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
            self.mean = nn.Linear(hidden, latent_dim)
            self.log_var = nn.Linear(hidden, latent_dim)

        def forward(self, inputs):
            h = self.body(inputs.reshape(len(inputs), -1))
            return ModelOutput(embedding=self.mean(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                                     nn.Tanh(), nn.Linear(hidden, dims))

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    return Encoder(), Decoder()


class _Residual(nn.Module):
    """tfvae.networks' residual blocks: x + Conv1×1(ReLU(Conv3×3(ReLU(x)))) per block, then ReLU."""

    def __init__(self, filters, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Conv2d(filters, filters, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(filters, filters, 1)) for _ in range(blocks))

    def forward(self, h):
        for block in self.blocks:
            h = h + block(h)
        return torch.relu(h)


def vq_networks(filters=64, code_dim=64, channels=1, residual_blocks=2):
    """pythae encoder and decoder with the architecture of tfvae's `vq_encoder(filters)` and
    `vq_decoder(filters)` (channels first): images `[B, C, H, W]` -> `embedding` `[B, D, H/4, W/4]`
    -> `reconstruction` `[B, C, H, W]` (probabilities: a sigmoid on the last layer)."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            # 4×4 stride 2 with padding 1 is Keras' "same" for even sizes (28 -> 14 -> 7).
            self.net = nn.Sequential(nn.Conv2d(channels, filters, 4, 2, 1), nn.ReLU(),
                                     nn.Conv2d(filters, filters, 4, 2, 1), nn.ReLU(),
                                     _Residual(filters, residual_blocks), nn.Conv2d(filters, code_dim, 1))

        def forward(self, inputs):
            return ModelOutput(embedding=self.net(inputs))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(code_dim, filters, 3, padding=1),
                                     _Residual(filters, residual_blocks),
                                     nn.ConvTranspose2d(filters, filters, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(filters, channels, 4, 2, 1))

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    return Encoder(), Decoder()


def _vqvae(side, filters, num_codes, code_dim, ema, reconstruction):
    """pythae's VQVAE on `vq_networks`; with reconstruction="bce" its loss_function sums the
    binary cross-entropy over the pixels instead of pythae's squared error."""
    import torch.nn.functional as F
    from pythae.models import VQVAE, VQVAEConfig

    if reconstruction not in ("bce", "mse"):
        raise ValueError(f"reconstruction must be 'bce' or 'mse'; got {reconstruction!r}")

    class BCEVQVAE(VQVAE):
        def loss_function(self, recon_x, x, quantizer_output):
            recon_loss = F.binary_cross_entropy(recon_x.reshape(x.shape[0], -1), x.reshape(x.shape[0], -1),
                                                reduction="none").sum(dim=-1)
            vq_loss = quantizer_output.loss
            return (recon_loss + vq_loss).mean(dim=0), recon_loss.mean(dim=0), vq_loss.mean(dim=0)

    config = VQVAEConfig(input_dim=(1, side, side), latent_dim=code_dim, num_embeddings=num_codes,
                         commitment_loss_factor=0.25, use_ema=ema, decay=0.99)
    encoder, decoder = vq_networks(filters, code_dim)
    return (BCEVQVAE if reconstruction == "bce" else VQVAE)(config, encoder=encoder, decoder=decoder)


def train_throughput(x_train, *, k=1, hidden=200, latent_dim=50, batch_size=100, epochs=3,
                     threads=None, seed=0, model="vae", filters=64, num_codes=512, code_dim=64,
                     ema=False, reconstruction="bce"):
    """Train pythae's VAE (k=1) or IWAE (k>1), or with model="vqvae" its VQVAE on `vq_networks`
    (`filters`, `num_codes`, `code_dim`, `ema`, `reconstruction`), for `epochs` epochs and time each.

    `x_train`: float32 [N, 784] in [0, 1]. Returns a dict: ``examples_per_s`` (from the median of
    epochs 2..n), ``best_examples_per_s`` (the fastest of them), ``epoch_times_s``,
    ``first_epoch_s``, ``examples_per_epoch``, ``final_loss``, ``pythae_version``,
    ``torch_version``, ``threads``.
    """
    from pythae.data.datasets import BaseDataset
    from pythae.models import IWAE, VAE, IWAEConfig, VAEConfig
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    for name in list(logging.root.manager.loggerDict):  # pythae logs every setup step at INFO
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if model not in ("vae", "vqvae"):
        raise ValueError(f"model must be 'vae' (VAE or IWAE by k) or 'vqvae'; got {model!r}")
    x = np.ascontiguousarray(x_train, dtype=np.float32).reshape(len(x_train), -1)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        if model == "vqvae":
            side = int(round(np.sqrt(x.shape[1])))
            x = x.reshape(len(x), 1, side, side)
            model = _vqvae(side, filters, num_codes, code_dim, ema, reconstruction)
        else:
            common = dict(input_dim=(x.shape[1],), latent_dim=latent_dim, reconstruction_loss="bce")
            encoder, decoder = _networks(x.shape[1], hidden, latent_dim)
            if k == 1:
                model = VAE(VAEConfig(**common), encoder=encoder, decoder=decoder)
            else:
                model = IWAE(IWAEConfig(**common, number_samples=k), encoder=encoder, decoder=decoder)
        dataset = BaseDataset(torch.from_numpy(x), torch.zeros(len(x)))
        with tempfile.TemporaryDirectory() as out:
            config = BaseTrainerConfig(output_dir=out, per_device_train_batch_size=batch_size,
                                       num_epochs=epochs, learning_rate=1e-3, optimizer_cls="Adam",
                                       optimizer_params={"betas": (0.9, 0.999), "eps": 1e-4},
                                       no_cuda=True, seed=seed)
            trainer = BaseTrainer(model, dataset, training_config=config)
            trainer.prepare_training()
            times, loss = [], float("nan")
            for epoch in range(1, epochs + 1):
                start = time.perf_counter()
                loss = trainer.train_step(epoch)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    steady = times[1:] or times
    examples = len(x)  # pythae's DataLoader keeps a last, partial batch
    extra = ({"filters": filters, "num_codes": num_codes, "code_dim": code_dim, "ema": ema,
              "reconstruction": reconstruction} if type(model).__name__.endswith("VQVAE") else {})
    return {"impl": "pythae", "model": type(model).__name__, "k": k, "examples_per_epoch": examples, **extra,
            "epoch_times_s": times, "first_epoch_s": times[0],
            "steady_epoch_s": statistics.median(steady),
            "examples_per_s": examples / statistics.median(steady),
            "best_examples_per_s": examples / min(steady), "final_loss": float(loss),
            "pythae_version": dist_version("pythae"), "torch_version": torch.__version__,
            "threads": threads or previous, "batch_size": batch_size}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("vae", "vqvae"), default="vae")
    p.add_argument("--k", type=int, default=1, help="1: pythae's VAE; more: its IWAE")
    p.add_argument("--filters", type=int, default=64, help="width of the VQ-VAE networks")
    p.add_argument("--ema", action="store_true", help="the VQ-VAE's EMA codebook")
    p.add_argument("--reconstruction", choices=("bce", "mse"), default="bce",
                   help="the VQ-VAE's reconstruction loss (mse: pythae's own)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-examples", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--config", help="JSON with the same keys (used by run.py); prints one JSON line")
    a = p.parse_args(argv)
    cfg = {"model": a.model, "k": a.k, "filters": a.filters, "ema": a.ema, "reconstruction": a.reconstruction,
           "epochs": a.epochs, "train_examples": a.train_examples,
           "threads": a.threads or len(os.sched_getaffinity(0)), "seed": 0, "batch_size": 100}
    if a.config:
        cfg.update(json.loads(a.config))
    x = load_mnist_images(cfg.get("data"))
    if x is None:
        x = np.random.default_rng(0).random((5000, 784), dtype=np.float32)
    x = x[:cfg["train_examples"]]
    vq = {key: cfg[key] for key in ("filters", "num_codes", "code_dim", "ema", "reconstruction") if key in cfg}
    print(json.dumps(train_throughput(x, k=cfg.get("k", 1), batch_size=cfg["batch_size"], epochs=cfg["epochs"],
                                      threads=cfg["threads"], seed=cfg["seed"], model=cfg.get("model", "vae"),
                                      **vq)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
