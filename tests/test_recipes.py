"""The synthetic baseline recipe (``videotaf.engine.recipes``): its schedule rules, its config and its data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from videotaf.engine.recipes import SyntheticRecipe, baseline_config, ensure_synthetic_data, synth_settings
from videotaf.errors import OutputExistsError

TINY = SyntheticRecipe(classes=2, train_per_class=1, val_per_class=1, video_frames=8, video_size=16, crop=16)


def test_schedule_rules():
    # Explicit milestones win; without them LR x0.1 at 2/3 and 5/6 of the epochs (30 -> 20, 25), one milestone
    # when both round to the same epoch (3 -> round(2.0), round(2.5) = 2, 2), never at epoch 0.
    assert SyntheticRecipe(epochs=30, milestones=(7,)).base_milestones == [7]
    assert SyntheticRecipe(epochs=30, milestones=None).base_milestones == [20, 25]
    assert SyntheticRecipe(epochs=3, milestones=None).base_milestones == [2]
    assert SyntheticRecipe(epochs=1, milestones=None).base_milestones == [1]
    # Fine-tune decay: given, or after 2/3 of the epochs (the paper: 10 of 15).
    assert SyntheticRecipe(finetune_epochs=15).decay_after == 10
    assert SyntheticRecipe(finetune_epochs=4).decay_after == 3
    assert SyntheticRecipe(finetune_epochs=1).decay_after == 1
    assert SyntheticRecipe(finetune_epochs=15, finetune_decay=12).decay_after == 12


def test_baseline_config_carries_every_knob(tmp_path: Path):
    r = SyntheticRecipe(
        classes=5,
        crop=48,
        video_size=60,
        num_frames=4,
        batch_size=3,
        lr=0.02,
        dropout=0.1,
        epochs=6,
        milestones=None,
        model_options=(("depth", 18), ("width", 0.5), ("stem", "small")),
        train_crop="none",
        warmup_epochs=1.0,
        eval_every=None,
        cam_layer=None,
        num_workers=0,
    )
    cfg = baseline_config(r, tmp_path / "data", tmp_path / "run", seed=3)
    assert (cfg.model.name, cfg.model.num_classes, cfg.model.num_frames) == ("tsm", 5, 4)
    assert cfg.model.options == {"depth": 18, "width": 0.5, "stem": "small", "dropout": 0.1}
    d = cfg.data
    assert d.root == str(tmp_path / "data")
    assert (d.crop_size, d.scale_size, d.num_frames, d.train_crop) == (48, 60, 4, "none")
    assert (d.seed, d.num_workers, d.flip) == (3, 0, False)
    o = cfg.optim
    assert (o.lr, o.epochs, o.milestones, o.batch_size, o.warmup_epochs) == (0.02, 6, [4, 5], 3, 1.0)
    # From scratch the head keeps the backbone's LR.
    assert (o.fc_lr_mult_weight, o.fc_lr_mult_bias) == (1.0, 1.0)
    assert cfg.adversarial.method == "plain" and cfg.adversarial.cam_layer is None
    # eval_every None: scored once, after the last epoch.
    assert (cfg.runtime.seed, cfg.runtime.eval_every, cfg.runtime.output_dir) == (3, 6, str(tmp_path / "run"))
    default = baseline_config(SyntheticRecipe(), "d", "o")
    assert default.runtime.eval_every == 1 and default.adversarial.cam_layer == "backbone.layer3"


def test_ensure_synthetic_data_reuses_refuses_and_overwrites(tmp_path: Path):
    root = tmp_path / "data"
    heard: list[str] = []
    assert ensure_synthetic_data(root, TINY, log=heard.append) == root
    meta = root / "synth_meta.json"
    assert json.loads(meta.read_text())["settings"] == {**synth_settings(TINY), "fps": 12}
    assert heard == [f"synthesising 2 classes x 1/1 clips into {root}"]
    os.utime(meta, ns=(0, 0))
    # Same settings: reused, nothing written.
    assert ensure_synthetic_data(root, TINY, log=heard.append) == root
    assert meta.stat().st_mtime_ns == 0 and heard[-1] == f"reusing dataset {root}"
    # Other settings: refused in one line naming what differs, unless overwriting.
    other = SyntheticRecipe(**{**TINY.__dict__, "train_per_class": 2, "data_seed": 1})
    with pytest.raises(OutputExistsError) as err:
        ensure_synthetic_data(root, other)
    msg = str(err.value)
    assert "\n" not in msg and str(root) in msg
    assert "train_per_class 1 (wanted 2)" in msg and "seed 0 (wanted 1)" in msg and "size" not in msg
    assert meta.stat().st_mtime_ns == 0
    ensure_synthetic_data(root, other, overwrite=True)
    assert json.loads(meta.read_text())["settings"]["train_per_class"] == 2
