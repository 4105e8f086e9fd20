"""A verdict from any trainer: per-clip predictions in, the same statistics as ``videotaf compare`` out.

``videotaf compare`` fine-tunes for you; a user who trained in their own loop (the Hugging Face ``Trainer``, a
Lightning module, a script) writes the per-clip predictions of each finished run instead, and ``videotaf verdict``
scores them with :func:`videotaf.analysis.stats.compare_methods`, the code behind ``compare``.

The format (one or more files; every row is one clip of one run, a run being one (method, seed)):

- CSV with the header ``clip_id,label,prediction,seed,method``;
- JSON: a list of objects with those five keys (``{"records": [...]}`` is read too).

``clip_id`` is any string naming the validation clip (the same clip has the same id in every run), ``label`` and
``prediction`` are class indices, ``seed`` an integer and ``method`` a name. Every method needs the same seeds,
and every run the same clips (any order: rows are matched by ``clip_id``); the seeds pair the runs as in
``compare``, so seed ``s`` of every method should share data order and augmentation. Writers:
:func:`write_predictions` (arrays), ``videotaf.integrations.transformers.write_trainer_predictions``
(``Trainer.predict``) and ``videotaf.integrations.lightning.write_lightning_predictions`` (``predict_step``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videotaf.analysis.stats import compare_methods
from videotaf.errors import VideotafError
from videotaf.io import atomic_write_bytes

FIELDS = ("clip_id", "label", "prediction", "seed", "method")


class PredictionsError(VideotafError, ValueError):
    """A predictions file that does not follow the documented format (the message names the file and row)."""


@dataclass(frozen=True)
class Record:
    """One clip of one run."""

    clip_id: str
    label: int
    prediction: int
    seed: int
    method: str


def records_from_arrays(
    labels: Sequence[int] | np.ndarray,
    predictions: Sequence[int] | np.ndarray,
    *,
    seed: int,
    method: str,
    clip_ids: Sequence[object] | None = None,
) -> list[Record]:
    """Records of one run from ``(N,)`` labels and ``(N,)`` predicted classes (ids default to ``0 .. N-1``)."""
    y = np.asarray(labels).reshape(-1)
    p = np.asarray(predictions).reshape(-1)
    ids = [str(i) for i in (range(len(y)) if clip_ids is None else clip_ids)]
    if not (len(y) == len(p) == len(ids)):
        raise ValueError(f"{len(y)} labels, {len(p)} predictions and {len(ids)} clip ids: need one of each per clip")
    if not method or "," in method:
        raise ValueError(f"method must be a non-empty name without commas, got {method!r}")
    return [Record(i, int(a), int(b), int(seed), method) for i, a, b in zip(ids, y, p)]


def write_predictions(path: str | Path, records: Iterable[Record]) -> Path:
    """Write records as CSV (``*.csv``) or JSON (any other suffix), atomically; returns ``path``."""
    path = Path(path)
    rows = [[r.clip_id, r.label, r.prediction, r.seed, r.method] for r in records]
    if path.suffix.lower() == ".csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(FIELDS)
        writer.writerows(rows)
        data = text.getvalue().encode()
    else:
        data = (json.dumps([dict(zip(FIELDS, row)) for row in rows], indent=1) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def _record(raw: dict[str, Any], where: str) -> Record:
    missing = [f for f in FIELDS if f not in raw or raw[f] in (None, "")]
    if missing:
        raise PredictionsError(f"{where}: missing {', '.join(missing)} (expected the fields {', '.join(FIELDS)})")
    try:
        return Record(
            str(raw["clip_id"]), int(raw["label"]), int(raw["prediction"]), int(raw["seed"]), str(raw["method"])
        )
    except (TypeError, ValueError):
        raise PredictionsError(f"{where}: label, prediction and seed must be integers, got {raw}") from None


def read_predictions(path: str | Path) -> list[Record]:
    """The records of one CSV or JSON predictions file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"predictions file not found: {path}")
    text = path.read_text()
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or set(FIELDS) - set(reader.fieldnames):
            raise PredictionsError(f"{path}: the CSV header must name {', '.join(FIELDS)}, got {reader.fieldnames}")
        return [_record(row, f"{path} line {n}") for n, row in enumerate(reader, start=2)]
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PredictionsError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    rows = obj.get("records") if isinstance(obj, dict) else obj
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise PredictionsError(f"{path}: expected a JSON list of objects with {', '.join(FIELDS)}")
    return [_record(row, f"{path} record {n}") for n, row in enumerate(rows)]


def _runs(records: Sequence[Record]) -> dict[tuple[str, int], dict[str, Record]]:
    """Records grouped by run ``(method, seed)``, then by clip id (a clip twice in one run is refused)."""
    runs: dict[tuple[str, int], dict[str, Record]] = {}
    for r in records:
        run = runs.setdefault((r.method, r.seed), {})
        if r.clip_id in run:
            raise PredictionsError(f"method {r.method!r} seed {r.seed}: clip {r.clip_id!r} appears twice")
        run[r.clip_id] = r
    return runs


def correctness(
    records: Sequence[Record], control: str | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, list[int]]:
    """``({method: (S, N) bool correct}, labels (N,), seeds)`` with the control first, clips in the order of the
    control's first seed; refuses methods with other seeds, runs with other clips and clips with other labels."""
    if not records:
        raise PredictionsError("no predictions to score")
    runs = _runs(records)
    methods = list(dict.fromkeys(r.method for r in records))
    control = methods[0] if control is None else control
    if control not in methods:
        raise PredictionsError(f"--control {control!r} is not among the methods {methods}")
    methods = [control] + [m for m in methods if m != control]
    seeds = sorted({s for m, s in runs if m == control})
    ids = list(runs[(control, seeds[0])])
    labels = np.array([runs[(control, seeds[0])][i].label for i in ids], dtype=np.int64)
    correct: dict[str, np.ndarray] = {}
    for method in methods:
        have = sorted(s for m, s in runs if m == method)
        if have != seeds:
            raise PredictionsError(f"method {method!r} has seeds {have}, the control {control!r} has {seeds}")
        rows = []
        for seed in seeds:
            run = runs[(method, seed)]
            if set(run) != set(ids):
                raise PredictionsError(f"method {method!r} seed {seed}: other clips than the control's seed {seeds[0]}")
            y = np.array([run[i].label for i in ids], dtype=np.int64)
            if not np.array_equal(y, labels):
                bad = ids[int(np.flatnonzero(y != labels)[0])]
                raise PredictionsError(f"method {method!r} seed {seed}: clip {bad!r} has another label than elsewhere")
            rows.append(np.array([run[i].prediction for i in ids], dtype=np.int64) == labels)
        correct[method] = np.stack(rows)
    return correct, labels, seeds


def predictions_verdict(
    records: Sequence[Record],
    control: str | None = None,
    *,
    class_names: Sequence[str] | None = None,
    n_boot: int = 10000,
) -> dict[str, Any]:
    """Every method against the control (default: the first method in ``records``), as ``compare.json``'s body
    (:func:`videotaf.analysis.stats.compare_methods`: seed CIs, bootstrap, McNemar, MDD, verdict, per class).

    ``class_names`` (default ``"0" .. "C-1"``) name the classes of the per-class changes. Without training
    metrics, ``train_val_gap`` and ``val_loss`` are None.
    """
    correct, labels, seeds = correctness(records, control)
    if class_names is None:
        class_names = [str(k) for k in range(int(labels.max()) + 1)]
    elif int(labels.max()) >= len(class_names):
        raise PredictionsError(f"label {int(labels.max())} has no class name ({len(class_names)} names)")
    result = compare_methods(correct, next(iter(correct)), labels=labels, class_names=list(class_names), n_boot=n_boot)
    result["seeds"] = seeds
    return result
