from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from engine_toys import TinyNet
from videotaf.bn import convert_dual_bn, has_dual_bn
from videotaf.config import OptimConfig
from videotaf.engine import checkpoint as ck
from videotaf.engine.builders import load_model
from videotaf.engine.optim import build_optimizer, build_scheduler

CFG = {"model": {"name": "engine_toys:TinyNet", "num_classes": 3, "num_frames": 4, "options": {}}}


def trained_state(step=3):
    torch.manual_seed(0)
    model = convert_dual_bn(TinyNet())
    opt = build_optimizer(model, OptimConfig(lr=0.1))
    sched = build_scheduler(opt, OptimConfig(lr=0.1, milestones=[1]), steps_per_epoch=2)
    for _ in range(step):
        opt.zero_grad()
        model(torch.rand(2, 4, 3, 8, 8)).sum().backward()
        opt.step()
        sched.step()
    return model, opt, sched


def test_round_trip_weights_only(tmp_path):
    model, opt, sched = trained_state()
    state = ck.training_state(
        model, optimizer=opt, scheduler=sched, epoch=1, step=3, epoch_step=1, best_metric=42.0, config=CFG
    )
    path = ck.save_checkpoint(state, tmp_path / "last.pt")
    raw = torch.load(path, weights_only=True)  # only tensors and primitive containers inside
    assert raw["format"] == ck.FORMAT and raw["dual_bn"] is True
    assert any(".aux_bn." in k for k in raw["model"])
    loaded = ck.load_checkpoint(path)
    assert (loaded["epoch"], loaded["step"], loaded["epoch_step"], loaded["best_metric"]) == (1, 3, 1, 42.0)
    fresh, opt2, sched2 = trained_state(0)
    fresh.load_state_dict(loaded["model"])
    opt2.load_state_dict(loaded["optimizer"])
    sched2.load_state_dict(loaded["scheduler"])
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    m1 = opt.state_dict()["state"][0]["momentum_buffer"]
    assert torch.equal(opt2.state_dict()["state"][0]["momentum_buffer"], m1)


def test_rng_states_restore_every_stream():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    np.random.randn()  # leaves a cached gaussian in the numpy state
    state = ck.rng_state()
    first = (random.random(), np.random.randn(), np.random.rand(), torch.rand(3))
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    ck.set_rng_state(state)
    again = (random.random(), np.random.randn(), np.random.rand(), torch.rand(3))
    assert first[:3] == again[:3] and torch.equal(first[3], again[3])


def test_interrupted_write_keeps_previous_file(tmp_path, monkeypatch):
    model, opt, sched = trained_state()
    path = tmp_path / "last.pt"
    ck.save_checkpoint(ck.training_state(model, epoch=1, config=CFG), path)

    def dying_save(obj, f):
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(ck.training_state(model, epoch=2, config=CFG), path)
    monkeypatch.undo()
    assert ck.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # temp file cleaned up


def test_truncated_file_gives_clear_error_and_other_checkpoint_still_loads(tmp_path):
    model, opt, sched = trained_state()
    best = ck.save_checkpoint(ck.training_state(model, epoch=1, config=CFG), tmp_path / "best.pt")
    last = ck.save_checkpoint(ck.training_state(model, optimizer=opt, epoch=2, config=CFG), tmp_path / "last.pt")
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(ck.CheckpointError) as e:
        ck.load_checkpoint(last)
    assert str(last) in str(e.value) and "truncated" in str(e.value)
    assert ck.load_checkpoint(best)["epoch"] == 1
    with pytest.raises(ck.CheckpointError, match="not found"):
        ck.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ck.CheckpointError, match="garbage.pt"):
        ck.load_checkpoint(tmp_path / "garbage.pt")


def test_export_strips_aux_bn_and_load_model_rebuilds(tmp_path):
    model, opt, sched = trained_state()
    model.eval()
    clips = torch.rand(2, 4, 3, 8, 8)
    expected = model(clips)
    src = ck.save_checkpoint(ck.training_state(model, optimizer=opt, config=CFG), tmp_path / "best.pt")
    out = ck.export(src, tmp_path / "weights.pt")
    raw = torch.load(out, weights_only=True)
    assert set(raw) == {"format", "version", "model", "config"}
    assert not any("aux_bn" in k for k in raw["model"])
    assert set(raw["model"]) == set(TinyNet().state_dict())
    for path in (src, out):
        loaded, cfg = load_model(path)
        assert not loaded.training and not has_dual_bn(loaded) and cfg == CFG
        torch.testing.assert_close(loaded(clips), expected, rtol=0, atol=0)


def test_load_model_rejects_mismatched_weights(tmp_path):
    model, _, _ = trained_state()
    cfg = {"model": {**CFG["model"], "options": {"width": 4}}}
    path = ck.save_checkpoint(ck.training_state(model, config=cfg), tmp_path / "x.pt")
    with pytest.raises(ck.CheckpointError, match="do not match"):
        load_model(path)
