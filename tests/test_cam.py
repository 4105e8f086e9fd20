"""Eq. (2)-(5) against values worked out by hand, degenerate cases, and the CAM-loss gradient."""

from __future__ import annotations

import pytest
import torch

import videotaf.cam as cam_module
from videotaf.attack import TAOptions, TemporalAdversarialAugmentation
from videotaf.cam import (
    CamMethodError,
    CamWeighting,
    GradCam,
    cam_loss,
    cam_method_names,
    cam_weighting,
    float16_autocast,
    frame_attention,
    frame_cams,
    frame_maps,
    nonkey_frames,
    normalize_cams,
    register_cam_method,
    temporal_gradcam,
)
from videotaf.config import ConfigError, config_from_dict

from toy_models import LinearHead2D, Toy2D


def _features_and_grads() -> tuple[torch.Tensor, torch.Tensor]:
    # (B=1, T'=2, C=2, h=1, w=2)
    features = torch.tensor([[[[[1.0, 2.0]], [[3.0, 4.0]]], [[[0.0, 1.0]], [[1.0, 1.0]]]]])
    grads = torch.tensor([[[[[1.0, 3.0]], [[-1.0, -1.0]]], [[[0.0, 0.0]], [[2.0, 2.0]]]]])
    return features, grads


def test_frame_cams_by_hand():
    features, grads = _features_and_grads()
    # frame 0: weights (mean 2, mean -1) -> 2*[1, 2] - [3, 4] = [-1, 0]; frame 1: 0*[0, 1] + 2*[1, 1] = [2, 2]
    expected = torch.tensor([[[[-1.0, 0.0]], [[2.0, 2.0]]]])
    assert torch.equal(frame_cams(features, grads), expected)
    assert torch.equal(frame_cams(features, grads, relu=True), expected.clamp_min(0))


def test_frame_cams_rejects_mismatched_shapes():
    features, grads = _features_and_grads()
    try:
        frame_cams(features, grads[:, :1])
    except ValueError as err:
        assert "(B, T', C, h, w)" in str(err)
    else:
        raise AssertionError("expected ValueError")


def test_normalize_paper_and_minmax_by_hand():
    cams = torch.tensor([[[[-1.0, 0.0]], [[2.0, 2.0]]]])
    # min -1, max 2: (x + 1) / 2 and (x + 1) / 3
    assert torch.allclose(normalize_cams(cams), torch.tensor([[[[0.0, 0.5]], [[1.5, 1.5]]]]))
    assert torch.allclose(normalize_cams(cams, "minmax"), torch.tensor([[[[0.0, 1 / 3]], [[1.0, 1.0]]]]))


def test_normalize_is_per_clip_over_all_frames():
    a = torch.tensor([[[[1.0]], [[3.0]]]])
    b = torch.tensor([[[[10.0]], [[20.0]]]])
    out = normalize_cams(torch.cat([a, b]))
    # Clip a: (x - 1) / 3; clip b: (x - 10) / 20; a per-frame normalisation would give zeros everywhere.
    assert torch.allclose(out.flatten(), torch.tensor([0.0, 2 / 3, 0.0, 0.5]))


def test_normalize_degenerate_cases_are_finite_with_finite_gradients():
    cases = {
        "all negative falls back to max - min": (torch.tensor([[[[-3.0, -1.0]]]]), torch.tensor([[[[0.0, 1.0]]]])),
        "constant positive": (torch.full((1, 2, 1, 2), 5.0), torch.zeros(1, 2, 1, 2)),
        "constant zero": (torch.zeros(1, 2, 1, 2), torch.zeros(1, 2, 1, 2)),
        "constant negative": (torch.full((1, 2, 1, 2), -2.0), torch.zeros(1, 2, 1, 2)),
    }
    for mode in ("paper", "minmax"):
        for name, (cams, expected) in cases.items():
            x = cams.clone().requires_grad_(True)
            out = normalize_cams(x, mode)
            if mode == "paper" or name != "all negative falls back to max - min":
                assert torch.allclose(out, expected), (mode, name, out)
            out.sum().backward()
            assert torch.isfinite(x.grad).all(), (mode, name)


def test_normalize_gradient_flows_through_min_and_max():
    torch.manual_seed(0)
    cams = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: normalize_cams(c, "paper"), (cams,))
    assert torch.autograd.gradcheck(lambda c: normalize_cams(c, "minmax"), (cams,))
    # The maximum element's own gradient is not just 1/max: it also divides every other element.
    x = cams.detach().clone().requires_grad_(True)
    normalize_cams(x).sum().backward()
    assert x.grad[0].flatten()[x[0].flatten().argmax()] != 1 / x[0].max()


def test_nonkey_frames_ascending_and_stable():
    sums = torch.tensor([[3.0, 1.0, 2.0, 1.0], [0.0, 5.0, 4.0, 6.0]])
    cams = sums[:, :, None, None].expand(2, 4, 2, 2) / 4
    assert nonkey_frames(cams, 2).tolist() == [[1, 3], [0, 2]]
    assert nonkey_frames(cams, 4).tolist() == [[1, 3, 2, 0], [0, 2, 1, 3]]
    assert nonkey_frames(cams, 1).dtype == torch.long


def test_nonkey_frames_rejects_bad_n():
    for n in (0, 5):
        try:
            nonkey_frames(torch.zeros(1, 4, 1, 1), n)
        except ValueError as err:
            assert "between 1 and" in str(err)
        else:
            raise AssertionError(n)


def test_cam_loss_by_hand():
    # clip 0 frame means: 0.5, 1.0, 0.0 -> 2 non-key frames are 2 and 0 -> (0 + 0.5) / 2 = 0.25
    # clip 1 frame means: 0.25, 0.75, 0.5 -> frames 0 and 2 -> 0.375; batch mean 0.3125
    cams = torch.tensor(
        [
            [[[0.0, 1.0]], [[1.0, 1.0]], [[0.0, 0.0]]],
            [[[0.5, 0.0]], [[1.0, 0.5]], [[0.5, 0.5]]],
        ]
    )
    assert torch.isclose(cam_loss(cams, 2), torch.tensor(0.3125))
    # n = T': the mean over every frame
    assert torch.isclose(cam_loss(cams, 3), cams.mean())


def test_cam_loss_gradient_only_on_selected_frames():
    cams = torch.tensor([[[[1.0]], [[0.0]], [[2.0]]]], requires_grad=True)
    cam_loss(cams, 2).backward()
    assert cams.grad.flatten().tolist() == [0.5, 0.5, 0.0]


def test_frame_maps_both_layouts():
    b, t, c, h, w = 2, 3, 4, 2, 2
    maps = torch.arange(b * t * c * h * w, dtype=torch.float32).view(b, t, c, h, w)
    assert torch.equal(frame_maps(maps.flatten(0, 1), b), maps)
    assert torch.equal(frame_maps(maps.permute(0, 2, 1, 3, 4), b), maps)
    try:
        frame_maps(torch.zeros(5, c, h, w), b)
    except ValueError as err:
        assert "multiple of the batch size" in str(err)
    else:
        raise AssertionError


def test_frame_attention_sums_to_one_and_is_uniform_when_empty():
    cams = torch.tensor([[[[1.0]], [[3.0]]], [[[0.0]], [[0.0]]]])
    att = frame_attention(cams)
    assert torch.allclose(att, torch.tensor([[0.25, 0.75], [0.5, 0.5]]))


def _loss_fn(attack, labels, targets):
    def f(x):
        logits, feats, _ = attack.forward_with_features(attack.model, x)
        return attack.loss(logits, feats, labels, targets)

    return f


def _check_against_finite_differences(model, attack, x, labels):
    targets = labels
    f = _loss_fn(attack, labels, targets)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(xg), xg)
    gen = torch.Generator().manual_seed(1)
    h = 1e-6
    for _ in range(4):
        v = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        # The loss itself needs autograd (Grad-CAM weights are a gradient), so no torch.no_grad here.
        fd = (f(x + h * v).detach() - f(x - h * v).detach()) / (2 * h)
        assert torch.isclose((grad * v).sum(), fd, rtol=1e-4, atol=1e-8), ((grad * v).sum().item(), fd.item())


def test_cam_loss_gradient_matches_finite_differences_first_order():
    # With a linear head and the raw class score the Grad-CAM weights do not depend on x: exact gradient.
    torch.manual_seed(0)
    model = LinearHead2D().double()
    x = torch.rand(2, 3, 3, 5, 5, dtype=torch.float64)
    attack = TemporalAdversarialAugmentation(model, num_nonkey=2, options=TAOptions(score="logit", target_rule="true"))
    _check_against_finite_differences(model, attack, x, torch.tensor([0, 2]))


def test_cam_loss_gradient_matches_finite_differences_second_order():
    torch.manual_seed(0)
    model = LinearHead2D().double()
    x = torch.rand(2, 3, 3, 5, 5, dtype=torch.float64)
    attack = TemporalAdversarialAugmentation(model, options=TAOptions(target_rule="true", second_order=True))
    _check_against_finite_differences(model, attack, x, torch.tensor([1, 0]))


def test_temporal_gradcam_shapes_and_leaves_no_param_grads():
    torch.manual_seed(0)
    model = Toy2D().eval()
    clips = torch.rand(2, 4, 3, 16, 16)
    res = temporal_gradcam(model, clips)
    assert res.cams.shape == (2, 4, 8, 8) and res.cams_norm.shape == (2, 4, 8, 8)
    assert torch.allclose(res.frame_scores.sum(dim=1), torch.ones(2))
    assert torch.equal(res.targets, res.logits.argmax(dim=1))
    assert all(p.grad is None for p in model.parameters())
    assert not res.cams.requires_grad


@pytest.mark.filterwarnings("ignore:torch.*autocast.*deprecated:DeprecationWarning")  # the old API on new torch
@pytest.mark.parametrize("old_torch", [False, True])
def test_float16_autocast_detection(monkeypatch, old_torch):
    if old_torch:  # torch 2.1-2.3 have only the per-device functions
        monkeypatch.setattr(cam_module, "_DEVICE_AUTOCAST_API", False)
    cpu = torch.device("cpu")
    assert not float16_autocast(cpu)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not float16_autocast(cpu)
    with torch.autocast("cpu", dtype=torch.float16):
        assert float16_autocast(cpu)
        assert not float16_autocast(torch.device("meta"))


# ----------------------------------------------------------------------------- the weighting of Eq. (2)
def test_layercam_by_hand_and_gradcam_is_the_default():
    features, grads = _features_and_grads()
    # relu(grads): frame 0 [[1, 3], [0, 0]] -> [1*1 + 0*3, 3*2 + 0*4] = [1, 6]; frame 1 [[0, 0], [2, 2]] ->
    # [0*0 + 2*1, 0*1 + 2*1] = [2, 2]
    assert torch.equal(frame_cams(features, grads, method="layercam"), torch.tensor([[[[1.0, 6.0]], [[2.0, 2.0]]]]))
    assert torch.equal(frame_cams(features, grads, method="gradcam"), frame_cams(features, grads))
    assert torch.equal(frame_cams(features, grads, method=GradCam()), torch.tensor([[[[-1.0, 0.0]], [[2.0, 2.0]]]]))


def test_a_new_weighting_is_a_class_not_an_edit(monkeypatch):
    monkeypatch.setattr(cam_module, "_CAM_METHODS", dict(cam_module._CAM_METHODS))

    class ChannelSum(CamWeighting):
        name = "channelsum"

        def weights(self, features, grads):
            return torch.ones_like(features[:, :, :, :1, :1])

    register_cam_method(ChannelSum())
    assert cam_method_names() == ("gradcam", "layercam", "channelsum")
    features, grads = _features_and_grads()
    # the plain channel sums: frame 0 [1 + 3, 2 + 4], frame 1 [0 + 1, 1 + 1]
    assert torch.equal(frame_cams(features, grads, method="channelsum"), torch.tensor([[[[4.0, 6.0]], [[1.0, 2.0]]]]))
    assert TAOptions(cam_method="channelsum").cam_method == "channelsum"


def test_unknown_cam_method_is_refused_by_name():
    features, grads = _features_and_grads()
    with pytest.raises(CamMethodError, match=r"^cam_method: expected one of gradcam, layercam, got 'gradcam\+\+'$"):
        frame_cams(features, grads, method="gradcam++")
    with pytest.raises(ValueError, match="cam_method must be one of 'gradcam', 'layercam'"):
        TAOptions(cam_method="GradCAM")
    with pytest.raises(CamMethodError, match="^--cam-method: expected"):
        cam_weighting("nope", field="--cam-method")


def test_layercam_ta_gradient_matches_finite_differences_second_order():
    # Through relu(grads) the weights depend on x (log-prob score): the exact gradient needs second_order.
    torch.manual_seed(0)
    model = LinearHead2D().double()
    x = torch.rand(2, 3, 3, 5, 5, dtype=torch.float64)
    options = TAOptions(target_rule="true", second_order=True, cam_method="layercam")
    attack = TemporalAdversarialAugmentation(model, options=options)
    _check_against_finite_differences(model, attack, x, torch.tensor([1, 0]))


def test_layercam_changes_the_attack_and_the_analysis_maps():
    torch.manual_seed(0)
    model = Toy2D().eval()
    clips = torch.rand(2, 4, 3, 16, 16)
    labels = torch.tensor([0, 3])
    grad = temporal_gradcam(model, clips, targets=labels)
    layer = temporal_gradcam(model, clips, targets=labels, method="layercam")
    assert layer.cams.shape == grad.cams.shape and not torch.allclose(layer.cams, grad.cams)
    # Toy2D's CAM layer ends in a ReLU, so features >= 0 and LayerCAM's maps (relu(grads) * features) are too.
    assert bool((layer.cams >= 0).all())
    advs = [
        TemporalAdversarialAugmentation(model, options=TAOptions(target_rule="true", cam_method=m))(clips, labels)
        for m in ("gradcam", "layercam")
    ]
    assert not torch.equal(advs[0], advs[1])


def test_config_selects_the_cam_method():
    cfg = config_from_dict({"adversarial": {"method": "taf", "cam_method": "layercam"}})
    assert cfg.adversarial.ta_options() == TAOptions(cam_method="layercam")
    assert config_from_dict({"adversarial": {"method": "taf"}}).adversarial.ta_options() == TAOptions()
    with pytest.raises(ConfigError, match=r"adversarial\.cam_method.*gradcam \| layercam"):
        config_from_dict({"adversarial": {"method": "taf", "cam_method": "gradcampp"}})
