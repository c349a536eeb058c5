"""The README's tables of results, generated from the benchmarks' JSON files: none is typed by hand.

    python benchmarks/readme_tables.py           # rewrite the generated blocks of README.md
    python benchmarks/readme_tables.py --check   # exit 1 if a block is out of date (the tests run this)

Each block sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->` in README.md and is
made from docs/iwae_mnist_results.json (benchmarks/iwae_mnist.py), docs/aae_mnist_results.json
(benchmarks/aae_mnist.py), docs/ladder_mnist_results.json, docs/vqvae_mnist_results.json,
docs/avb_toy_results.json, docs/avb_mnist_results.json, docs/iae_mnist_results.json,
docs/iae_modes_results.json and docs/results.json (benchmarks/run.py). Re-run a benchmark, then
this script. The papers' figures are the constants below, each with its table.
"""
import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs"

# The papers' headline figures, as they print them.
PAPER = {
    "vae_nll": "86.76 nats (Burda et al. 2016, Table 1, VAE k=1)",
    "iwae5_nll": "85.54 nats (Table 1)",
    "iwae50_nll": "84.78 nats (Table 1)",
    "aae_semi": "1.90 % (Makhzani et al. 2016, Table 2)",
    "aae_cluster": "9.55 % with 16 clusters (Table 3)",
    "aae_parzen": "340 ± 2 nats (Table 1)",
    "lvae_nll": "81.74 nats (Sønderby et al. 2016, Table 1)",
    "vqvae_bpd": "4.67 bits/dim on CIFAR-10, not MNIST (van den Oord et al. 2017, Sec. 4.1)",
    "avb_toy": "optimum −log 4 = −1.386 nats (Mescheder et al. 2017, Sec. 5.1: AVB near it, the VAE not)",
    "iae_semi": "1.40 % against the AAE's 1.90 % (Makhzani 2018, Sec. 3.3)",
    "iae_cluster": "9.73 % with 30 clusters (Sec. 3.2)",
}


def load(name):
    path = DOCS / name
    return json.loads(path.read_text()) if path.exists() else None


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def iwae_rows(results):
    return {row["model"]: row for row in results["rows"]} if results else {}


def iwae_budget(results):
    args = results["args"]
    return f"{args['epochs']} epochs on 5k images, k={args['eval_samples']} for the NLL"


def aae_budget(part):
    s = part["settings"]
    return f"{s['epochs']} epochs on {s['train_examples'] // 1000}k images"


# ----------------------------------------------------------------------------- blocks
def models_block():
    """Each family: its paper, classes, notebook, and our headline figure next to the paper's."""
    iwae, aae = load("iwae_mnist_results.json"), load("aae_mnist_results.json")
    rows = []
    by_model = iwae_rows(iwae)
    nb1 = "[01](colab/01_vae_iwae_mnist.ipynb)"
    for name, key, cls in (("VAE k=1", "vae_nll", "`VAE`"), ("IWAE k=50", "iwae50_nll", "`IWAE`")):
        row = by_model.get(name)
        ours = f"**{row['test_nll']:.2f}** nats ({iwae_budget(iwae)})" if row else "not measured"
        paper = "Kingma & Welling 2013" if cls == "`VAE`" else "Burda et al. 2016"
        rows.append([f"{'VAE' if cls == '`VAE`' else 'IWAE'} ({paper})", cls, nb1,
                     f"test NLL, {name}", ours, PAPER[key]])
    parts = aae["parts"] if aae else {}
    nb2 = "[02](colab/02_adversarial_autoencoders.ipynb)"
    family = "Adversarial Autoencoders (Makhzani et al. 2016)"
    classes = "`AdversarialAutoencoder`, `SemiSupervisedAAE`, `DimensionalityReductionAAE`"
    if "b" in parts:
        b = parts["b"]
        rows.append([family, classes, nb2, f"semi-supervised test error, {b['labelled']} labels",
                     f"**{100 * b['test_error']:.2f} %** ({aae_budget(b)})", PAPER["aae_semi"]])
    if "c" in parts:
        c = parts["c"]
        rows.append(["", "", "", f"clustering test error, {c['clusters']} clusters",
                     f"**{100 * c['test_error']:.2f} %** ({aae_budget(c)})", PAPER["aae_cluster"]])
    ladder = load("ladder_mnist_results.json")
    if ladder:
        by = {r["row"]: r for r in ladder["rows"]}
        lvae = by.get("LVAE+BN+WU")
        if lvae:
            nb3 = "[03](colab/03_ladder_vae.ipynb)" if (ROOT / "colab" / "03_ladder_vae.ipynb").exists() else ""
            s = ladder["settings"]
            budget = f"{s['epochs']} epochs on {s['train_examples'] // 1000}k images, k={s['eval_samples']}"
            rows.append(["Ladder VAE (Sønderby et al. 2016)", "`LadderVAE`, `HierarchicalVAE`", nb3,
                         "test NLL, LVAE+BN+WU, 5 stochastic layers",
                         f"**{lvae['test_nll']:.2f}** nats ({budget})", PAPER["lvae_nll"]])
    vq = vqvae_headline()
    if vq:
        rows.append(["VQ-VAE (van den Oord et al. 2017)", "`VQVAE`, `VectorQuantizer`, `PixelCNNPrior`",
                     "[04](colab/04_vqvae.ipynb)", vq[0], vq[1], PAPER["vqvae_bpd"]])
    toy = load("avb_toy_results.json")
    if toy:
        by = {r["row"]: r for r in toy["rows"]}
        figures = ", ".join(f"{name} **{by[name]['grid']['mean']:.3f}**" for name in ("AVB+AC", "AVB", "VAE")
                            if name in by)
        rows.append(["Adversarial Variational Bayes (Mescheder et al. 2017)", "`AVB`, `NeuralSampler`",
                     "[05](colab/05_avb.ipynb)", "four-point toy: exact log p(x) per point",
                     f"{figures} ({toy['settings']['steps']} steps)", PAPER["avb_toy"]])
    iae = load("iae_mnist_results.json")
    iae_parts = (iae or {}).get("parts", {})
    if "c" in iae_parts:
        c = iae_parts["c"]
        s = c.get("settings") or iae["settings"]
        budget = f"{s['epochs']} epochs on {s['train_examples'] // 1000}k images"
        rows.append(["Implicit Autoencoders (Makhzani 2018)", "`ImplicitAutoencoder`, `GAN`",
                     "[06](colab/06_implicit_autoencoders.ipynb)",
                     f"semi-supervised test error, {c['labelled']} labels",
                     f"**{100 * c['iae']['test_error']:.2f} %**, SemiSupervisedAAE "
                     f"{100 * c['ssaae']['test_error']:.2f} % ({budget})", PAPER["iae_semi"]])
    if "b" in iae_parts:
        s = iae_parts["b"].get("settings") or iae["settings"]
        for r in iae_parts["b"]["rows"]:
            rows.append(["", "", "", f"clustering test error, {r['clusters']} clusters",
                         f"**{100 * r['test_error']:.2f} %** ({s['epochs']} epochs on "
                         f"{s['train_examples'] // 1000}k images)",
                         PAPER["iae_cluster"] if r["clusters"] == 30 else ""])
    unbuilt = ((() if ladder else (("Ladder VAE (Sønderby et al. 2016)", 12),))
               + (() if vq else (("VQ-VAE (van den Oord et al. 2017)", 13),))
               + (() if toy else (("Adversarial Variational Bayes (Mescheder et al. 2017)", 10),))
               + (() if iae_parts else (("Implicit Autoencoders (Makhzani 2018)", 11),)))
    for family, issue in unbuilt:
        rows.append([family, f"not built yet (issue {issue})", "", "", "", ""])
    return table(["family (paper)", "classes", "notebook", "headline figure", "tfvae (budget)",
                  "paper (full budget)"], rows)


def iwae_block():
    iwae = load("iwae_mnist_results.json")
    if not iwae:
        return "(run `python3 benchmarks/iwae_mnist.py`)"
    paper = {"VAE k=1": PAPER["vae_nll"], "IWAE k=5": PAPER["iwae5_nll"], "IWAE k=50": PAPER["iwae50_nll"]}
    rows = [[row["model"], f"{row['test_nll']:.2f} nats", row["active_units"], paper.get(row["model"], "")]
            for row in iwae["rows"]]
    return table([f"IWAE-paper MLP, {iwae_budget(iwae)}", "test NLL", "active units (of 50)",
                  "paper (3,280 epochs on 60k images)"], rows)


def speed_block():
    results = load("results.json")
    if not results or "cpu" not in results.get("sections", {}):
        return "(run `python3 benchmarks/run.py`)"
    sys.path.insert(0, str(HERE))
    import run

    section, settings = results["sections"]["cpu"], results["settings"]
    rows = []
    for key, runs in section["torch"].items():
        model, precision = key.split("|")
        if precision != "float32":
            continue
        pair = run.side_by_side(runs)
        ratios = {(a, b): best for a, b, _, best, _ in run.ratios(pair)}

        def cell(side):
            return f"{pair[side][0]:,.0f}" if side in pair else "failed"

        def ratio(a, b):
            return f"{ratios[(a, b)]:.2f}" if (a, b) in ratios else "—"

        rows.append([model, cell("tfvae defaults"), cell("tfvae best"), cell("pythae"), cell("torch"),
                     f"**{ratio('tfvae defaults', 'pythae')}**", ratio("tfvae best", "pythae"),
                     ratio("tfvae best", "torch")])
    evals = [r for r in section["eval"] if "ratio" in r]
    md = table(["float32, batch 100, examples/s (fastest epoch)", "tfvae defaults", "tfvae best",
                "pythae", "PyTorch loop", "defaults / pythae", "best / pythae", "best / PyTorch loop"], rows)
    if evals:
        e = min(evals, key=lambda r: r["ratio"])
        md += (f"\n\nNLL with k={e['num_samples']} on {e['examples']:,} test images: {e['seconds']:.0f} s, "
               f"{e['ratio']:.2f}× the time the {e['roofline_gflops']:.0f} GFLOP/s matmul roofline allows.")
    date = results["date"][:10]
    md += (f"\n\nMeasured {date} by `python3 benchmarks/run.py` ({settings['rounds']} alternating rounds; "
           f"tfvae best = graph mode, steps_per_execution {settings['steps_per_execution']}) on "
           f"{results['machine'].get('cpu_model', '?')}, {results['machine'].get('cpu_count', '?')} cores.")
    return md


def aae_block():
    aae = load("aae_mnist_results.json")
    if not aae:
        return "(run `python3 benchmarks/aae_mnist.py`)"
    parts, rows = aae["parts"], []
    if "a" in parts:
        a = parts["a"]
        labels = " / ".join(row["label"] for row in a["rows"])
        ours = " / ".join(f"**{row['mmd2']['aae']:.4f}**" for row in a["rows"])
        vae = " / ".join(f"{row['mmd2']['vae_draw']:.4f}" for row in a["rows"])
        rows.append([f"prior mismatch (MMD², test codes vs prior), {labels}; {aae_budget(a)}",
                     "AAE " + ours, "VAE " + vae, "q(z) matches p(z) (Figs. 2–4)"])
    if "b" in parts:
        b = parts["b"]
        rows.append([f"semi-supervised test error, {b['labelled']} labels; {aae_budget(b)}",
                     f"**{100 * b['test_error']:.2f} %**",
                     f"the same MLP on the {b['labelled']} labels: {100 * b['baseline_test_error']:.2f} %",
                     PAPER["aae_semi"]])
    if "c" in parts:
        c = parts["c"]
        rows.append([f"clustering test error, {c['clusters']} clusters; {aae_budget(c)}",
                     f"**{100 * c['test_error']:.2f} %** ({c['clusters_used']} used)",
                     f"k-means on pixels: {100 * c['kmeans_test_error']:.2f} %", PAPER["aae_cluster"]])
    if "d" in parts:
        d = parts["d"]
        ref = d.get("reference_training_images") or {}
        reference = (f"the training images as samples: {ref['mean']:.1f} ± {ref['standard_error']:.1f}"
                     if ref else "")
        rows.append([f"Parzen log-likelihood, {d['samples']:,} samples", f"{d['mean']:.1f} ± "
                     f"{d['standard_error']:.1f} nats", reference, PAPER["aae_parzen"]])
    if "e" in parts and parts["e"].get("summary", {}).get("tfvae"):
        e = parts["e"]
        summary, ratios = e["summary"], e["ratios"]
        others = "; ".join(f"{'pythae' if side == 'pythae' else 'PyTorch with the same three phases'} "
                           f"{summary[side]['best_examples_per_s']:,.0f} "
                           f"({ratios[side]['best_examples_per_s']:.2f}×)"
                           for side in ("pythae", "torch") if summary.get(side) and side in ratios)
        rows.append(["training examples/s (defaults; fastest epochs, alternating runs)",
                     f"{summary['tfvae']['best_examples_per_s']:,.0f}", others, ""])
    return table(["Adversarial autoencoders, the paper's 1000-1000 networks on real MNIST", "tfvae",
                  "reference", "paper (full budget)"], rows)


def ladder_block():
    ladder = load("ladder_mnist_results.json")
    if not ladder:
        return "(run `python3 benchmarks/ladder_mnist.py`)"
    s = ladder["settings"]
    rows = [[r["row"], f"{r['test_nll']:.2f} ± {r['test_nll_standard_error']:.2f} nats",
             " / ".join(f"{a}" for a in r["active_units"]), " / ".join(f"{v:.1f}" for v in r["layer_kl"]),
             f"{r['examples_per_s']:,.0f}"] for r in ladder["rows"]]
    md = table([f"5 stochastic layers (64-32-16-8-4), {s['epochs']} epochs on {s['train_examples'] // 1000}k "
                f"images, k={s['eval_samples']} on {s['test_examples']:,} test images", "test NLL",
                "active units, layers 1 / 2 / 3 / 4 / 5", "KL per layer (nats)", "examples/s"], rows)
    held = [c for c in ladder["claims"]]
    md += "\n\n" + "; ".join(f"{c['claim']}: {c['values']} ({'holds' if c['holds'] else 'does NOT hold'})"
                              for c in held) + "."
    return md


def vqvae_rows(results):
    """[(data set entry, row)] of every VQ-VAE trained by benchmarks/vqvae_mnist.py."""
    return [(d, r) for d in (results or {}).get("datasets", []) for r in d.get("rows", [])]


def vqvae_headline():
    """(headline, our figure) for the models table: MNIST bits/dim with the learned prior of the
    best codebook (the lowest), or None before the benchmark has run."""
    results = load("vqvae_mnist_results.json")
    rows = [(d, r) for d, r in vqvae_rows(results) if d["name"] == "mnist" and r.get("prior")]
    if not rows:
        return None
    d, r = min(rows, key=lambda dr: dr[1]["prior"]["bits_per_dim"])
    budget = f"{d['budget']['epochs']} epochs on {d['train_examples'] // 1000}k images, K={r['num_codes']}"
    return (f"MNIST test bits/dim, {r['codebook']} codebook + PixelCNN prior",
            f"**{r['prior']['bits_per_dim']:.3f}** bits/dim ({budget})")


def vqvae_block():
    results = load("vqvae_mnist_results.json")
    if not vqvae_rows(results):
        return "(run `python3 benchmarks/vqvae_mnist.py`)"
    rows = []
    for d, r in vqvae_rows(results):
        t, p, smp = r["test"], r.get("prior"), r["samples"]
        rows.append([f"{d['label']}, {d['budget']['epochs']} epochs on {d['train_examples'] // 1000}k",
                     r["codebook"], f"{t['nll']:.2f}", f"{t['codes_used']} / {r['num_codes']}",
                     f"{t['perplexity']:.1f}",
                     f"{p['test_bits_per_code']:.2f} / {r['unigram_bits_per_code']:.2f} / {r['uniform_bits_per_code']:.0f}"
                     if p else f"— / {r['unigram_bits_per_code']:.2f} / {r['uniform_bits_per_code']:.0f}",
                     f"{p['bits_per_dim']:.3f}" if p else "—",
                     f"{smp['learned']['confidence']:.2f} / {smp['uniform']['confidence']:.2f}" if p
                     else f"— / {smp['uniform']['confidence']:.2f}"])
    md = table(["data, VQ-VAE budget", "codebook", "test −log p(x\\|z_q) (nats)", "codes used (test)",
                "perplexity (test)", "prior bits/code: PixelCNN / unigram / uniform",
                "bits/dim (PixelCNN prior)", "classifier confidence: learned / uniform-prior samples"], rows)
    held = results.get("claims", [])
    if held:
        md += "\n\n" + "; ".join(f"{c['claim']}: {c['values']} ({'holds' if c['holds'] else 'does NOT hold'})"
                                  for c in held) + "."
    return md


def avb_block():
    toy, mnist = load("avb_toy_results.json"), load("avb_mnist_results.json")
    if not toy and not mnist:
        return "(run `python3 benchmarks/avb_toy.py` and `python3 benchmarks/avb_mnist.py`)"
    parts = []
    if toy:
        s = toy["settings"]
        rows = [[r["row"], f"{r['elbo']['mean']:.3f}" + ("" if r["row"] == "VAE" else " (T estimate)"),
                 f"**{r['grid']['mean']:.3f}**", f"{r['ais']['mean']:.3f} ± {r['ais']['standard_error_mean']:.3f}"]
                for r in toy["rows"]]
        parts.append(table([f"four points, {s['steps']} steps", "ELBO", "exact log p(x) (grid)",
                            f"AIS log p(x), {s['ais_steps']} steps × {s['ais_chains']} chains"], rows))
    if mnist:
        s, vae_is = mnist["settings"], mnist.get("vae_is")
        rows = [[r["row"], f"**{r['ais_nll']:.2f}** ± {r['ais_nll_se']:.2f}",
                 f"{vae_is['nll']:.2f} ± {vae_is['nll_se']:.2f}" if r["row"] == "VAE" and vae_is else "— (no density)",
                 f"{-r['elbo']:.2f}" + (" (T estimate)" if r["elbo_is_estimate"] else " (bound)")]
                for r in mnist["rows"]]
        parts.append(table([f"MNIST, {s['epochs']} epochs on {s['train_examples_used'] // 1000}k images, "
                            f"{s['ais_examples']} test images", f"AIS NLL, {s['ais_steps']} steps × "
                            f"{s['ais_chains']} chains", f"IS NLL, k = {s['is_samples']}", "−ELBO"], rows))
    claims = (toy or {}).get("claims", []) + (mnist or {}).get("claims", [])
    text = "\n\n".join(parts)
    if claims:
        text += "\n\n" + "; ".join(f"{c['claim']}: {c['values']} ({'holds' if c['holds'] else 'does NOT hold'})"
                                    for c in claims) + "."
    return text


def iae_block():
    mnist, modes = load("iae_mnist_results.json"), load("iae_modes_results.json")
    if not mnist and not modes:
        return "(run `python3 benchmarks/iae_mnist.py` and `python3 benchmarks/iae_modes.py`)"
    parts, claims = [], []
    if mnist and "a" in mnist["parts"]:
        a = mnist["parts"]["a"]
        s = a.get("settings") or mnist["settings"]
        parts.append(table([f"MNIST, {s['epochs']} epochs on {s['train_examples'] // 1000}k images",
                            "class kept (CNN on the reconstructions)", "pixel std across seeds"],
                           [[r["label"], f"**{r['accuracy']:.3f}**", f"**{r['pixel_std']:.4f}**"]
                            for r in a["rows"]]))
    if mnist:
        for letter in sorted(mnist["parts"]):
            claims += mnist["parts"][letter]["claims"]
    if modes:
        rows = []
        for data in modes["datasets"]:
            for model in ("GAN", "IAE"):
                r = data["models"][model]
                rows.append([f"{data['name']}, {model}", f"**{r['modes_covered']}** / {r['num_modes']}",
                             f"{r['high_quality_fraction']:.3f}"])
        parts.append(table(["2-D mixture, model", "modes covered", "high-quality samples"], rows))
        claims += modes.get("claims", [])
    text = "\n\n".join(parts)
    if claims:
        text += "\n\n" + "; ".join(f"{c['claim']} ({'holds' if c['holds'] else 'does NOT hold'})"
                                    for c in claims) + "."
    return text


BLOCKS = {"models": models_block, "iwae": iwae_block, "speed": speed_block, "aae": aae_block,
          "ladder": ladder_block, "vqvae": vqvae_block, "avb": avb_block,
          "iae": iae_block}


def render(text):
    """`text` with every generated block replaced by its current content."""
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- results:{name} -->\n)(?:.*?\n)?(<!-- /results:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md has no block <!-- results:{name} --> ... <!-- /results:{name} -->")
        content = make()
        text = pattern.sub(lambda m: m.group(1) + content + "\n" + m.group(2), text)
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    a = p.parse_args(argv)
    text = a.readme.read_text()
    new = render(text)
    if a.check:
        if new != text:
            print(f"{a.readme} is out of date: run python3 benchmarks/readme_tables.py", file=sys.stderr)
            return 1
        return 0
    a.readme.write_text(new)
    print(f"wrote {a.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
