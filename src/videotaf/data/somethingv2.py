"""Something-Something V2: WebM videos, ``{class name: "id"}`` labels JSON, split JSON lists of templates."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from videotaf.data.base import (
    Annotations,
    Sample,
    VideoDataset,
    abs_dir,
    flip_pairs_by_name,
    inside_root,
    norm_split,
    read_annotation_json,
)
from videotaf.data.errors import AnnotationError

__all__ = ["SSV2_FLIP_PAIRS", "SomethingV2", "parse_somethingv2", "parse_somethingv2_labels"]

# Left/right classes by name, so they hold for any id order (ids 86/87, 93/94, 166/167 in the official JSON).
SSV2_FLIP_PAIRS: tuple[tuple[str, str], ...] = (
    ("Pulling something from left to right", "Pulling something from right to left"),
    ("Pushing something from left to right", "Pushing something from right to left"),
    ("Turning the camera left while filming something", "Turning the camera right while filming something"),
)


def parse_somethingv2_labels(labels_file: str | os.PathLike) -> list[str]:
    """Class names in id order from ``something-something-v2-labels.json`` (``{name: "id"}``, ids 0..C-1).

    Any defect (not an object, a non-integer or repeated id, a gap) raises :class:`AnnotationError` naming the
    file: class ids are the model's outputs, so they cannot be guessed.
    """
    labels_path = Path(labels_file)
    raw = read_annotation_json(labels_path, "labels file")
    if not isinstance(raw, dict) or not raw:
        raise AnnotationError(
            f"{labels_path}: expected a JSON object {{class name: id}}, got {type(raw).__name__} {str(raw)[:60]!r}"
        )
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
    return [by_id[i] for i in range(len(by_id))]


def parse_somethingv2(
    labels_file: str | os.PathLike,
    annotation_file: str | os.PathLike,
    videos_dir: str | os.PathLike,
    *,
    video_ext: str = ".webm",
    unlabelled_ok: bool = False,
) -> Annotations:
    """Read the SSv2 labels JSON and a split JSON (a list of ``{"id", "template", ...}``).

    The class of an entry is its template with "[" and "]" removed (exact match, else a unique case-insensitive
    match). Samples are ``videos_dir/<id><video_ext>``, frame count left to the file. ``unlabelled_ok``: entries
    without a template are unlabelled (label -1; the test split). Flip map: the official left/right pairs by
    name; for label sets without those names, classes differing only by left <-> right. Missing files or a
    wrong JSON shape raise :class:`AnnotationError`; bad entries become ``problems``.
    """
    labels_path, ann_path = Path(labels_file), Path(annotation_file)
    classes = parse_somethingv2_labels(labels_path)
    index = {c: i for i, c in enumerate(classes)}
    lower: dict[str, list[int]] = {}
    for c, i in index.items():
        lower.setdefault(c.lower(), []).append(i)
    entries = read_annotation_json(ann_path, "annotation file")
    if not isinstance(entries, list):
        raise AnnotationError(
            f"{ann_path}: expected a JSON list of {{'id', 'template', ...}} entries, got {type(entries).__name__}"
        )
    base = abs_dir(videos_dir)
    problems: list[str] = []
    samples: list[Sample] = []
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or "id" not in e:
            problems.append(f"{ann_path}: entry {k}: expected an object with an 'id', got {str(e)[:80]!r}")
            continue
        vid = str(e["id"]).strip()
        where = f"{ann_path}: entry {k} (id {vid!r})"
        path = inside_root(base, vid + video_ext)
        if path is None or not vid:
            problems.append(f"{where}: video id is not a file name inside {base}")
            continue
        if unlabelled_ok and "template" not in e:
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
    return Annotations(samples, classes, problems, flip_map, len(problems), str(labels_path))


class SomethingV2(VideoDataset):
    """Something-Something V2: WebM videos ``<root>/20bn-something-something-v2/<id>.webm``.

    ``split``: "train" | "validation" ("val") | "test" (label -1). ``labels_file``
    (``something-something-v2-labels.json``, ``{class name: "id"}``) fixes the class ids;
    ``annotation_file`` (``something-something-v2-<split>.json``) lists ``{"id", "template", ...}``; the class is
    the template with "[" and "]" removed (exact match, else a unique case-insensitive match). Flip map: the
    official left/right pairs by name (ids 86<->87, 93<->94, 166<->167); for label sets without those names
    (e.g. :mod:`videotaf.data.synth`), classes differing only by left <-> right. Parsing:
    :func:`parse_somethingv2`.
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
        self.split = norm_split(split, ("train", "validation", "test"))
        ann = parse_somethingv2(
            self.root / labels_file,
            self.root / (annotation_file or f"something-something-v2-{self.split}.json"),
            self.root / videos_dir,
            video_ext=video_ext,
            unlabelled_ok=self.split == "test",
        )
        self._finish(ann)
