"""Mean/std normalisation as the model's first layer.

Clips enter every videotaf model as ``(B, T, 3, H, W)`` in [0, 1]. Keeping the normalisation inside the model
means that an attack budget such as eps = 64/255 lives in raw pixel space, as the paper measures it (Eq. 6).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """``(x - mean) / std`` over the channel axis of ``(B, T, C, H, W)`` clips; buffers only, no parameters.

    The buffers are not persistent, so checkpoints keep the keys of the original architectures.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 1, -1, 1, 1), False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 1, -1, 1, 1), False)

    mean: torch.Tensor
    std: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"expected clips of shape (B, T, C, H, W), got {tuple(x.shape)}")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
