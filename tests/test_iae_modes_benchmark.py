"""benchmarks/iae_modes.py: its claims from crafted rows, and the script end to end at smoke
budgets (GAN and IAE on the grid and the ring; under a minute on 2 cores)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import iae_modes  # noqa: E402  (numpy only at import: TensorFlow loads inside its functions)


def row(model, covered, num_modes, quality=0.5):
    return {"model": model, "coverage": {"modes_covered": covered, "num_modes": num_modes,
                                         "high_quality_fraction": quality}}


def test_claims_compare_the_modes_covered():
    datasets = [{"name": "grid", "rows": [row("GAN", 20, 25), row("IAE", 25, 25)]},
                {"name": "ring", "rows": [row("GAN", 8, 8), row("IAE", 8, 8)]},
                {"name": "half", "rows": [row("GAN", 3, 8), row("IAE", 2, 8)]},
                {"name": "IAE only", "rows": [row("IAE", 2, 8)]}]
    got = {c["claim"]: c["holds"] for c in iae_modes.claims(datasets)}
    assert got == {"grid: the IAE covers more modes than the GAN": True, "grid: the IAE covers all 25 modes": True,
                   "ring: the IAE covers more modes than the GAN": False,  # a tie is not more
                   "ring: the IAE covers all 8 modes": True,
                   "half: the IAE covers more modes than the GAN": False, "half: the IAE covers all 8 modes": False}
    assert iae_modes.epochs_of(4000, 500) == (8, 500) and iae_modes.epochs_of(450, 500) == (1, 450)


@pytest.mark.slow
def test_iae_modes_benchmark_smoke(tmp_path):
    script = Path(iae_modes.__file__)
    proc = subprocess.run([sys.executable, str(script), "--smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((tmp_path / "iae_modes_results.json").read_text())
    assert {"settings", "machine", "datasets", "claims", "figures", "total_s"} <= set(results)
    s = results["settings"]
    assert s["smoke"] is True and results["total_s"] > 0
    data = {d["kind"]: d for d in results["datasets"]}
    assert set(data) == {"grid", "ring"}
    assert (data["grid"]["num_modes"], data["ring"]["num_modes"]) == (25, 8)
    for kind, d in data.items():
        # the mixture's own samples: every mode covered, ~98.9 % within 3 std
        assert d["data_coverage"]["modes_covered"] == d["num_modes"]
        assert d["data_coverage"]["high_quality_fraction"] > 0.95
        rows = {r["model"]: r for r in d["rows"]}
        assert set(rows) == {"GAN", "IAE"}
        for r in rows.values():
            c = r["coverage"]
            assert c["num_modes"] == d["num_modes"] and 0 <= c["modes_covered"] <= c["num_modes"]
            assert 0.0 <= c["high_quality_fraction"] <= 1.0 and len(c["per_mode_fraction"]) == d["num_modes"]
            assert all(0.0 <= f <= 1.0 for f in c["per_mode_fraction"])
            assert c["modes_covered"] == sum(f >= s["min_fraction"] for f in c["per_mode_fraction"])
            # the modes are 40 (grid) and 38 (ring) std apart: no sample is near two of them
            assert sum(c["per_mode_fraction"]) == pytest.approx(c["high_quality_fraction"], abs=1e-9)
            assert r["train_s"] > 0 and np.isfinite(r["scale"]) and r["scale"] > 0
            assert [p["step"] for p in r["curve"]] == list(range(s["eval_every"], s["steps"] + 1, s["eval_every"]))
        # the per-model summary that benchmarks/readme_tables.py reads
        assert {m: d["models"][m]["modes_covered"] for m in d["models"]} == {
            m: r["coverage"]["modes_covered"] for m, r in rows.items()}
    assert len(results["claims"]) == 4 and all(isinstance(c["holds"], bool) for c in results["claims"])
    assert proc.stdout.count("CLAIM") == 4
    assert "the IAE covers more modes than the GAN" in proc.stdout
    assert (tmp_path / results["figures"]["samples"]).stat().st_size > 1000
    md = (tmp_path / "results.md").read_text()
    assert md.startswith(f"## {iae_modes.SECTION_TITLE}") and "SMOKE MODE" in md and "### Claims" in md
    assert "| 25-Gaussian grid | GAN |" in md and "| 8-Gaussian ring | IAE |" in md
