"""Run directories: what a run leaves behind, when it counts as finished, and never losing one by accident.

A run directory holds ``config.yaml``, ``metrics.jsonl``, ``checkpoints/{last,best}.pt`` and, once the last
epoch is evaluated, ``eval.json``. A command pointed at a directory that already holds a run refuses
(:class:`~videotaf.errors.RunExistsError`) unless it is asked to resume it or to overwrite it; an overwrite
removes the old run's files first, so that no ``best.pt`` of the old run survives beside the new one.

:func:`videotaf.engine.train.fit_or_reuse` builds on these to run many fine-tunes (the demo, the benchmarks):
a finished run with the same config is reused, an interrupted one resumes, one with another config is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from videotaf.config import Config, config_to_dict, load_config
from videotaf.errors import RunExistsError

RunStatus = Literal["empty", "interrupted", "finished"]
NextStep = Literal["train", "resume", "reuse"]

# Files and folders a run writes; anything else in the directory is the user's and is never touched. The writer's
# lock file (videotaf.io.LOCK_NAME) is not one of them: it exists while a writer holds the directory.
RUN_FILES = ("config.yaml", "metrics.jsonl", "eval.json", "checkpoints", "tb")  # tb: MetricsLogger's TensorBoard


def run_status(run_dir: str | Path) -> RunStatus:
    """``empty`` (no run files), ``finished`` (``eval.json`` beside ``checkpoints/last.pt``) or ``interrupted``."""
    run_dir = Path(run_dir)
    if not any((run_dir / name).exists() for name in RUN_FILES):
        return "empty"
    if (run_dir / "eval.json").is_file() and (run_dir / "checkpoints" / "last.pt").is_file():
        return "finished"
    return "interrupted"


def prepare_run_dir(run_dir: str | Path, *, resume: bool, overwrite: bool, remove: bool = True) -> None:
    """Refuse to start a new run over an existing one; with ``overwrite`` (and ``remove``) delete its files.

    Raises:
        RunExistsError: the directory holds a run and neither ``resume`` nor ``overwrite`` was given.
    """
    run_dir = Path(run_dir)
    status = run_status(run_dir)
    if status == "empty" or resume:
        return
    if not overwrite:
        raise RunExistsError(
            f"{run_dir} already holds a{'' if status == 'interrupted' else ' finished'} run; pass --resume to "
            "continue it or --overwrite to replace it (or choose another --out)"
        )
    if remove:
        for name in RUN_FILES:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def _comparable(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    # How a run is shown, where it is written, on which device it ran and how freed CPU memory is kept do not
    # change what it computes.
    ignored = ("output_dir", "progress", "log_every", "device", "keep_cpu_memory")
    runtime = {k: v for k, v in cfg_dict["runtime"].items() if k not in ignored}
    data = dict(cfg_dict["data"])
    data.pop("cache_frames", None)  # the kept frames are the decoded ones: the same clips, decoded once
    if data.get("seed") is not None:
        # With a data seed every clip draws its augmentation from (seed, epoch, index), so the number of decoding
        # workers changes only the speed (without one, each worker's RNG shapes the crops).
        data.pop("num_workers", None)
        data.pop("pin_memory", None)
    # The low-memory step computes the fused step's gradients in two backwards instead of one (equal up to float
    # summation order, like a run moved to another device): a run may switch between them and stay the same run.
    adversarial = {k: v for k, v in cfg_dict["adversarial"].items() if k != "low_memory"}
    return {**cfg_dict, "runtime": runtime, "data": data, "adversarial": adversarial}


def same_config(run_dir: str | Path, cfg: Config) -> bool:
    """Whether the run in ``run_dir`` was made with ``cfg`` (its ``config.yaml`` read with today's defaults)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return False
    try:
        saved = load_config(path)
    except ValueError:
        return False
    return _comparable(config_to_dict(saved)) == _comparable(config_to_dict(cfg))


def next_step(run_dir: str | Path, cfg: Config, *, overwrite: bool) -> NextStep:
    """What to do for ``cfg`` in ``run_dir``: ``reuse`` a finished run made with it, ``resume`` an interrupted one
    that has a checkpoint, else ``train`` (a run killed before its first checkpoint has nothing to resume).

    Raises:
        RunExistsError: the directory holds a run made with another config and ``overwrite`` is false.
    """
    run_dir = Path(run_dir)
    status = run_status(run_dir)
    if status == "empty":
        return "train"
    if same_config(run_dir, cfg):
        if status == "finished":
            return "reuse"
        return "resume" if (run_dir / "checkpoints" / "last.pt").is_file() else "train"
    if not overwrite:
        raise RunExistsError(
            f"{run_dir} holds a run made with another config; pass --overwrite to replace it or choose another --out"
        )
    return "train"
