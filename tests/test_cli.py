"""The engine subcommands end to end on a tiny synthetic dataset (real decoding, tiny model)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from videotaf.cli import main
from videotaf.engine import checkpoint as ck
from videotaf.engine.builders import load_model

TESTS = Path(__file__).resolve().parent


@pytest.fixture()
def config_file(tmp_path, synth_root) -> Path:
    cfg = {
        "model": {"name": "engine_toys:TinyNet", "num_classes": 3, "num_frames": 4, "options": {"width": 4}},
        "data": {
            "kind": "somethingv2",
            "root": str(synth_root),
            "num_frames": 4,
            "crop_size": 16,
            "scale_size": 16,
            "num_workers": 0,
            "seed": 0,
        },
        "optim": {"lr": 0.05, "epochs": 1, "milestones": [], "batch_size": 4},
        "runtime": {"device": "cpu", "deterministic": True, "progress": "none", "output_dir": str(tmp_path / "x")},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_finetune_eval_export(tmp_path, config_file, synth_root, capsys):
    base = tmp_path / "base"
    assert main(["train", "--config", str(config_file), "--out", str(base), "--set", "optim.lr=0.02"]) == 0
    saved = yaml.safe_load((base / "config.yaml").read_text())
    assert saved["optim"]["lr"] == 0.02 and saved["runtime"]["output_dir"] == str(base)
    assert (base / "checkpoints" / "last.pt").is_file() and (base / "eval.json").is_file()

    ft = tmp_path / "taf"
    rc = main(
        [
            "finetune",
            "--config",
            str(config_file),
            "--checkpoint",
            str(base / "checkpoints" / "last.pt"),
            "--method",
            "taf",
            "--epochs",
            "2",
            "--decay-after",
            "1",
            "--eps",
            "16/255",
            "--out",
            str(ft),
        ]
    )
    assert rc == 0
    cfg = yaml.safe_load((ft / "config.yaml").read_text())
    assert cfg["optim"]["epochs"] == 2 and cfg["optim"]["milestones"] == [1]
    assert cfg["adversarial"]["method"] == "taf" and cfg["adversarial"]["eps"] == pytest.approx(16 / 255)
    assert cfg["adversarial"]["alpha"] == 0.7 and cfg["model"]["pretrained"] == str(base / "checkpoints" / "last.pt")
    state = ck.load_checkpoint(ft / "checkpoints" / "last.pt")
    assert state["dual_bn"] and any(".aux_bn." in k for k in state["model"])
    lines = [json.loads(x) for x in (ft / "metrics.jsonl").read_text().splitlines()]
    # --lr-from auto: the fine-tune starts at the LR the baseline was saved with (0.02, its --set), not at the
    # --config's 0.05 (Sec. 4.1's "status when the pre-trained model is logged"), then decays x0.1.
    assert [r["lr"] for r in lines] == pytest.approx([0.02, 0.002])

    # eval of the final checkpoint reproduces the run's own eval.json
    subset = tmp_path / "long.txt"
    subset.write_text((synth_root / "long_term_classes.txt").read_text())
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(ft / "checkpoints" / "last.pt"),
                "--subset-classes",
                str(subset),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    ev, run_ev = json.loads(out.read_text()), json.loads((ft / "eval.json").read_text())
    assert ev["num_clips"] == 6 and ev["top1"] == pytest.approx(run_ev["top1"]) and ev["subset"]["classes"]
    assert "top1" in capsys.readouterr().out

    exported = tmp_path / "weights.pt"
    assert main(["export", "--checkpoint", str(ft / "checkpoints" / "best.pt"), "--out", str(exported)]) == 0
    raw = torch.load(exported, weights_only=True)
    assert not any("aux_bn" in k for k in raw["model"])
    model, _ = load_model(exported)
    assert not model.training

    # finetune without --config uses the checkpoint's saved config; without --out it must not write into the
    # baseline run (that would overwrite its starting checkpoint): it goes to a sibling "<run>_<method>"
    start = base / "checkpoints" / "last.pt"
    before = start.read_bytes()
    assert main(["finetune", "--checkpoint", str(start), "--method", "plain", "--epochs", "1"]) == 0
    ft2 = tmp_path / "base_plain"
    assert yaml.safe_load((ft2 / "config.yaml").read_text())["adversarial"]["method"] == "plain"
    assert ck.load_checkpoint(ft2 / "checkpoints" / "last.pt")["dual_bn"] is False
    assert start.read_bytes() == before
    assert main(["finetune", "--checkpoint", str(start), "--method", "plain", "--out", str(base)]) == 2


def test_resume_from_run_dir_and_truncated_checkpoint(tmp_path, config_file, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", str(config_file), "--out", str(run)]) == 0
    # a finished run resumed: nothing left to train, still exits 0 using RUN/config.yaml
    assert main(["train", "--out", str(run), "--resume"]) == 0
    last = run / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 3])
    assert main(["train", "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert str(last) in err and "truncated" in err
    assert ck.load_checkpoint(run / "checkpoints" / "best.pt")["epoch"] == 1  # the other checkpoint still loads


def test_config_errors_exit_2_and_name_the_field(tmp_path, config_file, capsys):
    assert main(["train", "--config", str(config_file), "--set", "optim.lr=abc"]) == 2
    assert "'optim.lr' expects float" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learning_rate: 0.1\n")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "optim.learning_rate" in err and "bad.yaml" in err
    assert main(["train"]) == 2
    assert main(["finetune", "--checkpoint", str(tmp_path / "none.pt"), "--method", "taf"]) == 2


@pytest.mark.slow
def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "videotaf", "finetune", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--method" in r.stdout and "taf" in r.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path, config_file):
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1"
    )
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "videotaf",
        "train",
        "--config",
        str(config_file),
        "--out",
        str(run),
        "--set",
        "adversarial.method=taf",
        "--set",
        "optim.epochs=2",
    ]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in records] == [1, 2]
    assert json.loads((run / "eval.json").read_text())["num_clips"] == 6
    assert ck.load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 6
    # 12 training clips, 6 per rank, per-rank batch 2 -> 3 steps per epoch, 2 epochs
