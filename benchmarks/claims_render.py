"""The claims benchmark's BENCHMARKS.md section (``claims``): command, machine, date, tables, verdicts."""

from __future__ import annotations

from typing import Any

from benchmarks._common import header
from benchmarks.claims_judge import HOLDS, REVERSED, UNDETECTED
from benchmarks.claims_plan import PAPER, SETTING_NAMES
from benchmarks.claims_run import mean, std
from videotaf.analysis import stats
from videotaf.analysis.render import interval, mean_sd, number


def pm(values: list[float], digits: int = 1) -> str:
    """``mean ± sd`` over seeds (just the mean for one seed)."""
    return mean_sd(mean(values), std(values), digits, no_sd="")


def demote(markdown_text: str, levels: int = 2) -> str:
    """Nest a ``format_markdown`` block under this section's headings."""
    return "\n".join(("#" * levels + line) if line.startswith("#") else line for line in markdown_text.splitlines())


def method_rows(table: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for m, r in table.items():
        lines.append(
            f"| {m} | {pm(r['top1'])} | {pm(r['top5'])} | {pm(r['long_term_top1'])} | {pm(r['short_term_top1'])} | "
            f"{pm(r['train_top1'])} | {pm(r['gap'])} | {pm(r['val_loss'], 3)} | {pm(r['train_loss'], 3)} | "
            f"{number(r['epoch_time_s'], 1)} |"
        )
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md "claims" section: command, machine, date, tables, verdicts."""
    lines = intro_lines(result) + reading_lines(result) + robustness_lines(result) + attention_lines(result)
    lines += sweep_lines(result) + verdict_lines(result)
    if result["quick"]:
        lines.append("\n`--quick` run: toy sizes, the numbers only show that the pipeline runs.")
    return "\n".join(lines) + "\n"


def model_text(sizes: dict[str, Any]) -> str:
    """The baseline network's options as written in the intro: ``depth 18 width 0.25 stem small ...``."""
    options = sizes.get("model_options") or [["depth", 18], ["width", 0.25]]
    return " ".join(f"{key} {value}" for key, value in options)


def intro_lines(result: dict[str, Any]) -> list[str]:
    """The header, the data, model and protocol in one paragraph, and the baseline's calibration."""
    sizes = result["sizes"]
    cal = result["calibration"]
    n_val = result["num_val_clips"]
    return [
        header(),
        f"Synthetic long-term-motion data (`videotaf.data.synth`): {sizes['classes']} classes, "
        f"{sizes['train_per_class']}/{sizes['val_per_class']} train/val clips per class "
        f"({n_val} val clips: one clip = {100 / n_val:.2f} pp), "
        f"{sizes['video_frames']} frames of {sizes['video_size']} px; {len(result['long_term_classes'])} long-term "
        f"classes. TSM {model_text(sizes)}, {sizes['num_frames']} frames, crop {sizes['crop']} "
        f"(training view: {sizes.get('train_crop', 'multiscale')}), batch "
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


def reading_lines(result: dict[str, Any]) -> list[str]:
    """Per LR reading: the baseline and every arm's table (Table 1 / 2a, Figures 4, 5) and its comparison."""
    sizes = result["sizes"]
    b = result["baseline"]
    head = [
        "| method | top-1 | top-5 | long-term top-1 | other top-1 | train top-1 | gap | val loss | train loss |"
        " s/epoch |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| baseline ({sizes['epochs']} ep) | {b['top1']:.1f} | {b['top5']:.1f} | {number(b['long_term_top1'], 1)} | "
        f"{number(b['short_term_top1'], 1)} | {b['train_top1']:.1f} | {b['gap']:.1f} | {b['val_loss']:.3f} | "
        f"{b['train_loss']:.3f} | {number(b['epoch_time_s'], 1)} |",
    ]
    lines: list[str] = []
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
    return lines


def robustness_lines(result: dict[str, Any]) -> list[str]:
    """Table 3: top-1/top-5 per corruption, mPC and rPC of plain and TAF (nothing when it was not run)."""
    rob = result.get("robustness")
    if not rob:
        return []
    raw = rob["raw"]
    cs = raw["corruptions"]
    lines = [
        "",
        f"### Corruptions (Table 3): top-1/top-5, mean over severities {', '.join(map(str, raw['severities']))}"
        f" and over the first {result['sizes']['robust_seeds']} seeds, {rob['num_clips']} val clips; pixel "
        "parameters scaled by crop/224",
        "",
        "| method | clean | " + " | ".join(cs) + " | mPC top-1 | rPC top-1 |",
        "|---" * (len(cs) + 4) + "|",
    ]
    for m, r in rob["methods"].items():
        cells = [f"{r['corruptions'][c]['top1']:.1f}/{r['corruptions'][c]['top5']:.1f}" for c in cs]
        lines.append(
            f"| {m} | {pm(r['clean_top1'])} | "
            + " | ".join(cells)
            + f" | {pm(r['mPC_top1'])} | {pm(r['rPC_top1'], 3)} |"
        )
    return lines


def ms(d: dict[str, float], spec: str = ".3f") -> str:
    """``mean ± std`` of a per-clip statistic."""
    return f"{d['mean']:{spec}} ± {d['std']:{spec}}"


def attention_lines(result: dict[str, Any]) -> list[str]:
    """Figure 3 (the baseline's attention on clean, TA and CE-PGD clips) and Figure 6 (the fine-tunes')."""
    att = result["attention"]
    fig3 = att["baseline"]
    lines = [
        "",
        f"### Temporal attention (Figure 3, Figure 6): Grad-CAM frame shares over {fig3['num_clips']} val clips, "
        f"{fig3['cam_frames']} CAM frames; weakest = the {fig3['num_weakest']} weakest frames",
        "",
        "| baseline input | entropy | peak share | weakest share | TV shift from clean | non-key gain | top-1 |",
        "|---|---|---|---|---|---|---|",
    ]
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
        lines.append(f"| {m} | {pm([r['entropy'] for r in rs], 3)} | {pm([r['peak_share'] for r in rs], 3)} |")
    return lines


def sweep_lines(result: dict[str, Any]) -> list[str]:
    """Tables 2b / 2c: each TAF setting against plain (nothing when the sweep was not run)."""
    sweep = result.get("sweep")
    if not sweep:
        return []
    lines = [
        "",
        f"### TAF settings (Table 2b / 2c): each against plain, {sweep['n_seeds']} paired seeds, "
        f"LR from the {result['sizes']['lr_readings'][0]}",
        "",
        "| setting | top-1 | Δ vs plain, pp [95% CI seeds] | [95% CI clips] | verdict | paper top-1 |",
        "|---|---|---|---|---|---|",
        f"| plain fine-tune | {sweep['control_top1']['mean']:.2f} | - | - | - | {PAPER['baseline']} (baseline) |",
    ]
    for k, v in sweep["top1"].items():
        paper = PAPER["alpha"].get(float(k[6:])) if k.startswith("alpha_") else PAPER["attack"].get(k)
        d = v["delta_vs_plain"]
        lines.append(
            f"| {SETTING_NAMES[k]} | {v['mean']:.2f} | {d['mean']:+.2f} {interval(d['ci95'])} | "
            f"{interval(v['clip_ci95'])} | {v['verdict']} | {number(paper, 1)} |"
        )
    return lines


def verdict_lines(result: dict[str, Any]) -> list[str]:
    """Every claim's difference, intervals and verdict, their count, and the main claim in one sentence."""
    lines = [
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
        digits = 2 if v["unit"] == "pp" else 3
        seed_ci = "-" if v["basis"].startswith("clips") else interval(v["ci95"], digits)
        clip_ci = interval(v["ci95"], digits) if v["basis"].startswith("clips") else (
            interval(v["clip_ci95"], digits) if v["clip_ci95"] is not None else "-"
        )  # fmt: skip
        lines.append(
            f"| {v['claim']} | {v['paper']} | {number(v['diff'], digits, signed=True)} {v['unit']} | {seed_ci} | {clip_ci} | "
            f"{number(v['mdd'], 2)} | **{v['verdict']}** |"
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
            f"TAF against the equal-epoch plain fine-tune: {main['diff']:+.2f} pp, 95% CI {interval(main['ci95'])} "
            f"over seeds, {interval(main['clip_ci95'])} over clips, MDD {number(main['mdd'], 2)} pp: "
            f"**{main['verdict']}**."
        )
    return lines
