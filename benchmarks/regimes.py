"""Where does TAF help? A regime study: every cell is a ``videotaf compare`` of plain vs TAF vs CE-PGD (``ce_adv``)
vs AdvProp fine-tuning from the same baseline, varying one factor at a time from a documented centre point.

Centre point (the claims benchmark's data, model and protocol, ``benchmarks/claims.py``): the synthetic
long-term-motion set (8 classes, 24 training clips per class, a baseline that over-fits), TSM depth 18 width 0.25
at 56 px (layer4 CAM maps of 2x2), the TSN multi-scale crop, fine-tuning LR restarted at the baseline's initial LR
(``--lr-from config``), alpha 0.7, eps 64/255, step 32/255, K 1. The factors (the issue's list):

- CAM map size at the CAM layer: 2x2 (layer4, the centre), 4x4 (layer3, stride 16) and 7x7 (layer2, stride 8),
  named with ``adversarial.cam_layer``; only the TAF arm changes, so the other arms are the centre's runs. Beside
  the accuracy: the baseline's per-frame CAM mass (peak frame share, entropy of the frame shares) at that layer and
  how far TA moves it (total variation), on the same clips. (Larger inputs would give the same map sizes at
  layer4 at 4x-16x the cost; not run here.)
- Training augmentation: the multi-scale crop (centre) vs the evaluation's centre crop (``data.train_crop=center``)
  vs no crop (``none``), for every arm.
- Training-set size: 24 clips per class (centre) vs 12, with its own baseline, and how far each baseline over-fits.
- Fine-tuning LR: restart at the baseline's initial LR (centre) vs continue at the LR it was saved with
  (``--lr-from checkpoint``, the paper's reading of Sec. 4.1).
- Attack strength: at the cell where TAF - plain is largest, TAF with eps 16/255 (step 8/255, K 1) and with
  K 3 (eps 64/255, step 32/255).

Runs are shared with the claims benchmark (same ``--work``): a cell whose arms equal a claims run reuses it, and
every finished run is reused, an interrupted one resumed. Outputs: ``benchmarks/results/regimes.json``, the
``regimes`` section of BENCHMARKS.md, and each cell's ``compare.json/md/png`` under ``WORK/regimes/<cell>/``.

    python -m benchmarks.regimes --quick                # every cell at toy size (about 2 min)
    python -m benchmarks.regimes                        # the study (shares runs/claims with claims.py)
    python -m benchmarks.regimes --cells centre cam_4x4 --seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from benchmarks import claims
from benchmarks._common import ROOT, header, update_section, write_json
from videotaf.analysis.attention import analyze_attention
from videotaf.analysis.compare import MethodSpec
from videotaf.analysis.render import ONE_SEED, delta_ci, number
from videotaf.data import build_dataset
from videotaf.engine.builders import load_model

METHODS = ("plain", "taf", "ce_adv", "advprop")
CAM_LAYERS = {"2x2": "backbone.layer4", "4x4": "backbone.layer3", "7x7": "backbone.layer2"}
ATTACKS = {  # name -> TAF overrides of the attack-strength cells
    "eps16": ("adversarial.eps=0.0627450980392157", "adversarial.step_size=0.0313725490196078"),  # 16/255, 8/255
    "k3": ("adversarial.steps=3",),
}


@dataclass(frozen=True)
class Cell:
    """One ``compare`` of the study: a factor at one level, every other factor at the centre point.

    ``pool`` names the runs directory the cell plans into: cells that differ only in the TAF arm's overrides
    (``ta``) share one, so their plain, ce_adv and advprop runs are run once. ``common`` overrides apply to every
    arm; ``data`` picks the dataset and baseline ("main" or "small")."""

    name: str
    factor: str
    level: str
    pool: str
    lr_from: str = "config"
    data: str = "main"
    common: tuple[str, ...] = ()
    ta: tuple[str, ...] = ()
    cam_map: str = "2x2"

    def arms(self) -> list[MethodSpec]:
        taf = MethodSpec(f"taf_{self.name}", "taf", self.ta) if self.ta else MethodSpec("taf", "taf")
        return [MethodSpec("plain", "plain"), taf, MethodSpec("ce_adv", "ce_adv"), MethodSpec("advprop", "advprop")]


def cam_override(size: str) -> tuple[str, ...]:
    return () if size == "2x2" else (f"adversarial.cam_layer={CAM_LAYERS[size]}",)


CELLS = [
    Cell("centre", "centre", "2x2 CAM, multi-scale crop, 24/class, LR restart", "lr_config"),
    Cell("cam_4x4", "CAM map size", "4x4 (layer3)", "lr_config", ta=cam_override("4x4"), cam_map="4x4"),
    Cell("cam_7x7", "CAM map size", "7x7 (layer2)", "lr_config", ta=cam_override("7x7"), cam_map="7x7"),
    Cell("aug_center", "augmentation", "centre crop only", "aug_center", common=("data.train_crop=center",)),
    Cell("aug_none", "augmentation", "no crop (whole frame)", "aug_none", common=("data.train_crop=none",)),
    Cell("data_12", "training-set size", "12/class", "small_config", data="small"),
    Cell("lr_checkpoint", "fine-tuning LR", "continue at the saved LR", "lr_checkpoint", lr_from="checkpoint"),
]
DERIVED = tuple(f"attack_{k}" for k in ATTACKS)


def log(msg: str) -> None:
    print(f"[regimes] {msg}", flush=True)


def attack_cells(best: Cell) -> list[Cell]:
    """The attack-strength cells at ``best``: its pool and overrides, the TAF arm with other eps / K."""
    return [
        dataclasses.replace(
            best,
            name=f"attack_{k}",
            factor="attack strength",
            level=f"{k} at {best.name}",
            ta=best.ta + sets,
        )
        for k, sets in ATTACKS.items()
    ]


def cam_statistics(checkpoint: Path, val_cfg: Any, layer: str, clips: int) -> dict[str, Any]:
    """The baseline's clean per-frame CAM mass at ``layer`` (peak frame share, normalised entropy of the frame
    shares, Sec. 3.2) and how far TA (eps 64/255, K 1) moves it (total variation), on ``clips`` val clips."""
    model, _ = load_model(checkpoint)
    ds = claims.spread(build_dataset(val_cfg.data, val_cfg.data.val_split, False), clips)
    loader = DataLoader(ds, batch_size=16, shuffle=False, num_workers=0)
    res = analyze_attention(model, loader, eps=64 / 255, step_size=32 / 255, steps=1, cam_layer=layer)
    clean, ta = res["clean"], res["attacks"]["ta"]["shift"]
    return {
        "layer": layer,
        "num_clips": res["num_clips"],
        "map": res["cam_size"],
        "entropy": clean["entropy"]["mean"],
        "peak_share": clean["peak_share"]["mean"],
        "ta_tv": ta["tv"]["mean"],
        "ta_nonkey_gain": ta["nonkey_gain"]["mean"],
    }


def delta(entry: dict[str, Any]) -> dict[str, Any]:
    d = entry["delta_top1"]
    return {
        "mean": d["mean"],
        "ci95": d["ci95"],
        "clip_ci95": entry["bootstrap"]["ci95"],
        "mdd": entry["mdd"]["mdd"],
        "verdict": entry["verdict"],
    }


def cell_row(cell: Cell, result: dict[str, Any], dirs: dict[str, list[Path]], n_boot: int) -> dict[str, Any]:
    """A cell's numbers: plain's top-1 and train-val gap, each method against plain, TA against CE-PGD."""
    taf = cell.arms()[1].label
    methods = result["methods"]
    ta_vs_ce = claims.pairwise(dirs, taf, "ce_adv", n_boot)["methods"][taf]
    return {
        "cell": dataclasses.asdict(cell),
        "n_seeds": result["n_seeds"],
        "n_clips": result["n_clips"],
        "plain_top1": result["control_top1"],
        "plain_gap": result["control_train_val_gap"],
        "taf": delta(methods[taf]),
        "ce_adv": delta(methods["ce_adv"]),
        "advprop": delta(methods["advprop"]),
        "taf_vs_ce_adv": delta(ta_vs_ce),
        "taf_gap_change": methods[taf]["train_val_gap"]["delta_vs_control"],
    }


def fmt_delta(d: dict[str, Any]) -> str:
    """``+1.25 [-0.50, 3.00]``: a difference with its seed interval (``n/a (1 seed)`` without one)."""
    return delta_ci(d["mean"], d["ci95"], signed_ci=False, missing=ONE_SEED)


VERDICT_SHORT = {"better": "better", "worse": "worse", "no detectable difference": "n.d."}


def markdown(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md "regimes" section."""
    sizes = result["sizes"]
    lines = [
        header(),
        f"Every row is one `videotaf compare` from its baseline: plain, TAF, CE-PGD (`ce_adv`) and AdvProp, "
        f"{result['seeds']} paired seeds unless the seeds column says fewer, {sizes['finetune_epochs']}-epoch fine-tunes (LR x0.1 after "
        f"{result['decay_after']}). Centre point: {CELLS[0].level}; synthetic data of the claims benchmark "
        f"({sizes['classes']} classes, {sizes['val_per_class']} val clips per class, TSM-18 at 1/4 width, crop "
        f"{sizes['crop']}). Differences in pp, top-1 of the method minus plain (TA - CE: TAF minus CE-PGD), with the "
        "Student t 95% CI over seeds; the verdict also needs the paired bootstrap CI over clips to agree "
        "(`better` / `worse` / `n.d.` = no detectable difference). CAM columns: the baseline's clean frame "
        "attention at the cell's CAM layer (peak frame share, normalised entropy; uniform = 1/8 and 1) and the "
        f"total variation TA moves it by, on {result['cam_clips']} val clips. Rows with 1 seed have no seed "
        "interval: their verdict rests on the clip interval alone and does not measure training noise (indicative "
        f"only; they were cut to fit the session). Wall time "
        f"{result['timings']['total_s'] / 60:.1f} min for this invocation (reused runs included at no cost).",
        "",
        "| factor | level | seeds | plain top-1 | plain train-val gap | TAF - plain | CE - plain | AdvProp - plain |"
        " TA - CE | verdicts TAF / CE / AdvProp / TA-CE | MDD TAF | CAM peak / entropy / TA TV |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["cells"]:
        cell, cam = row["cell"], result["cam"].get(row["cell"]["data"] + ":" + row["cell"]["cam_map"])
        verdicts = " / ".join(VERDICT_SHORT[row[k]["verdict"]] for k in ("taf", "ce_adv", "advprop", "taf_vs_ce_adv"))
        gap = row["plain_gap"]
        cam_text = "-" if cam is None else f"{cam['peak_share']:.3f} / {cam['entropy']:.3f} / {cam['ta_tv']:.3f}"
        lines.append(
            f"| {cell['factor']} | {cell['level']} | {row['n_seeds']} | {row['plain_top1']['mean']:.1f} | "
            f"{'-' if gap is None else format(gap['mean'], '.1f')} | {fmt_delta(row['taf'])} | "
            f"{fmt_delta(row['ce_adv'])} | {fmt_delta(row['advprop'])} | {fmt_delta(row['taf_vs_ce_adv'])} | "
            f"{verdicts} | {number(row['taf']['mdd'], 2)} | {cam_text} |"
        )
    if result.get("attack_at"):
        lines += [
            "",
            f"Attack-strength cells: TAF with eps 16/255 (step 8/255, K 1) and with K 3 at `{result['attack_at']}` "
            f"({result['attack_at_chosen']}); the other arms there are that cell's runs.",
        ]
    lines += ["", "Baselines:", ""]
    for name, b in result["baselines"].items():
        lines.append(
            f"- {name}: train top-1 {b['train_top1']:.1f}, val top-1 {b['val_top1']:.1f} (chance {b['chance']:.1f}), "
            f"gap {b['gap']:.1f} pp" + ("" if b["overfits"] else f" (not the intended regime: {b.get('why_not')})")
        )
    wins = [r for r in result["cells"] if r["taf"]["verdict"] == "better"]
    lines += [
        "",
        (
            "TAF beats plain fine-tuning in: " + ", ".join(f"{r['cell']['name']} ({fmt_delta(r['taf'])})" for r in wins)
            if wins
            else "No cell measured here shows TAF beating the equal-epoch plain fine-tune."
        ),
    ]
    ta_ce = [r for r in result["cells"] if r["taf_vs_ce_adv"]["verdict"] != "no detectable difference"]
    for r in ta_ce:
        side = "TA beats CE-PGD" if r["taf_vs_ce_adv"]["verdict"] == "better" else "CE-PGD beats TA"
        lines.append(f"{side} in {r['cell']['name']} ({fmt_delta(r['taf_vs_ce_adv'])}).")
    if result["quick"]:
        lines.append("\n`--quick` run: toy sizes, the numbers only show that the pipeline runs.")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="toy sizes: every cell in a couple of minutes")
    p.add_argument("--work", type=Path, help="data, baselines and runs (default runs/claims, shared with claims.py)")
    p.add_argument("--out", type=Path, help="JSON (default benchmarks/results/regimes[_quick].json)")
    p.add_argument("--no-md", action="store_true", help="do not rewrite the regimes section of BENCHMARKS.md")
    p.add_argument("--seeds", type=int, default=None, help="paired seeds per cell (default 3; quick 2)")
    names = [c.name for c in CELLS] + list(DERIVED)
    p.add_argument("--cells", nargs="+", choices=names, default=names, help="cells to run, in this order (default all)")
    p.add_argument(
        "--cell-seeds",
        nargs="+",
        default=[],
        metavar="CELL=N",
        help="fewer (or more) seeds for some cells, e.g. attack_k3=1 (the table says how many each had)",
    )
    p.add_argument(
        "--attack-at",
        choices=[c.name for c in CELLS],
        help="the cell the attack-strength cells vary (default: the run cell with the largest TAF - plain)",
    )
    p.add_argument("--cam-clips", type=int, default=None, help="val clips for the CAM statistics (default 512)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    return p.parse_args(argv)


def parse_cell_seeds(items: list[str], names: list[str]) -> dict[str, int]:
    """``--cell-seeds CELL=N ...`` as ``{cell: N}``; one line naming the item for a malformed one."""
    cell_seeds = {}
    for item in items:
        name, _, n = item.partition("=")
        if name not in names or not n.isdigit() or int(n) < 1:
            raise SystemExit(f"--cell-seeds {item!r}: expected CELL=N with N >= 1 and CELL one of {names}")
        cell_seeds[name] = int(n)
    return cell_seeds


def small_sizes(sizes: claims.Sizes) -> claims.Sizes:
    """The training-set-size cell's data: half the training clips (and a quarter of the validation clips)."""
    return dataclasses.replace(
        sizes, train_per_class=max(2, sizes.train_per_class // 2), val_per_class=max(3, sizes.val_per_class // 4)
    )


@dataclass
class Study:
    """The study's shared state: where it works, its sizes and seeds, and the baselines and CAM statistics made
    so far (each made once, reused by every later cell)."""

    work: Path
    sizes: claims.Sizes
    seeds: int
    cam_clips: int
    cell_seeds: dict[str, int]
    bases: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    cam: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def baseline(self, which: str) -> dict[str, Any]:
        """Dataset and baseline of ``which`` ("main" or "small"; made once, reused afterwards)."""
        if which not in self.bases:
            sz, data_name, base_name = {
                "main": (self.sizes, "data", "baseline"),
                "small": (small_sizes(self.sizes), "data_small", "baseline_small"),
            }[which]
            root = claims.ensure_dataset(self.work, sz, data_name)
            base = claims.train_baseline(root, sz, self.work / base_name)
            self.bases[which] = {
                "sizes": sz,
                "cfg": base.cfg,
                "checkpoint": base.checkpoint,
                "long_term": base.long_term,
                "subset": base.subset_file,
                "calibration": claims.baseline_calibration(base.row, sz),
            }
        return self.bases[which]

    def run_cell(self, cell: Cell) -> dict[str, Any]:
        """One cell's ``compare`` from its baseline, its row and (once per data and map size) its CAM statistics."""
        b = self.baseline(cell.data)
        n_seeds = self.cell_seeds.get(cell.name, self.seeds)
        settings = claims.compare_settings(
            b["checkpoint"], b["sizes"], cell.arms(), n_seeds, cell.lr_from, self.work / cell.pool, b["subset"]
        )
        settings = dataclasses.replace(settings, overrides=cell.common)
        plan, result = claims.run_arms(settings, self.work / "regimes" / cell.name)
        dirs: dict[str, list[Path]] = {}
        for run in plan:
            dirs.setdefault(run.spec.label, []).append(run.run_dir)
        row = cell_row(cell, result, dirs, b["sizes"].n_boot)
        key = f"{cell.data}:{cell.cam_map}"
        if key not in self.cam:
            self.cam[key] = cam_statistics(b["checkpoint"], b["cfg"], CAM_LAYERS[cell.cam_map], self.cam_clips)
        t = row["taf"]
        log(f"{cell.name}: TAF - plain {fmt_delta(t)} -> {t['verdict']}")
        return row


def attack_centre(rows: list[dict[str, Any]], attack_at: str | None) -> Cell:
    """The cell the attack-strength cells vary: ``--attack-at``, else the run cell with the largest TAF - plain."""
    by_name = {c.name: c for c in CELLS}
    if attack_at:
        return by_name[attack_at]
    return by_name[max(rows, key=lambda r: r["taf"]["mean"])["cell"]["name"]]


def run_cells(study: Study, names: list[str], attack_at: str | None) -> tuple[list[dict[str, Any]], Cell | None]:
    """The named cells in order, then the attack-strength cells among ``names`` at :func:`attack_centre` (which
    is returned; ``None`` when no attack cell ran)."""
    by_name = {c.name: c for c in CELLS}
    rows = [study.run_cell(by_name[name]) for name in names if name in by_name]
    wanted_attacks = [c for c in names if c in DERIVED]
    if not (wanted_attacks and (rows or attack_at)):
        return rows, None
    best = attack_centre(rows, attack_at)
    log(f"attack strength at {best.name}")
    attacks = {c.name: c for c in attack_cells(best)}
    return rows + [study.run_cell(attacks[name]) for name in wanted_attacks], best


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = claims.QUICK if args.quick else claims.FULL
    work: Path = args.work or ROOT / "runs" / ("regimes_quick" if args.quick else "claims")
    out_json: Path = args.out or ROOT / "benchmarks" / "results" / f"regimes{'_quick' if args.quick else ''}.json"
    work.mkdir(parents=True, exist_ok=True)
    study = Study(
        work,
        sizes,
        seeds=args.seeds or (2 if args.quick else 3),
        cam_clips=args.cam_clips or (16 if args.quick else 512),
        cell_seeds=parse_cell_seeds(args.cell_seeds, [c.name for c in CELLS] + list(DERIVED)),
    )
    t0 = time.perf_counter()
    rows, best = run_cells(study, args.cells, args.attack_at)
    result = {
        "quick": args.quick,
        "work": str(work),
        "sizes": dataclasses.asdict(sizes),
        "decay_after": sizes.decay_after,
        "seeds": study.seeds,
        "cam_clips": study.cam_clips,
        "attack_at": None if best is None else best.name,
        "attack_at_chosen": "given (--attack-at)" if args.attack_at else "largest TAF - plain among the cells run",
        "baselines": {k: v["calibration"] for k, v in study.bases.items()},
        "cam": study.cam,
        "cells": rows,
        "timings": {"total_s": time.perf_counter() - t0},
    }
    write_json(out_json, result)
    log(f"results: {out_json} ({(time.perf_counter() - t0) / 60:.1f} min)")
    if not args.no_md:
        update_section("regimes", markdown(result))
        log("BENCHMARKS.md regimes section updated")
    return result


if __name__ == "__main__":
    main()
