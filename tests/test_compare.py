"""``videotaf compare``: method specs, the plan (paired seeds), scoring the runs' per-clip predictions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import videotaf.analysis.compare as compare
from engine_toys import toy_config
from videotaf.analysis.compare import CompareSettings, MethodSpec, PlannedRun, collect, parse_method, write_outputs
from videotaf.config import ConfigError


def test_method_specs():
    assert parse_method("taf") == MethodSpec("taf", "taf", ())
    assert parse_method("taf25=taf,adversarial.fraction=0.25") == MethodSpec(
        "taf25", "taf", ("adversarial.fraction=0.25",)
    )
    for bad in ("fgsm", "x=", "a=taf,eps", "a b=taf"):
        with pytest.raises(ConfigError, match="--methods"):
            parse_method(bad)


def _fake_runs(tmp_path: Path, predictions: dict[str, list[list[int]]], labels: list[int]) -> list[PlannedRun]:
    plan = []
    for seed in range(len(next(iter(predictions.values())))):
        for label, per_seed in predictions.items():
            cfg = toy_config(str(tmp_path / "runs" / f"{label}_seed{seed}"))
            run = PlannedRun(MethodSpec(label, label), seed, cfg)
            run.run_dir.mkdir(parents=True)
            pred = per_seed[seed]
            ev = {
                "top1": 100.0 * np.mean(np.equal(pred, labels)),
                "loss": 1.0 + 0.1 * seed,
                "classes": ["a", "b", "c"],
                "clips": {"labels": labels, "predictions": pred, "loss": [0.0] * len(labels)},
            }
            (run.run_dir / "eval.json").write_text(json.dumps(ev))
            plan.append(run)
    return plan


def test_collect_scores_runs_clip_by_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    labels = [0, 1, 2, 0, 1, 2, 0, 1]
    # plain right on 4/8 then 5/8 clips; taf right on 6/8 then 6/8: per-seed deltas +25 and +12.5 pp.
    preds = {
        "plain": [[0, 1, 2, 0, 0, 0, 1, 2], [0, 1, 2, 0, 1, 0, 2, 0]],
        "taf": [[0, 1, 2, 0, 1, 2, 1, 0], [0, 1, 2, 0, 1, 2, 2, 0]],
    }
    plan = _fake_runs(tmp_path, preds, labels)
    monkeypatch.setattr(compare, "train_split_metrics", lambda run_dir, cfg: {"top1": 90.0, "loss": 0.1})
    result = collect(plan, subset=["a"], n_boot=500)
    taf = result["methods"]["taf"]
    assert result["control"] == "plain" and result["seeds"] == [0, 1] and result["n_clips"] == 8
    assert taf["delta_top1"]["per_seed"] == pytest.approx([25.0, 12.5])
    assert taf["delta_top1"]["mean"] == pytest.approx(18.75)
    # McNemar pooled over seeds: taf right & plain wrong on 2 + 1 clips, the reverse on 0.
    assert (taf["mcnemar"]["b"], taf["mcnemar"]["c"]) == (3, 0)
    # Subset "a" = clips 0, 3, 6: plain 2/3 and 2/3... taf 2/3 and 2/3 -> no change there.
    assert taf["subset"]["delta_top1"]["per_seed"] == pytest.approx([0.0, 0.0])
    assert result["runs"]["taf"]["run_dirs"][1].endswith("taf_seed1")
    paths = write_outputs(result, tmp_path / "out")
    saved = json.loads(paths["json"].read_text())
    assert saved["methods"]["taf"]["verdict"] == taf["verdict"]
    assert "| taf |" in paths["md"].read_text() and paths["png"].stat().st_size > 1000


def test_collect_refuses_runs_scored_on_other_clips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    plan = _fake_runs(tmp_path, {"plain": [[0, 1]], "taf": [[0, 1]]}, [0, 1])
    ev_path = plan[1].run_dir / "eval.json"
    ev = json.loads(ev_path.read_text())
    ev["clips"]["labels"] = [1, 0]
    ev_path.write_text(json.dumps(ev))
    monkeypatch.setattr(compare, "train_split_metrics", lambda run_dir, cfg: {"top1": 90.0, "loss": 0.1})
    with pytest.raises(Exception, match="other validation clips"):
        collect(plan, n_boot=100)


def test_plan_pairs_seeds_and_applies_method_overrides(tmp_path: Path):
    base = toy_config(str(tmp_path / "base"))
    settings = CompareSettings(
        checkpoint=tmp_path / "ckpt.pt",
        methods=[parse_method("plain"), parse_method("taf_a5=taf,adversarial.alpha=0.5")],
        seeds=2,
        out_dir=tmp_path / "cmp",
        base=base,
        epochs=3,
        decay_after=2,
        lr_from="config",
    )
    plan = compare.plan_runs(settings)
    assert [(r.spec.label, r.seed) for r in plan] == [("plain", 0), ("taf_a5", 0), ("plain", 1), ("taf_a5", 1)]
    for run in plan:
        assert run.cfg.runtime.seed == run.seed == run.cfg.data.seed  # same order and augmentation per seed
        assert run.cfg.optim.epochs == 3 and run.cfg.optim.milestones == [2]
        assert run.run_dir == tmp_path / "cmp" / "runs" / f"{run.spec.label}_seed{run.seed}"
    assert plan[1].cfg.adversarial.method == "taf" and plan[1].cfg.adversarial.alpha == 0.5
    assert plan[0].cfg.adversarial.alpha == base.adversarial.alpha
    with pytest.raises(ConfigError, match="labels must differ"):
        compare.plan_runs(
            CompareSettings(tmp_path / "c.pt", [parse_method("taf"), parse_method("taf")], 1, tmp_path, base=base)
        )


TINY = """
model: {name: tsm, num_classes: 3, num_frames: 2, options: {depth: 18, width: 0.25, dropout: 0.0}}
data: {kind: somethingv2, root: DATA, num_frames: 2, crop_size: 16, scale_size: 16, flip: false, seed: 0,
       num_workers: 0}
optim: {lr: 0.01, epochs: 1, milestones: [], batch_size: 6, fc_lr_mult_weight: 1.0, fc_lr_mult_bias: 1.0}
runtime: {device: cpu, deterministic: true, progress: none}
"""


@pytest.mark.slow
def test_compare_end_to_end_resumes_after_a_kill(tmp_path: Path):
    """From the CLI on built-in synthetic data; killed mid-way, the rerun reuses what was finished."""
    from videotaf.data.synth import synthesize

    data = synthesize(tmp_path / "data", num_classes=3, train_per_class=4, val_per_class=4, num_frames=8, size=16)
    cfg = tmp_path / "base.yaml"
    cfg.write_text(TINY.replace("DATA", str(data)))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    py = [sys.executable, "-m", "videotaf"]
    subprocess.run([*py, "train", "--config", str(cfg), "--out", str(tmp_path / "base")], check=True, env=env)
    args = [*py, "compare", "--checkpoint", str(tmp_path / "base" / "checkpoints" / "last.pt")]
    args += ["--methods", "plain", "taf", "--seeds", "2", "--epochs", "2", "--decay-after", "1"]
    args += ["--n-boot", "200", "--out", str(tmp_path / "cmp")]
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    first = tmp_path / "cmp" / "runs" / "plain_seed0" / "eval.json"
    deadline = time.time() + 300
    while not first.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.is_file()
    stamp = (tmp_path / "cmp" / "runs" / "plain_seed0" / "checkpoints" / "last.pt").stat().st_mtime_ns
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cmp" / "runs" / "plain_seed0" / "checkpoints" / "last.pt").stat().st_mtime_ns == stamp
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    taf = result["methods"]["taf"]
    assert result["n_seeds"] == 2 and len(taf["delta_top1"]["per_seed"]) == 2
    assert taf["verdict"] in ("better", "worse", "no detectable difference")
    # Another plan in the same --out (here: other epochs) is refused before any work unless asked.
    other = [*args, "--epochs", "3"]
    again = subprocess.run(other, env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "holds another comparison" in again.stderr
    assert subprocess.run([*args, "--overwrite"], env=env, capture_output=True).returncode == 0  # all reused
