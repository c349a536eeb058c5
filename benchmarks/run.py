"""tfvae speed in one command: training throughput per execution mode next to PyTorch,
evaluation against the matmul roofline, and the input pipeline on its own.

    python benchmarks/run.py                       # full run, writes docs/results.md and .json
    python benchmarks/run.py --quick --out /tmp/results.md      # a few minutes: checks the script

Every measurement runs in its own subprocess (`run.py --worker JSON`, which prints one JSON
line), so that peak memory (ru_maxrss) belongs to one configuration and no run warms another's
caches. Models: the IWAE paper's MLP (benchmarks/iwae_mnist.py `paper_model`) on 28x28 MNIST
(../shared/data/mnist, or the bundled sample when absent). See benchmarks/README.md.
"""
import argparse
import datetime
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MNIST = ROOT.parent / "shared" / "data" / "mnist"
MODELS = {"VAE": ("VAE", 1), "IWAE k=5": ("IWAE", 5), "IWAE k=50": ("IWAE", 50)}  # paper configs
MODES = ("eager", "graph", "xla")
PRECISIONS = ("float32", "bfloat16")  # side by side with PyTorch: both sides in the same precision
TORCH_PAIRS = {"VAE": 1, "IWAE k=50": 50}  # tfvae model -> k of the PyTorch reference


def data_source():
    """(name, train split, test split) for tfvae.datasets: real MNIST or the bundled sample."""
    if (MNIST / "train5k-images-idx3-ubyte.gz").exists():
        return str(MNIST), "train5k", "t10k"
    return "sample", "train", "test"


# ----------------------------------------------------------------------------- workers
def train_dataset(cfg):
    import tfvae

    name, split, _ = data_source()
    return tfvae.datasets.load(name, split, batch_size=cfg["batch_size"], binarize="dynamic",
                               seed=cfg["seed"], drop_remainder=True, take=cfg["train_examples"])


def worker_train(cfg):
    import keras
    import tfvae
    from iwae_mnist import EpochTimer, paper_model

    if cfg["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_float16")
    if cfg.get("precision") == "bfloat16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    ds = train_dataset(cfg)
    keras.utils.set_random_seed(cfg["seed"])
    cls, k = MODELS[cfg["model"]]
    model = paper_model(getattr(tfvae, cls), k, cfg["seed"])
    eager = cfg["mode"] == "eager"
    # jit_compile=False for "graph": Keras' default "auto" means XLA whenever a GPU is visible.
    model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-4),
                  run_eagerly=eager, jit_compile=cfg["mode"] == "xla",
                  steps_per_execution=1 if eager else cfg["steps_per_execution"])
    timer = EpochTimer()
    history = model.fit(ds, epochs=cfg["epochs"], verbose=0, callbacks=[timer])
    examples = int(ds.cardinality()) * cfg["batch_size"]
    steady = statistics.median(timer.times[1:] or timer.times)
    return {"first_epoch_s": timer.times[0], "steady_epoch_s": steady,
            "compile_overhead_s": timer.times[0] - steady, "examples_per_epoch": examples,
            "examples_per_s": examples / steady, "epoch_times_s": timer.times,
            "best_examples_per_s": examples / min(timer.times[1:] or timer.times),
            "precision": cfg.get("precision", "float32"),
            "steps_per_execution": 1 if eager else cfg["steps_per_execution"],
            "jit_compile": bool(model.jit_compile), "final_loss": history.history["loss"][-1]}


def worker_torch(cfg):
    import numpy as np
    import torch_reference

    x = torch_reference.load_mnist_images(MNIST)
    if x is None:
        with np.load(ROOT / "tfvae" / "data" / "mnist_sample.npz") as data:
            x = data["x_train"].reshape(-1, 784).astype(np.float32) / 255.0
    x = x[:cfg["train_examples"]]
    epoch_steps = len(x) // cfg["batch_size"]
    steps = (cfg["epochs"] - 1) * epoch_steps  # as many as tfvae's steady epochs, timed per epoch
    return torch_reference.train_throughput(
        x, k=cfg["k"], batch_size=cfg["batch_size"], steps=max(steps, 1),
        warmup_steps=cfg["torch_warmup_steps"], threads=cpu_cores(), seed=cfg["seed"],
        compile=cfg["torch_compile"], window_steps=epoch_steps,
        precision=cfg.get("precision", "float32"))


def matmul_flops(network):
    """Σ 2·n_in·n_out over the dense kernels: FLOPs of one row through the network."""
    return sum(2 * int(w.shape[0]) * int(w.shape[1]) for w in network.weights if len(w.shape) == 2)


def worker_eval(cfg):
    import keras
    import numpy as np
    import tfvae
    from iwae_mnist import paper_model
    from roofline import matmul_gflops

    if cfg["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_float16")
    name, _, split = data_source()
    x, _ = tfvae.datasets.load_arrays(name, split, binarize="static", seed=0,
                                      take=cfg["test_examples"])
    model = paper_model(tfvae.IWAE, 50, cfg["seed"])
    k, batch = cfg["eval_samples"], cfg["batch_size"]
    kwargs = dict(num_samples=k, batch_size=batch, chunk_size=cfg["chunk_size"], seed=0)
    start = time.perf_counter()
    model.log_likelihood(x[:batch], **kwargs).numpy()  # traces the evaluation function
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    log_px = model.log_likelihood(x, **kwargs).numpy()
    seconds = time.perf_counter() - start
    n = len(x)
    enc, dec = matmul_flops(model.encoder), matmul_flops(model.decoder)
    flops = n * enc + n * k * dec
    gflops = matmul_gflops(2048, "float16" if cfg["mixed_precision"] else "float32",
                           repeats=cfg["roofline_repeats"])
    allowed = flops / (gflops * 1e9)
    chunk = cfg["chunk_size"] or model.default_chunk_size(k, batch)
    return {"examples": n, "num_samples": k, "chunk_size": chunk, "warmup_s": warmup,
            "seconds": seconds, "pairs_per_s": n * k / seconds, "encoder_flops": enc,
            "decoder_flops": dec, "flops": flops, "roofline_gflops": gflops,
            "allowed_s": allowed, "ratio": seconds / allowed,
            "mean_log_px": float(np.mean(log_px))}


def worker_pipeline(cfg):
    ds = train_dataset(cfg)
    for _ in ds:  # one pass fills the cache
        pass
    count, start = 0, time.perf_counter()
    for _ in range(cfg["pipeline_epochs"]):
        for batch in ds:
            count += int(batch.shape[0])
    seconds = time.perf_counter() - start
    return {"examples": count, "seconds": seconds, "examples_per_s": count / seconds}


WORKERS = {"train": worker_train, "torch": worker_torch, "eval": worker_eval,
           "pipeline": worker_pipeline}


def run_worker(cfg):
    sys.path.insert(0, str(HERE))
    result = WORKERS[cfg["kind"]](cfg)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def cpu_cores():
    return len(os.sched_getaffinity(0))


def json_subprocess(command, env, cwd=None):
    """Run `command` in a fresh process: its last JSON line as a dict, or {"error": the last
    line of its stderr}; with the process's wall time as `wall_s`."""
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        result = json.loads(lines[-1])
    else:
        result = {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    result["wall_s"] = time.perf_counter() - start
    return result


def spawn(cfg, device):
    """Run one worker in a fresh interpreter; its JSON result or {"error": ...}."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    result = json_subprocess([sys.executable, __file__, "--worker", json.dumps(cfg)], env)
    label = " ".join(str(cfg[key]) for key in ("kind", "model", "mode", "k", "chunk_size") if key in cfg)
    print(f"  [{device}] {label}: {summary_line(result)}", flush=True)
    return result


def summary_line(r):
    if "error" in r:
        return "ERROR " + r["error"]
    keys = ("examples_per_s", "first_epoch_s", "compile_overhead_s", "seconds", "ratio", "peak_rss_mib")
    return ", ".join(f"{key} {r[key]:.4g}" for key in keys if key in r)


# ----------------------------------------------------------------------------- measuring
def measure(cfg, device):
    """Every table of one device section, as raw numbers."""
    out = {"train": {}, "torch": {}, "eval": [], "pipeline": None}
    for model in MODELS:
        for mode in MODES:
            out["train"][f"{model}|{mode}"] = spawn(dict(cfg, kind="train", model=model, mode=mode), device)
    if device == "cpu":  # the PyTorch reference runs on the CPU only
        for precision in PRECISIONS:
            for model, k in TORCH_PAIRS.items():
                runs = {"tfvae": [], "torch": []}
                for _ in range(cfg["rounds"]):  # alternate the two sides, so drift hits both
                    runs["torch"].append(spawn(dict(cfg, kind="torch", k=k, precision=precision), device))
                    runs["tfvae"].append(spawn(dict(cfg, kind="train", model=model, mode="graph",
                                                    precision=precision), device))
                out["torch"][f"{model}|{precision}"] = runs
    for chunk in cfg["eval_chunk_sizes"]:
        out["eval"].append(spawn(dict(cfg, kind="eval", chunk_size=chunk), device))
    out["pipeline"] = spawn(dict(cfg, kind="pipeline"), device)
    return out


def side_by_side(runs):
    """Best and typical examples/s of each side over its rounds, or None if a run failed.

    best = the fastest epoch (tfvae) or window of as many steps (PyTorch) seen in any round: on a
    shared machine the minimum time is the best estimate of what the code can do (the `timeit`
    convention); typical = the median over rounds of each run's median epoch/window.
    """
    if any("error" in r for side in runs.values() for r in side):
        return None
    return {"tfvae": (max(r["best_examples_per_s"] for r in runs["tfvae"]),
                      statistics.median(r["examples_per_s"] for r in runs["tfvae"])),
            "torch": (max(r["best_examples_per_s"] for r in runs["torch"]),
                      statistics.median(r["median_examples_per_s"] for r in runs["torch"]))}


def targets(section):
    """[(target, value text, passed)] for one device section."""
    rows = []
    for key, runs in section["torch"].items():
        model, precision = key.split("|")
        pair = side_by_side(runs)
        if pair and precision == "float32":
            best, typical = pair["tfvae"][0] / pair["torch"][0], pair["tfvae"][1] / pair["torch"][1]
            rows.append((f"{model}: tfvae (graph) / PyTorch >= 1.5, float32, best epochs",
                         f"{best:.2f} (typical {typical:.2f})", best >= 1.5))
    evals = [r for r in section["eval"] if "ratio" in r]
    if evals:
        ratio = min(r["ratio"] for r in evals)
        rows.append(("evaluation <= 2x roofline time", f"{ratio:.2f}x", ratio <= 2))
    for model in MODELS:
        eager, graph = (section["train"][f"{model}|{m}"] for m in ("eager", "graph"))
        if "examples_per_s" in eager and "examples_per_s" in graph:
            rows.append((f"{model}: graph not slower than eager",
                         f"{graph['examples_per_s']:.0f} vs {eager['examples_per_s']:.0f} ex/s",
                         graph["examples_per_s"] >= eager["examples_per_s"]))
    for key, r in section["train"].items():
        if not key.endswith("eager") and "compile_overhead_s" in r:
            rows.append((f"{key.replace('|', ' ')}: compile overhead < 10 s",
                         f"{r['compile_overhead_s']:.1f} s", r["compile_overhead_s"] < 10))
    pipeline = section["pipeline"]
    fastest = max((r["examples_per_s"] for r in section["train"].values() if "examples_per_s" in r),
                  default=None)
    if fastest and "examples_per_s" in pipeline:
        rows.append(("input pipeline faster than the fastest training",
                     f"{pipeline['examples_per_s']:.0f} vs {fastest:.0f} ex/s",
                     pipeline["examples_per_s"] > fastest))
    torch_runs = [r for runs in section["torch"].values() for side in runs.values() for r in side]
    failed = [r for r in list(section["train"].values()) + torch_runs
              + section["eval"] + [pipeline] if "error" in r]
    if failed:
        rows.append(("every measurement ran", f"{len(failed)} failed", False))
    return rows


# ----------------------------------------------------------------------------- report
def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def fmt(value, spec=".1f"):
    return "—" if value is None else format(value, spec)


def section_markdown(title, section, cfg):
    md = [f"## {title}", "", "### Training throughput", "",
          f"Batch {cfg['batch_size']}, Adam(1e-3, eps 1e-4), dynamic binarization through "
          f"`tfvae.datasets.load`; epoch = {section_epoch(section)} images, {cfg['epochs']} epochs; "
          "steady = median of epochs 2..n; compile overhead = first - steady.", ""]
    rows = []
    for key, r in section["train"].items():
        model, mode = key.split("|")
        if "error" in r:
            rows.append([model, mode, "ERROR: " + r["error"], "", "", "", "", "", ""])
            continue
        rows.append([model, mode + (" (XLA off!)" if mode == "xla" and not r["jit_compile"] else ""),
                     r["steps_per_execution"], fmt(r["first_epoch_s"], ".2f"),
                     fmt(r["steady_epoch_s"], ".2f"), fmt(r["compile_overhead_s"], ".2f"),
                     fmt(r["examples_per_s"], ".0f"), fmt(r["best_examples_per_s"], ".0f"),
                     fmt(r["peak_rss_mib"], ".0f")])
    md += [table(["model", "mode", "steps/exec", "first epoch s", "steady epoch s",
                  "compile overhead s", "examples/s", "best epoch ex/s", "peak RSS MiB"], rows), ""]
    if section["torch"]:
        rows = []
        for key, runs in section["torch"].items():
            model, precision = key.split("|")
            pair = side_by_side(runs)
            if pair is None:
                errors = [r["error"] for side in runs.values() for r in side if "error" in r]
                rows.append([model, TORCH_PAIRS[model], precision, "ERROR: " + errors[0]] + [""] * 5)
                continue
            torch = runs["torch"][0]
            rows.append([model, TORCH_PAIRS[model], precision, f"{pair['tfvae'][0]:.0f}",
                         f"{pair['tfvae'][1]:.0f}", f"{pair['torch'][0]:.0f}", f"{pair['torch'][1]:.0f}",
                         f"**{pair['tfvae'][0] / pair['torch'][0]:.2f}**",
                         f"{pair['tfvae'][1] / pair['torch'][1]:.2f}"])
        md += ["### Side by side with PyTorch", "",
               f"`benchmarks/torch_reference.py` (PyTorch {torch_version(section)}, CPU, "
               f"{runs['torch'][0].get('threads', '?')} threads{', torch.compile' if cfg.get('torch_compile') else ''}) "
               "against tfvae in graph mode (its fastest CPU mode above): same model, batch, optimizer and "
               f"data, {cfg['rounds']} rounds per pair, each side in a fresh process and the two sides "
               "alternating. ex/s over epochs 2..n (PyTorch: windows of one epoch's steps); best = the "
               "fastest epoch of any round, typical = median over rounds of each run's median epoch. "
               "float32 is the comparison the target is about; bfloat16 puts both sides in mixed "
               "precision (Keras `mixed_bfloat16`, `torch.autocast(\"cpu\", torch.bfloat16)`: bfloat16 "
               "matmuls, float32 weights and log-likelihoods).", "",
               table(["model", "k", "precision", "tfvae best ex/s", "tfvae typical", "PyTorch best ex/s",
                      "PyTorch typical", "ratio (best)", "ratio (typical)"], rows), ""]
    rows = []
    for r in section["eval"]:
        if "error" in r:
            rows.append(["ERROR: " + r["error"]] + [""] * 10)
            continue
        rows.append([r["chunk_size"], r["examples"], r["num_samples"], fmt(r["warmup_s"], ".2f"),
                     fmt(r["seconds"], ".2f"), fmt(r["pairs_per_s"], ".3g"), fmt(r["flops"] / 1e9, ".1f"),
                     fmt(r["roofline_gflops"], ".1f"), fmt(r["allowed_s"], ".2f"), fmt(r["ratio"], ".2f"),
                     fmt(r["peak_rss_mib"], ".0f")])
    enc, dec = next(((r["encoder_flops"], r["decoder_flops"]) for r in section["eval"] if "flops" in r),
                    (433_600, 413_600))
    md += ["### Evaluation: importance-sampled log-likelihood", "",
           "`model.log_likelihood(x_test, num_samples=k, batch_size=100, chunk_size=c)` on the statically "
           "binarized test images (IWAE k=50 paper model; speed does not depend on the weights). "
           "Warm-up = one traced call on the first batch, not in `seconds`.", "",
           f"FLOPs = N·F_enc + N·k·F_dec, counting matmuls only (2·m·n·p for an m×n by n×p product): "
           f"F_enc = 2·(784·200 + 200·200 + 200·100) = {enc:,} per image (the 200→100 head gives mean and "
           f"log σ), F_dec = 2·(50·200 + 200·200 + 200·784) = {dec:,} per (image, sample) pair. "
           "tanh, softplus and log-sum-exp are not counted. Allowed time = FLOPs / roofline, where the "
           "roofline is `roofline.matmul_gflops(2048)` (best of "
           f"{cfg['roofline_repeats']}) measured in the same process right after the evaluation.", "",
           table(["chunk", "images", "k", "warm-up s", "seconds", "pairs/s", "GFLOP", "roofline GFLOP/s",
                  "allowed s", "measured/allowed", "peak RSS MiB"], rows), ""]
    pipeline = section["pipeline"]
    mode_best = [(r["examples_per_s"], key.replace("|", " ")) for key, r in section["train"].items()
                 if "examples_per_s" in r]
    fastest, fastest_name = max(mode_best) if mode_best else (None, "—")
    md += ["### Input pipeline alone", "",
           f"Iterating `load(..., binarize=\"dynamic\", batch_size={cfg['batch_size']})` for "
           f"{cfg['pipeline_epochs']} epochs after one epoch that fills the cache.", "",
           table(["pipeline ex/s", "fastest training ex/s", "pipeline / training"],
                 [[fmt(pipeline.get("examples_per_s"), ".0f"), f"{fmt(fastest, '.0f')} ({fastest_name})",
                   fmt(pipeline["examples_per_s"] / fastest, ".1f") if fastest and "examples_per_s" in pipeline
                   else "—"]]), ""]
    md += ["### Targets", "", table(["target", "value", "result"],
                                    [[t, v, "PASS" if ok else "FAIL"] for t, v, ok in targets(section)]), ""]
    return "\n".join(md)


def section_epoch(section):
    return next((r["examples_per_epoch"] for r in section["train"].values() if "examples_per_epoch" in r), "?")


def torch_version(section):
    runs = [r for pair in section["torch"].values() for r in pair["torch"]]
    return next((r["torch_version"] for r in runs if "torch_version" in r), "?")


def report(results):
    m, cfg = results["machine"], results["settings"]
    name, split, test = data_source()
    machine = [[key, json.dumps(value) if isinstance(value, (list, dict)) else value]
               for key, value in m.items()]
    md = ["# tfvae benchmark results", "",
          f"{results['date']}, `python benchmarks/run.py {' '.join(results['argv'])}`"
          f"{' (QUICK MODE: small sizes, not for comparison)' if cfg['quick'] else ''}; "
          f"total {results['total_s'] / 60:.1f} min. Data: {name} (train split `{split}`, test `{test}`).",
          "", "## Machine", "", table(["", ""], machine), ""]
    for device, section in results["sections"].items():
        title = "CPU" if device == "cpu" else "GPU" + (" (mixed_float16)" if cfg["mixed_precision"] else "")
        md.append(section_markdown(title, section, dict(cfg, mixed_precision=device == "gpu"
                                                        and cfg["mixed_precision"])))
    return "\n".join(md)


def other_scripts_sections(text):
    """The '## ... (benchmarks/<script>.py)' sections of an existing report: written by the other
    benchmark scripts (e.g. aae_mnist.py), kept when this script rewrites the report."""
    sections = re.split(r"(?m)^(?=## )", text)
    title = re.compile(r"## .*\(benchmarks/(?!run\.py\))[\w.]+\.py\)\s*$")
    return [s.rstrip() for s in sections if s.startswith("## ") and title.match(s.splitlines()[0])]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results.md")
    p.add_argument("--steps-per-execution", type=int, default=10, help="graph and XLA modes")
    p.add_argument("--epochs", type=int, help="training epochs per configuration (default 5, quick 3)")
    p.add_argument("--train-examples", type=int, help="images per epoch (default all 5k, quick 1000)")
    p.add_argument("--test-examples", type=int, help="evaluation images (default 10000, quick 200)")
    p.add_argument("--eval-samples", type=int, help="k of the log-likelihood (default 5000, quick 1000)")
    p.add_argument("--eval-chunk-size", type=int, nargs="+", default=[None],
                   help="one or more chunk sizes to time (default: tfvae's own choice)")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_float16 in the GPU section")
    p.add_argument("--torch-compile", action="store_true", help="torch.compile the reference step")
    p.add_argument("--rounds", type=int, help="alternating rounds per PyTorch pair (default 2, quick 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        return run_worker(json.loads(a.worker))

    quick = a.quick
    cfg = {"quick": quick, "batch_size": 100, "seed": a.seed, "steps_per_execution": a.steps_per_execution,
           "epochs": a.epochs or (3 if quick else 5),
           "train_examples": a.train_examples or (1000 if quick else None),
           "test_examples": a.test_examples or (200 if quick else 10000),
           "eval_samples": a.eval_samples or (1000 if quick else 5000),
           "eval_chunk_sizes": a.eval_chunk_size, "roofline_repeats": 3 if quick else 10,
           "pipeline_epochs": 2 if quick else 5, "torch_warmup_steps": 5 if quick else 20,
           "torch_compile": a.torch_compile, "mixed_precision": False,
           "rounds": a.rounds or (1 if quick else 2)}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(HERE))
    from roofline import machine_description

    start = time.perf_counter()
    results = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               "argv": sys.argv[1:] if argv is None else list(argv), "machine": machine_description(),
               "settings": dict(cfg, mixed_precision=a.mixed_precision), "sections": {}}
    print(f"data: {data_source()[0]}; {cpu_cores()} cores; measuring (CPU)...", flush=True)
    results["sections"]["cpu"] = measure(cfg, "cpu")
    if results["machine"]["gpus"]:
        print("measuring (GPU)...", flush=True)
        results["sections"]["gpu"] = measure(dict(cfg, mixed_precision=a.mixed_precision), "gpu")
    results["total_s"] = time.perf_counter() - start
    md = report(results)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    kept = other_scripts_sections(a.out.read_text()) if a.out.exists() else []
    a.out.write_text("\n\n".join([md] + kept) + "\n")
    a.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + md + f"\n\nwrote {a.out} and {a.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
