"""Adversarial autoencoders on real MNIST: the claims of Makhzani et al. (2016) at a stated budget.

    python3 benchmarks/aae_mnist.py                 # every part (~30 min on 2 cores) -> docs/
    python3 benchmarks/aae_mnist.py --parts a d     # some parts; the others keep their last results
    python3 benchmarks/aae_mnist.py --smoke         # tiny sizes, 1-2 min: checks the script (-> /tmp)

Parts (same networks and budget for every row of a part; see --help for the budget flags):

  a  priors: for N(0, I), a 10-component mixture of Gaussians and a swiss roll, a 2-D AAE
     (deterministic posterior) and a VAE with the same encoder/decoder bodies; prior_mismatch
     (unbiased MMD^2) of the test images' codes against the same prior samples for both; one
     code scatter per prior in docs/figures/aae_prior_*.png. Claim: the AAE's is the smaller.
     The swiss roll has no density, so its VAE is the N(0, I) one, compared with roll samples.
  b  semi-supervised: tfvae.SemiSupervisedAAE with 100 labels (10 per class, fixed seed) and the
     other training images unlabelled (y = -1), each batch holding --labelled-per-batch of the
     labelled ones (0: the plain shuffled stream, ~2 per batch); test error next to an MLP of the
     encoder's architecture trained on the 100 labels alone (paper: 1.90 % at full budget).
  c  unsupervised clustering: SemiSupervisedAAE with 16 clusters, fit(x) without labels;
     clustering_error (majority label of each cluster's training members) on the test set next
     to k-means (numpy, 16 clusters) on the pixels (paper: 9.55 %).
  d  Parzen: log-likelihood of 10k AAE samples on the test set, bandwidth chosen on held-out
     training images (paper: 340 +- 2 nats).
  e  speed: training examples/s of the AAE (Keras defaults, graph mode) next to pythae's
     Adversarial_AE and a plain PyTorch loop of tfvae's three phases, same networks and batch
     (benchmarks/torch_aae_reference.py, in an interpreter that has torch: --torch-python).

Data: ../shared/data/mnist, train5k (shuffled with --seed) and the 10k test images, grey levels
x/255 in [0, 1] (not binarized); reconstruction = Bernoulli cross-entropy summed over the 784
pixels. Writes docs/aae_mnist_results.json, docs/figures/aae_*.png and the section
"Adversarial autoencoders (benchmarks/aae_mnist.py)" of docs/results.md (other sections kept).
"""
import argparse
import datetime
import inspect
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist"
SECTION_TITLE = "Adversarial autoencoders (benchmarks/aae_mnist.py)"
PARTS = {"a": "priors", "b": "semi-supervised", "c": "clustering", "d": "Parzen", "e": "speed"}
#: (name, label in the tables); the standard normal comes first: the swiss roll reuses its VAE.
PRIORS = (("standard_normal", "N(0, I)"), ("mixture_of_gaussians", "mixture of 10 Gaussians"),
          ("swiss_roll", "swiss roll"))
PAPER = {"semi_supervised_error": 0.0190, "clustering_error": 0.0955, "parzen": (340.0, 2.0)}

FULL = dict(hidden=[1000, 1000], epochs=30, batch_size=100, train_examples=5000,
            test_examples=10000, prior_samples=10000, labels_per_class=10, labelled_per_batch=10,
            style_dim=10,
            clusters=16, classifier_steps=500, kmeans_restarts=5, parzen_latent_dim=8,
            parzen_samples=10000, validation_examples=1000, speed_epochs=5, speed_rounds=2,
            speed_train_examples=5000)
SMOKE = dict(FULL, epochs=2, train_examples=300, test_examples=500, prior_samples=500,
             classifier_steps=20, kmeans_restarts=1, parzen_samples=300, validation_examples=100,
             speed_epochs=2, speed_rounds=1, speed_train_examples=500)


# ----------------------------------------------------------------------------- helpers (no TF)
def parse_parts(tokens):
    """'a d', 'a,d' or 'ad' -> ['a', 'd'] in part order; unknown letters raise ValueError."""
    letters = set("".join(tokens or ["abcde"]).replace(",", "").replace(" ", "").lower())
    unknown = letters - set(PARTS)
    if unknown:
        raise ValueError(f"unknown part(s) {sorted(unknown)}; expected letters from {sorted(PARTS)}")
    return [p for p in PARTS if p in letters]


def replace_section(text, title, body):
    """`text` (markdown) with its '## title' section replaced by `body` (which starts with that
    heading), or `body` appended when there is none; every other section is left as it was."""
    pieces = re.split(r"(?m)^(?=## )", text) if text else []
    heading = f"## {title}"
    out, replaced = [], False
    for piece in pieces:
        if piece.splitlines() and piece.splitlines()[0].strip() == heading:
            if not replaced:
                out.append(body.rstrip("\n") + "\n\n")
                replaced = True
            continue
        out.append(piece)
    if not replaced:
        if out and not out[-1].endswith("\n\n"):
            out[-1] = out[-1].rstrip("\n") + "\n\n"
        out.append(body.rstrip("\n") + "\n")
    return "".join(out).rstrip("\n") + "\n"


def kmeans(x, k, *, restarts=5, iterations=100, seed=0):
    """Lloyd's k-means with k-means++ seeding on the rows of `x` `[N, D]`; the best of `restarts`
    runs by inertia. Returns (centers `[k, D]`, inertia). An emptied cluster is re-seeded at the
    point farthest from its center."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    rng = np.random.default_rng(seed)
    norms = np.sum(x**2, axis=1)

    def distances(centers):
        return np.maximum(norms[:, None] - 2.0 * x @ centers.T + np.sum(centers**2, axis=1), 0.0)

    best = None
    for _ in range(restarts):
        centers = x[[rng.integers(len(x))]]
        for _ in range(1, k):  # k-means++: each next center with probability ∝ D(x)²
            d2 = distances(centers).min(axis=1)
            centers = np.vstack([centers, x[rng.choice(len(x), p=d2 / d2.sum())]])
        assign = None
        for _ in range(iterations):
            d2 = distances(centers)
            new_assign = d2.argmin(axis=1)
            if assign is not None and np.array_equal(new_assign, assign):
                break
            assign = new_assign
            for j in range(k):
                members = assign == j
                if members.any():
                    centers[j] = x[members].mean(axis=0)
                else:
                    far = d2[np.arange(len(x)), assign].argmax()
                    centers[j], assign[far] = x[far], j
        inertia = float(distances(centers).min(axis=1).sum())
        if best is None or inertia < best[1]:
            best = (centers.copy(), inertia)
    return best


def kmeans_assign(x, centers):
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    d2 = np.sum(x**2, axis=1)[:, None] - 2.0 * x @ centers.T + np.sum(centers**2, axis=1)
    return d2.argmin(axis=1)


def claim(text, holds):
    return {"claim": text, "holds": None if holds is None else bool(holds)}


def verdict(holds):
    return {True: "holds", False: "does not hold", None: "not judged"}[holds]


def pct(value):
    return f"{100 * value:.2f} %"


# ----------------------------------------------------------------------------- data and models
def load_data(data_dir, s):
    """Shuffled train5k (first `train_examples`) and the first `test_examples` test images:
    float32 [N, 28, 28, 1] grey levels in [0, 1] and int64 labels."""
    import tfvae

    x_train, y_train = tfvae.datasets.load_arrays(str(data_dir), "train5k")
    order = np.random.default_rng(s["seed"]).permutation(len(x_train))  # the file is sorted by class
    x_train, y_train = x_train[order][:s["train_examples"]], y_train[order][:s["train_examples"]]
    x_test, y_test = tfvae.datasets.load_arrays(str(data_dir), "t10k")
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test[:s["test_examples"]],
            "y_test": y_test[:s["test_examples"]]}


def net(hidden):
    import tfvae

    return tfvae.networks.mlp(hidden, activation="relu")


def make_prior(name):
    import tfvae

    return {"standard_normal": lambda: tfvae.distributions.StandardNormal(2),
            "mixture_of_gaussians": lambda: tfvae.distributions.MixtureOfGaussians(2, 10),
            "swiss_roll": lambda: tfvae.distributions.SwissRoll()}[name]()


def make_aae(s, latent_dim=2, prior="standard_normal"):
    import keras
    import tfvae

    keras.utils.set_random_seed(s["seed"])
    return tfvae.AdversarialAutoencoder(
        (28, 28, 1), latent_dim, encoder=net(s["hidden"]), decoder=net(s["hidden"]),
        discriminator=net(s["hidden"]), prior=prior, posterior="deterministic",
        likelihood="bernoulli", seed=s["seed"])


def make_vae(s, prior):
    import keras
    import tfvae

    keras.utils.set_random_seed(s["seed"])
    return tfvae.VAE((28, 28, 1), 2, encoder=net(s["hidden"]), decoder=net(s["hidden"]),
                     prior=prior, likelihood="bernoulli", seed=s["seed"])


def ssaae_class():
    import tfvae

    cls = getattr(tfvae, "SemiSupervisedAAE", None)
    if cls is None:
        raise RuntimeError(
            "tfvae.SemiSupervisedAAE is not in this checkout yet (issue 9: SemiSupervisedAAE("
            "input_shape, num_classes, style_dim, ...), fit((x, y)) with y = -1 unlabelled, "
            "classify(x), cluster(x)); parts b and c need it. Run the other parts with --parts a d e.")
    return cls


def ssaae_network_kwargs(cls, hidden):
    """A fresh mlp(hidden) for `encoder`, `decoder` and every constructor argument named
    `*discriminator` that cls takes: the same bodies as every other row."""
    params = inspect.signature(cls.__init__).parameters
    return {name: net(hidden) for name in params
            if name in ("encoder", "decoder") or name.endswith("discriminator")}


def make_ssaae(s, num_classes):
    import keras

    cls = ssaae_class()
    keras.utils.set_random_seed(s["seed"])
    networks = ssaae_network_kwargs(cls, s["hidden"])
    model = cls((28, 28, 1), num_classes=num_classes, style_dim=s["style_dim"], seed=s["seed"],
                **networks)
    return model, sorted(networks)


def train(model, x, y, s, name, dataset=None, **optimizers):
    """Adam(1e-3) for every optimizer the model has (tfvae's compile copies `optimizer` into
    the others) unless named in `optimizers`, `epochs` epochs of batch `batch_size` over (x, y),
    or as many steps of the infinite `dataset` of batches; prints and returns the timings.
    With `s["cosine_decay"]` the rate follows a cosine from 1e-3 down to 1e-5 over the run."""
    import keras
    from iwae_mnist import EpochTimer

    steps = -(-len(x) // s["batch_size"])
    rate = 1e-3
    if s.get("cosine_decay"):
        rate = keras.optimizers.schedules.CosineDecay(1e-3, s["epochs"] * steps, alpha=0.01)
    model.compile(optimizer=keras.optimizers.Adam(rate), **optimizers)
    timer = EpochTimer()
    start = time.perf_counter()
    if dataset is None:
        history = model.fit(x, y, batch_size=s["batch_size"], epochs=s["epochs"], shuffle=True,
                            verbose=0, callbacks=[timer])
    else:
        history = model.fit(dataset, epochs=s["epochs"], steps_per_epoch=steps, shuffle=False,
                            verbose=0, callbacks=[timer])
    seconds = time.perf_counter() - start
    steady = statistics.median(timer.times[1:] or timer.times)
    examples = steps * s["batch_size"]
    logs = {key: float(values[-1]) for key, values in history.history.items()}
    print(f"    {name}: {s['epochs']} epochs in {seconds:.1f} s (steady epoch {steady:.2f} s, "
          f"{examples / steady:.0f} ex/s); last epoch: "
          + ", ".join(f"{k} {v:.4g}" for k, v in logs.items()), flush=True)
    return {"seconds": seconds, "steady_epoch_s": steady, "s_per_example": steady / examples,
            "steps": steps * s["epochs"], "final": logs}


def batched(fn, x, batch=1000):
    return np.concatenate([np.asarray(fn(x[i:i + batch])) for i in range(0, len(x), batch)])


def vae_posterior_draws(vae, x, seed):
    """One draw z ~ q(z|x) per example: samples of the VAE's aggregated posterior q(z)."""
    out = []
    for index, start in enumerate(range(0, len(x), 1000)):
        q = vae.posterior(x[start:start + 1000])
        out.append(np.asarray(q.sample(seed=(seed, index))))
    return np.concatenate(out)


# ----------------------------------------------------------------------------- part a
def plot_codes(path, title, panels, prior_samples, labels, prior_label="prior samples"):
    """One PNG: a scatter per (name, codes) panel, coloured by digit, with the prior samples in
    light grey underneath, and a last panel of the prior samples alone; the same axes for all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    everything = np.concatenate([prior_samples] + [codes for _, codes in panels])
    low, high = np.percentile(everything, [0.5, 99.5], axis=0)
    pad = 0.08 * (high - low)
    count = len(panels) + 1
    fig, axes = plt.subplots(1, count, figsize=(4.3 * count + 1.0, 4.9), squeeze=False,
                             layout="constrained")
    axes = axes[0]
    for ax, (name, codes) in zip(axes, panels):
        ax.scatter(prior_samples[:, 0], prior_samples[:, 1], s=2, c="0.85", linewidths=0,
                   rasterized=True)
        points = ax.scatter(codes[:, 0], codes[:, 1], s=2, c=labels, cmap="tab10", vmin=-0.5,
                            vmax=9.5, linewidths=0, rasterized=True)
        ax.set_title(name, fontsize=10)
    axes[-1].scatter(prior_samples[:, 0], prior_samples[:, 1], s=2, c="0.35", linewidths=0,
                     rasterized=True)
    axes[-1].set_title(f"{prior_label}\n({len(prior_samples)} samples)", fontsize=10)
    for ax in axes:
        ax.set_xlim(low[0] - pad[0], high[0] + pad[0])
        ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("z1")
    axes[0].set_ylabel("z2")
    fig.colorbar(points, ax=axes.tolist(), ticks=range(10), label="digit", shrink=0.8)
    fig.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def part_priors(data, s, out_dir):
    """Every row with the same cosine-decayed rate: at a fixed rate the adversarial game keeps
    oscillating and the AAE's MMD² with it (0.004 to 0.024 between epochs 10 and 60)."""
    import tfvae

    s = dict(s, cosine_decay=True)

    x_train, x_test, y_test = data["x_train"], data["x_test"], data["y_test"]
    rows, vaes = [], {}
    for index, (name, label) in enumerate(PRIORS):
        print(f"  prior {label}", flush=True)
        sampler = make_prior(name)
        prior_samples = np.asarray(sampler.sample(s["prior_samples"], seed=(s["seed"], 100 + index)))
        null_samples = np.asarray(sampler.sample(len(x_test), seed=(s["seed"], 200 + index)))
        aae = make_aae(s, prior=make_prior(name))
        aae_train = train(aae, x_train, None, s, f"AAE ({label})")
        aae_codes = batched(aae.encode, x_test)
        if sampler.has_density:
            vae = make_vae(s, make_prior(name))
            vae_train = train(vae, x_train, None, s, f"VAE ({label})")
            vaes[name] = (vae, vae_train, label)
        else:  # the VAE needs log p(z): the N(0, I) VAE stands in, compared with roll samples
            vae, vae_train, _ = vaes["standard_normal"]
        vae_prior = vaes["standard_normal"][2] if not sampler.has_density else label
        vae_draws = vae_posterior_draws(vae, x_test, s["seed"])
        vae_means = batched(vae.encode, x_test)
        start = time.perf_counter()
        mmd = {key: tfvae.evaluation.prior_mismatch(codes, prior_samples) for key, codes in
               (("aae", aae_codes), ("vae_draw", vae_draws), ("vae_mean", vae_means),
                ("null", null_samples))}
        mmd_seconds = time.perf_counter() - start
        holds = mmd["aae"] < mmd["vae_draw"]
        figure = out_dir / "figures" / f"aae_prior_{name}.png"
        plot_codes(figure, f"Codes of {len(x_test)} test images against the prior {label} "
                   "(light grey underneath)",
                   [(f"AAE, prior {label}\nMMD² {mmd['aae']:.4g}", aae_codes),
                    (f"VAE, prior {vae_prior}, z ~ q(z|x)\nMMD² {mmd['vae_draw']:.4g}", vae_draws)],
                   prior_samples, y_test, f"prior: {label}")
        row = {"prior": name, "label": label, "vae_prior": vae_prior,
               "vae_note": None if sampler.has_density else
               "the swiss roll has no density: the VAE is the N(0, I) one, compared with roll samples",
               "mmd2": mmd, "bandwidth": tfvae.evaluation.median_bandwidth(prior_samples),
               "aae_code_std": aae_codes.std(axis=0).tolist(),
               "vae_code_std": vae_draws.std(axis=0).tolist(), "holds": bool(holds),
               "aae_train": aae_train, "vae_train": vae_train, "mmd_seconds": mmd_seconds,
               "figure": str(figure.relative_to(out_dir))}
        rows.append(row)
        print(f"  {label}: MMD² AAE {mmd['aae']:.4g}, VAE {mmd['vae_draw']:.4g} (posterior means "
              f"{mmd['vae_mean']:.4g}), two prior samples {mmd['null']:.2g}  ->  AAE's q(z) closer "
              f"to the prior than the VAE's: {verdict(holds).upper()}", flush=True)
    claims = [claim(f"{row['label']}: the AAE's MMD² is smaller than the VAE's "
                    f"({row['mmd2']['aae']:.4g} vs {row['mmd2']['vae_draw']:.4g})", row["holds"])
              for row in rows]
    return {"rows": rows, "claims": claims, "settings": s}


# ----------------------------------------------------------------------------- parts b and c
def labelled_subset(y, per_class, seed):
    """Indices of `per_class` examples of each class, drawn with a fixed seed."""
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                                   for c in range(10)]))


def semi_supervised_stream(x, y, labelled, s):
    """Batches of `batch_size`: `labelled_per_batch` of the labelled examples (reshuffled, repeated)
    and the rest from the unlabelled ones (y = -1), an infinite tf.data stream of (x, y)."""
    import tensorflow as tf

    n_labelled, seed = s["labelled_per_batch"], s["seed"]
    unlabelled = np.setdiff1d(np.arange(len(x)), labelled)
    parts = [tf.data.Dataset.from_tensor_slices((x[idx], labels)).shuffle(len(idx), seed=seed + i)
             .repeat().batch(size, drop_remainder=True)
             for i, (idx, labels, size) in enumerate((
                 (unlabelled, np.full(len(unlabelled), -1, np.int64), s["batch_size"] - n_labelled),
                 (labelled, y[labelled].astype(np.int64), n_labelled)))]
    return tf.data.Dataset.zip(tuple(parts)).map(
        lambda u, l: (tf.concat([u[0], l[0]], 0), tf.concat([u[1], l[1]], 0))).prefetch(2)


def mlp_classifier(s, x, y):
    """The encoder's architecture with a softmax head, trained on (x, y) alone."""
    import keras

    keras.utils.set_random_seed(s["seed"])
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten()]
                             + [keras.layers.Dense(u, activation="relu") for u in s["hidden"]]
                             + [keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    # one step per epoch (100 examples, batch 100): `classifier_steps` Adam steps in all
    history = model.fit(x, y, batch_size=len(x), epochs=s["classifier_steps"], verbose=0)
    return model, {"seconds": time.perf_counter() - start,
                   "final_loss": float(history.history["loss"][-1]),
                   "final_train_accuracy": float(history.history["accuracy"][-1])}


def part_semi_supervised(data, s, out_dir):
    import keras

    import tfvae

    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    labelled = labelled_subset(y_train, s["labels_per_class"], s["seed"])
    y_semi = np.full(len(y_train), -1, np.int64)
    y_semi[labelled] = y_train[labelled]
    model, networks = make_ssaae(s, 10)
    stream = semi_supervised_stream(x_train, y_train, labelled, s) if s["labelled_per_batch"] else None
    trained = train(model, x_train, y_semi, s,
                    f"SemiSupervisedAAE ({len(labelled)} labels, {len(x_train) - len(labelled)} "
                    f"unlabelled, {s['labelled_per_batch'] or 'about 2'} labelled per batch; "
                    "classifier phase Adam(3e-3))", stream,
                    # the labelled phase at 3x the rate of the others (SemiSupervisedAAE docstring)
                    classifier_optimizer=keras.optimizers.Adam(3e-3))
    error = tfvae.evaluation.classification_error(batched(model.classify, x_test), y_test)
    baseline, base_train = mlp_classifier(s, x_train[labelled], y_train[labelled])
    base_error = tfvae.evaluation.classification_error(
        baseline.predict(x_test, batch_size=1000, verbose=0), y_test)
    print(f"  test error: SemiSupervisedAAE {pct(error)}; MLP on the {len(labelled)} labels alone "
          f"{pct(base_error)}; paper 1.90 % (full budget)", flush=True)
    return {"labelled": int(len(labelled)), "unlabelled": int(len(x_train) - len(labelled)),
            "labelled_per_batch": s["labelled_per_batch"],
            "labelled_indices_seed": s["seed"], "networks_given": networks,
            "test_error": error, "baseline_test_error": base_error, "ssaae_train": trained,
            "baseline_train": base_train, "paper_error": PAPER["semi_supervised_error"],
            "claims": [claim(f"the SemiSupervisedAAE beats the same MLP trained on the "
                             f"{len(labelled)} labels alone ({pct(error)} vs {pct(base_error)})",
                             error < base_error),
                       claim(f"the paper's {pct(PAPER['semi_supervised_error'])} (60k images, full "
                             f"budget) is reached at this budget (ours {pct(error)})",
                             error <= PAPER["semi_supervised_error"])]}


def part_clustering(data, s, out_dir):
    import tfvae

    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    k = s["clusters"]
    model, networks = make_ssaae(s, k)
    trained = train(model, x_train, None, s, f"SemiSupervisedAAE ({k} clusters, no labels)")
    train_ids = batched(model.cluster, x_train).astype(np.int64)
    test_ids = batched(model.cluster, x_test).astype(np.int64)
    error = tfvae.evaluation.clustering_error(test_ids, y_test, train_ids, y_train)
    start = time.perf_counter()
    centers, inertia = kmeans(x_train, k, restarts=s["kmeans_restarts"], seed=s["seed"])
    km_error = tfvae.evaluation.clustering_error(kmeans_assign(x_test, centers), y_test,
                                                 kmeans_assign(x_train, centers), y_train)
    km_seconds = time.perf_counter() - start
    used = int(len(np.unique(train_ids)))
    print(f"  clustering error ({k} clusters, {used} used): SemiSupervisedAAE {pct(error)}; "
          f"k-means on pixels {pct(km_error)}; paper 9.55 %", flush=True)
    return {"clusters": k, "clusters_used": used, "networks_given": networks, "test_error": error,
            "style_dim": model.style_dim, "discriminator_noise": model.discriminator_noise,
            "kmeans_test_error": km_error, "kmeans_inertia": inertia, "kmeans_seconds": km_seconds,
            "ssaae_train": trained, "paper_error": PAPER["clustering_error"],
            "claims": [claim(f"the AAE's clusters beat k-means on the pixels ({pct(error)} vs "
                             f"{pct(km_error)})", error < km_error),
                       claim(f"the paper's {pct(PAPER['clustering_error'])} (60k images, full "
                             f"budget) is reached at this budget (ours {pct(error)})",
                             error <= PAPER["clustering_error"])]}


# ----------------------------------------------------------------------------- part d
def plot_samples(path, samples, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = int(np.sqrt(min(len(samples), 100)))
    grid = samples[:n * n, :, :, 0].reshape(n, n, 28, 28).transpose(0, 2, 1, 3).reshape(n * 28, n * 28)
    fig, ax = plt.subplots(figsize=(5, 5.3))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def part_parzen(data, s, out_dir):
    import tfvae

    v = s["validation_examples"]
    x_val, x_fit, x_test = data["x_train"][:v], data["x_train"][v:], data["x_test"]
    model = make_aae(s, latent_dim=s["parzen_latent_dim"])
    trained = train(model, x_fit, None, s, f"AAE ({s['parzen_latent_dim']}-D N(0, I) code, "
                    f"{len(x_fit)} images; {v} held out for the bandwidth)")
    samples = np.asarray(model.sample(s["parzen_samples"], seed=s["seed"]))
    start = time.perf_counter()
    result = tfvae.evaluation.parzen_log_likelihood(samples, x_test, validation=x_val)
    seconds = time.perf_counter() - start
    # Reference: the training images themselves as the "samples" (same estimator, same sets).
    reference = tfvae.evaluation.parzen_log_likelihood(x_fit, x_test, validation=x_val)
    figure = out_dir / "figures" / "aae_samples.png"
    plot_samples(figure, samples, f"AAE samples ({s['parzen_latent_dim']}-D code), Parzen "
                 f"{result.mean:.0f} ± {result.standard_error:.0f} nats")
    paper, paper_se = PAPER["parzen"]
    print(f"  Parzen log-likelihood of {len(samples)} AAE samples on {len(x_test)} test images: "
          f"{result.mean:.1f} ± {result.standard_error:.1f} nats (σ {result.bandwidth:.3g}); "
          f"the {len(x_fit)} training images as samples: {reference.mean:.1f} ± "
          f"{reference.standard_error:.1f}; paper {paper:.0f} ± {paper_se:.0f}", flush=True)
    return {"mean": result.mean, "standard_error": result.standard_error,
            "bandwidth": result.bandwidth, "validation_scores": result.validation_scores,
            "samples": int(len(samples)), "test_examples": int(len(x_test)),
            "validation_examples": v, "fit_examples": int(len(x_fit)),
            "latent_dim": s["parzen_latent_dim"], "parzen_seconds": seconds,
            "reference_training_images": {"mean": reference.mean,
                                          "standard_error": reference.standard_error,
                                          "bandwidth": reference.bandwidth,
                                          "samples": int(len(x_fit))},
            "aae_train": trained, "paper": [paper, paper_se],
            "figure": str(figure.relative_to(out_dir)),
            "claims": [claim(f"the paper's {paper:.0f} ± {paper_se:.0f} nats is reached (ours "
                             f"{result.mean:.1f} ± {result.standard_error:.1f})",
                             result.mean + 2 * result.standard_error >= paper - 2 * paper_se)]}


# ----------------------------------------------------------------------------- part e
def worker_speed(cfg):
    """tfvae's side of part e, in its own process: examples/s with Keras defaults."""
    import keras
    import tfvae
    from iwae_mnist import EpochTimer

    x, _ = tfvae.datasets.load_arrays(cfg["data"], "train5k")
    x = x[np.random.default_rng(cfg["seed"]).permutation(len(x))][:cfg["train_examples"]]
    s = {"hidden": cfg["hidden"], "seed": cfg["seed"]}
    model = make_aae(s)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    timer = EpochTimer()
    model.fit(x, batch_size=cfg["batch_size"], epochs=cfg["epochs"], shuffle=True, verbose=0,
              callbacks=[timer])
    examples = len(x) // cfg["batch_size"] * cfg["batch_size"]
    steady = timer.times[1:] or timer.times
    return {"impl": "tfvae", "examples_per_epoch": examples, "epoch_times_s": timer.times,
            "first_epoch_s": timer.times[0], "steady_epoch_s": statistics.median(steady),
            "examples_per_s": examples / statistics.median(steady),
            "best_examples_per_s": examples / min(steady), "jit_compile": bool(model.jit_compile),
            "steps_per_execution": int(model.steps_per_execution),
            "tensorflow": __import__("tensorflow").__version__, "keras": keras.__version__}


def spawn(command, label):
    """Run one measurement in a fresh process; its last JSON line or {"error": ...}."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1", TQDM_DISABLE="1")
    load = os.getloadavg()[0]
    from run import json_subprocess

    result = json_subprocess(command, env, cwd=str(ROOT))
    result["load_avg_1m_before"] = load
    if "error" in result:
        print(f"    {label}: ERROR {result['error']}", flush=True)
    else:
        print(f"    {label}: {result['examples_per_s']:.0f} ex/s (best epoch "
              f"{result['best_examples_per_s']:.0f}), first epoch {result['first_epoch_s']:.1f} s, "
              f"load average {load:.2f} before", flush=True)
    return result


IMPLS = {"tfvae": "tfvae AdversarialAutoencoder (defaults: compile(optimizer=keras.optimizers.Adam(1e-3)), graph mode)",
         "pythae": "pythae Adversarial_AE (its AdversarialTrainer.train_step)",
         "torch": "plain PyTorch, tfvae's three phases per step"}


def part_speed(data_dir, s, args):
    cores = len(os.sched_getaffinity(0))
    cfg = {"data": str(data_dir), "hidden": s["hidden"], "batch_size": s["batch_size"],
           "epochs": s["speed_epochs"], "train_examples": s["speed_train_examples"],
           "seed": s["seed"], "latent_dim": 2}
    from run import torch_python

    python = torch_python(args.torch_python)
    runs = {impl: [] for impl in IMPLS}
    for round_index in range(s["speed_rounds"]):  # alternate the sides, so drift hits all
        for impl in IMPLS:
            label = f"round {round_index + 1} {impl}"
            if impl == "tfvae":
                command = [sys.executable, __file__, "--worker", json.dumps(cfg)]
            elif python is None:
                runs[impl].append({"error": "no interpreter with torch: pass --torch-python (see "
                                            "benchmarks/torch_aae_reference.py)"})
                continue
            else:
                torch_cfg = dict(cfg, impl=impl, threads=cores)
                command = [python, str(HERE / "torch_aae_reference.py"), "--config", json.dumps(torch_cfg)]
            runs[impl].append(spawn(command, label))
    summary = {}
    for impl, results in runs.items():
        ok = [r for r in results if "error" not in r]
        summary[impl] = None if not ok or len(ok) < len(results) else {
            "best_examples_per_s": max(r["best_examples_per_s"] for r in ok),
            "typical_examples_per_s": statistics.median(r["examples_per_s"] for r in ok)}
    ratios = {}
    for other in ("pythae", "torch"):
        if summary["tfvae"] and summary[other]:
            ratios[other] = {key: summary["tfvae"][key] / summary[other][key]
                             for key in ("best_examples_per_s", "typical_examples_per_s")}
            print(f"  tfvae / {other}: {ratios[other]['best_examples_per_s']:.2f} (best epochs), "
                  f"{ratios[other]['typical_examples_per_s']:.2f} (typical)", flush=True)
    return {"runs": runs, "summary": summary, "ratios": ratios, "torch_python": python,
            "threads": cores, "claims": []}


# ----------------------------------------------------------------------------- report
def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def budget_line(s, examples=None):
    examples = s["train_examples"] if examples is None else examples
    steps = s["epochs"] * -(-examples // s["batch_size"])
    rate = ("Adam with its rate cosine-decayed from 1e-3 to 1e-5 over the run" if s.get("cosine_decay")
            else "Adam(1e-3)")
    return (f"{s['epochs']} epochs of batch {s['batch_size']} over {examples} training images "
            f"({steps} steps per model), {rate} for every optimizer")


def command(argv):
    return "python3 benchmarks/aae_mnist.py" + "".join(" " + a for a in argv or ())


def part_budgets(parts):
    """'E epochs of ... for (a), (d); E' epochs for (b)': the training budget of each part that
    trains models to a quality (not (e), which times a few epochs), grouped."""
    groups = {}
    for letter, part in parts.items():
        if letter != "e" and "failure" not in part:
            groups.setdefault(budget_line(part["settings"]), []).append(f"({letter})")
    return "; ".join(f"{line} for {', '.join(letters)}" for line, letters in groups.items())


def part_header(part):
    return (f"*Run {part['date']}"
            + (f" (`{command(part['argv'])}`)" if "argv" in part else "")
            + f", {part['seconds'] / 60:.1f} min"
            + (", SMOKE MODE: tiny sizes, not results" if part["settings"].get("smoke") else "")
            + f"; budget: {budget_line(part['settings'])}.*")


def claims_md(part):
    return [f"- **{verdict(c['holds'])}**: {c['claim']}" for c in part["claims"]]


def markdown_priors(part):
    rows = []
    for r in part["rows"]:
        m = r["mmd2"]
        rows.append([r["label"], f"{m['aae']:.4g}", r["vae_prior"] + (" *" if r["vae_note"] else ""),
                     f"{m['vae_draw']:.4g}", f"{m['vae_mean']:.4g}", f"{m['null']:.2g}",
                     f"{r['bandwidth']:.3g}", f"**{verdict(r['holds'])}**"])
    s = part["settings"]
    md = ["### (a) Priors: does q(z) match p(z)?", "", part_header(part), "",
          f"2-D code, deterministic AAE posterior; the VAE has the same encoder/decoder bodies and "
          f"a Gaussian q(z|x). prior_mismatch = unbiased MMD² (Gaussian kernel, σ by the median "
          f"heuristic on the prior samples) between the codes of {s['test_examples']} test images and "
          f"{s['prior_samples']} prior samples, the same samples for both models. The VAE's codes "
          "are one draw z ~ q(z|x) per image (samples of its aggregated posterior q(z)); the "
          "column 'VAE means' uses μ(x) instead. 'two prior samples' = MMD² between two independent "
          "prior sample sets of the same sizes: the statistic's noise level."
          + (" Every model's rate decays (the paper decays its rates too): at a fixed Adam(1e-3) "
             "the adversarial game keeps oscillating, and the AAE's MMD² with it (N(0, I), "
             "measured every 10 epochs from 10 to 60: 0.018, 0.0064, 0.012, 0.0038, 0.016, 0.024)."
             if s.get("cosine_decay") else ""), "",
          table(["prior", "AAE MMD²", "VAE prior", "VAE MMD²", "VAE means MMD²",
                 "two prior samples", "σ", "AAE < VAE"], rows), ""]
    if any(r["vae_note"] for r in part["rows"]):
        md += ["\\* The swiss roll has no density, so a VAE cannot use it: the row's VAE is the "
               "N(0, I) VAE, its codes compared with swiss-roll samples.", ""]
    md += [f"![{r['label']}]({r['figure']})" for r in part["rows"]] + [""]
    md += ["Claim (paper, Fig. 2-4): the AAE's q(z) matches the prior and the VAE's does not.", ""]
    return md + claims_md(part) + [""]


def markdown_semi(part):
    s = part["settings"]
    rows = [["SemiSupervisedAAE", f"{part['labelled']} labels + {part['unlabelled']} unlabelled",
             budget_line(s), f"**{pct(part['test_error'])}**"],
            ["MLP " + "-".join(["784"] + [str(u) for u in s["hidden"]] + ["10"]) + " (softmax)",
             f"the {part['labelled']} labels alone", f"{s['classifier_steps']} Adam(1e-3) steps of "
             f"batch {part['labelled']} (train accuracy "
             f"{part['baseline_train']['final_train_accuracy']:.2f})",
             pct(part["baseline_test_error"])],
            ["paper (Makhzani et al. 2016, Table 2)", "100 labels + 59,900 unlabelled",
             "full budget", pct(part["paper_error"])]]
    md = ["### (b) Semi-supervised classification, 100 labels", "", part_header(part), "",
          f"{s['labels_per_class']} labels per class drawn with seed {s['seed']}; y = -1 for the rest. "
          + (f"Each batch of {s['batch_size']} holds {part['labelled_per_batch']} labelled examples "
             "(drawn from the labelled ones, reshuffled and repeated: the paper updates q(y|x) on a "
             "labelled mini-batch every step) and the rest unlabelled; an epoch = "
             f"{-(-s['train_examples'] // s['batch_size'])} such batches. "
             if part.get("labelled_per_batch") else
             "The labelled examples sit in the shuffled stream as they are (about 2 per batch). ")
          + f"Style code {s['style_dim']}-D. Test error on {s['test_examples']} test images.", "",
          table(["model", "training data", "budget", "test error"], rows), ""]
    return md + claims_md(part) + [""]


def markdown_clustering(part):
    s = part["settings"]
    rows = [["SemiSupervisedAAE, fit(x) without labels", f"{part['clusters']} ({part['clusters_used']} used)",
             pct(part["test_error"])],
            ["k-means on the pixels (numpy, k-means++, best of "
             f"{s['kmeans_restarts']} by inertia)", str(part["clusters"]), pct(part["kmeans_test_error"])],
            ["paper (Makhzani et al. 2016, Table 3)", "16", pct(part["paper_error"])]]
    md = ["### (c) Unsupervised clustering", "", part_header(part), "",
          "clustering_error: each cluster takes the majority label of its training members (the "
          "paper takes the label of its most confident member); error on the test set."
          + (f" Style code {part['style_dim']}-D; the discriminators' input noise "
             f"discriminator_noise = {part['discriminator_noise']} (the class default; at 0.1 the "
             "softmax collapsed onto 3 of the 16 clusters, see the SemiSupervisedAAE docstring)."
             if "discriminator_noise" in part else ""), "",
          table(["model", "clusters", "test error"], rows), ""]
    return md + claims_md(part) + [""]


def markdown_parzen(part):
    s = part["settings"]
    ref = part["reference_training_images"]
    rows = [[f"AAE, {part['latent_dim']}-D N(0, I) code", part["samples"],
             f"{part['bandwidth']:.3g}", f"**{part['mean']:.1f} ± {part['standard_error']:.1f}**"],
            [f"the {ref['samples']} training images themselves", ref["samples"],
             f"{ref['bandwidth']:.3g}", f"{ref['mean']:.1f} ± {ref['standard_error']:.1f}"],
            ["paper (Table 1, AAE on MNIST)", "10,000", "—",
             f"{part['paper'][0]:.0f} ± {part['paper'][1]:.0f}"]]
    md = ["### (d) Parzen window log-likelihood", "", part_header(part), "",
          f"The AAE trains on {part['fit_examples']} images; {part['validation_examples']} other "
          "training images choose the Gaussian kernel's σ (21 values, 0.01 to 1); the estimate is "
          f"on {part['test_examples']} test images, mean ± standard error in nats. Pixels are the "
          "grey levels x/255 in [0, 1] (not binarized) and the samples are decoded means "
          "E[x|z] in [0, 1], as in the Parzen protocol of Goodfellow et al. (2014). The estimate "
          "depends on σ, the data and the sample count more than on the model, so compare rows "
          "of the same run; the second row shows what real images score.", "",
          table(["samples from", "number", "σ", "log-likelihood (nats)"], rows), "",
          f"![AAE samples]({part['figure']})", ""]
    return md + claims_md(part) + [""]


def markdown_speed(part):
    s = part["settings"]
    rows = []
    for impl, title in IMPLS.items():
        summary = part["summary"][impl]
        if summary is None:
            errors = [r["error"] for r in part["runs"][impl] if "error" in r]
            rows.append([title, "ERROR: " + (errors[0] if errors else "no run"), "", ""])
            continue
        ratio = part["ratios"].get(impl)
        rows.append([title, f"{summary['best_examples_per_s']:.0f}",
                     f"{summary['typical_examples_per_s']:.0f}",
                     "1" if impl == "tfvae" else (f"**{ratio['best_examples_per_s']:.2f}** "
                                                   f"({ratio['typical_examples_per_s']:.2f})")])
    first = next((r for runs in part["runs"].values() for r in runs if "torch_version" in r), {})
    tf_run = next((r for r in part["runs"]["tfvae"] if "tensorflow" in r), {})
    pythae = next((r for r in part["runs"]["pythae"] if "pythae_version" in r), {})
    md = ["### (e) Training speed", "", part_header(dict(part, settings=dict(
              s, epochs=s["speed_epochs"], train_examples=s["speed_train_examples"]))), "",
          f"2-D AAE, encoder 784-{'-'.join(map(str, s['hidden']))}-2, decoder and discriminator "
          f"alike, batch {s['batch_size']}, {s['speed_train_examples']} images, "
          f"{s['speed_epochs']} epochs per run, {s['speed_rounds']} alternating rounds, each run "
          f"in a fresh process (CPU, {part['threads']} threads). best = the fastest epoch after the "
          "first in any round; typical = the median over rounds of each run's median epoch. "
          f"TensorFlow {tf_run.get('tensorflow', '?')}, Keras {tf_run.get('keras', '?')} "
          f"(jit_compile {tf_run.get('jit_compile', '?')}, steps_per_execution "
          f"{tf_run.get('steps_per_execution', '?')}); PyTorch {first.get('torch_version', '?')}"
          f", pythae {pythae.get('pythae_version', '?')} (`{part['torch_python']}`). 1-minute load "
          "average before each run: " + ", ".join(
              f"{r['load_avg_1m_before']:.2f}" for runs in part["runs"].values() for r in runs
              if "load_avg_1m_before" in r)
          + " (other processes on the cores slow the sides unequally: compare only runs on a quiet "
          "machine).", "",
          table(["implementation", "best ex/s", "typical ex/s", "tfvae / this (best, typical)"], rows), "",
          "The steps differ: tfvae (and the plain PyTorch loop) run the paper's phases as three "
          "updates per batch, reconstruction, discriminator, generator, each with its own forward "
          "pass (the encoder runs three times); pythae does one forward pass and one joint update "
          "(reconstruction + 0.5 × the generator's cross-entropy for the autoencoder, the "
          "discriminator's loss for D). The plain loop is the like-for-like row.", ""]
    return md


RENDER = {"a": markdown_priors, "b": markdown_semi, "c": markdown_clustering,
          "d": markdown_parzen, "e": markdown_speed}


def render(results):
    machine = results.get("machine", {})
    s = results["settings"]
    md = [f"## {SECTION_TITLE}", "",
          f"`{command(results['argv'])}` (the last run; each part's header names its own)"
          + (" (SMOKE MODE: tiny sizes, checks the script only)" if s.get("smoke") else "")
          + f": Makhzani et al. (2016) on real MNIST. Machine: {machine.get('cpu_model', '?')}, "
          f"{machine.get('cpu_affinity', '?')} cores, load average {machine.get('load_avg_1m', 0):.2f} "
          f"at the start; TensorFlow {machine.get('tensorflow', '?')}, Keras {machine.get('keras', '?')}.",
          "",
          f"Data: `../shared/data/mnist`: train5k shuffled with seed {s['seed']} "
          f"({s['train_examples']} images used), the first {s['test_examples']} test images; grey "
          "levels x/255 in [0, 1], not binarized. Every row of every part has the same networks: "
          f"MLP bodies {'-'.join(map(str, s['hidden']))} ReLU (the paper's two layers of 1000) for "
          "encoder, decoder and discriminator(s), the model sizing the last layer; Bernoulli "
          "reconstruction (binary cross-entropy summed over the 784 pixels); tfvae's default "
          "compile (the discriminator and generator optimizers are copies of `optimizer`); the "
          "same training budget for every row of a part: " + part_budgets(results["parts"])
          + ". The paper trains on 60,000 images for "
          "many more steps: its numbers are the full-budget reference, not a target for this run.",
          ""]
    for letter in PARTS:
        part = results["parts"].get(letter)
        if part is None:
            continue
        if "failure" in part:
            md += [f"### ({letter}) {PARTS[letter]}", "", f"*Run {part['date']}*: **did not run**: "
                   f"{part['failure']}", ""]
            continue
        md += RENDER[letter](part)
    timings = [[f"({k}) {PARTS[k]}", f"{p['seconds']:.0f}", p["date"]]
               for k, p in results["parts"].items() if "seconds" in p]
    md += ["### Time per part", "", table(["part", "seconds", "run"], timings), ""]
    return "\n".join(md)


# ----------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[2:]))
    p.add_argument("--parts", nargs="+", help="letters of the parts to run (default: all of abcde)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks that everything runs")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of MNIST IDX files")
    p.add_argument("--out-dir", type=Path, help="where results.md, aae_mnist_results.json and "
                   "figures/ go (default docs/; with --smoke /tmp/aae_mnist_smoke)")
    p.add_argument("--torch-python", help="interpreter with torch (and pythae) for part e")
    p.add_argument("--seed", type=int, default=0)
    for key, value in FULL.items():
        if isinstance(value, list):
            p.add_argument("--" + key.replace("_", "-"), type=int, nargs="+", help=f"default {value}")
        else:
            p.add_argument("--" + key.replace("_", "-"), type=int,
                           help=f"default {value} (smoke {SMOKE[key]})")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sys.path.insert(0, str(HERE))
    if args.worker:
        print(json.dumps(worker_speed(json.loads(args.worker))))
        return 0
    try:
        parts = parse_parts(args.parts)
    except ValueError as error:
        p.error(str(error))
    if not (args.data / "train5k-images-idx3-ubyte.gz").exists():
        sys.exit(f"MNIST IDX files not found in {args.data} (expected train5k-images-idx3-ubyte.gz "
                 "and t10k-*); pass --data")
    s = dict(SMOKE if args.smoke else FULL, seed=args.seed, smoke=args.smoke)
    for key in FULL:
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    out_dir = args.out_dir or (Path("/tmp/aae_mnist_smoke") if args.smoke else ROOT / "docs")
    out_dir.mkdir(parents=True, exist_ok=True)

    from roofline import machine_description

    start = time.perf_counter()
    machine = machine_description()
    print(f"AAE benchmark, parts {''.join(parts)}{' (SMOKE)' if args.smoke else ''}: "
          f"{budget_line(s)}; networks {s['hidden']}; {machine['cpu_affinity']} cores, load "
          f"{machine['load_avg_1m']:.2f}; output {out_dir}", flush=True)
    data = None
    if set(parts) & set("abcd"):
        data = load_data(args.data, s)
        print(f"data: {len(data['x_train'])} training, {len(data['x_test'])} test images "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    runners = {"a": lambda: part_priors(data, s, out_dir),
               "b": lambda: part_semi_supervised(data, s, out_dir),
               "c": lambda: part_clustering(data, s, out_dir),
               "d": lambda: part_parzen(data, s, out_dir),
               "e": lambda: part_speed(args.data, s, args)}
    new, failed = {}, []
    for letter in parts:
        print(f"part {letter} ({PARTS[letter]})", flush=True)
        part_start = time.perf_counter()
        date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        try:
            result = runners[letter]()
        except Exception as error:  # noqa: BLE001 - reported as the part's result, the others run
            failed.append(letter)
            message = f"{type(error).__name__}: {error}"
            print(f"  PART {letter} FAILED: {message}", flush=True)
            new[letter] = {"date": date, "failure": message, "settings": s}
            continue
        seconds = time.perf_counter() - part_start
        new[letter] = dict(result, date=date, seconds=seconds, settings=result.get("settings", s),
                           argv=sys.argv[1:] if argv is None else list(argv))
        for c in result["claims"]:
            print(f"  CLAIM {verdict(c['holds']).upper()}: {c['claim']}", flush=True)
        print(f"part {letter} done in {seconds:.0f} s ({seconds / 60:.1f} min)", flush=True)

    json_path = out_dir / "aae_mnist_results.json"
    results = {"parts": {}}
    if json_path.exists():  # parts not run this time keep their last results (same mode only)
        old = json.loads(json_path.read_text())
        if old.get("settings", {}).get("smoke") == args.smoke:
            results["parts"] = old.get("parts", {})
    results["parts"].update(new)
    results["parts"] = {k: results["parts"][k] for k in PARTS if k in results["parts"]}
    results.update(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                   argv=sys.argv[1:] if argv is None else list(argv), settings=s, machine=machine,
                   total_s=time.perf_counter() - start)
    json_path.write_text(json.dumps(results, indent=2, default=float) + "\n")
    md_path = out_dir / "results.md"
    md_path.write_text(replace_section(md_path.read_text() if md_path.exists() else "",
                                       SECTION_TITLE, render(results)))
    total = time.perf_counter() - start
    print("time per part: " + ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in new.items()
                                        if "seconds" in v) + f"; total {total / 60:.1f} min")
    if args.smoke:
        estimate(new, s)
    print(f"wrote {md_path} (section '{SECTION_TITLE}'), {json_path}, {out_dir / 'figures'}")
    if failed:
        print(f"parts that did not run: {', '.join(failed)}")
    return 1 if failed else 0


def estimate(new, s):
    """Training time of a full run, from the steady epochs measured at the full network width."""
    full_steps = FULL["epochs"] * FULL["train_examples"]
    parzen_steps = FULL["epochs"] * (FULL["train_examples"] - FULL["validation_examples"])
    seconds = 0.0
    for letter, part in new.items():
        trainings = []
        if letter == "a":
            trainings = [row[key] for row in part.get("rows", []) for key in ("aae_train", "vae_train")
                         if not (key == "vae_train" and row["vae_note"])]
        elif letter in "bc":
            trainings = [part["ssaae_train"]] if "ssaae_train" in part else []
        elif letter == "d":
            trainings = [part["aae_train"]] if "aae_train" in part else []
        steps = parzen_steps if letter == "d" else full_steps
        seconds += sum(t["s_per_example"] * steps for t in trainings)
    if seconds and s["hidden"] == FULL["hidden"]:
        print(f"estimated training time of these parts at the full budget ({FULL['epochs']} epochs "
              f"x {FULL['train_examples']} images), from the smoke run's steady epochs: "
              f"{seconds / 60:.1f} min (few steps: a rough figure; evaluation and part e extra)")


if __name__ == "__main__":
    sys.exit(main())
