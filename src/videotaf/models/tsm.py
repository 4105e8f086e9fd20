"""TSM (Lin et al. 2019): a 2-D ResNet with a temporal shift before conv1 of every residual block."""

from __future__ import annotations

from pathlib import Path

import torch

from videotaf.models.base import BackboneClassifier
from videotaf.models.layers.temporal_shift import TemporalShift
from videotaf.models.registry import register_family
from videotaf.models.resnet import ResNet2d
from videotaf.models.weights import (
    CLASSIFIER_RULES,
    ReferenceAccuracy,
    register_key_scheme,
    register_weights,
    resnet_release,
)

# mit-han-lab/temporal-shift-module: ``module.base_model.layer1.0.conv1.net.weight`` (the shift wraps conv1 as
# ``.net``), ``module.base_model.bn1.*``, ``module.new_fc.*`` (or ``base_model.fc.*`` without dropout).
register_key_scheme(
    "tsm",
    [(r"^base_model\.", "backbone."), (r"\.net\.", ".")] + CLASSIFIER_RULES,
    detect=lambda keys: any(k.startswith("base_model.") for k in keys),
    priority=10,
)

SHIFT_PLACES = {"blockres": "raw", "inplace": "all"}


def shift_backbone(
    num_frames: int,
    depth: int,
    width: float,
    shift_div: int,
    shift_place: str,
    stem: str = "imagenet",
    blocks: tuple[int, ...] | list[int] | None = None,
) -> ResNet2d:
    """ResNet trunk with TSM shifts; ``shift_place`` "blockres" (residual unshifted) or "inplace" (shifted);
    ``stem`` and ``blocks`` as in :class:`~videotaf.models.resnet.ResNet2d`."""
    if shift_place not in SHIFT_PLACES:
        raise ValueError(f"shift_place must be one of {sorted(SHIFT_PLACES)}, got {shift_place!r}")
    return ResNet2d(
        depth,
        width,
        temporal=lambda _c: TemporalShift(num_frames, shift_div),
        residual_input=SHIFT_PLACES[shift_place],
        stem=stem,
        blocks=blocks,
    )


class TSM(BackboneClassifier):
    """TSM-ResNet. ``(B, T, 3, H, W)`` in [0, 1] -> logits ``(B, classes)``; per-frame fc, mean over T.

    ``cam_layer`` = backbone layer4, output ``(B*T, C, H/32, W/32)`` (2048 channels for ResNet-50), or
    ``(B*T, C, H/16, W/16)`` with ``stem="small"``: the small-input variant that keeps a 4x4 last stage at 64 px.
    ``blocks`` sets the residual blocks per stage (e.g. ``[1, 1, 2, 1]``; default: the depth's).
    """

    def __init__(  # size: the family's options, declared once (register_family derives the factory)
        self,
        num_classes: int,
        num_frames: int,
        depth: int = 50,
        width: float = 1.0,
        dropout: float = 0.5,
        shift_div: int = 8,
        shift_place: str = "blockres",
        stem: str = "imagenet",
        blocks: tuple[int, ...] | list[int] | None = None,
    ) -> None:
        backbone = shift_backbone(num_frames, depth, width, shift_div, shift_place, stem, blocks)
        super().__init__(num_classes, num_frames, backbone, backbone.out_channels, dropout, fc_std=0.001)

    def load_imagenet_state(self, state: dict[str, torch.Tensor], path: str | Path) -> None:
        """The torchvision ResNet file; refused for the small stem, whose 3x3 conv1 has no ImageNet weights."""
        if self.backbone.stem != "imagenet":
            raise ValueError(f"imagenet_weights need stem='imagenet' (a 7x7 conv1), got stem={self.backbone.stem!r}")
        super().load_imagenet_state(state, path)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.check_frames(clips)
        b, t = clips.shape[:2]
        feats = self.backbone(self.normalize(clips).flatten(0, 1))
        logits = self.fc(self.dropout(feats.mean(dim=(2, 3))))
        return logits.view(b, t, -1).mean(dim=1)


tsm = register_family("tsm", TSM)

register_weights(
    resnet_release(
        "tsm_release",
        "tsm",
        "tsm",
        8,
        source="mit-han-lab/temporal-shift-module (README, Something-Something tables)",
        reference=(
            ReferenceAccuracy("Something-Something V1", 8, 45.6, "1 centre crop x 1 clip"),
            ReferenceAccuracy("Something-Something V1", 16, 47.2, "1 centre crop x 1 clip"),
            ReferenceAccuracy("Something-Something V2", 8, 61.2, "full resolution x 2 clips"),
            ReferenceAccuracy("Something-Something V2", 16, 63.1, "full resolution x 2 clips"),
        ),
    )
)
