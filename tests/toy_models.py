"""Tiny video classifiers for tests of the TAF core: one per CAM-layer layout of the model contract."""

from __future__ import annotations

import torch
from torch import nn

from videotaf.bn import convert_dual_bn
from videotaf.models.base import VideoClassifier
from videotaf.models.layers import Normalize

MAIN = ["stem.0", "stem.1", "block.0", "block.1", "fc"]  # Toy2D's layers with parameters, in forward order
AUX = ["stem.0", "stem.1.aux_bn", "block.0", "block.1.aux_bn", "fc"]  # the same through the auxiliary BN


class Toy2D(VideoClassifier):
    """Frames through a 2-D conv net with a crude temporal mix; CAM layer output ``(B*T, C, h, w)``."""

    def __init__(self, num_classes: int = 5, num_frames: int = 4, width: int = 8, bn: bool = True) -> None:
        super().__init__(num_classes, num_frames)
        self.normalize = Normalize()
        norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), norm(width), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), norm(width), nn.ReLU())
        self.fc = nn.Linear(width, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.block

    @property
    def classifier(self) -> nn.Module:
        return self.fc

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.check_input(clips)
        b, t = clips.shape[:2]
        x = self.normalize(clips).flatten(0, 1)
        x = self.stem(x)
        # A temporal mix so that frames interact, as in any video model.
        x5 = x.view(b, t, *x.shape[1:])
        x = (x5 + x5.roll(1, dims=1) * 0.5).flatten(0, 1)
        x = self.block(x)
        logits = self.fc(x.mean(dim=(2, 3)))
        return logits.view(b, t, -1).mean(dim=1)


class Toy3D(VideoClassifier):
    """A 3-D conv net; CAM layer output ``(B, C, T, h, w)``."""

    def __init__(self, num_classes: int = 5, num_frames: int = 4, width: int = 8) -> None:
        super().__init__(num_classes, num_frames)
        self.normalize = Normalize()
        self.stem = nn.Sequential(nn.Conv3d(3, width, (3, 3, 3), (1, 2, 2), 1), nn.BatchNorm3d(width), nn.ReLU())
        self.block = nn.Sequential(nn.Conv3d(width, width, 3, 1, 1), nn.BatchNorm3d(width), nn.ReLU())
        self.fc = nn.Linear(width, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.block

    @property
    def classifier(self) -> nn.Module:
        return self.fc

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.check_input(clips)
        x = self.normalize(clips).transpose(1, 2)
        x = self.block(self.stem(x))
        return self.fc(x.mean(dim=(2, 3, 4)))


class LinearHead2D(VideoClassifier):
    """Conv features and a linear head with no normalisation between: Grad-CAM weights for ``score="logit"``
    do not depend on the input, so the first-order CAM-loss gradient is exact (finite-difference checks)."""

    def __init__(self, num_classes: int = 3, num_frames: int = 3, width: int = 4) -> None:
        super().__init__(num_classes, num_frames)
        self.conv = nn.Conv2d(3, width, 3, 1, 1)
        self.act = nn.Tanh()
        self.fc = nn.Linear(width, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.act

    @property
    def classifier(self) -> nn.Module:
        return self.fc

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        b, t = clips.shape[:2]
        x = self.act(self.conv(clips.flatten(0, 1)))
        return self.fc(x.mean(dim=(2, 3))).view(b, t, -1).mean(dim=1)


def ddp_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed 4-clip batch of the DDP objective tests (split 2 + 2 over two processes)."""
    g = torch.Generator().manual_seed(3)
    return torch.rand(4, 4, 3, 12, 12, generator=g), torch.tensor([0, 1, 2, 3])


def dual_bn_toy2d(bn: bool) -> Toy2D:
    """A seeded :class:`Toy2D` (with or without BatchNorm) converted to dual BN, as TAF trains it."""
    torch.manual_seed(0)
    return convert_dual_bn(Toy2D(bn=bn))
