"""Temporal Aggregation Module (TAM) of bLVNet-TAM (Fan et al. 2019, "More Is Less").

``y_t = ReLU(w_prev * x_{t-1} + w_curr * x_t + w_next * x_{t+1})`` with per-channel (depthwise 1x1) weights and
zero padding in time. Frames are folded into the batch axis: ``(N*T, C, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TAM(nn.Module):
    """Three depthwise 1x1 convs over frames t-1, t, t+1, summed, then ReLU. Shape ``(N*T, C, H, W)`` kept.

    Sub-module names ``prev``/``curr``/``next`` follow the official release so checkpoints map one to one.
    """

    def __init__(self, channels: int, num_segments: int) -> None:
        super().__init__()
        self.num_segments = int(num_segments)
        self.prev = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
        self.curr = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
        self.next = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt = x.shape[0]
        t = self.num_segments
        if nt % t:
            raise ValueError(f"TAM: batch axis {nt} is not a multiple of num_segments={t}")
        p = self.prev(x).view(nt // t, t, *x.shape[1:])
        c = self.curr(x).view(nt // t, t, *x.shape[1:])
        n = self.next(x).view(nt // t, t, *x.shape[1:])
        # Frame t receives prev(x_{t-1}) and next(x_{t+1}); missing neighbours at the clip ends are zeros.
        p = F.pad(p, (0, 0, 0, 0, 0, 0, 1, 0))[:, :-1]
        n = F.pad(n, (0, 0, 0, 0, 0, 0, 0, 1))[:, 1:]
        return F.relu(p + c + n).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"num_segments={self.num_segments}"
