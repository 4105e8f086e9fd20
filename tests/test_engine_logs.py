from __future__ import annotations

import io
import json

import pytest

from videotaf.engine.logs import EPOCH_KEYS, MetricsLogger, Progress


def record(epoch, **kw):
    return {**dict.fromkeys(EPOCH_KEYS, 0.0), "epoch": epoch, **kw}


def test_metrics_jsonl_one_object_per_epoch_and_truncation(tmp_path):
    log = MetricsLogger(tmp_path)
    for e in (1, 2, 3):
        log.log_epoch(record(e, val_top1=float("nan") if e == 2 else 50.0))
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[1]["val_top1"] is None
    log.truncate_after(2)  # a run resumed after epoch 1 rewrites epochs 2..
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]
    with pytest.raises(KeyError, match="clips_per_s"):
        log.log_epoch({k: 0 for k in EPOCH_KEYS if k != "clips_per_s"})
    MetricsLogger(tmp_path / "other", enabled=False).log_epoch(record(1))
    assert not (tmp_path / "other").exists()  # non-zero ranks write nothing


def test_progress_plain_lines_off_a_tty():
    stream = io.StringIO()
    p = Progress(5, desc="epoch 1/2", mode="auto", log_every=2, stream=stream)
    for i in range(5):
        p.update(loss=1.0 / (i + 1))
    p.close()
    lines = stream.getvalue().splitlines()
    assert [x.split()[3] for x in lines] == ["2/5", "4/5", "5/5"]
    assert lines[-1].startswith("epoch 1/2 step 5/5 loss=0.2") and "eta=" in lines[-1]


def test_progress_bar_on_a_tty_and_silent_when_disabled():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    p = Progress(3, desc="ep", mode="auto", stream=stream)
    assert p.mode == "bar"
    p.update(loss=1.0)
    p.close()
    assert "ep" in stream.getvalue() and "1/3" in stream.getvalue()
    quiet = io.StringIO()
    q = Progress(3, desc="ep", mode="lines", enabled=False, stream=quiet)
    q.update(loss=1.0)
    assert quiet.getvalue() == ""
