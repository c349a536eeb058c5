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
TORCH_PAIRS = {"VAE": 1, "IWAE k=50": 50}  # tfvae model -> k of the PyTorch references
# The VQ-VAE side by side with pythae's VQVAE only (float32; no hand-written PyTorch loop): K = 512,
# D = 64, tfvae's vq_encoder/vq_decoder at the width of benchmarks/vqvae_mnist.py and the same
# architecture in PyTorch (pythae_reference.vq_networks). Reported, not judged by a target.
VQ_PAIR = ("VQ-VAE", ("tfvae defaults", "pythae"))
VQ_FILTERS = 64
# The sides of the comparison, alternating in each round. "tfvae defaults" is what a user gets from
# compile(optimizer=keras.optimizers.Adam(...)) and nothing else; "tfvae best" adds the settings
# that make it fastest here (graph mode, --steps-per-execution).
SIDES = {"float32": ("tfvae defaults", "tfvae best", "pythae", "torch"),
         "bfloat16": ("tfvae best", "torch")}  # pythae has no CPU mixed precision
SIDE_NAMES = {"tfvae defaults": "tfvae, `compile(optimizer=Adam(...))` only",
              "tfvae best": "tfvae, graph mode and steps_per_execution {spe}",
              "pythae": "pythae {pythae} (`BaseTrainer.train_step`)",
              "torch": "hand-written PyTorch loop"}
VENV_PYTHON = Path("/tmp/aae-torch-venv/bin/python")  # see benchmarks/torch_aae_reference.py


def native_bfloat16():
    """Whether this CPU has bfloat16 instructions (avx512_bf16 or amx_bf16). Without them both
    sides emulate bfloat16 and the bfloat16 comparison measures only the emulations."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


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
    if cfg["model"] == VQ_PAIR[0]:
        filters = cfg.get("filters", VQ_FILTERS)
        model = tfvae.VQVAE((28, 28, 1), num_codes=512, code_dim=64, encoder=tfvae.networks.vq_encoder(filters),
                            decoder=tfvae.networks.vq_decoder(filters), seed=cfg["seed"])
    else:
        cls, k = MODELS[cfg["model"]]
        model = paper_model(getattr(tfvae, cls), k, cfg["seed"])
    eager = cfg["mode"] == "eager"
    optimizer = keras.optimizers.Adam(1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-4)
    if cfg.get("defaults"):  # what a user writes: tfvae's compile() chooses the rest
        model.compile(optimizer=optimizer)
    else:  # jit_compile=False for "graph": Keras' "auto" means XLA whenever a GPU is visible.
        model.compile(optimizer=optimizer, run_eagerly=eager, jit_compile=cfg["mode"] == "xla",
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
            "steps_per_execution": int(model.steps_per_execution),
            "optimizer": type(model.optimizer).__module__ + "." + type(model.optimizer).__name__,
            "jit_compile": bool(model.jit_compile), "final_loss": history.history["loss"][-1]}


def torch_command(cfg, side, python):
    """The command line of one PyTorch-side measurement (`side` "pythae" or "torch"), run by
    `python` (an interpreter with torch, and pythae for "pythae"; it need not have tfvae)."""
    train_examples = cfg["train_examples"] or 5000
    data = str(MNIST) if data_source()[0] == str(MNIST) else None  # None: random pixels
    if side == "pythae":
        config = {"k": cfg["k"], "epochs": cfg["epochs"], "train_examples": train_examples,
                  "threads": cpu_cores(), "seed": cfg["seed"], "batch_size": cfg["batch_size"],
                  "data": data}
        if cfg.get("model") == VQ_PAIR[0]:
            config.update(model="vqvae", filters=cfg.get("filters", VQ_FILTERS), num_codes=512, code_dim=64,
                          ema=False, reconstruction="bce")
        return [python, str(HERE / "pythae_reference.py"), "--config", json.dumps(config)]
    epoch_steps = train_examples // cfg["batch_size"]
    config = {"k": cfg["k"], "batch_size": cfg["batch_size"], "data": data,
              "train_examples": train_examples,
              "steps": max((cfg["epochs"] - 1) * epoch_steps, 1),  # as many as tfvae's steady epochs
              "warmup_steps": cfg["torch_warmup_steps"], "threads": cpu_cores(), "seed": cfg["seed"],
              "compile": cfg["torch_compile"], "window_steps": epoch_steps,
              "precision": cfg.get("precision", "float32")}
    return [python, str(HERE / "torch_reference.py"), "--config", json.dumps(config)]


def torch_python(explicit=None):
    """The interpreter for the PyTorch sides: `explicit` (--torch-python), $TFVAE_TORCH_PYTHON,
    this one if it has torch and pythae, else /tmp/aae-torch-venv (see torch_aae_reference.py),
    else this one if it has torch; None if none has."""
    import importlib.util

    for candidate in (explicit, os.environ.get("TFVAE_TORCH_PYTHON")):
        if candidate:
            return str(candidate)
    if importlib.util.find_spec("torch") and importlib.util.find_spec("pythae"):
        return sys.executable
    if VENV_PYTHON.exists():
        return str(VENV_PYTHON)
    if importlib.util.find_spec("torch"):
        return sys.executable
    return None


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


WORKERS = {"train": worker_train, "eval": worker_eval, "pipeline": worker_pipeline}


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


def spawn(cfg, device, command=None):
    """Run one worker (or `command`) in a fresh interpreter; its JSON result or {"error": ...}."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TQDM_DISABLE="1")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = "-1"
    result = json_subprocess(command or [sys.executable, __file__, "--worker", json.dumps(cfg)], env)
    label = " ".join(str(cfg[key]) for key in ("kind", "side", "model", "mode", "precision", "k",
                                                "chunk_size") if key in cfg)
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
    if device == "cpu":  # the PyTorch sides run on the CPU only
        python = torch_python(cfg["torch_python"])
        for precision in PRECISIONS if native_bfloat16() else ("float32",):
            for model, k in TORCH_PAIRS.items():
                out["torch"][f"{model}|{precision}"] = alternating_runs(
                    cfg, device, python, SIDES[precision], model=model, precision=precision, k=k)
        model, sides = VQ_PAIR
        out["torch"][f"{model}|float32"] = alternating_runs(
            cfg, device, python, sides, model=model, precision="float32", k=1, filters=VQ_FILTERS)
    for chunk in cfg["eval_chunk_sizes"]:
        out["eval"].append(spawn(dict(cfg, kind="eval", chunk_size=chunk), device))
    out["pipeline"] = spawn(dict(cfg, kind="pipeline"), device)
    return out


def alternating_runs(cfg, device, python, sides, **side_options):
    """{side: [one training measurement per round]}: the `sides` in alternating rounds, each in a
    fresh process, so that drift hits all (tfvae sides by `spawn`, PyTorch sides by `python`)."""
    runs = {side: [] for side in sides}
    for _ in range(cfg["rounds"]):
        for side in runs:
            side_cfg = dict(cfg, kind="train", side=side, mode="graph", defaults=side == "tfvae defaults",
                            **side_options)
            if side.startswith("tfvae"):
                runs[side].append(spawn(side_cfg, device))
            elif python is None:
                runs[side].append({"error": "no interpreter with torch: pass --torch-python"})
            else:
                runs[side].append(spawn(side_cfg, device, torch_command(side_cfg, side, python)))
    return runs


def side_by_side(runs):
    """{side: (best, typical) examples/s over its rounds}, without the sides where a run failed.

    best = the fastest epoch (tfvae, pythae) or window of as many steps (PyTorch loop) seen in any
    round: on a shared machine the minimum time is the best estimate of what the code can do (the
    `timeit` convention); typical = the median over rounds of each run's median epoch/window.
    """
    return {side: (max(r["best_examples_per_s"] for r in results),
                   statistics.median(r["median_examples_per_s"] if "median_examples_per_s" in r
                                     else r["examples_per_s"] for r in results))
            for side, results in runs.items() if results and not any("error" in r for r in results)}


RATIOS = (("tfvae defaults", "pythae", 1.5), ("tfvae best", "pythae", None), ("tfvae best", "torch", 1.5))


def ratios(pair):
    """[(numerator, denominator, target, best ratio, typical ratio)] for the sides measured."""
    return [(a, b, goal, pair[a][0] / pair[b][0], pair[a][1] / pair[b][1])
            for a, b, goal in RATIOS if a in pair and b in pair]


def targets(section):
    """[(target, value text, passed)] for one device section."""
    rows = []
    for key, runs in section["torch"].items():
        model, precision = key.split("|")
        for a, b, goal, best, typical in ratios(side_by_side(runs)) if precision == "float32" else ():
            if goal and model in TORCH_PAIRS:  # the VQ-VAE pair is reported, not judged
                rows.append((f"{model}: {a} / {b} >= {goal}, float32, best epochs",
                             f"{best:.2f} (typical {typical:.2f})", best >= goal))
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
        md += side_by_side_markdown(section, cfg)
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


def side_by_side_markdown(section, cfg):
    versions = {key: next((r[key] for runs in section["torch"].values() for side in runs.values()
                           for r in side if key in r), "?") for key in ("pythae_version", "torch_version")}
    names = {side: name.format(spe=cfg["steps_per_execution"], pythae=versions["pythae_version"])
             for side, name in SIDE_NAMES.items()}
    rows = []
    for key, runs in section["torch"].items():
        model, precision = key.split("|")
        pair = side_by_side(runs)
        for side, results in runs.items():
            if side in pair:
                rows.append([model, precision, names[side], f"{pair[side][0]:.0f}", f"{pair[side][1]:.0f}"])
            else:
                error = next((r["error"] for r in results if "error" in r), "not run")
                rows.append([model, precision, names[side], "ERROR: " + error, ""])
        for a, b, goal, best, typical in ratios(pair):
            target = f" (target {goal})" if goal and precision == "float32" and model in TORCH_PAIRS else ""
            rows.append([model, precision, f"ratio {a} / {b}{target}", f"**{best:.2f}**", f"{typical:.2f}"])
    tfvae_runs = [r for runs in section["torch"].values() for r in runs.get("tfvae defaults", [])
                  if "optimizer" in r]
    defaults = (f"`{tfvae_runs[0]['optimizer']}`, steps_per_execution {tfvae_runs[0]['steps_per_execution']}"
                if tfvae_runs else "?")
    return ["### Side by side with pythae and PyTorch", "",
            f"The same model (the IWAE paper's MLP), batch, optimizer (Adam 1e-3, eps 1e-4) and images "
            f"(epoch = {section_epoch(section)}), CPU, {cpu_cores()} threads on every side; "
            f"{cfg['rounds']} rounds, each side in a fresh process and the sides alternating within a "
            f"round. Sides: *tfvae defaults* is `compile(optimizer=keras.optimizers.Adam(...))` and "
            f"nothing else (tfvae's compile chose {defaults}); *tfvae best* is graph mode with "
            f"`steps_per_execution={cfg['steps_per_execution']}`; *pythae* is pythae "
            f"{versions['pythae_version']}'s `VAE`/`IWAE` under its `BaseTrainer` "
            "(`benchmarks/pythae_reference.py`; grayscale targets, as pythae has no dynamic "
            "binarization); *torch* is the hand-written loop of `benchmarks/torch_reference.py` "
            f"(PyTorch {versions['torch_version']}{', torch.compile' if cfg.get('torch_compile') else ''}). "
            "ex/s over epochs 2..n (the PyTorch loop: windows of one epoch's steps); best = the "
            "fastest epoch of any round, typical = the median over rounds of each run's median epoch. "
            "float32 is what the targets are about; bfloat16 puts both sides in mixed precision (Keras "
            "`mixed_bfloat16`, `torch.autocast(\"cpu\", torch.bfloat16)`), measured only on a CPU "
            f"with bfloat16 instructions ({'this one has them' if native_bfloat16() else 'not this one'}). "
            f"The VQ-VAE rows: `tfvae.VQVAE` (K = 512, D = 64, the plain codebook) with "
            f"`vq_encoder({VQ_FILTERS})` / `vq_decoder({VQ_FILTERS})` at tfvae's defaults, against pythae's "
            "`VQVAE` on the same architecture in PyTorch (`pythae_reference.vq_networks`, binary "
            "cross-entropy in place of pythae's hard-coded squared error); reported without a target. "
            "The adversarial "
            "autoencoder's comparison with pythae is part (e) of the AAE section below.", "",
            table(["model", "precision", "side", "best ex/s", "typical ex/s"], rows), ""]


def section_epoch(section):
    return next((r["examples_per_epoch"] for r in section["train"].values() if "examples_per_epoch" in r), "?")


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
    p.add_argument("--steps-per-execution", type=int, default=50,
                   help="graph and XLA modes, and the 'tfvae best' side")
    p.add_argument("--epochs", type=int, help="training epochs per configuration (default 5, quick 3)")
    p.add_argument("--train-examples", type=int, help="images per epoch (default all 5k, quick 1000)")
    p.add_argument("--test-examples", type=int, help="evaluation images (default 10000, quick 200)")
    p.add_argument("--eval-samples", type=int, help="k of the log-likelihood (default 5000, quick 1000)")
    p.add_argument("--eval-chunk-size", type=int, nargs="+", default=[None],
                   help="one or more chunk sizes to time (default: tfvae's own choice)")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_float16 in the GPU section")
    p.add_argument("--torch-compile", action="store_true", help="torch.compile the reference step")
    p.add_argument("--torch-python", help="interpreter with torch and pythae for the PyTorch sides "
                   "(default: see torch_python())")
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
           "torch_compile": a.torch_compile, "torch_python": a.torch_python, "mixed_precision": False,
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
