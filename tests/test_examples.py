"""The two integration examples run end to end: two methods, two seeds, predictions files, the verdict table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from videotaf.analysis.predictions import read_predictions

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize(("script", "suffix"), [("hf_trainer_taf.py", ".csv"), ("lightning_taf.py", ".json")])
def test_example_runs_and_prints_the_verdict(tmp_path: Path, script: str, suffix: str):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| plain (control) |" in done.stdout and "| taf |" in done.stdout
    files = sorted(tmp_path.glob(f"*_seed*{suffix}"))
    assert [f.name for f in files] == [f"{m}_seed{s}{suffix}" for m in ("plain", "taf") for s in (0, 1)]
    clips = {frozenset(r.clip_id for r in read_predictions(f)) for f in files}
    assert len(clips) == 1 and len(next(iter(clips))) == 24  # every run scored on the same 24 validation clips
    assert f"videotaf verdict {tmp_path}" in done.stdout
