"""The VQ-VAE (van den Oord et al. 2017) on real MNIST and the full Fashion-MNIST: codebook health,
reconstruction, and what the learned prior over codes adds, at a stated budget.

    python3 benchmarks/vqvae_mnist.py                  # ~35 min on 2 cores -> docs/
    python3 benchmarks/vqvae_mnist.py --smoke          # 2 epochs on 500 images, 2-4 min (-> /tmp/vqvae_smoke)
    python3 benchmarks/vqvae_mnist.py --datasets mnist --epochs 30

For each data set, two VQ-VAEs at K = 512 codes of D = 64 (`tfvae.VQVAE`, the default networks
`vq_encoder(filters)` / `vq_decoder(filters)`: 28x28 -> a 7x7 grid of codes), one with the codebook
learned by gradient (Eq. 3's codebook loss) and one with the EMA codebook (decay 0.99, Appendix
A.1), the same seed, data and budget; Bernoulli likelihood, Adam(1e-3), batch 100, tfvae's
default compile. Then, for each:

* the test set (statically binarized once): -log p(x|z_q(x)) per image (nats), the mean squared
  error per pixel of the mean reconstruction E[x|z_q(x)] against the binarized input and against
  the grey levels, and the perplexity and number of codes used of the test images' codes
  (`objectives.perplexity` of the counts of `encode` over the whole test set, not one batch);
* the prior over codes: a `PixelCNNPrior` trained by `VQVAE.fit_prior` on the codes of the
  training images (binarized once); its NLL in bits per code on the test codes next to the
  uniform prior's log2 K and a unigram prior's (the training codes' frequencies, Laplace-smoothed:
  (count + 1) / (N + K)); bits/dim of `approximate_log_likelihood` (log p(x|z_q) + log p(z_q), the
  paper's Sec. 3.2 estimate) with the learned and with the uniform prior;
* samples: 1,000 from the learned prior and 1,000 from the uniform prior (codes drawn uniformly
  from all K, what `sample` does without a prior), decoded to pixel means; an 8x8 grid of each
  side by side in docs/figures/vqvae_<data>_<codebook>_samples.png (left learned, right uniform)
  and test reconstructions in docs/figures/vqvae_<data>_<codebook>_reconstructions.png; the mean
  confidence (max softmax) of a small CNN classifier trained on the real training images (grey
  levels) on each set of samples, with the number of classes it sees in them (exp of the entropy
  of the predicted-class histogram), its test accuracy and its confidence on real test images;
* training examples/s (steady epochs), and pythae 0.1.2's VQVAE on the same networks and batch
  (benchmarks/pythae_reference.py, in the interpreter `run.torch_python` finds) for reference.

Data: MNIST from ../shared/data/mnist (train5k, t10k); Fashion-MNIST from
/usr/share/datasets/fashion-mnist (`apt-get install -y dataset-fashion-mnist`: train, 60,000
images, and t10k). Both are trained dynamically binarized (pixels redrawn as Bernoulli(grey level)
every epoch) with the Bernoulli likelihood, so the garments' grey textures reach the model only as
pixel frequencies; E[x|z] then estimates the grey levels. The test images are binarized once.

Writes docs/vqvae_mnist_results.json, the figures, and the section "VQ-VAE (benchmarks/
vqvae_mnist.py)" of docs/results.md (other sections kept).
"""
import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECTION_TITLE = "VQ-VAE (benchmarks/vqvae_mnist.py)"
#: name -> the VQVAE arguments of its codebook: the paper's two, and the EMA one with dead-code
#: restarts (codes unused for 100 steps re-drawn from encoder outputs), the answer to index collapse.
CODEBOOKS = {"plain": {"ema_decay": None}, "ema": {"ema_decay": 0.99},
             "ema+restarts": {"ema_decay": 0.99, "dead_code_restart": 100}}
#: The codebooks pythae's VQVAE has (no restarts), timed beside tfvae's.
PYTHAE_CODEBOOKS = ("plain", "ema")
#: name -> (label, default folder, training split, test split, classes)
DATASETS = {
    "mnist": ("MNIST", ROOT.parent / "shared" / "data" / "mnist", "train5k", "t10k",
              "0 1 2 3 4 5 6 7 8 9".split()),
    "fashion_mnist": ("Fashion-MNIST", Path("/usr/share/datasets/fashion-mnist"), "train", "t10k",
                      ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                       "sneaker", "bag", "ankle boot"]),
}
#: Per data set: VQ-VAE epochs, prior epochs, classifier epochs (about 1,000-1,800 steps of
#: batch 100 each for the VQ-VAE and the prior: 5,000 MNIST images, 60,000 Fashion-MNIST ones).
BUDGET = {"mnist": {"epochs": 20, "prior_epochs": 20, "classifier_epochs": 5},
          "fashion_mnist": {"epochs": 2, "prior_epochs": 3, "classifier_epochs": 2}}
FULL = dict(filters=64, prior_filters=32, prior_layers=6, num_codes=512, code_dim=64,
            batch_size=100, learning_rate=1e-3, train_examples=None, test_examples=None,
            samples=1000, pythae_epochs=3, pythae_examples=5000)
SMOKE = dict(FULL, train_examples=500, test_examples=300, samples=100, pythae_epochs=2,
             pythae_examples=300)
SMOKE_BUDGET = {"epochs": 2, "prior_epochs": 2, "classifier_epochs": 1}


# ----------------------------------------------------------------------------- pure helpers
def per_dataset(values, datasets, key, smoke=False):
    """{dataset: value} from a --epochs-style option: None (the defaults, or the smoke budget),
    one value for every data set, or one per data set in the order of `datasets`."""
    if values is None:
        return {d: SMOKE_BUDGET[key] if smoke else BUDGET[d][key] for d in datasets}
    if len(values) == 1:
        return {d: values[0] for d in datasets}
    if len(values) != len(datasets):
        raise ValueError(f"--{key.replace('_', '-')}: give one value, or one per data set "
                         f"({len(datasets)}: {', '.join(datasets)}); got {len(values)}")
    return dict(zip(datasets, values))


def code_statistics(codes, num_codes):
    """(perplexity exp(H), codes used) of the code indices `codes` (any shape), in float64."""
    counts = np.bincount(np.asarray(codes).reshape(-1), minlength=num_codes).astype(np.float64)
    p = counts / counts.sum()
    nonzero = p[p > 0]
    return float(np.exp(-np.sum(nonzero * np.log(nonzero)))), int(np.count_nonzero(counts))


def unigram_bits_per_code(train_codes, test_codes, num_codes):
    """Mean -log2 p(c) over the test codes under the training codes' frequencies with Laplace
    smoothing, p(c) = (count(c) + 1) / (N + K): codes unseen in training keep a finite cost."""
    counts = np.bincount(np.asarray(train_codes).reshape(-1), minlength=num_codes).astype(np.float64)
    p = (counts + 1.0) / (counts.sum() + num_codes)
    return float(-np.mean(np.log2(p[np.asarray(test_codes).reshape(-1)])))


def confidence_summary(probabilities):
    """Mean max-softmax confidence, the predicted-class histogram and its exp-entropy (the
    effective number of classes the classifier sees) of class probabilities `[N, C]`."""
    probabilities = np.asarray(probabilities, np.float64)
    counts = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1])
    p = counts[counts > 0] / counts.sum()
    return {"confidence": float(probabilities.max(axis=1).mean()), "class_counts": counts.tolist(),
            "effective_classes": float(np.exp(-np.sum(p * np.log(p))))}


def claims(datasets):
    """The claims table: per data set and codebook with a learned prior, the prior's test NLL
    against log2 K and the unigram prior, the classifier's confidence on learned- against
    uniform-prior samples; per data set, codes used by the EMA codebook against the plain one."""
    out = []
    for d in datasets:
        rows = {r["codebook"]: r for r in d.get("rows", [])}
        for name, r in rows.items():
            prior = r.get("prior")
            if prior is None:
                continue
            where = f"{d['label']}, {name} codebook"
            bits, uniform, unigram = prior["test_bits_per_code"], r["uniform_bits_per_code"], r["unigram_bits_per_code"]
            out.append({"claim": f"{where}: the learned prior's NLL is below log2(K) bits per code",
                        "values": f"{bits:.3f} vs {uniform:.3f}", "holds": bits < uniform})
            out.append({"claim": f"{where}: the learned prior's NLL is below the unigram prior's",
                        "values": f"{bits:.3f} vs {unigram:.3f} bits/code", "holds": bits < unigram})
            learned, flat = r["samples"]["learned"]["confidence"], r["samples"]["uniform"]["confidence"]
            out.append({"claim": f"{where}: the classifier is more confident on learned-prior samples "
                                 "than on uniform-prior samples",
                        "values": f"{learned:.3f} vs {flat:.3f}", "holds": learned > flat})
        if "plain" in rows and "ema" in rows:
            ema, plain = rows["ema"]["test"]["codes_used"], rows["plain"]["test"]["codes_used"]
            out.append({"claim": f"{d['label']}: the EMA codebook uses more codes than the plain one "
                                 "(test set)",
                        "values": f"{ema} vs {plain} of {rows['ema']['num_codes']}", "holds": ema > plain})
    return out


def estimate_seconds(datasets, full, key="s_per_example"):
    """Seconds of the trainings and samplings of a run at the `full` budget (epochs per data set
    and the full images), from the seconds per example that these (smoke) results measured:
    wall seconds with key="s_per_example", CPU seconds with "cpu_s_per_example"."""
    sample_key = "sample_" + key.replace("per_example", "per_sample")
    total = 0.0
    for d in datasets:
        n, epochs = d["full_train_examples"], full[d["name"]]
        total += d["classifier"][key] * n * epochs["classifier_epochs"]
        for r in d.get("rows", []):
            total += r["train"][key] * n * epochs["epochs"]
            if r.get("prior"):
                total += r["prior"][key] * n * epochs["prior_epochs"]
                total += r["prior"][sample_key] * FULL["samples"]
    return total


# ----------------------------------------------------------------------------- data and models
def load_dataset(name, folder, s, seed):
    """Grey-level training and test images `[N, 28, 28, 1]` in [0, 1] with labels, the test
    images binarized once (seed 0) and the training images binarized once (seed 1, for the
    codes the priors train on); the training images shuffled with `seed` before any subset."""
    import tfvae

    _, _, train_split, test_split, _ = DATASETS[name]
    x_train, y_train = tfvae.datasets.load_arrays(str(folder), train_split)
    full = len(x_train)
    order = np.random.default_rng(seed).permutation(full)  # MNIST's train5k is sorted by class
    x_train, y_train = x_train[order][:s["train_examples"]], y_train[order][:s["train_examples"]]
    x_test, y_test = tfvae.datasets.load_arrays(str(folder), test_split, take=s["test_examples"])
    x_test_bin, _ = tfvae.datasets.load_arrays(str(folder), test_split, binarize="static", seed=0,
                                               take=s["test_examples"])
    x_train_bin = np.asarray(tfvae.datasets.binarize_static(x_train, seed=1))
    return {"x_train": x_train, "y_train": y_train, "x_train_bin": x_train_bin, "x_test": x_test,
            "y_test": y_test, "x_test_bin": x_test_bin, "full_train_examples": full}


def training_stream(x, s, seed):
    """Shuffled batches of `x`, dynamically binarized (redrawn every epoch)."""
    import tensorflow as tf

    import tfvae

    ds = tf.data.Dataset.from_tensor_slices(x).cache().shuffle(len(x), seed=seed)
    ds = ds.batch(s["batch_size"], drop_remainder=True)
    return ds.map(lambda b: tfvae.datasets.binarize_dynamic(b)).prefetch(tf.data.AUTOTUNE)


def epoch_timer():
    """A Keras callback that records each epoch's wall time (`times`) and this process's CPU
    time (`cpu_times`, all threads: what the epoch costs whatever else runs on the machine)."""
    import keras

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times, self.cpu_times = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start[0])
            self.cpu_times.append(time.process_time() - self.start[1])

    return Timer()


def timing(timer, examples_per_epoch, seconds):
    """Steady-epoch figures (median of epochs 2..n) from an `epoch_timer`."""
    steady = statistics.median(timer.times[1:] or timer.times)
    cpu = statistics.median(timer.cpu_times[1:] or timer.cpu_times)
    return {"seconds": seconds, "epoch_times_s": timer.times, "steady_epoch_s": steady,
            "examples_per_s": examples_per_epoch / steady,
            "best_examples_per_s": examples_per_epoch / min(timer.times[1:] or timer.times),
            "s_per_example": steady / examples_per_epoch, "cpu_s_per_example": cpu / examples_per_epoch}


def timed_fit(model, data, epochs, examples_per_epoch, **kwargs):
    """model.fit with a per-epoch timer: (history, `timing`)."""
    timer = epoch_timer()
    start = time.perf_counter()
    history = model.fit(data, epochs=epochs, verbose=0, callbacks=[timer], **kwargs)
    return history, timing(timer, examples_per_epoch, time.perf_counter() - start)


def batched(fn, x, batch=500):
    return np.concatenate([np.asarray(fn(x[i:i + batch])) for i in range(0, len(x), batch)])


def train_classifier(data, epochs, s, seed):
    """A small CNN (conv 32, pool, conv 64, pool, dense 128; ReLU) on the grey training images."""
    import keras

    keras.utils.set_random_seed(seed)
    net = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(), keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])
    net.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data["x_train"], data["y_train"]
    _, timing = timed_fit(net, x, epochs, len(x), y=y, batch_size=s["batch_size"], shuffle=True)
    probs = classify(net, data["x_test"])
    real = confidence_summary(probs)
    result = {"epochs": epochs, "test_accuracy": float(np.mean(probs.argmax(1) == data["y_test"])),
              "test_confidence": real["confidence"], **timing}
    print(f"  classifier: {epochs} epochs in {timing['seconds']:.0f} s, test accuracy "
          f"{result['test_accuracy']:.4f}, confidence on the test images {real['confidence']:.3f}", flush=True)
    return net, result


def classify(net, x):
    import keras

    return np.asarray(keras.ops.softmax(net.predict(x, batch_size=500, verbose=0)))


def save_side_by_side(left, right, path, columns=8, gap=12):
    """Two image grids, `left` and `right` `[N, 28, 28, 1]`, side by side in one PNG."""
    import tfvae

    a, b = (tfvae.plotting.image_grid(v, columns=columns) for v in (left, right))
    height = max(a.shape[0], b.shape[0])
    pad = lambda g: np.pad(g, ((0, height - g.shape[0]), (0, 0)), constant_values=255)  # noqa: E731
    grid = np.concatenate([pad(a), np.full((height, gap), 255.0), pad(b)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tfvae.plotting.save_png(grid, path)


def train_and_evaluate(name, codebook, data, s, budget, net, out_dir, with_prior, seed):
    import keras

    import tfvae

    keras.utils.set_random_seed(seed)
    filters = s["filters"]
    model = tfvae.VQVAE((28, 28, 1), num_codes=s["num_codes"], code_dim=s["code_dim"],
                        encoder=tfvae.networks.vq_encoder(filters), decoder=tfvae.networks.vq_decoder(filters),
                        **CODEBOOKS[codebook], seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(s["learning_rate"]))
    stream = training_stream(data["x_train"], s, seed)
    examples = (len(data["x_train"]) // s["batch_size"]) * s["batch_size"]
    history, train = timed_fit(model, stream, budget["epochs"], examples, shuffle=False)  # the stream shuffles
    train["final"] = {k: float(v[-1]) for k, v in history.history.items()}
    k, positions = model.num_codes, math.prod(model.grid_shape)

    x_bin = data["x_test_bin"]
    start = time.perf_counter()
    codes = model.encode_data(x_bin)
    log_px_z = batched(model.decoder_log_prob, x_bin)
    recon = batched(model.reconstruct, x_bin)
    perplexity, used = code_statistics(codes, k)
    test = {"nll": float(-log_px_z.mean()), "nll_standard_error": float(log_px_z.std() / np.sqrt(len(x_bin))),
            "mse_binary": float(np.mean((recon - x_bin) ** 2)),
            "mse_grey": float(np.mean((recon - data["x_test"]) ** 2)),
            "perplexity": perplexity, "codes_used": used}
    train_codes = model.encode_data(data["x_train_bin"])
    uniform_bits = math.log2(k)
    row = {"codebook": codebook, **CODEBOOKS[codebook], "num_codes": k, "code_dim": model.code_dim,
           "grid_shape": list(model.grid_shape), "train": train, "test": test,
           "train_codes_used": code_statistics(train_codes, k)[1],
           "uniform_bits_per_code": uniform_bits,
           "unigram_bits_per_code": unigram_bits_per_code(train_codes, codes, k),
           "bits_per_dim_uniform": tfvae.evaluation.bits_per_dim(
               float(-log_px_z.mean()) + positions * math.log(k), 784),
           "prior": None}
    print(f"  {codebook}: {budget['epochs']} epochs in {train['seconds']:.0f} s "
          f"({train['examples_per_s']:.0f} ex/s); test NLL {test['nll']:.2f} nats, MSE "
          f"{test['mse_binary']:.4f} (grey {test['mse_grey']:.4f}), perplexity {perplexity:.1f}, "
          f"codes used {used}/{k}; unigram {row['unigram_bits_per_code']:.3f} bits/code", flush=True)

    fig = f"figures/vqvae_{name}_{codebook}"
    show = min(32, len(x_bin))
    tfvae.plotting.save_png(tfvae.plotting.reconstruction_grid(x_bin[:show], recon[:show]),
                            out_dir / f"{fig}_reconstructions.png")
    row["figures"] = {"reconstructions": f"{fig}_reconstructions.png"}
    rng = np.random.default_rng(seed)
    uniform_codes = rng.integers(0, k, (s["samples"],) + model.grid_shape).astype(np.int32)
    uniform_samples = batched(model.decode, uniform_codes)
    row["samples"] = {"uniform": confidence_summary(classify(net, uniform_samples))}
    if with_prior:
        prior = tfvae.PixelCNNPrior(model.grid_shape, k, num_layers=s["prior_layers"], filters=s["prior_filters"])
        timer = epoch_timer()
        start_prior = time.perf_counter()
        history = model.fit_prior(data["x_train_bin"], epochs=budget["prior_epochs"], prior=prior,
                                  batch_size=s["batch_size"], verbose=0, callbacks=[timer])
        prior_s = time.perf_counter() - start_prior
        test_log_p = batched(model.code_prior.log_prob, codes)
        log_px = batched(model.approximate_log_likelihood, x_bin)
        start_sample = time.perf_counter(), time.process_time()
        learned_samples = np.asarray(model.sample(s["samples"], seed=(seed, 1)))
        sample_s = time.perf_counter() - start_sample[0]
        sample_cpu = time.process_time() - start_sample[1]
        row["prior"] = {
            "epochs": budget["prior_epochs"], "filters": s["prior_filters"], "layers": s["prior_layers"],
            **timing(timer, len(train_codes), prior_s),
            "sample_cpu_s_per_sample": sample_cpu / s["samples"],
            "train_bits_per_code": float(history.history["loss"][-1] / math.log(2)),
            "test_bits_per_code": float(-test_log_p.mean() / (positions * math.log(2))),
            "test_nats_per_image": float(-test_log_p.mean()),
            "bits_per_dim": tfvae.evaluation.bits_per_dim(float(-log_px.mean()), 784),
            "sample_seconds": sample_s, "sample_s_per_sample": sample_s / s["samples"]}
        row["samples"]["learned"] = confidence_summary(classify(net, learned_samples))
        save_side_by_side(learned_samples[:64], uniform_samples[:64], out_dir / f"{fig}_samples.png")
        row["figures"]["samples"] = f"{fig}_samples.png"
        p = row["prior"]
        print(f"  {codebook} prior: {p['epochs']} epochs in {prior_s:.0f} s; test {p['test_bits_per_code']:.3f} "
              f"bits/code (train {p['train_bits_per_code']:.3f}; uniform {uniform_bits:.3f}, unigram "
              f"{row['unigram_bits_per_code']:.3f}); {p['bits_per_dim']:.4f} bits/dim (uniform prior "
              f"{row['bits_per_dim_uniform']:.4f}); {s['samples']} samples in {sample_s:.0f} s; classifier "
              f"confidence {row['samples']['learned']['confidence']:.3f} (uniform "
              f"{row['samples']['uniform']['confidence']:.3f})", flush=True)
    else:
        tfvae.plotting.save_image_grid(uniform_samples[:64], out_dir / f"{fig}_uniform_samples.png", columns=8)
        row["figures"]["uniform_samples"] = f"{fig}_uniform_samples.png"
    row["eval_s"] = time.perf_counter() - start - (row["prior"]["seconds"] if row["prior"] else 0.0)
    return row


def pythae_speed(s, seed, mnist_folder):
    """pythae's VQVAE on the same networks (plain and EMA codebooks), timed per epoch by its
    BaseTrainer in a fresh process: {codebook: result or {"error": ...}}."""
    from run import cpu_cores, json_subprocess, torch_python

    python = torch_python()
    if python is None:
        return {c: {"error": "no interpreter with torch and pythae (see benchmarks/run.py torch_python)"}
                for c in PYTHAE_CODEBOOKS}
    out = {}
    env = dict(os.environ, TQDM_DISABLE="1")
    for codebook in PYTHAE_CODEBOOKS:
        decay = CODEBOOKS[codebook]["ema_decay"]
        config = {"model": "vqvae", "filters": s["filters"], "num_codes": s["num_codes"], "code_dim": s["code_dim"],
                  "ema": decay is not None, "reconstruction": "bce", "epochs": s["pythae_epochs"],
                  "train_examples": s["pythae_examples"], "threads": cpu_cores(), "seed": seed,
                  "batch_size": s["batch_size"], "data": str(mnist_folder)}
        out[codebook] = json_subprocess([python, str(HERE / "pythae_reference.py"), "--config", json.dumps(config)],
                                        env, cwd=str(HERE))
        r = out[codebook]
        print(f"  pythae {codebook}: " + (f"ERROR {r['error']}" if "error" in r else
                                          f"{r['examples_per_s']:.0f} ex/s (best {r['best_examples_per_s']:.0f})"),
              flush=True)
    return out


# ----------------------------------------------------------------------------- report
def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def section(results):
    s = results["settings"]
    machine = results.get("machine", {})
    lines = [f"## {SECTION_TITLE}", "",
             f"{results['date']}, `python3 benchmarks/vqvae_mnist.py{''.join(' ' + x for x in results['argv'])}`"
             + (" (SMOKE MODE: tiny sizes, checks the script only)" if s["smoke"] else "")
             + f", {results['total_s'] / 60:.0f} min; {machine.get('cpu_model', '?')}, "
             f"{machine.get('cpu_affinity', '?')} cores, load average {machine.get('load_avg_1m', 0):.2f} "
             "at the start; "
             f"TensorFlow {machine.get('tensorflow', '?')}, Keras {machine.get('keras', '?')}.", "",
             f"VQ-VAE (van den Oord et al. 2017), K = {s['num_codes']} codes of D = {s['code_dim']}: "
             f"`tfvae.VQVAE` with `vq_encoder({s['filters']})` / `vq_decoder({s['filters']})` (two 4×4 "
             f"stride-2 convolutions of {s['filters']} filters, two residual blocks of 3×3 and 1×1 "
             "convolutions, 1×1 to D; mirrored; the paper uses 256 filters), a 7×7 grid of codes per "
             "image; β = 0.25; *plain*: the codebook learned by Eq. 3's codebook loss, *ema*: the EMA "
             "codebook (decay 0.99), *ema+restarts*: the EMA codebook with `dead_code_restart=100` (a "
             f"code unused for 100 steps is re-drawn from the batch's encoder outputs). Bernoulli likelihood, Adam({s['learning_rate']}), batch "
             f"{s['batch_size']}, tfvae's default compile, seed {s['seed']}. Training images "
             "dynamically binarized (redrawn every epoch), test images binarized once; Fashion-MNIST "
             "too, so its grey textures reach the model only as pixel frequencies. Prior: "
             f"`PixelCNNPrior(num_layers={s['prior_layers']}, filters={s['prior_filters']})` trained by "
             "`fit_prior` on the codes of the training images (binarized once), Adam(1e-3), batch "
             f"{s['batch_size']}. Unigram prior: the training codes' frequencies, (count + 1) / (N + K). "
             "bits/dim: `evaluation.bits_per_dim(−approximate_log_likelihood, 784)` "
             "(−log p(x|z_q(x)) − log p(z_q(x)), Sec. 3.2), with the learned or the uniform prior. "
             f"Samples: {s['samples']} per prior, decoded to pixel means; the uniform prior draws every "
             "code uniformly from all K. Classifier: a small CNN (conv 32, pool, conv 64, pool, dense "
             "128) trained on the real grey training images; confidence = mean max softmax; classes = "
             "exp of the entropy of its predicted-class histogram (10 = every class equally often).", ""]
    for d in results["datasets"]:
        if "missing" in d:
            lines += [f"### {d['label']}", "", f"**Not run**: {d['missing']}", ""]
            continue
        b, c = d["budget"], d["classifier"]
        lines += [f"### {d['label']}", "",
                  f"`{d['folder']}`: {d['train_examples']} training images ({d['train_split']}), "
                  f"{d['test_examples']} test images ({d['test_split']}). VQ-VAE {b['epochs']} epochs "
                  f"({b['epochs'] * (d['train_examples'] // s['batch_size'])} steps), prior {b['prior_epochs']} "
                  f"epochs, classifier {b['classifier_epochs']} epochs: test accuracy {c['test_accuracy']:.4f}, "
                  f"confidence on the real test images {c['test_confidence']:.3f}.", ""]
        rows = []
        for r in d["rows"]:
            t = r["test"]
            rows.append([r["codebook"], f"{t['nll']:.2f} ± {t['nll_standard_error']:.2f}",
                         f"{t['mse_binary']:.4f} / {t['mse_grey']:.4f}", f"{t['perplexity']:.1f}",
                         f"{t['codes_used']} / {r['num_codes']}", f"{r['train']['final']['perplexity']:.1f}",
                         f"{r['train']['examples_per_s']:.0f}"])
        lines += table(["codebook", "test −log p(x\\|z_q) (nats)", "MSE per pixel (binary / grey)",
                        "test perplexity", "test codes used", "last epoch perplexity", "train examples/s"], rows)
        rows = []
        for r in d["rows"]:
            p, smp = r["prior"], r["samples"]
            flat = smp["uniform"]
            if p is None:
                rows.append([r["codebook"], "—", f"{r['unigram_bits_per_code']:.3f}",
                             f"{r['uniform_bits_per_code']:.3f}",
                             f"— / {r['bits_per_dim_uniform']:.4f}", f"— / {flat['confidence']:.3f}",
                             f"— / {flat['effective_classes']:.1f}"])
                continue
            learned = smp["learned"]
            rows.append([r["codebook"], f"{p['test_bits_per_code']:.3f} ({p['train_bits_per_code']:.3f})",
                         f"{r['unigram_bits_per_code']:.3f}", f"{r['uniform_bits_per_code']:.3f}",
                         f"{p['bits_per_dim']:.4f} / {r['bits_per_dim_uniform']:.4f}",
                         f"{learned['confidence']:.3f} / {flat['confidence']:.3f}",
                         f"{learned['effective_classes']:.1f} / {flat['effective_classes']:.1f}"])
        lines += [""] + table(["codebook", "learned prior: test bits/code (train)", "unigram bits/code",
                               "uniform: log2 K", "bits/dim (learned / uniform prior)",
                               "classifier confidence (learned / uniform samples)",
                               "classes in the samples (learned / uniform)"], rows) + [""]
        for r in d["rows"]:
            figs = r["figures"]
            if "samples" in figs:
                lines.append(f"{d['label']}, {r['codebook']} codebook: samples from the learned prior (left) "
                             f"and the uniform prior (right); test reconstructions (rows: binarized input, "
                             f"mean reconstruction).")
                lines += ["", f"![{d['label']} {r['codebook']} samples]({figs['samples']})",
                          f"![{d['label']} {r['codebook']} reconstructions]({figs['reconstructions']})", ""]
            else:
                lines += [f"{d['label']}, {r['codebook']} codebook (no learned prior): uniform-prior samples; "
                          "test reconstructions.", "",
                          f"![{d['label']} {r['codebook']} uniform samples]({figs['uniform_samples']})",
                          f"![{d['label']} {r['codebook']} reconstructions]({figs['reconstructions']})", ""]
    pythae = results.get("pythae")
    if pythae:
        mnist = next((d for d in results["datasets"] if d["name"] == "mnist" and "rows" in d), None)
        rows = []
        for codebook, r in pythae.items():
            tf_row = next((x for x in mnist["rows"] if x["codebook"] == codebook), None) if mnist else None
            ours = f"{tf_row['train']['examples_per_s']:.0f}" if tf_row else "—"
            theirs = f"ERROR: {r['error']}" if "error" in r else f"{r['examples_per_s']:.0f}"
            ratio = (f"{tf_row['train']['examples_per_s'] / r['examples_per_s']:.2f}"
                     if tf_row and "error" not in r else "—")
            rows.append([codebook, ours, theirs, ratio])
        version = next((r["pythae_version"] for r in pythae.values() if "pythae_version" in r), "?")
        lines += ["### Training speed next to pythae", "",
                  f"Steady epochs (median of epochs 2..n) on MNIST, batch {s['batch_size']}, the same networks "
                  f"({s['filters']} filters), K = {s['num_codes']}, D = {s['code_dim']}. tfvae: the MNIST "
                  "trainings above (dynamic binarization in the input pipeline). pythae "
                  f"{version}: `VQVAE` under its `BaseTrainer` (benchmarks/pythae_reference.py, "
                  f"{s['pythae_epochs']} epochs of {s['pythae_examples']} grey-level images in a fresh "
                  "process, binary cross-entropy instead of pythae's hard-coded squared error, its own "
                  "EMA quantizer for *ema*). Both on the same cores, one after the other; "
                  "`benchmarks/run.py` times them in alternating rounds.", ""]
        lines += table(["codebook", "tfvae ex/s", "pythae ex/s", "tfvae / pythae"], rows) + [""]
    lines += ["### Claims", ""]
    lines += table(["claim (van den Oord et al. 2017; the issue's trial)", "values", "holds"],
                   [[c["claim"], c["values"], "yes" if c["holds"] else "NO"] for c in results["claims"]])
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    defaults = {key: ", ".join(f"{d} {b[key]}" for d, b in BUDGET.items()) for key in SMOKE_BUDGET}
    p.add_argument("--epochs", type=int, nargs="+", help="VQ-VAE epochs: one value, or one per data set "
                   f"in the order of --datasets (default {defaults['epochs']})")
    p.add_argument("--prior-epochs", type=int, nargs="+",
                   help=f"PixelCNN prior epochs, likewise (default {defaults['prior_epochs']})")
    p.add_argument("--classifier-epochs", type=int, nargs="+",
                   help=f"likewise (default {defaults['classifier_epochs']})")
    p.add_argument("--priors", choices=("both", "ema"), default="ema",
                   help="the codebooks that get a learned prior: every one (both), or the EMA ones "
                        "(default)")
    p.add_argument("--filters", type=int, help=f"width of the VQ-VAE networks (default {FULL['filters']})")
    p.add_argument("--prior-filters", type=int, help=f"PixelCNN filters (default {FULL['prior_filters']})")
    p.add_argument("--prior-layers", type=int, help=f"PixelCNN gated layers (default {FULL['prior_layers']})")
    p.add_argument("--samples", type=int, help=f"samples per prior for the classifier (default {FULL['samples']})")
    p.add_argument("--train-examples", type=int, help="use the first N training images (after shuffling)")
    p.add_argument("--test-examples", type=int, help="use the first N test images (default all 10,000)")
    p.add_argument("--pythae-epochs", type=int, help=f"pythae timing epochs (default {FULL['pythae_epochs']}; 0: skip)")
    p.add_argument("--mnist", type=Path, default=DATASETS["mnist"][1], help="folder of the MNIST IDX files")
    p.add_argument("--fashion-mnist", type=Path, default=DATASETS["fashion_mnist"][1],
                   help="folder of the Fashion-MNIST IDX files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="2 epochs of 500 images, 300 test images, 100 samples "
                   "(full network widths, so it prints an estimate of the full run's time); writes to /tmp/vqvae_smoke")
    p.add_argument("--out-dir", type=Path, help="where results.md, vqvae_mnist_results.json and figures/ go "
                   "(default docs/, or /tmp/vqvae_smoke with --smoke)")
    a = p.parse_args(argv)
    s = dict(SMOKE if a.smoke else FULL, seed=a.seed, smoke=a.smoke, priors=a.priors)
    for key in ("filters", "prior_filters", "prior_layers", "samples", "train_examples", "test_examples",
                "pythae_epochs"):
        if getattr(a, key) is not None:
            s[key] = getattr(a, key)
    try:
        budgets = {key: per_dataset(getattr(a, key), a.datasets, key, a.smoke)
                   for key in ("epochs", "prior_epochs", "classifier_epochs")}
    except ValueError as error:
        p.error(str(error))
    folders = {"mnist": a.mnist, "fashion_mnist": a.fashion_mnist}
    out_dir = a.out_dir or (Path("/tmp/vqvae_smoke") if a.smoke else ROOT / "docs")
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    from aae_mnist import replace_section
    from roofline import machine_description

    start = time.perf_counter()
    machine = machine_description()
    print(f"VQ-VAE benchmark{' (SMOKE)' if a.smoke else ''}: {', '.join(a.datasets)}; filters {s['filters']}, "
          f"prior filters {s['prior_filters']}; budgets {budgets}; {machine['cpu_affinity']} cores, load "
          f"{machine['load_avg_1m']:.2f}; output {out_dir}", flush=True)
    datasets = []
    for name in a.datasets:
        label, _, train_split, test_split, _ = DATASETS[name]
        folder = folders[name]
        shown = folder.resolve()  # ../shared/... as the other sections write it; other folders as they are
        shown = f"../{shown.relative_to(ROOT.parent)}" if shown.is_relative_to(ROOT.parent) else str(folder)
        entry = {"name": name, "label": label, "folder": shown, "train_split": train_split,
                 "test_split": test_split}
        if not any((folder / f"{train_split}-images-idx3-ubyte{z}").exists() for z in ("", ".gz")):
            hint = " (apt-get install -y dataset-fashion-mnist)" if name == "fashion_mnist" else ""
            entry["missing"] = f"no {train_split}-images-idx3-ubyte[.gz] in {folder}{hint}"
            print(f"{label}: {entry['missing']}; skipped", flush=True)
            datasets.append(entry)
            continue
        budget = {key: budgets[key][name] for key in budgets}
        print(f"{label}: {budget}", flush=True)
        data = load_dataset(name, folder, s, a.seed)
        entry.update(budget=budget, train_examples=len(data["x_train"]), test_examples=len(data["x_test"]),
                     full_train_examples=data["full_train_examples"])
        net, entry["classifier"] = train_classifier(data, budget["classifier_epochs"], s, a.seed)
        entry["rows"] = [train_and_evaluate(name, codebook, data, s, budget, net, out_dir,
                                            CODEBOOKS[codebook]["ema_decay"] is not None or a.priors == "both", a.seed)
                         for codebook in CODEBOOKS]
        datasets.append(entry)
    pythae = None
    if s["pythae_epochs"] > 0 and (folders["mnist"] / "train5k-images-idx3-ubyte.gz").exists():
        print("pythae", flush=True)
        pythae = pythae_speed(s, a.seed, folders["mnist"])
    results = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "argv": sys.argv[1:] if argv is None else list(argv), "settings": s, "budgets": budgets,
               "machine": machine, "datasets": datasets, "pythae": pythae, "claims": claims(datasets),
               "total_s": time.perf_counter() - start}
    (out_dir / "vqvae_mnist_results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    md_path = out_dir / "results.md"
    text = md_path.read_text() if md_path.exists() else ""
    md_path.write_text(replace_section(text, SECTION_TITLE, section(results)))
    print(section(results))
    if a.smoke:
        ran = [d for d in datasets if "rows" in d]
        full = {d: BUDGET[d] for d in DATASETS}
        seconds = estimate_seconds(ran, full) if ran else 0.0
        cpu = estimate_seconds(ran, full, "cpu_s_per_example") if ran else 0.0
        print(f"estimated trainings and samplings of a full run ({', '.join(d['name'] for d in ran)}; default "
              f"budget, filters {s['filters']}, prior filters {s['prior_filters']}), from this run's steady "
              f"epochs: {seconds / 60:.1f} min of wall time at this load (1-min load average "
              f"{os.getloadavg()[0]:.2f} now, {machine['load_avg_1m']:.2f} at the start), "
              f"{cpu / 60:.1f} min of CPU time (on {machine['cpu_affinity']} otherwise idle cores: between "
              f"{cpu / 60 / machine['cpu_affinity']:.1f} and {cpu / 60:.1f} min). Add evaluation, encoding, "
              "start-up and pythae: a few minutes.")
    print(f"wrote {md_path} (section '{SECTION_TITLE}'), {out_dir / 'vqvae_mnist_results.json'}, {out_dir / 'figures'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
