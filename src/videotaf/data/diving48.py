"""Diving48 (V2 annotations): MP4 videos, a vocabulary JSON, split JSON lists with frame ranges."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from videotaf.data.base import (
    Annotations,
    Sample,
    VideoDataset,
    abs_dir,
    inside_root,
    norm_split,
    read_annotation_json,
)
from videotaf.data.errors import AnnotationError

__all__ = ["Diving48", "parse_diving48", "parse_diving48_vocab"]


def parse_diving48_vocab(vocab_file: str | os.PathLike) -> list[str]:
    """Class names from ``Diving48_vocab.json``: a list whose entries are lists of strings (joined by spaces,
    ``["Back", "15som", "05Twis", "FREE"]`` -> ``"Back 15som 05Twis FREE"``) or plain strings."""
    vocab_path = Path(vocab_file)
    vocab = read_annotation_json(vocab_path, "vocabulary file")
    if not isinstance(vocab, list) or not vocab:
        raise AnnotationError(
            f"{vocab_path}: expected a non-empty JSON list of class descriptions, got {type(vocab).__name__}"
        )
    classes = []
    for k, v in enumerate(vocab):
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            classes.append(" ".join(v))
        elif isinstance(v, str):
            classes.append(v)
        else:
            raise AnnotationError(f"{vocab_path}: entry {k} must be a list of strings, got {v!r}")
    return classes


def parse_diving48(
    vocab_file: str | os.PathLike,
    annotation_file: str | os.PathLike,
    videos_dir: str | os.PathLike,
    *,
    video_ext: str = ".mp4",
) -> Annotations:
    """Read the Diving48 vocabulary and a V2 split JSON (a list of
    ``{"vid_name", "label", "start_frame", "end_frame"}``).

    Samples are ``videos_dir/<vid_name><video_ext>`` covering stream frames ``start_frame..end_frame``
    (``end_frame - start_frame + 1`` frames; the V2 files start at 0); without ``end_frame`` the count is left to
    the file. No flip map (diving is left/right symmetric). Missing files or a wrong JSON shape raise
    :class:`AnnotationError`; bad entries become ``problems``.
    """
    vocab_path, ann_path = Path(vocab_file), Path(annotation_file)
    classes = parse_diving48_vocab(vocab_path)
    entries = read_annotation_json(ann_path, "annotation file")
    if not isinstance(entries, list):
        raise AnnotationError(
            f"{ann_path}: expected a JSON list of {{'vid_name', 'label', ...}} entries, got {type(entries).__name__}"
        )
    base = abs_dir(videos_dir)
    problems: list[str] = []
    samples: list[Sample] = []
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or "vid_name" not in e or "label" not in e:
            problems.append(
                f"{ann_path}: entry {k}: expected an object with 'vid_name' and 'label', got {str(e)[:80]!r}"
            )
            continue
        name = e["vid_name"]
        where = f"{ann_path}: entry {k} ({name!r})"
        path = inside_root(base, name + video_ext) if isinstance(name, str) and name.strip() else None
        if path is None:
            problems.append(f"{where}: vid_name is not a file name inside {base}")
            continue
        label = e["label"]
        if not isinstance(label, int) or isinstance(label, bool):
            problems.append(f"{where}: label {label!r} is not an integer in [0, {len(classes)})")
            continue
        if not 0 <= label < len(classes):
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
    return Annotations(samples, classes, problems, {}, len(problems), str(vocab_path))


class Diving48(VideoDataset):
    """Diving48 (V2 annotations): ``<root>/rgb/<vid_name>.mp4``.

    ``split``: "train" | "test" ("validation"/"val" are aliases of "test", Diving48 has no other held-out set).
    ``annotation_file`` (``Diving48_V2_<split>.json``): ``{"vid_name", "label", "start_frame", "end_frame"}``;
    frames ``start_frame..end_frame`` are used (``end_frame + 1`` frames for the V2 files, which start at 0).
    ``vocab_file`` (``Diving48_vocab.json``): 48 lists of 4 strings; class name = the 4 strings joined by spaces.
    No flip map (diving is left/right symmetric). Parsing: :func:`parse_diving48`.
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
        self.split = norm_split(split, ("train", "test"))
        ann = parse_diving48(
            self.root / vocab_file,
            self.root / (annotation_file or f"Diving48_V2_{self.split}.json"),
            self.root / videos_dir,
            video_ext=video_ext,
        )
        self._finish(ann)
