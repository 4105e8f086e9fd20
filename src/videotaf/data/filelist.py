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
    names, class_source = _given_class_names(classes, root, num_classes, str(list_path))
    n_classes = len(names) if names is not None else num_classes
    fmt = list_format if list_format != "auto" else _detected_format(lines, list_path)
    root_abs = abs_dir(root)
    problems: list[str] = []
    samples: list[Sample] = []
    filtered = 0
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{list_path}:{no}"
        entry = _parse_entry(line, fmt, where, n_classes, root_abs, int(start_index))
        if isinstance(entry, str):
            problems.append(f"{where}: {entry}")
        elif entry.num_frames is not None and entry.num_frames < min_frames:
            log.info("%s: %d frames < min_frames=%d, dropped", where, entry.num_frames, min_frames)
            filtered += 1
        else:
            samples.append(entry)
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


def _given_class_names(
    classes: Sequence[str] | str | os.PathLike | None, root: Path, num_classes: int | None, list_source: str
) -> tuple[list[str] | None, str]:
    """``(class names or None, where they come from)``: a list as given, a text file (relative to ``root``) read, or
    None (names follow from ``num_classes`` or the labels; the source is then the list file itself)."""
    if classes is None:
        return None, list_source
    if isinstance(classes, (str, os.PathLike)):
        class_path = Path(classes) if Path(classes).is_absolute() else root / classes
        names, source = read_class_names(class_path), str(class_path)
    else:
        names, source = [str(c) for c in classes], list_source
    if num_classes is not None and num_classes != len(names):
        raise ValueError(f"num_classes={num_classes} but {len(names)} class names were given")
    return names, source


def _detected_format(lines: list[str], list_path: Path) -> str:
    """The format of ``list_path`` from its first non-blank line (:func:`detect_list_format`), or an
    :class:`AnnotationError` naming the file (and the line) when the list is empty or fits none."""
    first_no, first = next(((no, ln) for no, ln in enumerate(lines, 1) if ln.strip()), (0, None))
    if first is None:
        raise AnnotationError(f"{list_path}: file list is empty")
    found = detect_list_format(first)
    if found is None:
        raise AnnotationError(
            f"{list_path}:{first_no}: cannot detect the list format from {first.strip()!r} (expected one of "
            f"{', '.join(repr(v) for v in _LAYOUT.values())})"
        )
    return found


def _parse_entry(
    line: str, fmt: str, where: str, n_classes: int | None, root_abs: str, start_index: int
) -> Sample | str:
    """One non-blank line of a ``fmt`` list -> its :class:`Sample`, or what is wrong with it (without ``where``)."""
    fields = _split_fields(line, fmt)
    expect, layout = _FIELDS[fmt], _LAYOUT[fmt]
    if len(fields) != expect:
        return f"expected '{layout}' ({expect} fields), got {line.strip()!r}"
    try:
        numbers = [int(x) for x in fields[1:]]
    except ValueError:
        return f"non-integer field in {line.strip()!r} (expected '{layout}')"
    label = numbers[-1]
    if label < 0 or (n_classes is not None and label >= n_classes):
        bound = f"[0, {n_classes})" if n_classes is not None else ">= 0"
        return f"label {label} out of range {bound}"
    path = inside_root(root_abs, fields[0])
    if path is None:
        return f"path {fields[0]!r} escapes the dataset root {root_abs}"
    if fmt == "video":
        return Sample(path, label, where, None, 0, True)
    if fmt == "blvnet":
        start, end = numbers[0], numbers[1]
        if end < start:
            return f"end frame {end} < start frame {start}"
        return Sample(path, label, where, end - start + 1, start, False)
    if numbers[0] < 1:
        return f"num_frames {numbers[0]} < 1"
    return Sample(path, label, where, numbers[0], start_index, False)


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

    def __init__(  # size: the file list's options, then VideoDataset's keywords
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
