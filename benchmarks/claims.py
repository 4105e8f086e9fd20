"""The paper's claims measured side by side at CPU scale on the synthetic long-term-motion dataset.

One run answers, with the same baseline and the same data for every method:

1. Table 1 / 2a: does TAF fine-tuning beat the equal-epoch ``plain`` fine-tune, CE-based adversarial fine-tuning
   (``ce_adv``) and AdvProp (``advprop``)? Top-1/top-5 mean and std over seeds (paper: 3 trials, Sec. 4.1).
2. Figure 4: is the gain larger on the long-term classes (``long_term_classes.txt`` of the synthetic data)?
3. Figure 5 / Sec. 4.3: does TAF shrink the over-fitting gap (train top-1 - val top-1) and the validation loss?
4. Table 3 / Sec. 4.5: top-1/top-5, mPC and rPC under the paper's eight corruptions, plain versus TAF.
5. Figure 3: on the baseline, does TA move the temporal attention (Grad-CAM frame shares) and CE-PGD hardly?
   Figure 6: do TAF-fine-tuned models attend more evenly over time than plain-fine-tuned ones?
6. Tables 2b / 2c: alpha in {0.5, 0.7, 0.9}; (eps, step, K) in {6/255, 64/255} x {1, 3} (one seed).

Pipeline: ``synthesize`` the dataset into ``--work``; pre-train a small TSM (depth 18, width 0.25, 8 frames)
from scratch with ``plain``; fine-tune it with the paper's protocol scaled down (LR x0.1 after 2/3 of the
epochs; alpha 0.7, eps 64/255, step 32/255, K 1, N = T), built exactly as ``videotaf finetune`` builds it from
the baseline checkpoint. Every run is an ordinary engine run directory; a run whose ``eval.json`` exists (with
the same config) is reused, an interrupted one is resumed, so re-running the script only does what is missing.

The script is split by job: ``claims_plan`` (sizes, arms, the sweep, the paper's numbers), ``claims_run`` (the
dataset, the baseline of :mod:`videotaf.engine.recipes`, each ``videotaf compare``), ``claims_judge`` (calibration,
tables, corruptions, attention, verdicts) and ``claims_render`` (the BENCHMARKS.md section); this module parses
the command line and runs the stages. ``regimes`` and ``networks`` reach the parts through it.

    python -m benchmarks.claims --quick                 # the whole pipeline at toy size (20 s idle, 6 min busy)
    python -m benchmarks.claims                         # full mode (about 30 min on 2 idle cores)
    python -m benchmarks.claims --work runs/claims --seeds 5 --finetune-epochs 9
    python -m benchmarks.claims --recipe paying --section claims_paying ...   # on the network where TAF paid
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import torch

from benchmarks._common import ROOT, update_section, write_json
from benchmarks.claims_judge import (
    attention,
    baseline_calibration,
    method_table,
    pairwise,
    robustness,
    sweep_summary,
    verdicts,
)
from benchmarks.claims_plan import FULL, METHOD_ORDER, PAPER, QUICK, Sizes, arms, sweep_arms
from benchmarks.claims_render import markdown
from benchmarks.claims_run import (
    Baseline,
    Readings,
    baseline_config,
    compare_settings,
    ensure_dataset,
    log,
    run_arms,
    run_row,
    spread,
    train_baseline,
    train_or_reuse,
)
from videotaf.analysis.compare import MethodSpec
from videotaf.analysis.render import interval, number
from videotaf.engine.finetune import finetune_lr
from videotaf.engine.recipes import FAST, PAYING, on_paying_network, recipe_fields

T = TypeVar("T")

# What ``regimes`` and ``networks`` use as ``claims.<name>`` beside what this module runs.
__all__ = [
    "FULL",
    "QUICK",
    "Sizes",
    "baseline_calibration",
    "baseline_config",
    "compare_settings",
    "ensure_dataset",
    "main",
    "pairwise",
    "run_arms",
    "run_row",
    "spread",
    "train_baseline",
    "train_or_reuse",
]

#: Command-line options that set the :class:`Sizes` field of the same name as given.
SIZE_OPTIONS = (
    "classes",
    "train_per_class",
    "val_per_class",
    "video_frames",
    "video_size",
    "crop",
    "batch_size",
    "lr",
    "dropout",
    "epochs",
    "finetune_epochs",
    "finetune_lr",
    "seeds",
    "num_workers",
    "fraction",
    "sweep_seeds",
    "other_reading_seeds",
    "robust_seeds",
    "robust_clips",
    "attention_clips",
)


# --------------------------------------------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="toy sizes: the whole pipeline in a few minutes")
    p.add_argument("--work", type=Path, default=None, help="dataset and runs (default runs/claims[_quick])")
    p.add_argument("--out", type=Path, default=None, help="JSON (default benchmarks/results/claims[_quick].json)")
    p.add_argument("--no-md", action="store_true", help="do not rewrite the claims section of BENCHMARKS.md")
    p.add_argument("--classes", type=int)
    p.add_argument("--train-per-class", type=int)
    p.add_argument("--val-per-class", type=int)
    p.add_argument("--video-frames", type=int)
    p.add_argument("--video-size", type=int)
    p.add_argument("--crop", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--dropout", type=float)
    p.add_argument("--epochs", type=int, help="baseline epochs (from scratch)")
    p.add_argument("--finetune-epochs", type=int)
    p.add_argument("--finetune-lr", type=float, help="fine-tuning base LR (default: the baseline's, like finetune)")
    p.add_argument("--seeds", type=int)
    p.add_argument("--methods", nargs="+", choices=METHOD_ORDER, help="plain (the control) is always run")
    p.add_argument("--lr-readings", nargs="+", choices=("checkpoint", "config"), help="first = primary")
    p.add_argument("--fraction", type=float, help="adversarial.fraction of the cheaper TAF arm (1 = no such arm)")
    p.add_argument("--sweep-seeds", type=int)
    p.add_argument("--other-reading-seeds", type=int, help="seeds of the comparisons after the first LR reading")
    p.add_argument("--robust-seeds", type=int)
    p.add_argument("--robust-clips", type=int)
    p.add_argument("--attention-clips", type=int)
    p.add_argument("--no-sweep", action="store_true", help="skip the alpha / attack-setting sweep (Tables 2b, 2c)")
    p.add_argument("--corruptions", nargs="+", help="names or aliases (paper, all, ...)")
    p.add_argument("--severities", nargs="+", type=int)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument(
        "--recipe",
        choices=("default", "paying", "fast"),
        default="default",
        help="paying: the network study's regime where TAF paid (videotaf.engine.recipes.PAYING: stride-16 TSM, "
        "whole frames, 64 clips per class, fine-tunes restarted at 0.005); fast: that recipe at 32 px and 4 "
        "frames, `videotaf demo`'s default (videotaf.engine.recipes.FAST); the options above still apply",
    )
    p.add_argument("--section", default="claims", help="the BENCHMARKS.md section to rewrite (default claims)")
    return p


def sizes_from_args(args: argparse.Namespace) -> Sizes:
    """:data:`FULL` (or :data:`QUICK` with ``--quick``) with the options given on the command line."""
    changes: dict[str, Any] = {f: getattr(args, f) for f in SIZE_OPTIONS if getattr(args, f) is not None}
    if args.methods:
        changes["methods"] = tuple(dict.fromkeys(["plain", *args.methods]))
    if args.lr_readings:
        changes["lr_readings"] = tuple(dict.fromkeys(args.lr_readings))
    if args.corruptions:
        changes["corruptions"] = tuple(args.corruptions)
    if args.severities:
        changes["severities"] = tuple(args.severities)
    if args.no_sweep:
        changes["sweep"] = False
    return dataclasses.replace(recipe_sizes(args.recipe, args.quick), **changes)


def recipe_sizes(recipe: str, quick: bool) -> Sizes:
    """:data:`FULL` or :data:`QUICK`; with ``recipe="paying"`` the baseline's and fine-tunes' recipe is the network
    study's paying regime (:data:`videotaf.engine.recipes.PAYING`; with ``quick``, its network and view at
    :data:`QUICK`'s sizes, TA reading layer3 for 4x4 maps at 32 px), with ``"fast"`` the demo's default regime
    (:data:`videotaf.engine.recipes.FAST`, the same ``quick``)."""
    if recipe == "default":
        return QUICK if quick else FULL
    if quick:
        return on_paying_network(QUICK)
    return dataclasses.replace(FULL, **recipe_fields(FAST if recipe == "fast" else PAYING))


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Sizes]:
    args = build_parser().parse_args(argv)
    sizes = sizes_from_args(args)
    suffix = "_quick" if args.quick else ""
    args.work = args.work or ROOT / "runs" / f"claims{suffix}"
    args.out = args.out or ROOT / "benchmarks" / "results" / f"claims{suffix}.json"
    return args, sizes


# --------------------------------------------------------------------------------------------------- stages


def finetune_readings(base: Baseline, sizes: Sizes, work: Path) -> Readings:
    """Table 1 / 2a and the cheaper TAF: one ``videotaf compare`` per reading of the fine-tuning LR (the first
    with every method and seed, the others with ``other_reading_methods`` over ``other_reading_seeds``)."""
    out = Readings()
    for reading in sizes.lr_readings:
        first = reading == sizes.lr_readings[0]
        methods = None if first else sizes.other_reading_methods
        seeds = sizes.seeds if first else min(sizes.seeds, sizes.other_reading_seeds)
        settings = compare_settings(
            base.checkpoint, sizes, arms(sizes, methods), seeds, reading, work / f"lr_{reading}", base.subset_file
        )
        assert settings.base is not None
        out.lrs[reading] = finetune_lr(base.checkpoint, reading, settings.base.optim.lr)
        plan, out.compared[reading] = run_arms(settings, settings.out_dir)
        out.dirs[reading], out.rows[reading] = {}, {}
        for run in plan:  # seed-major: each arm's list is in seed order
            out.dirs[reading].setdefault(run.spec.label, []).append(run.run_dir)
            out.rows[reading].setdefault(run.spec.label, []).append(run_row(run.run_dir, run.cfg, base.long_term))
        out.tables[reading] = method_table(out.rows[reading])
        for label, entry in out.compared[reading]["methods"].items():
            d = entry["delta_top1"]
            log(f"LR from the {reading}: {label} - plain {d['mean']:+.2f} pp {interval(d['ci95'])}: {entry['verdict']}")
    return out


def sweep(base: Baseline, sizes: Sizes, work: Path) -> dict[str, Any]:
    """Tables 2b / 2c: the sweep's arms beside plain and taf of the primary comparison (their runs are reused)."""
    primary = sizes.lr_readings[0]
    plan_arms = sweep_arms()
    settings = compare_settings(
        base.checkpoint,
        sizes,
        [MethodSpec("plain", "plain"), *dict.fromkeys(plan_arms.values())],
        sizes.sweep_seeds,
        primary,
        work / f"lr_{primary}",
        base.subset_file,
    )
    _, sweep_result = run_arms(settings, work / "sweep")
    return sweep_summary(sweep_result, plan_arms)


def timed(timings: dict[str, float], key: str, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, its wall time stored as ``timings[key]``."""
    t = time.perf_counter()
    out = fn(*args)
    timings[key] = time.perf_counter() - t
    return out


def run_stages(base: Baseline, sizes: Sizes, work: Path, timings: dict[str, float]) -> dict[str, Any]:
    """Every stage after the baseline, each timed: the fine-tunes, the sweep, the corruptions and the attention
    (the last three only with TAF among the methods), then the verdicts."""
    readings = timed(timings, "finetune_s", finetune_readings, base, sizes, work)
    primary_dirs = readings.dirs[sizes.lr_readings[0]]
    swept = None
    if sizes.sweep and "taf" in sizes.methods:
        swept = timed(timings, "sweep_s", sweep, base, sizes, work)
    rob = None
    att: dict[str, Any] = {"baseline": {"attacks": {}}, "finetuned": {}}
    if "taf" in sizes.methods:
        rob = timed(timings, "robustness_s", robustness, primary_dirs, base.cfg, sizes, work / "robustness")
        att = timed(timings, "attention_s", attention, base.run_dir, primary_dirs, base.cfg, sizes)
    return {
        "readings": readings,
        "robustness": rob,
        "attention": att,
        "sweep": swept,
        "verdicts": verdicts(readings, base.run_dir, rob, att, swept, sizes),
    }


def calibrated_baseline(data_root: Path, sizes: Sizes, work: Path) -> tuple[Baseline, dict[str, Any]]:
    """The baseline (``work/baseline``) and whether it over-fits as intended (:func:`baseline_calibration`)."""
    base = train_baseline(data_root, sizes, work / "baseline")
    return base, baseline_calibration(base.row, sizes)


def result_record(args: argparse.Namespace, sizes: Sizes, base: Baseline, stages: dict[str, Any]) -> dict[str, Any]:
    """The JSON the script writes (``--out``), what the BENCHMARKS.md section is rendered from."""
    readings: Readings = stages["readings"]
    return {
        "quick": args.quick,
        "work": str(args.work),
        "sizes": asdict(sizes),
        "decay_after": sizes.decay_after,
        "base_milestones": sizes.base_milestones,
        "num_val_clips": sizes.classes * sizes.val_per_class,
        "long_term_classes": base.long_term,
        "calibration": stages["calibration"],
        "baseline": base.row,
        "lr": readings.lrs,
        "runs": readings.rows,
        "methods": readings.tables,
        "compare": readings.compared,
        "robustness": stages["robustness"],
        "attention": stages["attention"],
        "sweep": stages["sweep"],
        "verdicts": stages["verdicts"],
        "paper": {k: {str(kk): vv for kk, vv in v.items()} if isinstance(v, dict) else v for k, v in PAPER.items()},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, sizes = parse_args(argv)
    torch.set_num_threads(args.threads)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    data_root = timed(timings, "dataset_s", ensure_dataset, work, sizes)
    base, calibration = timed(timings, "baseline_s", calibrated_baseline, data_root, sizes, work)
    stages = {**run_stages(base, sizes, work, timings), "calibration": calibration}
    timings["total_s"] = time.perf_counter() - t0
    # Training seconds summed over every run, also when runs were reused: what a fresh run of this plan costs.
    rows = stages["readings"].rows
    seen = {r["run_dir"]: r["train_time_s"] for by_arm in rows.values() for rs in by_arm.values() for r in rs}
    timings["training_in_runs_s"] = base.row["train_time_s"] + sum(seen.values())
    result = {**result_record(args, sizes, base, stages), "timings": timings}
    write_json(args.out, result)
    log(f"results: {args.out}")
    for v in result["verdicts"]:
        log(f"{v['claim']}: {number(v['diff'], 3, signed=True)} {interval(v['ci95'], 3)} -> {v['verdict']}")
    if not args.no_md:
        update_section(args.section, markdown(result))
        log(f"BENCHMARKS.md {args.section} section updated")
    return result


if __name__ == "__main__":
    main()
