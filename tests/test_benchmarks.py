"""The benchmark report's arithmetic: which figures it compares and when a target passes."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import run  # noqa: E402


def tfvae_run(best, median):
    return {"best_examples_per_s": best, "examples_per_s": median}


def torch_run(best, median):
    return {"best_examples_per_s": best, "median_examples_per_s": median}


def section(tfvae_best, torch_best, precision="float32", eval_ratio=1.5):
    runs = {"tfvae": [tfvae_run(tfvae_best, 900.0), tfvae_run(tfvae_best - 100, 1000.0),
                      tfvae_run(500.0, 1100.0)],
            "torch": [torch_run(torch_best, 700.0), torch_run(torch_best - 50, 800.0)]}
    train = {f"{m}|{mode}": {"examples_per_s": 100.0 if mode == "eager" else 200.0, "compile_overhead_s": 1.0}
             for m in run.MODELS for mode in run.MODES}
    return {"torch": {f"IWAE k=50|{precision}": runs}, "train": train, "eval": [{"ratio": eval_ratio}],
            "pipeline": {"examples_per_s": 1e6}}


def test_side_by_side_takes_the_fastest_epoch_and_the_median_run():
    pair = run.side_by_side(section(1500.0, 1000.0)["torch"]["IWAE k=50|float32"])
    assert pair == {"tfvae": (1500.0, 1000.0), "torch": (1000.0, 750.0)}
    failed = {"tfvae": [tfvae_run(1.0, 1.0)], "torch": [{"error": "boom"}]}
    assert run.side_by_side(failed) is None


@pytest.mark.parametrize("tfvae_best, passed", [(1500.0, True), (1490.0, False)])
def test_float32_pairs_are_the_speed_target(tfvae_best, passed):
    rows = {name: ok for name, _, ok in run.targets(section(tfvae_best, 1000.0))}
    speed = [name for name in rows if "PyTorch >= 1.5" in name]
    assert speed == ["IWAE k=50: tfvae (graph) / PyTorch >= 1.5, float32, best epochs"]
    assert rows[speed[0]] is passed
    assert rows["evaluation <= 2x roofline time"] is True
    # bfloat16 pairs are reported, not judged
    assert not any("PyTorch" in name for name, _, _ in run.targets(section(tfvae_best, 1000.0, "bfloat16")))


def test_evaluation_target_and_failed_runs():
    rows = {name: ok for name, _, ok in run.targets(section(1500.0, 1000.0, eval_ratio=2.01))}
    assert rows["evaluation <= 2x roofline time"] is False
    broken = section(1500.0, 1000.0)
    broken["torch"]["IWAE k=50|float32"]["torch"].append({"error": "killed"})
    rows = {name: ok for name, _, ok in run.targets(broken)}
    assert rows["every measurement ran"] is False
    assert not any("PyTorch" in name for name in rows)
