"""Where does TAF pay? The network regime study (issue 19): the network and the training view as factors.

The first regime study (``regimes.py``) varied which layer TA reads, the crop, the data size, the LR and the
attack inside one stride-32 network whose last stage is 2x2 at our input size, and found no cell where TAF pays.
This one varies the network. Data (:data:`FULL`): the synthetic long-term-motion set at 64 px (8 classes, 32
training and 40 validation clips per class, 16-frame videos, 8 sampled frames; the issue's 12 classes with 15
clips per class left every baseline at chance on validation), baselines from scratch that over-fit (30 epochs,
SGD 0.01, x0.1 at 18 and 25), fine-tunes with ``videotaf compare`` (10 epochs, x0.1 after 6, LR restarted at
0.005: ``--lr-from config``).

Pools (one baseline each; a pool's arms share its plain runs):

=========  ==========================================================  ========  ==========
pool       network (TSM, basic blocks, width 0.25)                     last map  view
=========  ==========================================================  ========  ==========
s16        small stem (3x3 stride-2 conv, no max-pool), 5 blocks        4x4       whole frame
s32        ImageNet stem (7x7 stride-2 conv + max-pool), 5 blocks       2x2       whole frame
s16_crop   as s16                                                       4x4       multi-scale crop 56
s32_crop   as s32                                                       2x2       multi-scale crop 56
s16_d8     small stem, 8 blocks (ResNet-18 counts)                      4x4       whole frame
s16_x2     as s16, twice the training clips (64 per class)              4x4       whole frame
s32_x2     as s32, twice the training clips (64 per class)              2x2       whole frame
=========  ==========================================================  ========  ==========

Arms: ``plain`` (the control), ``taf`` (TA reads the last stage), and per pool extra TAF arms named in
:data:`POOLS` (TA reading an intermediate stage; the cheap TAF, ``adversarial.fraction: 0.25``; CE-PGD and
AdvProp; ``taf_random``, TA's target a random other class, ``adversarial.target_rule: random``). The mechanism (``mechanism``): on the baseline, in training mode with the training view (what the
first fine-tuning step sees): train-mode top-1, the share of clips whose TA target is their true label (Sec. 3.2's
rule fires on every misclassified clip), CE and L_C (Eq. 5) before and after TA; on validation clips: the
per-frame CAM mass (peak frame share, entropy) at the layer TA reads and how far TA moves it.

Each pool writes ``benchmarks/results/networks/<pool>.json``; ``--report`` joins them into
``benchmarks/results/networks.json`` and the ``networks`` section of BENCHMARKS.md, with the correlation of each
mechanism figure with TAF - plain across arms. Two processes with one thread each use two cores better than one
with two threads at these sizes:

    python -m benchmarks.networks --quick                         # every pool at toy size (about 2 min)
    python -m benchmarks.networks --pools s16 s32 --threads 1 &   # the study, in two processes
    python -m benchmarks.networks --pools s16_crop s32_crop --threads 1
    python -m benchmarks.networks --report
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks import claims, regimes
from benchmarks._common import ROOT, command_line, header, update_section, write_json
from videotaf.analysis.compare import MethodSpec
from videotaf.analysis.render import interval
from videotaf.attack import TAOptions, TemporalAdversarialAugmentation
from videotaf.bn import frozen_bn_stats
from videotaf.config import Config
from videotaf.data import build_dataset
from videotaf.engine.builders import load_model
from videotaf.engine.recipes import NETWORK_STUDY, recipe_fields

SMALL_STEM = NETWORK_STUDY.model_options
IMAGENET_STEM = (("depth", 18), ("width", 0.25), ("stem", "imagenet"), ("blocks", [1, 1, 2, 1]))
SMALL_STEM_D8 = (("depth", 18), ("width", 0.25), ("stem", "small"))

# The study's recipe lives in the library (``videotaf.engine.recipes.NETWORK_STUDY``), where ``videotaf demo
# --regime paying`` runs its s16_x2 pool; the claims' sizes add the comparisons' settings.
FULL = dataclasses.replace(claims.FULL, **recipe_fields(NETWORK_STUDY), n_boot=10000)
QUICK = dataclasses.replace(
    claims.QUICK,
    classes=6,
    video_size=32,
    crop=32,
    train_crop="none",
    model_options=SMALL_STEM,
    epochs=2,
    finetune_epochs=1,
    finetune_decay=1,
    finetune_lr=0.005,
)


@dataclass(frozen=True)
class Pool:
    """One baseline and the fine-tunes compared from it.

    ``model``: the network's model options; ``view``: the training view (``data.train_crop``) of the baseline and
    its fine-tunes; ``data``: which data set (``"main"`` or ``"x2"``, twice the training clips); ``last`` and
    ``mid``: the dotted names of the last stage and of the intermediate stage an extra TAF arm reads; ``extra``:
    further arm names (:data:`EXTRA_ARMS`); ``baseline_seed``: the baseline's initial weights and data order (a
    second draw of a pool's recipe sets 1); ``cache_frames``: clips decoded once and kept in memory, no loader
    workers (``data.cache_frames``: the same clips, faster; the pools added after the cache existed use it)."""

    name: str
    label: str
    model: tuple[tuple[str, Any], ...]
    view: str = "none"
    data: str = "main"
    mid: str | None = None
    extra: tuple[str, ...] = ()
    baseline_seed: int = 0
    cache_frames: bool = False

    def sizes(self, base: claims.Sizes) -> claims.Sizes:
        crop = base.crop if self.view == "none" else round(base.crop * 7 / 8)
        train = base.train_per_class * (2 if self.data == "x2" else 1)
        sizes = dataclasses.replace(
            base, model_options=self.model, train_crop=self.view, crop=crop, train_per_class=train
        )
        if self.cache_frames:
            sizes = dataclasses.replace(sizes, cache_frames=True, num_workers=0)
        return sizes

    def redraw(self) -> Pool:
        """This pool's recipe with a second baseline (seed 1), plain and TAF only, frames cached: ``<name>_b1``."""
        return dataclasses.replace(
            self, name=f"{self.name}_b1", label=f"{self.label}, 2nd baseline", mid=None, extra=(),
            baseline_seed=1, cache_frames=True,
        )  # fmt: skip

    def arms(self) -> list[MethodSpec]:
        arms = [MethodSpec("plain", "plain"), MethodSpec("taf", "taf")]
        if self.mid is not None:
            arms.append(MethodSpec("taf_mid", "taf", (f"adversarial.cam_layer={self.mid}",)))
        return arms + [EXTRA_ARMS[name] for name in self.extra]


EXTRA_ARMS = {
    "taf_frac25": MethodSpec("taf_frac25", "taf", ("adversarial.fraction=0.25",)),
    "ce_adv": MethodSpec("ce_adv", "ce_adv"),
    "advprop": MethodSpec("advprop", "advprop"),
    # Sec. 3.2's rule gives a misclassified clip its own label as TA's target; this arm never does (issue 19).
    "taf_random": MethodSpec("taf_random", "taf", ("adversarial.target_rule=random",)),
}

POOLS = {
    p.name: p
    for p in (
        Pool(
            "s16",
            "stride 16 (4x4), 5 blocks, whole frame",
            SMALL_STEM,
            mid="backbone.layer3",
            extra=("taf_frac25", "taf_random"),
        ),
        Pool("s32", "stride 32 (2x2), 5 blocks, whole frame", IMAGENET_STEM, mid="backbone.layer3"),
        Pool(
            "s16_crop",
            "stride 16 (4x4), 5 blocks, multi-scale crop",
            SMALL_STEM,
            view="multiscale",
            extra=("taf_random",),
        ),
        Pool("s32_crop", "stride 32 (2x2), 5 blocks, multi-scale crop", IMAGENET_STEM, view="multiscale"),
        Pool("s16_d8", "stride 16 (4x4), 8 blocks, whole frame", SMALL_STEM_D8),
        Pool(
            "s16_x2",
            "stride 16 (4x4), 5 blocks, whole frame, 64/class",
            SMALL_STEM,
            data="x2",
            extra=("taf_frac25", "ce_adv", "advprop", "taf_random"),
        ),
        # The control for s16_x2: does a baseline that has learned the task make TAF pay with a 2x2 last stage?
        Pool(
            "s32_x2",
            "stride 32 (2x2), 5 blocks, whole frame, 64/class",
            IMAGENET_STEM,
            data="x2",
            extra=("advprop",),
        ),
    )
}
# Second baseline draws of the 3-seed pools whose TAF interval straddled 0 with an MDD above 1.5 pp (issue 19: 5
# seeds there). Their first baselines' run directories were gone, so more seeds from the same baseline could not be
# added; a new baseline of the same recipe, compared over 5 seeds, is the cell's second measurement.
POOLS.update({p.name: p for p in (POOLS[name].redraw() for name in ("s16", "s16_crop", "s16_d8"))})


def log(msg: str) -> None:
    print(f"[networks] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------- mechanism


def ce_and_lc(
    attack: TemporalAdversarialAugmentation, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, targets
) -> tuple[torch.Tensor, float, float]:
    """``(logits, CE, L_C)`` of one forward of ``x``; L_C (Eq. 5) for the given TA ``targets``."""
    with torch.enable_grad():
        fp = attack.forward_with_features(model, x.detach().requires_grad_(True))
        loss_c = attack.loss(fp.logits, fp.features, y, targets)
    logits = fp.logits.detach()
    return logits, float(torch.nn.functional.cross_entropy(logits, y)), float(loss_c.detach())


def attack_strength(checkpoint: Path, cfg: Config, layer: str, clips: int, seed: int = 0) -> dict[str, Any]:
    """The baseline as the first fine-tuning step meets it: training mode (BatchNorm batch statistics; dropout
    off so that before and after see the same network), the training view, TA at ``layer`` (eps 64/255, one
    step): train-mode top-1, the share of clips whose TA target is their true label, CE and L_C before and after
    TA (L_C for the targets the attack fixed on the clean clip)."""
    model, _ = load_model(checkpoint)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    torch.manual_seed(seed)
    ds = claims.spread(build_dataset(cfg.data, cfg.data.train_split, True), clips)
    loader = DataLoader(ds, batch_size=cfg.optim.batch_size, shuffle=False, num_workers=0)
    gen = torch.Generator().manual_seed(seed)
    options = TAOptions(cam_layer=layer)
    attack = TemporalAdversarialAugmentation(None, 64 / 255, 32 / 255, 1, options=options, generator=gen)
    sums = dict.fromkeys(("n", "correct", "target_is_label", "ce_clean", "ce_adv", "lc_clean", "lc_adv"), 0.0)
    with frozen_bn_stats(model):
        for x, y in loader:
            first = attack.first_step(model, x, y)
            logits, ce, lc = ce_and_lc(attack, model, x, y, first.targets)
            _, ce_adv, lc_adv = ce_and_lc(attack, model, first.adv, y, first.targets)
            b = y.shape[0]
            sums["n"] += b
            sums["correct"] += float((logits.argmax(1) == y).sum())
            sums["target_is_label"] += float((first.targets == y).sum())
            for key, value in (("ce_clean", ce), ("ce_adv", ce_adv), ("lc_clean", lc), ("lc_adv", lc_adv)):
                sums[key] += value * b
    n = sums.pop("n")
    out = {k: v / n for k, v in sums.items()}
    out["train_mode_top1"] = 100.0 * out.pop("correct")
    out["target_is_label"] *= 100.0
    out["clips"] = int(n)
    return out


# ----------------------------------------------------------------------------------------------------- runs


def pool_baseline(pool: Pool, sizes: claims.Sizes, work: Path) -> dict[str, Any]:
    """The pool's data set and its from-scratch baseline (made once, reused afterwards) and its over-fitting."""
    root = claims.ensure_dataset(work, sizes, "data" if pool.data == "main" else f"data_{pool.data}")
    base = claims.train_baseline(root, sizes, work / pool.name / "baseline", pool.baseline_seed)
    return {
        "cfg": base.cfg,
        "checkpoint": base.checkpoint,
        "subset": base.subset_file,
        "calibration": claims.baseline_calibration(base.row, sizes),
    }


def arm_row(entry: dict[str, Any]) -> dict[str, Any]:
    """One arm against plain: the seed CI, the clip CI, the MDD, McNemar's p, the verdict and its seed count."""
    row = regimes.delta(entry)
    row["mcnemar_p"] = entry["mcnemar"]["p_value"]
    row["n_seeds"] = entry["delta_top1"]["n"]
    row["per_seed"] = entry["delta_top1"]["per_seed"]
    return row


def add_seeds(pool: Pool, base_sizes: claims.Sizes, work: Path, seeds: int, labels: list[str], row_file: Path) -> dict:
    """More paired seeds for some arms of a finished pool (``--more-seeds``): ``plain`` and ``labels`` compared
    over ``seeds`` seeds (finished runs reused, only the new seeds trained; outputs in ``<pool>/seeds<n>`` or
    ``<pool>/seeds<n>_<arms>`` when the arms are not ``taf`` alone); their rows in the pool's JSON ``row_file``
    are replaced, the other arms keep theirs. The file is read after the runs, so two processes adding different
    arms to one pool keep each other's rows."""
    sizes = pool.sizes(base_sizes)
    base = pool_baseline(pool, sizes, work)
    arms = [a for a in pool.arms() if a.label == "plain" or a.label in labels]
    settings = claims.compare_settings(
        base["checkpoint"], sizes, arms, seeds, "config", work / pool.name, base["subset"]
    )
    tag = "" if labels == ["taf"] else "_" + "_".join(labels)
    _, result = claims.run_arms(settings, work / pool.name / f"seeds{seeds}{tag}")
    row = json.loads(row_file.read_text())
    for label, entry in result["methods"].items():
        row["arms"][label] = arm_row(entry)
        log(f"{pool.name} {label} - plain over {seeds} seeds {regimes.fmt_delta(row['arms'][label])}")
    return row


def mechanism(pool: Pool, base: dict[str, Any], sizes: claims.Sizes, clips: int) -> dict[str, Any]:
    """Per layer TA reads in this pool (last stage, and the intermediate one): attack strength on training
    clips (:func:`attack_strength`) and the CAM mass and its shift on validation clips (``regimes.cam_statistics``)."""
    layers = {"taf": "backbone.layer4"}
    if pool.mid is not None:
        layers["taf_mid"] = pool.mid
    out = {}
    for arm, layer in layers.items():
        t = time.perf_counter()
        strength = attack_strength(base["checkpoint"], base["cfg"], layer, clips)
        cam = regimes.cam_statistics(base["checkpoint"], base["cfg"], layer, clips)
        out[arm] = {"layer": layer, **strength, "cam": cam}
        log(f"{pool.name} {arm}: mechanism at {layer} in {time.perf_counter() - t:.0f} s")
    return out


def run_pool(pool: Pool, base_sizes: claims.Sizes, work: Path, seeds: int, clips: int) -> dict[str, Any]:
    """Baseline, ``compare`` of the pool's arms over ``seeds`` paired seeds, and the mechanism figures."""
    t0 = time.perf_counter()
    sizes = pool.sizes(base_sizes)
    base = pool_baseline(pool, sizes, work)
    settings = claims.compare_settings(
        base["checkpoint"], sizes, pool.arms(), seeds, "config", work / pool.name, base["subset"]
    )
    _, result = claims.run_arms(settings, work / pool.name)
    arms = {label: arm_row(entry) for label, entry in result["methods"].items()}
    for label, row in arms.items():
        log(f"{pool.name} {label} - plain {regimes.fmt_delta(row)} -> {row['verdict']}")
    return {
        "pool": dataclasses.asdict(pool),
        "sizes": dataclasses.asdict(sizes),
        "baseline": base["calibration"],
        "n_seeds": result["n_seeds"],
        "n_clips": result["n_clips"],
        "plain_top1": result["control_top1"],
        "plain_gap": result["control_train_val_gap"],
        "arms": arms,
        "mechanism": mechanism(pool, base, sizes, clips),
        "wall_s": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------------------------------- report

#: Mechanism figures correlated with TAF - plain across the TAF arms (name -> how to read it off a row).
PREDICTORS = {
    "last-map side (px)": lambda r, m: float(m["cam"]["map"][0]),
    "train-mode top-1": lambda r, m: m["train_mode_top1"],
    "TA target = true label (%)": lambda r, m: m["target_is_label"],
    "CE rise under TA": lambda r, m: m["ce_adv"] - m["ce_clean"],
    "L_C rise under TA": lambda r, m: m["lc_adv"] - m["lc_clean"],
    "CAM peak share": lambda r, m: m["cam"]["peak_share"],
    "CAM entropy": lambda r, m: m["cam"]["entropy"],
    "TA's CAM shift (TV)": lambda r, m: m["cam"]["ta_tv"],
    "baseline train - val gap": lambda r, m: r["baseline"]["gap"],
    "baseline val top-1": lambda r, m: r["baseline"]["val_top1"],
}


def taf_points(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """``(name, pool row, arm row, mechanism)`` of every TAF arm with full-batch TA (the correlation's points)."""
    points = []
    for r in rows:
        for arm, mech in r["mechanism"].items():
            if arm in r["arms"]:
                points.append((f"{r['pool']['name']}:{arm}", r, r["arms"][arm], mech))
    return points


def correlations(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pearson's r of each :data:`PREDICTORS` figure with TAF - plain over the TAF arms (n points)."""
    points = taf_points(rows)
    gains = np.array([a["mean"] for _, _, a, _ in points])
    out: dict[str, Any] = {"n": len(points), "points": [p[0] for p in points], "r": {}}
    if len(points) < 3:
        return out
    for name, read in PREDICTORS.items():
        values = np.array([read(r, m) for _, r, _, m in points], dtype=float)
        ok = np.std(values) > 0 and np.std(gains) > 0
        out["r"][name] = float(np.corrcoef(values, gains)[0, 1]) if ok else None
    return out


def fmt_arm(a: dict[str, Any]) -> str:
    p = a.get("mcnemar_p")
    return f"{regimes.fmt_delta(a)}, clips {interval(a['clip_ci95'])}, p {p:.2g}" if p is not None else "-"


def intro(result: dict[str, Any]) -> list[str]:
    """Commands, machine, date, the data and protocol, and each pool's wall time."""
    rows = result["pools"]
    runs = [c for r in rows for c in [r.get("command"), *r.get("more_seeds_commands", [])] if c]
    commands = list(dict.fromkeys(runs))
    sz = rows[0]["sizes"] if rows else {}
    walls = ", ".join(f"{r['pool']['name']} {r['wall_s'] / 60:.0f} min" for r in rows)
    return [
        "Commands as run (the `python benchmarks/networks.py` ones before `benchmarks` became a package; today "
        "`python -m benchmarks.networks ...`), each pool's JSON written by them, then `--report` joined them: "
        + "; ".join(f"`{c}`" for c in commands)
        + "  ",
        header().split("  \n", 1)[1].rstrip("\n"),
        "",
        f"Synthetic long-term-motion data ({sz.get('classes')} classes, {sz.get('train_per_class')} training and "
        f"{sz.get('val_per_class')} validation clips per class, {sz.get('video_size')} px, {sz.get('num_frames')} "
        f"frames); baselines from scratch ({sz.get('epochs')} epochs, SGD {sz.get('lr')}, x0.1 at "
        f"{sz.get('milestones')}); every pool one `videotaf compare` ({sz.get('finetune_epochs')} epochs, x0.1 "
        f"after {sz.get('finetune_decay')}, LR restarted at {sz.get('finetune_lr')}), paired seeds. Differences in "
        "pp, arm top-1 minus plain, Student t 95 % CI over seeds, then the paired bootstrap CI over clips and "
        f"McNemar's p; the verdict needs both intervals to agree. Wall time per pool (2 processes on 2 cores): {walls}.",
        "",
    ]


def markdown(result: dict[str, Any]) -> str:
    rows = result["pools"]
    lines = intro(result) + [
        "| pool | network, view | baseline train / val (gap) | plain top-1 | seeds | arm | arm - plain, pp [95 % CI seeds], [clips], McNemar p | MDD | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = r["baseline"]
        head = f"{b['train_top1']:.1f} / {b['val_top1']:.1f} ({b['gap']:.1f})"
        for i, (label, a) in enumerate(r["arms"].items()):
            lead = [r["pool"]["name"], r["pool"]["label"], head, f"{r['plain_top1']['mean']:.1f}", str(r["n_seeds"])]
            cells = lead if i == 0 else [""] * 5
            arm = label if a.get("n_seeds", r["n_seeds"]) == r["n_seeds"] else f"{label} ({a['n_seeds']} seeds)"
            lines.append("| " + " | ".join([*cells, arm, fmt_arm(a), f"{a['mdd']:.2f}", a["verdict"]]) + " |")
    lines += ["", "Mechanism (the baseline in training mode with the training view; TA eps 64/255, K 1):", ""]
    lines += [
        "| TAF arm | TA layer (map) | train-mode top-1 | target = label % | CE clean -> TA | L_C clean -> TA | CAM peak share | CAM entropy | TA shift (TV) | TAF - plain |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, _, a, m in taf_points(rows):
        c = m["cam"]
        lines.append(
            f"| {name} | {m['layer']} ({c['map'][0]}x{c['map'][1]}) | {m['train_mode_top1']:.1f} | "
            f"{m['target_is_label']:.1f} | {m['ce_clean']:.2f} -> {m['ce_adv']:.2f} | "
            f"{m['lc_clean']:.3f} -> {m['lc_adv']:.3f} | {c['peak_share']:.3f} | {c['entropy']:.3f} | "
            f"{c['ta_tv']:.3f} | {a['mean']:+.2f} |"
        )
    corr = result["correlations"]
    if corr["r"]:
        lines += ["", f"Pearson's r with TAF - plain over the {corr['n']} TAF arms above (indicative at this n):", ""]
        lines += ["| figure | r |", "|---|---|"]
        lines += [f"| {k} | {'-' if v is None else f'{v:+.2f}'} |" for k, v in corr["r"].items()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="toy sizes: every pool in a couple of minutes")
    p.add_argument("--pools", nargs="+", choices=list(POOLS), default=None, help="pools to run (default all)")
    p.add_argument("--seeds", type=int, default=None, help="paired seeds per pool (default 3; quick 2)")
    p.add_argument("--clips", type=int, default=None, help="clips for the mechanism figures (default 180; quick 8)")
    p.add_argument("--work", type=Path, help="data, baselines and runs (default runs/networks)")
    p.add_argument("--more-seeds", type=int, help="rerun finished pools' --arms over this many seeds (reuses runs)")
    p.add_argument("--arms", nargs="+", default=["taf"], help="arms --more-seeds adds seeds to (default taf)")
    p.add_argument("--report", action="store_true", help="join the finished pools' JSON into the report")
    p.add_argument("--no-md", action="store_true", help="do not rewrite the networks section of BENCHMARKS.md")
    p.add_argument("--results", type=Path, help="per-pool JSON folder (default benchmarks/results/networks[_quick])")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    return p.parse_args(argv)


def report(results: Path, quick: bool, md: bool) -> dict[str, Any]:
    """Join the pools' JSON files in ``results`` into ``<results>.json`` (and BENCHMARKS.md's ``networks``
    section)."""
    rows = [json.loads(f.read_text()) for f in sorted(results.glob("*.json"))]
    order = list(POOLS)
    rows.sort(key=lambda r: order.index(r["pool"]["name"]))
    result = {"quick": quick, "pools": rows, "correlations": correlations(rows)}
    out = results.with_suffix(".json")
    write_json(out, result)
    log(f"results: {out}")
    if md and not quick:
        update_section("networks", markdown(result))
        log("BENCHMARKS.md networks section updated")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results: Path = args.results or ROOT / "benchmarks" / "results" / ("networks_quick" if args.quick else "networks")
    if args.report:
        return report(results, args.quick, not args.no_md)
    sizes = QUICK if args.quick else FULL
    seeds = args.seeds or (2 if args.quick else 3)
    clips = args.clips or (8 if args.quick else 180)
    work: Path = args.work or ROOT / "runs" / ("networks_quick" if args.quick else "networks")
    work.mkdir(parents=True, exist_ok=True)
    for name in args.pools or list(POOLS):
        if args.more_seeds:
            row = add_seeds(POOLS[name], sizes, work, args.more_seeds, args.arms, results / f"{name}.json")
            row.setdefault("more_seeds_commands", []).append(command_line())
        else:
            row = run_pool(POOLS[name], sizes, work, seeds, clips)
        write_json(results / f"{name}.json", row)
    return report(results, args.quick, not args.no_md)


if __name__ == "__main__":
    main()
