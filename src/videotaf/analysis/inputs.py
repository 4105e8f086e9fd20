"""Inputs of the analysis commands: one clip from a video file or frame folder, and evaluation datasets.

A single video is read like a test item of the datasets (Sec. 4.1 protocol): TSN test sampling of ``T`` frames
(the centre of each of ``T`` equal segments), short side resized to ``scale_size``, centre crop ``crop_size``.
Decoding uses the data layer (:mod:`videotaf.data.decode`) when it is importable and PyAV directly otherwise.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from videotaf.data import DataConfig, build_dataset
from videotaf.data.decode import decode_video_frames, video_frame_count

__all__ = ["load_video_clip", "test_indices", "eval_dataset", "class_names"]


def test_indices(num_video_frames: int, num_frames: int) -> list[int]:
    """0-based TSN test indices: frame k = ``int(tick / 2 + tick * k)`` with ``tick = n / T`` (repeats when
    ``n < T``)."""
    if num_video_frames < 1:
        raise ValueError(f"video has {num_video_frames} frames; need at least 1")
    tick = num_video_frames / num_frames
    return [min(num_video_frames - 1, int(tick / 2 + tick * k)) for k in range(num_frames)]


def _read_frames(path: Path, num_frames: int) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` sampled frames of a video file or a folder of numbered JPEGs."""
    if path.is_dir():
        files = _numbered_jpegs(path)
        if not files:
            raise ValueError(f"{path}: folder holds no numbered JPEG frames (e.g. img_00001.jpg)")
        picked = [files[i] for i in test_indices(len(files), num_frames)]
        frames = []
        for f in picked:
            with Image.open(f) as img:
                frames.append(np.asarray(img.convert("RGB")))
        if len({a.shape for a in frames}) > 1:
            raise ValueError(f"{path}: frames have different sizes")
        return np.stack(frames)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    n = video_frame_count(path)
    return decode_video_frames(path, test_indices(n, num_frames))


_NUMBERED = re.compile(r"^(.*?)(\d+)\.jpe?g$", re.IGNORECASE)


def _numbered_jpegs(folder: Path) -> list[Path]:
    """JPEG files whose name ends in a number, sorted by that number."""
    found = []
    for p in folder.iterdir():
        m = _NUMBERED.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(2)), p))
    return [p for _, p in sorted(found)]


def load_video_clip(path: str | Path, num_frames: int, crop_size: int = 224, scale_size: int = 256) -> torch.Tensor:
    """One test clip ``(T, 3, crop_size, crop_size)`` float in [0, 1] from a video file or JPEG-frame folder."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    frames = _read_frames(Path(path), num_frames)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    short = min(h, w)
    side = min(short, max(1, round(crop_size * short / scale_size)))
    top, left = (h - side) // 2, (w - side) // 2
    x = x[:, :, top : top + side, left : left + side]
    if side != crop_size:
        x = F.interpolate(
            x, size=(crop_size, crop_size), mode="bilinear", align_corners=False, antialias=side > crop_size
        )
    return (x / 255.0).clamp(0, 1)


def eval_dataset(cfg: Any, split: str | None = None) -> Any:
    """The evaluation dataset (1 clip per video, test transforms) of a config (:class:`videotaf.config.Config`
    or its dict form) via ``videotaf.data.build_dataset``."""
    data = cfg.data if hasattr(cfg, "data") else cfg.get("data")
    if data is None:
        raise ValueError("the config has no 'data' section; pass --config with one")
    if not isinstance(data, DataConfig):
        data = DataConfig.from_dict(dict(data))
    data = dataclasses.replace(data, test_clips=1)
    return build_dataset(data, split or data.val_split, train=False)


def class_names(dataset: Any) -> list[str] | None:
    """The dataset's class names, when it has them."""
    for attr in ("classes", "class_names"):
        names = getattr(dataset, attr, None)
        if names is not None:
            return [str(n) for n in names]
    return None
