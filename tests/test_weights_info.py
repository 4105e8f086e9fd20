"""One factory per model family (options declared once, by the class) and checkpoint families that carry their
preprocessing (``WeightsInfo``), applied to fine-tune / eval configs unless the user's config names the field."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import yaml

from videotaf.cam import cam_layer_of
from videotaf.config import ConfigError, config_from_dict, config_to_dict
from videotaf.engine.checkpoint import FORMAT
from videotaf.engine.pretrained import (
    apply_checkpoint_family,
    checkpoint_family,
    explicit_fields,
    with_weights_info,
)
from videotaf.models import build, model_options
from videotaf.models.blvnet import BLVNetTAM
from videotaf.models.gst import GST
from videotaf.models.tpn import TPN
from videotaf.models.tsm import TSM
from videotaf.models.weights import (
    ReferenceAccuracy,
    WeightsInfo,
    checkpoint_scheme,
    find_weights,
    known_weights,
    register_weights,
    weights_info,
)

# torchvision's big video nets take seconds to build: with the slow tests.
HEAVY = {"tv_mvit_v2_s", "tv_swin3d_t", "tv_s3d", "tv_r2plus1d_18"}


@pytest.mark.parametrize(
    ("name", "cls", "fixed"),
    [
        ("tsm", TSM, {}),
        ("tpn", TPN, {}),
        ("blvnet_tam", BLVNetTAM, {}),
        ("gst", GST, {"beta"}),
        ("gst_l", GST, {"beta"}),
    ],
)
def test_a_family_declares_its_options_once_in_its_class(name, cls, fixed):
    own = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "num_classes", "num_frames")]
    assert model_options(name) == [p for p in own if p not in fixed] + ["imagenet_weights"]


def test_a_fixed_setting_is_not_an_option_and_is_applied():
    with pytest.raises(TypeError, match="'beta'"):
        build("gst_l", 3, 4, beta=2)
    # GST-L's spatial conv sees all C channels (beta=1), GST's half: C/beta.
    gst_l, gst = (build(n, 3, 4, depth=18, width=0.25) for n in ("gst_l", "gst"))
    assert gst_l.backbone.layer1[0].conv1.spatial.in_channels == 2 * gst.backbone.layer1[0].conv1.spatial.in_channels


@pytest.mark.parametrize(
    "info",
    [pytest.param(i, marks=pytest.mark.slow) if i.model in HEAVY else i for i in known_weights()],
    ids=lambda i: i.name,
)
def test_every_family_names_the_built_models_cam_layer_and_normalisation(info):
    # The CAM layer's name and the normalisation do not depend on the depth: the ResNet families build small.
    small = {"depth": 18, "width": 0.25} if "depth" in model_options(info.model) else {}
    model = build(info.model, 5, info.num_frames, **small)
    assert cam_layer_of(model, info.cam_layer) is cam_layer_of(model)
    assert model.normalize.mean.flatten().tolist() == pytest.approx(info.mean)
    assert model.normalize.std.flatten().tolist() == pytest.approx(info.std)
    assert info.reference and all(0 < r.top1 < 100 for r in info.reference)
    assert weights_info(info.name) is info and find_weights(info.model, info.key_scheme) is info


def test_torchvision_families_use_torchvisions_own_preprocessing():
    tv = pytest.importorskip("torchvision.models.video")
    for weights, name in (
        (tv.R3D_18_Weights, "r3d_18"),
        (tv.S3D_Weights, "s3d"),
        (tv.MViT_V2_S_Weights, "mvit_v2_s"),
        (tv.Swin3D_T_Weights, "swin3d_t"),
    ):
        ours, theirs = weights_info(f"tv_{name}_kinetics400"), weights.KINETICS400_V1
        preset = theirs.transforms()
        assert (list(ours.mean), list(ours.std)) == (list(preset.mean), list(preset.std)), name
        assert ours.crop_size == preset.crop_size[0] and ours.scale_size == preset.resize_size[0], name
        assert ours.reference[0].top1 == theirs.meta["_metrics"]["Kinetics-400"]["acc@1"], name


def test_families_are_found_by_model_and_key_scheme():
    assert find_weights("tsm", "tsm").name == "tsm_release"
    assert find_weights("tsm", "mmaction2").name == "mmaction2_tsm"
    assert find_weights("tpn", "mmaction2").name == "mmaction2_tpn"
    assert find_weights("gst_l", "gst").name == "gst_l_release"
    assert find_weights("tsm", "videotaf") is None
    with pytest.raises(ValueError, match="'tsm_release' already covers tsm / tsm"):
        register_weights(WeightsInfo("tsm_copy", "tsm", "tsm", 8, (0, 0, 0), (1, 1, 1), 256, 224, "x", "here"))
    with pytest.raises(ValueError, match="unknown weights 'tsm'; known: blvnet_tam_release"):
        weights_info("tsm")
    assert isinstance(weights_info("tsm_release").reference[0], ReferenceAccuracy)


def _cfg(**sections):
    return config_from_dict({"model": {"name": "blvnet_tam", "num_frames": 8}, "data": {"num_frames": 8}, **sections})


def test_the_family_fills_what_the_config_does_not_name():
    info = weights_info("blvnet_tam_release")  # 16 frames, 256 / 224, backbone.layer4
    cfg, note = with_weights_info(_cfg(data={"crop_size": 112, "num_frames": 8}), info, {"data.crop_size"})
    assert (cfg.model.num_frames, cfg.data.num_frames) == (16, 16)
    assert (cfg.data.scale_size, cfg.data.crop_size, cfg.adversarial.cam_layer) == (256, 112, "backbone.layer4")
    assert note.startswith("weights blvnet_tam_release (IBM/bLVNet-TAM (f8x2 = 16 input frames)): 16 frames, ")
    assert note.endswith("; the config keeps data.crop_size=112")
    # Naming the frames of either side keeps both (they must agree).
    cfg, note = with_weights_info(_cfg(), info, {"data.num_frames"})
    assert (cfg.model.num_frames, cfg.data.num_frames) == (8, 8)
    assert note.endswith("; the config keeps model.num_frames=8, data.num_frames=8")


def test_explicit_fields_read_the_file_its_base_and_the_overrides(tmp_path: Path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"data": {"crop_size": 112}, "model": {"name": "tsm"}}))
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"_base_": "base.yaml", "optim": {"lr": 0.1}}))
    got = explicit_fields(tmp_path / "run.yaml", ["data.scale_size=128"])
    assert got == {"data.crop_size", "model.name", "optim.lr", "data.scale_size"}
    assert explicit_fields(None, []) == set()


def _official_tsm(path: Path, depth: int = 18) -> Path:
    """A tiny TSM saved with the TSM authors' key names (``module.base_model.*``, ``module.new_fc.*``)."""
    torch.manual_seed(0)
    state = build("tsm", 3, 8, depth=depth, width=0.125).state_dict()
    keys = {k: f"module.base_model.{k[9:]}" if k.startswith("backbone.") else f"module.new_{k}" for k in state}
    torch.save({"state_dict": {keys[k]: v for k, v in state.items()}}, path)
    return path


def test_an_official_checkpoint_names_its_family_and_a_videotaf_one_none(tmp_path: Path):
    official = _official_tsm(tmp_path / "tsm.pth")
    assert checkpoint_scheme(official) == "tsm"
    cfg = config_from_dict({"model": {"name": "tsm"}})
    assert checkpoint_family(cfg, official).name == "tsm_release"
    mm = config_from_dict({"model": {"name": "tsm", "pretrained_source": "mmaction2"}})
    assert checkpoint_family(mm, official).name == "mmaction2_tsm"
    ours = tmp_path / "ours.pt"
    torch.save({"format": FORMAT, "model": {}}, ours)
    assert checkpoint_family(cfg, ours) is None
    tv = config_from_dict({"model": {"name": "tv_r3d_18", "num_frames": 16, "options": {"weights": "r3d.pth"}}})
    assert checkpoint_family(tv, None).name == "tv_r3d_18_kinetics400"
    assert apply_checkpoint_family(cfg, ours, None, []) == (cfg, None)


def test_a_family_value_the_config_cannot_take_is_one_error_naming_the_family(tmp_path: Path):
    official = _official_tsm(tmp_path / "tsm.pth")
    cfg = config_from_dict({"model": {"name": "tsm", "num_frames": 16}, "data": {"num_frames": 16}})
    cfg = config_from_dict({**config_to_dict(cfg), "adversarial": {"num_nonkey": 12}})
    with pytest.raises(ConfigError, match=r"adversarial\.num_nonkey.*\(set by weights tsm_release; override it"):
        apply_checkpoint_family(cfg, official, None, [])


@pytest.mark.slow
def test_cli_eval_of_an_official_checkpoint_uses_its_family(tmp_path: Path, synth_root: Path, capsys):
    from videotaf.cli import main

    official = _official_tsm(tmp_path / "tsm.pth")
    cfg = {
        "model": {"name": "tsm", "num_classes": 3, "options": {"depth": 18, "width": 0.125}},
        "data": {"kind": "somethingv2", "root": str(synth_root), "crop_size": 32, "num_workers": 0},
        "runtime": {"device": "cpu"},
    }
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(official), "--config", str(path), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("weights tsm_release (mit-han-lab/temporal-shift-module")
    assert err.rstrip().endswith("; the config keeps data.crop_size=32") and err.count("\n") == 1
    assert out.is_file()
    # The weights are loaded: a file of another depth does not fit the configured model.
    deeper = _official_tsm(tmp_path / "tsm34.pth", depth=34)
    code = main(["eval", "--checkpoint", str(deeper), "--config", str(path), "--out", str(tmp_path / "e2.json")])
    assert code == 2 and "does not fit TSM" in capsys.readouterr().err
    # Without --config an official file is still refused as before, naming the file.
    assert main(["eval", "--checkpoint", str(official), "--out", str(tmp_path / "e3.json")]) == 2
    assert str(official) in capsys.readouterr().err


@pytest.mark.slow
def test_cli_finetune_of_an_official_checkpoint_uses_its_family(tmp_path: Path, monkeypatch, capsys):
    from videotaf.cli import engine as commands
    from videotaf.cli import main

    official = _official_tsm(tmp_path / "tsm.pth")
    path = tmp_path / "ft.yaml"
    model = {"name": "tsm", "num_classes": 3, "num_frames": 16, "options": {"depth": 18, "width": 0.125}}
    path.write_text(yaml.safe_dump({"model": model, "data": {"num_frames": 16}}))
    started = []
    monkeypatch.setattr(commands, "_run_fit", lambda cfg, args, start_note=None: started.append(cfg) or 0)
    args = ["finetune", "--config", str(path), "--checkpoint", str(official), "--method", "taf"]
    assert main([*args, "--out", str(tmp_path / "run"), "--set", "data.crop_size=112"]) == 0
    (cfg,) = started
    # The file names the frames, --set the crop: both kept; the family sets the resize and the CAM layer.
    assert (cfg.model.num_frames, cfg.data.num_frames, cfg.data.crop_size) == (16, 16, 112)
    assert (cfg.data.scale_size, cfg.adversarial.cam_layer, cfg.model.pretrained) == (
        256,
        "backbone.layer4",
        str(official),
    )
    line = capsys.readouterr().err.splitlines()[0]
    assert line.startswith("weights tsm_release (") and line.endswith(
        "keeps model.num_frames=16, data.num_frames=16, data.crop_size=112"
    )
