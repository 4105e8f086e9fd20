"""File lists in the four formats of the reference code: TSM/TPN/mmaction2 rawframes, GST, bLVNet, mmaction2 videos."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videotaf.data.base import (
    Annotations,
    Sample,
    VideoDataset,
    abs_dir,
    flip_pairs_by_name,
    inside_root,
    read_annotation_lines,
)
from videotaf.data.errors import AnnotationError

__all__ = ["LIST_FORMATS", "FileList", "detect_list_format", "parse_filelist", "read_class_names"]

log = logging.getLogger(__name__)

#: ``list_format`` values: "auto" detects one of the other four from the first non-blank line.
LIST_FORMATS = ("auto", "rawframes", "gst", "blvnet", "video")
_FIELDS = {"video": 2, "rawframes": 3, "gst": 3, "blvnet": 4}
_LAYOUT = {
    "video": "path label",
    "rawframes": "path num_frames label",
    "gst": "path<TAB>num_frames<TAB>label",
    "blvnet": "path start end label",
}


def _split_fields(line: str, fmt: str) -> list[str]:
    return line.strip().split("\t") if fmt == "gst" else line.split()


def detect_list_format(line: str) -> str | None:
    """The format of a file list from one of its lines: a tab and 3 fields means "gst", else 2 / 3 / 4
    whitespace-separated fields mean "video" / "rawframes" / "blvnet"; None when none fits."""
    text = line.strip()
    if "\t" in text and len(text.split("\t")) == 3:
        return "gst"
    return {2: "video", 3: "rawframes", 4: "blvnet"}.get(len(text.split()))


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names, one per non-blank line; :class:`AnnotationError` naming ``path`` when missing/unreadable."""
    return [ln.strip() for ln in read_annotation_lines(path, "class names file") if ln.strip()]


def parse_filelist(
    list_file: str | os.PathLike,
    root: str | os.PathLike,
    *,
    list_format: str = "auto",
    classes: Sequence[str] | str | os.PathLike | None = None,
    num_classes: int | None = None,
    start_index: int = 1,
    min_frames: int = 1,
) -> Annotations:
    """Read a file list whose paths are relative to ``root`` (``list_file`` too, unless absolute).

    Formats (``list_format``, or "auto" by :func:`detect_list_format` on the first non-blank line):
    "rawframes" ``folder num_frames label`` (spaces; frame files numbered from ``start_index``), "gst" (the same
    fields tab-separated), "blvnet" ``folder start end label`` (frame files ``start..end`` inclusive), "video"
    ``file label`` (frame count left to the file). ``classes``: names, or a text file of names (one per line,
    relative to ``root``); else ``num_classes``; else ``max(label) + 1`` classes named "0", "1", ... . Labels
    must be in ``[0, number of classes)`` when that number is known, else ``>= 0``. Entries with fewer than
    ``min_frames`` frames are left out (``filtered``; TSM and GST use 3). Flip map: classes differing only by
    left <-> right. Bad lines become ``problems``, one per line, ``"<list file>:<line>: <what>"``.
    """
    if list_format not in LIST_FORMATS:
        raise ValueError(f"list_format must be one of {LIST_FORMATS}, got {list_format!r}")
    root = Path(root)
    list_path = Path(list_file) if Path(list_file).is_absolute() else root / list_file
    lines = read_annotation_lines(list_path, "file list")
    names: list[str] | None
    class_source = str(list_path)
    if classes is None:
        names = None
    elif isinstance(classes, (str, os.PathLike)):
        class_path = Path(classes) if Path(classes).is_absolute() else root / classes
        names = read_class_names(class_path)
        class_source = str(class_path)
    else:
        names = [str(c) for c in classes]
    if names is not None and num_classes is not None and num_classes != len(names):
        raise ValueError(f"num_classes={num_classes} but {len(names)} class names were given")
    n_classes = len(names) if names is not None else num_classes
    fmt = list_format
    if fmt == "auto":
        first_no, first = next(((no, ln) for no, ln in enumerate(lines, 1) if ln.strip()), (0, None))
        if first is None:
            raise AnnotationError(f"{list_path}: file list is empty")
        found = detect_list_format(first)
        if found is None:
            raise AnnotationError(
                f"{list_path}:{first_no}: cannot detect the list format from {first.strip()!r} (expected one of "
                f"{', '.join(repr(v) for v in _LAYOUT.values())})"
            )
        fmt = found
    expect, layout = _FIELDS[fmt], _LAYOUT[fmt]
    root_abs = abs_dir(root)
    problems: list[str] = []
    samples: list[Sample] = []
    filtered = 0
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{list_path}:{no}"
        fields = _split_fields(line, fmt)
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
        path = inside_root(root_abs, fields[0])
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
            filtered += 1
            continue
        samples.append(Sample(path, label, where, num, start, fmt == "video"))
    if names is None:
        top = max((s.label for s in samples), default=-1) + 1
        names = [str(i) for i in range(n_classes if n_classes is not None else top)]
    return Annotations(
        samples,
        names,
        problems,
        flip_pairs_by_name(names),
        len(problems),
        class_source,
        list_format=fmt,
        filtered=filtered,
    )


class FileList(VideoDataset):
    """A file list relative to ``root`` (``list_file`` relative to ``root`` unless absolute).

    ``list_format``: "rawframes" (TSM/TPN/mmaction2: ``folder num_frames label``, spaces), "gst" (the same,
    tab-separated), "blvnet" (``folder start end label``: frame files ``start..end`` inclusive), "video"
    (mmaction2: ``file label``) or "auto" (from the first line: a tab means gst, else 2/3/4 fields mean
    video/rawframes/blvnet). Rawframe folders hold ``frame_template`` files (auto-detected from the first
    folder, e.g. ``img_{:05d}.jpg`` or ``{:05d}.jpg``) numbered from ``start_index`` (1). ``classes``: names
    (list) or a text file with one name per line (relative to ``root``); else ``num_classes``; else
    ``max(label) + 1`` classes named "0", "1", .... Lines with fewer than ``min_frames`` frames are dropped
    (TSM and GST use 3). Flip map: classes differing only by left <-> right. Parsing: :func:`parse_filelist`.
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
        if list_format not in LIST_FORMATS:
            raise ValueError(f"list_format must be one of {LIST_FORMATS}, got {list_format!r}")
        self.root = Path(root)
        ann = parse_filelist(
            list_file,
            self.root,
            list_format=list_format,
            classes=classes,
            num_classes=num_classes,
            start_index=start_index,
            min_frames=min_frames,
        )
        self.list_format = ann.list_format
        self._finish(ann)
