"""PyTorch references for the adversarial autoencoder's training speed (benchmarks/aae_mnist.py, part e).

Two implementations of the same MLP adversarial autoencoder (Makhzani et al. 2016) on flattened
28x28 MNIST, batch 100, Adam(lr 1e-3) for every optimizer, deterministic encoder, 2-D code,
N(0, I) prior:

* ``impl="pythae"``: pythae's ``Adversarial_AE`` trained by its own ``AdversarialTrainer``: the
  epoch loop is ``trainer.train_step(epoch)``, pythae's DataLoader included (``train()`` also
  deep-copies the best model and logs after every epoch; that is left out). Its step is pythae's
  algorithm: one forward pass, the autoencoder loss (BCE reconstruction summed over pixels +
  ``adversarial_loss_scale`` x the generator's BCE) and the discriminator loss backpropagated
  together, then both optimizers step.
* ``impl="torch"``: a plain loop with the three phases of ``tfvae.AdversarialAutoencoder`` per
  step: (1) reconstruction (encoder + decoder), (2) discriminator on prior samples against
  detached codes, (3) generator (encoder) with the non-saturating loss; Gaussian noise of
  standard deviation 0.1 on the discriminator's inputs, as tfvae's default. The like-for-like
  comparison with tfvae's step.

Networks (both implementations): encoder 784-H-H-2, decoder 2-H-H-784 (logits; pythae takes
their sigmoid), discriminator 2-H-H-1, ReLU; pythae's encoder also has its required
log-covariance head (2 units, multiplied by 0 for the deterministic posterior).

This module does not import tfvae. It runs in any interpreter with torch (and pythae for
``impl="pythae"``); benchmarks/aae_mnist.py calls it as a subprocess (``--config JSON``, one JSON
line on stdout), so pythae may live in its own virtual environment:

    python3 -m venv --system-site-packages /tmp/aae-torch-venv
    /tmp/aae-torch-venv/bin/pip install torch==2.13.0 pythae==0.1.2
    /tmp/aae-torch-venv/bin/python benchmarks/torch_aae_reference.py --impl pythae --epochs 3
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["mlp", "train_throughput", "load_mnist_images"]


def mlp(sizes):
    """Linear layers with ReLU between them (none after the last)."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- plain PyTorch
def _torch_epochs(x, hidden, latent_dim, batch_size, epochs, seed, noise=0.1):
    """Epoch times of the three-phase AAE loop; returns (times, final losses)."""
    torch.manual_seed(seed)
    dims = x.shape[1]
    encoder = mlp([dims, *hidden, latent_dim])
    decoder = mlp([latent_dim, *hidden, dims])
    discriminator = mlp([latent_dim, *hidden, 1])
    ae_opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    g_opt = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(x)
    n_batches = len(x) // batch_size
    times, losses = [], {}
    for _ in range(epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(x), generator=gen)
        for b in range(n_batches):
            xb = data.index_select(0, perm[b * batch_size:(b + 1) * batch_size])
            # 1. reconstruction: -log p(x|z) summed over the pixels, mean over the batch
            logits = decoder(encoder(xb))
            recon = F.binary_cross_entropy_with_logits(logits, xb, reduction="none").sum(1).mean()
            ae_opt.zero_grad(set_to_none=True)
            recon.backward()
            ae_opt.step()
            # 2. discriminator: prior samples are real (1), codes are fake (0)
            with torch.no_grad():
                fake = encoder(xb)
            real = torch.randn_like(fake)
            inputs = torch.cat([real, fake]) + noise * torch.randn(2 * len(xb), latent_dim)
            targets = torch.cat([torch.ones(len(xb), 1), torch.zeros(len(xb), 1)])
            d_loss = F.binary_cross_entropy_with_logits(discriminator(inputs), targets)
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            # 3. generator: the encoder minimizes -log D(z) (non-saturating)
            z = encoder(xb)
            g_loss = F.softplus(-discriminator(z + noise * torch.randn_like(z))).mean()
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
        times.append(time.perf_counter() - start)
        losses = {"reconstruction": recon.item(), "discriminator_loss": d_loss.item(),
                  "generator_loss": g_loss.item()}
    return times, losses


# ----------------------------------------------------------------------------- pythae
def _pythae_epochs(x, hidden, latent_dim, batch_size, epochs, seed):
    """Epoch times of pythae's Adversarial_AE under its AdversarialTrainer.train_step."""
    import logging

    import pythae
    from pythae.data.datasets import BaseDataset
    from pythae.models import Adversarial_AE, Adversarial_AE_Config
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseDiscriminator, BaseEncoder
    from pythae.trainers import AdversarialTrainer, AdversarialTrainerConfig

    for name in list(logging.root.manager.loggerDict):  # pythae logs every setup step at INFO
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.WARNING)
    dims = x.shape[1]

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.body = mlp([dims, *hidden])
            self.embedding = nn.Linear(hidden[-1], latent_dim)
            self.log_var = nn.Linear(hidden[-1], latent_dim)

        def forward(self, inputs):
            h = F.relu(self.body(inputs.reshape(len(inputs), -1)))
            return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = mlp([latent_dim, *hidden, dims])

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    class Discriminator(BaseDiscriminator):
        def __init__(self):
            super().__init__()
            self.net = mlp([latent_dim, *hidden, 1])

        def forward(self, z):
            return ModelOutput(embedding=torch.sigmoid(self.net(z)))

    torch.manual_seed(seed)
    config = Adversarial_AE_Config(input_dim=(dims,), latent_dim=latent_dim,
                                   reconstruction_loss="bce", deterministic_posterior=True)
    model = Adversarial_AE(config, encoder=Encoder(), decoder=Decoder(), discriminator=Discriminator())
    data = torch.from_numpy(x)
    dataset = BaseDataset(data, torch.zeros(len(x)))
    with tempfile.TemporaryDirectory() as out:
        training = AdversarialTrainerConfig(
            output_dir=out, per_device_train_batch_size=batch_size, num_epochs=epochs,
            autoencoder_learning_rate=1e-3, discriminator_learning_rate=1e-3, no_cuda=True,
            seed=seed)
        trainer = AdversarialTrainer(model, dataset, training_config=training)
        trainer.prepare_training()
        times, losses = [], {}
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            loss, ae_loss, d_loss = trainer.train_step(epoch)
            times.append(time.perf_counter() - start)
            losses = {"loss": loss, "autoencoder_loss": ae_loss, "discriminator_loss": d_loss}
    version = getattr(pythae, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("pythae")
    return times, dict(losses, pythae_version=version,
                       adversarial_loss_scale=config.adversarial_loss_scale)


def train_throughput(x_train, *, impl="torch", hidden=(1000, 1000), latent_dim=2, batch_size=100,
                     epochs=5, threads=None, seed=0):
    """Train for `epochs` epochs and time each; `x_train` float32 [N, 784] in [0, 1].

    Returns a dict: ``examples_per_s`` (from the median of epochs 2..n), ``best_examples_per_s``
    (the fastest of them), ``epoch_times_s``, ``first_epoch_s``, ``examples_per_epoch``,
    ``torch_version``, ``threads``, ``impl`` and the final losses.
    """
    if impl not in ("torch", "pythae"):
        raise ValueError(f"impl must be 'torch' or 'pythae'; got {impl!r}")
    x = np.ascontiguousarray(x_train, dtype=np.float32).reshape(len(x_train), -1)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        run = _pythae_epochs if impl == "pythae" else _torch_epochs
        times, extra = run(x, tuple(hidden), latent_dim, batch_size, epochs, seed)
    finally:
        torch.set_num_threads(previous)
    steady = times[1:] or times
    examples = len(x) // batch_size * batch_size
    return dict(extra, impl=impl, examples_per_epoch=examples, epoch_times_s=times,
                first_epoch_s=times[0], steady_epoch_s=statistics.median(steady),
                examples_per_s=examples / statistics.median(steady),
                best_examples_per_s=examples / min(steady), torch_version=torch.__version__,
                threads=threads or previous, hidden=list(hidden), latent_dim=latent_dim,
                batch_size=batch_size)


def load_mnist_images(data_dir=None, split="train5k"):
    """MNIST images of `split` as float32 [N, 784] in [0, 1], or None if absent."""
    if data_dir is None:
        data_dir = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"
    path = Path(data_dir) / f"{split}-images-idx3-ubyte.gz"
    if not path.exists():
        return None
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in range(0, 16, 4))
    if magic != 2051:
        raise ValueError(f"{path}: not an IDX image file (magic {magic})")
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows * cols).astype(np.float32) / 255


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", choices=("torch", "pythae"), default="torch")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--hidden", type=int, nargs="+", default=[1000, 1000])
    p.add_argument("--train-examples", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--config", help="JSON with the same keys (used by aae_mnist.py); prints one JSON line")
    a = p.parse_args(argv)
    cfg = {"impl": a.impl, "epochs": a.epochs, "hidden": a.hidden, "train_examples": a.train_examples,
           "threads": a.threads or len(os.sched_getaffinity(0)), "data": a.data, "seed": 0,
           "batch_size": 100, "latent_dim": 2}
    if a.config:
        cfg.update(json.loads(a.config))
    x = load_mnist_images(cfg["data"])
    if x is None:
        x = np.random.default_rng(0).random((5000, 784), dtype=np.float32)
    x = x[:cfg["train_examples"]]
    result = train_throughput(x, impl=cfg["impl"], hidden=cfg["hidden"], latent_dim=cfg["latent_dim"],
                              batch_size=cfg["batch_size"], epochs=cfg["epochs"],
                              threads=cfg["threads"], seed=cfg["seed"])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
