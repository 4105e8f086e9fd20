"""TAF on a video transformer, side by side: plain, TAF with shared LayerNorms, TAF with auxiliary LayerNorms.

Issue 14. A tiny random VideoMAE (hidden 64, 2 layers, patch 8, tubelet 2, 8 frames at 32 px, 4 classes; the registered
``hf`` model loading a directory written with ``save_pretrained``, nothing downloaded) is pre-trained from
scratch with ``plain`` on the synthetic long-term-motion data (``videotaf.data.synth``), then fine-tuned from
that checkpoint for the same number of epochs with each method, as ``videotaf finetune`` builds it (alpha 0.7,
eps 64/255, step 32/255, K 1, N = T; LR x0.1 for the last third):

- ``plain``: clean clips only (the equal-epoch control);
- ``taf_shared``: TAF (Eq. 7) with every LayerNorm shared by the clean and the adversarial path
  (``model.options.dual_norm: none``);
- ``taf_aux_ln``: TAF with an auxiliary copy of every LayerNorm's affine parameters for the adversarial path
  (the default, ``convert_dual_norm`` with ``kinds="auto"``).

Every seed has its own initialisation, baseline and data order; a method's difference to ``plain`` is reported
per seed (same baseline), as mean +- sd over seeds, and called a difference only when all seeds agree in sign and
the mean exceeds twice the standard error; otherwise it is within noise.

    python -m benchmarks.transformer_taf                  # 3 seeds, rewrites the transformer_taf section
    python -m benchmarks.transformer_taf --quick --no-md  # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import BENCHMARKS_MD, ROOT, header, update_section, write_json
from videotaf.analysis.render import mean_sd
from videotaf.config import Config, config_from_dict
from videotaf.engine.logs import read_metrics

METHODS = {
    # name: (engine method, model.options.dual_norm)
    "plain": ("plain", "auto"),
    "taf_shared": ("taf", "none"),
    "taf_aux_ln": ("taf", "auto"),
}
SECTION = "transformer_taf"
HEADING = "## TAF on a video transformer (CPU)"


@dataclass(frozen=True)
class Sizes:
    classes: int = 4
    train_per_class: int = 24
    val_per_class: int = 16
    video_frames: int = 16
    px: int = 32
    num_frames: int = 8
    batch: int = 8
    base_epochs: int = 18
    finetune_epochs: int = 6
    lr: float = 0.05
    patch: int = 8
    # Lower than the synthetic default (1.0): a transformer this small, trained from scratch with SGD for a few
    # hundred steps, barely leaves chance on the full-nuisance data.
    nuisance: float = 0.3


FULL = Sizes()
QUICK = Sizes(classes=3, train_per_class=4, val_per_class=2, batch=4, base_epochs=1, finetune_epochs=1)


def log(msg: str) -> None:
    print(f"[transformer_taf] {msg}", flush=True)


def save_init(path: Path, sizes: Sizes, seed: int) -> Path:
    """A random tiny VideoMAE written with ``save_pretrained`` (the ``hf`` model loads it like a real one)."""
    import transformers

    if (path / "config.json").is_file():
        return path
    torch.manual_seed(seed)
    cfg = transformers.VideoMAEConfig(
        image_size=sizes.px, patch_size=sizes.patch, num_frames=sizes.num_frames, tubelet_size=2, hidden_size=64,
        num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, num_labels=sizes.classes,
    )  # fmt: skip
    transformers.VideoMAEForVideoClassification(cfg).save_pretrained(path)
    return path


def run_config(
    sizes: Sizes, data: Path, init: Path, out: Path, seed: int, method: str, dual_norm: str, pretrained: Path | None
) -> Config:
    epochs = sizes.finetune_epochs if pretrained else sizes.base_epochs
    return config_from_dict(
        {
            "model": {
                "name": "hf",
                "num_classes": sizes.classes,
                "num_frames": sizes.num_frames,
                "options": {"path": str(init), "dual_norm": dual_norm},
                "pretrained": str(pretrained) if pretrained else None,
            },
            "data": {
                "kind": "somethingv2",
                "root": str(data),
                "num_frames": sizes.num_frames,
                "crop_size": sizes.px,
                "scale_size": sizes.px,
                "flip": False,
                "seed": seed,
                "num_workers": 0,
            },
            "optim": {
                "lr": sizes.lr,
                "epochs": epochs,
                "schedule": "step",
                "milestones": [max(1, (2 * epochs) // 3)],
                "warmup_epochs": 0.0 if pretrained else 1.0,
                "weight_decay": 5e-4,
                "clip_grad_norm": 20.0,
                "batch_size": sizes.batch,
                "fc_lr_mult_weight": 1.0,
                "fc_lr_mult_bias": 1.0,
            },
            "adversarial": {"method": method},
            "runtime": {
                "device": "cpu",
                "seed": seed,
                "deterministic": True,
                "output_dir": str(out),
                "progress": "none",
                "log_every": 1000,
            },
        },
        out.name,
    )


def train(cfg: Config) -> dict[str, Any]:
    from videotaf.engine.train import fit

    run = Path(cfg.runtime.output_dir)
    if not (run / "eval.json").is_file():
        fit(cfg)
    ev = json.loads((run / "eval.json").read_text())
    last = read_metrics(run)[-1]
    # fit writes config.yaml first and eval.json last: their times give the run's duration, reused or not.
    minutes = ((run / "eval.json").stat().st_mtime - (run / "config.yaml").stat().st_mtime) / 60
    return {"top1": ev["top1"], "top5": ev["top5"], "train_top1": last["train_top1"], "minutes": minutes}


def summary(values: list[float]) -> dict[str, float | None]:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
    }


def verdict(diffs: list[float]) -> str:
    """'higher' / 'lower' only when every seed agrees and the mean is beyond two standard errors."""
    if len(diffs) < 2:
        return "one seed: no claim"
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    same_sign = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
    if same_sign and abs(mean) > 2 * sd / math.sqrt(len(diffs)):
        return "higher" if mean > 0 else "lower"
    return "within noise"


def pm(s: dict[str, float | None]) -> str:
    return mean_sd(s["mean"], s["sd"], 1, no_sd="")


def markdown(result: dict[str, Any]) -> str:
    sz = result["sizes"]
    lines = [
        header(),
        f"Tiny random VideoMAE (hidden 64, 2 layers, patch {sz['patch']}, tubelet 2; {sz['num_frames']} frames at "
        f"{sz['px']} px, batch {sz['batch']}, SGD lr {sz['lr']}) "
        f"pre-trained from scratch with plain for {sz['base_epochs']} epochs on the synthetic data "
        f"({sz['classes']} classes, chance {100 / sz['classes']:.0f} %; {sz['train_per_class']}/{sz['val_per_class']} "
        f"train/val clips per class; nuisance {sz['nuisance']}), then "
        f"fine-tuned {sz['finetune_epochs']} epochs per method; {len(result['seeds'])} seeds (own init, baseline and "
        f"data order each); val top-1 % (1 clip, centre crop), mean ± sd over seeds. Training time "
        f"{result['run_minutes']:.1f} min (all {len(result['seeds']) * (1 + len(METHODS))} runs; this invocation "
        f"{result['wall_minutes']:.1f} min, runs with an eval.json are reused).",
        "",
        "| method | val top-1 | train top-1 (last epoch) | top-1 - plain (per seed, same baseline) | verdict |",
        "|---|---|---|---|---|",
        f"| baseline (start) | {pm(result['baseline']['top1'])} | - | - | - |",
    ]
    for name, m in result["methods"].items():
        diff = "-" if name == "plain" else pm(m["diff_top1"])
        lines.append(f"| {name} | {pm(m['top1'])} | {pm(m['train_top1'])} | {diff} | {m.get('verdict', '-')} |")
    lines += [
        "",
        "A verdict other than 'within noise' needs every seed to agree in sign and the mean difference to exceed two "
        "standard errors of the per-seed differences.",
    ]
    step = ROOT / "benchmarks" / "results" / "step_cost_videomae.json"
    if step.is_file():
        from benchmarks.step_cost import table

        payload = json.loads(step.read_text())
        runs = payload.get("runs", [payload])
        rows_only = [line for line in table(runs).splitlines() if line.startswith("|")]  # its own header dropped
        lines += [
            "",
            f"Step cost of a small VideoMAE (`{payload['command']}`; {payload['machine']}): the memory ratios are "
            "exact, the times are medians on a shared CPU and move with its load.",
            "",
            *rows_only,
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--work", default=str(ROOT / "runs" / "transformer_taf"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "transformer_taf.json"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-md", action="store_true")
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    work = Path(args.work)
    import transformers

    transformers.utils.logging.disable_progress_bar()  # one "Loading weights" bar per run otherwise
    t_start = time.time()
    from videotaf.data.synth import synthesize

    data = work / "data"
    if not (data / "synth_meta.json").is_file():
        synthesize(
            data,
            num_classes=sizes.classes,
            train_per_class=sizes.train_per_class,
            val_per_class=sizes.val_per_class,
            num_frames=sizes.video_frames,
            size=sizes.px,
            seed=0,
            nuisance=sizes.nuisance,
        )
    seeds = list(range(args.seeds))
    rows: dict[str, list[dict[str, Any]]] = {"baseline": [], **{m: [] for m in METHODS}}
    for seed in seeds:
        init = save_init(work / f"init_seed{seed}", sizes, seed)
        base_dir = work / f"baseline_seed{seed}"
        log(f"seed {seed}: baseline")
        rows["baseline"].append(train(run_config(sizes, data, init, base_dir, seed, "plain", "auto", None)))
        ckpt = base_dir / "checkpoints" / "last.pt"
        for name, (method, dual_norm) in METHODS.items():
            log(f"seed {seed}: {name}")
            cfg = run_config(sizes, data, init, work / f"{name}_seed{seed}", seed, method, dual_norm, ckpt)
            rows[name].append(train(cfg))
            log(f"seed {seed}: {name} top-1 {rows[name][-1]['top1']:.1f}")

    methods: dict[str, Any] = {}
    for name in METHODS:
        m = {k: summary([r[k] for r in rows[name]]) for k in ("top1", "top5", "train_top1")}
        m["per_seed_top1"] = [r["top1"] for r in rows[name]]
        m["minutes"] = [r["minutes"] for r in rows[name]]
        if name != "plain":
            diffs = [a["top1"] - b["top1"] for a, b in zip(rows[name], rows["plain"])]
            m["diff_top1"] = summary(diffs)
            m["per_seed_diff_top1"] = diffs
            m["verdict"] = verdict(diffs)
        methods[name] = m
    result = {
        "sizes": sizes.__dict__,
        "seeds": seeds,
        "baseline": {k: summary([r[k] for r in rows["baseline"]]) for k in ("top1", "top5")},
        "methods": methods,
        "wall_minutes": (time.time() - t_start) / 60,
        "run_minutes": sum(r["minutes"] for runs in rows.values() for r in runs),
    }
    write_json(args.out, result)
    log(f"done in {result['wall_minutes']:.1f} min")
    if not args.no_md:
        if f"<!-- BEGIN {SECTION} -->" not in (BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else ""):
            with BENCHMARKS_MD.open("a") as f:
                f.write(f"\n{HEADING}\n")
        update_section(SECTION, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
