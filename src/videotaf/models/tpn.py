"""TPN (Yang et al. 2020): TSM ResNet + Temporal Pyramid Network neck over res4 and res5, auxiliary res4 head.

Neck (channel counts for ResNet-50; the small variants scale them with the backbone, C5 = res5 channels):
spatial modulation (res4: Conv3d (1,3,3) stride (1,2,2) C4->C5 + BN + ReLU; res5 unchanged), temporal
modulation (per level Conv3d (3,1,1), 32 groups, C5->C5/2, then temporal max-pool by ``temporal_pool``),
cascade flows (top-down: level0 += level1; bottom-up: level1 += Conv3d(3,1,1)(level0)) each followed by a
level fusion (per level 1x1x1 grouped conv + BN + ReLU, concat, 1x1x1 conv to C5 + BN + ReLU), pyramid fusion
(concat 2*C5 -> 1x1x1 conv to C5 + BN + ReLU), then average pool, dropout, fc (std 0.01).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from videotaf.models.base import BackboneClassifier, ModelOutputs
from videotaf.models.registry import register_family
from videotaf.models.resnet import ResNet2d
from videotaf.models.tsm import shift_backbone
from videotaf.models.weights import ReferenceAccuracy, register_key_scheme, register_weights, resnet_release

# mmaction2's TSM and TPN recognisers: ``backbone.conv1.conv.weight``, ``backbone.conv1.bn.*``,
# ``backbone.layer1.0.conv1.conv[.net].weight``, ``backbone.layer1.0.conv1.bn.*``, ``...downsample.conv/bn``,
# ``cls_head.fc_cls.*``; TPN's neck ``neck.spatial_modulation.spatial_modulation.0.0.conv/bn``,
# ``neck.temporal_modulation_ops.i.conv.conv``, ``neck.downsample_ops.0.conv.conv``,
# ``neck.level_fusion_k.downsamples.i.conv.conv/bn``, ``neck.level_fusion_k.fusion_conv.conv/bn``,
# ``neck.pyramid_fusion.conv/bn``, ``neck.aux_head.conv.conv/bn``, ``neck.aux_head.fc``. Our TPN also has
# ``neck.`` keys; only mmaction2 has a ``cls_head`` and a ConvModule-wrapped stem.
register_key_scheme(
    "mmaction2",
    [
        (r"^backbone\.conv1\.conv\.", "backbone.conv1."),
        (r"^backbone\.conv1\.bn\.", "backbone.bn1."),
        (r"\.conv(\d)\.conv\.(net\.)?", r".conv\1."),
        (r"(\.layer\d+\.\d+)\.conv(\d)\.bn\.", r"\1.bn\2."),
        (r"\.downsample\.conv\.", ".downsample.0."),
        (r"\.downsample\.bn\.", ".downsample.1."),
        (r"^cls_head\.fc_cls\.", "fc."),
        (r"^neck\.aux_head\.", "aux_head."),
        (r"^neck\.spatial_modulation\.spatial_modulation\.0\.0\.", "neck.spatial_modulation."),
        (r"^neck\.temporal_modulation_ops\.(\d)\.conv\.conv\.", r"neck.temporal_modulation.\1."),
        (r"^neck\.downsample_ops\.0\.conv\.conv\.", "neck.bottom_up."),
        (r"\.downsamples\.(\d)\.conv\.", r".downsamples.\1."),
    ],
    detect=lambda keys: any(k.startswith("cls_head.") or k.startswith("backbone.conv1.conv.") for k in keys),
    priority=20,
)


class ConvBN3d(nn.Module):
    """Conv3d (no bias) + BN3d + optional ReLU; ``.conv``/``.bn`` mirror mmcv's ConvModule keys."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0, groups: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm3d(cout)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def _groups(channels: int, wanted: int = 32) -> int:
    return math.gcd(channels, wanted)


class LevelFusion(nn.Module):
    """Per-level grouped 1x1x1 conv + BN + ReLU, concat, 1x1x1 conv + BN + ReLU: 2 x (N, M, T', h, w) -> (N, C5, ...)."""

    def __init__(self, mid: int, out: int, levels: int = 2) -> None:
        super().__init__()
        self.downsamples = nn.ModuleList(ConvBN3d(mid, mid, 1, groups=_groups(mid)) for _ in range(levels))
        self.fusion_conv = ConvBN3d(mid * levels, out, 1)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.fusion_conv(torch.cat([d(x) for d, x in zip(self.downsamples, xs)], dim=1))


class TPNNeck(nn.Module):
    """``(res4 (N, C4, T, 2h, 2w), res5 (N, C5, T, h, w)) -> (N, C5, ceil(T/temporal_pool), h, w)``."""

    def __init__(self, c4: int, c5: int, temporal_pool: int = 8) -> None:
        super().__init__()
        mid = c5 // 2
        self.spatial_modulation = ConvBN3d(c4, c5, (1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.temporal_modulation = nn.ModuleList(
            nn.Conv3d(c5, mid, (3, 1, 1), padding=(1, 0, 0), groups=_groups(c5), bias=False) for _ in range(2)
        )
        self.temporal_pool = nn.MaxPool3d((temporal_pool, 1, 1), (temporal_pool, 1, 1), ceil_mode=True)
        self.bottom_up = nn.Conv3d(mid, mid, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.level_fusion_1 = LevelFusion(mid, c5)
        self.level_fusion_2 = LevelFusion(mid, c5)
        self.pyramid_fusion = ConvBN3d(2 * c5, c5, 1)

    def forward(self, res4: torch.Tensor, res5: torch.Tensor) -> torch.Tensor:
        levels = [self.spatial_modulation(res4), res5]
        levels = [self.temporal_pool(op(x)) for op, x in zip(self.temporal_modulation, levels)]
        # Cascade flow: the bottom-up pass starts from the top-down result (mmaction2 flow_type="cascade").
        levels = [levels[0] + levels[1], levels[1]]
        top_down = self.level_fusion_1(levels)
        levels = [levels[0], levels[1] + self.bottom_up(levels[0])]
        bottom_up = self.level_fusion_2(levels)
        return self.pyramid_fusion(torch.cat([top_down, bottom_up], dim=1))


class AuxHead(nn.Module):
    """res4 ``(N, C4, T, 2h, 2w)`` -> Conv3d (1,3,3)/(1,2,2) C4->2*C4 + BN + ReLU, pool, dropout 0.5, fc."""

    def __init__(self, c4: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvBN3d(c4, 2 * c4, (1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(2 * c4, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.conv(x).mean(dim=(2, 3, 4))))


class TPN(BackboneClassifier):
    """TPN on a TSM ResNet. ``(B, T, 3, H, W)`` -> logits ``(B, classes)``.

    ``cam_layer`` = backbone layer4 ``(B*T, C5, H/32, W/32)`` (the neck pools time away). In training mode the
    forward returns :class:`~videotaf.models.base.ModelOutputs` ``(logits, aux_logits)``, the res4 head's logits
    weighted 0.5 in the loss; in eval mode the head is skipped and the forward returns the logits alone.
    """

    aux_loss_weight = 0.5
    backbone: ResNet2d

    def __init__(
        self,
        num_classes: int,
        num_frames: int,
        depth: int = 50,
        width: float = 1.0,
        dropout: float = 0.5,
        shift_div: int = 8,
        shift_place: str = "inplace",
        temporal_pool: int = 8,
    ) -> None:
        backbone = shift_backbone(num_frames, depth, width, shift_div, shift_place)
        c4, c5 = backbone.stage_channels[2], backbone.stage_channels[3]
        # mmaction2 initialises the head fc with N(0, 0.01) and the neck convs with Xavier-uniform.
        super().__init__(num_classes, num_frames, backbone, c5, dropout, fc_std=0.01)
        self.neck = TPNNeck(c4, c5, temporal_pool)
        self.aux_head = AuxHead(c4, num_classes)
        for m in self.neck.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.xavier_uniform_(m.weight)
        nn.init.xavier_uniform_(self.aux_head.conv.conv.weight)

    def forward(self, clips: torch.Tensor) -> torch.Tensor | ModelOutputs:
        self.check_frames(clips)
        b, t = clips.shape[:2]
        res4, res5 = self.backbone.forward_stages(self.normalize(clips).flatten(0, 1))[2:]

        def to5d(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, t, *x.shape[1:]).transpose(1, 2)

        res4, res5 = to5d(res4), to5d(res5)
        # The auxiliary head runs first so that its dropout draws come before the main head's.
        aux_logits = self.aux_head(res4) if self.training else None
        logits = self.fc(self.dropout(self.neck(res4, res5).mean(dim=(2, 3, 4))))
        return logits if aux_logits is None else ModelOutputs(logits, aux_logits)


tpn = register_family("tpn", TPN)

# mmaction2 normalises with the ImageNet statistics on the 0..255 scale (123.675, 116.28, 103.53 / 58.395, ...).
register_weights(
    resnet_release(
        "mmaction2_tsm",
        "tsm",
        "mmaction2",
        8,
        source="open-mmlab/mmaction2 (configs/recognition/tsm model zoo, 0.x: tsm_r50_1x1x8_50e_sth*_rgb)",
        reference=(
            ReferenceAccuracy("Something-Something V1", 8, 44.62, "the config's test pipeline"),
            ReferenceAccuracy("Something-Something V2", 8, 59.91, "the config's test pipeline"),
        ),
    )
)
register_weights(
    resnet_release(
        "mmaction2_tpn",
        "tpn",
        "mmaction2",
        8,
        source="decisionforce/TPN and open-mmlab/mmaction2 (TPN-TSM-R50)",
        reference=(
            ReferenceAccuracy("Something-Something V1", 8, 50.7, "3 crops x 2 clips"),
            ReferenceAccuracy("Something-Something V2", 8, 64.7, "3 crops x 2 clips"),
        ),
    )
)
