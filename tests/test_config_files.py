"""Every YAML under configs/ loads strictly and describes a buildable run."""

from __future__ import annotations

from pathlib import Path

import pytest

from videotaf.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FILES = sorted(CONFIGS.rglob("*.yaml"))

# Paper Table 1 baseline rows: (dataset dir, file stem, frames).
TABLE1 = {
    ("ssv1", "tsm_r50_8f", 8),
    ("ssv1", "tsm_r50_16f", 16),
    ("ssv1", "gst_r50_8f", 8),
    ("ssv1", "gst_r50_16f", 16),
    ("ssv1", "gst_l_r50_8f", 8),
    ("ssv1", "tam_blr50_f8x2", 16),
    ("ssv1", "tpn_r50_8f", 8),
    ("ssv2", "tsm_r50_8f", 8),
    ("ssv2", "tsm_r50_16f", 16),
    ("ssv2", "gst_r50_8f", 8),
    ("ssv2", "tpn_r50_8f", 8),
    ("diving48", "tsm_r50_8f", 8),
    ("diving48", "gst_r50_8f", 8),
    ("diving48", "tam_blr50_f8x2", 16),
    ("diving48", "tpn_r50_8f", 8),
}

PROTOCOL = {  # reference table: epochs, schedule, milestones, batch, weight decay, clip, nesterov, dropout
    "tsm": (50, "step", [20, 40], 64, 5e-4, 20.0, False, 0.5),
    "blvnet_tam": (50, "cosine", [], 64, 5e-4, None, True, 0.5),
    "gst": (70, "step", [50, 60], 24, 3e-4, 20.0, False, 0.3),
    "gst_l": (70, "step", [50, 60], 24, 3e-4, 20.0, False, 0.3),
    "tpn": (150, "step", [75, 125], 64, 5e-4, 20.0, True, 0.5),
}


def test_there_are_configs():
    assert len(FILES) >= 2 * len(TABLE1) + 3


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CONFIGS)) for p in FILES])
def test_every_config_loads_and_names_a_buildable_model(path):
    from videotaf.models import available, model_options

    cfg = load_config(path)
    assert cfg.model.name in available(), cfg.model.name
    unknown = set(cfg.model.options) - set(model_options(cfg.model.name))
    assert not unknown, f"{path}: options {unknown} not accepted by {cfg.model.name}"
    assert cfg.data.num_frames == cfg.model.num_frames
    assert cfg.optim.batch_size >= 1 and all(m < cfg.optim.epochs for m in cfg.optim.milestones)


@pytest.mark.parametrize("ds, stem, frames", sorted(TABLE1))
def test_table1_rows_follow_their_protocol(ds, stem, frames):
    cfg = load_config(CONFIGS / ds / f"{stem}.yaml")
    epochs, schedule, milestones, batch, wd, clip, nesterov, dropout = PROTOCOL[cfg.model.name]
    o = cfg.optim
    assert (o.epochs, o.schedule, o.milestones, o.batch_size) == (epochs, schedule, milestones, batch)
    assert (o.weight_decay, o.clip_grad_norm, o.nesterov, o.lr) == (wd, clip, nesterov, 0.01)
    assert cfg.model.options["dropout"] == dropout and cfg.model.num_frames == frames
    assert cfg.model.num_classes == (48 if ds == "diving48" else 174)
    assert cfg.data.kind == {"ssv1": "somethingv1", "ssv2": "somethingv2", "diving48": "diving48"}[ds]
    assert cfg.adversarial.method == "plain"

    ft = load_config(CONFIGS / "finetune" / f"{ds}_{stem}_taf.yaml")
    assert (ft.optim.epochs, ft.optim.milestones, ft.optim.gamma) == (15, [10], 0.1)  # Sec. 4.1
    a = ft.adversarial
    assert (a.method, a.alpha, a.steps, a.num_nonkey) == ("taf", 0.7, 1, None)
    assert a.eps == pytest.approx(64 / 255) and a.step_size == pytest.approx(32 / 255)
    # everything else is the baseline's own protocol
    assert (ft.optim.lr, ft.optim.batch_size, ft.optim.weight_decay) == (o.lr, o.batch_size, o.weight_decay)
    assert ft.model == cfg.model and ft.data == cfg.data


def test_synthetic_configs_match_the_demo():
    """``configs/synthetic/tsm_tiny*.yaml`` are the demo's full recipe written out for the command line: the same
    config but for the paths and how progress is shown, the same data (its ``videotaf data synth`` line) and the
    same fine-tunes, so the recipe and the files cannot drift apart."""
    from videotaf.cli.demo import FULL
    from videotaf.config import config_to_dict
    from videotaf.engine.finetune import finetune_config
    from videotaf.engine.recipes import baseline_config, synth_settings

    path = CONFIGS / "synthetic" / "tsm_tiny.yaml"
    yaml_cfg = load_config(path)
    demo = baseline_config(FULL, yaml_cfg.data.root, yaml_cfg.runtime.output_dir)
    a, b = config_to_dict(yaml_cfg), config_to_dict(demo)
    # Display only: the file shows a progress bar on a terminal, the demo prints lines.
    a["runtime"]["progress"] = b["runtime"]["progress"] = a["runtime"]["log_every"] = b["runtime"]["log_every"] = 0
    assert a == b
    synth_line = next(line for line in path.read_text().splitlines() if "videotaf data synth" in line).split()
    flags = dict(zip(synth_line[synth_line.index("--out") :: 2], synth_line[synth_line.index("--out") + 1 :: 2]))
    want = synth_settings(FULL)
    assert flags["--out"] == yaml_cfg.data.root and int(flags.get("--seed", 0)) == want["seed"]
    assert (int(flags["--classes"]), int(flags["--frames"]), int(flags["--size"])) == (
        want["num_classes"], want["num_frames"], want["size"]
    )  # fmt: skip
    assert (int(flags["--train-per-class"]), int(flags["--val-per-class"])) == (
        want["train_per_class"], want["val_per_class"]
    )  # fmt: skip
    taf = load_config(CONFIGS / "synthetic" / "tsm_tiny_taf.yaml")
    demo_taf = finetune_config(demo, "ckpt.pt", "taf", epochs=FULL.finetune_epochs, decay_after=FULL.decay_after)
    assert taf.optim == demo_taf.optim and taf.adversarial == demo_taf.adversarial
