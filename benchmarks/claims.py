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

    python -m benchmarks.claims --quick                 # the whole pipeline at toy size (20 s idle, 6 min busy)
    python -m benchmarks.claims                         # full mode (about 30 min on 2 idle cores)
    python -m benchmarks.claims --work runs/claims --seeds 5 --finetune-epochs 9
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from benchmarks._common import ROOT, header, update_section, write_json
from videotaf.analysis import stats
from videotaf.analysis.attention import analyze_attention
from videotaf.analysis.compare import CompareSettings, MethodSpec, PlannedRun, plan_runs, run_compare
from videotaf.analysis.robustness import evaluate_robustness
from videotaf.config import Config, config_from_dict
from videotaf.data import build_dataset
from videotaf.data.synth import synthesize
from videotaf.engine.builders import load_model
from videotaf.engine.evaluate import read_class_subset, train_split_metrics
from videotaf.engine.finetune import AttackSettings, base_config, finetune_lr
from videotaf.engine.train import fit_or_reuse

PAPER = {
    # Something-Something V1, TSM-R50 8 frames (Tables 1, 2a-2c, 3): top-1 %
    "baseline": 45.6,
    "taf": 46.9,
    "ce_adv": 46.1,
    "advprop": 44.5,
    "alpha": {0.2: 46.3, 0.5: 46.7, 0.7: 46.9, 0.8: 46.5},
    "attack": {"e6_k1": 46.6, "e6_k3": 46.5, "e64_k1": 46.9, "e64_k3": 46.8},
    "mpc_top1": {"TSM": 17.9, "TSM+TAF": 18.9},  # mean of the eight Table 3 corruptions
}
METHOD_ORDER = ("plain", "ce_adv", "advprop", "taf")


# --------------------------------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    """Everything that sets the cost of a claims run (dataset, model input, schedules, evaluation).

    Calibration of the defaults: a baseline of 24 epochs on 24 training clips per class reached train top-1 89.6
    (centre crop) against val top-1 25.8 (chance 12.5), the over-fitting regime of Sec. 3.1; its loss stays at
    chance for the first ~5 epochs with SGD from scratch. The validation split is larger than the training split
    on purpose: it only sets the measurement noise (one clip = 0.26 pp at 48 per class), not the learning problem.
    """

    classes: int = 8
    train_per_class: int = 24
    val_per_class: int = 500
    video_frames: int = 16
    video_size: int = 64
    crop: int = 56
    num_frames: int = 8
    batch_size: int = 16
    lr: float = 0.01
    dropout: float = 0.3
    epochs: int = 30
    finetune_epochs: int = 9
    seeds: int = 4
    methods: tuple[str, ...] = METHOD_ORDER
    sweep: bool = True
    corruptions: tuple[str, ...] = ("paper",)
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    num_workers: int = 1
    data_seed: int = 0
    nuisance: float = 1.0  # the synthetic set's nuisance variation (``synthesize(nuisance=...)``)
    finetune_lr: float | None = None  # with --lr-from config: None = the baseline's base LR
    #: Both readings of Sec. 4.1's fine-tuning LR, each a ``videotaf compare`` (the first one feeds the
    #: corruption, attention and sweep questions): "checkpoint" continues at the LR the baseline was saved
    #: with, "config" restarts at the baseline's initial LR.
    lr_readings: tuple[str, ...] = ("checkpoint", "config")
    fraction: float = 0.25  # the cheaper TAF arm (adversarial.fraction); 1.0 leaves the arm out
    #: Arms of the comparisons after the first LR reading (plus the fraction arm): the LR question needs
    #: plain and TAF, the other methods are compared under the first reading.
    other_reading_methods: tuple[str, ...] = ("plain", "taf")
    other_reading_seeds: int = 3
    sweep_seeds: int = 1
    robust_seeds: int = 3  # plain and TAF models of the first seeds under corruption (Table 3)
    robust_clips: int = 512  # validation clips (an even spread over the split) for Table 3
    attention_clips: int = 512  # ... and for Figures 3 and 6
    n_boot: int = 10000

    #: The baseline network's model options (the small TSM of the demo and the tests by default).
    model_options: tuple[tuple[str, Any], ...] = (("depth", 18), ("width", 0.25))
    train_crop: str = "multiscale"  # the baseline's and the fine-tunes' training view (``data.train_crop``)
    milestones: tuple[int, ...] | None = None  # baseline LR x0.1 epochs; None: 2/3 and 5/6 of the epochs
    finetune_decay: int | None = None  # fine-tune LR x0.1 after this epoch; None: 2/3 of the epochs

    @property
    def base_milestones(self) -> list[int]:
        """Baseline LR x0.1 at 2/3 and 5/6 of the epochs (the TSM recipe's shape, e.g. 50 epochs -> 33, 41)."""
        if self.milestones is not None:
            return list(self.milestones)
        return sorted({max(1, round(self.epochs * 2 / 3)), max(1, round(self.epochs * 5 / 6))})

    @property
    def decay_after(self) -> int:
        """Fine-tuning LR x0.1 after 2/3 of the epochs (the paper: after 10 of 15)."""
        if self.finetune_decay is not None:
            return self.finetune_decay
        return max(1, round(self.finetune_epochs * 2 / 3))


FULL = Sizes()
QUICK = Sizes(
    classes=7,
    train_per_class=4,
    val_per_class=3,
    video_frames=8,
    video_size=32,
    crop=32,
    batch_size=8,
    epochs=3,
    finetune_epochs=1,
    seeds=2,
    corruptions=("gaussian_noise", "gaussian_blur"),
    severities=(1, 3, 5),
    num_workers=0,
    sweep_seeds=1,
    robust_seeds=2,
    robust_clips=16,
    attention_clips=16,
    n_boot=500,
)


def arms(sizes: Sizes, methods: tuple[str, ...] | None = None) -> list[MethodSpec]:
    """The compared fine-tunes: ``plain`` first (the control), then the other ``methods`` (default
    ``sizes.methods``), then TAF attacking only ``sizes.fraction`` of each batch (Fast AdvProp's trick;
    ``adversarial.fraction``)."""
    methods = sizes.methods if methods is None else tuple(m for m in methods if m in sizes.methods)
    out = [MethodSpec("plain", "plain")] + [MethodSpec(m, m) for m in methods if m != "plain"]
    if sizes.fraction < 1.0 and "taf" in methods:
        out.append(MethodSpec(fraction_label(sizes), "taf", (f"adversarial.fraction={sizes.fraction:g}",)))
    return out


def fraction_label(sizes: Sizes) -> str:
    return f"taf_f{round(sizes.fraction * 100)}"


ALPHAS = (0.5, 0.7, 0.9)
ATTACKS = {  # Table 2c: name -> (eps, step, K)
    "e6_k1": (6 / 255, 2 / 255, 1),
    "e6_k3": (6 / 255, 2 / 255, 3),
    "e64_k1": (64 / 255, 32 / 255, 1),
    "e64_k3": (64 / 255, 32 / 255, 3),
}
DEFAULT_POINT = ("alpha_0.7", "e64_k1")  # the paper's setting: the main ``taf`` arm


def sweep_arms() -> dict[str, MethodSpec]:
    """Tables 2b and 2c: TAF at other alpha / (eps, step, K), each a compare arm with its overrides; the paper's
    point (alpha 0.7, eps 64/255, step 32/255, K 1) is the main ``taf`` arm and is not run twice."""
    out = {f"alpha_{a:g}": MethodSpec(f"taf_a{a:g}", "taf", (f"adversarial.alpha={a}",)) for a in ALPHAS}
    for k, (e, s, n) in ATTACKS.items():
        sets = (f"adversarial.eps={e}", f"adversarial.step_size={s}", f"adversarial.steps={n}")
        out[k] = MethodSpec(f"taf_{k}", "taf", sets)
    return {k: (MethodSpec("taf", "taf") if k in DEFAULT_POINT else v) for k, v in out.items()}


# --------------------------------------------------------------------------------------------------- helpers


def mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.fmean(vals) if vals else None


def std(values: list[float]) -> float | None:
    """Sample standard deviation over seeds (None with fewer than two)."""
    vals = [v for v in values if v is not None]
    return statistics.stdev(vals) if len(vals) > 1 else None


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def pm(values: list[float], spec: str = ".1f") -> str:
    """``mean ± std`` over seeds (just the value for one seed)."""
    m, s = mean(values), std(values)
    if m is None:
        return "-"
    return f"{m:{spec}} ± {s:{spec}}" if s is not None else f"{m:{spec}}"


def ci_text(ci: list[float] | None, spec: str = ".2f") -> str:
    return "n/a (1 seed)" if ci is None else f"[{ci[0]:{spec}}, {ci[1]:{spec}}]"


HOLDS, REVERSED, UNDETECTED = "holds", "reversed", "no detectable difference"


def claim_row(
    claim: str,
    paper: str,
    delta: dict[str, Any],
    *,
    clip_ci: list[float] | None = None,
    mdd: float | None = None,
    unit: str = "pp",
    higher_is_better: bool = True,
    basis: str = "seeds",
) -> dict[str, Any]:
    """One claim as measured: the difference ``delta`` (a :func:`videotaf.analysis.stats.paired_seed_difference`
    or a dict with ``mean`` and ``ci95``), its intervals and the verdict of ``videotaf compare``
    (:func:`videotaf.analysis.stats.verdict`: every available interval on one side of 0) said as ``holds``
    (the paper's direction), ``reversed`` or ``no detectable difference``."""
    seed_ci = delta.get("ci95")
    if seed_ci is None and clip_ci is None:
        verdict = "not measurable (1 seed)"
    else:
        v = stats.verdict(seed_ci, clip_ci)
        good, bad = (stats.BETTER, stats.WORSE) if higher_is_better else (stats.WORSE, stats.BETTER)
        verdict = HOLDS if v == good else REVERSED if v == bad else UNDETECTED
    return {
        "claim": claim,
        "paper": paper,
        "unit": unit,
        "diff": delta["mean"],
        "ci95": seed_ci,
        "clip_ci95": clip_ci,
        "mdd": mdd,
        "basis": basis,
        "n": delta.get("n"),
        "verdict": verdict,
    }


def method_claim(claim: str, paper: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A claim read off one ``compare_methods`` entry (``methods.<name>`` or its ``subset``)."""
    return claim_row(
        claim,
        paper,
        entry["delta_top1"],
        clip_ci=entry["bootstrap"]["ci95"],
        mdd=entry["mdd"]["mdd"],
        basis="seeds + clips",
    )


def log(msg: str) -> None:
    print(f"[claims] {msg}", flush=True)


# --------------------------------------------------------------------------------------------------- runs


def ensure_dataset(work: Path, sizes: Sizes, name: str = "data") -> Path:
    """The synthetic dataset under ``work/name``, synthesised unless one with the same settings is there."""
    root = work / name
    wanted = dict(
        num_classes=sizes.classes,
        train_per_class=sizes.train_per_class,
        val_per_class=sizes.val_per_class,
        num_frames=sizes.video_frames,
        size=sizes.video_size,
        seed=sizes.data_seed,
        nuisance=sizes.nuisance,
    )
    meta = root / "synth_meta.json"
    if meta.is_file():
        settings = json.loads(meta.read_text()).get("settings", {})
        if all(settings.get(k) == v for k, v in wanted.items()):
            log(f"reusing dataset {root}")
            return root
        raise SystemExit(f"{root} holds a dataset with other settings ({settings}); use another --work")
    log(f"synthesising {sizes.classes} classes x {sizes.train_per_class}/{sizes.val_per_class} clips into {root}")
    return synthesize(root, **wanted)


def baseline_config(sizes: Sizes, data_root: Path, out_dir: Path) -> Config:
    """The from-scratch TSM baseline (``plain``): the small CPU model of the demo and the tests."""
    return config_from_dict(
        {
            "model": {
                "name": "tsm",
                "num_classes": sizes.classes,
                "num_frames": sizes.num_frames,
                "options": {**dict(sizes.model_options), "dropout": sizes.dropout},
            },
            "data": {
                "kind": "somethingv2",
                "root": str(data_root),
                "num_frames": sizes.num_frames,
                "crop_size": sizes.crop,
                "scale_size": sizes.video_size,
                "flip": False,
                "train_crop": sizes.train_crop,
                "seed": 0,
                "num_workers": sizes.num_workers,
            },
            "optim": {
                "lr": sizes.lr,
                "epochs": sizes.epochs,
                "schedule": "step",
                "milestones": sizes.base_milestones,
                "weight_decay": 5e-4,
                "clip_grad_norm": 20.0,
                "batch_size": sizes.batch_size,
                "warmup_epochs": 1.0,
                # The x5/x10 classifier LR of the TSM recipe is for a new head on ImageNet features; from scratch
                # it makes the first epochs diverge (the demo does the same).
                "fc_lr_mult_weight": 1.0,
                "fc_lr_mult_bias": 1.0,
            },
            "adversarial": {"method": "plain"},
            "runtime": {
                "device": "cpu",
                "seed": 0,
                "deterministic": True,
                "output_dir": str(out_dir),
                "progress": "lines",
                "log_every": 1000,
                # The validation split is large (it sets the measurement noise); scoring it once at the end
                # keeps it from costing more than the training.
                "eval_every": sizes.epochs,
            },
        },
        "claims baseline",
    )


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


def clip_correct(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(correct (N,) bool, labels (N,))`` of a run's ``eval.json`` (the same clips for every run)."""
    ev = json.loads((run_dir / "eval.json").read_text())
    y = np.asarray(ev["clips"]["labels"], dtype=np.int64)
    return np.asarray(ev["clips"]["predictions"], dtype=np.int64) == y, y


def pairwise(
    dirs: dict[str, list[Path]], method: str, control: str, n_boot: int, subset_mask: np.ndarray | None = None
) -> dict[str, Any]:
    """``compare_methods`` of one method against any other arm (not only the comparison's control), paired by
    seed and clip; ``dirs`` maps arm -> run directories by seed."""
    correct = {arm: np.stack([clip_correct(d)[0] for d in dirs[arm]]) for arm in (control, method)}
    return stats.compare_methods(correct, control, subset_mask=subset_mask, n_boot=n_boot)


def train_or_reuse(cfg: Config, subset: list[str]) -> Path:
    """``fit(cfg)`` unless its directory already holds a finished run with this config (an interrupted one
    resumes); :func:`videotaf.engine.train.fit_or_reuse`. Returns the run directory."""
    run_dir, what = fit_or_reuse(cfg, subset_classes=subset)
    log(f"{what} {run_dir.name}: {cfg.adversarial.method}, {cfg.optim.epochs} epochs")
    return run_dir


def run_row(run_dir: Path, cfg: Config, long_term: list[str]) -> dict[str, Any]:
    """One run's numbers: val top-1/top-5/loss, long-/short-term top-1, train top-1/loss, gap, epoch time."""
    ev = json.loads((run_dir / "eval.json").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
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


# --------------------------------------------------------------------------------------------------- questions


def calibration_failure(gap: float, val_top1: float, chance: float) -> str | None:
    """Which part of the intended regime (train far above val, val well above chance and far from 100 %) fails."""
    reasons = []
    if gap < 15.0:
        reasons.append(f"train - val gap {gap:.1f} pp < 15")
    if val_top1 < chance + 10.0:
        reasons.append(
            f"val top-1 {val_top1:.1f} is less than 10 pp above chance ({chance:.1f}): it over-fits, but learns little"
        )
    if val_top1 > 85.0:
        reasons.append(f"val top-1 {val_top1:.1f} > 85")
    return "; ".join(reasons) or None


def baseline_calibration(base_row: dict[str, Any], sizes: Sizes) -> dict[str, Any]:
    """Does the baseline over-fit like Something-Something (train top-1 far above val, val far from 100%)?"""
    chance = 100.0 / sizes.classes
    out = {
        "train_top1": base_row["train_top1"],
        "val_top1": base_row["top1"],
        "gap": base_row["gap"],
        "chance": chance,
        "overfits": base_row["gap"] >= 15.0 and chance + 10.0 <= base_row["top1"] <= 85.0,
        "why_not": calibration_failure(base_row["gap"], base_row["top1"], chance),
    }
    log(
        f"baseline: train top-1 {out['train_top1']:.1f}, val top-1 {out['val_top1']:.1f} (chance {chance:.1f}), "
        f"gap {out['gap']:.1f} -> {'over-fits as intended' if out['overfits'] else 'NOT the intended regime: ' + out['why_not']}"
    )
    return out


def method_table(rows: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per arm: the per-seed values and their mean/std of every row key (Table 1 / 2a, Fig. 4, Fig. 5)."""
    keys = ("top1", "top5", "long_term_top1", "short_term_top1", "train_top1", "gap", "val_loss", "train_loss")
    return {
        arm: {
            **{k: [row[k] for row in mine] for k in keys},
            "mean": {k: mean([row[k] for row in mine]) for k in keys},
            "std": {k: std([row[k] for row in mine]) for k in keys},
            "epoch_time_s": mean([row["epoch_time_s"] for row in mine]),
        }
        for arm, mine in rows.items()
    }


def spread(ds: Dataset, n: int) -> Dataset:
    """``n`` items spread evenly over ``ds`` (the split is ordered by class, so a prefix would miss classes)."""
    if n >= len(ds):
        return ds
    return Subset(ds, [round(i * len(ds) / n) for i in range(n)])


def robustness(dirs: dict[str, list[Path]], val_cfg: Config, sizes: Sizes, out_dir: Path) -> dict[str, Any]:
    """Table 3: the plain- and TAF-fine-tuned models of the first ``sizes.robust_seeds`` seeds on the same
    corrupted validation clips (``sizes.robust_clips`` of them, spread over the split); mPC and rPC.

    Pixel-valued corruption parameters are scaled to the crop (``spatial_scale=None``: ``crop / 224``) so that
    a blur removes the same fraction of the frame as at the paper's 224 px.
    """
    names = {m: [f"{m}_seed{s}" for s in range(min(sizes.robust_seeds, len(dirs[m])))] for m in ("plain", "taf")}
    paths = {f"{m}_seed{s}": dirs[m][s] for m, ks in names.items() for s in range(len(ks))}
    cache = out_dir / "robustness.json"
    # What the numbers depend on (not every size: another LR reading or sweep must not recompute them).
    fields = ("corruptions", "severities", "robust_clips", "crop", "video_size", "num_frames")
    key = {"runs": {k: str(v) for k, v in paths.items()}, **{f: getattr(sizes, f) for f in fields}}
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("key") == json.loads(json.dumps(key)) and all(
            (d / "eval.json").stat().st_mtime <= cache.stat().st_mtime for d in paths.values()
        ):
            log("reusing robustness results")
            return cached["result"]
    models = {k: load_model(d / "checkpoints" / "last.pt")[0] for k, d in paths.items()}
    ds = spread(build_dataset(val_cfg.data, val_cfg.data.val_split, False), sizes.robust_clips)
    loader = DataLoader(ds, batch_size=32, shuffle=False, num_workers=0)
    t = time.perf_counter()
    res = evaluate_robustness(
        models, loader, list(sizes.corruptions), sizes.severities, seed=0, device="cpu", spatial_scale=None
    )
    log(
        f"robustness: {len(models)} models x {len(ds)} clips x {len(res['corruptions'])} corruptions x "
        f"{len(res['severities'])} severities in {time.perf_counter() - t:.0f} s"
    )
    out: dict[str, Any] = {"raw": res, "num_clips": len(ds), "methods": {}}
    for method, keys in names.items():
        per = [res["models"][k] for k in keys]
        out["methods"][method] = {
            "clean_top1": [p["clean"]["top1"] for p in per],
            "mPC_top1": [p["mPC"]["top1"] for p in per],
            "mPC_top5": [p["mPC"]["top5"] for p in per],
            "rPC_top1": [p["rPC"]["top1"] for p in per],
            "corruptions": {
                c: {
                    "top1": mean([p["corruptions"][c]["mean"]["top1"] for p in per]),
                    "top5": mean([p["corruptions"][c]["mean"]["top5"] for p in per]),
                }
                for c in res["corruptions"]
            },
            "families": {f: {"top1": [p["families"][f]["top1"] for p in per]} for f in per[0]["families"]},
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "result": out}, indent=1) + "\n")
    return out


def attention(base_dir: Path, dirs: dict[str, list[Path]], val_cfg: Config, sizes: Sizes) -> dict[str, Any]:
    """Figure 3 on the baseline: temporal-attention shift of TA versus CE-PGD (same budget, eps 64/255, step
    32/255, K 1); Figure 6: the clean attention of the plain- and TAF-fine-tuned models (every seed). On
    ``sizes.attention_clips`` validation clips spread over the split."""
    ds = spread(build_dataset(val_cfg.data, val_cfg.data.val_split, False), sizes.attention_clips)

    def loader() -> DataLoader:
        return DataLoader(ds, batch_size=16, shuffle=False, num_workers=0)

    t = time.perf_counter()
    base, _ = load_model(base_dir / "checkpoints" / "last.pt")
    fig3 = analyze_attention(base, loader(), eps=64 / 255, step_size=32 / 255, steps=1)
    fig6: dict[str, list[dict[str, float]]] = {}
    for method in ("plain", "taf"):
        for d in dirs[method]:
            model, _ = load_model(d / "checkpoints" / "last.pt")
            res = analyze_attention(model, loader(), attacks={})
            fig6.setdefault(method, []).append({k: res["clean"][k]["mean"] for k in ("entropy", "peak_share")})
    log(f"attention analysis in {time.perf_counter() - t:.0f} s")
    return {"baseline": fig3, "finetuned": fig6}


def normal_difference(a: dict[str, float], b: dict[str, float], n: int) -> dict[str, Any]:
    """``a - b`` of two per-clip means (``{"mean", "std"}`` over the same ``n`` clips) with a normal 95% interval
    that ignores the pairing (wider than a paired one: conservative)."""
    diff = a["mean"] - b["mean"]
    half = 1.96 * math.sqrt((a["std"] ** 2 + b["std"] ** 2) / max(n, 1))
    return {"mean": diff, "ci95": [diff - half, diff + half], "n": n}


def verdicts(
    results: dict[str, dict[str, Any]],
    dirs: dict[str, dict[str, list[Path]]],
    tables: dict[str, dict[str, dict[str, Any]]],
    base_dir: Path,
    rob: dict[str, Any] | None,
    att: dict[str, Any],
    sweep: dict[str, Any] | None,
    sizes: Sizes,
) -> list[dict[str, Any]]:
    """Each claim as measured here, with its 95% interval(s) and the verdict of ``videotaf compare``."""
    primary = sizes.lr_readings[0]
    res, arms_dirs, table = results[primary], dirs[primary], tables[primary]
    methods = res["methods"]
    out: list[dict[str, Any]] = []
    seeds_of = stats.paired_seed_difference

    if "taf" in methods:
        base_correct, _ = clip_correct(base_dir)
        taf_correct = np.stack([clip_correct(d)[0] for d in arms_dirs["taf"]])
        vs_base = stats.compare_methods(
            {"baseline": np.stack([base_correct] * len(taf_correct)), "taf": taf_correct}, "baseline",
            n_boot=sizes.n_boot,
        )["methods"]["taf"]  # fmt: skip
        out.append(method_claim("TAF > baseline (top-1; more epochs too)", "+1.3 (Tab. 1)", vs_base))
        out.append(method_claim("TAF > equal-epoch plain fine-tune (top-1)", "n/a (the control)", methods["taf"]))
        for other, paper in (("ce_adv", "+0.8 (Tab. 2a)"), ("advprop", "+2.4 (Tab. 2a, AdvProp from scratch)")):
            if other in arms_dirs:
                entry = pairwise(arms_dirs, "taf", other, sizes.n_boot)["methods"]["taf"]
                out.append(method_claim(f"TAF > {other} fine-tune (top-1)", paper, entry))
        taf, plain = table["taf"], table["plain"]
        out.append(claim_row("TAF > plain (top-5)", "+0.4 (Tab. 1)", seeds_of(taf["top5"], plain["top5"])))
        lt = [a - b for a, b in zip(taf["long_term_top1"], plain["long_term_top1"])]
        st = [a - b for a, b in zip(taf["short_term_top1"], plain["short_term_top1"])]
        out.append(claim_row("gain on long-term classes > gain on the others", "Fig. 4", seeds_of(lt, st)))
        if methods["taf"].get("subset"):
            out.append(method_claim("TAF > plain on long-term classes (top-1)", "Fig. 4", methods["taf"]["subset"]))
        gap = methods["taf"]["train_val_gap"]["delta_vs_control"]
        out.append(claim_row("TAF has a smaller train-val gap", "Fig. 5 / Sec. 4.3", gap, higher_is_better=False))
        loss = methods["taf"]["val_loss"]["delta_vs_control"]
        out.append(
            claim_row(
                "TAF has a lower validation loss", "2.4 -> 2.2 (Fig. 5)", loss, unit="nats", higher_is_better=False
            )
        )
        out.append(
            claim_row(
                "TAF has a higher training loss",
                "slightly (Fig. 5)",
                seeds_of(taf["train_loss"], plain["train_loss"]),
                unit="nats",
            )
        )
    for other, paper in (("ce_adv", "+0.5 over baseline (Tab. 2a)"), ("advprop", "-1.1 vs baseline (Tab. 2a)")):
        if other in methods:
            out.append(method_claim(f"{other} > plain fine-tune (top-1)", paper, methods[other]))
    frac = fraction_label(sizes)
    if frac in methods:
        out.append(method_claim(f"TAF on {sizes.fraction:g} of each batch > plain (top-1)", "n/a", methods[frac]))
        entry = pairwise(arms_dirs, frac, "taf", sizes.n_boot)["methods"][frac]
        out.append(method_claim(f"TAF on {sizes.fraction:g} of each batch > full TAF (top-1)", "n/a", entry))
    for reading in sizes.lr_readings[1:]:
        if "taf" in results[reading]["methods"]:
            out.append(
                method_claim(f"TAF > plain with the LR from the {reading}", "n/a", results[reading]["methods"]["taf"])
            )
        n = min(len(dirs[r]["plain"]) for r in (primary, reading))  # the seeds both readings ran
        both = {
            f"{arm}@{r}": dirs[r][arm][:n] for r in (primary, reading) for arm in ("plain", "taf") if arm in dirs[r]
        }
        for arm in ("plain", "taf"):
            if f"{arm}@{reading}" in both and f"{arm}@{primary}" in both:
                entry = pairwise(both, f"{arm}@{reading}", f"{arm}@{primary}", sizes.n_boot)["methods"]
                out.append(
                    method_claim(
                        f"{arm}: LR from the {reading} > LR from the {primary} (top-1)",
                        "Sec. 4.1 reads as the checkpoint's LR",
                        entry[f"{arm}@{reading}"],
                    )
                )
    if rob is not None:
        p, t = rob["methods"]["plain"], rob["methods"]["taf"]
        out.append(
            claim_row(
                "TAF > plain under corruption (mPC top-1)", "+1.0 (Tab. 3, TSM)", seeds_of(t["mPC_top1"], p["mPC_top1"])
            )
        )
        out.append(
            claim_row(
                "TAF > plain relative robustness (rPC top-1)",
                "n/a",
                seeds_of(t["rPC_top1"], p["rPC_top1"]),
                unit="ratio",
            )
        )
        for fam in t["families"]:
            out.append(
                claim_row(
                    f"TAF > plain on {fam} corruptions (top-1)",
                    "+1.0-1.5 (Tab. 3)",
                    seeds_of(t["families"][fam]["top1"], p["families"][fam]["top1"]),
                )
            )
    fig3 = att["baseline"]["attacks"]
    if "ta" in fig3 and "ce" in fig3:
        n = att["baseline"]["num_clips"]
        for key, claim, paper, unit in (
            ("tv", "TA moves temporal attention more than CE-PGD (TV of frame shares)", "Fig. 3", "TV"),
            ("nonkey_gain", "TA moves attention onto the non-key frames more than CE-PGD", "Eq. 5 / Fig. 3", "share"),
        ):
            diff = normal_difference(fig3["ta"]["shift"][key], fig3["ce"]["shift"][key], n)
            out.append(claim_row(claim, paper, diff, unit=unit, basis="clips (normal, unpaired)"))
    fine = att["finetuned"]
    if "plain" in fine and "taf" in fine:
        ent = seeds_of([r["entropy"] for r in fine["taf"]], [r["entropy"] for r in fine["plain"]])
        out.append(claim_row("TAF models attend more evenly (normalised entropy)", "Fig. 6", ent, unit="entropy"))
    if sweep is not None:
        top1 = {k: v["per_seed"] for k, v in sweep["top1"].items()}
        alphas = {k: top1[k] for k in top1 if k.startswith("alpha_") and k != "alpha_0.7"}
        if alphas and "alpha_0.7" in top1:
            best = max(alphas, key=lambda k: statistics.fmean(alphas[k]))
            out.append(
                claim_row(
                    f"alpha 0.7 > the best other alpha ({best[6:]})",
                    "Tab. 2b",
                    seeds_of(top1["alpha_0.7"], alphas[best]),
                )
            )
        if all(k in top1 for k in ATTACKS):
            big = [statistics.fmean(v) for v in zip(top1["e64_k1"], top1["e64_k3"])]
            small = [statistics.fmean(v) for v in zip(top1["e6_k1"], top1["e6_k3"])]
            out.append(claim_row("eps 64/255 > eps 6/255 (mean over K)", "+0.3 (Tab. 2c)", seeds_of(big, small)))
    return out


def sweep_summary(result: dict[str, Any], plan_arms: dict[str, MethodSpec]) -> dict[str, Any]:
    """The sweep's comparison (every setting against plain over ``sweep_seeds`` seeds) keyed by setting name."""
    top1: dict[str, Any] = {}
    for key, spec in plan_arms.items():
        entry = result["methods"][spec.label]
        top1[key] = {
            "label": spec.label,
            "per_seed": entry["top1"]["per_seed"],
            "mean": entry["top1"]["mean"],
            "delta_vs_plain": entry["delta_top1"],
            "clip_ci95": entry["bootstrap"]["ci95"],
            "verdict": entry["verdict"],
        }
    return {"n_seeds": result["n_seeds"], "control_top1": result["control_top1"], "top1": top1}


# --------------------------------------------------------------------------------------------------- report


def demote(markdown_text: str, levels: int = 2) -> str:
    """Nest a ``format_markdown`` block under this section's headings."""
    return "\n".join(("#" * levels + line) if line.startswith("#") else line for line in markdown_text.splitlines())


def method_rows(table: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for m, r in table.items():
        lines.append(
            f"| {m} | {pm(r['top1'])} | {pm(r['top5'])} | {pm(r['long_term_top1'])} | {pm(r['short_term_top1'])} | "
            f"{pm(r['train_top1'])} | {pm(r['gap'])} | {pm(r['val_loss'], '.3f')} | {pm(r['train_loss'], '.3f')} | "
            f"{fmt(r['epoch_time_s'])} |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md "claims" section: command, machine, date, tables, verdicts."""
    sizes = result["sizes"]
    cal = result["calibration"]
    n_val = result["num_val_clips"]
    lines = [
        header(),
        f"Synthetic long-term-motion data (`videotaf.data.synth`): {sizes['classes']} classes, "
        f"{sizes['train_per_class']}/{sizes['val_per_class']} train/val clips per class "
        f"({n_val} val clips: one clip = {100 / n_val:.2f} pp), "
        f"{sizes['video_frames']} frames of {sizes['video_size']} px; {len(result['long_term_classes'])} long-term "
        f"classes. TSM depth 18 width 0.25, {sizes['num_frames']} frames, crop {sizes['crop']}, batch "
        f"{sizes['batch_size']}, LR {sizes['lr']}. Baseline {sizes['epochs']} epochs from scratch; every fine-tune "
        f"is a `videotaf compare` run: {sizes['finetune_epochs']} epochs from the baseline, LR x0.1 after epoch "
        f"{result['decay_after']}, alpha 0.7, eps 64/255, step 32/255, K 1, N = T, paired seeds ({sizes['seeds']} "
        f"under the first LR reading, {min(sizes['seeds'], sizes['other_reading_seeds'])} under the other; seed s: the "
        "same data order and augmentation for every method). Accuracies in %, 1 clip centre crop, "
        f"final model; mean ± sample sd over seeds. Wall time of this invocation "
        f"{result['timings']['total_s'] / 60:.1f} min (training epochs of all runs, reused ones included: "
        f"{result['timings']['training_in_runs_s'] / 60:.1f} min).",
        "",
        f"Baseline calibration: train top-1 {cal['train_top1']:.1f}, val top-1 {cal['val_top1']:.1f} "
        f"(chance {cal['chance']:.1f}), gap {cal['gap']:.1f} pp: "
        + (
            "over-fits as intended (Sec. 3.1)."
            if cal["overfits"]
            else f"**not** the intended regime: {cal.get('why_not') or 'see the numbers'}."
        ),
    ]
    b = result["baseline"]
    head = [
        "| method | top-1 | top-5 | long-term top-1 | other top-1 | train top-1 | gap | val loss | train loss |"
        " s/epoch |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| baseline ({sizes['epochs']} ep) | {b['top1']:.1f} | {b['top5']:.1f} | {fmt(b['long_term_top1'])} | "
        f"{fmt(b['short_term_top1'])} | {b['train_top1']:.1f} | {b['gap']:.1f} | {b['val_loss']:.3f} | "
        f"{b['train_loss']:.3f} | {fmt(b['epoch_time_s'])} |",
    ]
    for reading in sizes["lr_readings"]:
        lr, source = result["lr"][reading]
        lines += [
            "",
            f"### Fine-tuning LR from the {reading}: {lr:g} (from {source}), then x0.1 (Table 1 / 2a, Figures 4, 5)",
            "",
            *head,
            *method_rows(result["methods"][reading]),
            "",
            demote(stats.format_markdown(result["compare"][reading]), 2),
        ]
    rob = result.get("robustness")
    if rob:
        raw = rob["raw"]
        cs = raw["corruptions"]
        lines += [
            "",
            f"### Corruptions (Table 3): top-1/top-5, mean over severities {', '.join(map(str, raw['severities']))}"
            f" and over the first {sizes['robust_seeds']} seeds, {rob['num_clips']} val clips; pixel parameters "
            "scaled by crop/224",
            "",
            "| method | clean | " + " | ".join(cs) + " | mPC top-1 | rPC top-1 |",
            "|---" * (len(cs) + 4) + "|",
        ]
        for m, r in rob["methods"].items():
            cells = [f"{r['corruptions'][c]['top1']:.1f}/{r['corruptions'][c]['top5']:.1f}" for c in cs]
            lines.append(
                f"| {m} | {pm(r['clean_top1'])} | "
                + " | ".join(cells)
                + f" | {pm(r['mPC_top1'])} | {pm(r['rPC_top1'], '.3f')} |"
            )
    att = result["attention"]
    fig3 = att["baseline"]
    lines += [
        "",
        f"### Temporal attention (Figure 3, Figure 6): Grad-CAM frame shares over {fig3['num_clips']} val clips, "
        f"{fig3['cam_frames']} CAM frames; weakest = the {fig3['num_weakest']} weakest frames",
        "",
        "| baseline input | entropy | peak share | weakest share | TV shift from clean | non-key gain | top-1 |",
        "|---|---|---|---|---|---|---|",
    ]

    def ms(d: dict[str, float], spec: str = ".3f") -> str:
        return f"{d['mean']:{spec}} ± {d['std']:{spec}}"

    c = fig3["clean"]
    lines.append(
        f"| clean | {ms(c['entropy'])} | {ms(c['peak_share'])} | {ms(c['weakest_share'])} | - | - | {c['top1']:.1f} |"
    )
    for name, label in (("ta", "TA (Eq. 6)"), ("ce", "CE-PGD (Eq. 1)")):
        a = fig3["attacks"].get(name)
        if a:
            mt, sh = a["metrics"], a["shift"]
            lines.append(
                f"| {label} | {ms(mt['entropy'])} | {ms(mt['peak_share'])} | {ms(mt['weakest_share'])} | "
                f"{ms(sh['tv'])} | {ms(sh['nonkey_gain'])} | {a['top1']:.1f} |"
            )
    lines.append("")
    lines.append("(± here is the std over clips.) Clean attention of the fine-tuned models (mean ± std over seeds):")
    lines.append("")
    lines += ["| fine-tune | entropy | peak share |", "|---|---|---|"]
    for m, rs in att["finetuned"].items():
        lines.append(f"| {m} | {pm([r['entropy'] for r in rs], '.3f')} | {pm([r['peak_share'] for r in rs], '.3f')} |")
    sweep = result.get("sweep")
    if sweep:
        lines += [
            "",
            f"### TAF settings (Table 2b / 2c): each against plain, {sweep['n_seeds']} paired seeds, "
            f"LR from the {sizes['lr_readings'][0]}",
            "",
            "| setting | top-1 | Δ vs plain, pp [95% CI seeds] | [95% CI clips] | verdict | paper top-1 |",
            "|---|---|---|---|---|---|",
            f"| plain fine-tune | {sweep['control_top1']['mean']:.2f} | - | - | - | {PAPER['baseline']} (baseline) |",
        ]
        for k, v in sweep["top1"].items():
            paper = PAPER["alpha"].get(float(k[6:])) if k.startswith("alpha_") else PAPER["attack"].get(k)
            d = v["delta_vs_plain"]
            lines.append(
                f"| {SETTING_NAMES[k]} | {v['mean']:.2f} | {d['mean']:+.2f} {ci_text(d['ci95'])} | "
                f"{ci_text(v['clip_ci95'])} | {v['verdict']} | {fmt(paper)} |"
            )
    lines += [
        "",
        "### Verdicts (computed from the numbers above)",
        "",
        "Every difference is the claimed side minus the other, paired by seed (same data order) with a Student t "
        "95% interval over seeds; accuracy differences also get the paired bootstrap interval over validation "
        "clips and the minimum detectable difference (80% power; the larger of the seed and clip estimates). "
        "Verdict (`videotaf compare`'s rule): **holds** / **reversed** only when every interval excludes 0 on "
        "the same side, otherwise **no detectable difference**. Attention shifts: a normal interval over clips.",
        "",
        "| claim | paper | difference | 95% CI (seeds) | 95% CI (clips) | MDD | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in result["verdicts"]:
        spec = ".2f" if v["unit"] == "pp" else ".3f"
        seed_ci = "-" if v["basis"].startswith("clips") else ci_text(v["ci95"], spec)
        clip_ci = ci_text(v["ci95"], spec) if v["basis"].startswith("clips") else (
            ci_text(v["clip_ci95"], spec) if v["clip_ci95"] is not None else "-"
        )  # fmt: skip
        lines.append(
            f"| {v['claim']} | {v['paper']} | {fmt(v['diff'], '+' + spec)} {v['unit']} | {seed_ci} | {clip_ci} | "
            f"{fmt(v['mdd'], '.2f')} | **{v['verdict']}** |"
        )
    counts = {k: sum(v["verdict"] == k for v in result["verdicts"]) for k in (HOLDS, REVERSED, UNDETECTED)}
    lines += [
        "",
        f"Summary: {counts[HOLDS]} claim(s) hold, {counts[REVERSED]} are reversed, {counts[UNDETECTED]} show no "
        "detectable difference at this scale.",
    ]
    main = next((v for v in result["verdicts"] if v["claim"] == "TAF > equal-epoch plain fine-tune (top-1)"), None)
    if main is not None:
        lines.append(
            f"TAF against the equal-epoch plain fine-tune: {main['diff']:+.2f} pp, 95% CI {ci_text(main['ci95'])} "
            f"over seeds, {ci_text(main['clip_ci95'])} over clips, MDD {fmt(main['mdd'], '.2f')} pp: "
            f"**{main['verdict']}**."
        )
    if result["quick"]:
        lines.append("\n`--quick` run: toy sizes, the numbers only show that the pipeline runs.")
    return "\n".join(lines) + "\n"


SETTING_NAMES = {
    "alpha_0.5": "alpha 0.5",
    "alpha_0.7": "alpha 0.7 (= taf)",
    "alpha_0.9": "alpha 0.9",
    "e6_k1": "eps 6, step 2, K 1",
    "e6_k3": "eps 6, step 2, K 3",
    "e64_k1": "eps 64, step 32, K 1 (= taf)",
    "e64_k3": "eps 64, step 32, K 3",
}


# --------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Sizes]:
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
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    for f in (
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
    ):
        if getattr(args, f) is not None:
            changes[f] = getattr(args, f)
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
    sizes = Sizes(**{**asdict(base), **changes})
    suffix = "_quick" if args.quick else ""
    args.work = args.work or ROOT / "runs" / f"claims{suffix}"
    args.out = args.out or ROOT / "benchmarks" / "results" / f"claims{suffix}.json"
    return args, sizes


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, sizes = parse_args(argv)
    torch.set_num_threads(args.threads)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    data_root = ensure_dataset(work, sizes)
    labels = json.loads((data_root / "something-something-v2-labels.json").read_text())
    class_names = sorted(labels, key=lambda n: int(labels[n]))
    subset_file = data_root / "long_term_classes.txt"
    long_term = read_class_subset(subset_file, class_names)
    timings["dataset_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    base_cfg = baseline_config(sizes, data_root, work / "baseline")
    base_dir = train_or_reuse(base_cfg, long_term)
    base_row = run_row(base_dir, base_cfg, long_term)
    calibration = baseline_calibration(base_row, sizes)
    timings["baseline_s"] = time.perf_counter() - t
    checkpoint = base_dir / "checkpoints" / "last.pt"

    # Table 1 / 2a and the cheaper TAF: one `videotaf compare` per reading of the fine-tuning LR.
    t = time.perf_counter()
    compared: dict[str, dict[str, Any]] = {}
    dirs: dict[str, dict[str, list[Path]]] = {}
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {}
    lrs: dict[str, tuple[float, str]] = {}
    for reading in sizes.lr_readings:
        first = reading == sizes.lr_readings[0]
        methods = None if first else sizes.other_reading_methods
        seeds = sizes.seeds if first else min(sizes.seeds, sizes.other_reading_seeds)
        settings = compare_settings(
            checkpoint, sizes, arms(sizes, methods), seeds, reading, work / f"lr_{reading}", subset_file
        )
        assert settings.base is not None
        lrs[reading] = finetune_lr(checkpoint, reading, settings.base.optim.lr)
        plan, compared[reading] = run_arms(settings, settings.out_dir)
        dirs[reading], rows[reading] = {}, {}
        for run in plan:  # seed-major: each arm's list is in seed order
            dirs[reading].setdefault(run.spec.label, []).append(run.run_dir)
            rows[reading].setdefault(run.spec.label, []).append(run_row(run.run_dir, run.cfg, long_term))
        tables[reading] = method_table(rows[reading])
        for label, entry in compared[reading]["methods"].items():
            d = entry["delta_top1"]
            log(f"LR from the {reading}: {label} - plain {d['mean']:+.2f} pp {ci_text(d['ci95'])}: {entry['verdict']}")
    timings["finetune_s"] = time.perf_counter() - t
    primary = sizes.lr_readings[0]

    # Tables 2b / 2c: the sweep's arms beside plain and taf of the primary comparison (their runs are reused).
    sweep = None
    if sizes.sweep and "taf" in sizes.methods:
        t = time.perf_counter()
        plan_arms = sweep_arms()
        settings = compare_settings(
            checkpoint,
            sizes,
            [MethodSpec("plain", "plain"), *dict.fromkeys(plan_arms.values())],
            sizes.sweep_seeds,
            primary,
            work / f"lr_{primary}",
            subset_file,
        )
        _, sweep_result = run_arms(settings, work / "sweep")
        sweep = sweep_summary(sweep_result, plan_arms)
        timings["sweep_s"] = time.perf_counter() - t

    rob = None
    if "taf" in sizes.methods:
        t = time.perf_counter()
        rob = robustness(dirs[primary], base_cfg, sizes, work / "robustness")
        timings["robustness_s"] = time.perf_counter() - t
        t = time.perf_counter()
        att = attention(base_dir, dirs[primary], base_cfg, sizes)
        timings["attention_s"] = time.perf_counter() - t
    else:
        att = {"baseline": {"attacks": {}}, "finetuned": {}}
    verdict_rows = verdicts(compared, dirs, tables, base_dir, rob, att, sweep, sizes)
    timings["total_s"] = time.perf_counter() - t0
    # Training seconds summed over every run, also when runs were reused: what a fresh run of this plan costs.
    seen = {r["run_dir"]: r["train_time_s"] for by_arm in rows.values() for rs in by_arm.values() for r in rs}
    timings["training_in_runs_s"] = base_row["train_time_s"] + sum(seen.values())

    result = {
        "quick": args.quick,
        "work": str(work),
        "sizes": asdict(sizes),
        "decay_after": sizes.decay_after,
        "base_milestones": sizes.base_milestones,
        "num_val_clips": sizes.classes * sizes.val_per_class,
        "long_term_classes": long_term,
        "calibration": calibration,
        "baseline": base_row,
        "lr": lrs,
        "runs": rows,
        "methods": tables,
        "compare": compared,
        "robustness": rob,
        "attention": att,
        "sweep": sweep,
        "verdicts": verdict_rows,
        "paper": {k: {str(kk): vv for kk, vv in v.items()} if isinstance(v, dict) else v for k, v in PAPER.items()},
        "timings": timings,
    }
    write_json(args.out, result)
    log(f"results: {args.out}")
    for v in verdict_rows:
        log(f"{v['claim']}: {fmt(v['diff'], '+.3f')} {ci_text(v['ci95'], '.3f')} -> {v['verdict']}")
    if not args.no_md:
        update_section("claims", markdown(result))
        log("BENCHMARKS.md claims section updated")
    return result


if __name__ == "__main__":
    main()
