"""Something-Something V1: JPEG frame folders, labels CSV, ``id;class name`` split CSVs."""

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
    read_annotation_lines,
)
from videotaf.data.errors import AnnotationError

__all__ = ["SSV1_FLIP_PAIRS_CSV", "SomethingV1", "parse_somethingv1"]

# Left/right classes (GST / mmaction2 flip with label swap): positions in the official labels CSV.
SSV1_FLIP_PAIRS_CSV: tuple[tuple[int, int], ...] = ((2, 4), (30, 41), (52, 66))


def parse_somethingv1(
    labels_file: str | os.PathLike,
    annotation_file: str | os.PathLike,
    frames_dir: str | os.PathLike,
    *,
    class_order: str = "sorted",
    unlabelled_ok: bool = False,
) -> Annotations:
    """Read the SSv1 labels CSV (one class name per line) and a split CSV (``id;class name`` per line).

    Samples are the frame folders ``frames_dir/<id>`` (first file number 1), their frame count left to the
    folder. ``class_order``: "sorted" (alphabetical ids, TSM and its checkpoints) or "csv" (labels-file order,
    mmaction2). ``unlabelled_ok``: lines holding only an id are unlabelled samples (label -1; the test split).
    The flip map is the CSV-order pairs {2<->4, 30<->41, 52<->66} translated to ``class_order`` by name.
    Missing or unreadable files raise :class:`AnnotationError`; bad lines become ``problems``.
    """
    if class_order not in ("sorted", "csv"):
        raise ValueError(f"class_order must be 'sorted' or 'csv', got {class_order!r}")
    labels_path, ann_path = Path(labels_file), Path(annotation_file)
    problems: list[str] = []
    csv_classes: list[str] = []
    for no, line in enumerate(read_annotation_lines(labels_path, "labels file"), 1):
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
    base = abs_dir(frames_dir)
    samples: list[Sample] = []
    dropped = 0
    for no, line in enumerate(read_annotation_lines(ann_path, "annotation file"), 1):
        line = line.strip()
        if not line:
            continue
        where = f"{ann_path}:{no}"
        vid, sep, name = line.partition(";")
        vid, name = vid.strip(), name.strip()
        folder = inside_root(base, vid)
        problem = None
        if folder is None:
            problem = f"{where}: video id {vid!r} is not a path inside {base}"
        elif unlabelled_ok and not sep:
            samples.append(Sample(folder, -1, where, None, 1, False))
        elif not sep:
            problem = f"{where}: expected 'id;class name', got {line!r}"
        elif name not in index:
            problem = f"{where}: unknown label {name!r} (not in {labels_path.name})"
        else:
            samples.append(Sample(folder, index[name], where, None, 1, False))
        if problem is not None:
            problems.append(problem)
            dropped += 1
    flip_map: dict[int, int] = {}
    for a, b in SSV1_FLIP_PAIRS_CSV:
        if max(a, b) < len(csv_classes):
            ia, ib = index[csv_classes[a]], index[csv_classes[b]]
            flip_map[ia], flip_map[ib] = ib, ia
    return Annotations(samples, classes, problems, flip_map, dropped, str(labels_path))


class SomethingV1(VideoDataset):
    """Something-Something V1: JPEG frames ``<root>/20bn-something-something-v1/<id>/%05d.jpg`` (from 00001).

    ``split``: "train" | "validation" ("val") | "test" (unlabelled, label -1). Files under ``root`` (overridable):
    ``labels_file`` (``something-something-v1-labels.csv``, one class per line) and ``annotation_file``
    (``something-something-v1-<split>.csv``, ``id;class name`` per line). ``class_order``: "sorted" (default;
    alphabetical ids as TSM and its released checkpoints use) or "csv" (labels-file order, as mmaction2).
    The flip map is the CSV-order pairs {2<->4, 30<->41, 52<->66} translated to ``class_order`` by name.
    Parsing: :func:`parse_somethingv1`.
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
        self.split = norm_split(split, ("train", "validation", "test"))
        self.class_order = class_order
        ann = parse_somethingv1(
            self.root / labels_file,
            self.root / (annotation_file or f"something-something-v1-{self.split}.csv"),
            self.root / frames_dir,
            class_order=class_order,
            unlabelled_ok=self.split == "test",
        )
        self._finish(ann)
