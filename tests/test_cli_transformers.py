"""``videotaf train`` then ``finetune --method taf`` end to end on a tiny Hugging Face VideoMAE (registered model
``hf``, loaded from a local directory): TAF gets auxiliary LayerNorms, export drops them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from tiny_transformers import hf_net
from videotaf.cli import main
from videotaf.engine import checkpoint as ck
from videotaf.engine.builders import load_model


@pytest.mark.slow  # two short training runs with real decoding: several seconds on two cores
def test_finetune_taf_on_a_hugging_face_videomae(tmp_path: Path):
    from videotaf.data.synth import synthesize

    root = synthesize(tmp_path / "synth", num_classes=3, train_per_class=4, val_per_class=2, num_frames=8, size=32)
    torch.manual_seed(0)
    net = hf_net("videomae", layers=1)
    net.save_pretrained(tmp_path / "videomae")  # 5 classes saved: the factory re-initialises a 3-class head
    cfg = {
        "model": {"name": "hf", "num_classes": 3, "num_frames": 4, "options": {"path": str(tmp_path / "videomae")}},
        "data": {"kind": "somethingv2", "root": str(root), "num_frames": 4, "crop_size": 32, "scale_size": 32,
                 "num_workers": 0, "seed": 0},
        "optim": {"lr": 0.01, "epochs": 1, "milestones": [], "batch_size": 4},
        "runtime": {"device": "cpu", "deterministic": True, "progress": "none", "output_dir": str(tmp_path / "x")},
    }  # fmt: skip
    config = tmp_path / "videomae.yaml"
    config.write_text(yaml.safe_dump(cfg))
    base = tmp_path / "base"
    assert main(["train", "--config", str(config), "--out", str(base)]) == 0
    assert not ck.load_checkpoint(base / "checkpoints" / "last.pt")["dual_bn"]

    ft = tmp_path / "taf"
    last = base / "checkpoints" / "last.pt"
    args = ["finetune", "--config", str(config), "--checkpoint", str(last), "--method", "taf", "--epochs", "1"]
    assert main([*args, "--decay-after", "1", "--eps", "16/255", "--out", str(ft)]) == 0
    state = ck.load_checkpoint(ft / "checkpoints" / "last.pt")
    aux = [k for k in state["model"] if ".aux_bn." in k]
    assert state["dual_bn"] and "net.videomae.encoder.layer.0.layernorm_before.aux_bn.weight" in aux
    assert all(k.rsplit(".", 1)[-1] in ("weight", "bias") for k in aux)  # LayerNorm: affine copies only
    record = json.loads((ft / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["epoch"] == 1

    exported = tmp_path / "weights.pt"
    assert main(["export", "--checkpoint", str(ft / "checkpoints" / "last.pt"), "--out", str(exported)]) == 0
    assert not any(".aux_bn." in k for k in torch.load(exported, weights_only=True)["model"])
    model, _ = load_model(exported)
    assert model.arch == "videomae" and not model.training
    assert model(torch.rand(1, 4, 3, 32, 32)).shape == (1, 3)
