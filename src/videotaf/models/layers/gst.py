"""Grouped Spatial-Temporal convolution of GST (Luo & Yuille 2019).

The 3x3 conv of a 3-D ResNet block is split in two: a spatial ``(1,3,3)`` conv on the first ``C_in/beta`` input
channels producing ``C_out*(alpha-1)/alpha`` maps and a temporal ``(3,3,3)`` conv on the last ``C_in/beta``
input channels producing ``C_out/alpha`` maps; both are concatenated. GST: beta=2, alpha=4 (each conv sees half
the channels); GST-L: beta=1, alpha=4 (both see all channels).
"""

from __future__ import annotations

import torch
from torch import nn


def gst_split(in_channels: int, out_channels: int, alpha: int, beta: int) -> tuple[int, int, int]:
    """Return ``(in_per_branch, spatial_out, temporal_out)`` for a GST conv; checks divisibility."""
    if in_channels % beta or out_channels % alpha:
        raise ValueError(
            f"GST split needs in_channels % beta == 0 and out_channels % alpha == 0, got "
            f"in={in_channels}, out={out_channels}, alpha={alpha}, beta={beta}"
        )
    return in_channels // beta, out_channels // alpha * (alpha - 1), out_channels // alpha


class GSTConv(nn.Module):
    """Split spatial/temporal conv: ``(N, C_in, T, H, W) -> (N, C_out, T, H/stride, W/stride)``; no time stride."""

    def __init__(self, in_channels: int, out_channels: int, alpha: int = 4, beta: int = 2, stride: int = 1) -> None:
        super().__init__()
        cin, sout, tout = gst_split(in_channels, out_channels, alpha, beta)
        self.in_channels, self.alpha, self.beta = in_channels, alpha, beta
        self.spatial = nn.Conv3d(cin, sout, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.temporal = nn.Conv3d(cin, tout, (3, 3, 3), stride=(1, stride, stride), padding=(1, 1, 1), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cin = self.in_channels // self.beta
        # beta=2: first half spatial, second half temporal; beta=1: both branches see every channel.
        return torch.cat((self.spatial(x[:, :cin]), self.temporal(x[:, x.shape[1] - cin :])), dim=1)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}"
