"""Model registry, contract (shapes, cam_layer), layers and published sizes."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from videotaf.models import available, build, model_options
from videotaf.models.base import ModelOutputs
from videotaf.models.layers import TAM, GSTConv, TemporalShift, gst_split, temporal_shift
from videotaf.models.resnet import ResNet2d

SMALL = {"depth": 18, "width": 0.25}
TV_SMALL = {"tv_mvit_v2_s": {"image_size": 32}}


def small_options(name: str) -> dict:
    return TV_SMALL.get(name, {}) if name.startswith("tv_") else dict(SMALL)


def fold_maps(out: torch.Tensor, batch: int) -> torch.Tensor:
    """cam_layer output -> (B, T', C, h, w): 4-D (B*T', C, h, w) or 5-D (B, C, T', h, w)."""
    if out.dim() == 4:
        return out.view(batch, -1, *out.shape[1:])
    assert out.dim() == 5
    return out.permute(0, 2, 1, 3, 4)


def test_registry_lists_all_paper_models():
    names = available()
    for required in ("tsm", "tpn", "blvnet_tam", "gst", "gst_l", "tv_r3d_18", "tv_mc3_18", "tv_r2plus1d_18", "tv_s3d"):
        assert required in names


def test_unknown_model_and_option_errors():
    with pytest.raises(ValueError, match="available: .*tsm"):
        build("resnet9000", 3, 8)
    with pytest.raises(TypeError, match="'depht'"):
        build("tsm", 3, 8, depht=18)
    assert "imagenet_weights" in model_options("tsm")


# hf: tests/test_models_hf.py; the torchvision transformers and S3D/R(2+1)D take seconds each: slow set.
HEAVY = ("tv_mvit_v2_s", "tv_swin3d_t", "tv_s3d", "tv_r2plus1d_18")


@pytest.mark.parametrize("frames", [8, 16])
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in available() if n != "hf"]
)
def test_output_shape_and_cam_maps(name, frames):
    torch.manual_seed(0)
    model = build(name, 5, frames, **small_options(name)).eval()
    captured = []
    handle = model.cam_layer.register_forward_hook(lambda m, i, o: captured.append(o))
    clips = torch.rand(2, frames, 3, 32, 32)
    with torch.no_grad():
        logits = model(clips)
    handle.remove()
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    assert len(captured) == 1
    maps = fold_maps(captured[0], 2)
    assert maps.shape[0] == 2 and maps.dim() == 5
    expected_t = {"blvnet_tam": frames // 2, "gst": frames, "gst_l": frames, "tsm": frames, "tpn": frames}
    if name in expected_t:
        assert maps.shape[1] == expected_t[name]
    assert model.aux_loss_weight == (0.5 if name == "tpn" else 0.0)
    assert isinstance(model.classifier, torch.nn.Module)


def test_wrong_frame_count_is_rejected():
    model = build("tsm", 3, 8, **SMALL)
    with pytest.raises(ValueError, match="num_frames=8"):
        model(torch.rand(1, 4, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model(torch.rand(1, 8, 32, 32))


def test_cam_gradient_reaches_cam_layer():
    model = build("tsm", 4, 8, **SMALL).eval()
    grads = []
    model.cam_layer.register_full_backward_hook(lambda m, gi, go: grads.append(go[0]))
    model(torch.rand(1, 8, 3, 32, 32))[0, 1].backward()
    assert grads and grads[0].shape[0] == 8 and grads[0].abs().sum() > 0


# ------------------------------------------------------------------------------------------ temporal shift


def test_temporal_shift_moves_the_right_channels():
    n, t, c, h, w = 2, 4, 16, 2, 3
    x = torch.arange(n * t * c * h * w, dtype=torch.float32).view(n * t, c, h, w)
    out = temporal_shift(x, t, fold_div=8).view(n, t, c, h, w)
    v = x.view(n, t, c, h, w)
    fold = c // 8
    for i in range(t):
        if i + 1 < t:
            assert torch.equal(out[:, i, :fold], v[:, i + 1, :fold])
        else:
            assert torch.equal(out[:, i, :fold], torch.zeros_like(out[:, i, :fold]))
        if i > 0:
            assert torch.equal(out[:, i, fold : 2 * fold], v[:, i - 1, fold : 2 * fold])
        else:
            assert torch.equal(out[:, i, fold : 2 * fold], torch.zeros_like(out[:, i, fold : 2 * fold]))
    assert torch.equal(out[:, :, 2 * fold :], v[:, :, 2 * fold :])
    assert torch.equal(TemporalShift(t, 8)(x), out.view(n * t, c, h, w))


def test_temporal_shift_rejects_bad_batch():
    with pytest.raises(ValueError, match="num_segments=3"):
        temporal_shift(torch.zeros(8, 8, 1, 1), 3)


def test_blockres_keeps_residual_unshifted_and_inplace_shifts_it():
    """A block with zeroed residual branch (bn last weight 0) outputs relu(residual): shifted only for inplace."""
    torch.manual_seed(0)
    x = torch.rand(4, 8, 4, 4)  # 1 clip x 4 frames, 8 channels
    for place, shifted in (("raw", False), ("all", True)):
        net = ResNet2d(18, 0.125, temporal=lambda c: TemporalShift(4, 8), residual_input=place).eval()
        block = net.layer1[0]
        torch.nn.init.zeros_(block.bn2.weight)
        torch.nn.init.zeros_(block.bn2.bias)
        expected = torch.relu(temporal_shift(x, 4) if shifted else x)
        assert torch.allclose(block(x), expected)


# --------------------------------------------------------------------------------------------------- TAM


def test_tam_formula_on_hand_made_tensor():
    tam = TAM(channels=2, num_segments=3)
    with torch.no_grad():
        tam.prev.weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
        tam.curr.weight.copy_(torch.tensor([10.0, -1.0]).view(2, 1, 1, 1))
        tam.next.weight.copy_(torch.tensor([100.0, 0.5]).view(2, 1, 1, 1))
    # one clip, 3 frames, channel values: ch0 = [1, 2, 3], ch1 = [4, 5, 6] over time
    x = torch.tensor([[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]).view(3, 2, 1, 1)
    y = tam(x).view(3, 2)
    # y_t = relu(w_prev * x_{t-1} + w_curr * x_t + w_next * x_{t+1}), zeros outside the clip
    expected = torch.tensor(
        [
            [10 * 1 + 100 * 2, max(0.0, -4 + 0.5 * 5)],
            [1 * 1 + 10 * 2 + 100 * 3, 2 * 4 - 5 + 0.5 * 6],
            [1 * 2 + 10 * 3, 2 * 5 - 6],
        ]
    )
    assert torch.allclose(y, expected)


# --------------------------------------------------------------------------------------------------- GST


@pytest.mark.parametrize("beta, cin", [(2, 8), (1, 16)])
def test_gst_channel_split(beta, cin):
    conv = GSTConv(16, 16, alpha=4, beta=beta)
    assert gst_split(16, 16, 4, beta) == (cin, 12, 4)
    assert conv.spatial.weight.shape == (12, cin, 1, 3, 3)
    assert conv.temporal.weight.shape == (4, cin, 3, 3, 3)
    x = torch.rand(1, 16, 3, 5, 5)
    y = conv(x)
    assert y.shape == (1, 16, 3, 5, 5)
    x2 = x.clone()
    x2[:, 8:] += 1.0  # touch only the second half of the input channels
    y2 = conv(x2)
    if beta == 2:  # spatial branch reads the first half only, temporal the second half only
        assert torch.allclose(y[:, :12], y2[:, :12])
        assert not torch.allclose(y[:, 12:], y2[:, 12:])
    else:
        assert not torch.allclose(y[:, :12], y2[:, :12])


def test_gst_model_variants_differ_in_beta():
    assert build("gst", 3, 8, **SMALL).backbone.beta == 2
    assert build("gst_l", 3, 8, **SMALL).backbone.beta == 1


# --------------------------------------------------------------------------------------------------- TPN


def test_tpn_aux_head_only_in_training():
    model = build("tpn", 6, 8, **SMALL)
    clips = torch.rand(2, 8, 3, 32, 32)
    model.train()
    out = model(clips)
    assert isinstance(out, ModelOutputs) and out.logits.shape == out.aux_logits.shape == (2, 6)
    model.eval()
    with torch.no_grad():
        assert model(clips).shape == (2, 6)  # the head is skipped: plain logits


# ------------------------------------------------------------------------- published sizes (meta device)


def _meta_model(name: str, frames: int, classes: int = 174):
    with torch.device("meta"):
        return build(name, classes, frames).eval()


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_published_figures():
    """Measured (174 classes): TSM-R50 23.87 M (mmaction2: 23.9 M); TPN-R50 82.45 M (82.4 M); GST-R50 21.04 M
    (GST paper: 21.0 M); GST-L 29.52 M; bLVNet-TAM-50 25.02 M (paper: 25.0 M)."""
    assert _params(_meta_model("tsm", 8)) == pytest.approx(23.9e6, rel=0.01)
    assert _params(_meta_model("tpn", 8)) == pytest.approx(82.4e6, rel=0.02)
    assert _params(_meta_model("gst", 8)) == pytest.approx(21.0e6, rel=0.01)
    assert _params(_meta_model("blvnet_tam", 16)) == pytest.approx(25.0e6, rel=0.01)
    assert _params(_meta_model("gst_l", 8)) > _params(_meta_model("gst", 8))


def _gmacs(model, frames: int) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, frames, 3, 224, 224, device="meta"))
    return counter.get_total_flops() / 2e9  # one multiply-add counted as one FLOP


def test_flops_match_published_figures():
    """Measured at 224 px, one clip: TSM-R50 8f 32.70 G (mmaction2 32.9), 16f 65.40 G (65.8); GST-R50 8f 29.0 G;
    bLVNet-TAM-50 f8x2 23.85 G (paper 23.8); TPN-R50 8f 41.2 G (mmaction2 lists 54.2 G, counted differently)."""
    assert _gmacs(_meta_model("tsm", 8), 8) == pytest.approx(32.9, rel=0.02)
    assert _gmacs(_meta_model("tsm", 16), 16) == pytest.approx(65.8, rel=0.02)
    assert _gmacs(_meta_model("blvnet_tam", 16), 16) == pytest.approx(23.8, rel=0.02)
