"""Where the VAE's default training step spends its wall time: the same model and compile() with one
part swapped out at a time, in one process, alternating, fastest epoch of each.

    python benchmarks/step_budget.py              # ~4 min on 2 cores
    python benchmarks/step_budget.py --rounds 6

Variants (all `compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-4))`, tfvae's defaults):
* defaults: `tfvae.datasets.load(..., binarize="dynamic", seed=0)`, what run.py and pythae's side time;
* static binarization: the same pipeline with the pixels binarized once, before the cache;
* one fixed batch: `Dataset.from_tensors(batch).repeat(epoch_steps)`, no input pipeline to speak of;
* SGD: the defaults with `keras.optimizers.SGD` in place of Adam (no optimizer state).
The differences to *defaults* bound what the dynamic binarization, the rest of the input pipeline
and Adam's update cost per step. The model is the IWAE paper's MLP (iwae_mnist.paper_model).
"""
import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4, help="alternating rounds of 3 epochs per variant")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import keras
    import tensorflow as tf

    import tfvae
    from iwae_mnist import EpochTimer, paper_model
    from run import data_source

    name, split, _ = data_source()

    def pipeline(binarize):
        return tfvae.datasets.load(name, split, batch_size=100, binarize=binarize, seed=a.seed,
                                   drop_remainder=True)

    dynamic = pipeline("dynamic")
    steps = int(dynamic.cardinality())
    fixed = tf.data.Dataset.from_tensors(next(iter(dynamic))).repeat(steps)

    def model(optimizer):
        keras.utils.set_random_seed(a.seed)
        m = paper_model(tfvae.VAE, 1, a.seed)
        m.compile(optimizer=optimizer)
        return m

    adam = lambda: keras.optimizers.Adam(1e-3, epsilon=1e-4)  # noqa: E731
    variants = {"defaults": (model(adam()), dynamic),
                "static binarization": (model(adam()), pipeline("static")),
                "one fixed batch": (model(adam()), fixed),
                "SGD instead of Adam": (model(keras.optimizers.SGD(1e-3)), dynamic)}
    rates = {key: [] for key in variants}
    for m, ds in variants.values():
        m.fit(ds, epochs=1, verbose=0)  # traces
    for _ in range(a.rounds):
        for key, (m, ds) in variants.items():
            timer = EpochTimer()
            m.fit(ds, epochs=3, verbose=0, callbacks=[timer])
            rates[key] += [steps * 100 / t for t in timer.times]
    base = 1000 * 100 / max(rates["defaults"])
    print(f"VAE, batch 100, {steps} steps per epoch, {a.rounds} rounds of 3 epochs; fastest epoch")
    print(f"{'variant':24s} {'ex/s':>8s} {'median':>8s} {'ms/step':>8s} {'vs defaults':>12s}")
    for key, values in rates.items():
        ms = 1000 * 100 / max(values)
        print(f"{key:24s} {max(values):8.0f} {statistics.median(values):8.0f} {ms:8.2f} {ms - base:+11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
