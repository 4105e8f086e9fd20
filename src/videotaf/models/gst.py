"""GST / GST-L (Luo & Yuille 2019): 3-D ResNet with grouped spatial-temporal convs, no temporal striding."""

from __future__ import annotations

import torch

from videotaf.models.base import BackboneClassifier
from videotaf.models.registry import register_model, with_imagenet
from videotaf.models.resnet import ResNet3dGST


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

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.check_frames(clips)
        feats = self.backbone(self.normalize(clips).transpose(1, 2))  # (B, C, T, h, w)
        per_frame = feats.mean(dim=(3, 4)).transpose(1, 2)  # (B, T, C)
        return self.fc(self.dropout(per_frame)).mean(dim=1)


def _gst_factory(beta: int):
    def factory(
        num_classes: int,
        num_frames: int,
        depth: int = 50,
        width: float = 1.0,
        dropout: float = 0.3,
        alpha: int = 4,
        imagenet_weights: str | None = None,
    ) -> GST:
        return with_imagenet(GST(num_classes, num_frames, depth, width, dropout, alpha, beta), imagenet_weights)

    factory.__doc__ = (
        f"GST{'-L' if beta == 1 else ''} (alpha=4, beta={beta}); ``imagenet_weights``: local torchvision ResNet "
        "state dict, inflated with a time axis (spatial conv sliced, temporal conv Kaiming)."
    )
    return factory


gst = register_model("gst")(_gst_factory(beta=2))
gst_l = register_model("gst_l")(_gst_factory(beta=1))
