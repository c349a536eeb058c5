"""The benchmark reports' arithmetic: which figures run.py compares and when a target passes;
how aae_mnist.py writes its section and clusters; its priors part end to end at smoke sizes;
vqvae_mnist.py's code statistics, unigram prior, claims and time estimate."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import aae_mnist  # noqa: E402  (numpy only at import: TensorFlow loads inside its parts)
import run  # noqa: E402
import vqvae_mnist  # noqa: E402  (numpy only at import)


def tfvae_run(best, median):
    return {"best_examples_per_s": best, "examples_per_s": median}


def torch_run(best, median):
    return {"best_examples_per_s": best, "median_examples_per_s": median}


def section(defaults_best, pythae_best=1000.0, best=1500.0, torch_best=1000.0, precision="float32",
            eval_ratio=1.5):
    runs = {"tfvae defaults": [tfvae_run(defaults_best, 900.0), tfvae_run(defaults_best - 100, 1000.0),
                               tfvae_run(500.0, 1100.0)],
            "tfvae best": [tfvae_run(best, 950.0)],
            "pythae": [tfvae_run(pythae_best, 650.0), tfvae_run(pythae_best - 50, 600.0)],
            "torch": [torch_run(torch_best, 700.0), torch_run(torch_best - 50, 800.0)]}
    if precision == "bfloat16":
        runs = {side: runs[side] for side in run.SIDES["bfloat16"]}
    train = {f"{m}|{mode}": {"examples_per_s": 100.0 if mode == "eager" else 200.0, "compile_overhead_s": 1.0}
             for m in run.MODELS for mode in run.MODES}
    return {"torch": {f"IWAE k=50|{precision}": runs}, "train": train, "eval": [{"ratio": eval_ratio}],
            "pipeline": {"examples_per_s": 1e6}}


def test_side_by_side_takes_the_fastest_epoch_and_the_median_run():
    pair = run.side_by_side(section(1500.0)["torch"]["IWAE k=50|float32"])
    assert pair == {"tfvae defaults": (1500.0, 1000.0), "tfvae best": (1500.0, 950.0),
                    "pythae": (1000.0, 625.0), "torch": (1000.0, 750.0)}
    failed = {"tfvae defaults": [tfvae_run(1.0, 1.0)], "pythae": [tfvae_run(1.0, 1.0), {"error": "boom"}]}
    assert run.side_by_side(failed) == {"tfvae defaults": (1.0, 1.0)}  # a side with a failed run is left out
    ratios = {(a, b): (goal, best) for a, b, goal, best, _ in run.ratios(pair)}
    assert ratios == {("tfvae defaults", "pythae"): (1.5, 1.5), ("tfvae best", "pythae"): (None, 1.5),
                      ("tfvae best", "torch"): (1.5, 1.5)}


@pytest.mark.parametrize("defaults_best, passed", [(1500.0, True), (1490.0, False)])
def test_defaults_against_pythae_is_the_speed_target(defaults_best, passed):
    rows = {name: ok for name, _, ok in run.targets(section(defaults_best))}
    speed = [name for name in rows if ">= 1.5, float32" in name]
    assert speed == ["IWAE k=50: tfvae defaults / pythae >= 1.5, float32, best epochs",
                     "IWAE k=50: tfvae best / torch >= 1.5, float32, best epochs"]
    assert rows[speed[0]] is passed
    assert rows[speed[1]] is True
    assert rows["evaluation <= 2x roofline time"] is True
    # bfloat16 pairs are reported, not judged
    assert not any(">= 1.5" in name for name, _, _ in run.targets(section(defaults_best, precision="bfloat16")))


def test_evaluation_target_and_failed_runs():
    rows = {name: ok for name, _, ok in run.targets(section(1500.0, eval_ratio=2.01))}
    assert rows["evaluation <= 2x roofline time"] is False
    broken = section(1500.0)
    broken["torch"]["IWAE k=50|float32"]["pythae"].append({"error": "killed"})
    rows = {name: ok for name, _, ok in run.targets(broken)}
    assert rows["every measurement ran"] is False
    assert not any("pythae >=" in name for name in rows)  # no ratio from a side with a failed run
    assert "IWAE k=50: tfvae best / torch >= 1.5, float32, best epochs" in rows


def test_side_by_side_report_names_every_side_and_ratio():
    md = "\n".join(run.side_by_side_markdown(section(1500.0), {"steps_per_execution": 50, "rounds": 2}))
    for text in ("`compile(optimizer=Adam(...))` only", "steps_per_execution 50", "pythae", "hand-written",
                 "ratio tfvae defaults / pythae (target 1.5) | **1.50**", "ratio tfvae best / pythae | **1.50**"):
        assert text in md, text


# ----------------------------------------------------------------------------- aae_mnist.py
AAE_TITLE = aae_mnist.SECTION_TITLE


def test_aae_section_replaces_its_own_and_keeps_the_others():
    old = ("# tfvae benchmark results\n\nintro\n\n## CPU\n\ncpu table\n\n### sub\n\nx\n\n"
           f"## {AAE_TITLE}\n\nold numbers\n\n### (a) Priors\n\nold table\n\n## Later\n\nkept\n")
    body = f"## {AAE_TITLE}\n\nnew numbers\n"
    new = aae_mnist.replace_section(old, AAE_TITLE, body)
    assert "new numbers" in new and "old numbers" not in new and "old table" not in new
    assert new.index("## CPU") < new.index("new numbers") < new.index("## Later")
    assert "### sub\n\nx" in new and "kept" in new
    appended = aae_mnist.replace_section("# title\n\n## CPU\n\nrows\n", AAE_TITLE, body)
    assert appended == f"# title\n\n## CPU\n\nrows\n\n## {AAE_TITLE}\n\nnew numbers\n"
    assert aae_mnist.replace_section("", AAE_TITLE, body) == body


def test_run_py_keeps_the_sections_other_scripts_wrote():
    text = ("# tfvae benchmark results\n\n## Machine\n\nm\n\n## CPU\n\nc\n\n"
            f"## {AAE_TITLE}\n\naae\n\n### (e) Training speed\n\ne\n")
    assert run.other_scripts_sections(text) == [f"## {AAE_TITLE}\n\naae\n\n### (e) Training speed\n\ne"]
    assert run.other_scripts_sections("## CPU (benchmarks/run.py)\n\nc\n") == []


def test_kmeans_finds_separated_clusters_and_parts_parse():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = np.repeat(np.arange(3), 50)
    x = centers[labels] + 0.1 * rng.normal(size=(150, 2))
    found, inertia = aae_mnist.kmeans(x, 3, restarts=2, seed=0)
    ids = aae_mnist.kmeans_assign(x, found)
    assert len(np.unique(ids)) == 3 and all(len(np.unique(ids[labels == c])) == 1 for c in range(3))
    assert inertia == pytest.approx(np.sum((x - found[ids]) ** 2))
    assert aae_mnist.parse_parts(None) == list("abcde")
    assert aae_mnist.parse_parts(["d,a"]) == ["a", "d"] and aae_mnist.parse_parts(["e", "b"]) == ["b", "e"]
    with pytest.raises(ValueError, match="unknown part"):
        aae_mnist.parse_parts(["az"])


@pytest.mark.slow
def test_aae_benchmark_smoke_part_a(tmp_path):
    """The priors part end to end on real MNIST at smoke sizes (about 30 s on 2 cores)."""
    import json
    import subprocess

    if not (aae_mnist.DEFAULT_DATA / "train5k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found in {aae_mnist.DEFAULT_DATA} (../shared/data beside the repo)")
    proc = subprocess.run([sys.executable, str(Path(aae_mnist.__file__)), "--smoke", "--parts", "a",
                           "--out-dir", str(tmp_path), "--hidden", "64", "64"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "aae_mnist_results.json").read_text())
    rows = results["parts"]["a"]["rows"]
    assert [r["prior"] for r in rows] == ["standard_normal", "mixture_of_gaussians", "swiss_roll"]
    assert all(np.isfinite(r["mmd2"][k]) for r in rows for k in ("aae", "vae_draw", "null"))
    assert rows[2]["vae_prior"] == "N(0, I)" and rows[2]["vae_note"]
    md = (tmp_path / "results.md").read_text()
    assert md.startswith(f"## {AAE_TITLE}") and "SMOKE MODE" in md and "| swiss roll |" in md
    for row in rows:
        assert (tmp_path / row["figure"]).stat().st_size > 10_000
    assert proc.stdout.count("CLAIM") == 3


def test_vq_pair_is_reported_without_a_target():
    vq = {"tfvae defaults": [tfvae_run(100.0, 90.0)], "pythae": [tfvae_run(400.0, 300.0)]}
    sec = section(1500.0)
    sec["torch"]["VQ-VAE|float32"] = vq
    rows = {name: ok for name, _, ok in run.targets(sec)}
    assert not any(name.startswith("VQ-VAE") for name in rows)  # 0.25x pythae fails nothing
    assert all(rows.values())
    md = "\n".join(run.side_by_side_markdown(sec, {"steps_per_execution": 50, "rounds": 2}))
    assert "| VQ-VAE | float32 | ratio tfvae defaults / pythae | **0.25** | 0.30 |" in md
    assert f"vq_encoder({run.VQ_FILTERS})" in md


# ----------------------------------------------------------------------------- vqvae_mnist.py
def test_vq_code_statistics_and_unigram_prior_against_closed_forms():
    # four codes equally often: perplexity exp(log 4) = 4; one code: 1
    assert vqvae_mnist.code_statistics(np.array([[0, 1], [2, 3]]), 8) == (pytest.approx(4.0), 4)
    assert vqvae_mnist.code_statistics(np.full((3, 7, 7), 5), 8) == (pytest.approx(1.0), 1)
    # p = (1/4, 3/4): exp(H) = exp(log 4 - (3/4) log 3) = 4 / 3^(3/4)
    assert vqvae_mnist.code_statistics(np.repeat([0, 1], [1, 3]), 4)[0] == pytest.approx(4 / 3 ** 0.75)
    # Laplace-smoothed frequencies over K = 4 from 8 training codes (6 zeros, 2 ones): p = (count + 1) / 12
    train = np.repeat([0, 1], [6, 2])
    test = np.array([0, 1, 3])
    expected = -np.mean(np.log2([7 / 12, 3 / 12, 1 / 12]))
    assert vqvae_mnist.unigram_bits_per_code(train, test, 4) == pytest.approx(expected, rel=1e-12)
    # a uniform training histogram gives the uniform prior's log2 K
    assert vqvae_mnist.unigram_bits_per_code(np.arange(8), np.arange(8), 8) == pytest.approx(3.0)


def test_vq_confidence_summary():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.5, 0.2, 0.3]])
    out = vqvae_mnist.confidence_summary(probs)
    assert out["confidence"] == pytest.approx((0.9 + 0.7 + 0.6 + 0.5) / 4)
    assert out["class_counts"] == [3, 1, 0]
    assert out["effective_classes"] == pytest.approx(np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))))


def test_vq_per_dataset_budgets():
    both = ["mnist", "fashion_mnist"]
    assert vqvae_mnist.per_dataset(None, both, "epochs") == {
        d: vqvae_mnist.BUDGET[d]["epochs"] for d in both}
    assert vqvae_mnist.per_dataset(None, ["mnist"], "prior_epochs", smoke=True) == {
        "mnist": vqvae_mnist.SMOKE_BUDGET["prior_epochs"]}
    assert vqvae_mnist.per_dataset([7], both, "epochs") == {"mnist": 7, "fashion_mnist": 7}
    assert vqvae_mnist.per_dataset([7, 2], both, "epochs") == {"mnist": 7, "fashion_mnist": 2}
    with pytest.raises(ValueError, match="one per data set"):
        vqvae_mnist.per_dataset([1, 2, 3], both, "epochs")


def vq_row(codebook, codes_used, prior_bits=None, unigram=7.0, learned_conf=0.9, uniform_conf=0.5):
    samples = {"uniform": {"confidence": uniform_conf, "effective_classes": 1.0}}
    prior = None
    if prior_bits is not None:
        prior = {"test_bits_per_code": prior_bits, "train_bits_per_code": prior_bits - 0.1,
                 "bits_per_dim": 0.2, "s_per_example": 0.002, "cpu_s_per_example": 0.003,
                 "sample_s_per_sample": 0.05, "sample_cpu_s_per_sample": 0.08}
        samples["learned"] = {"confidence": learned_conf, "effective_classes": 9.5}
    return {"codebook": codebook, "num_codes": 512, "test": {"codes_used": codes_used}, "prior": prior,
            "uniform_bits_per_code": 9.0, "unigram_bits_per_code": unigram, "samples": samples,
            "train": {"s_per_example": 0.001, "cpu_s_per_example": 0.0015}}


def test_vq_claims_judge_each_codebook_and_the_usage_comparison():
    data = [{"name": "mnist", "label": "MNIST",
             "rows": [vq_row("plain", 40, prior_bits=9.2, learned_conf=0.4),
                      vq_row("ema", 60, prior_bits=5.0, unigram=4.0)]},
            {"name": "fashion_mnist", "label": "Fashion-MNIST",
             "rows": [vq_row("plain", 80), vq_row("ema", 80, prior_bits=4.0)]},
            {"name": "x", "label": "missing one", "missing": "no files"}]
    got = {c["claim"]: c["holds"] for c in vqvae_mnist.claims(data)}
    assert len(got) == 3 + 3 + 1 + 3 + 1  # priors: MNIST both, Fashion EMA only; usage per data set
    assert got["MNIST, plain codebook: the learned prior's NLL is below log2(K) bits per code"] is False
    assert got["MNIST, plain codebook: the learned prior's NLL is below the unigram prior's"] is False
    assert got["MNIST, plain codebook: the classifier is more confident on learned-prior samples than on "
               "uniform-prior samples"] is False
    assert got["MNIST, ema codebook: the learned prior's NLL is below the unigram prior's"] is False  # 5 > 4
    assert got["MNIST, ema codebook: the learned prior's NLL is below log2(K) bits per code"] is True
    assert got["MNIST: the EMA codebook uses more codes than the plain one (test set)"] is True
    assert got["Fashion-MNIST: the EMA codebook uses more codes than the plain one (test set)"] is False  # a tie
    assert got["Fashion-MNIST, ema codebook: the learned prior's NLL is below the unigram prior's"] is True


def test_vq_time_estimate_scales_the_measured_rates_to_the_full_budget():
    d = {"name": "mnist", "full_train_examples": 5000, "classifier": {"s_per_example": 0.0004,
                                                                         "cpu_s_per_example": 0.0006},
         "rows": [vq_row("plain", 10), vq_row("ema", 10, prior_bits=5.0)]}
    full = {"mnist": {"epochs": 20, "prior_epochs": 10, "classifier_epochs": 5}}
    n, samples = 5000, vqvae_mnist.FULL["samples"]
    wall = 0.0004 * n * 5 + 2 * 0.001 * n * 20 + 0.002 * n * 10 + 0.05 * samples
    cpu = 0.0006 * n * 5 + 2 * 0.0015 * n * 20 + 0.003 * n * 10 + 0.08 * samples
    assert vqvae_mnist.estimate_seconds([d], full) == pytest.approx(wall)
    assert vqvae_mnist.estimate_seconds([d], full, "cpu_s_per_example") == pytest.approx(cpu)


@pytest.mark.slow
def test_vqvae_benchmark_smoke_mnist(tmp_path):
    """vqvae_mnist.py end to end on real MNIST at smoke sizes and narrow networks (about 1 min)."""
    import json
    import subprocess

    if not (vqvae_mnist.DATASETS["mnist"][1] / "train5k-images-idx3-ubyte.gz").exists():
        pytest.skip("real MNIST not found in ../shared/data/mnist")
    proc = subprocess.run([sys.executable, str(Path(vqvae_mnist.__file__)), "--smoke", "--datasets", "mnist",
                           "--filters", "16", "--prior-filters", "16", "--samples", "20", "--pythae-epochs", "0",
                           "--priors", "ema", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "vqvae_mnist_results.json").read_text())
    (mnist,) = results["datasets"]
    rows = {r["codebook"]: r for r in mnist["rows"]}
    assert {"plain", "ema"} <= set(rows), sorted(rows)
    plain, ema = rows["plain"], rows["ema"]
    assert plain["prior"] is None and ema["prior"] is not None
    assert 1 <= ema["test"]["codes_used"] <= 512 and 1.0 <= ema["test"]["perplexity"] <= ema["test"]["codes_used"]
    assert np.isfinite(ema["prior"]["test_bits_per_code"]) and ema["uniform_bits_per_code"] == 9.0
    assert sum(ema["samples"]["learned"]["class_counts"]) == 20
    md = (tmp_path / "results.md").read_text()
    assert md.startswith(f"## {vqvae_mnist.SECTION_TITLE}") and "SMOKE MODE" in md
    for figure in (ema["figures"]["samples"], plain["figures"]["uniform_samples"], plain["figures"]["reconstructions"]):
        assert (tmp_path / figure).stat().st_size > 1000
    with_prior = [r for r in rows.values() if r["prior"] is not None]
    assert "ema" in {r["codebook"] for r in with_prior}
    assert len(results["claims"]) == 3 * len(with_prior) + 1  # three per learned prior, one codes-used


@pytest.mark.slow
def test_avb_toy_benchmark_smoke(tmp_path):
    """avb_toy.py end to end at smoke budgets (under a minute): the JSON's keys, both figures, the
    section in SMOKE MODE, and claims judged for every model and the neural sampler."""
    import json
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "avb_toy.py"
    proc = subprocess.run([sys.executable, str(script), "--smoke", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "avb_toy_results.json").read_text())
    assert {"settings", "machine", "rows", "sampler", "claims", "figures", "optimum", "total_s"} <= set(results)
    assert results["settings"]["smoke"] is True and results["optimum"] == pytest.approx(-np.log(4.0))
    rows = {r["row"]: r for r in results["rows"]}
    assert set(rows) == {"VAE", "AVB", "AVB+AC"}
    for r in rows.values():
        assert len(r["grid"]["per_point"]) == 4 and np.isfinite(r["grid"]["mean"])
        assert r["grid"]["mean"] < 0 and np.isfinite(r["elbo"]["mean"])
        assert len(r["ais"]["per_point"]) == 4 and np.isfinite(r["ais"]["mean"]) and r["ais"]["seconds"] > 0
        assert {"num_steps", "num_chains", "standard_error_mean", "acceptance_rate"} <= set(r["ais"])
    assert rows["VAE"]["elbo"]["mean"] <= rows["VAE"]["grid"]["mean"] + 0.05  # a bound, up to MC error
    assert np.isfinite(rows["VAE"]["importance_sampled"]["mean"])
    sampler = results["sampler"]
    assert {"sampler", "gaussian", "null_mean", "null_95"} <= set(sampler["mmd"])
    assert {"sampler", "exact", "gaussian"} == set(sampler["log_p"])
    assert len(results["claims"]) == 2 + 3 + 2  # AVB and AVB+AC vs the VAE, AIS per model, the sampler
    assert all(isinstance(c["holds"], bool) for c in results["claims"])
    for figure in results["figures"].values():
        assert (tmp_path / figure).stat().st_size > 1000
    md = (tmp_path / "results.md").read_text()
    assert md.startswith("## Adversarial Variational Bayes: toy problems") and "SMOKE MODE" in md
    assert "### Claims" in md and "T-estimate" in md


@pytest.mark.slow
def test_avb_mnist_benchmark_smoke(tmp_path):
    """avb_mnist.py end to end on real MNIST at smoke sizes (VAE, AVB, AVB+AC; AIS 20 steps x 2
    chains on 10 images; under 90 s on 2 cores); its chain standard error in closed form."""
    import json
    import subprocess

    import avb_mnist  # benchmarks/ is on sys.path (above)

    # weights 1 and 3: mean 2, sd sqrt(2), se = sqrt(2) / (sqrt(2) * 2) = 0.5; ESS (1 + 3)^2 / (1 + 9)
    se, ess = avb_mnist.chain_standard_errors(np.log([[1.0, 5.0], [3.0, 5.0]]))
    assert se == pytest.approx([0.5, 0.0]) and ess == pytest.approx([1.6, 2.0])
    assert avb_mnist.paired_difference([3.0, 5.0, 7.0], [1.0, 2.0, 3.0]) == pytest.approx((3.0, 1.0 / np.sqrt(3)))
    if not (avb_mnist.DEFAULT_DATA / "train5k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found in {avb_mnist.DEFAULT_DATA} (../shared/data beside the repo)")
    proc = subprocess.run([sys.executable, str(Path(avb_mnist.__file__)), "--smoke", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "avb_mnist_results.json").read_text())
    s = results["settings"]
    assert s["smoke"] and (s["ais_steps"], s["ais_chains"], s["ais_examples"]) == (20, 2, 10)
    rows = {r["row"]: r for r in results["rows"]}
    assert list(rows) == list(avb_mnist.ROWS)
    for r in rows.values():
        assert len(r["ais_log_px"]) == 10 and np.all(np.isfinite(r["ais_log_px"]))
        assert r["ais_nll"] > 0 and np.isfinite(r["elbo"]) and r["ais"]["seconds"] > 0
        assert 0.0 <= r["ais"]["acceptance"] <= 1.0
    assert not rows["VAE"]["elbo_is_estimate"] and rows["AVB+AC"]["elbo_is_estimate"]
    vae_is = results["vae_is"]
    assert vae_is["samples"] == 500 and len(vae_is["log_px"]) == 10
    assert np.isfinite(vae_is["ais_minus_is"]) and vae_is["ais_minus_is_se"] > 0
    assert len(results["claims"]) == 5 and proc.stdout.count("CLAIM") == 5
    for figure in results["figures"].values():
        assert (tmp_path / figure).stat().st_size > 1000
    md = (tmp_path / "results.md").read_text()
    assert md.startswith(f"## {avb_mnist.SECTION_TITLE}") and "SMOKE MODE" in md
    assert "### Claims" in md and "(T estimate)" in md


@pytest.mark.slow
def test_iae_mnist_benchmark_smoke(tmp_path):
    """iae_mnist.py end to end on real MNIST at smoke sizes (the three settings of part a, one
    clustering, the semi-supervised IAE and SemiSupervisedAAE), its JSON, figures and section."""
    import json
    import subprocess

    import iae_mnist  # benchmarks/ is on sys.path (above)

    if not (iae_mnist.DEFAULT_DATA / "train5k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found in {iae_mnist.DEFAULT_DATA} (../shared/data beside the repo)")
    proc = subprocess.run([sys.executable, str(Path(iae_mnist.__file__)), "--smoke", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "iae_mnist_results.json").read_text())
    parts = results["parts"]
    assert sorted(parts) == ["a", "b", "c"] and results["settings"]["smoke"]
    rows = parts["a"]["rows"]
    assert [(r["global_dim"], r["local_dim"] > 0) for r in rows] == [(20, False), (10, True), (5, True)]
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and r["pixel_std"] >= 0 and r["squared_error"] > 0
        assert (tmp_path / "figures" / Path(r["figure"]).name).stat().st_size > 500
    assert rows[0]["pixel_std"] == 0.0  # no local noise, a deterministic code: one reconstruction
    assert len(parts["a"]["claims"]) == 4
    for r in parts["b"]["rows"]:
        assert 0 <= r["test_error"] <= 1 and 1 <= r["clusters_used"] <= r["clusters"]
    for model in ("iae", "ssaae"):
        assert 0 <= parts["c"][model]["test_error"] <= 1
    md = (tmp_path / "results.md").read_text()
    assert f"## {iae_mnist.SECTION}" in md and "SMOKE MODE" in md
