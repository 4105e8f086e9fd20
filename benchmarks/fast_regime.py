"""A paying regime in minutes (issue 19): cheaper versions of the network study's paying recipe, each run as
``videotaf demo`` runs a regime (a from-scratch baseline, then plain and TAF fine-tunes over paired seeds, scored
by ``videotaf compare``), to find one that keeps a detectable TAF gain in a few minutes on 2 cores.

The paying recipe (:data:`videotaf.engine.recipes.PAYING`: stride-16 TSM, whole 64 px frames, 8 frames, 64
training clips per class) gains +4.79 pp [+3.61, +5.98] but takes about 1.5 h for three seeds. The candidates
shrink what costs: the input (32 px, where TA reads layer3's 4x4 maps), the frames per clip (4) and the schedules
(20 baseline and 6 fine-tuning epochs instead of 30 and 10). The one that kept its gain became the demo's default
regime (:data:`videotaf.engine.recipes.FAST`). Every candidate keeps its clips in memory (``data.cache_frames``,
which changes no clip, so runs made before the cache existed are reused).

    python -m benchmarks.fast_regime                         # every candidate (finished runs reused)
    python -m benchmarks.fast_regime --candidates D32f4 --seeds 5

Writes ``benchmarks/results/fast_regime.json`` and the ``fast_regime`` section of BENCHMARKS.md. Training time
is the sum of the runs' epoch times (what the runs cost when they were trained, on whatever else the machine ran).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, header, update_section, write_json
from videotaf.analysis.render import interval
from videotaf.cli.demo import run_demo
from videotaf.engine.logs import read_metrics
from videotaf.engine.recipes import FAST, SyntheticRecipe

#: name -> (what it changes from the paying recipe, recipe, paired seeds). The names are the work directories
#: the search ran in (``runs/search/<name>``).
CANDIDATES: dict[str, tuple[str, SyntheticRecipe, int]] = {
    "A32": ("32 px, 8 frames", dataclasses.replace(FAST, num_frames=8), 3),
    "E": (
        "32 px, 4 frames, 20 + 6 epochs",
        dataclasses.replace(FAST, epochs=20, milestones=(12, 17), finetune_epochs=6, finetune_decay=4),
        3,
    ),
    "D32f4": ("32 px, 4 frames (`FAST`, the demo's default)", FAST, 5),
}


def _training_minutes(run_dirs: list[Path]) -> float:
    return sum(r["epoch_time_s"] for run in run_dirs for r in read_metrics(run)) / 60


def run_candidate(name: str, recipe: SyntheticRecipe, seeds: int, work: Path) -> dict[str, Any]:
    """One candidate: its demo run (reused when finished) and the figures of its row."""
    out = work / name
    result = run_demo(out, size=recipe, regime="fast", seeds=seeds)
    entry = result["taf_vs_plain"]["compare"]["methods"]["taf"]
    runs = sorted((out / "compare" / "runs").iterdir())
    base = result["models"]["TSM baseline"]
    return {
        "seeds": seeds,
        "baseline_val_top1": base["top1"],
        "baseline_train_top1": base["train_top1"],
        "delta": entry["delta_top1"],
        "clip_ci95": entry["bootstrap"]["ci95"],
        "mcnemar_p": entry["mcnemar"]["p_value"],
        "verdict": entry["verdict"],
        "training_minutes": _training_minutes([out / "baseline", *runs]),
        "size": dataclasses.asdict(recipe),
    }


def markdown(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        header(),
        "Each candidate the paying recipe (stride-16 TSM, whole frames, 8 classes x 64 training / 40 validation "
        "clips, baseline 30 epochs, fine-tunes 10 epochs restarted at LR 0.005) with the changes named; TAF - plain "
        "in pp with the Student t 95 % CI over paired seeds, the paired bootstrap CI over clips and McNemar's p.",
        "",
        "| candidate | changes | baseline train / val | seeds | TAF - plain [seeds] | [clips] | McNemar p | verdict "
        "| training time (min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        d = r["delta"]
        lines.append(
            f"| {name} | {CANDIDATES[name][0]} | {r['baseline_train_top1']:.1f} / {r['baseline_val_top1']:.1f} "
            f"| {r['seeds']} | {d['mean']:+.2f} {interval(d['ci95'])} | {interval(r['clip_ci95'])} "
            f"| {r['mcnemar_p']:.2g} | {r['verdict']} | {r['training_minutes']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    p.add_argument("--seeds", type=int, help="paired seeds for every candidate (default: each one's own)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "search")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fast_regime.json")
    p.add_argument("--no-md", action="store_true", help="do not rewrite the fast_regime section of BENCHMARKS.md")
    args = p.parse_args(argv)
    rows = {}
    for name in args.candidates:
        _, recipe, seeds = CANDIDATES[name]
        rows[name] = run_candidate(name, recipe, args.seeds or seeds, args.work)
    write_json(args.out, {"candidates": rows})
    if not args.no_md:
        update_section("fast_regime", markdown(rows))
    return rows


if __name__ == "__main__":
    main()
