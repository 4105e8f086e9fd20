"""``DataConfig``: the ``data:`` section of an experiment config, and :func:`build_dataset`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from videotaf.data.datasets import Diving48, FileList, SomethingV1, SomethingV2, VideoDataset

__all__ = ["DataConfig", "build_dataset", "DATASET_KINDS"]

DATASET_KINDS = ("somethingv1", "somethingv2", "diving48", "filelist")


@dataclass
class DataConfig:
    """Which dataset to read and how to sample/transform it.

    kind: "somethingv1" | "somethingv2" | "diving48" | "filelist"; root: dataset root (official layout).
    train_split / val_split: split names passed to the dataset ("train" / "validation"; Diving48 maps
    "validation" to "test"). list_files: for kind "filelist", {split name: list file (relative to root)};
    list_format: "auto" | "rawframes" | "gst" | "blvnet" | "video"; classes_file: class names, one per line
    (filelist). class_order: SSv1 class ids, "sorted" (TSM) or "csv" (mmaction2).
    num_frames (T), crop_size, scale_size (test short side), flip (train only; swaps left/right labels),
    test_clips (clips per validation video; items become (test_clips*T, 3, H, W)), scales / max_distort
    (multi-scale crop), shared_offset (bLVNet sampling), bad_input ("raise" | "skip"), seed (None: DataLoader
    worker RNG; int: per-(epoch, index) generators), num_workers / pin_memory for the DataLoader the engine
    builds, jpeg_draft (decode large JPEG frames at a reduced DCT scale that still covers the crop; False decodes
    every frame at full size), options: extra dataset keywords (e.g. file name overrides such as ``annotation_file``).
    """

    kind: Literal["somethingv1", "somethingv2", "diving48", "filelist"] = "somethingv2"
    root: str = "data/synth"
    train_split: str = "train"
    val_split: str = "validation"
    list_files: dict[str, str] = field(default_factory=dict)
    list_format: Literal["auto", "rawframes", "gst", "blvnet", "video"] = "auto"
    classes_file: str | None = None
    class_order: Literal["sorted", "csv"] = "sorted"
    num_frames: int = 8
    crop_size: int = 224
    scale_size: int = 256
    flip: bool = False
    test_clips: int = 1
    scales: list[float] = field(default_factory=lambda: [1.0, 0.875, 0.75, 0.66])
    max_distort: int = 1
    shared_offset: bool = False
    bad_input: Literal["raise", "skip"] = "raise"
    seed: int | None = None
    num_workers: int = 4
    pin_memory: bool = False
    jpeg_draft: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in DATASET_KINDS:
            raise ValueError(f"data.kind must be one of {DATASET_KINDS}, got {self.kind!r}")
        if self.bad_input not in ("raise", "skip"):
            raise ValueError(f"data.bad_input must be 'raise' or 'skip', got {self.bad_input!r}")
        for name in ("num_frames", "crop_size", "scale_size", "test_clips"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataConfig:
        """Build from a plain mapping; unknown keys raise naming the key."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown data config key(s) {unknown}; known: {sorted(names)}")
        return cls(**values)


def build_dataset(cfg: DataConfig, split: str, train: bool) -> VideoDataset:
    """The dataset for ``split`` (a split name such as ``cfg.train_split``) with training or test transforms.

    Items are ``(clip (T, 3, crop, crop) float in [0, 1], label)``; see :class:`videotaf.data.VideoDataset`.
    """
    common: dict[str, Any] = dict(
        num_frames=cfg.num_frames,
        train=train,
        crop_size=cfg.crop_size,
        scale_size=cfg.scale_size,
        flip=cfg.flip,
        test_clips=cfg.test_clips,
        bad_input=cfg.bad_input,
        seed=cfg.seed,
        scales=tuple(cfg.scales),
        max_distort=cfg.max_distort,
        shared_offset=cfg.shared_offset,
        jpeg_draft=cfg.jpeg_draft,
    )
    common.update(cfg.options)
    if cfg.kind == "somethingv1":
        return SomethingV1(cfg.root, split, class_order=cfg.class_order, **common)
    if cfg.kind == "somethingv2":
        return SomethingV2(cfg.root, split, **common)
    if cfg.kind == "diving48":
        return Diving48(cfg.root, split, **common)
    if split not in cfg.list_files:
        raise ValueError(
            f"data.list_files has no entry for split {split!r} (kind 'filelist'); given: {sorted(cfg.list_files)}"
        )
    return FileList(cfg.root, cfg.list_files[split], list_format=cfg.list_format, classes=cfg.classes_file, **common)
