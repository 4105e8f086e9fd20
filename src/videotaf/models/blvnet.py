"""bLVNet-TAM (Fan et al. 2019, "More Is Less"): Big-Little ResNet with Temporal Aggregation Modules.

Frames are paired (2k, 2k+1): the odd frame runs through the *big* branch (full width, first block stride 2),
the even frame through the *little* branch (width/alpha, ``max(1, blocks//beta - 1)`` blocks); the big output
is upsampled to the little one's size and added, one fusion block follows, and the result is copied to both
frames of the pair. TAM sits after the stem, at the input of each bL module (layer1..3) and before conv1 of
every layer4 block; layer4 runs on the T/2 big frames only. "f8x2" means 16 input frames. Module names follow
the official release (``b_conv0``, ``l_conv0``, ``layerK.big/little/little_e/fusion/tam``) for checkpoint import.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from videotaf.models.base import BackboneClassifier
from videotaf.models.layers.tam import TAM
from videotaf.models.registry import register_family
from videotaf.models.resnet import BASE_CHANNELS, TemporalBlock, init_conv_bn, resolve_arch, scale_channels
from videotaf.models.weights import (
    CLASSIFIER_RULES,
    ReferenceAccuracy,
    load_backbone_state,
    register_key_scheme,
    register_weights,
    resnet_release,
)

# IBM/bLVNet-TAM: ``module.baseline_model.<bLResNet keys>`` (``b_conv0``, ``layer1.big.0...``, ``layer1.tam.prev``,
# ``layer4.0.tam.curr``), ``module.new_fc.*``.
register_key_scheme(
    "blvnet",
    [(r"^baseline_model\.", "backbone."), (r"(\.layer4\.\d+)\.tam\.", r"\1.temporal.")] + CLASSIFIER_RULES,
    detect=lambda keys: any(k.startswith("baseline_model.") for k in keys),
    priority=30,
)


def _bl_layer(
    block: type[TemporalBlock],
    inplanes: int,
    out: int,
    blocks: int,
    stride: int = 1,
    last_relu: bool = True,
    tam_frames: int | None = None,
) -> nn.Sequential:
    """Blocks with ``out`` output channels; downsample = [AvgPool(3, 2, 1) if strided] + [1x1 conv + BN if the
    width changes] as in bLResNet (so the key index of the conv is 1 when the pool is present)."""
    ds: list[nn.Module] = []
    if stride != 1:
        ds.append(nn.AvgPool2d(3, stride=2, padding=1))
    if inplanes != out:
        ds += [nn.Conv2d(inplanes, out, 1, bias=False), nn.BatchNorm2d(out)]
    planes = out // block.expansion

    def make(cin: int, s: int, d: nn.Module | None, lr: bool) -> nn.Module:
        tam = TAM(cin, tam_frames) if tam_frames is not None else None
        return block(cin, planes, s, d, temporal=tam, residual_input="downsample", last_relu=lr)

    # The first block always ends in ReLU; with a single block the official code ignores last_relu too.
    layers = [make(inplanes, stride, nn.Sequential(*ds) if ds else None, True)]
    for i in range(1, blocks):
        layers.append(make(out, 1, None, last_relu if i == blocks - 1 else True))
    return nn.Sequential(*layers)


def _pairs(x: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N*T, C, H, W)`` -> (little = even frames, big = odd frames), each ``(N*T/2, C, H, W)``."""
    v = x.view(-1, num_frames // 2, 2, *x.shape[1:])
    return v[:, :, 0].flatten(0, 1), v[:, :, 1].flatten(0, 1)


def _to_both(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``(N*T/2, C, H, W)`` -> ``(N*T, C, H, W)`` with each fused map copied to both frames of its pair."""
    v = x.view(-1, num_frames // 2, 1, *x.shape[1:])
    return v.expand(-1, -1, 2, *x.shape[1:]).reshape(-1, *x.shape[1:])


class BLModule(nn.Module):
    """One bL stage: ``(N*T, C_in, H, W) -> (N*T, C_out, H/stride, W/stride)``."""

    def __init__(
        self, block, in_ch: int, out_ch: int, blocks: int, alpha: int, beta: int, stride: int, num_frames: int
    ) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.big = _bl_layer(block, in_ch, out_ch, max(1, blocks - 1), 2, last_relu=False)
        self.little = _bl_layer(block, in_ch, out_ch // alpha, max(1, blocks // beta - 1))
        self.little_e = nn.Sequential(nn.Conv2d(out_ch // alpha, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        self.fusion = _bl_layer(block, out_ch, out_ch, 1, stride)
        self.tam = TAM(in_ch, num_frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        little, big = _pairs(self.tam(x), self.num_frames)
        little = self.little_e(self.little(little))
        big = F.interpolate(self.big(big), size=little.shape[2:])
        return _to_both(self.fusion(torch.relu(big + little)), self.num_frames)


class BLResNet(nn.Module):
    """bLResNet trunk with TAM: ``(N*T, 3, H, W) -> (N*T/2, C5, H/32, W/32)`` (layer4 on big frames)."""

    def __init__(self, num_frames: int, depth: int = 50, width: float = 1.0, alpha: int = 2, beta: int = 4) -> None:
        super().__init__()
        if num_frames % 2:
            raise ValueError(f"bLVNet-TAM pairs frames (big/little); num_frames must be even, got {num_frames}")
        block, layers = resolve_arch(depth)
        chans = [scale_channels(c, width) for c in BASE_CHANNELS]
        c0 = chans[0]
        if c0 % alpha:
            raise ValueError(f"stem width {c0} is not divisible by alpha={alpha}")
        self.num_frames = num_frames
        self.conv1 = nn.Conv2d(3, c0, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c0)
        self.b_conv0 = nn.Conv2d(c0, c0, 3, 2, 1, bias=False)
        self.bn_b0 = nn.BatchNorm2d(c0)
        self.l_conv0 = nn.Conv2d(c0, c0 // alpha, 3, 1, 1, bias=False)
        self.bn_l0 = nn.BatchNorm2d(c0 // alpha)
        self.l_conv1 = nn.Conv2d(c0 // alpha, c0 // alpha, 3, 2, 1, bias=False)
        self.bn_l1 = nn.BatchNorm2d(c0 // alpha)
        self.l_conv2 = nn.Conv2d(c0 // alpha, c0, 1, bias=False)
        self.bn_l2 = nn.BatchNorm2d(c0)
        self.bl_init = nn.Conv2d(c0, c0, 1, bias=False)
        self.bn_bl_init = nn.BatchNorm2d(c0)
        self.tam = TAM(c0, num_frames)
        e = block.expansion
        outs = [c * e for c in chans]
        self.layer1 = BLModule(block, c0, outs[0], layers[0], alpha, beta, 2, num_frames)
        self.layer2 = BLModule(block, outs[0], outs[1], layers[1], alpha, beta, 2, num_frames)
        self.layer3 = BLModule(block, outs[1], outs[2], layers[2], alpha, beta, 1, num_frames)
        self.layer4 = _bl_layer(block, outs[2], outs[3], layers[3], 2, tam_frames=num_frames // 2)
        self.out_channels = outs[3]
        init_conv_bn(self)
        # Zero-init of the last BN of each block, as in the release (about +0.2% according to its authors).
        for m in self.modules():
            if hasattr(m, "bn3") and isinstance(m.bn3, nn.BatchNorm2d):
                nn.init.zeros_(m.bn3.weight)

    def _layer0(self, x: torch.Tensor) -> torch.Tensor:
        little, big = _pairs(self.tam(x), self.num_frames)
        bx = self.bn_b0(self.b_conv0(big))
        lx = torch.relu(self.bn_l0(self.l_conv0(little)))
        lx = torch.relu(self.bn_l1(self.l_conv1(lx)))
        lx = self.bn_l2(self.l_conv2(lx))
        fused = torch.relu(self.bn_bl_init(self.bl_init(torch.relu(bx + lx))))
        return _to_both(fused, self.num_frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(self._layer0(x))))
        # Both frames of a pair hold the same map after layer3; layer4 sees the (odd) big frames.
        return self.layer4(_pairs(x, self.num_frames)[1])


class BLVNetTAM(BackboneClassifier):
    """bLVNet-TAM. ``(B, T, 3, H, W)`` (T even; f8x2 = 16) -> logits; per-frame fc over T/2 frames, averaged.

    ``cam_layer`` = backbone layer4, output ``(B*T/2, C5, H/32, W/32)``.
    """

    def __init__(
        self,
        num_classes: int,
        num_frames: int,
        depth: int = 50,
        width: float = 1.0,
        dropout: float = 0.5,
        alpha: int = 2,
        beta: int = 4,
    ) -> None:
        backbone = BLResNet(num_frames, depth, width, alpha, beta)
        super().__init__(num_classes, num_frames, backbone, backbone.out_channels, dropout, fc_std=0.001)

    def load_imagenet_state(self, state: dict[str, torch.Tensor], path: str | Path) -> None:
        """The authors' ImageNet bLResNet checkpoint (same keys as our backbone); the TAMs are not in it."""
        load_backbone_state(self.backbone, state, path, skip=lambda k: "tam." in k or ".temporal." in k)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.check_frames(clips)
        b = clips.shape[0]
        feats = self.backbone(self.normalize(clips).flatten(0, 1))
        logits = self.fc(self.dropout(feats.mean(dim=(2, 3))))
        return logits.view(b, -1, logits.shape[-1]).mean(dim=1)


blvnet_tam = register_family("blvnet_tam", BLVNetTAM)

register_weights(
    resnet_release(
        "blvnet_tam_release",
        "blvnet_tam",
        "blvnet",
        16,
        source="IBM/bLVNet-TAM (f8x2 = 16 input frames)",
        reference=(
            ReferenceAccuracy("Something-Something V1", 16, 46.4, "1 crop x 1 clip"),
            ReferenceAccuracy("Something-Something V1", 32, 48.4, "1 crop x 1 clip"),
            ReferenceAccuracy("Something-Something V2", 16, 59.1, "1 crop x 1 clip"),
            ReferenceAccuracy("Something-Something V2", 32, 61.7, "1 crop x 1 clip"),
        ),
    )
)
