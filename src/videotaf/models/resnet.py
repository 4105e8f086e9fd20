"""Shared ResNet backbone builder for TSM, TPN, bLVNet-TAM (blocks) and GST (3-D variant).

One code path serves the full (depth 50, width 1) and the small CPU variants (depth 18, width 0.25): depth picks
the block type and counts, ``width`` scales every channel count. Module names follow torchvision's ResNet
(``conv1``, ``bn1``, ``layerK.i.convJ``, ``downsample.0/1``) so ImageNet state dicts load key for key.

A block may carry a ``temporal`` op (temporal shift or TAM) applied to its input before ``conv1``;
``residual_input`` says which residual paths see the temporally mixed input:

- ``"raw"``: neither (TSM "blockres": the identity/downsample path sees the unshifted input);
- ``"downsample"``: only the downsample branch (bLVNet-TAM's blocks);
- ``"all"``: both (an in-place shift as in the TPN code, "inplace").
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from videotaf.models.layers.gst import GSTConv

TemporalFactory = Callable[[int], "nn.Module | None"]

ARCH: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}
BASE_CHANNELS = (64, 128, 256, 512)
RESIDUAL_INPUTS = ("raw", "downsample", "all")
# Input-to-layer1 stride of each stem. "imagenet": torchvision's 7x7 stride-2 conv + 3x3 stride-2 max-pool
# (overall stride 32, the paper's models); "small": one 3x3 stride-2 conv and no max-pool (overall stride 16), so
# that small CPU inputs keep a spatial last stage (64 px -> 4x4 instead of 2x2; issue: "where TAF pays").
STEMS = {"imagenet": 4, "small": 2}


def scale_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded to a multiple of 8 (at least 8), so shift folds, GST splits and the
    32-group convs of the TPN neck stay integral in the small variants."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(8, int(round(channels * width / 8)) * 8)


def resolve_arch(
    depth: int, blocks: tuple[int, ...] | list[int] | None = None
) -> tuple[type[TemporalBlock], tuple[int, int, int, int]]:
    """Block class and block counts of a ResNet depth (18/34: BasicBlock, 50/101: Bottleneck).

    ``blocks`` replaces the depth's counts per stage (four integers >= 1, e.g. ``(1, 1, 2, 1)``: a 5-block
    basic-block net); the depth still picks the block type.
    """
    if depth not in ARCH:
        raise ValueError(f"depth must be one of {sorted(ARCH)}, got {depth}")
    kind, layers = ARCH[depth]
    if blocks is not None:
        if len(blocks) != 4 or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in blocks):
            raise ValueError(f"blocks must be four integers >= 1 (blocks per stage), got {list(blocks)}")
        layers = (blocks[0], blocks[1], blocks[2], blocks[3])
    return (BasicBlock if kind == "basic" else Bottleneck), layers


def build_stem(stem: str, out_channels: int) -> tuple[nn.Conv2d, nn.Module]:
    """``(conv1, maxpool)`` of a stem in :data:`STEMS`; the small stem's max-pool is an identity, so module names
    (and the state-dict keys of every later layer) are the same for both stems."""
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {sorted(STEMS)}, got {stem!r}")
    if stem == "small":
        return nn.Conv2d(3, out_channels, 3, 2, 1, bias=False), nn.Identity()
    return nn.Conv2d(3, out_channels, 7, 2, 3, bias=False), nn.MaxPool2d(3, 2, 1)


class TemporalBlock(nn.Module):
    expansion: int
    temporal: nn.Module | None
    downsample: nn.Module | None

    def _setup(self, temporal: nn.Module | None, residual_input: str, last_relu: bool) -> None:
        if residual_input not in RESIDUAL_INPUTS:
            raise ValueError(f"residual_input must be one of {RESIDUAL_INPUTS}, got {residual_input!r}")
        self.temporal = temporal
        self.residual_input = residual_input
        self.last_relu = last_relu

    def _mixed_and_residual(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.temporal(x) if self.temporal is not None else x
        if self.residual_input == "all" or (self.residual_input == "downsample" and self.downsample is not None):
            res = y
        else:
            res = x
        if self.downsample is not None:
            res = self.downsample(res)
        return y, res

    def _finish(self, out: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
        out = out + res
        return torch.relu(out) if self.last_relu else out


class BasicBlock(TemporalBlock):
    """Two 3x3 convs (ResNet-18/34). ``(N, inplanes, H, W) -> (N, planes, H/stride, W/stride)``."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        temporal: nn.Module | None = None,
        residual_input: str = "raw",
        last_relu: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self._setup(temporal, residual_input, last_relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, res = self._mixed_and_residual(x)
        out = self.relu(self.bn1(self.conv1(y)))
        out = self.bn2(self.conv2(out))
        return self._finish(out, res)


class Bottleneck(TemporalBlock):
    """1x1 -> 3x3 (stride) -> 1x1 (ResNet-50/101). ``(N, inplanes, H, W) -> (N, 4*planes, H/s, W/s)``."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        temporal: nn.Module | None = None,
        residual_input: str = "raw",
        last_relu: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self._setup(temporal, residual_input, last_relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, res = self._mixed_and_residual(x)
        out = self.relu(self.bn1(self.conv1(y)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self._finish(out, res)


def init_conv_bn(module: nn.Module) -> None:
    """Kaiming-normal (fan_out) convs, BN weight 1 / bias 0 — the init of torchvision and the four repos."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet2d(nn.Module):
    """2-D ResNet trunk (no pool/fc) on frames folded into the batch: ``(N*T, 3, H, W) -> (N*T, C5, H/s, W/s)``.

    ``s`` is 32 with the ImageNet stem and 16 with ``stem="small"`` (:data:`STEMS`); ``blocks`` overrides the
    depth's block counts per stage (:func:`resolve_arch`). ``temporal(in_channels)`` builds the op placed before
    ``conv1`` of every block of layer1..layer4.
    """

    def __init__(
        self,
        depth: int = 50,
        width: float = 1.0,
        temporal: TemporalFactory | None = None,
        residual_input: str = "raw",
        stem: str = "imagenet",
        blocks: tuple[int, ...] | list[int] | None = None,
    ) -> None:
        super().__init__()
        block, layers = resolve_arch(depth, blocks)
        chans = [scale_channels(c, width) for c in BASE_CHANNELS]
        self.depth, self.width, self.stem = depth, width, stem
        conv1, pool = build_stem(stem, chans[0])
        self.conv1 = conv1
        self.bn1 = nn.BatchNorm2d(chans[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = pool
        inplanes = chans[0]
        stage_channels = []
        for i, (planes, n) in enumerate(zip(chans, layers)):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion),
                )
            stage_blocks: list[nn.Module] = []
            for j in range(n):
                stage_blocks.append(
                    block(
                        inplanes,
                        planes,
                        stride if j == 0 else 1,
                        downsample if j == 0 else None,
                        temporal=temporal(inplanes) if temporal is not None else None,
                        residual_input=residual_input,
                    )
                )
                inplanes = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage_blocks))
            stage_channels.append(inplanes)
        self.stage_channels = tuple(stage_channels)
        self.out_channels = inplanes
        init_conv_bn(self)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of layer1..layer4, each ``(N*T, C_k, h_k, w_k)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)[-1]


# ----------------------------------------------------------------------------------------------- 3-D (GST)


class GSTBasicBlock(nn.Module):
    """3-D BasicBlock whose first 3x3 conv is a :class:`GSTConv`; the second is ``(1,3,3)``. No time stride."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, alpha: int, beta: int, stride: int = 1, downsample=None) -> None:
        super().__init__()
        self.conv1 = GSTConv(inplanes, planes, alpha, beta, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(planes, planes, (1, 3, 3), padding=(0, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        res = self.downsample(x) if self.downsample is not None else x
        return torch.relu(out + res)


class GSTBottleneck(nn.Module):
    """GST Bottleneck: 1x1x1 conv1, :class:`GSTConv` as conv2 (spatial + temporal, concatenated), 1x1x1 conv3."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, alpha: int, beta: int, stride: int = 1, downsample=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = GSTConv(planes, planes, alpha, beta, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = self.downsample(x) if self.downsample is not None else x
        return torch.relu(out + res)


class ResNet3dGST(nn.Module):
    """3-D ResNet trunk of GST without temporal striding: ``(N, 3, T, H, W) -> (N, C5, T, H/32, W/32)``.

    Stem: conv ``(1,7,7)`` stride ``(1,2,2)``, max-pool ``(1,3,3)`` stride ``(1,2,2)``.
    """

    def __init__(self, depth: int = 50, width: float = 1.0, alpha: int = 4, beta: int = 2) -> None:
        super().__init__()
        block2d, layers = resolve_arch(depth)
        block = GSTBasicBlock if block2d is BasicBlock else GSTBottleneck
        chans = [scale_channels(c, width) for c in BASE_CHANNELS]
        self.depth, self.width, self.alpha, self.beta = depth, width, alpha, beta
        self.conv1 = nn.Conv3d(3, chans[0], (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(chans[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        inplanes = chans[0]
        for i, (planes, n) in enumerate(zip(chans, layers)):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv3d(inplanes, planes * block.expansion, 1, (1, stride, stride), bias=False),
                    nn.BatchNorm3d(planes * block.expansion),
                )
            blocks = []
            for j in range(n):
                blocks.append(
                    block(inplanes, planes, alpha, beta, stride if j == 0 else 1, downsample if j == 0 else None)
                )
                inplanes = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.out_channels = inplanes
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = self.get_submodule(name)(x)
        return x
