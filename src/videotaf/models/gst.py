"""GST / GST-L (Luo & Yuille 2019): 3-D ResNet with grouped spatial-temporal convs, no temporal striding."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from videotaf.models.base import BackboneClassifier
from videotaf.models.registry import register_family
from videotaf.models.resnet import ResNet3dGST
from videotaf.models.weights import (
    CLASSIFIER_RULES,
    CheckpointMismatchError,
    ReferenceAccuracy,
    load_backbone_state,
    register_key_scheme,
    register_weights,
    resnet_release,
)

# chenxuluo/GST-video: ``module.base_model.layer1.0.conv2.weight`` (spatial) and ``...Tconv.weight`` (temporal),
# ``module.new_fc.*``. Tried before TSM's scheme, which shares the ``base_model.`` prefix.
register_key_scheme(
    "gst",
    [
        (r"^base_model\.", "backbone."),
        (r"(\.layer\d+\.\d+)\.conv2\.weight$", r"\1.conv2.spatial.weight"),
        (r"(\.layer\d+\.\d+)\.Tconv\.weight$", r"\1.conv2.temporal.weight"),
    ]
    + CLASSIFIER_RULES,
    detect=lambda keys: (
        any(k.startswith("base_model.") for k in keys) and any(k.endswith(".Tconv.weight") for k in keys)
    ),
    priority=15,
)


def inflate_gst_state(imagenet: dict[str, torch.Tensor], backbone: nn.Module) -> dict[str, torch.Tensor]:
    """Map a 2-D torchvision ResNet state dict onto a GST 3-D backbone.

    Every conv gets a time axis of length 1; the 3x3 conv feeding a GST split becomes the spatial branch,
    sliced ``[:out*(alpha-1)/alpha, :in/beta]``; the temporal branch is absent here (keeps its Kaiming init).
    """
    own = backbone.state_dict()
    out = {}
    for key, target in own.items():
        if ".temporal." in key or key.endswith("num_batches_tracked"):
            continue
        src_key = key.replace(".spatial.", ".")
        if src_key not in imagenet:
            continue
        w = imagenet[src_key]
        if target.dim() == 5 and w.dim() == 4:
            w = w.unsqueeze(2)
        if ".spatial." in key:
            o, i = target.shape[:2]
            if w.shape[0] < o or w.shape[1] < i:
                raise CheckpointMismatchError(f"{src_key}: {tuple(w.shape)} too small for {tuple(target.shape)}")
            w = w[:o, :i]
        out[key] = w.contiguous()
    return out


class GST(BackboneClassifier):
    """GST. ``(B, T, 3, H, W)`` -> logits; per-frame spatial pool + fc, averaged over T.

    ``cam_layer`` = backbone layer4, output ``(B, C5, T, H/32, W/32)``.
    """

    def __init__(
        self,
        num_classes: int,
        num_frames: int,
        depth: int = 50,
        width: float = 1.0,
        dropout: float = 0.3,
        alpha: int = 4,
        beta: int = 2,
    ) -> None:
        backbone = ResNet3dGST(depth, width, alpha, beta)
        super().__init__(num_classes, num_frames, backbone, backbone.out_channels, dropout, fc_std=0.001)

    def load_imagenet_state(self, state: dict[str, torch.Tensor], path: str | Path) -> None:
        """The 2-D torchvision ResNet file, inflated (:func:`inflate_gst_state`); the temporal branch keeps its init."""
        load_backbone_state(
            self.backbone, inflate_gst_state(state, self.backbone), path, skip=lambda k: ".temporal." in k
        )

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.check_frames(clips)
        feats = self.backbone(self.normalize(clips).transpose(1, 2))  # (B, C, T, h, w)
        per_frame = feats.mean(dim=(3, 4)).transpose(1, 2)  # (B, T, C)
        return self.fc(self.dropout(per_frame)).mean(dim=1)


gst = register_family("gst", GST, beta=2)
gst_l = register_family("gst_l", GST, beta=1)

_GST_SOURCE = "chenxuluo/GST-video (paper Table: centre crop, 1 clip)"
register_weights(
    resnet_release(
        "gst_release",
        "gst",
        "gst",
        8,
        source=_GST_SOURCE,
        reference=(
            ReferenceAccuracy("Something-Something V1", 8, 47.0, "1 centre crop x 1 clip"),
            ReferenceAccuracy("Something-Something V1", 16, 48.6, "1 centre crop x 1 clip"),
            ReferenceAccuracy("Something-Something V2", 8, 61.6, "1 centre crop x 1 clip"),
            ReferenceAccuracy("Something-Something V2", 16, 62.6, "1 centre crop x 1 clip"),
        ),
    )
)
register_weights(
    resnet_release(
        "gst_l_release",
        "gst_l",
        "gst",
        8,
        source=_GST_SOURCE,
        reference=(
            ReferenceAccuracy("Something-Something V1", 8, 47.7, "1 centre crop x 1 clip"),
            ReferenceAccuracy("Something-Something V2", 8, 62.0, "1 centre crop x 1 clip"),
        ),
    )
)
