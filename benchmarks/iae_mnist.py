"""Implicit autoencoders on real MNIST: the claims of Makhzani (2018) at a stated budget.

    python3 benchmarks/iae_mnist.py                # every part -> docs/
    python3 benchmarks/iae_mnist.py --parts a      # some parts; the others keep their last results
    python3 benchmarks/iae_mnist.py --smoke        # tiny sizes, a minute or two: checks the script (-> /tmp)

Parts (the same networks, optimizers and budget for every row; see --help for the flags):

  a  global code against local noise: the paper's three settings, a deterministic 20-D global
     code (local_dim 0), a 10-D global code with 100-D local noise and a 5-D one with 100-D
     noise. For each: the accuracy of a small CNN (trained on the real training images) on the
     reconstructions of the test images, and the pixel-wise standard deviation of the
     reconstructions across seeds; a grid per setting (one row per input, several seeds) in
     docs/figures/iae_reconstructions_*.png. Claim (paper, Fig. 2-3): as the global code
     shrinks, the reconstructions keep the digit's class while their variation grows.
  b  unsupervised clustering: a categorical global code of 16 and of 30 clusters with 100-D
     local noise, fit(x) without labels; clustering_error (majority label of each cluster's
     training members) on the test images, next to k-means on the pixels (paper: 9.73 % with
     30 clusters for the IAE).
  c  semi-supervised classification with 100 labels (10 per class, the rest y = -1): the
     categorical IAE next to tfvae.SemiSupervisedAAE trained on the same images, labels, batches
     and number of epochs (paper: 1.40 % against the AAE's 1.90 %, 60k images, full budget).

Data: ../shared/data/mnist, train5k (shuffled with --seed) and the 10k test images, grey levels
x/255 in [0, 1]. Writes docs/iae_mnist_results.json, docs/figures/iae_*.png and the section
"Implicit autoencoders on MNIST (benchmarks/iae_mnist.py)" of docs/results.md.
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from aae_mnist import (claim, kmeans, kmeans_assign, labelled_subset, load_data,  # noqa: E402
                       pct, replace_section, semi_supervised_stream, table, verdict)

SECTION = "Implicit autoencoders on MNIST (benchmarks/iae_mnist.py)"
RESULTS = ROOT / "docs" / "iae_mnist_results.json"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist"
#: The paper's MNIST figures (Makhzani 2018, Sec. 3).
PAPER = {"clustering_error_30": 0.0973, "semi_supervised_error": 0.0140,
         "aae_semi_supervised_error": 0.0190}
#: Part a: (label, global_dim, local_dim).
SETTINGS = (("deterministic, 20-D global code", 20, 0),
            ("10-D global code + 100-D local noise", 10, 100),
            ("5-D global code + 100-D local noise", 5, 100))

DEFAULTS = {"epochs": 10, "batch_size": 100, "train_examples": 5000, "test_examples": 10000,
            "reconstruction_examples": 1000, "seeds": 5, "local_dim": 100,
            "clusters": (16, 30), "labels_per_class": 10, "labelled_per_batch": 10,
            "classifier_epochs": 12, "kmeans_restarts": 5, "seed": 0, "smoke": False}
SMOKE = {"epochs": 1, "train_examples": 300, "test_examples": 200, "reconstruction_examples": 50,
         "seeds": 2, "local_dim": 8, "clusters": (4,), "labels_per_class": 2,
         "labelled_per_batch": 4, "classifier_epochs": 1, "kmeans_restarts": 1, "batch_size": 50,
         "smoke": True}


# ----------------------------------------------------------------------------- models
def make_iae(s, global_dim, local_dim, **kwargs):
    """An ImplicitAutoencoder with the model's defaults (networks, noise, anchor)."""
    import keras

    import tfvae

    keras.utils.set_random_seed(s["seed"])
    return tfvae.ImplicitAutoencoder((28, 28, 1), global_dim, local_dim, seed=s["seed"], **kwargs)


def train(model, x, y, s, name, dataset=None, **optimizers):
    """`epochs` epochs of batch `batch_size` with the model's default compile() (plus the
    `optimizers` named); the timings."""
    start = time.perf_counter()
    model.compile(**optimizers)
    steps = -(-len(x) // s["batch_size"])
    if dataset is None:
        history = model.fit(x, y, batch_size=s["batch_size"], epochs=s["epochs"], verbose=0)
    else:
        history = model.fit(dataset, epochs=s["epochs"], steps_per_epoch=steps, verbose=0)
    seconds = time.perf_counter() - start
    logs = {key: float(values[-1]) for key, values in history.history.items()}
    print(f"    {name}: {s['epochs']} epochs in {seconds:.0f} s; last epoch: "
          + ", ".join(f"{k} {v:.3g}" for k, v in logs.items()), flush=True)
    return {"seconds": seconds, "steps": steps * s["epochs"], "final": logs}


def batched(fn, x, batch=500):
    return np.concatenate([np.asarray(fn(x[i:i + batch])) for i in range(0, len(x), batch)])


def digit_classifier(data, s):
    """A small CNN trained on the real training images: the judge of the reconstructions' class."""
    import keras

    keras.utils.set_random_seed(s["seed"])
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPool2D(), keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPool2D(), keras.layers.Flatten(), keras.layers.Dropout(0.3),
        keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data["x_train"], data["y_train"], batch_size=64, epochs=s["classifier_epochs"],
              verbose=0)
    accuracy = float(np.mean(model.predict(data["x_test"], batch_size=1000, verbose=0).argmax(1)
                             == data["y_test"]))
    print(f"  digit classifier: test accuracy {accuracy:.4f} on real images", flush=True)
    return model, accuracy


# ----------------------------------------------------------------------------- part a
def plot_reconstructions(path, x, reconstructions, title):
    import tfvae

    rows = np.concatenate([x[:, None], np.stack(reconstructions, axis=1)], axis=1)
    tfvae.plotting.save_image_grid(rows.reshape((-1,) + x.shape[1:]), path, columns=rows.shape[1])
    return title


def part_reconstructions(data, s, out_dir):
    classifier, real_accuracy = digit_classifier(data, s)
    x = data["x_test"][:s["reconstruction_examples"]]
    y = data["y_test"][:s["reconstruction_examples"]]
    rows = []
    for index, (label, global_dim, local_dim) in enumerate(SETTINGS):
        local_dim = min(local_dim, s["local_dim"])
        model = make_iae(s, global_dim, local_dim)
        trained = train(model, data["x_train"], None, s, label)
        draws = np.stack([batched(lambda b, k=k: model.reconstruct(b, seed=(k, 1)), x)
                          for k in range(s["seeds"])])                          # [S, N, 28, 28, 1]
        predictions = [classifier.predict(d, batch_size=1000, verbose=0).argmax(1) for d in draws]
        accuracy = float(np.mean([np.mean(p == y) for p in predictions]))
        agreement = float(np.mean([np.mean(p == predictions[0]) for p in predictions[1:]] or [1.0]))
        pixel_std = float(draws.std(axis=0).mean())
        squared_error = float(np.mean((draws - x[None]) ** 2))
        figure = out_dir / "figures" / f"iae_reconstructions_{index}.png"
        plot_reconstructions(figure, x[:10], list(draws[:, :10]), label)
        print(f"  {label}: class kept {accuracy:.3f} (real images {real_accuracy:.3f}), pixel std "
              f"across seeds {pixel_std:.4f}, squared error {squared_error:.4f}", flush=True)
        rows.append({"label": label, "global_dim": global_dim, "local_dim": local_dim,
                     "accuracy": accuracy, "class_agreement_across_seeds": agreement,
                     "pixel_std": pixel_std, "squared_error": squared_error,
                     "figure": str(figure.relative_to(out_dir.parent) if out_dir.parent in
                                   figure.parents else figure), "train": trained})
    stds = [r["pixel_std"] for r in rows]
    claims = [claim(f"{r['label']}: the reconstructions keep the digit's class (accuracy "
                    f"{r['accuracy']:.3f} against {real_accuracy:.3f} on the real images; "
                    "chance is 0.1)", r["accuracy"] >= 0.5 * real_accuracy) for r in rows]
    claims.append(claim("the reconstructions' variation across seeds grows as the global code "
                        "shrinks (pixel std " + " < ".join(f"{v:.4f}" for v in stds) + ")",
                        all(a < b for a, b in zip(stds, stds[1:]))))
    return {"rows": rows, "classifier_accuracy": real_accuracy, "claims": claims}


# ----------------------------------------------------------------------------- part b
def part_clustering(data, s, out_dir):
    import tfvae

    rows = []
    for k in s["clusters"]:
        model = make_iae(s, k, s["local_dim"], prior="categorical")
        trained = train(model, data["x_train"], None, s, f"{k} clusters")
        train_ids = batched(model.cluster, data["x_train"]).astype(np.int64)
        test_ids = batched(model.cluster, data["x_test"]).astype(np.int64)
        error = tfvae.evaluation.clustering_error(test_ids, data["y_test"], train_ids,
                                                  data["y_train"])
        centers, _ = kmeans(data["x_train"], k, restarts=s["kmeans_restarts"], seed=s["seed"])
        km_error = tfvae.evaluation.clustering_error(
            kmeans_assign(data["x_test"], centers), data["y_test"],
            kmeans_assign(data["x_train"], centers), data["y_train"])
        used = int(len(np.unique(train_ids)))
        print(f"  {k} clusters ({used} used): IAE {pct(error)}, k-means on pixels {pct(km_error)}",
              flush=True)
        rows.append({"clusters": k, "clusters_used": used, "test_error": error,
                     "kmeans_test_error": km_error, "train": trained})
    claims = [claim(f"{r['clusters']} clusters: the IAE's clusters beat k-means on the pixels "
                    f"({pct(r['test_error'])} vs {pct(r['kmeans_test_error'])})",
                    r["test_error"] < r["kmeans_test_error"]) for r in rows]
    return {"rows": rows, "claims": claims}


# ----------------------------------------------------------------------------- part c
def part_semi_supervised(data, s, out_dir):
    import keras

    import tfvae

    x_train, y_train, x_test, y_test = (data[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    labelled = labelled_subset(y_train, s["labels_per_class"], s["seed"])
    stream = semi_supervised_stream(x_train, y_train, labelled, s)
    results = {}
    # both labelled phases at Adam(3e-3), as in benchmarks/aae_mnist.py (part b)
    model = make_iae(s, 10, s["local_dim"], prior="categorical")
    results["iae"] = train(model, x_train, None, s, f"IAE ({len(labelled)} labels)", stream,
                           classifier_optimizer=keras.optimizers.Adam(3e-3))
    results["iae"]["test_error"] = tfvae.evaluation.classification_error(
        batched(model.classify, x_test), y_test)
    keras.utils.set_random_seed(s["seed"])
    ssaae = tfvae.SemiSupervisedAAE((28, 28, 1), num_classes=10, style_dim=10, seed=s["seed"])
    results["ssaae"] = train(ssaae, x_train, None, s, f"SemiSupervisedAAE ({len(labelled)} labels)",
                             semi_supervised_stream(x_train, y_train, labelled, s),
                             classifier_optimizer=keras.optimizers.Adam(3e-3))
    results["ssaae"]["test_error"] = tfvae.evaluation.classification_error(
        batched(ssaae.classify, x_test), y_test)
    iae_error, aae_error = results["iae"]["test_error"], results["ssaae"]["test_error"]
    print(f"  test error with {len(labelled)} labels: IAE {pct(iae_error)}, SemiSupervisedAAE "
          f"{pct(aae_error)} (paper: 1.40 % and 1.90 %)", flush=True)
    return {"labelled": int(len(labelled)), **results,
            "claims": [claim(f"the IAE's test error with {len(labelled)} labels is below the "
                             f"SemiSupervisedAAE's at the same budget ({pct(iae_error)} vs "
                             f"{pct(aae_error)})", iae_error < aae_error)]}


PARTS = {"a": part_reconstructions, "b": part_clustering, "c": part_semi_supervised}


# ----------------------------------------------------------------------------- report
def budget(s):
    import tfvae

    defaults = tfvae.ImplicitAutoencoder.__init__.__kwdefaults__
    return (f"{s['epochs']} epochs of batch {s['batch_size']} over {s['train_examples']} training "
            f"images, every model with its defaults (networks, `compile()`: the IAE's "
            f"Adam(2e-4, β1 = 0.5), the AAE's Adam(1e-3); "
            f"mean_reconstruction_weight {defaults['mean_reconstruction_weight']}, "
            f"discriminator_noise {defaults['discriminator_noise']})")


def part_header(part):
    s = part["settings"]
    return (f"*{part.get('seconds', 0) / 60:.1f} min"
            + (", SMOKE MODE: tiny sizes, not results" if s["smoke"] else "")
            + f"; budget: {budget(s)}.*")


def section(results):
    s = results["settings"]
    md = [f"## {SECTION}", "", f"*Last run {results['date']}: `python3 benchmarks/iae_mnist.py"
          + "".join(" " + a for a in results["argv"]) + "`; each part's budget below.*", ""]
    parts = results["parts"]
    if "a" in parts:
        a = parts["a"]
        s = a["settings"]
        md += ["### (a) Global code against local noise", "", part_header(a), "",
               f"Accuracy of a small CNN (test accuracy {a['classifier_accuracy']:.3f} on the real "
               f"images) on the reconstructions of {s['reconstruction_examples']} test images, and "
               f"their pixel-wise standard deviation across {s['seeds']} seeds.", "",
               table(["setting", "class kept", "same class across seeds", "pixel std across seeds",
                      "squared error per pixel"],
                     [[r["label"], f"**{r['accuracy']:.3f}**",
                       f"{r['class_agreement_across_seeds']:.3f}", f"**{r['pixel_std']:.4f}**",
                       f"{r['squared_error']:.4f}"] for r in a["rows"]]), ""]
        md += [f"![{r['label']}]({Path(r['figure']).name if s['smoke'] else r['figure'].replace('docs/', '')})"
               for r in a["rows"]] + [""]
    if "b" in parts:
        md += ["### (b) Unsupervised clustering", "", part_header(parts["b"]), "",
               table(["clusters", "used", "IAE test error", "k-means on pixels"],
                     [[r["clusters"], r["clusters_used"], f"**{pct(r['test_error'])}**",
                       pct(r["kmeans_test_error"])] for r in parts["b"]["rows"]]), "",
               f"Paper: {pct(PAPER['clustering_error_30'])} with 30 clusters (60k images).", ""]
    if "c" in parts:
        c = parts["c"]
        md += ["### (c) Semi-supervised classification", "", part_header(c), "",
               table(["model", "test error", "seconds"],
                     [["ImplicitAutoencoder (categorical code, 100-D noise)",
                       f"**{pct(c['iae']['test_error'])}**", f"{c['iae']['seconds']:.0f}"],
                      ["SemiSupervisedAAE (its defaults)", f"**{pct(c['ssaae']['test_error'])}**",
                       f"{c['ssaae']['seconds']:.0f}"]]), "",
               f"{c['labelled']} labels. Paper: {pct(PAPER['semi_supervised_error'])} (IAE) and "
               f"{pct(PAPER['aae_semi_supervised_error'])} (AAE) with 100 labels, 60k images.", ""]
    md += ["Claims:", ""]
    for letter in sorted(parts):
        md += [f"- ({letter}) **{verdict(c['holds'])}**: {c['claim']}" for c in parts[letter]["claims"]]
    return "\n".join(md) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", choices=sorted(PARTS), default=sorted(PARTS))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default=None, help="output directory (default: docs/, or /tmp/iae_smoke with --smoke)")
    args = parser.parse_args(argv)
    s = dict(DEFAULTS, **(SMOKE if args.smoke else {}))
    if args.epochs is not None:
        s["epochs"] = args.epochs
    out_dir = Path(args.out or ("/tmp/iae_smoke" if args.smoke else ROOT / "docs"))
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    results_path = out_dir / RESULTS.name
    previous = json.loads(results_path.read_text()) if results_path.exists() else {}
    start = time.perf_counter()
    data = load_data(args.data, s)
    parts = dict(previous.get("parts", {})) if not args.smoke else {}
    for part in parts.values():  # each part keeps the settings (budget) it was run with
        part.setdefault("settings", previous.get("settings"))
    for letter in args.parts:
        print(f"part {letter}", flush=True)
        part_start = time.perf_counter()
        parts[letter] = PARTS[letter](data, s, out_dir)
        parts[letter].update(seconds=time.perf_counter() - part_start, settings=s,
                             date=datetime.date.today().isoformat())
    results = {"date": datetime.date.today().isoformat(), "argv": list(argv or sys.argv[1:]),
               "settings": s, "parts": parts, "total_s": time.perf_counter() - start,
               "machine": f"{os.cpu_count()} cores"}
    results_path.write_text(json.dumps(results, indent=1, default=str))
    md_path = out_dir / "results.md"
    text = md_path.read_text() if md_path.exists() else "# Results\n"
    md_path.write_text(replace_section(text, SECTION, section(results)))
    print(section(results))
    return results


if __name__ == "__main__":
    main()
