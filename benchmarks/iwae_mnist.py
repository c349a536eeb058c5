"""VAE vs IWAE on real MNIST with the IWAE paper's one-stochastic-layer model (Burda et al. 2016, Table 1).

784-200-200-50 encoder and 50-200-200-784 decoder with tanh units, Bernoulli decoder, Adam
(lr 1e-3, β₁ 0.9, β₂ 0.999, ε 1e-4), dynamic binarization of the training images. Each model
trains for the same number of epochs from the same seed; the test NLL uses k = 5000 importance
samples on a fixed binarization of the test set; active units use the threshold 10⁻².

    python benchmarks/iwae_mnist.py                    # 5k train / 10k test from ../shared/data
    python benchmarks/iwae_mnist.py --epochs 5 --test-examples 500 --eval-samples 500   # quick look

Expected ordering after equal training (Table 1 at full budget: IWAE k=50 84.78 nats and 25 active
units, VAE k=50 86.35 and 20): NLL IWAE k=50 < IWAE k=5 < VAE, and more active units for the IWAE.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfvae  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
CONFIGS = (("VAE", tfvae.VAE, 1), ("IWAE", tfvae.IWAE, 5), ("IWAE", tfvae.IWAE, 50))


def paper_model(cls, k, seed):
    """The IWAE paper's 1-layer architecture (Burda et al. 2016, Section 5)."""
    return cls(input_shape=(28, 28, 1), latent_dim=50, num_samples=k, seed=seed,
               encoder=tfvae.networks.mlp([200, 200], activation="tanh"),
               decoder=tfvae.networks.mlp([200, 200], activation="tanh"), likelihood="bernoulli")


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def run(args):
    data = str(args.data)
    x_train, _ = tfvae.datasets.load_arrays(data, split="train5k")
    x_test, _ = tfvae.datasets.load_arrays(data, split="t10k", binarize="static", seed=0)
    x_test = x_test[:args.test_examples]
    train = tfvae.datasets.load(data, split="train5k", batch_size=args.batch_size, binarize="dynamic",
                                seed=args.seed, drop_remainder=True)
    rows = []
    for name, cls, k in CONFIGS:
        keras.utils.set_random_seed(args.seed)
        model = paper_model(cls, k, args.seed)
        model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-4),
                      steps_per_execution=args.steps_per_execution, jit_compile=args.jit_compile)
        timer = EpochTimer()
        model.fit(train, epochs=args.epochs, verbose=0, callbacks=[timer])
        steady = timer.times[1:] or timer.times
        throughput = len(x_train) // args.batch_size * args.batch_size / np.median(steady)
        start = time.perf_counter()
        log_px = tfvae.evaluation.log_likelihood(model, x_test, num_samples=args.eval_samples, seed=0)
        eval_seconds = time.perf_counter() - start
        row = {"model": f"{name} k={k}", "test_nll": float(-np.mean(log_px)),
               "active_units": tfvae.evaluation.active_units(model, x_train),
               "train_examples_per_s": float(throughput), "first_epoch_s": timer.times[0],
               "steady_epoch_s": float(np.median(steady)), "eval_s": eval_seconds}
        rows.append(row)
        print(f"{row['model']:<12} NLL {row['test_nll']:8.2f} nats   active units {row['active_units']:2d}"
              f"   train {row['train_examples_per_s']:8.0f} ex/s   eval {eval_seconds:6.1f} s", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--test-examples", type=int, default=10000)
    parser.add_argument("--eval-samples", type=int, default=5000)
    parser.add_argument("--steps-per-execution", type=int, default=10)
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if not (args.data / "train5k-images-idx3-ubyte.gz").exists():
        sys.exit(f"MNIST IDX files not found in {args.data} (expected train5k-images-idx3-ubyte.gz); "
                 "pass --data")
    print(f"IWAE-paper MLP on MNIST: {args.epochs} epochs, test on {args.test_examples} images, "
          f"k={args.eval_samples} for the NLL; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    rows = run(args)
    nll = [row["test_nll"] for row in rows]
    units = [row["active_units"] for row in rows]
    print(f"ordering NLL IWAE50 < IWAE5 < VAE: {nll[2] < nll[1] < nll[0]};  "
          f"more active units for IWAE50 than VAE: {units[2] > units[0]}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
