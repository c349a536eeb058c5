"""Implicit autoencoders on the mixtures of Gaussians (Makhzani 2018): mode coverage of an IAE
against a GAN of the same sizes and budget.

    python3 benchmarks/iae_modes.py            # ~6 min on 2 cores (more under load) -> docs/
    python3 benchmarks/iae_modes.py --smoke    # tiny budgets, < 1 min: checks the script (-> /tmp/iae_modes_smoke)

Data (`tfvae.datasets.gaussian_mixture_2d`): the 5x5 grid of 25 Gaussians at {-4, -2, 0, 2, 4}^2
with std 0.05, and the ring of 8 Gaussians of radius 2 with std 0.02. Each model trains on
100,000 draws of the mixture divided by one scalar, their overall std (unit variance; samples
are multiplied back before they are scored), with `output_activation="linear"`.

Two models with the same budget and the same networks (MLPs of `hidden` units: ReLU for the
generator / decoder, leaky ReLU for the encoder and every discriminator), the same steps, batch,
Adam settings for every optimizer, instance noise and seed:

* GAN: `tfvae.GAN((2,), noise_dim)` with noise_dim = global_dim + local_dim, so its generator is
  the IAE's decoder network on an input of the same size;
* IAE: `tfvae.ImplicitAutoencoder((2,), global_dim, local_dim, posterior="gaussian",
  min_posterior_scale=0.3, mean_reconstruction_weight=0)`: encoder, decoder g(z, n), D_rec on
  (x, z) pairs and D_reg on z, N(0, I) prior, the paper's purely adversarial reconstruction.

Each draws `samples` points (`model.sample(n, seed)`), scored by `tfvae.evaluation.mode_coverage`:
a mode is covered when at least 1 % of the samples lie within 3 std of its centre; a sample is of
high quality when it lies within 3 std of some centre (the data themselves: 1 - exp(-4.5) = 98.9 %).

Tuning trials (seed 0, grid unless said; the other settings as above):

* instance noise 0.1 (in standardized units: 0.28 raw, twice the 3-std radius) blurred both
  models (4,000 steps: GAN 5/25 with 0.02, 8/25 with 0, IAE 0/25): none here;
* the deterministic encoder reconstructs into the input's mode (100 % after 1,000 steps), but its
  q(z) is 25 tight clumps, one per mode, laid out like N(0, I); D_reg, an MLP, does not resolve
  them (about 50 % accuracy), so prior draws land between the clumps, where the decoder is never
  trained: 0/25 and 0/8 at 4,000-8,000 steps, also with D at 5x the learning rate, ELU
  discriminators, unstandardized data or a 10x input scale in the encoder. A Gaussian posterior
  with the default floor (1e-4) shrinks to the same clumps; at learning rate 1e-3 it ignored the
  code (reconstructions in the input's mode 4 %) and worked as a GAN (16/25);
* a Gaussian posterior with std >= 0.3 makes q(z) smooth enough for D_reg: the ring 8/8 at 6,000
  and 8,000 steps (81 % and 72 % high quality); the grid stays far behind the GAN at this budget
  (floor 0.3: 2/25 at 6,000; 0.2: 1/25 and 0.1: 2/25 at 12,000; global_dim 4: 0/25;
  mean_reconstruction_weight 1: 6/25 at 12,000 and, with local_dim 8, 11/25 at 16,000);
* a categorical code (30 or 32 clusters): D_reg wins, the softmax saturates on 6-15 clusters, 0-3/25;
* the GAN at 12,000 steps: grid 18/25 from step 6,000 on (75 % high quality), ring 8/8 (94 %).

Writes docs/iae_modes_results.json, docs/figures/iae_modes.png (rows: grid, ring; columns: data,
GAN, IAE) and the section "Implicit autoencoders: mode coverage (benchmarks/iae_modes.py)" of
docs/results.md (other sections kept).
"""
import argparse
import datetime
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECTION_TITLE = "Implicit autoencoders: mode coverage (benchmarks/iae_modes.py)"
FIGURE = "figures/iae_modes.png"
DATASETS = ("grid", "ring")
MODELS = ("GAN", "IAE")
LIMITS = {"grid": 5.5, "ring": 2.8}
#: The fraction of a 2-D Gaussian's mass within 3 std of its mean, 1 - exp(-9/2).
DATA_HIGH_QUALITY = 1.0 - math.exp(-4.5)

FULL = dict(steps=10000, batch_size=256, hidden=[128, 128], global_dim=2, local_dim=2,
            posterior="gaussian", min_posterior_scale=0.3, mean_reconstruction_weight=0.0,
            mismatched_pairs=False, discriminator_noise=0.0, discriminator_steps=1,
            discriminator_activation="leaky_relu", learning_rate=5e-4, discriminator_learning_rate=None,
            beta_1=0.5, standardize=True, train_points=100_000, samples=2500, eval_every=1000,
            min_fraction=0.01, num_std=3.0)
SMOKE = dict(FULL, steps=40, train_points=2000, samples=500, eval_every=20)


# ----------------------------------------------------------------------------- pure helpers
def claims(datasets):
    """The paper's claim per data set: the IAE covers more modes than the GAN (and all of them)."""
    out = []
    for d in datasets:
        by = {r["model"]: r for r in d["rows"]}
        if not {"GAN", "IAE"} <= set(by):
            continue
        gan, iae = by["GAN"]["coverage"], by["IAE"]["coverage"]
        values = (f"{iae['modes_covered']} vs {gan['modes_covered']} of {iae['num_modes']} modes "
                  f"(high quality {iae['high_quality_fraction']:.1%} vs {gan['high_quality_fraction']:.1%})")
        out.append({"claim": f"{d['name']}: the IAE covers more modes than the GAN", "values": values,
                    "holds": iae["modes_covered"] > gan["modes_covered"]})
        out.append({"claim": f"{d['name']}: the IAE covers all {iae['num_modes']} modes",
                    "values": f"{iae['modes_covered']} of {iae['num_modes']}",
                    "holds": iae["modes_covered"] == iae["num_modes"]})
    return out


def by_model(rows):
    """{model: its coverage figures and training seconds}, the summary benchmarks/readme_tables.py reads."""
    return {r["model"]: {**r["coverage"], "train_s": r["train_s"]} for r in rows}


def epochs_of(steps, every):
    """(epochs, steps per epoch): epochs of `every` steps where they divide the steps."""
    return (steps // every, every) if steps % every == 0 and steps >= every else (1, steps)


# ----------------------------------------------------------------------------- models
def build(model_name, s, seed):
    import tfvae

    def mlp(activation):
        return tfvae.networks.mlp(s["hidden"], activation=activation)

    disc = s["discriminator_activation"]
    common = dict(output_activation="linear", discriminator_noise=s["discriminator_noise"],
                  discriminator_steps=s["discriminator_steps"], seed=seed)
    if model_name == "GAN":
        return tfvae.GAN((2,), s["global_dim"] + s["local_dim"], generator=mlp("relu"),
                         discriminator=mlp(disc), **common)
    return tfvae.ImplicitAutoencoder(
        (2,), s["global_dim"], s["local_dim"], encoder=mlp("leaky_relu"), decoder=mlp("relu"),
        reconstruction_discriminator=mlp(disc), regularization_discriminator=mlp(disc),
        posterior=s["posterior"], min_posterior_scale=s["min_posterior_scale"],
        mean_reconstruction_weight=s["mean_reconstruction_weight"], mismatched_pairs=s["mismatched_pairs"], **common)


def compile_model(model, s):
    import keras

    def adam(rate):
        return keras.optimizers.Adam(rate, beta_1=s["beta_1"])

    rate = s["learning_rate"]
    d_rate = s["discriminator_learning_rate"] or rate
    model.compile(optimizer=adam(rate), **{name: adam(d_rate) for name in model.optimizer_names if name != "optimizer"})


def train_and_score(model_name, kind, s, seed):
    import keras
    import tensorflow as tf

    import tfvae

    x, centres, std = tfvae.datasets.gaussian_mixture_2d(kind, s["train_points"], seed=seed)
    scale = float(x.std()) if s["standardize"] else 1.0
    keras.utils.set_random_seed(seed)
    model = build(model_name, s, seed)
    compile_model(model, s)
    data = (tf.data.Dataset.from_tensor_slices(x / scale).shuffle(len(x), seed=seed)
            .repeat().batch(s["batch_size"], drop_remainder=True))
    curve = []

    def score(n, sample_seed):
        points = np.asarray(model.sample(n, seed=sample_seed)) * scale
        return points, tfvae.evaluation.mode_coverage(points, centres, std, min_fraction=s["min_fraction"],
                                                      num_std=s["num_std"])

    class Curve(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            _, c = score(s["samples"], 10_000 + epoch)
            curve.append({"step": (epoch + 1) * per_epoch, "modes_covered": c["modes_covered"],
                          "high_quality_fraction": c["high_quality_fraction"],
                          **{k: float(v) for k, v in (logs or {}).items()}})

    epochs, per_epoch = epochs_of(s["steps"], s["eval_every"])
    start = time.perf_counter()
    model.fit(data, epochs=epochs, steps_per_epoch=per_epoch, verbose=0, callbacks=[Curve()])
    train_s = time.perf_counter() - start
    points, coverage = score(s["samples"], seed)
    result = {"model": model_name, "class": type(model).__name__, "train_s": train_s, "scale": scale,
              "coverage": coverage, "curve": curve,
              "final": {k: v for k, v in curve[-1].items() if k not in ("step",)} if curve else {}}
    print(f"{kind} {model_name}: {s['steps']} steps in {train_s:.0f} s; modes covered "
          f"{coverage['modes_covered']}/{coverage['num_modes']}, high quality "
          f"{coverage['high_quality_fraction']:.1%}; curve (step: modes) "
          + " ".join(f"{c['step']}:{c['modes_covered']}" for c in curve), flush=True)
    return result, points


# ----------------------------------------------------------------------------- figure
def plot(path, panels):
    """Rows: data sets; columns: data, then each model's samples (over the data in grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = len(panels), max(len(p) for p in panels)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.7 * rows), squeeze=False, layout="constrained")
    for r, row in enumerate(panels):
        for c, (title, kind, data, points, centres) in enumerate(row):
            ax = axes[r][c]
            lim = LIMITS[kind]
            ax.scatter(data[:, 0], data[:, 1], s=2, color="0.75", linewidths=0, rasterized=True)
            if points is not None:
                ax.scatter(points[:, 0], points[:, 1], s=2, color="tab:blue", linewidths=0, alpha=0.6,
                           rasterized=True)
            ax.scatter(centres[:, 0], centres[:, 1], s=14, marker="+", color="tab:red", linewidths=0.8)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_title(title, fontsize=9)
    fig.suptitle("Samples (blue) over the data (grey); +: the modes' centres", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


# ----------------------------------------------------------------------------- report
def section(results):
    sys.path.insert(0, str(HERE))
    from vqvae_mnist import table  # the benchmarks' markdown table

    s = results["settings"]
    machine = results.get("machine", {})
    hidden = "×".join(map(str, s["hidden"]))
    lines = [f"## {SECTION_TITLE}", "",
             f"{results['date']}, `python3 benchmarks/iae_modes.py{''.join(' ' + x for x in results['argv'])}`"
             + (" (SMOKE MODE: tiny budgets, checks the script only)" if s["smoke"] else "")
             + f", {results['total_s'] / 60:.1f} min; {machine.get('cpu_model', '?')}, "
             f"{machine.get('cpu_affinity', '?')} cores, load average {machine.get('load_avg_1m', 0):.2f} "
             f"at the start; TensorFlow {machine.get('tensorflow', '?')}, Keras {machine.get('keras', '?')}.", "",
             "Makhzani (2018), the mixture-of-Gaussians experiment: `tfvae.datasets.gaussian_mixture_2d`, the "
             "5×5 grid of 25 Gaussians at {−4, −2, 0, 2, 4}² with std 0.05 and the ring of 8 Gaussians of "
             f"radius 2 with std 0.02; {s['train_points']:,} training points per mixture"
             + (", divided by their overall std (samples mapped back before scoring)" if s["standardize"] else "")
             + ". The same budget for both models: "
             f"{s['steps']} steps of batch {s['batch_size']}, Adam({s['learning_rate']}, β₁ = {s['beta_1']}) for "
             f"every optimizer, seed {s['seed']}, {s['discriminator_steps']} discriminator update(s) per step, "
             + (f"discriminators at Adam({s['discriminator_learning_rate']}), " if s["discriminator_learning_rate"] else "")
             + (f"instance noise of std {s['discriminator_noise']} on every discriminator input"
                if s["discriminator_noise"] else "no instance noise") + "; every network an "
             f"MLP of {hidden} units (ReLU in the generator / decoder, {s['discriminator_activation']} elsewhere), "
             f"linear outputs. GAN: `tfvae.GAN((2,), {s['global_dim'] + s['local_dim']})` (its noise as wide as "
             f"the IAE decoder's input). IAE: `tfvae.ImplicitAutoencoder((2,), {s['global_dim']}, {s['local_dim']}, "
             f"posterior=\"{s['posterior']}\", min_posterior_scale={s['min_posterior_scale']:g}, "
             f"mean_reconstruction_weight={s['mean_reconstruction_weight']:g}"
             + (", mismatched_pairs=True" if s["mismatched_pairs"] else "")
             + f")`, N(0, I) prior. Scores on {s['samples']} samples "
             "(`model.sample(n, seed)`) by `tfvae.evaluation.mode_coverage`: a mode is covered when at least "
             f"{s['min_fraction']:.0%} of the samples lie within {s['num_std']:g} std of its centre; high "
             f"quality: within {s['num_std']:g} std of some centre (the data's own rate is "
             f"{DATA_HIGH_QUALITY:.1%}). The curve column: modes covered every {s['eval_every']} steps. "
             "Why these IAE settings (the deterministic encoder leaves holes in q(z) that D_reg does not see; a "
             "posterior std of at least 0.3 fills them) and the trials behind them: the script's docstring.", ""]
    rows = []
    for d in results["datasets"]:
        for r in d["rows"]:
            c = r["coverage"]
            rows.append([d["name"], r["model"], f"**{c['modes_covered']} / {c['num_modes']}**",
                         f"{c['high_quality_fraction']:.1%}",
                         f"{min(c['per_mode_fraction']):.1%} – {max(c['per_mode_fraction']):.1%}",
                         " ".join(str(p["modes_covered"]) for p in r["curve"]), f"{r['train_s']:.0f}"])
    lines += table(["mixture", "model", "modes covered", "high-quality samples",
                    "per-mode share (min – max)", "modes covered during training", "train s"], rows)
    lines += ["", "Samples over the data (rows: grid, ring; columns: data, GAN, IAE):", "",
              f"![mode coverage: data, GAN and IAE samples on the grid and the ring]({FIGURE})", "",
              "### Claims", ""]
    lines += table(["claim (Makhzani 2018; the issue)", "values", "holds"],
                   [[c["claim"], c["values"], "yes" if c["holds"] else "NO"] for c in results["claims"]])
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, help=f"training steps of every model (default {FULL['steps']})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny budgets, < 1 min; writes to /tmp/iae_modes_smoke")
    p.add_argument("--out", "--out-dir", dest="out", type=Path,
                   help="where results.md, iae_modes_results.json and figures/ go (default docs/, or "
                        "/tmp/iae_modes_smoke with --smoke)")
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--global-dim", type=int)
    p.add_argument("--local-dim", type=int)
    p.add_argument("--posterior", choices=("deterministic", "gaussian"))
    p.add_argument("--min-posterior-scale", type=float, help="the Gaussian posterior's smallest std")
    p.add_argument("--discriminator-noise", type=float)
    p.add_argument("--mean-reconstruction-weight", type=float)
    p.add_argument("--mismatched-pairs", action="store_true")
    p.add_argument("--discriminator-steps", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--discriminator-learning-rate", type=float)
    p.add_argument("--discriminator-activation")
    p.add_argument("--beta-1", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--hidden", type=int, nargs="+")
    p.add_argument("--no-standardize", action="store_true", help="train on the raw coordinates")
    a = p.parse_args(argv)
    # fit() on a tf.data pipeline (shuffled in it) warns that its own shuffle is ignored
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    s = dict(SMOKE if a.smoke else FULL, seed=a.seed, smoke=a.smoke)
    for key in ("steps", "global_dim", "local_dim", "posterior", "min_posterior_scale", "mean_reconstruction_weight", "discriminator_noise", "discriminator_steps",
                "learning_rate", "discriminator_learning_rate", "discriminator_activation", "beta_1", "batch_size", "hidden"):
        if getattr(a, key) is not None:
            s[key] = getattr(a, key)
    if a.mismatched_pairs:
        s["mismatched_pairs"] = True
    if a.no_standardize:
        s["standardize"] = False
    out_dir = a.out or (Path("/tmp/iae_modes_smoke") if a.smoke else ROOT / "docs")
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    import tfvae
    from aae_mnist import replace_section
    from roofline import machine_description

    start = time.perf_counter()
    machine = machine_description()
    print(f"IAE mode coverage{' (SMOKE)' if a.smoke else ''}: {', '.join(a.models)} on {', '.join(a.datasets)}, "
          f"{s['steps']} steps; {machine['cpu_affinity']} cores, load {machine['load_avg_1m']:.2f}; output {out_dir}",
          flush=True)
    datasets, panels = [], []
    for kind in a.datasets:
        shown, centres, std = tfvae.datasets.gaussian_mixture_2d(kind, s["samples"], seed=a.seed + 1)
        data_cov = tfvae.evaluation.mode_coverage(shown, centres, std, min_fraction=s["min_fraction"],
                                                  num_std=s["num_std"])
        name = f"{len(centres)}-Gaussian {kind}"
        row_panels = [(f"data ({name}, std {std:g})\n{data_cov['modes_covered']}/{len(centres)} modes, "
                       f"{data_cov['high_quality_fraction']:.1%} high quality", kind, shown, None, centres)]
        rows = []
        for model_name in a.models:
            result, points = train_and_score(model_name, kind, s, a.seed)
            rows.append(result)
            c = result["coverage"]
            row_panels.append((f"{model_name}: {c['modes_covered']}/{c['num_modes']} modes, "
                               f"{c['high_quality_fraction']:.1%} high quality", kind, shown, points, centres))
        panels.append(row_panels)
        datasets.append({"name": name, "kind": kind, "num_modes": int(len(centres)), "std": std,
                         "centres": centres.tolist(), "data_coverage": data_cov, "rows": rows,
                         "models": by_model(rows)})
    plot(out_dir / FIGURE, panels)
    results = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "argv": sys.argv[1:] if argv is None else list(argv), "settings": s, "machine": machine,
               "datasets": datasets, "figures": {"samples": FIGURE}, "claims": claims(datasets),
               "total_s": time.perf_counter() - start}
    (out_dir / "iae_modes_results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    md_path = out_dir / "results.md"
    text = md_path.read_text() if md_path.exists() else ""
    md_path.write_text(replace_section(text, SECTION_TITLE, section(results)))
    print(section(results))
    for c in results["claims"]:
        print(f"CLAIM {c['claim']}: {c['values']} -> holds {'yes' if c['holds'] else 'no'}")
    print(f"wrote {md_path} (section '{SECTION_TITLE}'), {out_dir / 'iae_modes_results.json'}, "
          f"{out_dir / FIGURE} in {results['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
