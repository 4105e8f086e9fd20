"""The transformer benchmarks still run (smallest settings, outputs in tmp_path, BENCHMARKS.md untouched)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench_common import run_script


@pytest.mark.slow
def test_step_cost_videomae_row(tmp_path: Path):
    out = tmp_path / "step.json"
    args = [
        "--models",
        "videomae_small",
        "--schedules",
        "plain",
        "taf_k1",
        "--reps",
        "1",
        "--cpu-memory",
        "keep",
        "--batch",
        "1",
    ]
    run_script("step_cost", *args, "--out", str(out))
    rows = json.loads(out.read_text())["results"]["videomae_small"]["rows"]
    # The fused K = 1 step keeps the clean and the adversarial graph until its one backward, as for the CNNs.
    assert rows["taf_k1"]["memory_ratio"] == pytest.approx(2.0, abs=0.02)


@pytest.mark.slow
def test_transformer_taf_quick(tmp_path: Path):
    out = tmp_path / "tt.json"
    run_script("transformer_taf", "--quick", "--seeds", "2", "--work", str(tmp_path / "work"), "--out", str(out))
    res = json.loads(out.read_text())
    assert set(res["methods"]) == {"plain", "taf_shared", "taf_aux_ln"} and res["seeds"] == [0, 1]
    assert all(len(m["per_seed_top1"]) == 2 for m in res["methods"].values())
    assert res["methods"]["taf_aux_ln"]["verdict"] in ("higher", "lower", "within noise")
    # The two TAF variants differ only in the normalisation path: shared LayerNorms vs auxiliary copies.
    import torch

    for name, dual in (("taf_shared", False), ("taf_aux_ln", True)):
        state = torch.load(tmp_path / "work" / f"{name}_seed0" / "checkpoints" / "last.pt", weights_only=True)
        assert state["dual_bn"] is dual and any(".aux_bn." in k for k in state["model"]) is dual
