"""Run logging: ``metrics.jsonl`` (one JSON object per epoch), optional TensorBoard, progress display.

Only the main process writes (the caller passes ``enabled=is_main``). The progress display is a tqdm bar with
an ETA on a TTY and plain ``key=value`` lines every ``log_every`` steps otherwise (CI logs, ``nohup``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

EPOCH_KEYS = (
    "epoch",
    "lr",
    "train_loss",
    "train_loss_clean",
    "train_loss_adv",
    "train_top1",
    "val_loss",
    "val_top1",
    "val_top5",
    "clips_per_s",
    "epoch_time_s",
    "skipped",
)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read ``RUN/metrics.jsonl`` (or the file itself): one JSON object per line, blank lines ignored.

    Raises ValueError naming the file and line of a malformed record, FileNotFoundError if it is missing.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    records = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{lineno}: not a JSON object ({err.msg})") from err
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")
        records.append(obj)
    return records


class MetricsLogger:
    """Appends epoch records to ``RUN/metrics.jsonl``; mirrors scalars to TensorBoard when asked and installed."""

    def __init__(self, run_dir: str | Path, *, enabled: bool = True, tensorboard: bool = False) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.enabled = enabled
        self.tb = None
        if enabled and tensorboard:
            try:
                # tensorboard is an optional dependency: imported only when a run asks for it.
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("tensorboard is not installed; runtime.tensorboard ignored", file=sys.stderr)
            else:
                self.tb = SummaryWriter(str(Path(run_dir) / "tb"))

    def truncate_after(self, epoch: int) -> None:
        """Drop records of epochs >= ``epoch`` (a resumed run rewrites them)."""
        if not self.enabled or not self.path.exists():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("epoch", -1) < epoch:
                    keep.append(line)
            except json.JSONDecodeError:
                continue
        self.path.write_text("".join(k + "\n" for k in keep))

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Append ``record`` (must hold every key of ``EPOCH_KEYS``)."""
        missing = [k for k in EPOCH_KEYS if k not in record]
        if missing:
            raise KeyError(f"epoch record lacks {missing}")
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")
            f.flush()
        if self.tb is not None:
            for k, v in record.items():
                if k != "epoch" and isinstance(v, (int, float)) and v is not None:
                    self.tb.add_scalar(f"epoch/{k}", v, record["epoch"])
            self.tb.flush()

    def log_step(self, step: int, values: dict[str, float]) -> None:
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"step/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class Progress:
    """Step progress for one epoch: tqdm bar (``mode="bar"``), plain lines (``"lines"``) or nothing.

    ``mode="auto"`` picks the bar when ``stream`` is a TTY.
    """

    def __init__(
        self,
        total: int,
        *,
        desc: str,
        mode: str = "auto",
        log_every: int = 20,
        initial: int = 0,
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        if not enabled:
            mode = "none"
        elif mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode, self.total, self.desc, self.log_every = mode, total, desc, max(1, log_every)
        self.n = initial
        self.start = time.perf_counter()
        self.start_n = initial
        self.bar = None
        if mode == "bar":
            self.bar = tqdm(total=total, initial=initial, desc=desc, file=self.stream, dynamic_ncols=True)

    def update(self, **values: float) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)
            self.bar.update(1)
        elif self.mode == "lines" and (self.n % self.log_every == 0 or self.n == self.total):
            elapsed = time.perf_counter() - self.start
            done = self.n - self.start_n
            eta = elapsed / done * (self.total - self.n) if done else float("nan")
            parts = " ".join(f"{k}={v:.4g}" for k, v in values.items())
            print(f"{self.desc} step {self.n}/{self.total} {parts} eta={eta:.0f}s", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def log(msg: str, *, enabled: bool = True) -> None:
    """One line to stderr, beside the progress lines (main process only); stdout is kept for results."""
    if enabled:
        print(msg, file=sys.stderr, flush=True)
