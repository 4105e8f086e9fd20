"""Clip transforms of the TSN/TSM protocol on ``(T, 3, H, W)`` tensors; every frame of a clip gets the same crop.

Train (``train_crop``, :func:`train_crop_params`): ``"multiscale"`` (the default, TSN/TSM): multi-scale crop
(scales 1, .875, .75, .66 of the short side, aspect distortion at most one scale step, 13 fixed offsets) then
resize to ``crop_size``; ``"center"``: the test view below, no spatial randomness; ``"none"``: the whole frame
resized to ``crop_size`` x ``crop_size`` (aspect not kept). Then an optional horizontal flip with a left/right
label swap, whichever the crop.
Test: resize the short side to ``scale_size`` then take the centre ``crop_size`` square.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "DEFAULT_SCALES",
    "TRAIN_CROPS",
    "TrainCrop",
    "fixed_crop_offsets",
    "multiscale_crop_params",
    "center_crop_params",
    "train_crop_params",
    "crop_resize",
    "to_float",
]

DEFAULT_SCALES = (1.0, 0.875, 0.75, 0.66)
TrainCrop = Literal["multiscale", "center", "none"]
TRAIN_CROPS: tuple[TrainCrop, ...] = ("multiscale", "center", "none")


def fixed_crop_offsets(image_h: int, image_w: int, crop_h: int, crop_w: int) -> list[tuple[int, int]]:
    """The 13 fixed ``(top, left)`` crop positions: 4 corners, centre, 4 edge middles and 4 inner quarter points."""
    hs = (image_h - crop_h) // 4
    ws = (image_w - crop_w) // 4
    grid = [
        (0, 0), (0, 4), (4, 0), (4, 4), (2, 2),  # corners and centre, as (row step, column step)
        (2, 0), (2, 4), (4, 2), (0, 2),  # edge middles
        (1, 1), (1, 3), (3, 1), (3, 3),  # quarter points
    ]  # fmt: skip
    return [(r * hs, c * ws) for r, c in grid]


def multiscale_crop_params(
    image_h: int,
    image_w: int,
    out_size: int,
    *,
    scales: tuple[float, ...] = DEFAULT_SCALES,
    max_distort: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """Random ``(top, left, height, width)`` of a multi-scale crop.

    Candidate sides are ``int(min(H, W) * s)``; a side within 2 px of ``out_size`` snaps to ``out_size``. Height
    and width come from scales whose positions differ by at most ``max_distort``; the position is one of
    :func:`fixed_crop_offsets`.
    """
    base = min(image_h, image_w)
    sides = [int(base * s) for s in scales]
    sides = [out_size if abs(x - out_size) < 3 else x for x in sides]
    sides = [min(x, base) for x in sides]
    pairs = [(h, w) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= max_distort]
    ch, cw = pairs[int(torch.randint(len(pairs), (1,), generator=generator))]
    offsets = fixed_crop_offsets(image_h, image_w, ch, cw)
    top, left = offsets[int(torch.randint(len(offsets), (1,), generator=generator))]
    return top, left, ch, cw


def center_crop_params(image_h: int, image_w: int, scale_size: int, crop_size: int) -> tuple[int, int, int, int]:
    """Source window ``(top, left, height, width)`` equal to "resize short side to ``scale_size``, centre crop".

    Cropping the window first and resizing only it to ``crop_size`` gives the same view while resizing far fewer
    pixels.
    """
    short = min(image_h, image_w)
    side = min(short, max(1, round(crop_size * short / scale_size)))
    return (image_h - side) // 2, (image_w - side) // 2, side, side


def train_crop_params(
    kind: TrainCrop,
    image_h: int,
    image_w: int,
    crop_size: int,
    scale_size: int,
    *,
    scales: tuple[float, ...] = DEFAULT_SCALES,
    max_distort: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """Source window ``(top, left, height, width)`` of a training clip, resized to ``crop_size`` afterwards.

    ``"multiscale"``: :func:`multiscale_crop_params` (draws two numbers from ``generator``); ``"center"``:
    :func:`center_crop_params`, exactly the test view; ``"none"``: the whole frame. The last two draw nothing,
    so the flip that follows sees the same generator stream whichever of them is used.
    """
    if kind == "multiscale":
        return multiscale_crop_params(
            image_h, image_w, crop_size, scales=scales, max_distort=max_distort, generator=generator
        )
    if kind == "center":
        return center_crop_params(image_h, image_w, scale_size, crop_size)
    if kind == "none":
        return 0, 0, image_h, image_w
    raise ValueError(f"train_crop must be one of {', '.join(map(repr, TRAIN_CROPS))}, got {kind!r}")


def crop_resize(clip: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """Crop ``box = (top, left, h, w)`` from every frame of ``clip (T, 3, H, W)`` and resize to ``(size, size)``.

    Input uint8 or float; output float32 ``(T, 3, size, size)`` in the input's value range. Bilinear,
    antialiased when shrinking. uint8 input is resized in uint8: a channels-last view such as
    ``torch.from_numpy(frames_thwc).permute(0, 3, 1, 2)`` takes PyTorch's vectorised uint8 path, several times
    faster than resizing in float, at the cost of rounding to whole grey levels.
    """
    top, left, h, w = box
    x = clip[:, :, top : top + h, left : left + w]
    if h != size or w != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=h > size or w > size)
    return x.float()


def to_float(clip: torch.Tensor) -> torch.Tensor:
    """uint8-range float ``(T, 3, H, W)`` -> contiguous float in [0, 1] (bilinear overshoot clamped)."""
    return clip.contiguous().div_(255.0).clamp_(0.0, 1.0)
