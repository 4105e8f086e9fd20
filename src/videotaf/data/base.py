"""The clip-loading dataset base shared by every layout: annotation results, sampling/decoding glue, skip policy.

Every item is ``(clip, label)``: ``clip`` float32 ``(T, 3, H, W)`` in [0, 1] (``(test_clips * T, 3, H, W)`` when
``test_clips > 1``: clip ``j`` is ``clip.view(test_clips, T, 3, H, W)[j]``), ``label`` an int (-1 for unlabelled
test splits). Sampling is TSN segment sampling (:mod:`videotaf.data.sampling`), transforms are the TSM protocol
(:mod:`videotaf.data.transforms`).

Each layout module (:mod:`~videotaf.data.somethingv1`, :mod:`~videotaf.data.somethingv2`,
:mod:`~videotaf.data.diving48`, :mod:`~videotaf.data.filelist`) has a pure parse function (annotation files in,
:class:`Annotations` out; nothing is decoded) and a :class:`VideoDataset` subclass that parses and then applies
the bad-input policy:

Annotation problems (unknown template/label, label out of range, malformed line, path escaping the root) are
collected while parsing and raised together as one :class:`AnnotationError` (one-line message: the first
problem, naming its file and line, and how many more; ``problems`` lists them all); with ``bad_input="skip"``
those entries are dropped (kept in ``annotation_problems``, counted in ``dropped_entries`` and ``skipped``).
Per-sample problems (missing, empty, corrupt or truncated video, missing frames) raise :class:`BadSampleError`
when the item is loaded; with ``bad_input="skip"`` a deterministic substitute is returned and
:attr:`VideoDataset.skipped` counts it.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import multiprocessing.context
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from videotaf.data.decode import (
    ShortVideoError,
    decode_video_frames,
    detect_frame_template,
    folder_frame_count,
    load_jpeg_frames,
    set_frame_count,
    video_frame_count,
)
from videotaf.data.errors import AnnotationError, BadSampleError
from videotaf.data.sampling import clip_indices
from videotaf.data.transforms import (
    DEFAULT_SCALES,
    TRAIN_CROPS,
    TrainCrop,
    center_crop_params,
    crop_resize,
    to_float,
    train_crop_params,
)

__all__ = [
    "Annotations",
    "Sample",
    "SkipCounter",
    "VideoDataset",
    "annotation_error",
    "flip_pairs_by_name",
    "inside_root",
    "read_annotation_json",
    "read_annotation_lines",
    "read_class_list",
]

log = logging.getLogger(__name__)

_SPLIT_ALIASES = {"val": "validation", "valid": "validation", "training": "train"}


def available_memory() -> int:
    """Bytes of memory available to a new allocation now: Linux's ``MemAvailable`` (free plus reclaimable page
    cache), else the free physical pages."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def norm_split(split: str, allowed: Sequence[str]) -> str:
    """``split`` with its aliases resolved ("val" -> "validation", ...); ValueError when not in ``allowed``."""
    split = _SPLIT_ALIASES.get(split, split)
    if split not in allowed:
        raise ValueError(f"unknown split {split!r}; expected one of {list(allowed)}")
    return split


def flip_pairs_by_name(classes: Sequence[str]) -> dict[int, int]:
    """Label swap for a horizontal flip: classes whose names differ only by the words left <-> right."""
    index = {c: i for i, c in enumerate(classes)}
    swap = {"left": "right", "right": "left", "Left": "Right", "Right": "Left"}
    out: dict[int, int] = {}
    for i, name in enumerate(classes):
        mirrored = re.sub(r"\b(left|right|Left|Right)\b", lambda m: swap[m.group(1)], name)
        j = index.get(mirrored)
        if j is not None and j != i:
            out[i] = j
    return out


@dataclass(frozen=True)
class Sample:
    """One annotated video.

    ``path``: absolute video file or frames folder; ``source``: ``"<annotation file>:<line or entry>"``;
    ``num_frames``: from the annotation, or None to count from the file; ``start``: first frame (file number
    for folders, 0-based stream position for video files); ``is_video``: file (PyAV) or folder (Pillow).
    """

    path: str
    label: int
    source: str
    num_frames: int | None = None
    start: int = 0
    is_video: bool = True


@dataclass
class Annotations:
    """What a parse function read from annotation files alone (no video or frame file is opened).

    ``samples``: the usable entries in file order; ``classes``: class names (index = label); ``problems``: one
    message per bad line or entry (``"<file>:<line>: <what>"`` or ``"<file>: entry <k> (...): <what>"``), each
    left out of ``samples``; ``flip_map``: {label: mirrored label} for a horizontal flip; ``dropped``: how many
    annotation entries were left out for a problem (a problem in a labels file, such as a duplicate class name,
    drops no entry); ``class_source``: the file the class names come from; ``list_format``: file lists only,
    the format read (detected when "auto"); ``filtered``: entries left out on purpose (``min_frames``), not
    problems.
    """

    samples: list[Sample]
    classes: list[str]
    problems: list[str] = field(default_factory=list)
    flip_map: dict[int, int] = field(default_factory=dict)
    dropped: int = 0
    class_source: str = ""
    list_format: str | None = None
    filtered: int = 0


def annotation_error(problems: Sequence[str]) -> AnnotationError:
    """One :class:`AnnotationError` for ``problems``: a one-line message (the first problem, naming its file and
    line, and how many more there are); ``problems`` keeps them all."""
    problems = list(problems)
    first = problems[0].replace("\n", " ")
    if len(problems) == 1:
        return AnnotationError(first, problems)
    more = len(problems) - 1
    return AnnotationError(
        f"{first} (and {more} more bad annotation entr{'y' if more == 1 else 'ies'}; "
        "'videotaf data check' lists them all)",
        problems,
    )


class SkipCounter:
    """Counter of skipped samples shared by the DataLoader worker processes (shared memory)."""

    def __init__(self) -> None:
        self._value = multiprocessing.Value("q", 0)

    def increment(self) -> None:
        with self._value.get_lock():
            self._value.value += 1

    @property
    def value(self) -> int:
        return int(self._value.value)

    def reset(self) -> int:
        """Set to zero; returns the count before the reset."""
        with self._value.get_lock():
            old = int(self._value.value)
            self._value.value = 0
        return old

    def __getstate__(self) -> dict[str, Any]:
        # Shared memory travels only to processes being started (DataLoader workers); any other pickling
        # (deepcopy, saving) gets a detached copy of the current count.
        if multiprocessing.context.get_spawning_popen() is not None:
            return {"shared": self._value}
        return {"count": self.value}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "shared" in state:
            self._value = state["shared"]
        else:
            self._value = multiprocessing.Value("q", state["count"])


def inside_root(root: str, rel: str) -> str | None:
    """Absolute normalised ``root/rel``, or None when ``rel`` is empty, absolute or escapes ``root`` (``..``).

    ``root`` must itself be absolute and normalised.
    """
    if not rel or os.path.isabs(rel):
        return None
    full = os.path.normpath(os.path.join(root, rel))
    if full != root and not full.startswith(root.rstrip(os.sep) + os.sep):
        return None
    return full


def abs_dir(path: str | os.PathLike) -> str:
    """``path`` made absolute and normalised (the form :func:`inside_root` expects)."""
    return os.path.normpath(os.path.abspath(path))


def read_annotation_lines(path: str | os.PathLike, what: str) -> list[str]:
    """The lines of a text annotation file; :class:`AnnotationError` naming ``path`` when missing/unreadable."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: {what} not found")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise AnnotationError(f"{path}: cannot read {what} ({err})") from err


def read_annotation_json(path: str | os.PathLike, what: str) -> Any:
    """A JSON annotation file, parsed; :class:`AnnotationError` naming ``path`` (and the JSON error's line)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AnnotationError(f"{path}: cannot parse {what} as JSON ({err})") from err


def read_class_list(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a text file (class-name lists such as ``long_term_classes.txt``)."""
    return [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]


class VideoDataset(Dataset):
    """Base class: sampling, decoding, transforms and the bad-input policy; subclasses fill ``samples``.

    Options (keywords of every subclass):
      num_frames (T, default 8); train (random TSN offsets + multi-scale crop + optional flip; else segment
      centres + resize/centre crop); crop_size (224); scale_size (short side before the test centre crop, 256);
      flip (random horizontal flip in training, swapping ``flip_map`` labels; default False, as TSM on
      Something-Something); flip_map (override {label: mirrored label}); test_clips (clips per test sample, 1);
      bad_input ("raise" or "skip"); seed (None: global torch RNG, seeded per worker by the DataLoader; an int:
      every item draws from a generator seeded by (seed, epoch, index), see :meth:`set_epoch`);
      train_crop (training spatial view: "multiscale", the TSN multi-scale crop, default; "center", the test
      view; "none", the whole frame resized; see :func:`~videotaf.data.transforms.train_crop_params`);
      scales / max_distort (multi-scale crop); shared_offset (one random offset for all segments, bLVNet);
      max_skip_tries (consecutive substitutes before giving up, 20); jpeg_draft (True: decode JPEG frames at least
      twice the size the crop needs at a reduced DCT scale, several times faster; see :meth:`decode_short_side`).
    """

    def __init__(  # size: one keyword per DataConfig field a dataset reads
        self,
        *,
        num_frames: int = 8,
        train: bool = False,
        crop_size: int = 224,
        scale_size: int = 256,
        flip: bool = False,
        flip_map: dict[int, int] | None = None,
        test_clips: int = 1,
        bad_input: str = "raise",
        seed: int | None = None,
        scales: Sequence[float] = DEFAULT_SCALES,
        max_distort: int = 1,
        shared_offset: bool = False,
        max_skip_tries: int = 20,
        jpeg_draft: bool = True,
        train_crop: TrainCrop = "multiscale",
    ) -> None:
        if bad_input not in ("raise", "skip"):
            raise ValueError(f"bad_input must be 'raise' or 'skip', got {bad_input!r}")
        if train_crop not in TRAIN_CROPS:
            raise ValueError(f"train_crop must be one of {', '.join(map(repr, TRAIN_CROPS))}, got {train_crop!r}")
        if num_frames < 1 or crop_size < 1 or scale_size < 1 or test_clips < 1:
            raise ValueError(
                f"num_frames, crop_size, scale_size and test_clips must be >= 1, got {num_frames}, {crop_size}, "
                f"{scale_size}, {test_clips}"
            )
        self.num_frames = int(num_frames)
        self.train = bool(train)
        self.crop_size = int(crop_size)
        self.scale_size = int(scale_size)
        self.flip = bool(flip)
        self._flip_override = dict(flip_map) if flip_map is not None else None
        self.test_clips = int(test_clips)
        self.bad_input = bad_input
        self.seed = seed
        self.epoch = 0
        self.scales = tuple(float(s) for s in scales)
        self.max_distort = int(max_distort)
        self.shared_offset = bool(shared_offset)
        self.max_skip_tries = int(max_skip_tries)
        self.jpeg_draft = bool(jpeg_draft)
        self.train_crop: TrainCrop = train_crop
        self.frame_template: str | None = None
        self.classes: list[str] = []
        self.samples: list[Sample] = []
        self.annotation_problems: list[str] = []
        self.dropped_entries = 0
        self.class_source = ""
        self.flip_map: dict[int, int] = {}
        self._skips = SkipCounter()
        self._cached: dict[int, np.ndarray] = {}  # sample index -> every frame, decoded (:meth:`cache_frames`)

    # ------------------------------------------------------------------ set-up for subclasses
    def _finish(self, ann: Annotations) -> None:
        """Adopt what a parse function read, then apply the bad-input policy to its problems."""
        self.classes = list(ann.classes)
        self.samples = list(ann.samples)
        self.class_source = ann.class_source
        self.flip_map = self._flip_override if self._flip_override is not None else dict(ann.flip_map)
        if self.flip and self.train:
            sided = [
                c
                for i, c in enumerate(self.classes)
                if i not in self.flip_map and re.search(r"\b(left|right)\b", c, re.I)
            ]
            if sided:
                log.warning(
                    "flip=True but these left/right classes have no mirrored class in the flip map, so flipped clips "
                    "keep a wrong label: %s",
                    sided[:5],
                )
        if ann.problems:
            if self.bad_input == "raise":
                raise annotation_error(ann.problems)
            for p in ann.problems:
                log.warning("dropping annotation entry: %s", p)
            self.annotation_problems = list(ann.problems)
            self.dropped_entries = int(ann.dropped)

    # ------------------------------------------------------------------ public API
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def skipped(self) -> int:
        """Entries this dataset goes without: annotation entries dropped under ``bad_input="skip"`` (fixed at
        construction, so every epoch lacks them) plus bad samples replaced by substitutes since the last
        :meth:`reset_skipped` (all DataLoader workers together)."""
        return self.dropped_entries + self._skips.value

    def reset_skipped(self) -> int:
        """Zero the substitute counter (call once per epoch); returns :attr:`skipped` as it was.

        Dropped annotation entries stay counted: they are missing from every epoch.
        """
        return self.dropped_entries + self._skips.reset()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch for seeded sampling (only matters when ``seed`` is set).

        DataLoader workers hold copies of the dataset: call this before iterating, with non-persistent workers
        (the default), so each epoch's workers see the new value.
        """
        self.epoch = int(epoch)

    def generator_for(self, index: int) -> torch.Generator | None:
        """The generator item ``index`` draws from: None (global RNG) unless ``seed`` is set."""
        if self.seed is None:
            return None
        mixed = (int(self.seed) * 1_000_003 + self.epoch) * 1_000_033 + int(index)
        return torch.Generator().manual_seed(mixed % (2**63 - 1))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.bad_input == "raise":
            return self.load(index)
        n = len(self.samples)
        err: BadSampleError | None = None
        for attempt in range(self.max_skip_tries):
            # Deterministic substitute: the next sample in order.
            i = (index + attempt) % n
            try:
                return self.load(i)
            except BadSampleError as exc:
                err = exc
                self._skips.increment()
                log.warning("skipping bad sample %d (%s): %s", i, self.samples[i].source, exc)
        raise BadSampleError(f"{self.max_skip_tries} consecutive bad samples from index {index}; last: {err}")

    def frame_count(self, index: int) -> int:
        """Frames of sample ``index``: from its annotation, else counted from the file/folder (cached)."""
        s = self.samples[index]
        if s.num_frames is not None:
            return s.num_frames
        if s.is_video:
            return video_frame_count(s.path) - s.start
        return folder_frame_count(s.path, self.frame_template_of(index))

    def sample_indices(self, index: int, generator: torch.Generator | None = None) -> list[list[int]]:
        """0-based frame indices of each clip of item ``index`` (one clip in training)."""
        return clip_indices(
            self.frame_count(index),
            self.num_frames,
            train=self.train,
            num_clips=1 if self.train else self.test_clips,
            generator=generator,
            shared_offset=self.shared_offset,
        )

    def read_frames(self, index: int, indices: Sequence[int]) -> np.ndarray:
        """uint8 ``(len(indices), H, W, 3)`` frames at 0-based ``indices`` of sample ``index``."""
        cached = self._cached.get(index)
        if cached is not None and max(indices) < len(cached):
            return cached[list(indices)]
        s = self.samples[index]
        if s.is_video:
            return decode_video_frames(s.path, [s.start + i for i in indices])
        need = self.decode_short_side() if self.jpeg_draft else None
        template = self.frame_template_of(index)
        return load_jpeg_frames(s.path, [s.start + i for i in indices], template, min_short_side=need)

    def cache_frames(self, max_bytes: int | None = None) -> int:
        """Decode every sample once and keep all its frames in memory, so that later reads (every epoch) skip
        decoding; returns the bytes held. ``data.cache_frames``, for datasets that fit in RAM several times over.

        The kept frames are exactly what :meth:`read_frames` decodes (a JPEG folder at the same reduced DCT
        scale), so the clips are unchanged. A sample that fails to decode is left uncached: it fails, or is
        skipped, when it is read, as without the cache. Before decoding past the first sample, the total is
        projected from it (``len(dataset)`` times its size) and a ``ValueError`` names ``data.cache_frames`` when
        that exceeds ``max_bytes`` (default: half the memory available now). Filled in the main process, the
        cache reaches DataLoader workers through ``fork``; each DDP process holds its own copy.
        """
        limit = available_memory() // 2 if max_bytes is None else max_bytes
        total = 0
        for index in range(len(self.samples)):
            try:
                frames = self.read_frames(index, range(self.frame_count(index)))
            except BadSampleError:
                continue
            if not self._cached and frames.nbytes * len(self.samples) > limit:
                raise ValueError(
                    f"data.cache_frames: {len(self.samples)} clips of about {frames.nbytes / 2**20:.1f} MiB decoded "
                    f"(from {self.samples[index].path}) need about {frames.nbytes * len(self.samples) / 2**30:.2f} "
                    f"GiB, more than the {limit / 2**30:.2f} GiB allowed (half the memory available); set "
                    "data.cache_frames: false"
                )
            self._cached[index] = frames
            total += frames.nbytes
        return total

    def decode_short_side(self) -> int:
        """The smallest frame short side from which the crop is still a downscale, never an upscale.

        Test (and ``train_crop="center"``, the same view): the centre window is ``crop_size / scale_size`` of the
        short side, so ``scale_size``. Train, multi-scale: the smallest crop is ``min(scales)`` of the short side,
        so ``ceil(crop_size / min(scales))``. ``train_crop="none"``: the whole frame becomes ``crop_size`` square.
        """
        if self.train and self.train_crop == "multiscale":
            return max(self.crop_size, math.ceil(self.crop_size / min(self.scales)))
        if self.train and self.train_crop == "none":
            return self.crop_size
        return max(self.crop_size, self.scale_size)

    def load(self, index: int) -> tuple[torch.Tensor, int]:
        """Load item ``index`` without the skip policy (raises :class:`BadSampleError`)."""
        if not 0 <= index < len(self.samples):
            raise IndexError(f"index {index} out of range for {len(self.samples)} samples")
        s = self.samples[index]
        g = self.generator_for(index)
        clips = self.sample_indices(index, g)
        flat = [i for c in clips for i in c]
        try:
            frames = self.read_frames(index, flat)
        except ShortVideoError as err:
            frames, flat = self._recover_short(index, err, g)
        x = torch.from_numpy(frames).permute(0, 3, 1, 2)
        h, w = x.shape[-2:]
        label = s.label
        if self.train:
            box = train_crop_params(
                self.train_crop,
                h,
                w,
                self.crop_size,
                self.scale_size,
                scales=self.scales,
                max_distort=self.max_distort,
                generator=g,
            )
            x = crop_resize(x, box, self.crop_size)
            if self.flip and float(torch.rand((), generator=g)) < 0.5:
                x = x.flip(-1)
                label = self.flip_map.get(label, label)
        else:
            x = crop_resize(x, center_crop_params(h, w, self.scale_size, self.crop_size), self.crop_size)
        return to_float(x).contiguous(), label

    def truncation_problem(self, index: int, err: ShortVideoError) -> str | None:
        """Message when a short decode means a truncated file; None for a small header/annotation mismatch."""
        return self.shortfall_problem(index, err.decoded)

    def shortfall_problem(self, index: int, decoded: int) -> str | None:
        """Message when only ``decoded`` stream frames (from position 0) of sample ``index`` decode and that
        means a truncated file; None when it is within the small header/annotation slack loading tolerates."""
        s = self.samples[index]
        expected = self.frame_count(index)
        available = decoded - s.start
        origin = "annotation" if s.num_frames is not None else "container header"
        # Headers are often a frame or two off; losing more than 10% means the file was cut short.
        if available <= 0 or available < expected - max(2, 0.1 * expected):
            return (
                f"{s.path}: truncated video: {origin} says {expected} frames, only {max(available, 0)} decodable "
                f"(annotation {s.source})"
            )
        return None

    def frame_template_of(self, index: int) -> str:
        """The frame file-name template of folder sample ``index`` (``"{:05d}.jpg"``, detected when not given)."""
        return self._template(self.samples[index])

    # ------------------------------------------------------------------ internals
    def _recover_short(
        self, index: int, err: ShortVideoError, g: torch.Generator | None
    ) -> tuple[np.ndarray, list[int]]:
        """The decoder ran out of frames: resample with the true count, unless the file is clearly truncated."""
        s = self.samples[index]
        expected = self.frame_count(index)
        available = err.decoded - s.start
        problem = self.truncation_problem(index, err)
        if problem is not None:
            raise BadSampleError(problem) from err
        origin = "annotation" if s.num_frames is not None else "container header"
        log.debug("%s: %d frames decodable, %s said %d; resampling", s.path, available, origin, expected)
        if s.num_frames is None:
            set_frame_count(s.path, available + s.start)
        else:
            self.samples[index] = Sample(s.path, s.label, s.source, available, s.start, s.is_video)
        clips = self.sample_indices(index, g)
        flat = [i for c in clips for i in c]
        return self.read_frames(index, flat), flat

    def _template(self, s: Sample) -> str:
        if self.frame_template is None:
            found = detect_frame_template(s.path)
            if found is None:
                if not os.path.isdir(s.path):
                    raise BadSampleError(f"{s.path}: frames folder not found (annotation {s.source})")
                raise BadSampleError(f"{s.path}: frames folder has no numbered .jpg files (annotation {s.source})")
            self.frame_template = found
        return self.frame_template

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} samples, {self.num_classes} classes, T={self.num_frames}, "
            f"train={self.train}, crop={self.crop_size})"
        )
