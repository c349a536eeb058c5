"""What `compile(optimizer=keras.optimizers.Adam(...))` gives a user, before and after tfvae's
defaults (issue 15): the IWAE paper's VAE (or IWAE) trained with Keras' own Adam and
`steps_per_execution=1` ("keras") against the same call with tfvae's defaults ("tfvae": the fused
`tfvae.optimizers.Adam`, 10 steps per execution on one device).

    python benchmarks/default_compile.py                  # VAE, 3 alternating pairs of runs
    python benchmarks/default_compile.py --model "IWAE k=50" --rounds 2

Each run is a fresh process (`--worker`) training 5 epochs on 5,000 real MNIST images
(../shared/data/mnist, or the bundled sample) with dynamic binarization, batch 100,
Adam(1e-3, epsilon=1e-4); it prints examples/s of every epoch. The report gives, per side, the
fastest steady epoch (after the first) over all runs and the median of the runs' median epochs.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(side, model_name, epochs):
    sys.path.insert(0, str(HERE))
    import keras
    import tfvae
    from iwae_mnist import EpochTimer, paper_model
    from run import MODELS, data_source

    name, split, _ = data_source()
    data = tfvae.datasets.load(name, split, batch_size=100, binarize="dynamic", seed=0,
                               drop_remainder=True)
    examples = 100 * int(data.cardinality())
    keras.utils.set_random_seed(0)
    cls, k = MODELS[model_name]
    model = paper_model(getattr(tfvae, cls), k, 0)
    if side == "keras":
        class KerasAdam(keras.optimizers.Adam):  # a subclass: compile() leaves it as it is
            pass

        model.compile(optimizer=KerasAdam(1e-3, epsilon=1e-4), steps_per_execution=1)
    else:
        model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-4))
    timer = EpochTimer()
    model.fit(data, epochs=epochs, verbose=0, callbacks=[timer])
    print(json.dumps({"side": side, "optimizer": type(model.optimizer).__module__ + "."
                      + type(model.optimizer).__name__,
                      "steps_per_execution": int(model.steps_per_execution),
                      "examples_per_s": [examples / t for t in timer.times]}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="VAE", help='"VAE", "IWAE k=5" or "IWAE k=50"')
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--worker", choices=("keras", "tfvae"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        return worker(a.worker, a.model, a.epochs)
    runs = {"keras": [], "tfvae": []}
    for round_index in range(a.rounds):
        for side in runs:
            out = subprocess.run([sys.executable, __file__, "--worker", side, "--model", a.model,
                                  "--epochs", str(a.epochs)], capture_output=True, text=True,
                                 check=True, env={**__import__("os").environ,
                                                  "TF_CPP_MIN_LOG_LEVEL": "3"})
            result = json.loads(out.stdout.strip().splitlines()[-1])
            runs[side].append(result)
            print(f"round {round_index + 1} {side:5s} ({result['optimizer']}, steps_per_execution "
                  f"{result['steps_per_execution']}): "
                  + " ".join(f"{v:.0f}" for v in result["examples_per_s"]) + " ex/s", flush=True)
            time.sleep(1)
    summary = {}
    for side, results in runs.items():
        steady = [r["examples_per_s"][1:] for r in results]
        summary[side] = (max(max(s) for s in steady),
                         statistics.median(statistics.median(s) for s in steady))
    print(f"{a.model}: fastest steady epoch keras {summary['keras'][0]:.0f}, tfvae "
          f"{summary['tfvae'][0]:.0f} ex/s ({summary['tfvae'][0] / summary['keras'][0]:.2f}x); "
          f"median of run medians keras {summary['keras'][1]:.0f}, tfvae {summary['tfvae'][1]:.0f} "
          f"({summary['tfvae'][1] / summary['keras'][1]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
