"""``videotaf verdict``: per-clip predictions from any trainer scored with compare's own statistics."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

import videotaf.analysis.compare as compare
from test_compare import _fake_runs
from videotaf.analysis.predictions import (
    PredictionsError,
    Record,
    predictions_verdict,
    read_predictions,
    records_from_arrays,
    write_predictions,
)
from videotaf.cli import main

LABELS = [0, 1, 2, 0, 1, 2, 0, 1]
PREDS = {
    "plain": [[0, 1, 2, 0, 0, 0, 1, 2], [0, 1, 2, 0, 1, 0, 2, 0], [1, 1, 2, 0, 1, 2, 0, 0]],
    "taf": [[0, 1, 2, 0, 1, 2, 1, 0], [0, 1, 2, 0, 1, 2, 2, 0], [0, 0, 2, 0, 1, 2, 0, 1]],
}
IDS = [f"clip{i:02d}" for i in range(len(LABELS))]


def _records() -> list[Record]:
    return [
        r
        for method, per_seed in PREDS.items()
        for seed, pred in enumerate(per_seed)
        for r in records_from_arrays(LABELS, pred, seed=seed, method=method, clip_ids=IDS)
    ]


def test_statistics_equal_compares_on_the_same_predictions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(compare, "train_split_metrics", lambda run_dir, cfg: {"top1": 90.0, "loss": 0.1})
    expected = compare.collect(_fake_runs(tmp_path, PREDS, LABELS), n_boot=500)
    records = _records()
    # The clips are columns in the order of the control's first seed (the evaluation order, as in eval.json);
    # every other run's rows may come in any order: they are matched by clip id.
    control, others = records[:8], records[8:]
    random.Random(0).shuffle(others)
    records = control + others
    got = predictions_verdict(records, "plain", class_names=["a", "b", "c"], n_boot=500)
    for key in ("control", "n_seeds", "n_clips", "control_top1", "seeds"):
        assert got[key] == expected[key], key
    mine, theirs = got["methods"]["taf"], expected["methods"]["taf"]
    for key in ("top1", "delta_top1", "bootstrap", "mcnemar", "mdd", "verdict", "per_class"):
        assert mine[key] == theirs[key], key
    assert mine["train_val_gap"] is None and mine["val_loss"] is None


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_written_files_read_back(tmp_path: Path, suffix: str):
    records = _records()
    path = write_predictions(tmp_path / f"p{suffix}", records)
    assert read_predictions(path) == records
    if suffix == ".csv":
        assert path.read_text().splitlines()[0] == "clip_id,label,prediction,seed,method"


def test_bad_files_are_refused_naming_file_and_row(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("clip_id,label,prediction,seed,method\na,1,x,0,plain\n")
    with pytest.raises(PredictionsError, match=r"bad.csv line 2: label, prediction and seed must be integers"):
        read_predictions(bad)
    bad.write_text("clip,label\n")
    with pytest.raises(PredictionsError, match="header must name"):
        read_predictions(bad)
    js = tmp_path / "bad.json"
    js.write_text(json.dumps([{"clip_id": "a", "label": 0, "prediction": 0, "seed": 0}]))
    with pytest.raises(PredictionsError, match=r"bad.json record 0: missing method"):
        read_predictions(js)


def test_unpaired_runs_are_refused():
    records = _records()
    missing_seed = [r for r in records if not (r.method == "taf" and r.seed == 2)]
    with pytest.raises(PredictionsError, match=r"'taf' has seeds \[0, 1\]"):
        predictions_verdict(missing_seed)
    other_clip = [r for r in records if not (r.method == "taf" and r.clip_id == "clip03")]
    with pytest.raises(PredictionsError, match="other clips"):
        predictions_verdict(other_clip)
    relabelled = [
        Record(r.clip_id, (r.label + 1) % 3, r.prediction, r.seed, r.method) if r.method == "taf" else r
        for r in records
    ]
    with pytest.raises(PredictionsError, match="another label"):
        predictions_verdict(relabelled)
    with pytest.raises(PredictionsError, match="appears twice"):
        predictions_verdict(records + records[:1])


def test_verdict_command_prints_and_writes_compares_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    records = _records()
    write_predictions(tmp_path / "plain.csv", [r for r in records if r.method == "plain"])
    write_predictions(tmp_path / "taf.json", [r for r in records if r.method == "taf"])
    files = [str(tmp_path / "plain.csv"), str(tmp_path / "taf.json")]
    assert main(["verdict", *files, "--n-boot", "200", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| taf |" in printed and "| plain (control) |" in printed
    assert printed.startswith((tmp_path / "out" / "compare.md").read_text())  # what it wrote, as written
    saved = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert saved["control"] == "plain" and saved["n_seeds"] == 3
    # taf is right on 6 + 6 + 7 of the 8 clips, plain on 4 + 5 + 6.
    assert np.isclose(saved["methods"]["taf"]["delta_top1"]["mean"], 100 * (19 - 15) / 8 / 3)
    assert main(["verdict", *files, "--out", str(tmp_path / "out")]) == 2  # exists: --overwrite
    assert main(["verdict", *files, "--control", "advprop", "--out", str(tmp_path / "o2")]) == 2
    assert "error: --control 'advprop' is not among the methods" in capsys.readouterr().err
