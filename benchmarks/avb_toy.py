"""Adversarial Variational Bayes on its toy problems (Mescheder et al. 2017): the four-point data
set (VAE, AVB and AVB with adaptive contrast, exact and AIS log-likelihoods, the posteriors in latent
space) and the neural sampler on a 2-D unnormalized density.

    python3 benchmarks/avb_toy.py              # ~10 min on 2 cores (9.5 at a load average of 5) -> docs/
    python3 benchmarks/avb_toy.py --smoke      # tiny budgets, < 1 min: checks the script (-> /tmp/avb_toy_smoke)

Four points (`tfvae.datasets.load_arrays("four_points")`: four 2x2 binary images with one pixel on,
each image 128 times in every batch of 512) with a 2-D latent space and a Bernoulli decoder. Three
models with the same encoder and decoder bodies (MLPs of 3x64 ELU units), the same steps, batch,
learning rate and seed:

* VAE: `tfvae.VAE`, Gaussian q(z|x), analytic KL;
* AVB: `tfvae.AVB`, encoder z = f(x, eps) on concat(x, eps), eps ~ N(0, I_64); discriminator
  T(x, z) an MLP of 3x256 ELU units, `discriminator_steps=2` T updates per step, Adam for both;
* AVB+AC: the same with `adaptive_contrast=True` (`contrast_samples` draws per example).

Measured for each: the ELBO (the VAE's true ELBO by Monte Carlo; AVB's *estimated through T*, which
is not a bound), the exact log p(x) per point by `evaluation.grid_log_likelihood` (midpoint rule on a
301^2 grid over [-6, 6]^2; its discretization error measured against a 601^2 grid), and the AIS
estimate `evaluation.ais_log_likelihood` (steps x chains, seconds, acceptance, and the standard
error from the chains' weights); for the VAE also its importance-sampled `log_likelihood` (k=5000).
The optimum of the mean log p(x) is -log 4 = -1.386 nats (each image decoded with certainty from
a quarter of the prior's mass). Figure: 500 posterior draws per point (VAE: `posterior(x).sample`,
AVB: `posterior_samples`) over the prior's 1- and 2-sigma circles, the plane shaded by the image
the decoder finds likeliest: docs/figures/avb_toy_posteriors.png.

Neural sampler (`tfvae.NeuralSampler`, Fig. 1 of the paper: AVB without an autoencoder), trained
on the "torus" target of the authors' notebook, the ring log p~(z) = -(z1^2 + z2^2 - 2)^2 (no
Gaussian fits it), with noise of 16 units (the authors' 2 left a seam in the ring in a trial: MMD^2
0.017 against 0.004 at 3,000 steps); its samples against exact samples of the density drawn on a
fine grid: unbiased MMD^2 (Gaussian kernel of the ring's radial width, 0.25) next to a
moment-matched Gaussian's and to that of independent exact sets (the 95th percentile of repeats: a
two-sample test), and the mean and spread of log p~ on each. Figure: docs/figures/avb_neural_sampler.png.

Writes docs/avb_toy_results.json, the two figures, and the section "Adversarial Variational Bayes:
toy problems (benchmarks/avb_toy.py)" of docs/results.md (other sections kept).
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
SECTION_TITLE = "Adversarial Variational Bayes: toy problems (benchmarks/avb_toy.py)"
ROWS = ("VAE", "AVB", "AVB+AC")
OPTIMUM = -math.log(4.0)  # four equally likely images, each decoded with certainty
POSTERIOR_FIGURE = "figures/avb_toy_posteriors.png"
SAMPLER_FIGURE = "figures/avb_neural_sampler.png"
#: The neural sampler's target: the "torus" of the authors' notebook (Stan-example.ipynb), a ring of
#: radius sqrt(2) whose radial profile is about N(sqrt(2), 0.25^2).
TARGET_NAME = "ring (the authors' 'torus'): log p~(z) = -(z1^2 + z2^2 - 2)^2"
TARGET_LIMIT = 3.0  # the target's mass outside [-3, 3]^2 is below exp(-49) relative to the ring

FULL = dict(steps=2000, batch_size=512, hidden=[64, 64, 64], discriminator_hidden=[256, 256, 256],
            noise_dim=64, discriminator_steps=2, learning_rate=1e-3, contrast_samples=8,
            elbo_draws=1000, posterior_draws=500, grid_points=301, fine_grid_points=601,
            ais_steps=1000, ais_chains=16, vae_is_samples=5000,
            sampler_steps=3000, sampler_batch=512, sampler_noise_dim=16, sampler_hidden=[128, 128],
            sampler_discriminator_hidden=[256, 256, 256], sampler_learning_rate=1e-3,
            sampler_discriminator_steps=2, sampler_samples=2000, sampler_grid_points=1201,
            null_repeats=20, mmd_bandwidth=0.25)
SMOKE = dict(FULL, steps=30, elbo_draws=50, posterior_draws=100, fine_grid_points=151,
             ais_steps=20, ais_chains=4, vae_is_samples=200, sampler_steps=30,
             sampler_samples=300, sampler_grid_points=301, null_repeats=3)


# ----------------------------------------------------------------------------- pure helpers
def ring_log_prob_np(z):
    """The target log p~(z) `[..., 2]` -> `[...]` in numpy (float64)."""
    z = np.asarray(z, np.float64)
    return -np.square(np.sum(np.square(z), axis=-1) - 2.0)


def grid_sampler(log_prob, limit, points, num_samples, seed):
    """Exact samples `[N, 2]` of the density ∝ exp(log_prob) on [-limit, limit]^2: a cell of a
    `points`^2 grid drawn with its probability, then a uniform point inside it; and log Z (the
    midpoint rule). Exact up to the density's variation within a cell."""
    axis = np.linspace(-limit, limit, int(points))
    cell = axis[1] - axis[0]
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    log_p = log_prob(grid)
    top = log_p.max()
    p = np.exp(log_p - top)
    log_z = float(top + np.log(p.sum()) + 2 * np.log(cell))
    rng = np.random.default_rng(seed)
    index = rng.choice(len(grid), size=int(num_samples), p=p / p.sum())
    return grid[index] + rng.uniform(-cell / 2, cell / 2, (int(num_samples), 2)), log_z


def ais_standard_error(log_weights):
    """Per-example standard error (delta method) of the AIS estimate log mean_c w_c from the
    chains' log weights `[C, N]`: std(w) / (sqrt(C) mean(w)), in nats."""
    lw = np.asarray(log_weights, np.float64)
    w = np.exp(lw - lw.max(axis=0, keepdims=True))
    return w.std(axis=0, ddof=1) / (math.sqrt(lw.shape[0]) * w.mean(axis=0))


def ais_tolerance(row):
    """The distance allowed between a model's mean AIS estimate and its grid-exact mean log p(x):
    three standard errors of the mean AIS estimate (from its chains) plus the grid's own
    discretization error (301^2 against 601^2 points)."""
    return 3.0 * row["ais"]["standard_error_mean"] + row["grid"]["discretization_error"]


def claims(rows, sampler):
    by = {r["row"]: r for r in rows}
    out = []
    if "VAE" in by:
        vae = by["VAE"]["grid"]["mean"]
        for name in ("AVB", "AVB+AC"):
            if name in by:
                value = by[name]["grid"]["mean"]
                out.append({"claim": f"{name} reaches a higher exact log p(x) than the VAE (closer to "
                                     f"the optimum {OPTIMUM:.3f})",
                            "values": f"{value:.3f} vs {vae:.3f} nats", "holds": value > vae})
    for r in rows:
        gap, tol = r["ais"]["mean"] - r["grid"]["mean"], ais_tolerance(r)
        out.append({"claim": f"{r['row']}: AIS ({r['ais']['num_steps']} steps × {r['ais']['num_chains']} "
                             "chains) lands within 3 standard errors + the grid's error of the exact value",
                    "values": f"{r['ais']['mean']:.3f} vs {r['grid']['mean']:.3f} (Δ {gap:+.3f}, "
                              f"allowed ±{tol:.3f})", "holds": abs(gap) <= tol})
    if sampler:
        m = sampler["mmd"]
        out.append({"claim": "Neural sampler: its samples are closer to the ring (MMD²) than the "
                             "moment-matched Gaussian's",
                    "values": f"{m['sampler']:.4f} vs {m['gaussian']:.4f}",
                    "holds": m["sampler"] < m["gaussian"]})
        out.append({"claim": "Neural sampler: a two-sample MMD test at 5 % does not tell its samples "
                             "from exact ones (MMD² below the 95th percentile of exact-vs-exact)",
                    "values": f"{m['sampler']:.4f} vs {m['null_95']:.4f}",
                    "holds": m["sampler"] <= m["null_95"]})
    return out


# ----------------------------------------------------------------------------- models
def net(hidden):
    import tfvae

    return tfvae.networks.mlp(hidden, activation="elu")


def build(row, s, seed):
    import tfvae

    if row == "VAE":
        return tfvae.VAE((2, 2, 1), 2, encoder=net(s["hidden"]), decoder=net(s["hidden"]), seed=seed)
    return tfvae.AVB((2, 2, 1), 2, encoder=net(s["hidden"]), decoder=net(s["hidden"]),
                     discriminator=net(s["discriminator_hidden"]), noise_dim=s["noise_dim"],
                     adaptive_contrast=row == "AVB+AC", contrast_samples=s["contrast_samples"],
                     discriminator_steps=s["discriminator_steps"], seed=seed)


def epochs_of(steps):
    """(epochs, steps per epoch): epochs of 100 steps where the steps allow (a learning curve)."""
    return (steps // 100, 100) if steps % 100 == 0 and steps >= 100 else (1, steps)


def elbo_per_point(model, x, draws, seed):
    """Per-point ELBO `[4]`: the VAE's true one (mean log weight of `draws` draws of q); AVB's as
    its training objective estimates it through T (the batch of each point repeated `draws` times)."""
    import tensorflow as tf

    import tfvae

    if isinstance(model, tfvae.AVB):
        batch = np.repeat(x, draws, axis=0)
        _, logs = model.compute_losses(tf.constant(batch), seed=tfvae.distributions.stateless_seed(seed))
        return np.asarray(logs["elbo"]).reshape(len(x), draws).mean(axis=1)
    weights = model.log_importance_weights(tf.constant(x), draws, tfvae.distributions.stateless_seed(seed))
    return np.asarray(weights).mean(axis=0)


def posterior_draws(model, x, draws, seed):
    """`draws` codes of q(z|x) per point, `[4, draws, 2]`."""
    import tfvae

    if isinstance(model, tfvae.AVB):
        z = model.posterior_samples(x, draws, seed=seed)                        # [S, B, D]
    else:
        z = model.posterior(x).sample(draws, seed=tfvae.distributions.stateless_seed(seed))
    return np.transpose(np.asarray(z), (1, 0, 2))


def decoder_regions(model, x, limit, points=200):
    """The index of the likeliest image under p(x|z) at every point of a `points`^2 grid `[P, P]`
    (rows: z2, columns: z1), for shading the plane."""
    import tensorflow as tf

    axis = np.linspace(-limit, limit, points, dtype=np.float32)
    z1, z2 = np.meshgrid(axis, axis)
    grid = np.stack([z1, z2], -1).reshape(-1, 1, 2)
    log_p = np.asarray(model.conditional_log_prob(tf.constant(x), tf.constant(grid)))  # [G, 4]
    return log_p.argmax(axis=1).reshape(points, points)


def train_and_evaluate(row, x, s, seed):
    import keras
    import tensorflow as tf

    import tfvae

    keras.utils.set_random_seed(seed)
    model = build(row, s, seed)
    if row == "VAE":
        model.compile(optimizer=keras.optimizers.Adam(s["learning_rate"]))
    else:
        model.compile(optimizer=keras.optimizers.Adam(s["learning_rate"]),
                      discriminator_optimizer=keras.optimizers.Adam(s["learning_rate"]))
    repeats = s["batch_size"] // len(x)
    data = tf.data.Dataset.from_tensors(np.tile(x, (repeats, 1, 1, 1))).repeat()
    epochs, per_epoch = epochs_of(s["steps"])
    start = time.perf_counter()
    history = model.fit(data, epochs=epochs, steps_per_epoch=per_epoch, verbose=0)
    train_s = time.perf_counter() - start

    elbo = elbo_per_point(model, x, s["elbo_draws"], seed)
    start = time.perf_counter()
    grid = tfvae.evaluation.grid_log_likelihood(model, x, points_per_axis=s["grid_points"])
    grid_s = time.perf_counter() - start
    fine = tfvae.evaluation.grid_log_likelihood(model, x, points_per_axis=s["fine_grid_points"])
    ais = tfvae.evaluation.ais_log_likelihood(model, x, num_steps=s["ais_steps"], num_chains=s["ais_chains"],
                                              seed=seed, return_diagnostics=True)
    se = ais_standard_error(ais.log_weights)
    result = {
        "row": row, "class": type(model).__name__, "train_s": train_s,
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "final": {k: float(values[-1]) for k, values in history.history.items()},
        "elbo": {"kind": "Monte Carlo ELBO" if row == "VAE" else "estimated through T (not a bound)",
                 "draws": s["elbo_draws"], "per_point": elbo.tolist(), "mean": float(elbo.mean())},
        "grid": {"points_per_axis": s["grid_points"], "limit": 6.0, "per_point": grid.tolist(),
                 "mean": float(grid.mean()), "seconds": grid_s,
                 "fine_points_per_axis": s["fine_grid_points"], "fine_mean": float(fine.mean()),
                 "discretization_error": float(abs(grid.mean() - fine.mean()))},
        "ais": {"num_steps": s["ais_steps"], "num_chains": s["ais_chains"], "schedule": "sigmoid",
                "per_point": ais.log_likelihood.tolist(), "mean": float(ais.log_likelihood.mean()),
                "standard_error": se.tolist(),
                "standard_error_mean": float(np.sqrt(np.sum(se**2)) / len(se)),
                "acceptance_rate": ais.acceptance_rate.tolist(), "seconds": ais.seconds},
    }
    if row == "VAE":
        start = time.perf_counter()
        is_ll = np.asarray(model.log_likelihood(x, s["vae_is_samples"], seed=seed))
        result["importance_sampled"] = {"num_samples": s["vae_is_samples"], "per_point": is_ll.tolist(),
                                        "mean": float(is_ll.mean()), "seconds": time.perf_counter() - start}
    result["gap_to_optimum"] = result["grid"]["mean"] - OPTIMUM
    print(f"{row}: {s['steps']} steps in {train_s:.0f} s; ELBO ({result['elbo']['kind']}) {elbo.mean():.3f}; "
          f"exact log p(x) {grid.mean():.3f} {np.round(grid, 3).tolist()} (601² grid {fine.mean():.3f}); "
          f"AIS {ais.log_likelihood.mean():.3f} ± {result['ais']['standard_error_mean']:.3f} "
          f"({s['ais_steps']} steps × {s['ais_chains']} chains, {ais.seconds:.1f} s, acceptance "
          f"{ais.acceptance_rate.mean():.2f})"
          + (f"; IS k={s['vae_is_samples']} {result['importance_sampled']['mean']:.3f}" if row == "VAE" else ""),
          flush=True)
    return model, result


# ----------------------------------------------------------------------------- neural sampler
def ring_log_prob(z):
    """The target log p~(z) for TensorFlow tensors `[..., 2]` -> `[...]`."""
    import tensorflow as tf

    return -tf.square(tf.reduce_sum(tf.square(z), axis=-1) - 2.0)


def run_sampler(s, seed):
    import keras

    import tfvae

    keras.utils.set_random_seed(seed)
    sampler = tfvae.NeuralSampler(ring_log_prob, 2, noise_dim=s["sampler_noise_dim"],
                                  generator=net(s["sampler_hidden"]),
                                  discriminator=net(s["sampler_discriminator_hidden"]),
                                  discriminator_steps=s["sampler_discriminator_steps"], seed=seed)
    sampler.compile(optimizer=keras.optimizers.Adam(s["sampler_learning_rate"]),
                    discriminator_optimizer=keras.optimizers.Adam(s["sampler_learning_rate"]))
    epochs, per_epoch = epochs_of(s["sampler_steps"])
    start = time.perf_counter()
    history = sampler.fit(steps=epochs * per_epoch, batch_size=s["sampler_batch"], epochs=epochs, verbose=0)
    train_s = time.perf_counter() - start

    n = s["sampler_samples"]
    z = np.asarray(sampler.sample(n, seed=seed + 1), np.float64)
    exact, log_z = grid_sampler(ring_log_prob_np, TARGET_LIMIT, s["sampler_grid_points"], n, seed + 2)
    rng = np.random.default_rng(seed + 3)
    gaussian = rng.multivariate_normal(exact.mean(axis=0), np.cov(exact.T), size=n)
    bandwidth = s["mmd_bandwidth"]
    mmd = lambda a, b: tfvae.evaluation.prior_mismatch(a, b, bandwidth=bandwidth)  # noqa: E731
    null = [mmd(grid_sampler(ring_log_prob_np, TARGET_LIMIT, s["sampler_grid_points"], n, seed + 10 + i)[0], exact)
            for i in range(s["null_repeats"])]
    log_p = {name: ring_log_prob_np(v) for name, v in (("sampler", z), ("exact", exact), ("gaussian", gaussian))}
    final = {k: float(v[-1]) for k, v in history.history.items()}
    result = {
        "target": TARGET_NAME, "train_s": train_s, "final": final,
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "samples": n, "log_z_grid": log_z,
        "elbo_estimate": final["elbo"], "kl_estimate": log_z - final["elbo"],
        "mmd": {"bandwidth": bandwidth, "sampler": mmd(z, exact), "gaussian": mmd(gaussian, exact),
                "null_mean": float(np.mean(null)), "null_95": float(np.percentile(null, 95)),
                "null_repeats": len(null)},
        "log_p": {name: {"mean": float(v.mean()), "std": float(v.std())} for name, v in log_p.items()},
        "radius": {name: {"mean": float(np.linalg.norm(v, axis=1).mean()), "std": float(np.linalg.norm(v, axis=1).std())}
                   for name, v in (("sampler", z), ("exact", exact), ("gaussian", gaussian))},
    }
    m = result["mmd"]
    print(f"neural sampler: {s['sampler_steps']} steps in {train_s:.0f} s; MMD² to exact samples {m['sampler']:.4f} "
          f"(moment-matched Gaussian {m['gaussian']:.4f}, exact vs exact {m['null_mean']:.4f}, 95th pct "
          f"{m['null_95']:.4f}); mean log p~ {log_p['sampler'].mean():.3f} (exact {log_p['exact'].mean():.3f}); "
          f"T-estimated KL(q‖p) {result['kl_estimate']:.3f}", flush=True)
    return result, {"sampler": z, "exact": exact, "gaussian": gaussian}


# ----------------------------------------------------------------------------- figures
def plot_posteriors(path, panels, limit=3.5):
    """One PNG: per model, the posterior draws of the four points (one colour each) over the
    plane shaded by the decoder's likeliest image, with the prior's 1- and 2-sigma circles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.6), squeeze=False,
                             layout="constrained")
    angle = np.linspace(0, 2 * np.pi, 200)
    for ax, (title, draws, regions) in zip(axes[0], panels):
        ax.imshow(regions, origin="lower", extent=(-limit, limit, -limit, limit), alpha=0.18,
                  cmap=ListedColormap(colours), vmin=-0.5, vmax=3.5, interpolation="nearest")
        for i, z in enumerate(draws):
            ax.scatter(z[:, 0], z[:, 1], s=3, color=colours[i], linewidths=0, alpha=0.7,
                       label=f"x = e{i + 1}", rasterized=True)
        for r in (1, 2):
            ax.plot(r * np.cos(angle), r * np.sin(angle), "k--", lw=0.7, alpha=0.6)
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("z1")
    axes[0][0].set_ylabel("z2")
    axes[0][0].legend(loc="lower left", fontsize=7, markerscale=3, framealpha=0.8)
    fig.suptitle("Posteriors of the four points (draws of q(z|x))\nshading: the image the decoder "
                 "finds likeliest; dashed: N(0, I)'s 1σ and 2σ circles", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def plot_sampler(path, sets, titles, limit=TARGET_LIMIT):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axis = np.linspace(-limit, limit, 300)
    z1, z2 = np.meshgrid(axis, axis)
    log_p = ring_log_prob_np(np.stack([z1, z2], -1))
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 4.6), squeeze=False,
                             layout="constrained")
    for ax, z, title in zip(axes[0], sets, titles):
        ax.contourf(z1, z2, np.exp(log_p), levels=8, cmap="Greys", alpha=0.6)
        ax.contour(z1, z2, np.exp(log_p), levels=8, colors="0.3", linewidths=0.5)
        ax.scatter(z[:, 0], z[:, 1], s=3, color="tab:blue", linewidths=0, alpha=0.6, rasterized=True)
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("z1")
    axes[0][0].set_ylabel("z2")
    fig.suptitle(f"Neural sampler on the {TARGET_NAME}\ncontours: p~", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


# ----------------------------------------------------------------------------- report
def section(results):
    from vqvae_mnist import table  # the benchmarks' markdown table

    s = results["settings"]
    machine = results.get("machine", {})
    lines = [f"## {SECTION_TITLE}", "",
             f"{results['date']}, `python3 benchmarks/avb_toy.py{''.join(' ' + x for x in results['argv'])}`"
             + (" (SMOKE MODE: tiny budgets, checks the script only)" if s["smoke"] else "")
             + f", {results['total_s'] / 60:.1f} min; {machine.get('cpu_model', '?')}, "
             f"{machine.get('cpu_affinity', '?')} cores, load average {machine.get('load_avg_1m', 0):.2f} "
             f"at the start; TensorFlow {machine.get('tensorflow', '?')}, Keras {machine.get('keras', '?')}.", "",
             "Mescheder et al. (2017), Sec. 5.1: four 2×2 binary images with one pixel on "
             "(`datasets.load_arrays(\"four_points\")`, each 128 times in every batch of "
             f"{s['batch_size']}), a 2-D latent space, a Bernoulli decoder. Encoder and decoder: MLPs of "
             f"{'×'.join(map(str, s['hidden']))} ELU units for every model; AVB's encoder takes "
             f"concat(x, ε), ε ~ N(0, I_{s['noise_dim']}), its T(x, z) is an MLP of "
             f"{'×'.join(map(str, s['discriminator_hidden']))} ELU units with {s['discriminator_steps']} T "
             f"updates per step; AVB+AC: adaptive contrast from {s['contrast_samples']} draws per example. "
             f"{s['steps']} steps for each model, Adam({s['learning_rate']}) for every optimizer, seed "
             f"{s['seed']}. ELBO: the VAE's by Monte Carlo ({s['elbo_draws']} draws per point); AVB's is "
             "its training objective *estimated through T*, not a bound. Exact log p(x): "
             f"`evaluation.grid_log_likelihood` ({s['grid_points']}² midpoint grid on [−6, 6]²; "
             f"the error column compares a {s['fine_grid_points']}² grid). AIS: "
             f"`evaluation.ais_log_likelihood`, {s['ais_steps']} sigmoid-scheduled steps × "
             f"{s['ais_chains']} chains, HMC with 10 leapfrog steps, step 0.1 × the posterior's σ, "
             "adapted toward acceptance 0.65; ± is its standard error from the chains' weights. "
             f"The optimum is −log 4 = {OPTIMUM:.3f} nats.", ""]
    rows = []
    for r in results["rows"]:
        a = r["ais"]
        rows.append([r["row"], f"{r['train_s']:.0f}", f"{r['elbo']['mean']:.3f}" + ("" if r["row"] == "VAE" else " (T)"),
                     f"**{r['grid']['mean']:.3f}**", ", ".join(f"{v:.3f}" for v in r["grid"]["per_point"]),
                     f"{r['grid']['discretization_error']:.1e}",
                     f"{a['mean']:.3f} ± {a['standard_error_mean']:.3f}",
                     f"{a['mean'] - r['grid']['mean']:+.3f}", f"{np.mean(a['acceptance_rate']):.2f}",
                     f"{a['seconds']:.1f}",
                     f"{r['importance_sampled']['mean']:.3f}" if "importance_sampled" in r else "—"])
    lines += table(["model", "train s", "ELBO (VAE) / T-estimate (AVB)", "exact log p(x), mean",
                    "exact log p(x) per point", "grid error", "AIS log p(x)", "AIS − exact",
                    "AIS acceptance", "AIS s", f"IS k={s['vae_is_samples']}"], rows)
    lines += ["", "Posteriors of the four points (500 draws of q(z|x) each, one colour per point) over the "
              "plane shaded by the image the decoder finds likeliest, with the prior's 1σ and 2σ circles: "
              "a VAE's posteriors are Gaussians, which cannot take the shapes of the regions and leave gaps and "
              "overlaps between them (the paper's observation); AVB's are free to follow the regions.", "",
              f"![posteriors of the four points: VAE, AVB, AVB+AC]({POSTERIOR_FIGURE})", ""]
    sampler = results.get("sampler")
    if sampler:
        m, lp, rad = sampler["mmd"], sampler["log_p"], sampler["radius"]
        lines += ["### Neural sampler", "",
                  f"`tfvae.NeuralSampler` (AVB without an autoencoder; the paper's Fig. 1 shows one on a 2-D density that "
                  f"its text does not define) on the {sampler['target']}, a target of the authors' notebook "
                  "(Stan-example.ipynb): generator ε "
                  f"(N(0, I_{s['sampler_noise_dim']})) → MLP {'×'.join(map(str, s['sampler_hidden']))} ELU → z, T an "
                  f"MLP of {'×'.join(map(str, s['sampler_discriminator_hidden']))} ELU units on z̃ (adaptive "
                  f"contrast), {s['sampler_discriminator_steps']} T updates per step, {s['sampler_steps']} steps of "
                  f"batch {s['sampler_batch']}, Adam({s['sampler_learning_rate']}), {sampler['train_s']:.0f} s. "
                  f"{sampler['samples']} samples against as many exact ones (a {s['sampler_grid_points']}² grid on "
                  f"[−{TARGET_LIMIT:g}, {TARGET_LIMIT:g}]², a cell drawn by its mass, then a uniform point in it), "
                  f"unbiased MMD² with a Gaussian kernel of σ = {m['bandwidth']} (the ring's radial width); "
                  f"*exact vs exact*: {m['null_repeats']} fresh exact sets against the same one (the 95th "
                  "percentile is a 5 % two-sample test); the moment-matched Gaussian is the best a Gaussian "
                  "approximation of these moments does. The T-estimated KL(q‖p) is log Z (grid, "
                  f"{sampler['log_z_grid']:.3f}) minus the ELBO estimate averaged over the last "
                  f"{min(100, s['sampler_steps'])} steps.", ""]
        lines += table(["samples", "MMD² to exact samples", "mean log p~ (std)", "radius mean (std)"],
                       [["neural sampler", f"{m['sampler']:.4f}", f"{lp['sampler']['mean']:.3f} ({lp['sampler']['std']:.3f})",
                         f"{rad['sampler']['mean']:.3f} ({rad['sampler']['std']:.3f})"],
                        ["exact (grid)", f"{m['null_mean']:.4f} (mean), {m['null_95']:.4f} (95th pct)",
                         f"{lp['exact']['mean']:.3f} ({lp['exact']['std']:.3f})",
                         f"{rad['exact']['mean']:.3f} ({rad['exact']['std']:.3f})"],
                        ["moment-matched Gaussian", f"{m['gaussian']:.4f}",
                         f"{lp['gaussian']['mean']:.3f} ({lp['gaussian']['std']:.3f})",
                         f"{rad['gaussian']['mean']:.3f} ({rad['gaussian']['std']:.3f})"]])
        lines += ["", f"T-estimated KL(q‖p): {sampler['kl_estimate']:.3f} nats (an estimate, not a bound).", "",
                  f"Samples over the contours of p~: the neural sampler, exact samples, the moment-matched "
                  f"Gaussian.", "", f"![neural sampler on the ring density]({SAMPLER_FIGURE})", ""]
    lines += ["### Claims", ""]
    lines += table(["claim (Mescheder et al. 2017; the issue)", "values", "holds"],
                   [[c["claim"], c["values"], "yes" if c["holds"] else "NO"] for c in results["claims"]])
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, help=f"training steps of each toy model (default {FULL['steps']})")
    p.add_argument("--contrast-samples", type=int, help=f"AVB+AC's draws per example (default {FULL['contrast_samples']})")
    p.add_argument("--ais-steps", type=int, help=f"default {FULL['ais_steps']}")
    p.add_argument("--ais-chains", type=int, help=f"default {FULL['ais_chains']}")
    p.add_argument("--sampler-steps", type=int, help=f"neural sampler steps (default {FULL['sampler_steps']}; 0: skip)")
    p.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny budgets, < 1 min; writes to /tmp/avb_toy_smoke")
    p.add_argument("--out-dir", type=Path, help="where results.md, avb_toy_results.json and figures/ go "
                   "(default docs/, or /tmp/avb_toy_smoke with --smoke)")
    a = p.parse_args(argv)
    s = dict(SMOKE if a.smoke else FULL, seed=a.seed, smoke=a.smoke)
    for key in ("steps", "contrast_samples", "ais_steps", "ais_chains", "sampler_steps"):
        if getattr(a, key) is not None:
            s[key] = getattr(a, key)
    out_dir = a.out_dir or (Path("/tmp/avb_toy_smoke") if a.smoke else ROOT / "docs")
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    import tfvae
    from aae_mnist import replace_section
    from roofline import machine_description

    start = time.perf_counter()
    machine = machine_description()
    print(f"AVB toy benchmark{' (SMOKE)' if a.smoke else ''}: {', '.join(a.rows)}, {s['steps']} steps; neural "
          f"sampler {s['sampler_steps']} steps; {machine['cpu_affinity']} cores, load {machine['load_avg_1m']:.2f}; "
          f"output {out_dir}", flush=True)
    x, _ = tfvae.datasets.load_arrays("four_points")
    rows, panels = [], []
    for row in a.rows:
        model, result = train_and_evaluate(row, x, s, a.seed)
        rows.append(result)
        draws = posterior_draws(model, x, s["posterior_draws"], a.seed)
        title = (f"{row}: exact log p(x) {result['grid']['mean']:.3f}\n"
                 f"({'ELBO' if row == 'VAE' else 'T-estimated ELBO'} {result['elbo']['mean']:.3f}; "
                 f"optimum {OPTIMUM:.3f})")
        panels.append((title, draws, decoder_regions(model, x, 3.5)))
    plot_posteriors(out_dir / POSTERIOR_FIGURE, panels)
    sampler = None
    if s["sampler_steps"] > 0:
        sampler, sets = run_sampler(s, a.seed)
        m = sampler["mmd"]
        plot_sampler(out_dir / SAMPLER_FIGURE, [sets["sampler"], sets["exact"], sets["gaussian"]],
                     [f"NeuralSampler ({s['sampler_steps']} steps)\nMMD² {m['sampler']:.4f}",
                      f"exact (grid sampler)\nMMD² of another exact set {m['null_mean']:.4f}",
                      f"moment-matched Gaussian\nMMD² {m['gaussian']:.4f}"])
    results = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "argv": sys.argv[1:] if argv is None else list(argv), "settings": s, "machine": machine,
               "optimum": OPTIMUM, "rows": rows, "sampler": sampler,
               "figures": {"posteriors": POSTERIOR_FIGURE, **({"sampler": SAMPLER_FIGURE} if sampler else {})},
               "claims": claims(rows, sampler), "total_s": time.perf_counter() - start}
    (out_dir / "avb_toy_results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    md_path = out_dir / "results.md"
    text = md_path.read_text() if md_path.exists() else ""
    md_path.write_text(replace_section(text, SECTION_TITLE, section(results)))
    print(section(results))
    print(f"wrote {md_path} (section '{SECTION_TITLE}'), {out_dir / 'avb_toy_results.json'}, {out_dir / 'figures'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
