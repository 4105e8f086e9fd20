"""Text of a comparison: numbers, intervals, verdicts and Markdown tables, written once for every report.

``videotaf compare`` and ``videotaf verdict`` (``compare.md`` and what they print), the HTML report
(:mod:`videotaf.analysis.report`), the robustness tables (:mod:`videotaf.analysis.robustness`), the demo's line and
the benchmarks' Markdown all format their numbers here, so a difference reads the same wherever it is shown:

- :func:`number`: a value at fixed precision, ``-`` where there is none (None, NaN); :func:`accuracy_pair`:
  ``top-1/top-5``.
- :func:`interval`: a confidence interval ``[lo, hi]``, or what stands for it where it cannot be measured
  (:data:`ONE_SEED`); :func:`delta_ci`: a signed difference with its interval.
- :func:`mean_sd`: ``mean ± sd`` over seeds; :func:`p_value`: McNemar's p; :func:`mdd_text`: the minimum
  detectable difference; :func:`verdict_cell`: the verdict with the seeds that would detect the difference.
- :func:`md_cell` and :func:`markdown_table`: Markdown table text from a header and rows; :func:`md_row_cells`
  and :func:`md_unescape` read it back (the HTML report shows ``compare``'s Markdown).
- :func:`format_markdown`: :func:`videotaf.analysis.stats.compare_methods`' result as Markdown;
  :func:`robustness_compare_markdown`: the robustness section of ``compare``; :func:`compare_markdown`: both,
  as ``compare.md`` holds them.

Units are the caller's (pp for differences, % for accuracies); nothing here computes a statistic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from videotaf.analysis.stats import EXACT_MAX_DISCORDANT, MAX_SEEDS, NO_DIFFERENCE

__all__ = [
    "MISSING",
    "ONE_SEED",
    "NO_SEED_CI",
    "number",
    "accuracy_pair",
    "interval",
    "delta_ci",
    "mean_sd",
    "p_value",
    "mdd_text",
    "verdict_cell",
    "md_cell",
    "md_unescape",
    "md_row_cells",
    "markdown_table",
    "format_markdown",
    "robustness_compare_markdown",
    "compare_markdown",
]

#: A value that is not there (None, NaN), in a table cell.
MISSING = "-"
#: An interval over seeds that one seed cannot give, in prose and in the benchmarks' tables.
ONE_SEED = "n/a (1 seed)"
#: The same, in the place of the bracketed interval after a difference (:func:`delta_ci`, ``compare``'s table).
NO_SEED_CI = "[n/a: 1 seed]"

# A "|" not escaped by md_cell: the border between two cells of a Markdown table line.
_CELL_BORDER = re.compile(r"(?<!\\)\|")


def number(value: Any, digits: int = 2, *, signed: bool = False) -> str:
    """``value`` at ``digits`` decimals (with its sign, ``+`` too, when ``signed``); :data:`MISSING` for None and
    NaN; ``str(value)`` for what is not a number (a hand-edited JSON field is shown, not hidden).

    The sign is that of the unrounded value: ``number(-0.001, signed=True)`` is ``-0.00``, a loss too small for
    the precision, not a gain.
    """
    if value is None:
        return MISSING
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(f):
        return MISSING
    return f"{f:{'+' if signed else ''}.{digits}f}"


def accuracy_pair(values: Mapping[str, Any], digits: int = 1) -> str:
    """``top1/top5`` of a ``{"top1", "top5"}`` mapping (Table 3's cells), each by :func:`number`."""
    return f"{number(values.get('top1'), digits)}/{number(values.get('top5'), digits)}"


def interval(
    ci: Sequence[float | None] | None, digits: int = 2, *, signed: bool = False, missing: str = ONE_SEED
) -> str:
    """``[lo, hi]`` (each bound by :func:`number`), or ``missing`` where there is no interval (None or empty):
    by default :data:`ONE_SEED`, the interval over seeds one seed cannot give."""
    if ci is None or len(ci) == 0:
        return missing
    return f"[{number(ci[0], digits, signed=signed)}, {number(ci[1], digits, signed=signed)}]"


def delta_ci(
    mean: float, ci: Sequence[float] | None, digits: int = 2, *, signed_ci: bool = True, missing: str = NO_SEED_CI
) -> str:
    """A difference with its interval: ``+1.25 [-0.50, +3.00]``; ``+1.25 [n/a: 1 seed]`` without one.

    ``signed_ci=False, missing=ONE_SEED`` gives the benchmarks' form, ``+1.25 [-0.50, 3.00]`` /
    ``+1.25 n/a (1 seed)``.
    """
    return f"{number(mean, digits, signed=True)} {interval(ci, digits, signed=signed_ci, missing=missing)}"


def mean_sd(mean: float | None, sd: float | None, digits: int = 2, *, no_sd: str = " (1 seed)") -> str:
    """``mean ± sd`` over seeds; with no sd (one seed) the mean followed by ``no_sd``; :data:`MISSING` without a
    mean."""
    if mean is None:
        return MISSING
    if sd is None:
        return f"{number(mean, digits)}{no_sd}"
    return f"{number(mean, digits)} ± {number(sd, digits)}"


def p_value(p: float, test: str | None = None) -> str:
    """McNemar's p at 4 decimals (``<0.0001`` below), then which test gave it when ``test`` is given:
    ``(exact)`` for ``"exact"`` (the binomial test), ``(χ²)`` otherwise (:func:`videotaf.analysis.stats.mcnemar`)."""
    text = "<0.0001" if p < 1e-4 else f"{p:.4f}"
    if test is None:
        return text
    return f"{text} ({'exact' if test == 'exact' else 'χ²'})"


def mdd_text(mdd: float | None, digits: int = 2) -> str:
    """The minimum detectable difference (pp), ``n/a`` where it could not be estimated."""
    return "n/a" if mdd is None else number(mdd, digits)


def verdict_cell(entry: Mapping[str, Any]) -> str:
    """The verdict of one method of :func:`videotaf.analysis.stats.compare_methods`, and for "no detectable
    difference" how many seeds would bring the MDD under the observed |Δ| (``seeds_to_detect``; nothing when it
    already is, when Δ is 0 or with one seed; beyond :data:`~videotaf.analysis.stats.MAX_SEEDS`, that it stays
    above)."""
    text = str(entry["verdict"])
    d = entry["delta_top1"]
    if text != NO_DIFFERENCE or d["sd"] is None or abs(float(d["mean"])) < 1e-9 or "seeds_to_detect" not in entry:
        return text  # (a compare.json of an older videotaf has no count)
    needed = entry.get("seeds_to_detect")
    size = number(abs(float(d["mean"])))  # no "|" around it: the cell is inside a Markdown table
    if needed is None:
        return f"{text}; MDD stays above {size} up to {MAX_SEEDS} seeds"
    if needed <= len(d["per_seed"]):
        return text
    return f"{text}; MDD would reach {size} at {needed} seeds"


def md_cell(text: Any) -> str:
    """``text`` safe inside a Markdown table cell or heading: ``|`` escaped, line breaks as spaces."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_unescape(text: str) -> str:
    """What :func:`md_cell` escaped, back as text (``\\|`` to ``|``); for turning our Markdown into HTML."""
    return text.replace("\\|", "|")


def md_row_cells(line: str) -> list[str]:
    """The cells of one table line of :func:`markdown_table`, stripped and unescaped: split on the ``|`` that
    separate cells, not on the escaped ones inside a cell."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [md_unescape(c.strip()) for c in _CELL_BORDER.split(inner)]


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> list[str]:
    """The lines of a Markdown table: the header, the ``|---|`` rule, one line per row. Cells are raw text
    (escaped here by :func:`md_cell`); a row may be shorter than the header."""
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _summary_text(summary: Mapping[str, Any], digits: int = 2) -> str:
    return mean_sd(summary["mean"], summary["sd"], digits)


def _compare_table(result: Mapping[str, Any], key: str | None) -> list[str]:
    """The comparison table over all clips (``key`` None) or the subset (``key`` = "subset")."""
    pct = f"{100.0 * float(result['confidence']):g}%"
    header = [
        "method",
        "top-1 % mean ± sd",
        f"Δ vs control, pp [{pct} CI] (seeds)",
        f"Δ, pp [{pct} CI] (clips)",
        "McNemar p",
        "MDD, pp",
        "verdict",
    ]
    ctl_top1 = result["control_top1"] if key is None else result["subset"]["control_top1"]
    rows = [[f"{result['control']} (control)", _summary_text(ctl_top1), *["—"] * 5]]
    for name, entry in result["methods"].items():
        e = entry if key is None else entry[key]
        d, boot, mc = e["delta_top1"], e["bootstrap"], e["mcnemar"]
        rows.append(
            [
                str(name),
                _summary_text(e["top1"]),
                delta_ci(d["mean"], d["ci95"]),
                delta_ci(boot["mean"], boot["ci95"]),
                p_value(float(mc["p_value"]), str(mc["test"])),
                mdd_text(e["mdd"]["mdd"]),
                verdict_cell(e),
            ]
        )
    return markdown_table(header, rows)


def _generalisation(result: Mapping[str, Any]) -> list[str]:
    """The train - val gap and validation loss table, when the result has either (else nothing)."""
    pct = f"{100.0 * float(result['confidence']):g}%"
    has_gap = result.get("control_train_val_gap") is not None
    has_loss = result.get("control_val_loss") is not None
    if not (has_gap or has_loss):
        return []
    header = ["method"]
    if has_gap:
        header += ["train − val top-1, pp mean ± sd", f"Δ gap vs control, pp [{pct} CI]"]
    if has_loss:
        header += ["val loss mean ± sd", f"Δ loss vs control [{pct} CI]"]
    items: list[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]] = [
        (f"{result['control']} (control)", result.get("control_train_val_gap"), result.get("control_val_loss"))
    ]
    items += [(str(name), e["train_val_gap"], e["val_loss"]) for name, e in result["methods"].items()]
    rows = []
    for name, gap, loss in items:
        cells = [name]
        for present, item, digits in ((has_gap, gap, 2), (has_loss, loss, 4)):
            if not present or item is None:
                continue
            delta = item.get("delta_vs_control")
            cells += [
                _summary_text(item, digits),
                "—" if delta is None else delta_ci(delta["mean"], delta["ci95"], digits),
            ]
        rows.append(cells)
    return ["", "### Generalisation", "", *markdown_table(header, rows)]


def _method_notes(result: Mapping[str, Any]) -> list[str]:
    """How each column of the tables was computed, then the notes of the methods (one seed)."""
    pct = f"{100.0 * float(result['confidence']):g}%"
    notes = sorted({e["note"] for e in result["methods"].values() if e.get("note")})
    return [
        "",
        f"- Seeds: per-seed paired difference (same seed, same data order), Student t {pct} interval over seeds.",
        f"- Clips: paired bootstrap over validation clips ({result['n_boot']} resamples, percentile {pct} "
        "interval); clip sampling noise only.",
        f"- McNemar: pooled over seeds × clips; exact binomial when b + c < {EXACT_MAX_DISCORDANT}, else χ² with "
        "continuity correction.",
        f"- MDD: smallest true difference detectable with {100.0 * float(result['power']):g}% power at two-sided "
        f"α = {float(result['alpha']):g}; the larger of the seed and clip estimates.",
        "- MDD would reach |Δ| at N seeds: the fewest seeds whose MDD (the observed seed sd and clip discordance "
        "held fixed) is at most the observed |Δ|; rerun `videotaf compare` with `--seeds N` to add them (finished "
        "runs are reused).",
        "- Verdict: better / worse only when every available interval excludes 0 on the same side; the seed "
        "interval is required with 2 or more seeds.",
        *(f"- Note: {note}" for note in notes),
    ]


def format_markdown(result: Mapping[str, Any]) -> str:
    """Render :func:`videotaf.analysis.stats.compare_methods`' result as Markdown: the comparison table (and the
    subset's, the train-val gap and validation loss when present), then how each column was computed.

    Columns: method | top-1 mean ± sd | Δ vs control [CI] (seeds) | Δ [CI] (clips) | McNemar p | MDD | verdict;
    every difference is shown with its interval (``n/a: 1 seed`` where it cannot be measured).
    """
    n_seeds = int(result["n_seeds"])
    out = [
        f"## Comparison against `{result['control']}` ({n_seeds} seed{'s' if n_seeds != 1 else ''}, "
        f"{result['n_clips']} validation clips)",
        "",
        *_compare_table(result, None),
    ]
    subset = result.get("subset")
    if subset is not None:
        out += [
            "",
            f"### {md_cell(subset['name'])} ({subset['num_clips']} clips)",
            "",
            *_compare_table(result, "subset"),
        ]
    out += _generalisation(result) + _method_notes(result)
    return "\n".join(out) + "\n"


def robustness_compare_markdown(result: Mapping[str, Any] | None) -> str:
    """A ``compare.md`` section for :func:`videotaf.analysis.robust_compare.compare_robustness` (empty without
    one): each method's mPC top-1, the control's, their difference and its intervals over seeds and clips."""
    if not result:
        return ""
    header = ["method", "mPC (%)", "control mPC (%)", "delta (pp)", "95% CI over seeds", "95% CI over clips"]
    rows = [
        [
            str(label),
            number(r["method"]["mean"]),
            number(r["control"]["mean"]),
            number(r["delta"]["mean"], signed=True),
            interval(r["delta"]["ci95"], missing=MISSING),
            interval(r["bootstrap"]["ci95"]),
        ]
        for label, r in result["methods"].items()
    ]
    title = f"## Corruption robustness ({result['suite']}): mPC top-1, method - {result['control']}"
    return "\n".join(["", title, "", *markdown_table(header, rows)]) + "\n"


def compare_markdown(result: Mapping[str, Any]) -> str:
    """``compare.md``: :func:`format_markdown`, then the robustness section when the result has one
    (``result["robustness"]``)."""
    return format_markdown(result) + "\n" + robustness_compare_markdown(result.get("robustness"))
