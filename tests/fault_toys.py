"""Helpers of tests/test_faults.py: a slow tiny model for kill tests, damaged checkpoint files, checkpoint writes
that fail part-way, and an in-process stand-in for SIGKILL.

Importable by subprocesses too (their ``PYTHONPATH`` holds tests/): ``model.name: fault_toys:slow_tiny_net``.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import videotaf.io as vio
from engine_toys import TinyNet

# ----------------------------------------------------------------------------------------------- models


class SlowTinyNet(TinyNet):
    """:class:`TinyNet` that sleeps ``delay`` seconds in every training forward, so that a parent process can
    kill a run at a chosen point of it. The sleep changes no number: weights match a run without it."""

    def __init__(self, num_classes: int = 3, num_frames: int = 4, width: int = 4, delay: float = 0.0) -> None:
        super().__init__(num_classes, num_frames, width)
        self.delay = delay

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if self.training and self.delay:
            time.sleep(self.delay)
        return super().forward(clips)


def slow_tiny_net(num_classes: int = 3, num_frames: int = 4, width: int = 4, delay: float = 0.0) -> SlowTinyNet:
    return SlowTinyNet(num_classes, num_frames, width, delay)


# ----------------------------------------------------------------------------------------------- damaged files


class Foreign:
    """Something no weights-only load may build (a pickle of arbitrary code is refused, never run)."""

    def __init__(self) -> None:
        self.payload = "not a checkpoint"


DAMAGES = ("truncated", "random_bytes", "foreign_pickle", "empty", "foreign_weights")


def damaged_checkpoint(kind: str, good: Path, path: Path) -> Path:
    """Write a damaged stand-in for checkpoint ``good`` at ``path``: the first half of its zip (``truncated``),
    4 KiB of noise, a plain pickle of a foreign object, an empty file, or a valid torch file of plain weights
    that is not a videotaf checkpoint (``foreign_weights``: a bare state dict with no format and no config)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "foreign_pickle":
        path.write_bytes(pickle.dumps({"model": Foreign()}))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign_weights":
        torch.save({"backbone.conv1.weight": torch.zeros(2, 3, 1, 1), "head.bias": torch.zeros(2)}, path)
    else:
        raise ValueError(kind)
    return path


# ----------------------------------------------------------------------------------------------- failing writes


def enospc() -> None:
    raise OSError(28, os.strerror(28))  # errno.ENOSPC


def zip_writer_error() -> None:
    # What torch's C++ zip writer raises when a write comes up short (the disk filled up under it).
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4288 vs 4160")


def hang(marker: str = "INSIDE-CHECKPOINT-WRITE") -> Callable[[], None]:
    """A fault that announces itself on stderr and then waits to be killed (for the kill-mid-write test)."""

    def fail() -> None:
        print(marker, file=sys.stderr, flush=True)
        time.sleep(600)

    return fail


class CheckpointWriteFault:
    """Make a checkpoint write stop part-way, inside :func:`videotaf.io.atomic_write`'s ``write``.

    After ``after`` good writes of files named ``name``, the next one writes the first half of the real bytes
    ``torch.save`` produces into the temporary file, fsyncs them, and calls ``fail()`` (raise, or hang until
    killed). Later writes succeed again. ``install(setattr)`` takes ``monkeypatch.setattr`` (or the builtin
    ``setattr`` in a subprocess) and patches ``videotaf.io.atomic_write`` (to know the destination) and
    ``torch.save`` as ``atomic_torch_save`` calls it.
    """

    def __init__(self, name: str, after: int, fail: Callable[[], None]) -> None:
        self.name, self.after, self.fail = name, after, fail
        self.seen = 0
        self.failed: list[Path] = []
        self._target: Path | None = None

    def install(self, set_attr: Callable[[Any, str, Any], None]) -> CheckpointWriteFault:
        real_write, real_save = vio.atomic_write, torch.save

        def atomic_write(path: Any, write: Any) -> Path:
            self._target = Path(path)
            try:
                return real_write(path, write)
            finally:
                self._target = None

        def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
            if self._target is None or self._target.name != self.name:
                return real_save(obj, f, *args, **kwargs)
            self.seen += 1
            if self.seen != self.after + 1:
                return real_save(obj, f, *args, **kwargs)
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            self.failed.append(self._target)
            self.fail()

        set_attr(vio, "atomic_write", atomic_write)
        set_attr(torch, "save", save)
        return self


# ----------------------------------------------------------------------------------------------- in-process kill


class Killed(BaseException):
    """Stands for SIGKILL inside the test process: nothing in ``fit`` or the CLI catches it, nothing after it runs."""


def kill_at_save(set_attr: Callable[[Any, str, Any], None], *, epoch: int, epoch_step: int, after: bool) -> None:
    """Raise :class:`Killed` at the checkpoint write of ``last.pt`` where the run stands at ``(epoch, epoch_step)``
    (epochs completed, steps done in the current epoch; ``(e, 0)`` is the end-of-epoch write after epoch ``e``):
    before it lands (``after=False``: that write is lost) or right after it (``after=True``)."""
    from videotaf.engine.train import Checkpointer

    real = Checkpointer.save

    def save(self: Any, run: Any, name: str = "last.pt", *, mid_epoch: bool = False) -> None:
        hit = name == "last.pt" and (run.epoch, run.epoch_step if mid_epoch else 0) == (epoch, epoch_step)
        if hit and not after:
            raise Killed(f"before last.pt at {epoch}/{epoch_step}")
        real(self, run, name, mid_epoch=mid_epoch)
        if hit:
            raise Killed(f"after last.pt at {epoch}/{epoch_step}")

    set_attr(Checkpointer, "save", save)
