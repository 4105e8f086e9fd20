"""``DataConfig``: the ``data:`` section of an experiment config, and :func:`build_dataset`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from videotaf.data.datasets import Diving48, FileList, SomethingV1, SomethingV2, VideoDataset
from videotaf.data.transforms import TRAIN_CROPS

__all__ = ["DataConfig", "build_dataset", "DATASET_KINDS"]

DATASET_KINDS = ("somethingv1", "somethingv2", "diving48", "filelist")


@dataclass
class DataConfig:
    """Which dataset to read and how to sample/transform it (the ``data:`` section of a config).

    Every field is documented where it is declared: meaning, unit, default and the reference protocol it
    follows (TSM: mit-han-lab/temporal-shift-module; GST; bLVNet-TAM; TPN; mmaction2; the TAF paper).
    """

    #: Dataset layout: "somethingv1" (JPEG frame folders + CSVs), "somethingv2" (WebM + JSONs), "diving48"
    #: (MP4 + V2 JSONs) or "filelist" (a rawframes/GST/bLVNet/video list). Default "somethingv2", the layout
    #: ``videotaf data synth`` writes.
    kind: Literal["somethingv1", "somethingv2", "diving48", "filelist"] = "somethingv2"
    #: Dataset root directory holding the publisher's files unchanged (a path; relative paths are taken from the
    #: working directory). Default "data/synth", where ``videotaf data synth --out data/synth`` writes.
    root: str = "data/synth"
    #: Split trained on (a split name of ``kind``; "training" is an alias). Default "train".
    train_split: str = "train"
    #: Split evaluated on. Default "validation": the TAF paper (like TSM/GST/TPN) reports the Something-Something
    #: validation sets, whose test labels are not public; Diving48 maps "validation" to its "test" split.
    val_split: str = "validation"
    #: kind "filelist" only: {split name: list file}, each relative to ``root`` unless absolute. Default {}.
    list_files: dict[str, str] = field(default_factory=dict)
    #: kind "filelist" only: "rawframes" (TSM/TPN/mmaction2 ``path num_frames label``), "gst" (the same,
    #: tab-separated), "blvnet" (``path start end label``), "video" (mmaction2 ``path label``) or "auto"
    #: (detected from the first line). Default "auto".
    list_format: Literal["auto", "rawframes", "gst", "blvnet", "video"] = "auto"
    #: kind "filelist" only: text file of class names, one per line, relative to ``root``. Default None: the
    #: classes are "0" .. "max(label)", so ``model.num_classes`` must be checked against the labels (training
    #: does, see :func:`videotaf.data.check_labels`).
    classes_file: str | None = None
    #: kind "somethingv1" only: class ids "sorted" (alphabetical, as TSM and its released checkpoints) or
    #: "csv" (labels-file order, as mmaction2). Default "sorted".
    class_order: Literal["sorted", "csv"] = "sorted"
    #: Frames per clip T (TSN segments), an int >= 1; must equal ``model.num_frames``. Default 8 (TSM/GST/TPN
    #: 8-frame models; the TAF paper attacks N = 8 or 16 frames by input length).
    num_frames: int = 8
    #: Side of the square network input, pixels. Default 224 (every reference protocol, and the TAF paper's
    #: 1-crop evaluation at 224).
    crop_size: int = 224
    #: Test-time short side, pixels: frames are resized so the short side is this, then centre-cropped to
    #: ``crop_size``. Default 256 (the TSM test protocol, "resize 256, centre crop 224").
    scale_size: int = 256
    #: Random horizontal flip in training, swapping the left/right classes' labels. Default False, as TSM on
    #: Something-Something (GST and mmaction2 flip with the label swap).
    flip: bool = False
    #: Clips per evaluation video (shifted TSN offsets; items become ``(test_clips * T, 3, H, W)``), an int >= 1.
    #: Default 1 (the TAF paper's 1 clip, 1 centre crop; TPN reports 2 clips x 3 crops).
    test_clips: int = 1
    #: Spatial augmentation in training: "multiscale" (the TSN multi-scale crop below, ``scales`` and
    #: ``max_distort``, then resize to ``crop_size``), "center" (the evaluation view: short side resized to
    #: ``scale_size``, centre ``crop_size`` crop; no spatial randomness) or "none" (the whole frame resized to
    #: ``crop_size`` x ``crop_size``, aspect not kept, nothing cropped away). ``flip`` applies after any of them.
    #: Default "multiscale" (TSM/TSN ``GroupMultiScaleCrop``; "center"/"none" are not in the references: for
    #: small synthetic data whose content fills the frame, where a crop can cut the evidence out).
    train_crop: Literal["multiscale", "center", "none"] = "multiscale"
    #: Multi-scale crop scales in training, fractions of the frame's short side. Default [1, 0.875, 0.75, 0.66]
    #: (TSM/TSN ``GroupMultiScaleCrop``).
    scales: list[float] = field(default_factory=lambda: [1.0, 0.875, 0.75, 0.66])
    #: Multi-scale crop: the most the width and height scale indices may differ (0 = square crops only).
    #: Default 1 (TSM/TSN).
    max_distort: int = 1
    #: Training sampling draws one random offset shared by all segments instead of one per segment. Default
    #: False (TSM/GST/TPN); bLVNet-TAM uses True.
    shared_offset: bool = False
    #: What a bad annotation entry or sample does: "raise" (:class:`~videotaf.data.AnnotationError` /
    #: :class:`~videotaf.data.BadSampleError` naming the file) or "skip" (drop the entry / substitute the next
    #: sample, counted in the dataset's ``skipped``). Default "raise" (not a reference setting: fail loudly).
    bad_input: Literal["raise", "skip"] = "raise"
    #: Augmentation seed: None uses the DataLoader workers' RNGs (seeded from ``runtime.seed``); an int makes every
    #: item draw from a generator seeded by (seed, epoch, index), independent of workers. Default None.
    seed: int | None = None
    #: DataLoader worker processes for decoding, an int >= 0 (0 = in the main process). Default 4.
    num_workers: int = 4
    #: DataLoader ``pin_memory`` (page-locked batches for faster host-to-GPU copies). Default False.
    pin_memory: bool = False
    #: Decode large JPEG frames at a reduced DCT scale (1/2, 1/4, 1/8) that still covers the crop, several times
    #: faster; False decodes every frame at full size. Default True (a speed option, not in the references;
    #: Something-Something V1 frames, about 100 px tall, are always decoded at full size).
    jpeg_draft: bool = True
    #: Decode every clip of the split once, before training, and keep its frames in memory (uint8, at the decoded
    #: size) so that no later epoch decodes: for small datasets such as ``videotaf data synth``'s (the demo's
    #: 512 training clips of 16 frames at 32 px hold 25 MiB), where decoding costs more than the network; the
    #: clips are the same as without it. Refused, naming this key, when the projected size exceeds half the
    #: memory available. Pair it with ``num_workers: 0``: the workers then have nothing left to do. Default False.
    cache_frames: bool = False
    #: Extra keywords for the dataset class, e.g. file name overrides (``annotation_file``, ``labels_file``,
    #: ``videos_dir``) or ``min_frames`` (TSM and GST drop videos with fewer than 3 frames). Default {}.
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in DATASET_KINDS:
            raise ValueError(f"data.kind must be one of {DATASET_KINDS}, got {self.kind!r}")
        if self.bad_input not in ("raise", "skip"):
            raise ValueError(f"data.bad_input must be 'raise' or 'skip', got {self.bad_input!r}")
        if self.train_crop not in TRAIN_CROPS:
            raise ValueError(
                f"data.train_crop must be one of {', '.join(map(repr, TRAIN_CROPS))}, got {self.train_crop!r}"
            )
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
        train_crop=cfg.train_crop,
    )
    common.update(cfg.options)
    dataset = _dataset(cfg, split, common)
    if cfg.cache_frames:
        dataset.cache_frames()
    return dataset


def _dataset(cfg: DataConfig, split: str, common: dict[str, Any]) -> VideoDataset:
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
