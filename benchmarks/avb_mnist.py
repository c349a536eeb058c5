"""Adversarial Variational Bayes (Mescheder et al. 2017) against the VAE on real MNIST: test NLL by
annealed importance sampling (AIS) for VAE, AVB and AVB with adaptive contrast, trained with the
same decoder, latent size and budget; the VAE's AIS figure next to its importance-sampled one.

    python3 benchmarks/avb_mnist.py                    # ~25 min on 2 idle cores -> docs/
    python3 benchmarks/avb_mnist.py --smoke            # < 90 s (-> /tmp/avb_mnist_smoke)
    python3 benchmarks/avb_mnist.py --epochs 3 --ais-steps 100 --ais-examples 50 --out-dir /tmp/avb

Models (one seed, the same data order and budget; `tfvae.VAE`, `tfvae.AVB`):

* decoder (all three): an MLP of two 300-unit ELU layers from z (8 units by default) to the 784
  Bernoulli logits; prior N(0, I);
* VAE: a Gaussian encoder, the same MLP shape on x, analytic KL, Adam(1e-3) (Keras' defaults);
* AVB: the encoder is the same MLP on concat(x, ε), ε ~ N(0, I) of `--noise-dim` (32) units, a
  black-box q(z|x); T(x, z) an MLP of three 300-unit ELU layers on concat(x, z) (plus the explicit
  −log p(z) term of the model); one T update per step; Adam(1e-3, β1 = 0.5) for both (the
  authors' β1; `--avb-learning-rate`);
* AVB+AC: AVB with `adaptive_contrast=True` (r(z|x) a Gaussian with the moments of
  `--contrast-samples` (8) draws of q per example; T sees z̃ = (z − μ)/σ).

Data: ../shared/data/mnist, the 5k training images (train5k, shuffled, dynamically binarized:
redrawn every epoch), 100 epochs of batch 100; the first `--ais-examples` (200) test images
(t10k), binarized once with seed 0.

Measured on those test images: the AIS log p(x) of each model (`tfvae.evaluation.
ais_log_likelihood`: `--ais-steps` (1000) transitions on a sigmoid schedule, `--ais-chains` (8)
chains per image, HMC with 10 leapfrog steps, per-dimension steps scaled by the posterior's σ and adapted
toward 65 % acceptance), its seconds, the mean acceptance and the chains' standard error; the
VAE's importance-sampled log p(x) at k = 5000 (`model.log_likelihood`), with the paired difference
to its AIS figure and that difference's standard error over the images; the ELBO (the VAE's, a
bound; AVB's through T, an *estimate* that is no bound). Samples and reconstructions of each
model in docs/figures/avb_mnist_samples.png and avb_mnist_reconstructions.png.

Writes docs/avb_mnist_results.json, the figures, and the section "AVB on MNIST (benchmarks/
avb_mnist.py)" of docs/results.md (the other sections are kept).
"""
import argparse
import datetime
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist"
SECTION_TITLE = "AVB on MNIST (benchmarks/avb_mnist.py)"
ROWS = ("VAE", "AVB", "AVB+AC")
#: The full run. Budget choices (2 CPU cores, about 20-25 min): AIS dominates (about 2.5e-4 CPU s
#: per step per chain and image with this decoder: 0.4 CPU s per step for 200 images x 8 chains),
#: so 8 chains per image (the authors use 5-8) on 200 images rather than 16; adaptive contrast from 8 draws of q per image (16 cost 2.9x the training
#: time for the same ELBO and AIS NLL after 10 epochs in a trial); AVB at Adam(1e-3, beta_1 0.5),
#: which after 10 epochs reached an AIS NLL of 131.9 against 143.7 at 3e-4 (VAE: 128.0).
FULL = dict(epochs=100, batch_size=100, latent_dim=8, noise_dim=32, hidden=[300, 300],
            discriminator_hidden=[300, 300, 300], activation="elu", vae_learning_rate=1e-3,
            avb_learning_rate=1e-3, avb_beta_1=0.5, contrast_samples=8, discriminator_steps=1,
            train_examples=None, ais_examples=200, ais_steps=1000, ais_chains=8, ais_leapfrog=10,
            ais_step_size=0.1, ais_schedule="sigmoid", ais_batch=100, is_samples=5000, figure_images=16)
SMOKE = dict(FULL, epochs=2, train_examples=300, ais_examples=10, ais_steps=20, ais_chains=2,
             is_samples=500, figure_images=8)
#: The agreement test of AIS and IS on the VAE: |mean difference| within this many standard errors.
AGREEMENT_SE = 3.0


# ----------------------------------------------------------------------------- pure helpers
def chain_standard_errors(log_weights):
    """Per-example standard error `[N]` (nats) of AIS's log mean_c exp(log w_c) from the spread of
    the chains' weights `[C, N]` (delta method: sd(w) / (sqrt(C) mean(w))), and the effective
    sample size `[N]` of the normalized weights, (Σw)² / Σw²."""
    log_weights = np.asarray(log_weights, np.float64)
    w = np.exp(log_weights - log_weights.max(axis=0, keepdims=True))
    chains = w.shape[0]
    mean = w.mean(axis=0)
    sd = w.std(axis=0, ddof=1) if chains > 1 else np.zeros_like(mean)
    ess = w.sum(axis=0) ** 2 / np.sum(w ** 2, axis=0)
    return sd / (math.sqrt(chains) * mean), ess


def paired_difference(a, b):
    """(mean of a − b, its standard error over the examples: sd(a − b) / sqrt(N))."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    return float(d.mean()), se


def claims(rows, vae_is):
    """The claims table: AIS on the VAE agrees with IS (k = 5000) within `AGREEMENT_SE` standard
    errors of the paired differences; AVB and AVB+AC against the VAE by AIS NLL; AVB's
    T-estimated ELBO against its AIS log p(x) (a bound would lie below it)."""
    by = {r["row"]: r for r in rows}
    out = []
    vae = by.get("VAE")
    if vae is not None and vae_is is not None:
        diff, se = vae_is["ais_minus_is"], vae_is["ais_minus_is_se"]
        out.append({"claim": f"AIS on the VAE agrees with its IS NLL at k = {vae_is['samples']} "
                             f"(AIS − IS within ±{AGREEMENT_SE:g} standard errors of the paired differences)",
                    "values": f"NLL {vae['ais_nll']:.2f} (AIS) vs {vae_is['nll']:.2f} (IS): "
                              f"log p difference {diff:+.3f} ± {se:.3f} nats",
                    "holds": bool(abs(diff) <= AGREEMENT_SE * se)})
    for name in ("AVB+AC", "AVB"):
        if name in by and vae is not None:
            mine, theirs = by[name]["ais_nll"], vae["ais_nll"]
            diff, se = paired_difference(vae["ais_log_px"], by[name]["ais_log_px"])
            out.append({"claim": f"{name} reaches a lower AIS test NLL than the VAE (Mescheder et al. "
                                 "2017 report AVB+AC better than the VAE)" if name == "AVB+AC" else
                                 f"{name} reaches a lower AIS test NLL than the VAE",
                        "values": f"{mine:.2f} vs {theirs:.2f} nats (paired difference "
                                  f"{mine - theirs:+.2f} ± {se:.2f})",
                        "holds": bool(mine < theirs)})
    for name in ("AVB", "AVB+AC"):
        if name in by:
            r = by[name]
            out.append({"claim": f"{name}'s T-estimated ELBO lies below its AIS log p(x), as a bound "
                                 "would (it is an estimate, not a bound)",
                        "values": f"{r['elbo']:.2f} vs {-r['ais_nll']:.2f} nats",
                        "holds": bool(r["elbo"] <= -r["ais_nll"])})
    return out


def estimate_seconds(rows, full, key="s_per_example", train_examples=5000):
    """Seconds of the trainings and AIS runs of a run at the budget `full` (epochs, ais_steps,
    ais_examples, ais_chains) from the rates that `rows` measured: wall seconds with
    key="s_per_example" (steady epochs; AIS per step per chain and image), CPU seconds with
    "cpu_s_per_example"."""
    ais_key = key.replace("per_example", "per_step_chain_example")
    total = 0.0
    for r in rows:
        total += r["train"][key] * train_examples * full["epochs"]
        total += r["ais"][ais_key] * full["ais_steps"] * full["ais_examples"] * full["ais_chains"]
    return total


# ----------------------------------------------------------------------------- models
def build(row, s, seed):
    import keras

    import tfvae

    keras.utils.set_random_seed(seed)
    mlp = lambda units: tfvae.networks.mlp(units, activation=s["activation"])  # noqa: E731
    if row == "VAE":
        model = tfvae.VAE((28, 28, 1), s["latent_dim"], encoder=mlp(s["hidden"]), decoder=mlp(s["hidden"]),
                          seed=seed)
        model.compile(optimizer=keras.optimizers.Adam(s["vae_learning_rate"]))
        return model
    model = tfvae.AVB((28, 28, 1), s["latent_dim"], encoder=mlp(s["hidden"]), decoder=mlp(s["hidden"]),
                      discriminator=mlp(s["discriminator_hidden"]), noise_dim=s["noise_dim"],
                      adaptive_contrast=row == "AVB+AC", contrast_samples=s["contrast_samples"],
                      discriminator_steps=s["discriminator_steps"], seed=seed)
    adam = lambda: keras.optimizers.Adam(s["avb_learning_rate"], beta_1=s["avb_beta_1"])  # noqa: E731
    model.compile(optimizer=adam(), discriminator_optimizer=adam())
    return model


def test_elbo(model, x, batch=100):
    """Per-example ELBO `[N]` by the model's own objective on x (fixed seeds, inference mode):
    the VAE's bound (analytic KL, one draw), AVB's T estimate."""
    import tensorflow as tf

    values = []
    for i, start in enumerate(range(0, len(x), batch)):
        _, logs = model.compute_losses(tf.constant(x[start:start + batch]), seed=tf.constant([7, i]),
                                       training=False)
        values.append(np.asarray(logs["elbo"]))
    return np.concatenate(values)


def train_and_evaluate(row, s, data, seed):
    import tfvae
    from vqvae_mnist import timed_fit, training_stream

    model = build(row, s, seed)
    stream = training_stream(data["x_train"], s, seed)
    examples = (len(data["x_train"]) // s["batch_size"]) * s["batch_size"]
    history, train = timed_fit(model, stream, s["epochs"], examples, shuffle=False)  # the stream shuffles
    train["final"] = {k: float(v[-1]) for k, v in history.history.items()}
    print(f"{row}: {s['epochs']} epochs in {train['seconds']:.0f} s (steady epoch {train['steady_epoch_s']:.2f} s, "
          f"{train['examples_per_s']:.0f} ex/s); last epoch " +
          ", ".join(f"{k} {v:.3f}" for k, v in train["final"].items()), flush=True)

    x = data["x_ais"]
    cpu_start = time.process_time()
    ais = tfvae.evaluation.ais_log_likelihood(
        model, x, num_steps=s["ais_steps"], num_chains=s["ais_chains"], step_size=s["ais_step_size"],
        num_leapfrog_steps=s["ais_leapfrog"], schedule=s["ais_schedule"], batch_size=s["ais_batch"],
        seed=seed, return_diagnostics=True)
    ais_cpu = time.process_time() - cpu_start
    chain_se, ess = chain_standard_errors(ais.log_weights)
    batches = math.ceil(len(x) / min(s["ais_batch"], len(x)))
    padded = batches * min(s["ais_batch"], len(x))
    log_px = np.asarray(ais.log_likelihood, np.float64)
    elbo = test_elbo(model, x)
    result = {
        "row": row, "class": type(model).__name__, "train": train,
        "ais_log_px": log_px.tolist(), "ais_nll": float(-log_px.mean()),
        "ais_nll_se": float(log_px.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan"),
        "ais_chain_se": float(math.sqrt(np.sum(chain_se ** 2)) / len(x)),
        "ais_chain_se_per_example_median": float(np.median(chain_se)),
        "ais_ess_median": float(np.median(ess)),
        "ais": {"seconds": float(ais.seconds), "acceptance": float(np.mean(ais.acceptance_rate)),
                "s_per_step": float(ais.seconds / (s["ais_steps"] * batches)),
                "cpu_seconds": ais_cpu,
                "s_per_step_chain_example": float(ais.seconds / (s["ais_steps"] * padded * s["ais_chains"])),
                "cpu_s_per_step_chain_example": float(ais_cpu / (s["ais_steps"] * padded * s["ais_chains"]))},
        "elbo": float(elbo.mean()), "elbo_is_estimate": row != "VAE",
    }
    print(f"{row}: AIS NLL {result['ais_nll']:.2f} ± {result['ais_nll_se']:.2f} (images) ± "
          f"{result['ais_chain_se']:.3f} (chains) nats on {len(x)} test images; {s['ais_steps']} steps × "
          f"{s['ais_chains']} chains × {s['ais_leapfrog']} leapfrog, {s['ais_schedule']} schedule: "
          f"{ais.seconds:.1f} s ({result['ais']['s_per_step']:.4f} s per step of {min(s['ais_batch'], len(x))} "
          f"images), acceptance {result['ais']['acceptance']:.2f}, median ESS {result['ais_ess_median']:.1f} "
          f"of {s['ais_chains']}; ELBO {'(T estimate) ' if row != 'VAE' else ''}{result['elbo']:.2f}", flush=True)
    return model, result


def vae_importance_sampling(model, x, s, ais_log_px, seed):
    start = time.perf_counter()
    log_px = np.asarray(model.log_likelihood(x, s["is_samples"], seed=seed), np.float64)
    seconds = time.perf_counter() - start
    diff, se = paired_difference(ais_log_px, log_px)
    out = {"samples": s["is_samples"], "log_px": log_px.tolist(), "nll": float(-log_px.mean()),
           "nll_se": float(log_px.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan"),
           "seconds": seconds, "ais_minus_is": diff, "ais_minus_is_se": se}
    print(f"VAE: IS NLL (k = {s['is_samples']}) {out['nll']:.2f} ± {out['nll_se']:.2f} nats in {seconds:.1f} s; "
          f"AIS − IS log p(x): {diff:+.3f} ± {se:.3f} nats (paired over {len(x)} images)", flush=True)
    return out


def save_figures(models, data, s, out_dir, seed):
    """Samples of each model side by side (8×8 each, left to right in ROWS order) and
    reconstructions (rows: the binarized test input, then each model's decode(encode(x)))."""
    import tfvae

    grids = [tfvae.plotting.image_grid(np.asarray(models[r].sample(64, seed=seed)), columns=8) for r in ROWS]
    gap = np.full((grids[0].shape[0], 12), 255.0)
    samples = np.concatenate([g if i == 0 else np.concatenate([gap, g], axis=1) for i, g in enumerate(grids)], axis=1)
    x = data["x_ais"][:s["figure_images"]]
    rows = [x] + [np.asarray(models[r].reconstruct(x)) for r in ROWS]
    recon = tfvae.plotting.image_grid(np.concatenate(rows), columns=len(x))
    figures = {"samples": "figures/avb_mnist_samples.png", "reconstructions": "figures/avb_mnist_reconstructions.png"}
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    tfvae.plotting.save_png(samples, out_dir / figures["samples"])
    tfvae.plotting.save_png(recon, out_dir / figures["reconstructions"])
    return figures


# ----------------------------------------------------------------------------- report
def section(results):
    from vqvae_mnist import table

    s, m = results["settings"], results.get("machine", {})
    by = {r["row"]: r for r in results["rows"]}
    lines = [f"## {SECTION_TITLE}", "",
             f"{results['date']}, `python3 benchmarks/avb_mnist.py{''.join(' ' + a for a in results['argv'])}`"
             + (" (SMOKE MODE: tiny sizes, checks the script only)" if s["smoke"] else "")
             + f", {results['total_s'] / 60:.1f} min; {m.get('cpu_model', '?')}, {m.get('cpu_affinity', '?')} cores, "
             f"load average {m.get('load_avg_1m') or 0:.2f} at the start; TensorFlow {m.get('tensorflow', '?')}, "
             f"Keras {m.get('keras', '?')}.", "",
             f"Real MNIST (`{s['data']}`): {s['train_examples_used']} training images (train5k, shuffled, "
             f"dynamically binarized), the first {s['ais_examples']} test images (t10k, binarized once, seed 0). "
             f"Every model: latent size {s['latent_dim']}, prior N(0, I), Bernoulli decoder `mlp({s['hidden']}, "
             f"{s['activation']})`, {s['epochs']} epochs of batch {s['batch_size']} "
             f"({s['epochs'] * (s['train_examples_used'] // s['batch_size'])} steps), seed {s['seed']}. "
             f"VAE: Gaussian encoder `mlp({s['hidden']})` on x, analytic KL, Adam({s['vae_learning_rate']}). "
             f"AVB: encoder `mlp({s['hidden']})` on concat(x, ε), ε ~ N(0, I_{s['noise_dim']}); T "
             f"`mlp({s['discriminator_hidden']}, {s['activation']})` on concat(x, z) minus log p(z) "
             f"(with AC: on z̃ = (z − μ)/σ, minus log N(z̃; 0, I)), {s['discriminator_steps']} T update per "
             "step; "
             f"Adam({s['avb_learning_rate']}, β1 = {s['avb_beta_1']}) for both. AVB+AC: adaptive contrast, "
             f"the moments of {s['contrast_samples']} draws of q per image.", "",
             f"AIS (`tfvae.evaluation.ais_log_likelihood`): {s['ais_steps']} steps, {s['ais_schedule']} schedule, "
             f"{s['ais_chains']} chains per image, HMC with {s['ais_leapfrog']} leapfrog steps, step "
             f"{s['ais_step_size']} × σ^β per dimension (σ: the VAE's q, AVB's sample moments), adapted toward "
             f"65 % acceptance; {s['ais_batch']} images per batch. ± (images): the standard error of the mean "
             "over the test images; ± (chains): the AIS noise of that mean, from the spread of the chains' "
             "weights. The AVB rows' ELBO is T's *estimate*, not a bound.", ""]
    rows = []
    vae_is = results.get("vae_is")
    for r in results["rows"]:
        rows.append([r["row"], f"{r['ais_nll']:.2f} ± {r['ais_nll_se']:.2f} ± {r['ais_chain_se']:.3f}",
                     f"{vae_is['nll']:.2f} ± {vae_is['nll_se']:.2f}" if r["row"] == "VAE" and vae_is
                     else "— (no density)",
                     f"{-r['elbo']:.2f}" + (" (T estimate)" if r["elbo_is_estimate"] else " (bound)"),
                     f"{r['train']['final'].get('reconstruction', float('nan')):.2f}",
                     f"{r['ais']['acceptance']:.2f}", f"{r['ais_ess_median']:.1f}",
                     f"{r['train']['seconds']:.0f} ({r['train']['steady_epoch_s']:.2f}/epoch)",
                     f"{r['ais']['seconds']:.0f}"])
    lines += table(["model", "AIS test NLL (nats) ± images ± chains",
                    f"IS test NLL, k = {s['is_samples']}", "−ELBO on the same images",
                    "train −log p(x\\|z), last epoch", "AIS acceptance", "AIS median ESS",
                    "train s (steady s/epoch)", "AIS s"], rows) + [""]
    if vae_is:
        lines += [f"VAE, AIS against importance sampling on the same {s['ais_examples']} images: log p(x) "
                  f"AIS − IS = {vae_is['ais_minus_is']:+.3f} ± {vae_is['ais_minus_is_se']:.3f} nats (the standard "
                  f"error of the paired per-image differences); IS took {vae_is['seconds']:.0f} s.", ""]
    figs = results.get("figures")
    if figs:
        lines += [f"Samples (E[x|z], z ~ p(z); left to right: {', '.join(ROWS)}) and test reconstructions "
                  f"(rows: binarized input, then {', '.join(ROWS)}; decode(encode(x)), AVB's encode a mean "
                  "over 64 draws of q).", "",
                  f"![AVB on MNIST: samples]({figs['samples']})", "",
                  f"![AVB on MNIST: reconstructions]({figs['reconstructions']})", ""]
    lines += ["### Claims", ""]
    lines += table(["claim", "values", "holds"],
                   [[c["claim"], c["values"], "yes" if c["holds"] else "NO"] for c in results["claims"]])
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the MNIST IDX files")
    p.add_argument("--epochs", type=int, help=f"training epochs of every model (default {FULL['epochs']}, "
                   f"smoke {SMOKE['epochs']})")
    p.add_argument("--latent-dim", type=int, help=f"default {FULL['latent_dim']}")
    p.add_argument("--noise-dim", type=int, help=f"AVB's ε (default {FULL['noise_dim']})")
    p.add_argument("--avb-learning-rate", type=float, help=f"default {FULL['avb_learning_rate']}")
    p.add_argument("--contrast-samples", type=int, help=f"AVB+AC's draws of q per image for the contrast's "
                   f"moments (default {FULL['contrast_samples']})")
    p.add_argument("--ais-steps", type=int, help=f"default {FULL['ais_steps']} (smoke {SMOKE['ais_steps']})")
    p.add_argument("--ais-chains", type=int, help=f"default {FULL['ais_chains']} (smoke {SMOKE['ais_chains']})")
    p.add_argument("--ais-examples", type=int, help=f"test images evaluated (default {FULL['ais_examples']}, "
                   f"smoke {SMOKE['ais_examples']})")
    p.add_argument("--is-samples", type=int, help=f"the VAE's importance samples (default {FULL['is_samples']})")
    p.add_argument("--train-examples", type=int, help="use the first N training images after shuffling "
                   "(default all 5,000; smoke 300)")
    p.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="2 epochs on 300 images, AIS 20 steps × 2 chains on 10 "
                   "images, IS k = 500 (checks the script); writes to /tmp/avb_mnist_smoke")
    p.add_argument("--out-dir", type=Path, help="where results.md, avb_mnist_results.json and figures/ go "
                   "(default docs/, or /tmp/avb_mnist_smoke with --smoke)")
    a = p.parse_args(argv)
    s = dict(SMOKE if a.smoke else FULL, seed=a.seed, smoke=a.smoke)
    for key in ("epochs", "latent_dim", "noise_dim", "avb_learning_rate", "contrast_samples", "ais_steps", "ais_chains",
                "ais_examples", "is_samples", "train_examples"):
        if getattr(a, key) is not None:
            s[key] = getattr(a, key)
    if not (a.data / "train5k-images-idx3-ubyte.gz").exists():
        p.error(f"real MNIST not found: no train5k-images-idx3-ubyte.gz in {a.data} (../shared/data beside the repo)")
    out_dir = a.out_dir or (Path("/tmp/avb_mnist_smoke") if a.smoke else ROOT / "docs")
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    from aae_mnist import replace_section
    from roofline import machine_description
    from vqvae_mnist import load_dataset

    start = time.perf_counter()
    machine = machine_description()
    data = load_dataset("mnist", a.data, {"train_examples": s["train_examples"], "test_examples": s["ais_examples"]},
                        a.seed)
    data["x_ais"] = data["x_test_bin"]
    shown = a.data.resolve()
    s["data"] = f"../{shown.relative_to(ROOT.parent)}" if shown.is_relative_to(ROOT.parent) else str(a.data)
    s["train_examples_used"] = len(data["x_train"])
    print(f"AVB benchmark{' (SMOKE MODE)' if a.smoke else ''}: {', '.join(a.rows)}; latent {s['latent_dim']}, "
          f"{s['epochs']} epochs of batch {s['batch_size']} on {len(data['x_train'])} images; AIS {s['ais_steps']} "
          f"steps × {s['ais_chains']} chains × {s['ais_leapfrog']} leapfrog ({s['ais_schedule']} schedule) on "
          f"{len(data['x_ais'])} test images; IS k = {s['is_samples']}; {machine['cpu_affinity']} cores, load "
          f"{machine['load_avg_1m']:.2f}; output {out_dir}", flush=True)
    models, rows, vae_is = {}, [], None
    for row in a.rows:
        models[row], result = train_and_evaluate(row, s, data, a.seed)
        rows.append(result)
        if row == "VAE":
            vae_is = vae_importance_sampling(models[row], data["x_ais"], s, result["ais_log_px"], a.seed)
    figures = save_figures(models, data, s, out_dir, a.seed) if set(a.rows) == set(ROWS) else None
    results = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "argv": sys.argv[1:] if argv is None else list(argv), "settings": s, "machine": machine,
               "rows": rows, "vae_is": vae_is, "figures": figures, "claims": claims(rows, vae_is),
               "total_s": time.perf_counter() - start}
    (out_dir / "avb_mnist_results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    md_path = out_dir / "results.md"
    text = md_path.read_text() if md_path.exists() else ""
    md_path.write_text(replace_section(text, SECTION_TITLE, section(results)))
    print(section(results))
    for c in results["claims"]:
        print(f"CLAIM {'holds' if c['holds'] else 'FAILS'}: {c['claim']}: {c['values']}")
    if a.smoke:  # tiny batches: per-step overhead, not the full run's rates
        print(f"wrote {md_path} (section '{SECTION_TITLE}'), {out_dir / 'avb_mnist_results.json'}, "
              f"{out_dir / 'figures'}")
        return 0
    wall, cpu = (estimate_seconds(rows, FULL, key) for key in ("s_per_example", "cpu_s_per_example"))
    print(f"estimated trainings and AIS of a full run ({FULL['epochs']} epochs on 5,000 images, AIS "
          f"{FULL['ais_steps']} steps × {FULL['ais_chains']} chains on {FULL['ais_examples']} images; "
          f"{', '.join(a.rows)}) from this run's steady epochs and AIS seconds per step per chain and image: "
          f"{wall / 60:.1f} min of wall time at this load (1-min load average {os.getloadavg()[0]:.2f} now, "
          f"{machine['load_avg_1m']:.2f} at the start), {cpu / 60:.1f} min of CPU time (on "
          f"{machine['cpu_affinity']} otherwise idle cores: between {cpu / 60 / machine['cpu_affinity']:.1f} "
          f"and {cpu / 60:.1f} min). Add IS, start-up and tracing: a few minutes.", flush=True)
    print(f"wrote {md_path} (section '{SECTION_TITLE}'), {out_dir / 'avb_mnist_results.json'}, {out_dir / 'figures'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
