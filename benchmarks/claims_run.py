"""The claims benchmark's runs: its dataset, the baseline, each ``videotaf compare`` and one run's numbers.

Every run is an ordinary engine run directory; a finished one (same config) is reused, an interrupted one
resumed (:func:`videotaf.engine.train.fit_or_reuse`)."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, Subset

from benchmarks.claims_plan import Sizes
from videotaf.analysis.compare import CompareSettings, MethodSpec, PlannedRun, plan_runs, run_compare
from videotaf.config import Config
from videotaf.engine import recipes
from videotaf.engine.evaluate import read_class_subset, train_split_metrics
from videotaf.engine.finetune import AttackSettings, base_config
from videotaf.engine.logs import read_metrics
from videotaf.engine.train import fit_or_reuse
from videotaf.errors import OutputExistsError


def log(msg: str) -> None:
    print(f"[claims] {msg}", flush=True)


def mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.fmean(vals) if vals else None


def std(values: list[float]) -> float | None:
    """Sample standard deviation over seeds (None with fewer than two)."""
    vals = [v for v in values if v is not None]
    return statistics.stdev(vals) if len(vals) > 1 else None


def ensure_dataset(work: Path, sizes: Sizes, name: str = "data") -> Path:
    """The synthetic dataset under ``work/name``, synthesised unless one with the same settings is there
    (:func:`videotaf.engine.recipes.ensure_synthetic_data`; one with other settings ends the script)."""
    try:
        return recipes.ensure_synthetic_data(work / name, sizes, log=log)
    except OutputExistsError as err:
        raise SystemExit(str(err)) from None


def baseline_config(sizes: Sizes, data_root: Path, out_dir: Path, seed: int = 0) -> Config:
    """The from-scratch TSM baseline (``plain``) of the recipe in ``sizes``
    (:func:`videotaf.engine.recipes.baseline_config`; ``seed``: its initial weights and data order)."""
    return recipes.baseline_config(sizes, data_root, out_dir, seed=seed)


def long_term_classes(data_root: Path) -> list[str]:
    """The long-term classes of a synthetic dataset (``long_term_classes.txt``), checked against its labels."""
    labels = json.loads((data_root / "something-something-v2-labels.json").read_text())
    class_names = sorted(labels, key=lambda n: int(labels[n]))
    return read_class_subset(data_root / "long_term_classes.txt", class_names)


@dataclass(frozen=True)
class Baseline:
    """A trained baseline: its data (``subset_file`` lists the long-term classes), config, run and numbers."""

    data_root: Path
    long_term: list[str]
    cfg: Config
    run_dir: Path
    row: dict[str, Any]

    @property
    def subset_file(self) -> Path:
        return self.data_root / "long_term_classes.txt"

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"


def train_baseline(data_root: Path, sizes: Sizes, out_dir: Path, seed: int = 0) -> Baseline:
    """The baseline of ``sizes`` on the synthetic dataset at ``data_root`` in ``out_dir`` (reused when there);
    ``seed`` 0 unless a study draws a second baseline of the same recipe."""
    long_term = long_term_classes(data_root)
    cfg = baseline_config(sizes, data_root, out_dir, seed)
    run_dir = train_or_reuse(cfg, long_term)
    return Baseline(data_root, long_term, cfg, run_dir, run_row(run_dir, cfg, long_term))


def compare_settings(
    checkpoint: Path, sizes: Sizes, methods: list[MethodSpec], seeds: int, lr_from: str, out_dir: Path, subset: Path
) -> CompareSettings:
    """A ``videotaf compare`` of ``methods`` from the baseline, exactly as
    ``videotaf compare --checkpoint BASE --lr-from R --epochs E --decay-after D`` plans it (the fine-tune protocol
    of :func:`videotaf.engine.finetune.finetune_config`; seed ``s`` gives every method the same data order)."""
    base, _ = base_config(checkpoint)
    if sizes.finetune_lr is not None:
        base = dataclasses.replace(base, optim=dataclasses.replace(base.optim, lr=sizes.finetune_lr))
    return CompareSettings(
        checkpoint=checkpoint,
        methods=methods,
        seeds=seeds,
        out_dir=out_dir,
        base=base,
        epochs=sizes.finetune_epochs,
        decay_after=sizes.decay_after,
        lr_from=lr_from,
        attack=AttackSettings(),
        subset_classes=subset,
        n_boot=sizes.n_boot,
    )


def run_arms(settings: CompareSettings, out_dir: Path) -> tuple[list[PlannedRun], dict[str, Any]]:
    """Plan, run (finished runs reused, an interrupted one resumed) and score one comparison with
    :func:`videotaf.analysis.compare.run_compare`; its ``compare.json/md/png`` go to ``out_dir`` (which may differ
    from the runs' directory: the sweep shares the main comparison's runs)."""
    plan = plan_runs(settings)
    t = time.perf_counter()
    result = run_compare(settings, plan=plan, out_dir=out_dir)
    log(f"{settings.out_dir.name}: done in {time.perf_counter() - t:.0f} s -> {out_dir / 'compare.json'}")
    return plan, result


def train_or_reuse(cfg: Config, subset: list[str]) -> Path:
    """``fit(cfg)`` unless its directory already holds a finished run with this config (an interrupted one
    resumes); :func:`videotaf.engine.train.fit_or_reuse`. Returns the run directory."""
    run_dir, what = fit_or_reuse(cfg, subset_classes=subset)
    log(f"{what} {run_dir.name}: {cfg.adversarial.method}, {cfg.optim.epochs} epochs")
    return run_dir


def run_row(run_dir: Path, cfg: Config, long_term: list[str]) -> dict[str, Any]:
    """One run's numbers: val top-1/top-5/loss, long-/short-term top-1, train top-1/loss, gap, epoch time."""
    ev = json.loads((run_dir / "eval.json").read_text())
    records = read_metrics(run_dir)
    train = train_split_metrics(run_dir, cfg)
    per_class = ev.get("per_class") or {}
    short = [v for k, v in per_class.items() if k not in long_term and v is not None]
    # Validation classes are balanced, so the mean of the per-class accuracies is the subset's top-1.
    return {
        "run_dir": str(run_dir),
        "top1": ev["top1"],
        "top5": ev["top5"],
        "val_loss": ev["loss"],
        "long_term_top1": (ev.get("subset") or {}).get("top1"),
        "short_term_top1": mean(short),
        "train_top1": train["top1"],
        "train_loss": train["loss"],
        "gap": train["top1"] - ev["top1"],
        "last_epoch_train_loss_clean": records[-1]["train_loss_clean"] if records else None,
        "epoch_time_s": mean([r["epoch_time_s"] for r in records]),
        "train_time_s": sum(r["epoch_time_s"] for r in records),
        "epochs": len(records),
        # Figure 5: per-epoch clean training loss (augmented clips, train mode) and validation loss.
        "curve": {k: [r.get(k) for r in records] for k in ("train_loss_clean", "val_loss", "val_top1", "train_top1")},
    }


def spread(ds: Dataset, n: int) -> Dataset:
    """``n`` items spread evenly over ``ds`` (the split is ordered by class, so a prefix would miss classes)."""
    if n >= len(ds):
        return ds
    return Subset(ds, [round(i * len(ds) / n) for i in range(n)])


@dataclass
class Readings:
    """The comparisons of the fine-tunes, one per reading of the fine-tuning LR (keyed by reading, the first one
    the primary): each ``compare`` result, the runs' directories and rows per arm in seed order, the method
    tables over those rows (``claims_judge.method_table``) and the starting LR with where it came from."""

    compared: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    dirs: dict[str, dict[str, list[Path]]] = dataclasses.field(default_factory=dict)
    rows: dict[str, dict[str, list[dict[str, Any]]]] = dataclasses.field(default_factory=dict)
    tables: dict[str, dict[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    lrs: dict[str, tuple[float, str]] = dataclasses.field(default_factory=dict)
