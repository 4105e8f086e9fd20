"""Video classification datasets in their official layouts (Something-Something V1/V2, Diving48, file lists).

Every item is ``(clip, label)``: ``clip`` float32 ``(T, 3, H, W)`` in [0, 1] (``(test_clips * T, 3, H, W)`` when
``test_clips > 1``: clip ``j`` is ``clip.view(test_clips, T, 3, H, W)[j]``), ``label`` an int (-1 for unlabelled
test splits). Sampling is TSN segment sampling (:mod:`videotaf.data.sampling`), transforms are the TSM protocol
(:mod:`videotaf.data.transforms`).

Annotation problems (unknown template/label, label out of range, malformed line, path escaping the root) are
collected while parsing and raised together as one :class:`AnnotationError` naming each file and line; with
``bad_input="skip"`` those entries are dropped (kept in ``annotation_problems``). Per-sample problems (missing,
empty, corrupt or truncated video, missing frames) raise :class:`BadSampleError` when the item is loaded; with
``bad_input="skip"`` a deterministic substitute is returned and :attr:`VideoDataset.skipped` counts it.
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
from dataclasses import dataclass
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
    center_crop_params,
    crop_resize,
    multiscale_crop_params,
    to_float,
)

__all__ = [
    "Sample",
    "SkipCounter",
    "VideoDataset",
    "SomethingV1",
    "SomethingV2",
    "Diving48",
    "FileList",
    "SSV1_FLIP_PAIRS_CSV",
    "SSV2_FLIP_PAIRS",
    "flip_pairs_by_name",
    "read_class_list",
]

log = logging.getLogger(__name__)

# Left/right classes of Something-Something (GST / mmaction2 flip with label swap). V1 pairs are positions in
# the official labels CSV; V2 pairs are given by name so they hold for any id order (ids 86/87, 93/94, 166/167
# in the official labels JSON).
SSV1_FLIP_PAIRS_CSV: tuple[tuple[int, int], ...] = ((2, 4), (30, 41), (52, 66))
SSV2_FLIP_PAIRS: tuple[tuple[str, str], ...] = (
    ("Pulling something from left to right", "Pulling something from right to left"),
    ("Pushing something from left to right", "Pushing something from right to left"),
    ("Turning the camera left while filming something", "Turning the camera right while filming something"),
)

_SPLIT_ALIASES = {"val": "validation", "valid": "validation", "training": "train"}


def _norm_split(split: str, allowed: Sequence[str]) -> str:
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


def _inside(root: str, rel: str) -> str | None:
    """Absolute normalised ``root/rel``, or None when ``rel`` is absolute or escapes ``root`` (``..``)."""
    if not rel or os.path.isabs(rel):
        return None
    full = os.path.normpath(os.path.join(root, rel))
    if full != root and not full.startswith(root.rstrip(os.sep) + os.sep):
        return None
    return full


class VideoDataset(Dataset):
    """Base class: sampling, decoding, transforms and the bad-input policy; subclasses fill ``samples``.

    Options (keywords of every subclass):
      num_frames (T, default 8); train (random TSN offsets + multi-scale crop + optional flip; else segment
      centres + resize/centre crop); crop_size (224); scale_size (short side before the test centre crop, 256);
      flip (random horizontal flip in training, swapping ``flip_map`` labels; default False, as TSM on
      Something-Something); flip_map (override {label: mirrored label}); test_clips (clips per test sample, 1);
      bad_input ("raise" or "skip"); seed (None: global torch RNG, seeded per worker by the DataLoader; an int:
      every item draws from a generator seeded by (seed, epoch, index), see :meth:`set_epoch`);
      scales / max_distort (multi-scale crop); shared_offset (one random offset for all segments, bLVNet);
      max_skip_tries (consecutive substitutes before giving up, 20); jpeg_draft (True: decode JPEG frames at least
      twice the size the crop needs at a reduced DCT scale, several times faster; see :meth:`decode_short_side`).
    """

    def __init__(
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
    ) -> None:
        if bad_input not in ("raise", "skip"):
            raise ValueError(f"bad_input must be 'raise' or 'skip', got {bad_input!r}")
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
        self.frame_template: str | None = None
        self.classes: list[str] = []
        self.samples: list[Sample] = []
        self.annotation_problems: list[str] = []
        self.flip_map: dict[int, int] = {}
        self._skips = SkipCounter()

    # ------------------------------------------------------------------ set-up helpers for subclasses
    def _finish(self, classes: list[str], samples: list[Sample], problems: list[str], flip_map: dict[int, int]) -> None:
        self.classes = list(classes)
        self.samples = samples
        self.flip_map = self._flip_override if self._flip_override is not None else flip_map
        if self.flip and self.train:
            sided = [
                c for i, c in enumerate(classes) if i not in self.flip_map and re.search(r"\b(left|right)\b", c, re.I)
            ]
            if sided:
                log.warning(
                    "flip=True but these left/right classes have no mirrored class in the flip map, so flipped clips "
                    "keep a wrong label: %s",
                    sided[:5],
                )
        if problems:
            head = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            if self.bad_input == "raise":
                raise AnnotationError(f"{len(problems)} bad annotation entries:\n  {head}{more}", problems)
            for p in problems:
                log.warning("dropping annotation entry: %s", p)
            self.annotation_problems = list(problems)

    @staticmethod
    def _read_text(path: Path, what: str) -> list[str]:
        if not path.is_file():
            raise AnnotationError(f"{path}: {what} not found")
        try:
            return path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise AnnotationError(f"{path}: cannot read {what} ({err})") from err

    @staticmethod
    def _read_json(path: Path, what: str) -> Any:
        if not path.is_file():
            raise AnnotationError(f"{path}: {what} not found")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise AnnotationError(f"{path}: cannot parse {what} as JSON ({err})") from err

    # ------------------------------------------------------------------ public API
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def skipped(self) -> int:
        """Bad samples replaced by substitutes since the last :meth:`reset_skipped` (all workers together)."""
        return self._skips.value

    def reset_skipped(self) -> int:
        """Zero the skip counter (call once per epoch); returns the count it had."""
        return self._skips.reset()

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
        return folder_frame_count(s.path, self._template(s))

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
        s = self.samples[index]
        if s.is_video:
            return decode_video_frames(s.path, [s.start + i for i in indices])
        need = self.decode_short_side() if self.jpeg_draft else None
        return load_jpeg_frames(s.path, [s.start + i for i in indices], self._template(s), min_short_side=need)

    def decode_short_side(self) -> int:
        """The smallest frame short side from which the crop is still a downscale, never an upscale.

        Test: the centre window is ``crop_size / scale_size`` of the short side, so ``scale_size``. Train: the
        smallest multi-scale crop is ``min(scales)`` of the short side, so ``ceil(crop_size / min(scales))``.
        """
        if self.train:
            return max(self.crop_size, math.ceil(self.crop_size / min(self.scales)))
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
            box = multiscale_crop_params(
                h, w, self.crop_size, scales=self.scales, max_distort=self.max_distort, generator=g
            )
            x = crop_resize(x, box, self.crop_size)
            if self.flip and float(torch.rand((), generator=g)) < 0.5:
                x = x.flip(-1)
                label = self.flip_map.get(label, label)
        else:
            x = crop_resize(x, center_crop_params(h, w, self.scale_size, self.crop_size), self.crop_size)
        return to_float(x).contiguous(), label

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

    def truncation_problem(self, index: int, err: ShortVideoError) -> str | None:
        """Message when a short decode means a truncated file; None for a small header/annotation mismatch."""
        s = self.samples[index]
        expected = self.frame_count(index)
        available = err.decoded - s.start
        origin = "annotation" if s.num_frames is not None else "container header"
        # Headers are often a frame or two off; losing more than 10% means the file was cut short.
        if available <= 0 or available < expected - max(2, 0.1 * expected):
            return (
                f"{s.path}: truncated video: {origin} says {expected} frames, only {max(available, 0)} decodable "
                f"(annotation {s.source})"
            )
        return None

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


class SomethingV1(VideoDataset):
    """Something-Something V1: JPEG frames ``<root>/20bn-something-something-v1/<id>/%05d.jpg`` (from 00001).

    ``split``: "train" | "validation" ("val") | "test" (unlabelled, label -1). Files under ``root`` (overridable):
    ``labels_file`` (``something-something-v1-labels.csv``, one class per line) and ``annotation_file``
    (``something-something-v1-<split>.csv``, ``id;class name`` per line). ``class_order``: "sorted" (default;
    alphabetical ids as TSM and its released checkpoints use) or "csv" (labels-file order, as mmaction2).
    The flip map is the CSV-order pairs {2<->4, 30<->41, 52<->66} translated to ``class_order`` by name.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        class_order: str = "sorted",
        labels_file: str = "something-something-v1-labels.csv",
        annotation_file: str | None = None,
        frames_dir: str = "20bn-something-something-v1",
        frame_template: str = "{:05d}.jpg",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.frame_template = frame_template
        if class_order not in ("sorted", "csv"):
            raise ValueError(f"class_order must be 'sorted' or 'csv', got {class_order!r}")
        self.root = Path(root)
        self.split = _norm_split(split, ("train", "validation", "test"))
        self.class_order = class_order
        labels_path = self.root / labels_file
        ann_path = self.root / (annotation_file or f"something-something-v1-{self.split}.csv")
        problems: list[str] = []
        csv_classes: list[str] = []
        for no, line in enumerate(self._read_text(labels_path, "labels file"), 1):
            name = line.strip()
            if not name:
                continue
            if name in csv_classes:
                problems.append(f"{labels_path}:{no}: duplicate class name {name!r}")
                continue
            csv_classes.append(name)
        if not csv_classes:
            raise AnnotationError(f"{labels_path}: labels file lists no classes")
        classes = sorted(csv_classes) if class_order == "sorted" else list(csv_classes)
        index = {c: i for i, c in enumerate(classes)}
        base = os.path.normpath(os.path.abspath(self.root / frames_dir))
        samples: list[Sample] = []
        for no, line in enumerate(self._read_text(ann_path, "annotation file"), 1):
            line = line.strip()
            if not line:
                continue
            where = f"{ann_path}:{no}"
            vid, sep, name = line.partition(";")
            vid, name = vid.strip(), name.strip()
            folder = _inside(base, vid)
            if folder is None:
                problems.append(f"{where}: video id {vid!r} is not a path inside {base}")
                continue
            if self.split == "test" and not sep:
                samples.append(Sample(folder, -1, where, None, 1, False))
                continue
            if not sep:
                problems.append(f"{where}: expected 'id;class name', got {line!r}")
                continue
            if name not in index:
                problems.append(f"{where}: unknown label {name!r} (not in {labels_path.name})")
                continue
            samples.append(Sample(folder, index[name], where, None, 1, False))
        flip_map: dict[int, int] = {}
        for a, b in SSV1_FLIP_PAIRS_CSV:
            if max(a, b) < len(csv_classes):
                ia, ib = index[csv_classes[a]], index[csv_classes[b]]
                flip_map[ia], flip_map[ib] = ib, ia
        self._finish(classes, samples, problems, flip_map)


class SomethingV2(VideoDataset):
    """Something-Something V2: WebM videos ``<root>/20bn-something-something-v2/<id>.webm``.

    ``split``: "train" | "validation" ("val") | "test" (label -1). ``labels_file``
    (``something-something-v2-labels.json``, ``{class name: "id"}``) fixes the class ids;
    ``annotation_file`` (``something-something-v2-<split>.json``) lists ``{"id", "template", ...}``; the class is
    the template with "[" and "]" removed (exact match, else a unique case-insensitive match). Flip map: the
    official left/right pairs by name (ids 86<->87, 93<->94, 166<->167); for label sets without those names
    (e.g. :mod:`videotaf.data.synth`), classes differing only by left <-> right.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        labels_file: str = "something-something-v2-labels.json",
        annotation_file: str | None = None,
        videos_dir: str = "20bn-something-something-v2",
        video_ext: str = ".webm",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.root = Path(root)
        self.split = _norm_split(split, ("train", "validation", "test"))
        labels_path = self.root / labels_file
        ann_path = self.root / (annotation_file or f"something-something-v2-{self.split}.json")
        raw = self._read_json(labels_path, "labels file")
        if not isinstance(raw, dict) or not raw:
            raise AnnotationError(f"{labels_path}: expected a JSON object {{class name: id}}")
        problems: list[str] = []
        by_id: dict[int, str] = {}
        for name, cid in raw.items():
            try:
                i = int(cid)
            except (TypeError, ValueError):
                raise AnnotationError(f"{labels_path}: class {name!r} has non-integer id {cid!r}") from None
            if i in by_id:
                raise AnnotationError(f"{labels_path}: id {i} used by {by_id[i]!r} and {name!r}")
            by_id[i] = name
        if sorted(by_id) != list(range(len(by_id))):
            raise AnnotationError(f"{labels_path}: class ids must be 0..{len(by_id) - 1} without gaps")
        classes = [by_id[i] for i in range(len(by_id))]
        index = {c: i for i, c in enumerate(classes)}
        lower: dict[str, list[int]] = {}
        for c, i in index.items():
            lower.setdefault(c.lower(), []).append(i)
        entries = self._read_json(ann_path, "annotation file")
        if not isinstance(entries, list):
            raise AnnotationError(f"{ann_path}: expected a JSON list of {{'id', 'template', ...}} entries")
        base = os.path.normpath(os.path.abspath(self.root / videos_dir))
        samples: list[Sample] = []
        for k, e in enumerate(entries):
            where = f"{ann_path}: entry {k}"
            if not isinstance(e, dict) or "id" not in e:
                problems.append(f"{where}: expected an object with an 'id', got {str(e)[:80]!r}")
                continue
            vid = str(e["id"]).strip()
            where = f"{ann_path}: entry {k} (id {vid!r})"
            path = _inside(base, vid + video_ext)
            if path is None or not vid:
                problems.append(f"{where}: video id is not a file name inside {base}")
                continue
            if self.split == "test" and "template" not in e:
                samples.append(Sample(path, -1, where))
                continue
            template = e.get("template")
            if not isinstance(template, str):
                problems.append(f"{where}: missing 'template'")
                continue
            name = template.replace("[", "").replace("]", "")
            label = index.get(name)
            if label is None and len(lower.get(name.lower(), [])) == 1:
                label = lower[name.lower()][0]
            if label is None:
                problems.append(f"{where}: unknown template {template!r} (class {name!r} not in {labels_path.name})")
                continue
            samples.append(Sample(path, label, where))
        official = {a: b for a, b in SSV2_FLIP_PAIRS} | {b: a for a, b in SSV2_FLIP_PAIRS}
        flip_map = {index[a]: index[b] for a, b in official.items() if a in index and b in index}
        if not flip_map:
            flip_map = flip_pairs_by_name(classes)
        self._finish(classes, samples, problems, flip_map)


class Diving48(VideoDataset):
    """Diving48 (V2 annotations): ``<root>/rgb/<vid_name>.mp4``.

    ``split``: "train" | "test" ("validation"/"val" are aliases of "test", Diving48 has no other held-out set).
    ``annotation_file`` (``Diving48_V2_<split>.json``): ``{"vid_name", "label", "start_frame", "end_frame"}``;
    frames ``start_frame..end_frame`` are used (``end_frame + 1`` frames for the V2 files, which start at 0).
    ``vocab_file`` (``Diving48_vocab.json``): 48 lists of 4 strings; class name = the 4 strings joined by spaces.
    No flip map (diving is left/right symmetric).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        annotation_file: str | None = None,
        vocab_file: str = "Diving48_vocab.json",
        videos_dir: str = "rgb",
        video_ext: str = ".mp4",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.root = Path(root)
        split = {"validation": "test", "val": "test"}.get(split, split)
        self.split = _norm_split(split, ("train", "test"))
        vocab_path = self.root / vocab_file
        ann_path = self.root / (annotation_file or f"Diving48_V2_{self.split}.json")
        vocab = self._read_json(vocab_path, "vocabulary file")
        if not isinstance(vocab, list) or not vocab:
            raise AnnotationError(f"{vocab_path}: expected a JSON list of class descriptions")
        classes = []
        for k, v in enumerate(vocab):
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                classes.append(" ".join(v))
            elif isinstance(v, str):
                classes.append(v)
            else:
                raise AnnotationError(f"{vocab_path}: entry {k} must be a list of strings, got {v!r}")
        entries = self._read_json(ann_path, "annotation file")
        if not isinstance(entries, list):
            raise AnnotationError(f"{ann_path}: expected a JSON list of {{'vid_name', 'label', ...}} entries")
        base = os.path.normpath(os.path.abspath(self.root / videos_dir))
        problems: list[str] = []
        samples: list[Sample] = []
        for k, e in enumerate(entries):
            where = f"{ann_path}: entry {k}"
            if not isinstance(e, dict) or "vid_name" not in e or "label" not in e:
                problems.append(f"{where}: expected an object with 'vid_name' and 'label', got {str(e)[:80]!r}")
                continue
            name = str(e["vid_name"])
            where = f"{ann_path}: entry {k} ({name!r})"
            path = _inside(base, name + video_ext)
            if path is None:
                problems.append(f"{where}: vid_name is not a file name inside {base}")
                continue
            label = e["label"]
            if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(classes):
                problems.append(f"{where}: label {label!r} out of range [0, {len(classes)})")
                continue
            start, end = e.get("start_frame", 0), e.get("end_frame")
            num = None
            if end is not None:
                if not (isinstance(start, int) and isinstance(end, int)) or start < 0 or end < start:
                    problems.append(f"{where}: bad frame range start_frame={start!r} end_frame={end!r}")
                    continue
                num = end - start + 1
            samples.append(Sample(path, label, where, num, int(start or 0), True))
        self._finish(classes, samples, problems, {})


_LIST_FORMATS = ("auto", "rawframes", "gst", "blvnet", "video")


class FileList(VideoDataset):
    """A file list relative to ``root`` (``list_file`` relative to ``root`` unless absolute).

    ``list_format``: "rawframes" (TSM/TPN/mmaction2: ``folder num_frames label``, spaces), "gst" (the same,
    tab-separated), "blvnet" (``folder start end label``: frame files ``start..end`` inclusive), "video"
    (mmaction2: ``file label``) or "auto" (from the first line: a tab means gst, else 2/3/4 fields mean
    video/rawframes/blvnet). Rawframe folders hold ``frame_template`` files (auto-detected from the first
    folder, e.g. ``img_{:05d}.jpg`` or ``{:05d}.jpg``) numbered from ``start_index`` (1). ``classes``: names
    (list) or a text file with one name per line (relative to ``root``); else ``num_classes``; else
    ``max(label) + 1`` classes named "0", "1", .... Lines with fewer than ``min_frames`` frames are dropped
    (TSM and GST use 3). Flip map: classes differing only by left <-> right.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        list_file: str | os.PathLike,
        *,
        list_format: str = "auto",
        classes: Sequence[str] | str | os.PathLike | None = None,
        num_classes: int | None = None,
        frame_template: str | None = None,
        start_index: int = 1,
        min_frames: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.frame_template = frame_template
        if list_format not in _LIST_FORMATS:
            raise ValueError(f"list_format must be one of {_LIST_FORMATS}, got {list_format!r}")
        self.root = Path(root)
        list_path = Path(list_file) if Path(list_file).is_absolute() else self.root / list_file
        lines = self._read_text(list_path, "file list")
        names = self._class_names(classes)
        if names is not None and num_classes is not None and num_classes != len(names):
            raise ValueError(f"num_classes={num_classes} but {len(names)} class names were given")
        n_classes = len(names) if names is not None else num_classes
        fmt = list_format
        if fmt == "auto":
            first = next((ln for ln in lines if ln.strip()), None)
            if first is None:
                raise AnnotationError(f"{list_path}: file list is empty")
            fields = first.strip().split("\t") if "\t" in first.strip() else first.split()
            by_count = {2: "video", 3: "rawframes", 4: "blvnet"}
            if "\t" in first.strip() and len(fields) == 3:
                fmt = "gst"
            elif len(fields) in by_count:
                fmt = by_count[len(fields)]
            else:
                raise AnnotationError(f"{list_path}:1: cannot detect the list format from {first!r}")
        self.list_format = fmt
        expect = {"video": 2, "rawframes": 3, "gst": 3, "blvnet": 4}[fmt]
        layout = {
            "video": "path label",
            "rawframes": "path num_frames label",
            "gst": "path<TAB>num_frames<TAB>label",
            "blvnet": "path start end label",
        }[fmt]
        root_abs = os.path.normpath(os.path.abspath(self.root))
        problems: list[str] = []
        parsed: list[tuple[str, str, int, int | None, int]] = []
        for no, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{list_path}:{no}"
            fields = line.strip().split("\t") if fmt == "gst" else line.split()
            if len(fields) != expect:
                problems.append(f"{where}: expected '{layout}' ({expect} fields), got {line.strip()!r}")
                continue
            try:
                numbers = [int(x) for x in fields[1:]]
            except ValueError:
                problems.append(f"{where}: non-integer field in {line.strip()!r} (expected '{layout}')")
                continue
            label = numbers[-1]
            if label < 0 or (n_classes is not None and label >= n_classes):
                bound = f"[0, {n_classes})" if n_classes is not None else ">= 0"
                problems.append(f"{where}: label {label} out of range {bound}")
                continue
            path = _inside(root_abs, fields[0])
            if path is None:
                problems.append(f"{where}: path {fields[0]!r} escapes the dataset root {root_abs}")
                continue
            if fmt == "video":
                num, start = None, 0
            elif fmt == "blvnet":
                start, end = numbers[0], numbers[1]
                if end < start:
                    problems.append(f"{where}: end frame {end} < start frame {start}")
                    continue
                num = end - start + 1
            else:
                num, start = numbers[0], int(start_index)
                if num < 1:
                    problems.append(f"{where}: num_frames {num} < 1")
                    continue
            if num is not None and num < min_frames:
                log.info("%s: %d frames < min_frames=%d, dropped", where, num, min_frames)
                continue
            parsed.append((path, where, label, num, start))
        if names is None:
            top = max((p[2] for p in parsed), default=-1) + 1
            names = [str(i) for i in range(n_classes if n_classes is not None else top)]
        samples = [Sample(p, lab, w, n, s, fmt == "video") for p, w, lab, n, s in parsed]
        self._finish(names, samples, problems, flip_pairs_by_name(names))

    def _class_names(self, classes: Sequence[str] | str | os.PathLike | None) -> list[str] | None:
        if classes is None:
            return None
        if isinstance(classes, (str, os.PathLike)):
            p = Path(classes) if Path(classes).is_absolute() else self.root / classes
            return [ln.strip() for ln in self._read_text(p, "class names file") if ln.strip()]
        return [str(c) for c in classes]


def read_class_list(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a text file (class-name lists such as ``long_term_classes.txt``)."""
    return [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
