"""Any PyTorch video classifier through wrap_model: TA and the TAF step run on it."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from videotaf.attack import TAOptions, TemporalAdversarialAugmentation
from videotaf.bn import convert_dual_bn, strip_dual_bn
from videotaf.cam import temporal_gradcam
from videotaf.models import unwrap_state_dict, wrap_model
from videotaf.objective import build_objective


@pytest.mark.slow
def test_wrapped_torchvision_r3d_runs_taf_and_keeps_keys():
    torch.manual_seed(0)
    net = torchvision.models.video.r3d_18(num_classes=4)
    keys = list(net.state_dict())
    model = wrap_model(net, num_classes=4, num_frames=8, cam_layer="layer4", classifier="fc")
    clips, labels = torch.rand(2, 8, 3, 32, 32), torch.tensor([0, 3])
    assert model(clips).shape == (2, 4)
    assert temporal_gradcam(model.eval(), clips).cams.shape == (2, 1, 2, 2)  # r3d strides time by 8
    model.train()
    convert_dual_bn(model)
    out = build_objective("taf").step(model, clips, labels)
    assert (out.adv_clips - clips).abs().max() <= 64 / 255 + 1e-6
    assert model.classifier is net.fc
    assert list(unwrap_state_dict(strip_dual_bn(model).state_dict())) == keys


def test_wrapped_btchw_model_and_normalisation():
    class PerFrame(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
            self.head = nn.Linear(4, 3)

        def forward(self, x):  # (B, T, C, H, W)
            b, t = x.shape[:2]
            f = self.features(x.flatten(0, 1))
            return self.head(f.mean(dim=(2, 3))).view(b, t, -1).mean(1)

    net = PerFrame()
    model = wrap_model(
        net, num_classes=3, num_frames=4, cam_layer="features", input_layout="BTCHW", mean=(0.5,) * 3, std=(0.5,) * 3
    )
    clips = torch.rand(2, 4, 3, 8, 8)
    assert torch.allclose(model(clips), net(clips * 2 - 1))
    adv = TemporalAdversarialAugmentation(model, options=TAOptions(target_rule="true"))(clips, torch.tensor([0, 1]))
    assert adv.shape == clips.shape and not torch.equal(adv, clips)


def test_wrap_model_names_a_missing_layer():
    with pytest.raises(ValueError, match="'layer9' is not a submodule"):
        wrap_model(torchvision.models.video.r3d_18(), num_classes=400, num_frames=8, cam_layer="layer9")
