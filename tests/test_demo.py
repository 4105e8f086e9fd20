"""`videotaf demo --quick` end to end (the CI smoke test of the README's first Quick-start line)."""

from __future__ import annotations

import json

import pytest
import yaml

from videotaf.cli import main


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, capsys):
    """The one-seed path (``--regime stride32``): ``OUT/plain`` and ``OUT/taf``, TAF - plain over clips."""
    out = tmp_path / "demo"
    assert main(["demo", "--regime", "stride32", "--quick", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    # The demo follows its own advice: TA reads a layer whose maps are at least 3x3, so no CamResolutionWarning.
    assert "CamResolutionWarning" not in captured.err
    assert "TSM baseline" in printed and "+ TAF fine-tune" in printed and "long-term" in printed

    results = json.loads((out / "results.json").read_text())
    rows = results["models"]
    assert set(rows) == {"TSM baseline", "+ plain fine-tune", "+ TAF fine-tune"}
    for r in rows.values():
        for key in ("top1", "top5", "long_term_top1", "train_top1"):
            assert 0.0 <= r[key] <= 100.0
        assert r["gap"] == pytest.approx(r["train_top1"] - r["top1"])
        assert r["top5"] >= r["top1"]
    assert results["long_term_classes"]
    # The regime line names the view, the input and the map size TA reads (layer2 at 32 px: stride 8 -> 4x4).
    regime = results["regime"]
    assert "ImageNet (stride-32) stem, multi-scale crop at 32 px; TA reads backbone.layer2 (4x4 maps)" in regime
    assert f"[demo] {regime}" in printed
    assert (out / "data" / "long_term_classes.txt").read_text().split("\n")[0] in results["long_term_classes"]

    # the three runs are ordinary engine runs; both fine-tunes ran the same epochs from the baseline
    plain = yaml.safe_load((out / "plain" / "config.yaml").read_text())
    taf = yaml.safe_load((out / "taf" / "config.yaml").read_text())
    assert plain["optim"] == taf["optim"] and plain["model"]["pretrained"] == taf["model"]["pretrained"]
    assert taf["adversarial"]["method"] == "taf" and plain["adversarial"]["method"] == "plain"
    assert taf["adversarial"]["cam_layer"] == results["size"]["cam_layer"] == "backbone.layer2"  # 4x4 at 32 px
    for run in ("baseline", "plain", "taf"):
        records = (out / run / "metrics.jsonl").read_text().splitlines()
        assert len(records) == results["size"]["epochs" if run == "baseline" else "finetune_epochs"]
        assert (out / run / "checkpoints" / "last.pt").is_file()
    taf_metrics = [json.loads(x) for x in (out / "taf" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["train_loss_adv"] is not None for r in taf_metrics)

    assert results["figures"] and all(
        (out / "figures").joinpath(p.split("/")[-1]).is_file() for p in results["figures"]
    )
    # The report of the three runs (the command the demo prints) shows those CAM figures, and the fine-tunes'
    # loss curves continue the baseline's epochs.
    report_cmd = ["report", str(out / "baseline"), str(out / "plain"), str(out / "taf"), "--out", str(out / "report")]
    assert "videotaf " + " ".join(report_cmd) in printed
    assert main(report_cmd) == 0
    page = (out / "report" / "index.html").read_text()
    for p in results["figures"]:
        assert p.split("/")[-1] in page
    assert "plain from baseline; taf from baseline" in page

    # The difference TAF - plain is printed with its CI, from the two runs' per-clip predictions.
    versus = results["taf_vs_plain"]
    evals = {r: json.loads((out / r / "eval.json").read_text()) for r in ("plain", "taf")}
    assert versus["compare"]["methods"]["taf"]["bootstrap"]["mean"] == pytest.approx(
        evals["taf"]["top1"] - evals["plain"]["top1"]
    )
    lo, hi = versus["compare"]["methods"]["taf"]["bootstrap"]["ci95"]
    assert lo <= versus["compare"]["methods"]["taf"]["bootstrap"]["mean"] <= hi
    assert "95% CI" in versus["line"] and versus["line"] in printed

    # Run again: the finished runs are reused, not trained again (nor overwritten).
    last = (out / "taf" / "checkpoints" / "last.pt").stat().st_mtime_ns
    assert main(["demo", "--regime", "stride32", "--quick", "--out", str(out)]) == 0
    assert (out / "taf" / "checkpoints" / "last.pt").stat().st_mtime_ns == last
    assert "reused" in capsys.readouterr().out

    # the synthesised data is reused too (same settings)
    stamp = (out / "data" / "synth_meta.json").stat().st_mtime_ns
    from videotaf.cli.demo import QUICK
    from videotaf.engine.recipes import ensure_synthetic_data

    ensure_synthetic_data(out / "data", QUICK)
    assert (out / "data" / "synth_meta.json").stat().st_mtime_ns == stamp


def test_format_table_aligns_columns():
    from videotaf.cli.demo import format_table

    row = {"top1": 50.0, "top5": 90.0, "long_term_top1": None, "train_top1": 75.0, "gap": 25.0}
    lines = format_table({"a": row, "bb": {**row, "long_term_top1": 12.5}}).splitlines()
    assert len({len(x) for x in lines}) == 1
    assert "  50.0" in lines[2] and "-" in lines[2] and "12.5" in lines[3]


@pytest.mark.slow
def test_demo_paying_regime_quick_runs_seeds_as_a_comparison(tmp_path, capsys):
    """``--regime paying`` trains the study's stride-16 network on whole frames and its fine-tunes over paired seeds
    as ``videotaf compare`` does; a larger ``--seeds`` trains only the new seed."""
    out = tmp_path / "demo"
    assert main(["demo", "--regime", "paying", "--quick", "--seeds", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["regime_name"] == "paying" and results["seeds"] == 2
    assert "stride-16 small stem, whole frame at 32 px; TA reads backbone.layer3 (4x4 maps)" in results["regime"]
    base = yaml.safe_load((out / "baseline" / "config.yaml").read_text())
    assert base["model"]["options"]["stem"] == "small" and base["data"]["train_crop"] == "none"

    compare = json.loads((out / "compare" / "compare.json").read_text())
    runs = out / "compare" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["plain_seed0", "plain_seed1", "taf_seed0", "taf_seed1"]
    # The printed difference is the comparison's: the mean over seeds of the paired seed differences.
    top1 = {r: json.loads((runs / r / "eval.json").read_text())["top1"] for r in ("plain_seed0", "plain_seed1")}
    top1.update({r: json.loads((runs / r / "eval.json").read_text())["top1"] for r in ("taf_seed0", "taf_seed1")})
    mean = ((top1["taf_seed0"] - top1["plain_seed0"]) + (top1["taf_seed1"] - top1["plain_seed1"])) / 2
    d = compare["methods"]["taf"]["delta_top1"]
    assert d["n"] == 2 and d["mean"] == pytest.approx(mean)
    assert results["taf_vs_plain"]["line"] in printed and "over 2 paired seeds" in results["taf_vs_plain"]["line"]
    # Both fine-tunes restart at the recipe's LR (--lr-from config) with the same optimiser settings.
    plain = yaml.safe_load((runs / "plain_seed0" / "config.yaml").read_text())
    taf = yaml.safe_load((runs / "taf_seed0" / "config.yaml").read_text())
    assert plain["optim"] == taf["optim"] and plain["optim"]["lr"] == results["size"]["finetune_lr"] == 0.005
    assert taf["adversarial"]["method"] == "taf"
    # The table and the report stand on the seed-0 runs.
    assert f"videotaf report {out / 'baseline'} {runs / 'plain_seed0'} {runs / 'taf_seed0'}" in printed
    assert results["models"]["+ TAF fine-tune"]["top1"] == top1["taf_seed0"]

    # A third seed trains only the new runs.
    stamps = {p.name: (p / "checkpoints" / "last.pt").stat().st_mtime_ns for p in runs.iterdir()}
    assert main(["demo", "--regime", "paying", "--quick", "--seeds", "3", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "adding seeds to the 2-seed comparison" in err and "{'train': 2, 'resume': 0, 'reuse': 4}" in err
    assert {p.name: (p / "checkpoints" / "last.pt").stat().st_mtime_ns for p in runs.iterdir() if p.name in stamps} == (
        stamps
    )
    assert (
        json.loads((out / "results.json").read_text())["taf_vs_plain"]["compare"]["methods"]["taf"]["delta_top1"]["n"]
        == 3
    )


def test_demo_refuses_an_unknown_regime_and_no_seeds(tmp_path):
    from videotaf.cli.demo import run_demo
    from videotaf.config import ConfigError

    with pytest.raises(ConfigError, match="--regime expects one of fast, paying, stride32, got 'minutes'"):
        run_demo(tmp_path / "d", regime="minutes")
    with pytest.raises(ConfigError, match="--seeds expects an int >= 1, got 0"):
        run_demo(tmp_path / "d", seeds=0)
    assert not (tmp_path / "d").exists()  # refused before anything was written


def test_paying_regime_is_the_network_study_pool_where_taf_paid():
    """The demo's paying recipe is the s16_x2 pool of ``benchmarks/networks.py``, field for field, so the demo
    reruns the study's first seeds rather than an approximation of them."""
    import dataclasses

    from benchmarks import networks

    from videotaf.engine.recipes import PAYING, SyntheticRecipe

    pool = networks.POOLS["s16_x2"].sizes(networks.FULL)
    for f in dataclasses.fields(SyntheticRecipe):
        assert getattr(PAYING, f.name) == getattr(pool, f.name), f.name
    assert PAYING.train_per_class == 2 * networks.FULL.train_per_class == 64
    from videotaf.cli.demo import REGIMES

    assert REGIMES["paying"][0] is PAYING and REGIMES["paying"][2] == 3  # a seed CI needs more than 1 df


@pytest.mark.slow
def test_demo_default_regime_quick_is_the_paying_network_with_cached_frames(tmp_path, capsys):
    """The default regime (``fast``) fine-tunes the paying network over paired seeds, 4 frames per clip, its
    clips decoded once and kept in memory with no loader workers."""
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--seeds", "2", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["regime_name"] == "fast" and results["seeds"] == 2
    assert "stride-16 small stem, whole frame at 32 px; TA reads backbone.layer3 (4x4 maps)" in results["regime"]
    for run in ("baseline", "compare/runs/plain_seed1", "compare/runs/taf_seed1"):
        cfg = yaml.safe_load((out / run / "config.yaml").read_text())
        assert cfg["data"]["cache_frames"] is True and cfg["data"]["num_workers"] == 0, run
        assert cfg["data"]["num_frames"] == cfg["model"]["num_frames"] == 4, run
    d = json.loads((out / "compare" / "compare.json").read_text())["methods"]["taf"]["delta_top1"]
    assert d["n"] == 2 and results["taf_vs_plain"]["line"] in capsys.readouterr().out


def test_fast_regime_is_the_paying_recipe_at_32_px_and_4_frames():
    """FAST differs from PAYING only where its docstring says: input size, frames, the layer TA reads (layer3:
    4x4 at 32 px) and the frame cache without workers."""
    import dataclasses

    from videotaf.cli.demo import DEFAULT_REGIME, REGIMES
    from videotaf.engine.recipes import FAST, PAYING, SyntheticRecipe

    differ = {f.name for f in dataclasses.fields(SyntheticRecipe) if getattr(FAST, f.name) != getattr(PAYING, f.name)}
    assert differ == {"video_size", "crop", "num_frames", "cam_layer", "num_workers", "cache_frames"}
    assert (FAST.video_size, FAST.crop, FAST.num_frames, FAST.cam_layer) == (32, 32, 4, "backbone.layer3")
    assert DEFAULT_REGIME == "fast" and REGIMES["fast"][0] is FAST and REGIMES["fast"][2] == 3


def test_seeds_line_reads_the_comparison():
    import numpy as np

    from videotaf.analysis.render import verdict_cell
    from videotaf.analysis.stats import compare_methods
    from videotaf.cli.demo import seeds_line

    labels = np.zeros(20, dtype=bool)
    plain = [labels.copy(), labels.copy()]
    taf = [labels.copy(), labels.copy()]
    taf[0][:2] = True  # +10 pp on seed 0
    taf[1][:4] = True  # +20 pp on seed 1
    result = compare_methods({"plain": plain, "taf": taf}, "plain", n_boot=200)
    line = seeds_line(result)
    # Seed differences 10 and 20 pp: mean 15, sd 7.071, Student t(0.975, 1) = 12.706 -> 15 +- 63.53.
    assert line.startswith("TAF - plain: +15.00 pp, 95% CI [-48.53, +78.53] over 2 paired seeds, [")
    assert "over 20 clips (paired bootstrap)" in line
    assert line.endswith(": " + verdict_cell(result["methods"]["taf"]))
