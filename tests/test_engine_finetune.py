"""The one fine-tune protocol (Sec. 4.1) and the run-directory rules every command shares."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from engine_toys import toy_config, toy_datasets
from videotaf.cli.engine import cmd_finetune, register
from videotaf.config import ConfigError, config_to_dict
from videotaf.engine.checkpoint import load_checkpoint
from videotaf.engine.finetune import AttackSettings, finetune_config, finetune_lr, saved_lr
from videotaf.engine.runs import prepare_run_dir, run_status, same_config
from videotaf.engine.train import fit, fit_or_reuse
from videotaf.errors import RunExistsError


def test_protocol_sets_schedule_weights_method_and_keeps_the_rest():
    base = toy_config("runs/base")
    base.optim.gamma, base.optim.warmup_epochs, base.optim.milestones = 0.5, 2.0, [3, 6]
    cfg = finetune_config(
        base,
        "ckpt.pt",
        "taf",
        epochs=15,
        decay_after=10,
        attack=AttackSettings(alpha=0.5, eps=8 / 255, steps=3),
        output_dir="runs/ft",
        seed=7,
    )
    assert (cfg.optim.epochs, cfg.optim.milestones, cfg.optim.gamma, cfg.optim.warmup_epochs) == (15, [10], 0.1, 0.0)
    assert cfg.optim.schedule == "step" and cfg.optim.lr == base.optim.lr  # the LR comes from the base config
    assert (cfg.model.pretrained, cfg.model.pretrained_source) == ("ckpt.pt", "auto")
    a = cfg.adversarial
    assert (a.method, a.alpha, a.eps, a.steps, a.step_size) == ("taf", 0.5, 8 / 255, 3, base.adversarial.step_size)
    assert (cfg.runtime.output_dir, cfg.runtime.seed) == ("runs/ft", 7)
    # The base config is not modified.
    assert base.optim.milestones == [3, 6] and base.adversarial.method == "plain" and base.model.pretrained is None


def test_protocol_ties_the_data_seed_to_the_run_seed_only_when_set():
    base = toy_config("r")
    assert finetune_config(base, "c.pt", "plain", seed=3).data.seed is None
    seeded = dataclasses.replace(base, data=dataclasses.replace(base.data, seed=0))
    assert finetune_config(seeded, "c.pt", "plain", seed=3).data.seed == 3


def test_protocol_rejects_bad_methods_and_out_of_range_attacks():
    base = toy_config("r")
    with pytest.raises(ValueError, match="method"):
        finetune_config(base, "c.pt", "fgsm")
    with pytest.raises(ConfigError, match="adversarial.eps"):
        finetune_config(base, "c.pt", "taf", attack=AttackSettings(eps=1.5))
    with pytest.raises(ConfigError, match="num_nonkey"):
        finetune_config(base, "c.pt", "taf", attack=AttackSettings(num_nonkey=base.model.num_frames + 1))


def _parse(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(argv)


def test_cli_finetune_builds_the_protocol_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``videotaf finetune`` gives exactly ``finetune_config`` of the checkpoint's saved config, then ``--set``."""
    base_dir = tmp_path / "base"
    base = toy_config(str(base_dir))
    base.optim.epochs = 1
    fit(base, datasets_fn=toy_datasets)
    ckpt = base_dir / "checkpoints" / "last.pt"
    seen = {}
    monkeypatch.setattr("videotaf.cli.engine.fit", lambda cfg, **kw: seen.setdefault("cfg", cfg))
    monkeypatch.setattr("videotaf.cli.engine._subset", lambda path, cfg: None)
    args = _parse(
        ["finetune", "--checkpoint", str(ckpt), "--method", "advprop", "--epochs", "3", "--decay-after", "2"]
        + ["--eps", "4/255", "--out", str(tmp_path / "ft"), "--set", "optim.lr=0.002"]
    )
    assert cmd_finetune(args) == 0
    from videotaf.config import config_from_dict

    expected = finetune_config(
        config_from_dict(load_checkpoint(ckpt)["config"]),
        ckpt,
        "advprop",
        epochs=3,
        decay_after=2,
        attack=AttackSettings(eps=4 / 255),
        output_dir=tmp_path / "ft",
    )
    expected.optim.lr = 0.002
    assert config_to_dict(seen["cfg"]) == config_to_dict(expected)


def test_run_status_and_refusal(tmp_path: Path):
    run = tmp_path / "run"
    assert run_status(run) == "empty"
    prepare_run_dir(run, resume=False, overwrite=False)  # nothing there: fine
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    (run / "notes.txt").write_text("mine")
    assert run_status(run) == "interrupted"
    (run / "eval.json").write_text("{}")
    assert run_status(run) == "finished"
    with pytest.raises(RunExistsError, match=r"--resume.*--overwrite"):
        prepare_run_dir(run, resume=False, overwrite=False)
    prepare_run_dir(run, resume=True, overwrite=False)  # resuming is allowed
    prepare_run_dir(run, resume=False, overwrite=True)
    assert run_status(run) == "empty" and (run / "notes.txt").read_text() == "mine"  # the user's file stays


def test_fit_or_reuse_trains_reuses_and_refuses(tmp_path: Path):
    cfg = toy_config(str(tmp_path / "r"))
    cfg.optim.epochs = 1
    assert fit_or_reuse(cfg, datasets_fn=toy_datasets)[1] == "trained"
    first = (tmp_path / "r" / "checkpoints" / "last.pt").read_bytes()
    assert same_config(tmp_path / "r", cfg)
    again = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, progress="none", log_every=5))
    assert fit_or_reuse(again, datasets_fn=toy_datasets)[1] == "reused"  # display settings do not matter
    assert (tmp_path / "r" / "checkpoints" / "last.pt").read_bytes() == first
    other = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, lr=cfg.optim.lr / 2))
    with pytest.raises(RunExistsError, match="another config"):
        fit_or_reuse(other, datasets_fn=toy_datasets)
    assert fit_or_reuse(other, datasets_fn=toy_datasets, overwrite=True)[1] == "trained"
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["lr"] == pytest.approx(cfg.optim.lr / 2)


def test_the_saved_lr_is_the_one_the_run_ended_with(tmp_path: Path):
    """Sec. 4.1 read literally: fine-tuning continues at the LR of "the status when the model is logged"."""
    cfg = toy_config(str(tmp_path / "base"))
    cfg.optim.epochs, cfg.optim.milestones, cfg.optim.gamma, cfg.optim.lr = 2, [1], 0.1, 0.05
    fit(cfg, datasets_fn=toy_datasets)
    last = tmp_path / "base" / "checkpoints" / "last.pt"
    assert saved_lr(last) == pytest.approx(0.005)  # decayed once, at epoch 1
    assert finetune_lr(last, "checkpoint", 0.05)[0] == pytest.approx(0.005)
    assert finetune_lr(last, "auto", 0.05)[0] == pytest.approx(0.005)
    assert finetune_lr(last, "config", 0.05) == (0.05, "the config (--lr-from config)")
    weights_only = tmp_path / "weights.pt"
    torch.save({"model": load_checkpoint(last)["model"]}, weights_only)
    assert saved_lr(weights_only) is None
    assert finetune_lr(weights_only, "auto", 0.05)[0] == 0.05
    with pytest.raises(ConfigError, match="no optimizer state"):
        finetune_lr(weights_only, "checkpoint", 0.05)
    # Official releases keep an lr_mult per group (TSM): the x1 group's LR is the base LR.
    official = tmp_path / "tsm.pth"
    torch.save({"optimizer": {"param_groups": [{"lr": 0.05, "lr_mult": 5}, {"lr": 0.01, "lr_mult": 1}]}}, official)
    assert saved_lr(official) == pytest.approx(0.01)


def test_fit_or_reuse_restarts_a_run_killed_before_its_first_checkpoint(tmp_path: Path):
    cfg = toy_config(str(tmp_path / "r"))
    cfg.optim.epochs = 1
    run = tmp_path / "r"
    run.mkdir()
    from videotaf.config import save_config

    save_config(cfg, run / "config.yaml")  # what a run killed during its first epoch leaves
    assert run_status(run) == "interrupted" and same_config(run, cfg)
    assert fit_or_reuse(cfg, datasets_fn=toy_datasets)[1] == "trained"
    assert run_status(run) == "finished"


def test_the_worker_count_is_part_of_a_run_only_without_a_data_seed(tmp_path: Path, synth_root: Path):
    from videotaf.data import build_dataset

    cfg = toy_config(str(tmp_path / "r"))
    cfg.optim.epochs = 1
    fit_or_reuse(cfg, datasets_fn=toy_datasets)
    more = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, num_workers=3, pin_memory=True))
    assert cfg.data.seed is None and not same_config(tmp_path / "r", more)  # worker RNGs shape the crops
    seeded = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, seed=5))
    fit_or_reuse(seeded, datasets_fn=toy_datasets, overwrite=True)
    assert same_config(tmp_path / "r", dataclasses.replace(more, data=dataclasses.replace(more.data, seed=5)))
    assert not same_config(tmp_path / "r", dataclasses.replace(seeded, optim=dataclasses.replace(cfg.optim, lr=1.0)))
    # The frame cache never changes a clip (tests/test_data_cache.py), with or without a data seed.
    assert same_config(
        tmp_path / "r", dataclasses.replace(seeded, data=dataclasses.replace(seeded.data, cache_frames=True))
    )
    # Why that is sound: with a data seed the augmented clips do not depend on the number of workers.
    data = dataclasses.replace(seeded.data, root=str(synth_root), crop_size=12, scale_size=16, num_frames=4)
    ds = build_dataset(data, data.train_split, True)
    ds.set_epoch(1)
    batches = {w: [x for x, _ in torch.utils.data.DataLoader(ds, batch_size=4, num_workers=w)] for w in (0, 2)}
    assert len(batches[0]) == 3 and all(torch.equal(a, b) for a, b in zip(batches[0], batches[2]))
