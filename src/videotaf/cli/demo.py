"""``videotaf demo``: the whole method on a laptop, with no data and no downloads.

1. Synthesise the long-term-motion dataset (:func:`videotaf.data.synth.synthesize`, SSv2 layout): classes that
   share their salient first motion differ only in a later, quieter phase (the paper's Figure 1 situation).
2. Train a small TSM baseline (depth 18 at 1/4 width) from scratch.
3. Fine-tune it for the same number of epochs with the paper's protocol (LR x0.1 for the last part, Sec. 4.1,
   :func:`videotaf.engine.finetune.finetune_config`): ``plain`` (the equal-epoch control) and ``taf`` (Eq. 7 with
   TA, Eq. 6, and dual BN); once each, or over several paired seeds as ``videotaf compare`` runs them.
4. Evaluate (1 clip, centre crop): top-1, top-5, top-1 on the long-term classes, top-1 on the training split
   and the train-minus-val gap (the paper's over-fitting discussion); print them side by side with TAF - plain
   and its CI, write ``results.json``, and Grad-CAM figures (Fig. 1 / 6) comparing the two fine-tunes on
   long-term validation clips (``OUT/figures/cam_val<clip index>.png``, where ``videotaf report`` of the runs
   finds and shows them: it looks in the ``figures/`` folder next to the run directories).

Three regimes (:data:`REGIMES`). ``fast`` (the default): the network study's paying network (a stride-16 TSM on
whole frames, 64 training clips per class) at 32 px with 4 frames per clip, :data:`~videotaf.engine.recipes.FAST`,
fine-tuned over three paired seeds; it prints TAF - plain with its CI over seeds in about 6 minutes on 2 CPU
cores, and TAF beat plain there detectably (BENCHMARKS.md "A paying regime in minutes"). ``paying``: the same
network at the study's 64 px and 8 frames (:data:`~videotaf.engine.recipes.PAYING`), about 1.5 hours.
``stride32``: the former default, a stride-32 TSM at a 56 px multi-scale crop, one seed, about 4 minutes; it
shows the method running, and on this data TAF does not beat plain there.
``--quick`` shrinks each to a smoke test whose numbers mean nothing. The run directories under ``OUT`` are
ordinary engine runs (``config.yaml``, ``metrics.jsonl``, checkpoints, ``eval.json``), so ``videotaf eval`` /
``export`` and the analysis commands work on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videotaf.analysis.compare import CompareSettings, MethodSpec, plan_runs, prepare_out_dir, run_compare
from videotaf.analysis.figures import cam_figure, cam_rows
from videotaf.analysis.render import interval, number, verdict_cell
from videotaf.analysis.stats import compare_methods
from videotaf.config import Config, ConfigError
from videotaf.data import build_dataset
from videotaf.engine.builders import load_model
from videotaf.engine.evaluate import read_class_subset, split_metrics
from videotaf.engine.finetune import cam_map_size, finetune_config, finetune_lr
from videotaf.engine.recipes import (
    FAST,
    PAYING,
    SyntheticRecipe,
    baseline_config,
    ensure_synthetic_data,
    on_paying_network,
)
from videotaf.engine.train import fit_or_reuse

#: The sizes of one demo run: the synthetic baseline's recipe (dataset, model input, schedules).
DemoSize = SyntheticRecipe
FULL = SyntheticRecipe()  # the recipe's defaults; ``configs/synthetic/tsm_tiny.yaml`` for the command line
QUICK = SyntheticRecipe(
    classes=4,
    train_per_class=12,
    val_per_class=6,
    video_frames=8,
    video_size=32,
    crop=32,
    batch_size=8,
    epochs=4,
    milestones=(3,),
    finetune_epochs=2,
    finetune_decay=1,
    lr=0.01,
    num_workers=0,
    cam_layer="backbone.layer2",  # 4x4 at 32 px
)
#: ``--regime paying --quick``: the paying regime's network and view at smoke-test size.
PAYING_QUICK = on_paying_network(QUICK)
#: ``--quick`` of the default regime: as ``PAYING_QUICK`` with FAST's 4 frames and frame cache.
FAST_QUICK = dataclasses.replace(PAYING_QUICK, num_frames=4, num_workers=0, cache_frames=True)
#: Per regime: (full recipe, ``--quick`` recipe, default seeds). ``fast`` and ``paying`` fine-tune over three
#: paired seeds (with two, Student's t has one degree of freedom and the seed interval is about 13 seed-sds
#: wide); ``stride32`` once (TAF - plain over clips only).
REGIMES: dict[str, tuple[SyntheticRecipe, SyntheticRecipe, int]] = {
    "fast": (FAST, FAST_QUICK, 3),
    "paying": (PAYING, PAYING_QUICK, 3),
    "stride32": (FULL, QUICK, 1),
}
DEFAULT_REGIME = "fast"


def _row(run_dir: Path, cfg: Config) -> dict[str, Any]:
    ev = json.loads((run_dir / "eval.json").read_text())
    train_top1 = split_metrics(run_dir / "checkpoints" / "last.pt", cfg)["top1"]
    return {
        "run_dir": str(run_dir),
        "top1": ev["top1"],
        "top5": ev["top5"],
        "long_term_top1": (ev.get("subset") or {}).get("top1"),
        "train_top1": train_top1,
        "gap": train_top1 - ev["top1"],
    }


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """The side-by-side table printed by the demo (accuracies in %)."""

    def f(v: Any) -> str:
        return "   -  " if v is None else f"{v:6.1f}"

    head = f"{'model':<18}{'top-1':>8}{'top-5':>8}{'long-term':>11}{'train':>8}{'gap':>8}"
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        lines.append(
            f"{name:<18}{f(r['top1']):>8}{f(r['top5']):>8}{f(r['long_term_top1']):>11}"
            f"{f(r['train_top1']):>8}{f(r['gap']):>8}"
        )
    return "\n".join(lines)


def taf_vs_plain(taf_run: Path, plain_run: Path, long_term: list[str] | None = None) -> dict[str, Any]:
    """TAF - plain top-1 on the same validation clips with its uncertainty (one seed each: a paired bootstrap over
    clips and McNemar's test, :mod:`videotaf.analysis.stats`); ``line`` is what the demo prints.

    One seed measures only the sampling noise of the validation clips, not that of training: the verdict is an
    upper bound on the evidence. ``videotaf compare`` runs seeds."""
    evals = {
        name: json.loads((run / "eval.json").read_text()) for name, run in (("taf", taf_run), ("plain", plain_run))
    }
    labels = np.asarray(evals["plain"]["clips"]["labels"])
    correct = {name: np.asarray(ev["clips"]["predictions"]) == labels for name, ev in evals.items()}
    names = list(evals["plain"]["classes"])
    mask = np.isin(labels, [names.index(c) for c in long_term]) if long_term else None
    result = compare_methods({"plain": correct["plain"], "taf": correct["taf"]}, "plain", subset_mask=mask, n_boot=5000)
    taf = result["methods"]["taf"]
    boot = taf["bootstrap"]
    line = (
        f"TAF - plain: {number(boot['mean'], signed=True)} pp, 95% CI {interval(boot['ci95'], signed=True)} over "
        f"{result['n_clips']} clips (paired bootstrap), McNemar p = {number(taf['mcnemar']['p_value'], 3)}: "
        f"{taf['verdict']}; one seed, so training noise is not measured (videotaf compare --seeds N measures it)"
    )
    return {"compare": result, "line": line}


VIEWS = {"multiscale": "multi-scale crop", "center": "centre crop", "none": "whole frame"}
#: What the network regime study found (BENCHMARKS.md "Where does TAF pay?"), printed with the demo's regime.
STUDY_NOTES = {
    "fast": (
        "the network study's paying network and view at 32 px and 4 frames (BENCHMARKS.md 'A paying regime in "
        "minutes': TAF - plain +2.69 pp [+0.59, +4.79] over 5 seeds when it was found; at 64 px and 8 frames, "
        "`--regime paying`, +4.79 [+3.61, +5.98]); the baseline learns the task (val top-1 65 %, chance 12.5 %) "
        "and still over-fits (README 'When does TAF help?')"
    ),
    "paying": (
        "the network study's one regime where TAF paid detectably (s16_x2: TAF - plain +4.79 pp [+3.61, +5.98] over "
        "3 seeds; AdvProp gained more there, +10.52 [+8.57, +12.47]); the baseline learns the task (val top-1 57-69 % "
        "over three trainings of this recipe, chance 12.5 %) and still over-fits (README 'When does TAF help?')"
    ),
    "stride32": (
        "TAF did not beat plain fine-tuning on this stride-32 network in our studies; this regime shows the method "
        "running, not a gain (`videotaf demo`'s default regime, fast, shows one; README 'When does TAF help?')"
    ),
}


def regime_line(cfg: Config, regime: str = DEFAULT_REGIME) -> str:
    """The regime the demo runs in: network, stem, training view, input size and the map size TA reads (Eq. 2),
    and what the network study found there (:data:`STUDY_NOTES`)."""
    name, h, w = cam_map_size(cfg)
    opts = cfg.model.options
    stem = "stride-16 small" if opts.get("stem") == "small" else "ImageNet (stride-32)"
    return (
        f"regime {regime}: {cfg.model.name} depth {opts.get('depth')} width {opts.get('width')}, {stem} stem, "
        f"{VIEWS[cfg.data.train_crop]} at {cfg.data.crop_size} px; TA reads {name} ({h}x{w} maps); "
        f"{STUDY_NOTES[regime]}"
    )


def _cam_figures(out: Path, runs: dict[str, Path], cfg: Config, count: int = 2) -> list[str]:
    models = {name: load_model(path / "checkpoints" / "last.pt")[0] for name, path in runs.items()}
    ds = build_dataset(cfg.data, cfg.data.val_split, False)
    long_term = set((Path(cfg.data.root) / "long_term_classes.txt").read_text().split("\n")) - {""}
    picks = [i for i in range(len(ds)) if ds.classes[ds[i][1]] in long_term][:count] or list(range(count))
    written = []
    for i in picks:
        clip, label = ds[i]
        rows = cam_rows(models, clip, label, class_names=ds.classes, cam_layer=cfg.adversarial.cam_layer)
        path = out / "figures" / f"cam_val{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cam_figure(rows, path, title=f"{ds.classes[label]} (val clip {i})")
        written.append(str(path))
    return written


def _finetune_base(size: SyntheticRecipe, base_cfg: Config) -> tuple[Config, str]:
    """The fine-tunes' base config and ``lr_from``: the LR the baseline ended with (Sec. 4.1, ``auto``) unless
    the recipe restarts at ``finetune_lr`` (``config``)."""
    if size.finetune_lr is None:
        return base_cfg, "auto"
    return dataclasses.replace(base_cfg, optim=dataclasses.replace(base_cfg.optim, lr=size.finetune_lr)), "config"


def _baseline(size: SyntheticRecipe, base_cfg: Config, subset: list[str], overwrite: bool) -> float:
    """Train (or reuse) the from-scratch baseline; returns its wall time (s)."""
    t = time.perf_counter()
    print(f"[demo] training the TSM baseline for {size.epochs} epochs", flush=True)
    _, what = fit_or_reuse(base_cfg, overwrite=overwrite, subset_classes=subset)
    if what != "trained":
        print(f"[demo] baseline: {what} {base_cfg.runtime.output_dir}", flush=True)
    return time.perf_counter() - t


def _finetune_once(out: Path, size: SyntheticRecipe, base_cfg: Config, subset: list[str], overwrite: bool) -> dict:
    """One ``plain`` and one ``taf`` fine-tune of the baseline (``OUT/plain``, ``OUT/taf``, each reused when
    there); returns per run name its directory (``runs``), config (``cfgs``) and wall time (``timings``)."""
    start = out / "baseline" / "checkpoints" / "last.pt"
    base, lr_from = _finetune_base(size, base_cfg)
    trained: dict[str, Any] = {"runs": {}, "cfgs": {}, "timings": {}}
    for method in ("plain", "taf"):
        t = time.perf_counter()
        print(f"[demo] fine-tuning with {method} for {size.finetune_epochs} epochs", flush=True)
        cfg = finetune_config(
            base,
            start,
            method,
            epochs=size.finetune_epochs,
            decay_after=size.decay_after,
            output_dir=out / method,
            lr=finetune_lr(start, lr_from, base.optim.lr)[0],
        )
        _, what = fit_or_reuse(cfg, overwrite=overwrite, subset_classes=subset)
        if what != "trained":
            print(f"[demo] {method}: {what} {cfg.runtime.output_dir}", flush=True)
        trained["timings"][f"{method}_s"] = time.perf_counter() - t
        trained["runs"][method], trained["cfgs"][method] = out / method, cfg
    return trained


def _finetune_seeds(out: Path, size: SyntheticRecipe, base_cfg: Config, seeds: int, overwrite: bool) -> dict:
    """``plain`` and ``taf`` over ``seeds`` paired seeds, planned, run and scored as ``videotaf compare`` does
    (``OUT/compare``: ``runs/<method>_seed<s>``, ``compare.json/md/png``; finished runs reused, so a larger
    ``seeds`` trains only the new ones). The seed-0 runs stand for each method in the table, figures and report;
    ``compare`` holds the comparison (TAF - plain with its CI over seeds and over clips)."""
    base, lr_from = _finetune_base(size, base_cfg)
    settings = CompareSettings(
        checkpoint=out / "baseline" / "checkpoints" / "last.pt",
        methods=[MethodSpec("plain", "plain"), MethodSpec("taf", "taf")],
        seeds=seeds,
        out_dir=out / "compare",
        base=base,
        epochs=size.finetune_epochs,
        decay_after=size.decay_after,
        lr_from=lr_from,
        subset_classes=Path(base_cfg.data.root) / "long_term_classes.txt",
    )
    prepare_out_dir(settings, overwrite=overwrite)
    plan = plan_runs(settings)
    print(f"[demo] fine-tuning with plain and taf for {size.finetune_epochs} epochs, {seeds} seeds", flush=True)
    t = time.perf_counter()
    result = run_compare(settings, overwrite=overwrite, plan=plan)
    first = {run.spec.label: run for run in plan if run.seed == 0}
    return {
        "runs": {label: run.run_dir for label, run in first.items()},
        "cfgs": {label: run.cfg for label, run in first.items()},
        "timings": {"finetunes_s": time.perf_counter() - t},
        "compare": result,
    }


def seeds_line(result: dict[str, Any]) -> str:
    """TAF - plain of a ``compare`` result over seeds, with both intervals, McNemar's p and the verdict (one line,
    as the demo prints it)."""
    taf = result["methods"]["taf"]
    d = taf["delta_top1"]
    return (
        f"TAF - plain: {number(d['mean'], signed=True)} pp, 95% CI {interval(d['ci95'], signed=True)} over "
        f"{d['n']} paired seeds, {interval(taf['bootstrap']['ci95'], signed=True)} over {result['n_clips']} clips "
        f"(paired bootstrap), McNemar p = {number(taf['mcnemar']['p_value'], 4)}: {verdict_cell(taf)}"
    )


def _evaluate(out: Path, trained: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The table's rows (:func:`_row` of each run) and the CAM figures of the two fine-tunes."""
    runs, cfgs = trained["runs"], trained["cfgs"]
    rows = {
        {"baseline": "TSM baseline", "plain": "+ plain fine-tune", "taf": "+ TAF fine-tune"}[k]: _row(p, cfgs[k])
        for k, p in runs.items()
    }
    figures = _cam_figures(out, {"plain": runs["plain"], "TAF": runs["taf"]}, cfgs["baseline"])
    return rows, figures


def _summarise(rows: dict[str, dict[str, Any]], trained: dict[str, Any], subset: list[str]) -> dict[str, Any]:
    """Print the table, TAF - plain with its CI and the regime line; the parts of ``results.json`` they make."""
    runs, class_count = trained["runs"], trained["cfgs"]["baseline"].model.num_classes
    table = format_table(rows)
    seeds = "" if "compare" not in trained else " (the fine-tunes' seed-0 runs)"
    print("\n" + table + "\n", flush=True)
    print(f"[demo] long-term classes: {len(subset)} of {class_count}; accuracies in %, gap = train - val top-1{seeds}")
    if "compare" in trained:
        versus = {"compare": trained["compare"], "line": seeds_line(trained["compare"])}
    else:
        versus = taf_vs_plain(runs["taf"], runs["plain"], subset)
    print(f"[demo] {versus['line']}", flush=True)
    regime = regime_line(trained["cfgs"]["taf"], trained["regime"])
    print(f"[demo] {regime}", flush=True)
    return {"taf_vs_plain": versus, "regime": regime, "table": table}


def _train(out: Path, size: SyntheticRecipe, base_cfg: Config, subset: list[str], seeds: int, overwrite: bool) -> dict:
    """The baseline, then its fine-tunes: once each (one seed) or over ``seeds`` paired seeds."""
    baseline_s = _baseline(size, base_cfg, subset, overwrite)
    if seeds == 1:
        trained = _finetune_once(out, size, base_cfg, subset, overwrite)
    else:
        trained = _finetune_seeds(out, size, base_cfg, seeds, overwrite)
    trained["runs"] = {"baseline": out / "baseline", **trained["runs"]}
    trained["cfgs"] = {"baseline": base_cfg, **trained["cfgs"]}
    trained["timings"] = {"baseline_s": baseline_s, **trained["timings"]}
    return trained


def run_demo(
    out: str | Path = "demo_runs",
    *,
    quick: bool = False,
    seed: int = 0,
    size: SyntheticRecipe | None = None,
    overwrite: bool = False,
    regime: str = DEFAULT_REGIME,
    seeds: int | None = None,
) -> dict[str, Any]:
    """Run the demo into ``out`` (``data/``, ``baseline/``, the fine-tunes, ``results.json``).

    ``regime`` (:data:`REGIMES`) picks the recipe (``size`` overrides it) and the default ``seeds``. With one
    seed the fine-tunes are ``OUT/plain`` and ``OUT/taf`` and TAF - plain is scored over validation clips only;
    with more, they run as ``videotaf compare`` in ``OUT/compare`` (seeds 0, 1, ...) and TAF - plain gets its CI
    over seeds too. Runs already in ``out`` with the same settings are reused (an interrupted one resumes); runs
    made with other settings are refused unless ``overwrite``, and so is a dataset synthesised with other
    settings. ``seed`` is the data generator's, the data order's and the baseline's seed (and the one-seed
    fine-tunes').

    Returns the results dict (also written to ``out/results.json``): per model top-1, top-5, long-term top-1,
    train top-1 and gap, TAF - plain, the regime, timings and the sizes used.
    """
    if regime not in REGIMES:
        raise ConfigError(f"--regime expects one of {', '.join(REGIMES)}, got {regime!r}")
    full, small, default_seeds = REGIMES[regime]
    size = size or (small if quick else full)
    seeds = default_seeds if seeds is None else seeds
    if seeds < 1:
        raise ConfigError(f"--seeds expects an int >= 1, got {seeds}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data_root = ensure_synthetic_data(out / "data", dataclasses.replace(size, data_seed=seed), overwrite=overwrite)
    timings: dict[str, float] = {"synthesize_s": time.perf_counter() - t0}
    print(
        f"[demo] regime {regime}, dataset: {data_root} ({size.classes} classes, {size.train_per_class}/"
        f"{size.val_per_class} train/val clips per class)",
        flush=True,
    )
    base_cfg = baseline_config(size, data_root, out / "baseline", seed)
    labels = json.loads((data_root / "something-something-v2-labels.json").read_text())
    subset = read_class_subset(data_root / "long_term_classes.txt", sorted(labels, key=lambda n: int(labels[n])))
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(min(2, prev_threads))
    try:
        trained = _train(out, size, base_cfg, subset, seeds, overwrite)
        trained["regime"] = regime
        t = time.perf_counter()
        rows, figures = _evaluate(out, trained)
        timings.update(trained["timings"], evaluate_s=time.perf_counter() - t)
    finally:
        torch.set_num_threads(prev_threads)
    timings["total_s"] = time.perf_counter() - t0
    summary = _summarise(rows, trained, subset)
    results = {
        "models": rows,
        "taf_vs_plain": summary["taf_vs_plain"],
        "regime": summary["regime"],
        "regime_name": regime,
        "seeds": seeds,
        "long_term_classes": subset,
        "figures": figures,
        "timings": timings,
        "size": asdict(size),
        "seed": seed,
        "table": summary["table"],
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"[demo] results: {out / 'results.json'}" + (f"; CAM figures: {out / 'figures'}" if figures else ""))
    report_cmd = " ".join(["videotaf report", *(str(p) for p in trained["runs"].values()), "--out"])
    print(f"[demo] all on one page (loss curves, class-wise change, CAM figures): {report_cmd} {out / 'report'}")
    return results


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``videotaf demo``."""
    p = subparsers.add_parser(
        "demo", help="synthetic long-term-motion data: baseline, then plain vs TAF fine-tuning, side by side"
    )
    p.add_argument(
        "--quick", action="store_true", help="toy sizes for smoke tests: minutes at most, numbers that mean nothing"
    )
    p.add_argument(
        "--regime",
        choices=list(REGIMES),
        default=DEFAULT_REGIME,
        help="fast (default): the network study's paying network at 32 px and 4 frames, 3 seeds, about 6 minutes "
        "on 2 cores; paying: the same at the study's 64 px and 8 frames, about 1.5 hours; stride32: a stride-32 "
        "TSM where TAF does not pay, one seed, about 4 minutes",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="paired fine-tuning seeds (default: 3, or 1 for stride32); more than 1 runs them as `videotaf "
        "compare` in OUT/compare and adds TAF - plain's CI over seeds; a larger number reuses the finished seeds",
    )
    p.add_argument("--out", type=Path, default=Path("demo_runs"), help="output directory (default demo_runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace demo runs made with other settings")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    run_demo(args.out, quick=args.quick, seed=args.seed, overwrite=args.overwrite, regime=args.regime, seeds=args.seeds)
    return 0
