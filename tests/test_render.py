"""videotaf.analysis.render: every number, interval, verdict and table of a comparison, against hand-written text."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import hypothesis.strategies as hs
import pytest
from hypothesis import given

from videotaf.analysis import stats
from videotaf.analysis.render import (
    MISSING,
    NO_SEED_CI,
    ONE_SEED,
    accuracy_pair,
    compare_markdown,
    delta_ci,
    format_markdown,
    interval,
    markdown_table,
    md_cell,
    md_row_cells,
    md_unescape,
    mdd_text,
    mean_sd,
    number,
    p_value,
    robustness_compare_markdown,
    verdict_cell,
)
from videotaf.analysis.report import build_report


@pytest.mark.parametrize(
    ("value", "digits", "signed", "text"),
    [
        (1.234, 2, False, "1.23"),
        (1.235, 1, False, "1.2"),
        (7, 3, False, "7.000"),
        (1.5, 2, True, "+1.50"),
        (-1.5, 2, True, "-1.50"),
        (0.0, 2, True, "+0.00"),
        # The sign of the unrounded value stays: a loss too small for the precision is not shown as a gain.
        (-0.001, 2, True, "-0.00"),
        (-0.0, 2, True, "-0.00"),
        (None, 2, True, MISSING),
        (math.nan, 2, False, MISSING),
        ("45.5", 1, False, "45.5"),  # a number written as text in a hand-edited JSON
        ("n/a", 2, False, "n/a"),
    ],
)
def test_number(value: Any, digits: int, signed: bool, text: str) -> None:
    assert number(value, digits, signed=signed) == text


def test_accuracy_pair() -> None:
    assert accuracy_pair({"top1": 75.0, "top5": 87.26}) == "75.0/87.3"
    assert accuracy_pair({"top1": 0.6667, "top5": None}, 3) == "0.667/-"
    assert accuracy_pair({}) == "-/-"


def test_interval() -> None:
    assert interval(None) == ONE_SEED == "n/a (1 seed)"
    assert interval([]) == "n/a (1 seed)"
    assert interval(None, missing=MISSING) == "-"
    assert interval([1.0, 2.5]) == "[1.00, 2.50]"
    assert interval([-1.0, 2.0], signed=True) == "[-1.00, +2.00]"
    assert interval((0.5, 0.8), 3) == "[0.500, 0.800]"
    assert interval([40.0, None], 1) == "[40.0, -]"


def test_delta_ci() -> None:
    assert delta_ci(1.25, [-0.5, 3.0]) == "+1.25 [-0.50, +3.00]"
    assert delta_ci(1.25, None) == "+1.25 [n/a: 1 seed]" == f"+1.25 {NO_SEED_CI}"
    assert delta_ci(-0.1, [-0.2, 0.0], 4) == "-0.1000 [-0.2000, +0.0000]"
    # The benchmarks' form: unsigned bounds, "n/a (1 seed)".
    assert delta_ci(1.25, [-0.5, 3.0], signed_ci=False, missing=ONE_SEED) == "+1.25 [-0.50, 3.00]"
    assert delta_ci(1.25, None, signed_ci=False, missing=ONE_SEED) == "+1.25 n/a (1 seed)"


def test_mean_sd() -> None:
    assert mean_sd(61.666, 7.071) == "61.67 ± 7.07"
    assert mean_sd(61.666, None) == "61.67 (1 seed)"
    assert mean_sd(1.2, 0.05, 4) == "1.2000 ± 0.0500"
    assert mean_sd(61.666, None, 1, no_sd="") == "61.7"
    assert mean_sd(None, None) == "-"


def test_p_value_and_mdd() -> None:
    assert p_value(0.5, "exact") == "0.5000 (exact)"
    assert p_value(1e-5, "chi2") == "<0.0001 (χ²)"
    assert p_value(1e-4) == "0.0001"
    assert p_value(0.01234) == "0.0123"
    assert mdd_text(None) == "n/a"
    assert mdd_text(1.234) == "1.23"
    assert mdd_text(0.0) == "0.00"


def _entry(verdict: str, mean: float, sd: float | None, per_seed: list[float], **extra: Any) -> dict[str, Any]:
    return {"verdict": verdict, "delta_top1": {"mean": mean, "sd": sd, "per_seed": per_seed}, **extra}


def test_verdict_cell() -> None:
    nd = stats.NO_DIFFERENCE
    assert verdict_cell(_entry("better", 2.5, 1.0, [1.5, 3.5], seeds_to_detect=None)) == "better"
    two = [1.0, 2.34]
    assert verdict_cell(_entry(nd, -1.67, 1.0, two, seeds_to_detect=7)) == f"{nd}; MDD would reach 1.67 at 7 seeds"
    assert (
        verdict_cell(_entry(nd, 1.67, 1.0, two, seeds_to_detect=None)) == f"{nd}; MDD stays above 1.67 up to 1000 seeds"
    )
    assert verdict_cell(_entry(nd, 1.67, 1.0, two, seeds_to_detect=2)) == nd  # already detectable at 2 seeds
    assert verdict_cell(_entry(nd, 1.67, None, [1.67], seeds_to_detect=5)) == nd  # one seed: no sd to project
    assert verdict_cell(_entry(nd, 0.0, 1.0, two, seeds_to_detect=None)) == nd  # nothing to detect
    assert verdict_cell(_entry(nd, 1.67, 1.0, two)) == nd  # a compare.json of an older videotaf


def test_markdown_table_two_rows() -> None:
    lines = markdown_table(["method", "Δ"], [["plain (control)", "—"], ["ce|adv", "+1.00"]])
    assert lines == ["| method | Δ |", "|---|---|", "| plain (control) | — |", "| ce\\|adv | +1.00 |"]
    assert markdown_table(["a"], []) == ["| a |", "|---|"]
    assert md_cell("a|b\nc") == "a\\|b c"


# A compare_methods result written by hand (3 seeds, one method, validation loss but no train top-1).
RESULT: dict[str, Any] = {
    "control": "plain",
    "n_seeds": 3,
    "n_clips": 40,
    "confidence": 0.95,
    "n_boot": 1000,
    "seed": 0,
    "alpha": 0.05,
    "power": 0.8,
    "control_top1": {"mean": 60.0, "sd": 2.5},
    "subset": None,
    "control_train_val_gap": None,
    "control_val_loss": {"mean": 1.2, "sd": 0.05},
    "methods": {
        "taf": {
            "top1": {"mean": 62.5, "sd": 1.25},
            "delta_top1": {"mean": 2.5, "sd": 1.0, "ci95": [-0.25, 5.25], "per_seed": [1.5, 2.5, 3.5]},
            "bootstrap": {"mean": 2.5, "ci95": [0.5, 4.5]},
            "mcnemar": {"p_value": 0.03124, "test": "exact"},
            "mdd": {"mdd": 3.0},
            "verdict": "no detectable difference",
            "seeds_to_detect": 5,
            "note": None,
            "train_val_gap": None,
            "val_loss": {"mean": 1.1, "sd": 0.025, "delta_vs_control": {"mean": -0.1, "ci95": [-0.2, 0.0]}},
        }
    },
}

EXPECTED = """## Comparison against `plain` (3 seeds, 40 validation clips)

| method | top-1 % mean ± sd | Δ vs control, pp [95% CI] (seeds) | Δ, pp [95% CI] (clips) | McNemar p | MDD, pp | verdict |
|---|---|---|---|---|---|---|
| plain (control) | 60.00 ± 2.50 | — | — | — | — | — |
| taf | 62.50 ± 1.25 | +2.50 [-0.25, +5.25] | +2.50 [+0.50, +4.50] | 0.0312 (exact) | 3.00 | no detectable difference; MDD would reach 2.50 at 5 seeds |

### Generalisation

| method | val loss mean ± sd | Δ loss vs control [95% CI] |
|---|---|---|
| plain (control) | 1.2000 ± 0.0500 | — |
| taf | 1.1000 ± 0.0250 | -0.1000 [-0.2000, +0.0000] |

- Seeds: per-seed paired difference (same seed, same data order), Student t 95% interval over seeds.
- Clips: paired bootstrap over validation clips (1000 resamples, percentile 95% interval); clip sampling noise only.
- McNemar: pooled over seeds × clips; exact binomial when b + c < 25, else χ² with continuity correction.
- MDD: smallest true difference detectable with 80% power at two-sided α = 0.05; the larger of the seed and clip estimates.
- MDD would reach |Δ| at N seeds: the fewest seeds whose MDD (the observed seed sd and clip discordance held fixed) is at most the observed |Δ|; rerun `videotaf compare` with `--seeds N` to add them (finished runs are reused).
- Verdict: better / worse only when every available interval excludes 0 on the same side; the seed interval is required with 2 or more seeds.
"""


def test_format_markdown_of_a_hand_written_result() -> None:
    assert format_markdown(RESULT) == EXPECTED
    assert stats.format_markdown(RESULT) == EXPECTED  # the name users import from stats renders the same


ROBUSTNESS = {
    "suite": "mini-c",
    "control": "plain",
    "methods": {
        "taf": {
            "method": {"mean": 50.0},
            "control": {"mean": 25.0},
            "delta": {"mean": 25.0, "ci95": [-1.5, 30.0]},
            "bootstrap": {"ci95": [-2.0, 40.0]},
        },
        "one seed": {
            "method": {"mean": 24.999},
            "control": {"mean": 25.0},
            "delta": {"mean": -0.001, "ci95": None},
            "bootstrap": {"ci95": [-2.0, 1.0]},
        },
    },
}


def test_robustness_section_and_compare_md() -> None:
    section = robustness_compare_markdown(ROBUSTNESS)
    assert section == (
        "\n## Corruption robustness (mini-c): mPC top-1, method - plain\n\n"
        "| method | mPC (%) | control mPC (%) | delta (pp) | 95% CI over seeds | 95% CI over clips |\n"
        "|---|---|---|---|---|---|\n"
        "| taf | 50.00 | 25.00 | +25.00 | [-1.50, 30.00] | [-2.00, 40.00] |\n"
        "| one seed | 25.00 | 25.00 | -0.00 | - | [-2.00, 1.00] |\n"
    )
    assert robustness_compare_markdown(None) == ""
    # compare.md: the comparison, a blank line, then the robustness section when there is one.
    assert compare_markdown(RESULT) == EXPECTED + "\n"
    assert compare_markdown({**RESULT, "robustness": ROBUSTNESS}) == EXPECTED + "\n" + section


@given(hs.lists(hs.text(alphabet="ab |\\`-"), min_size=1, max_size=4))
def test_md_row_cells_reads_back_markdown_table(cells: list[str]) -> None:
    header, rule, row = markdown_table(["h"] * len(cells), [cells])
    assert md_row_cells(row) == [c.strip() for c in cells]
    assert md_row_cells(rule) == ["---"] * len(cells)
    assert md_unescape(md_cell("long|term")) == "long|term"


def test_the_html_report_keeps_a_pipe_inside_a_cell(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "cmp").mkdir()
    result = {**RESULT, "methods": {"ce|adv": RESULT["methods"]["taf"]}}
    result["subset"] = {"name": "long|term", "num_clips": 12, "control_top1": {"mean": 50.0, "sd": 1.0}}
    result["methods"]["ce|adv"] = {**result["methods"]["ce|adv"], "subset": result["methods"]["ce|adv"]}
    (tmp_path / "cmp" / "compare.json").write_text(json.dumps(result))
    page = build_report([tmp_path / "run"], tmp_path / "report", compare_files=[tmp_path / "cmp"]).read_text()
    assert "<h4>long|term (12 clips)</h4>" in page
    assert page.count("<tr><td>ce|adv</td><td>62.50 ± 1.25</td><td>+2.50 [-0.25, +5.25]</td>") == 2  # both tables
