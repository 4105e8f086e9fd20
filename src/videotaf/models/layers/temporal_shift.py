"""Temporal Shift Module (TSM, Lin et al. 2019): move a fraction of the channels one step along time.

Zero parameters and zero FLOPs; the only cost is memory movement. Frames enter folded into the batch axis,
``(N*T, C, H, W)``, as every 2-D backbone in this package carries them.
"""

from __future__ import annotations

import torch
from torch import nn


def temporal_shift(x: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """Shift ``x`` of shape ``(N*T, C, H, W)`` (``T = num_segments``) along time; returns the same shape.

    With ``fold = C // fold_div``: channels ``[:fold]`` take the *next* frame (``out[:, t] = x[:, t+1]``),
    channels ``[fold:2*fold]`` take the *previous* frame (``out[:, t] = x[:, t-1]``), the rest are unchanged;
    frames shifted in from outside the clip are zeros.
    """
    if x.dim() != 4:
        raise ValueError(f"temporal_shift expects (N*T, C, H, W), got {tuple(x.shape)}")
    nt, c, h, w = x.shape
    if num_segments < 1 or nt % num_segments:
        raise ValueError(f"batch axis {nt} is not a multiple of num_segments={num_segments}")
    if fold_div < 2:
        raise ValueError(f"fold_div must be >= 2, got {fold_div}")
    fold = c // fold_div
    v = x.view(nt // num_segments, num_segments, c, h, w)
    # Built by concatenation (no in-place writes) so autograd and forward hooks see a fresh tensor.
    zeros = v.new_zeros((v.shape[0], 1, fold, h, w))
    earlier = torch.cat((v[:, 1:, :fold], zeros), dim=1)
    later = torch.cat((zeros, v[:, :-1, fold : 2 * fold]), dim=1)
    out = torch.cat((earlier, later, v[:, :, 2 * fold :]), dim=2)
    return out.reshape(nt, c, h, w)


class TemporalShift(nn.Module):
    """Module form of :func:`temporal_shift` (no parameters)."""

    def __init__(self, num_segments: int, fold_div: int = 8) -> None:
        super().__init__()
        self.num_segments = int(num_segments)
        self.fold_div = int(fold_div)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_shift(x, self.num_segments, self.fold_div)

    def extra_repr(self) -> str:
        return f"num_segments={self.num_segments}, fold_div={self.fold_div}"
