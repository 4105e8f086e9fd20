"""Checkpoint importers (round trip through each official key scheme) and ImageNet initialisation."""

from __future__ import annotations

import re

import pytest
import torch
import torchvision

from videotaf.models import build, load_pretrained
from videotaf.models.weights import CheckpointMismatchError, detect_source, read_state_dict


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            r = torch.rand(t.shape, generator=g)
            # Positive variances, small centred weights: deep stacks stay finite in eval mode.
            t.copy_(r + 0.5 if "running_var" in name else (r - 0.5) * 0.2)
    return model.eval()


def _sub(rules, key: str) -> str:
    for p, r in rules:
        key = re.sub(p, r, key)
    return key


# Exporters written independently of videotaf.models.weights: our keys -> the official scheme.
def to_tsm(k: str) -> str:
    k = _sub(
        [(r"^fc\.", "new_fc."), (r"^backbone\.", "base_model."), (r"(layer\d+\.\d+)\.conv1\.", r"\1.conv1.net.")], k
    )
    return "module." + k


def to_mmaction2(k: str, with_net: bool) -> str:
    rules = [
        (r"^fc\.", "cls_head.fc_cls."),
        (r"^backbone\.conv1\.", "backbone.conv1.conv."),
        (r"^backbone\.bn1\.", "backbone.conv1.bn."),
        (r"(layer\d+\.\d+)\.conv(\d)\.", r"\1.conv\2.conv." if not with_net else r"\1.conv\2.conv.net."),
        (r"(layer\d+\.\d+)\.bn(\d)\.", r"\1.conv\2.bn."),
        (r"\.downsample\.0\.", ".downsample.conv."),
        (r"\.downsample\.1\.", ".downsample.bn."),
        (r"^aux_head\.", "neck.aux_head."),
        (r"^neck\.spatial_modulation\.", "neck.spatial_modulation.spatial_modulation.0.0."),
        (r"^neck\.temporal_modulation\.(\d)\.", r"neck.temporal_modulation_ops.\1.conv.conv."),
        (r"^neck\.bottom_up\.", "neck.downsample_ops.0.conv.conv."),
        (r"\.downsamples\.(\d)\.", r".downsamples.\1.conv."),
    ]
    k = _sub(rules, k)
    if with_net:  # only the shifted conv1 is wrapped by TemporalShift(.net) in mmaction2's ResNetTSM
        k = re.sub(r"\.conv([23])\.conv\.net\.", r".conv\1.conv.", k)
    return k


def to_gst(k: str) -> str:
    rules = [
        (r"^fc\.", "new_fc."),
        (r"^backbone\.", "base_model."),
        (r"\.conv2\.spatial\.weight$", ".conv2.weight"),
        (r"\.conv2\.temporal\.weight$", ".Tconv.weight"),
    ]
    return "module." + _sub(rules, k)


def to_blvnet(k: str) -> str:
    rules = [(r"^fc\.", "new_fc."), (r"^backbone\.", "baseline_model."), (r"(layer4\.\d+)\.temporal\.", r"\1.tam.")]
    return "module." + _sub(rules, k)


CASES = [
    ("tsm", {"depth": 18, "width": 0.25}, 8, "tsm", to_tsm, "state_dict"),
    ("tsm", {"depth": 50, "width": 0.125}, 8, "mmaction2", lambda k: to_mmaction2(k, True), "state_dict"),
    ("tsm", {"depth": 18, "width": 0.25}, 8, "mmaction2", lambda k: to_mmaction2(k, False), None),
    ("tpn", {"depth": 18, "width": 0.25}, 8, "mmaction2", lambda k: to_mmaction2(k, True), "state_dict"),
    ("gst", {"depth": 50, "width": 0.125}, 8, "gst", to_gst, "state_dict"),
    ("gst_l", {"depth": 50, "width": 0.125}, 8, "gst", to_gst, None),
    ("blvnet_tam", {"depth": 50, "width": 0.125}, 8, "blvnet", to_blvnet, "model"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, opts, frames, source, export, container", CASES)
def test_import_round_trip(tmp_path, name, opts, frames, source, export, container):
    torch.manual_seed(0)
    ref = _randomise(build(name, 7, frames, **opts), seed=1)
    theirs = {export(k): v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    # The export really is in the other scheme (only some TPN neck names coincide with mmaction2's).
    assert all(k.startswith("neck.") for k in set(theirs) & set(ref.state_dict()))
    path = tmp_path / "ckpt.pth"
    torch.save({container: theirs, "epoch": 3} if container else theirs, path)
    model = _randomise(build(name, 7, frames, **opts), seed=2)
    clips = torch.rand(1, frames, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(model(clips), ref(clips))
        assert load_pretrained(model, path) == source  # auto-detection
        assert torch.allclose(model(clips), ref(clips), atol=1e-5)
        assert load_pretrained(model, path, source=source) == source


def test_videotaf_scheme_round_trip(tmp_path):
    ref = _randomise(build("tsm", 3, 8, depth=18, width=0.25), seed=1)
    torch.save({"model": {"module." + k: v for k, v in ref.state_dict().items()}}, tmp_path / "m.pt")
    model = build("tsm", 3, 8, depth=18, width=0.25).eval()
    assert load_pretrained(model, tmp_path / "m.pt") == "videotaf"
    clips = torch.rand(1, 8, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(clips), ref(clips))


def test_mismatch_error_lists_missing_and_unexpected_keys(tmp_path):
    ref = build("tsm", 3, 8, depth=18, width=0.25)
    sd = {k: v for k, v in ref.state_dict().items() if k != "backbone.layer2.0.conv1.weight"}
    sd["backbone.extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointMismatchError) as err:
        load_pretrained(build("tsm", 3, 8, depth=18, width=0.25), tmp_path / "bad.pt", source="videotaf")
    msg = str(err.value)
    assert "missing keys (1): backbone.layer2.0.conv1.weight" in msg
    assert "unexpected keys (1): backbone.extra.weight" in msg


def test_reset_classifier_allows_other_class_count(tmp_path):
    ref = _randomise(build("tpn", 10, 8, depth=18, width=0.25), seed=1)
    torch.save(ref.state_dict(), tmp_path / "c10.pt")
    model = build("tpn", 4, 8, depth=18, width=0.25)
    with pytest.raises(CheckpointMismatchError, match=r"fc\.weight: checkpoint \(10, 128\) vs model \(4, 128\)"):
        load_pretrained(model, tmp_path / "c10.pt")
    fc_before = model.fc.weight.clone()
    load_pretrained(model, tmp_path / "c10.pt", reset_classifier=True)
    assert torch.equal(model.fc.weight, fc_before)
    assert torch.equal(model.backbone.conv1.weight, ref.backbone.conv1.weight)
    assert torch.equal(model.neck.pyramid_fusion.conv.weight, ref.neck.pyramid_fusion.conv.weight)


def test_read_state_dict_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        read_state_dict(tmp_path / "nope.pt")
    torch.save({"epoch": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="no state dict"):
        read_state_dict(tmp_path / "x.pt")


def test_detect_source():
    assert detect_source(["base_model.layer1.0.conv1.net.weight", "new_fc.weight"]) == "tsm"
    assert detect_source(["base_model.layer1.0.Tconv.weight"]) == "gst"
    assert detect_source(["baseline_model.b_conv0.weight"]) == "blvnet"
    assert detect_source(["backbone.conv1.conv.weight", "cls_head.fc_cls.weight"]) == "mmaction2"
    assert detect_source(["backbone.conv1.weight", "fc.weight"]) == "videotaf"


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("imagenet") / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def test_imagenet_init_2d(resnet18_file):
    src = torch.load(resnet18_file, weights_only=True)
    model = build("tsm", 5, 8, depth=18, imagenet_weights=str(resnet18_file))
    assert torch.equal(model.backbone.layer3[1].conv2.weight, src["layer3.1.conv2.weight"])
    assert torch.equal(model.backbone.bn1.running_var, src["bn1.running_var"])
    assert model.fc.weight.shape == (5, 512)
    with pytest.raises(CheckpointMismatchError, match="shape mismatches"):
        build("tsm", 5, 8, depth=18, width=0.5, imagenet_weights=str(resnet18_file))


def test_imagenet_init_gst_inflates_and_slices(resnet18_file):
    src = torch.load(resnet18_file, weights_only=True)
    model = build("gst", 5, 8, depth=18, imagenet_weights=str(resnet18_file))
    w = model.backbone.layer2[0].conv1.spatial.weight  # (128*3/4, 64/2, 1, 3, 3)
    assert w.shape == (96, 32, 1, 3, 3)
    assert torch.equal(w[:, :, 0], src["layer2.0.conv1.weight"][:96, :32])
    assert torch.equal(model.backbone.conv1.weight[:, :, 0], src["conv1.weight"])
    assert torch.equal(model.backbone.layer2[0].conv2.weight[:, :, 0], src["layer2.0.conv2.weight"])
    assert model.backbone.layer2[0].conv1.temporal.weight.shape == (32, 32, 3, 3, 3)
