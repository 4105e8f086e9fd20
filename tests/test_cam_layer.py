"""Choosing the CAM layer of Eq. (2) (``adversarial.cam_layer``, ``TAOptions.cam_layer``, ``--cam-layer``) and
the warning when its maps are below 3x3.

Map sizes of the small TSM (ResNet-18 trunk, width 0.25) worked out by hand: conv1 and the max-pool halve the
input (56 -> 28 -> 14), layer1 keeps it, layer2..layer4 halve it with a padded 3x3 stride-2 conv, i.e.
``ceil(n / 2)``: 14 -> 7 -> 4 -> 2. So at 56 px layer2 is 7x7, layer3 4x4, layer4 2x2; at 96 px layer4 is 3x3.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import videotaf.attack as attack_mod
import videotaf.cam as cam_module
import videotaf.cli.analysis as commands
from engine_toys import toy_config, toy_datasets
from videotaf.attack import CrossEntropyAugmentation, TAOptions, TemporalAdversarialAugmentation
from videotaf.cam import (
    CamLayerError,
    CamResolutionWarning,
    FeatureTap,
    cam_layer_of,
    cam_loss,
    frame_cams,
    frame_maps,
    normalize_cams,
    temporal_gradcam,
)
from videotaf.config import ConfigError, config_from_dict, with_overrides
from videotaf.errors import VideotafError
from videotaf.models import build
from videotaf.objective import build_objective

FRAMES = 4


def small_tsm(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    # dropout 0: the objective's training-mode forward must be reproducible by the hand computation below.
    return build("tsm", 3, FRAMES, depth=18, width=0.25, dropout=0.0)


def clips(size: int | tuple[int, int] = 56, batch: int = 2, seed: int = 1) -> torch.Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    return torch.rand(batch, FRAMES, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: no (layer, size) warned about yet."""
    monkeypatch.setattr(cam_module, "_WARNED_COARSE", set())


def convert(model: nn.Module) -> nn.Module:
    from videotaf.bn import convert_dual_bn

    return convert_dual_bn(copy.deepcopy(model))


def hand_cams(model: nn.Module, layer: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. (2) written out: the layer's output, d log p_target / d output, spatial-mean weights, channel sum."""
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    (feats,) = seen
    score = logits.log_softmax(1).gather(1, targets[:, None]).sum()
    (grads,) = torch.autograd.grad(score, feats)
    b = x.shape[0]
    f, g = frame_maps(feats, b), frame_maps(grads, b)  # (B, T, C, h, w)
    return (g.mean(dim=(3, 4), keepdim=True) * f).sum(dim=2).detach()


# ----------------------------------------------------------------------------------------- the layer is used
def test_cam_shape_and_values_come_from_the_named_layer() -> None:
    model = small_tsm().eval()
    x = clips()
    with pytest.warns(CamResolutionWarning):  # layer4 at 56 px: the default's 2x2
        default = temporal_gradcam(model, x)
    assert default.cams.shape == (2, FRAMES, 2, 2)
    assert temporal_gradcam(model, x, cam_layer="backbone.layer3").cams.shape == (2, FRAMES, 4, 4)
    assert temporal_gradcam(model, x, cam_layer="backbone.layer2").cams.shape == (2, FRAMES, 7, 7)
    # Not just the shape: the values are Eq. (2) of layer3's output, for the predicted class.
    res = temporal_gradcam(model, x, cam_layer="backbone.layer3")
    expected = hand_cams(model, model.backbone.layer3, x, res.targets)
    torch.testing.assert_close(res.cams, expected, rtol=1e-5, atol=1e-7)
    # At 112 px the default layer4 is 4x4 (the README's table).
    assert temporal_gradcam(model, clips(112, batch=1)).cams.shape == (1, FRAMES, 4, 4)


def test_names_are_those_of_the_unwrapped_model() -> None:
    model = small_tsm()
    wrapped = nn.DataParallel(model)  # on the CPU a pass-through wrapper with `.module`, like DDP
    assert cam_layer_of(wrapped, "backbone.layer3") is model.backbone.layer3
    assert cam_layer_of(wrapped) is model.backbone.layer4
    assert cam_layer_of(model, "backbone.layer3.1") is model.backbone.layer3[1]  # any depth, a block too


def test_ta_reads_the_named_layer() -> None:
    model = small_tsm().eval()
    x0, labels = clips(), torch.tensor([0, 2])
    eps, step = 8 / 255, 4 / 255
    options = TAOptions(cam_layer="backbone.layer3", target_rule="true")
    adv = TemporalAdversarialAugmentation(model, eps, step, steps=1, options=options)(x0, labels)
    # One step of Eq. (6) on L_C (Eq. 5) of layer3's CAMs, by hand (target rule "true": the labels).
    x = x0.clone().requires_grad_(True)
    seen: list[torch.Tensor] = []
    handle = model.backbone.layer3.register_forward_hook(lambda _m, _i, out: seen.append(out))
    logits = model(x)
    handle.remove()
    score = logits.log_softmax(1).gather(1, labels[:, None]).sum()
    (g,) = torch.autograd.grad(score, seen[0], retain_graph=True)
    b = x.shape[0]
    # Grad-CAM weights are constants (first order): detach the gradient, keep the features in the graph.
    cams = frame_cams(frame_maps(seen[0], b), frame_maps(g.detach(), b))
    (grad,) = torch.autograd.grad(cam_loss(normalize_cams(cams), FRAMES), x)
    expected = torch.min(torch.max(x0 + step * grad.sign(), x0 - eps), x0 + eps).clamp(0, 1)
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-6)
    # The default layer (layer4) gives another clip, so the comparison above could fail.
    with pytest.warns(CamResolutionWarning):
        default = TemporalAdversarialAugmentation(model, eps, step, options=TAOptions(target_rule="true"))
        other = default(x0, labels)
    assert (other - expected).abs().max() > 1e-3


def test_objective_step_taps_the_named_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    from videotaf.bn import convert_dual_bn

    model = convert_dual_bn(small_tsm()).train()
    reference = copy.deepcopy(model)
    x0, labels = clips(), torch.tensor([1, 0])
    attached: list[nn.Module] = []
    real_attached = FeatureTap.attached

    def spy(self: FeatureTap, layer: nn.Module):  # every module a CAM tap is attached to
        attached.append(layer)
        return real_attached(self, layer)

    monkeypatch.setattr(attack_mod.FeatureTap, "attached", spy)
    objective = build_objective(
        "taf",
        eps=8 / 255,
        step_size=4 / 255,
        ta=TAOptions(cam_layer="backbone.layer3", target_rule="true"),
    )
    out = objective.step(model, x0, labels)
    assert attached == [model.backbone.layer3]
    # The fused step's attack (training-mode forward: batch statistics) equals the standalone attack on the
    # same weights in training mode, which test_ta_reads_the_named_layer checked against Eq. (2)-(6) by hand.
    ta = TemporalAdversarialAugmentation(
        None, 8 / 255, 4 / 255, options=TAOptions(cam_layer="backbone.layer3", target_rule="true")
    )
    torch.testing.assert_close(out.adv_clips, ta.run(reference, x0, labels), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------------------- bad names
def test_a_bad_name_is_one_line_naming_the_field_the_name_and_valid_names() -> None:
    model = small_tsm()
    with pytest.raises(CamLayerError) as info:
        cam_layer_of(model, "layer3", field="adversarial.cam_layer")
    text = str(info.value)
    assert isinstance(info.value, VideotafError) and isinstance(info.value, ValueError)
    assert "\n" not in text
    assert text.startswith("adversarial.cam_layer: 'layer3' is not a module of TSM")
    assert "did you mean 'backbone.layer3'?" in text  # the name a TSM user most likely meant
    for valid in ("backbone", "fc", "backbone.layer2", "backbone.layer4"):  # children and their children
        assert valid in text
    with pytest.raises(CamLayerError) as info:
        cam_layer_of(convert(model), "nope")
    assert "backbone.bn1" in str(info.value) and "aux_bn" not in str(info.value)  # dual-BN copies are no CAM layer
    with pytest.raises(CamLayerError, match=r"^cam_layer: '' is not a module"):
        cam_layer_of(model, "")
    with pytest.raises(CamLayerError, match=r"^TAOptions.cam_layer: 'backbone.layer9' is not a module"):
        TemporalAdversarialAugmentation(model, options=TAOptions(cam_layer="backbone.layer9"))


def test_ta_options_refuse_an_empty_name() -> None:
    with pytest.raises(ValueError, match="cam_layer"):
        TAOptions(cam_layer=" ")


def test_token_models_refuse_another_layer_but_accept_their_own_tap() -> None:
    from tiny_transformers import tiny

    torch.manual_seed(0)
    model = tiny("videomae")
    assert cam_layer_of(model, "fold.tap") is model.cam_layer  # naming its own tap changes nothing
    with pytest.raises(CamLayerError) as info:
        cam_layer_of(model, "net.videomae.encoder.layer.0", field="adversarial.cam_layer")
    text = str(info.value)
    assert "\n" not in text and text.startswith("adversarial.cam_layer: HFVideoModel is a token model")
    assert "'net.videomae.encoder.layer.0'" in text and "leave adversarial.cam_layer unset" in text


# ----------------------------------------------------------------------------------------- config and engine
def test_config_key_reaches_ta_options_and_is_validated() -> None:
    cfg = config_from_dict({"adversarial": {"method": "taf", "cam_layer": "backbone.layer3"}})
    options = cfg.adversarial.ta_options()
    assert options is not None and options.cam_layer == "backbone.layer3"
    assert config_from_dict({}).adversarial.cam_layer is None
    with pytest.raises(ConfigError, match=r"'adversarial.cam_layer' expects null or a dotted module name"):
        config_from_dict({"adversarial": {"cam_layer": ""}})
    with pytest.raises(ConfigError, match=r"'adversarial.cam_layer' expects str \| null"):
        config_from_dict({"adversarial": {"cam_layer": 3}})


def _toy_taf(out: Path, layer: str):
    cfg = toy_config(str(out), "taf")
    return with_overrides(cfg, ["optim.epochs=1", "optim.milestones=[]", f"adversarial.cam_layer={layer}"])


def test_fit_attacks_through_the_named_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from videotaf.engine.train import fit

    attached: list[nn.Module] = []
    real_attached = FeatureTap.attached

    def spy(self: FeatureTap, layer: nn.Module):
        attached.append(layer)
        return real_attached(self, layer)

    monkeypatch.setattr(attack_mod.FeatureTap, "attached", spy)
    fit(_toy_taf(tmp_path / "run", "stem"), datasets_fn=toy_datasets)
    # engine_toys.TinyNet: its own CAM layer is `block` (Conv3d 6 -> 6); `stem` starts with Conv3d(3, ...).
    # 24 training clips in batches of 6: 4 steps, one TA tap each (K = 1, fused).
    assert len(attached) == 4
    assert all(isinstance(m, nn.Sequential) and m[0].in_channels == 3 for m in attached)


def test_fit_refuses_a_bad_name_before_training(tmp_path: Path) -> None:
    from videotaf.engine.train import fit

    run = tmp_path / "run"
    with pytest.raises(CamLayerError) as info:
        fit(_toy_taf(run, "stemm"), datasets_fn=toy_datasets)
    text = str(info.value)
    assert text.startswith("adversarial.cam_layer: 'stemm' is not a module of TinyNet; did you mean 'stem'")
    assert "block" in text and "\n" not in text
    assert not run.exists()  # nothing written: the run never started


# ----------------------------------------------------------------------------------------- the warning
def _coarse(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, CamResolutionWarning)]


def test_2x2_maps_warn_once_with_what_to_do() -> None:
    model = small_tsm().eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # so only videotaf's own once-per-process rule can hold a repeat back
        temporal_gradcam(model, clips())
        temporal_gradcam(model, clips(seed=2))
        TemporalAdversarialAugmentation(model, 8 / 255, 4 / 255)(clips(), torch.tensor([0, 1]))
    (message,) = _coarse(caught)
    assert "\n" not in message
    assert message.startswith("Grad-CAM maps of backbone.layer4 are 2x2 from 56x56 px input")
    assert "adversarial.cam_layer" in message and "backbone.layer3 for TSM" in message
    assert "larger input" in message


def test_the_attack_warns_on_its_own() -> None:
    model = small_tsm().eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CrossEntropyAugmentation(model, 8 / 255, 4 / 255)(clips(), torch.tensor([0, 1]))  # reads no CAM
        assert _coarse(caught) == []
        TemporalAdversarialAugmentation(model, 8 / 255, 4 / 255)(clips(), torch.tensor([0, 1]))
    assert len(_coarse(caught)) == 1


def test_objective_step_warns_in_training() -> None:
    from videotaf.bn import convert_dual_bn

    model = convert_dual_bn(small_tsm()).train()
    objective = build_objective("taf", eps=8 / 255, step_size=4 / 255)
    with pytest.warns(CamResolutionWarning, match="backbone.layer4 are 2x2"):
        objective.step(model, clips(), torch.tensor([0, 1]))


def test_3x3_and_larger_do_not_warn_a_narrow_side_does() -> None:
    model = small_tsm().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CamResolutionWarning)
        assert temporal_gradcam(model, clips(), cam_layer="backbone.layer3").cams.shape[-2:] == (4, 4)
        assert temporal_gradcam(model, clips(96, batch=1)).cams.shape[-2:] == (3, 3)  # the boundary: 3 is enough
    # 96 x 56: layer4 is 3 x 2, one side short.
    with pytest.warns(CamResolutionWarning, match=r"are 3x2 from 96x56 px input"):
        temporal_gradcam(model, clips((96, 56), batch=1))


def test_once_per_layer_and_size() -> None:
    model = small_tsm().eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        temporal_gradcam(model, clips())  # layer4 2x2
        temporal_gradcam(model, clips(32))  # layer4 1x1: another size
        temporal_gradcam(model, clips(32), cam_layer="backbone.layer3")  # layer3 2x2: another layer
        temporal_gradcam(model, clips(32), cam_layer="backbone.layer3")  # repeat
    got = _coarse(caught)
    assert [m.split(" from ")[0] for m in got] == [
        "Grad-CAM maps of backbone.layer4 are 2x2",
        "Grad-CAM maps of backbone.layer4 are 1x1",
        "Grad-CAM maps of backbone.layer3 are 2x2",
    ]


# ----------------------------------------------------------------------------------------- command line
@pytest.fixture()
def tsm_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_model -> the small TSM; the evaluation dataset -> 3 random 56 px clips (no files)."""

    class Data(torch.utils.data.Dataset):
        classes = ["a", "b", "c"]

        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int):
            return clips(batch=1, seed=i)[0], i % 3

    monkeypatch.setattr(commands, "load_model", lambda path, map_location="cpu": (small_tsm().eval(), {}))
    monkeypatch.setattr(commands, "eval_dataset", lambda cfg, split=None: Data())


def _analyze(tmp_path: Path, name: str, *extra: str) -> list[str]:
    out = tmp_path / name
    args = ["analyze", "--checkpoint", "a.pt", "--max-clips", "2", "--batch-size", "2", "--out", str(out)]
    return [*args, "--eps", "8/255", "--step-size", "4/255", "--workers", "0", "--device", "cpu", *extra]


def test_cli_analyze_prints_the_warning_as_one_line(tmp_path: Path, tsm_engine, capsys) -> None:
    from videotaf.cli import main

    before = warnings.showwarning
    assert main(_analyze(tmp_path, "a.json")) == 0
    assert warnings.showwarning is before  # the command line's one-line printer does not outlive the command
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [
        "warning: CamResolutionWarning: Grad-CAM maps of backbone.layer4 are 2x2 from 56x56 px input: below 3x3 "
        "TA's per-frame CAMs (Eq. 2) have almost no spatial pattern; name a higher-resolution layer with "
        "adversarial.cam_layer (or --cam-layer), e.g. backbone.layer3 for TSM, or use a larger input"
    ]
    result = json.loads((tmp_path / "a.json").read_text())["models"]["a"]
    assert result["cam_layer"] == "backbone.layer4" and result["cam_size"] == [2, 2]


def test_cli_analyze_cam_layer_flag_and_config_key(tmp_path: Path, tsm_engine, capsys) -> None:
    from videotaf.cli import main

    assert main(_analyze(tmp_path, "l3.json", "--cam-layer", "backbone.layer3")) == 0
    assert capsys.readouterr().err == ""  # 4x4: no warning
    result = json.loads((tmp_path / "l3.json").read_text())["models"]["a"]
    assert result["cam_layer"] == "backbone.layer3" and result["cam_size"] == [4, 4]
    # Without the flag, the config's adversarial.cam_layer (here through --set) is the layer.
    assert main(_analyze(tmp_path, "l2.json", "--set", "adversarial.cam_layer=backbone.layer2")) == 0
    result = json.loads((tmp_path / "l2.json").read_text())["models"]["a"]
    assert result["cam_layer"] == "backbone.layer2" and result["cam_size"] == [7, 7]
    # The flag wins over the config.
    args = _analyze(tmp_path, "both.json", "--set", "adversarial.cam_layer=backbone.layer2", "--cam-layer")
    assert main([*args, "backbone.layer3"]) == 0
    assert json.loads((tmp_path / "both.json").read_text())["models"]["a"]["cam_size"] == [4, 4]


def test_cli_bad_cam_layer_is_one_error_line(tmp_path: Path, tsm_engine, capsys) -> None:
    from videotaf.cli import main

    capsys.readouterr()
    assert main(_analyze(tmp_path, "bad.json", "--cam-layer", "layer3")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: --cam-layer: 'layer3' is not a module of TSM; did you mean 'backbone.layer3'?")
    assert not (tmp_path / "bad.json").exists()
    assert main(_analyze(tmp_path, "bad2.json", "--set", "adversarial.cam_layer=layer9")) == 2
    assert capsys.readouterr().err.startswith("error: adversarial.cam_layer: 'layer9' is not a module of TSM")
    cam = ["cam", "--checkpoint", "a.pt", "--video", "dataset:0", "--device", "cpu", "--cam-layer", "nope"]
    assert main([*cam, "--out", str(tmp_path / "c.png")]) == 2
    assert capsys.readouterr().err.startswith("error: --cam-layer: 'nope' is not a module of TSM")


def test_cli_cam_warns_and_takes_the_flag(tmp_path: Path, tsm_engine, capsys) -> None:
    from videotaf.cli import main

    cam = ["cam", "--checkpoint", "a.pt", "--video", "dataset:0", "--device", "cpu"]
    capsys.readouterr()
    assert main([*cam, "--out", str(tmp_path / "c4.png")]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: CamResolutionWarning: Grad-CAM maps of backbone.layer4")
    seen: list[tuple[int, ...]] = []
    real = cam_module.cams_from_forward

    def spy(*a, **k):
        out = real(*a, **k)
        seen.append(tuple(out.shape[-2:]))
        return out

    with pytest.MonkeyPatch.context() as m:
        m.setattr(cam_module, "cams_from_forward", spy)
        m.setattr(attack_mod, "cams_from_forward", spy)
        assert main([*cam, "--adversarial", "--cam-layer", "backbone.layer3", "--out", str(tmp_path / "c3.png")]) == 0
    # Clean CAM, TA's step, the TA row's and the CE-PGD row's CAMs: every one from layer3's 4x4 maps.
    assert seen == [(4, 4)] * 4
    assert capsys.readouterr().err == ""


def test_cli_warning_printer_formats_any_warning_as_one_line(capsys) -> None:
    from videotaf.cli import _show_warning

    _show_warning(UserWarning("two\n  lines"), UserWarning, "/x/y.py", 3)
    assert capsys.readouterr().err == "warning: UserWarning: two lines\n"


@pytest.mark.slow
def test_cli_cam_takes_the_cam_method(tmp_path: Path, tsm_engine, capsys) -> None:
    from videotaf.cli import main

    cam = ["cam", "--checkpoint", "a.pt", "--video", "dataset:0", "--device", "cpu", "--cam-layer", "backbone.layer3"]
    methods: list[str] = []
    real = cam_module.cams_from_forward

    def spy(*a, **k):
        methods.append(cam_module.cam_weighting(k.get("method", "gradcam")).name)
        return real(*a, **k)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(cam_module, "cams_from_forward", spy)
        m.setattr(attack_mod, "cams_from_forward", spy)
        assert main([*cam, "--adversarial", "--cam-method", "layercam", "--out", str(tmp_path / "l.png")]) == 0
        assert main([*cam, "--out", str(tmp_path / "g.png")]) == 0
    # The clean CAM, TA's step and the two attacked rows' CAMs use LayerCAM; without the flag, Grad-CAM.
    assert methods == ["layercam"] * 4 + ["gradcam"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([*cam, "--cam-method", "gradcam++", "--out", str(tmp_path / "x.png")])
    assert stop.value.code == 2
    assert "--cam-method: invalid choice: 'gradcam++'" in capsys.readouterr().err
