"""The benchmark scripts still run end to end (smallest settings, outputs in tmp_path, BENCHMARKS.md untouched).

No timing is asserted: the numbers are the scripts' business. What is checked is what must hold on any machine:
every case ran, and the deterministic quantities (pass floors, activation memory of the fused step) are right.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> None:
    before = (ROOT / "BENCHMARKS.md").read_bytes()
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args, "--no-md"], check=True, cwd=ROOT)
    assert (ROOT / "BENCHMARKS.md").read_bytes() == before


def test_step_cost_quick_measures_both_allocators(tmp_path: Path):
    out = tmp_path / "step_cost.json"
    _run("step_cost.py", "--quick", "--reps", "1", "--out", str(out))
    runs = json.loads(out.read_text())["runs"]
    assert [r["cpu_memory"] for r in runs] == ["default", "keep"]
    for run in runs:
        rows = run["results"]["tsm_small"]["rows"]
        assert set(rows) == {"plain", "taf_k1", "taf_k1_naive", "taf_k3", "ce_adv_k1"}
        assert rows["taf_k1"]["pass_floor"] == pytest.approx(7 / 3)
        assert rows["taf_k3"]["pass_floor"] == pytest.approx(11 / 3)
        # The fused K = 1 step keeps exactly two graphs' activations (clean + adversarial) until its one backward.
        assert rows["taf_k1"]["memory_ratio"] == pytest.approx(2.0, abs=0.02)
        assert rows["ce_adv_k1"]["memory_ratio"] == pytest.approx(2.0, abs=0.02)
        assert rows["taf_k1_naive"]["memory_ratio"] > rows["taf_k1"]["memory_ratio"]


def test_loader_throughput_covers_every_source(tmp_path: Path, real_fixtures: Path):
    out = tmp_path / "loader.json"
    _run("loader_throughput.py", "--repeats", "1", "--rounds", "1", "--out", str(out))
    results = json.loads(out.read_text())["results"]
    assert len(results) == 6 and sum("jpeg" in name for name in results) == 3
    for name, r in results.items():
        assert r["frames_per_clip"] == 8, name
        assert r["raw_clips_per_s"] > 0 and r["dataset_clips_per_s"] > 0, name
    assert results["synth_webm_64px"]["clips"] == 32  # 8 classes x 4 training clips, once


def test_claims_quick_pipeline(tmp_path: Path):
    out = tmp_path / "claims.json"
    _run("claims.py", "--quick", "--work", str(tmp_path / "work"), "--out", str(out))
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"plain", "ce_adv", "advprop", "taf"}
    assert set(res["robustness"]["methods"]) == {"plain", "taf"}
    assert set(res["sweep"]) == {"alpha_0.5", "alpha_0.7", "alpha_0.9", "e6_k1", "e6_k3", "e64_k1", "e64_k3"}
    assert res["verdicts"] and all({"claim", "diff", "verdict"} <= set(v) for v in res["verdicts"])
    for method in res["methods"].values():
        assert 0.0 <= method["mean"]["top1"] <= 100.0


def test_train_throughput_runs_plain_and_taf_through_the_engine(tmp_path: Path):
    out = tmp_path / "throughput.json"
    _run(
        "train_throughput.py",
        *("--classes", "4", "--train-per-class", "4", "--batch", "4", "--epochs", "1", "--rounds", "1"),
        *("--workers", "0", "--out", str(out)),
    )
    rows = json.loads(out.read_text())["results"]
    assert set(rows) == {"plain", "taf"}
    assert rows["plain"]["x_plain_time"] == 1.0
    assert rows["taf"]["clips_per_s"] > 0
