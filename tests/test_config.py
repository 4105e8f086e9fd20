from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from videotaf.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    save_config,
)

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_defaults_are_the_paper_settings():
    cfg = load_config(None)
    assert isinstance(cfg, Config)
    a, o = cfg.adversarial, cfg.optim
    assert (a.method, a.alpha, a.steps, a.num_nonkey) == ("plain", 0.7, 1, None)
    assert a.eps == pytest.approx(64 / 255) and a.step_size == pytest.approx(32 / 255)
    assert (o.momentum, o.gamma, o.fc_lr_mult_weight, o.fc_lr_mult_bias) == (0.9, 0.1, 5.0, 10.0)


def test_yaml_and_overrides(tmp_path):
    f = write(tmp_path / "a.yaml", {"optim": {"lr": 0.02, "milestones": [3, 5]}, "model": {"name": "gst"}})
    cfg = load_config(f, ["optim.lr=0.001", "optim.epochs=7", "adversarial.num_nonkey=4", "model.options.depth=18"])
    assert cfg.optim.lr == 0.001 and cfg.optim.epochs == 7 and cfg.optim.milestones == [3, 5]
    assert cfg.model.name == "gst" and cfg.model.options == {"depth": 18}
    assert cfg.adversarial.num_nonkey == 4
    # ints widen to float, null resets an optional
    cfg = load_config(f, ["optim.lr=1", "optim.clip_grad_norm=null"])
    assert isinstance(cfg.optim.lr, float) and cfg.optim.clip_grad_norm is None


def test_unknown_key_names_key_and_file(tmp_path):
    f = write(tmp_path / "bad.yaml", {"optim": {"lrr": 0.1}})
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert "optim.lrr" in str(e.value) and "bad.yaml" in str(e.value)
    f = write(tmp_path / "bad2.yaml", {"optimizer": {}})
    with pytest.raises(ConfigError, match="'optimizer'.*bad2.yaml|bad2.yaml.*'optimizer'"):
        load_config(f)
    with pytest.raises(ConfigError, match="runtime.nope"):
        load_config(None, ["runtime.nope=1"])


@pytest.mark.parametrize(
    "override, field, expected",
    [
        ("optim.lr=fast", "optim.lr", "float"),
        ("optim.epochs=2.5", "optim.epochs", "int"),
        ("optim.nesterov=1", "optim.nesterov", "bool"),
        ("optim.milestones=[1, x]", "optim.milestones", "list[int]"),
        ("optim.schedule=linear", "optim.schedule", "'step' | 'cosine'"),
        ("adversarial.method=pgd", "adversarial.method", "'taf'"),
        ("model.options=3", "model.options", "dict"),
    ],
)
def test_wrong_type_names_field_and_expected_type(tmp_path, override, field, expected):
    f = write(tmp_path / "c.yaml", {})
    with pytest.raises(ConfigError) as e:
        load_config(f, [override])
    msg = str(e.value)
    assert repr(field) in msg and expected in msg and "c.yaml" in msg


def test_range_checks():
    with pytest.raises(ConfigError, match="adversarial.alpha"):
        load_config(None, ["adversarial.alpha=1.5"])
    with pytest.raises(ConfigError, match="optim.milestones"):
        load_config(None, ["optim.milestones=[5, 2]"])


def test_data_section_is_the_data_layers_dataclass(tmp_path):
    from videotaf.data import DataConfig

    cfg = load_config(None, ["data.num_frames=16", "data.kind=diving48"])
    assert isinstance(cfg.data, DataConfig) and cfg.data.num_frames == 16
    with pytest.raises(ConfigError, match="data.bogus"):
        load_config(None, ["data.bogus=1"])
    with pytest.raises(ConfigError, match="'data.kind'"):
        load_config(None, ["data.kind=kinetics"])


def test_base_inheritance(tmp_path):
    write(tmp_path / "base.yaml", {"optim": {"lr": 0.02, "epochs": 50}, "model": {"options": {"depth": 50}}})
    child = write(tmp_path / "child.yaml", "_base_: base.yaml\noptim:\n  epochs: 15\nmodel:\n  options: {width: 0.5}\n")
    cfg = load_config(child)
    assert cfg.optim.lr == 0.02 and cfg.optim.epochs == 15
    assert cfg.model.options == {"width": 0.5}  # options replace, not merge: a model's kwargs are one unit


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["optim.lr"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"optim": {"lr": 1}}, ["optim.lr.x=2"])


def test_round_trip_through_saved_yaml(tmp_path):
    cfg = load_config(None, ["optim.lr=0.003", "adversarial.method=taf", "runtime.seed=5"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(path)
    assert config_to_dict(again) == config_to_dict(cfg)
    assert dump_config(again) == path.read_text()


def test_missing_and_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    f = write(tmp_path / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml.*mapping"):
        load_config(f)
    with pytest.raises(ConfigError, match="expected a mapping"):
        config_from_dict([1])  # type: ignore[arg-type]


def test_ta_options_reach_the_attack():
    from videotaf.attack import TAOptions, TemporalAdversarialAugmentation
    from videotaf.config import AdversarialConfig
    from videotaf.objective import build_objective

    cfg = AdversarialConfig(method="taf", cam_score="ce", cam_norm="minmax", target_rule="true")
    attack = build_objective(cfg.method, ta=cfg.ta_options()).attack
    assert isinstance(attack, TemporalAdversarialAugmentation)
    o = attack.options
    assert (o.score, o.cam_norm, o.target_rule, o.relu) == ("ce", "minmax", "true", False)
    # Only TA has these options; other methods must not receive them.
    assert AdversarialConfig(method="ce_adv", cam_score="ce").ta_options() is None
    with pytest.raises(ValueError, match="only apply"):
        build_objective("ce_adv", ta=TAOptions(score="ce"))
