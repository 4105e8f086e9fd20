"""`videotaf demo --quick` end to end (the CI smoke test of the README's first Quick-start line)."""

from __future__ import annotations

import json

import pytest
import yaml

from videotaf.cli import main


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
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
    assert main(["demo", "--quick", "--out", str(out)]) == 0
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
