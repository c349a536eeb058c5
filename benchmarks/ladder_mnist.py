"""The Ladder VAE against its hierarchical-VAE baselines on real MNIST (Sønderby et al. 2016, Table 1
and Fig. 4): test NLL and active units per stochastic layer after the same training budget.

    python benchmarks/ladder_mnist.py                  # ~45 min on 2 cores: 200 epochs on 5k, 2k test images, k=5000
    python benchmarks/ladder_mnist.py --smoke          # 2 epochs, tiny evaluation (checks the script)

Models (the paper's MNIST configuration: five stochastic layers 64-32-16-8-4 with deterministic
blocks of two 512-256-128-64-32-unit layers, leaky ReLU, Bernoulli decoder), each trained for
the same epochs from the same seed on the dynamically binarized training images, Adam(lr 1e-3):

* VAE: `HierarchicalVAE`, bottom-up inference, no batch norm, no warm-up;
* VAE+BN+WU: `HierarchicalVAE(batch_norm=True)` with `KLWarmup` over the first `--warmup` epochs;
* LVAE+BN+WU: `LadderVAE` (batch norm) with the same warm-up.

Measured: the test NLL, -log p(x) by `log_likelihood` with k importance samples (batch norm in
inference mode, i.e. Keras' moving statistics) on a fixed binarization of the first
`--test-examples` test images; active units per layer (`evaluation.active_units_per_layer`,
Cov_x(E_q[u]) > 10⁻², on the same images); each layer's KL at the last epoch; training examples/s.
The paper's claim: the Ladder VAE keeps more units active in its upper layers (3-5) than the
baselines and reaches a better NLL (81.74 nats at the paper's full budget: 2,000 epochs on
50,000 images).

Writes docs/ladder_mnist_results.json and the section "Ladder VAE (benchmarks/ladder_mnist.py)" of
docs/results.md (the other sections are kept).
"""
import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist"
SECTION_TITLE = "Ladder VAE (benchmarks/ladder_mnist.py)"
ROWS = ("VAE", "VAE+BN+WU", "LVAE+BN+WU")
PAPER_NLL = {"LVAE+BN+WU": 81.74}  # Sønderby et al. 2016, Table 1 (its best 5-layer model)


def build(row, seed):
    import tfvae

    if row == "LVAE+BN+WU":
        return tfvae.LadderVAE((28, 28, 1), seed=seed)
    return tfvae.HierarchicalVAE((28, 28, 1), tfvae.models.ladder.PAPER_LATENT_DIMS,
                                 tfvae.models.ladder.PAPER_HIDDEN_UNITS,
                                 batch_norm=row != "VAE", seed=seed)


def train_and_evaluate(row, args, data, x_test):
    import keras
    import numpy as np

    import tfvae
    from iwae_mnist import EpochTimer

    keras.utils.set_random_seed(args.seed)
    model = build(row, args.seed)
    rate = args.learning_rate
    if args.cosine_decay:  # from the rate to 1 % of it over the run
        rate = keras.optimizers.schedules.CosineDecay(rate, args.epochs * int(data.cardinality()), alpha=0.01)
    model.compile(optimizer=keras.optimizers.Adam(rate))
    timer = EpochTimer()
    callbacks = [timer]
    if row.endswith("WU"):
        callbacks.append(tfvae.callbacks.KLWarmup(args.warmup))
    start = time.perf_counter()
    history = model.fit(data, epochs=args.epochs, verbose=0, callbacks=callbacks)
    train_s = time.perf_counter() - start
    examples = int(data.cardinality()) * args.batch_size
    steady = sorted(timer.times[1:] or timer.times)
    start = time.perf_counter()
    log_px = model.log_likelihood(x_test, args.eval_samples, seed=0)
    eval_s = time.perf_counter() - start
    final = {key: float(values[-1]) for key, values in history.history.items()}
    result = {
        "row": row, "class": type(model).__name__, "batch_norm": model.batch_norm,
        "warmup_epochs": args.warmup if row.endswith("WU") else 0,
        "test_nll": float(-np.mean(log_px)), "test_nll_standard_error": float(np.std(log_px) / np.sqrt(len(log_px))),
        "active_units": tfvae.evaluation.active_units_per_layer(model, x_test),
        "latent_dims": list(model.latent_dims),
        "final": final, "layer_kl": [final[f"kl_{i + 1}"] for i in range(model.num_layers)],
        "train_s": train_s, "eval_s": eval_s,
        "examples_per_s": examples / steady[len(steady) // 2],
        "best_examples_per_s": examples / steady[0],
        "kl_history": {f"kl_{i + 1}": history.history[f"kl_{i + 1}"] for i in range(model.num_layers)},
    }
    print(f"{row}: test NLL {result['test_nll']:.2f} ± {result['test_nll_standard_error']:.2f} nats, "
          f"active units {result['active_units']} of {result['latent_dims']}, layer KL "
          f"{[round(v, 2) for v in result['layer_kl']]}, {result['examples_per_s']:.0f} ex/s, "
          f"train {train_s:.0f} s, eval {eval_s:.0f} s", flush=True)
    return result


def training_images_with_test_rest(name, train_split, test_split, a):
    """The training images and the test images after the first ``a.test_examples``, shuffled
    and dynamically binarized every epoch (seeded), in batches of ``a.batch_size``."""
    import numpy as np
    import tensorflow as tf

    import tfvae

    x_train, _ = tfvae.datasets.load_arrays(name, train_split)
    x_rest, _ = tfvae.datasets.load_arrays(name, test_split, skip=a.test_examples)
    x = np.concatenate([x_train, x_rest])
    ds = tf.data.Dataset.from_tensor_slices(x).cache().shuffle(len(x), seed=a.seed)
    ds = ds.batch(a.batch_size, drop_remainder=True)
    return ds.map(lambda b: tfvae.datasets.binarize_dynamic(b)).prefetch(tf.data.AUTOTUNE)


def claims(rows):
    by = {r["row"]: r for r in rows}
    lvae = by.get("LVAE+BN+WU")
    out = []
    if lvae is None:
        return out
    for base in ("VAE", "VAE+BN+WU"):
        if base not in by:
            continue
        upper = sum(lvae["active_units"][2:]), sum(by[base]["active_units"][2:])
        out.append({"claim": f"LVAE+BN+WU keeps more units active in layers 3-5 than {base}",
                    "values": f"{upper[0]} vs {upper[1]}", "holds": upper[0] > upper[1]})
        nll = lvae["test_nll"], by[base]["test_nll"]
        out.append({"claim": f"LVAE+BN+WU reaches a lower test NLL than {base}",
                    "values": f"{nll[0]:.2f} vs {nll[1]:.2f} nats", "holds": nll[0] < nll[1]})
    return out


def section(results):
    a = results["settings"]
    lines = [f"## {SECTION_TITLE}", "",
             f"{results['date']}, `python3 benchmarks/ladder_mnist.py{''.join(' ' + x for x in results['argv'])}`, "
             f"{results['total_s'] / 60:.0f} min. Real MNIST: {a['train_examples']} training images "
             + ("(the training images and the test images after the held-out ones; " if a.get("more_data") else "(")
             + "dynamic binarization), "
             f"the first {a['test_examples']} test images (binarized once). "
             f"Five stochastic layers 64-32-16-8-4, blocks of two 512-256-128-64-32-unit layers; "
             f"{a['epochs']} epochs of batch {a['batch_size']}, Adam({a['learning_rate']}); warm-up "
             f"(WU) raises β from 0 to 1 over the first {a['warmup']} epochs. Test NLL with "
             f"k = {a['eval_samples']} importance samples (batch norm in inference mode); active "
             "units Cov_x(E_q[u]) > 10⁻² per layer, bottom first.", "",
             "| model | test NLL (nats) | active units per layer | KL per layer at the end (nats) | "
             "examples/s | paper NLL (full budget) |", "|---|---|---|---|---|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['row']} | {r['test_nll']:.2f} ± {r['test_nll_standard_error']:.2f} | "
                     f"{r['active_units']} of {r['latent_dims']} | "
                     f"{', '.join(f'{v:.2f}' for v in r['layer_kl'])} | {r['examples_per_s']:.0f} | "
                     f"{PAPER_NLL.get(r['row'], '—')} |")
    lines += ["", "| claim (Sønderby et al. 2016) | values | holds |", "|---|---|---|"]
    lines += [f"| {c['claim']} | {c['values']} | {'yes' if c['holds'] else 'NO'} |" for c in results["claims"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20, help="KL warm-up epochs of the +WU rows (the paper: 10 %% of training)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--cosine-decay", action="store_true", help="decay Adam's rate to 1 %% of it over the run")
    p.add_argument("--test-examples", type=int, default=2000)
    p.add_argument("--more-data", action="store_true",
                   help="also train on the test images after the first --test-examples (13,000 training "
                        "images with ../shared's 5k; the evaluation images are never trained on)")
    p.add_argument("--eval-samples", type=int, default=5000)
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="2 epochs, 100 test images, k=100; writes to /tmp")
    p.add_argument("--out-dir", type=Path, help="where results.md and ladder_mnist_results.json go "
                   "(default docs/, or /tmp/ladder_smoke with --smoke)")
    a = p.parse_args(argv)
    if a.smoke:
        a.epochs, a.warmup, a.test_examples, a.eval_samples = 2, 1, 100, 100
    out_dir = a.out_dir or (Path("/tmp/ladder_smoke") if a.smoke else ROOT / "docs")
    sys.path.insert(0, str(HERE))
    import tfvae
    from aae_mnist import replace_section

    if (a.data / "train5k-images-idx3-ubyte.gz").exists():
        name, train_split, test_split = str(a.data), "train5k", "t10k"
    else:
        print(f"{a.data} not found: using the bundled sample (figures not comparable)", flush=True)
        name, train_split, test_split = "sample", "train", "test"
    if a.more_data:
        data = training_images_with_test_rest(name, train_split, test_split, a)
    else:
        data = tfvae.datasets.load(name, train_split, batch_size=a.batch_size, binarize="dynamic",
                                   seed=a.seed, drop_remainder=True)
    x_test, _ = tfvae.datasets.load_arrays(name, test_split, binarize="static", seed=0,
                                           take=a.test_examples)
    start = time.perf_counter()
    rows = [train_and_evaluate(row, a, data, x_test) for row in a.rows]
    results = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "argv": sys.argv[1:] if argv is None else list(argv),
               "settings": {"epochs": a.epochs, "warmup": a.warmup, "batch_size": a.batch_size,
                            "learning_rate": a.learning_rate, "cosine_decay": a.cosine_decay, "test_examples": len(x_test),
                            "more_data": a.more_data,
                            "train_examples": int(data.cardinality()) * a.batch_size,
                            "eval_samples": a.eval_samples, "seed": a.seed, "data": name},
               "rows": rows, "claims": claims(rows), "total_s": time.perf_counter() - start}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ladder_mnist_results.json").write_text(json.dumps(results, indent=2) + "\n")
    md_path = out_dir / "results.md"
    text = md_path.read_text() if md_path.exists() else ""
    md_path.write_text(replace_section(text, SECTION_TITLE, section(results)))
    print(section(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
