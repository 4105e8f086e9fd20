"""The claims benchmark's judgement: the baseline's calibration, the method tables, Table 3's corruptions,
Figures 3 and 6's attention, the sweep, and each claim's verdict with its 95% intervals."""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from benchmarks.claims_plan import ATTACKS, Sizes, fraction_label
from benchmarks.claims_run import Readings, log, mean, spread, std
from videotaf.analysis import stats
from videotaf.analysis.attention import analyze_attention
from videotaf.analysis.compare import MethodSpec
from videotaf.analysis.robustness import evaluate_robustness
from videotaf.config import Config
from videotaf.data import build_dataset
from videotaf.engine.builders import load_model

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


# --------------------------------------------------------------------------------------------------- verdicts


def verdicts(
    readings: Readings,
    base_dir: Path,
    rob: dict[str, Any] | None,
    att: dict[str, Any],
    sweep: dict[str, Any] | None,
    sizes: Sizes,
) -> list[dict[str, Any]]:
    """Each claim as measured here, with its 95% interval(s) and the verdict of ``videotaf compare``: the
    primary comparison's (Tables 1 / 2a, Figures 4, 5), the other LR readings', Table 3's, the attention's
    (Figures 3, 6) and the sweep's (Tables 2b, 2c), in that order."""
    out = taf_claims(readings, base_dir, sizes) + method_claims(readings, sizes) + reading_claims(readings, sizes)
    if rob is not None:
        out += robustness_claims(rob)
    out += attention_claims(att)
    if sweep is not None:
        out += sweep_claims(sweep)
    return out


def taf_claims(readings: Readings, base_dir: Path, sizes: Sizes) -> list[dict[str, Any]]:
    """TAF under the primary LR reading against the baseline, plain, ce_adv and AdvProp (Tables 1 / 2a), on the
    long-term classes (Figure 4), and its over-fitting gap and losses (Figure 5)."""
    primary = sizes.lr_readings[0]
    methods, arms_dirs, table = readings.compared[primary]["methods"], readings.dirs[primary], readings.tables[primary]
    if "taf" not in methods:
        return []
    seeds_of = stats.paired_seed_difference
    base_correct, _ = clip_correct(base_dir)
    taf_correct = np.stack([clip_correct(d)[0] for d in arms_dirs["taf"]])
    vs_base = stats.compare_methods(
        {"baseline": np.stack([base_correct] * len(taf_correct)), "taf": taf_correct}, "baseline", n_boot=sizes.n_boot
    )["methods"]["taf"]
    out = [
        method_claim("TAF > baseline (top-1; more epochs too)", "+1.3 (Tab. 1)", vs_base),
        method_claim("TAF > equal-epoch plain fine-tune (top-1)", "n/a (the control)", methods["taf"]),
    ]
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
    loss = methods["taf"]["val_loss"]["delta_vs_control"]
    train_loss = seeds_of(taf["train_loss"], plain["train_loss"])
    return out + [
        claim_row("TAF has a smaller train-val gap", "Fig. 5 / Sec. 4.3", gap, higher_is_better=False),
        claim_row("TAF has a lower validation loss", "2.4 -> 2.2 (Fig. 5)", loss, unit="nats", higher_is_better=False),
        claim_row("TAF has a higher training loss", "slightly (Fig. 5)", train_loss, unit="nats"),
    ]


def method_claims(readings: Readings, sizes: Sizes) -> list[dict[str, Any]]:
    """ce_adv and AdvProp against plain (Table 2a) and the cheaper TAF against plain and full TAF, under the
    primary LR reading."""
    primary = sizes.lr_readings[0]
    methods, arms_dirs = readings.compared[primary]["methods"], readings.dirs[primary]
    out = []
    for other, paper in (("ce_adv", "+0.5 over baseline (Tab. 2a)"), ("advprop", "-1.1 vs baseline (Tab. 2a)")):
        if other in methods:
            out.append(method_claim(f"{other} > plain fine-tune (top-1)", paper, methods[other]))
    frac = fraction_label(sizes)
    if frac in methods:
        out.append(method_claim(f"TAF on {sizes.fraction:g} of each batch > plain (top-1)", "n/a", methods[frac]))
        entry = pairwise(arms_dirs, frac, "taf", sizes.n_boot)["methods"][frac]
        out.append(method_claim(f"TAF on {sizes.fraction:g} of each batch > full TAF (top-1)", "n/a", entry))
    return out


def reading_claims(readings: Readings, sizes: Sizes) -> list[dict[str, Any]]:
    """Under each other LR reading: TAF against plain, and each arm against itself under the primary reading
    (paired over the seeds both readings ran)."""
    primary, out = sizes.lr_readings[0], []
    dirs = readings.dirs
    for reading in sizes.lr_readings[1:]:
        methods = readings.compared[reading]["methods"]
        if "taf" in methods:
            out.append(method_claim(f"TAF > plain with the LR from the {reading}", "n/a", methods["taf"]))
        n = min(len(dirs[r]["plain"]) for r in (primary, reading))  # the seeds both readings ran
        both = {
            f"{arm}@{r}": dirs[r][arm][:n] for r in (primary, reading) for arm in ("plain", "taf") if arm in dirs[r]
        }
        for arm in ("plain", "taf"):
            if f"{arm}@{reading}" in both and f"{arm}@{primary}" in both:
                entry = pairwise(both, f"{arm}@{reading}", f"{arm}@{primary}", sizes.n_boot)["methods"]
                claim = f"{arm}: LR from the {reading} > LR from the {primary} (top-1)"
                out.append(method_claim(claim, "Sec. 4.1 reads as the checkpoint's LR", entry[f"{arm}@{reading}"]))
    return out


def robustness_claims(rob: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 3: TAF against plain in mPC and rPC top-1, and per corruption family."""
    seeds_of = stats.paired_seed_difference
    p, t = rob["methods"]["plain"], rob["methods"]["taf"]
    out = [
        claim_row(
            "TAF > plain under corruption (mPC top-1)", "+1.0 (Tab. 3, TSM)", seeds_of(t["mPC_top1"], p["mPC_top1"])
        ),
        claim_row(
            "TAF > plain relative robustness (rPC top-1)", "n/a", seeds_of(t["rPC_top1"], p["rPC_top1"]), unit="ratio"
        ),
    ]
    for fam in t["families"]:
        diff = seeds_of(t["families"][fam]["top1"], p["families"][fam]["top1"])
        out.append(claim_row(f"TAF > plain on {fam} corruptions (top-1)", "+1.0-1.5 (Tab. 3)", diff))
    return out


def attention_claims(att: dict[str, Any]) -> list[dict[str, Any]]:
    """Figure 3: TA against CE-PGD in how far they move the baseline's temporal attention; Figure 6: the
    evenness of the fine-tuned models' attention."""
    out = []
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
        ent = stats.paired_seed_difference([r["entropy"] for r in fine["taf"]], [r["entropy"] for r in fine["plain"]])
        out.append(claim_row("TAF models attend more evenly (normalised entropy)", "Fig. 6", ent, unit="entropy"))
    return out


def sweep_claims(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 2b: alpha 0.7 against the best other alpha; Table 2c: eps 64/255 against 6/255 (mean over K)."""
    seeds_of = stats.paired_seed_difference
    out = []
    top1 = {k: v["per_seed"] for k, v in sweep["top1"].items()}
    alphas = {k: top1[k] for k in top1 if k.startswith("alpha_") and k != "alpha_0.7"}
    if alphas and "alpha_0.7" in top1:
        best = max(alphas, key=lambda k: statistics.fmean(alphas[k]))
        diff = seeds_of(top1["alpha_0.7"], alphas[best])
        out.append(claim_row(f"alpha 0.7 > the best other alpha ({best[6:]})", "Tab. 2b", diff))
    if all(k in top1 for k in ATTACKS):
        big = [statistics.fmean(v) for v in zip(top1["e64_k1"], top1["e64_k3"])]
        small = [statistics.fmean(v) for v in zip(top1["e6_k1"], top1["e6_k3"])]
        out.append(claim_row("eps 64/255 > eps 6/255 (mean over K)", "+0.3 (Tab. 2c)", seeds_of(big, small)))
    return out
