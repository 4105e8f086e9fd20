"""Adding seeds to a finished ``videotaf compare`` (issue 19, item 5): how many seeds would detect the observed
difference, the plan check that lets a rerun with another ``--seeds`` reuse the finished runs, and the rerun."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import videotaf.analysis.compare as compare
from engine_toys import toy_config
from videotaf.analysis.compare import CompareSettings, parse_method, plan_record, prepare_out_dir
from videotaf.analysis.stats import MAX_SEEDS, compare_methods, format_markdown, seeds_to_detect
from videotaf.errors import OutputExistsError

# MDD over seeds = (t_{0.975, n-1} + t_{0.80, n-1}) * sd / sqrt(n), from a t table:
#   n = 3: (4.303 + 1.061) / 1.732 = 3.097;  n = 4: (3.182 + 0.978) / 2 = 2.080;  n = 5: (2.776 + 0.941) / 2.236 = 1.662


def test_seeds_to_detect_by_hand_from_the_seed_sd():
    assert seeds_to_detect(2.0, 1.0) == 5  # 2.080 > 2.0 >= 1.662
    assert seeds_to_detect(-2.0, 1.0) == 5  # the size of the difference counts, not its sign
    assert seeds_to_detect(2.1, 1.0) == 4  # 2.080 <= 2.1
    assert seeds_to_detect(4.0, 1.0) == 3  # 3.097 <= 4 < 9.96 (n = 2: (12.706 + 1.376) / 1.414)
    assert seeds_to_detect(20.0, 1.0) == 2
    assert seeds_to_detect(4.0, 2.0) == 5  # sd x 2 and difference x 2: the same n


def test_seeds_to_detect_cannot_say():
    assert seeds_to_detect(0.0, 1.0) is None  # no difference to detect
    assert seeds_to_detect(2.0, None) is None  # one seed: no seed sd
    # MDD ~ 2.8 * 10 / sqrt(n) <= 0.01 needs about 8e6 seeds, beyond MAX_SEEDS.
    assert seeds_to_detect(0.01, 10.0) is None and MAX_SEEDS == 1000


def _clip_mdd(pairs: int, psi: float) -> float:
    """Connor's McNemar MDD by hand, with the normal quantiles z_0.975 = 1.959964 and z_0.80 = 0.841621."""
    za, zb = 1.959964, 0.841621
    return 100 * math.sqrt(psi) * (za * math.sqrt(pairs) + zb * math.sqrt(pairs + zb**2 - za**2)) / (pairs + zb**2)


def test_seeds_to_detect_counts_the_clip_pairs_each_seed_adds():
    # No seed noise (sd 0): only the clip MDD, over n x 100 clip pairs at a discordance rate of 0.1.
    assert _clip_mdd(2000, 0.1) == pytest.approx(1.97985, abs=1e-4)  # 20 seeds: under 2 pp
    assert _clip_mdd(1900, 0.1) == pytest.approx(2.03122, abs=1e-4)  # 19 seeds: over
    assert seeds_to_detect(2.0, 0.0, clips_per_seed=100, discordance_rate=0.1) == 20


def _result(per_seed_diff: list[int]) -> dict:
    """plain right on clips 0-49 of 100 in every seed; taf right on ``k`` more clips in seed s (``k < 0``: on
    ``|k|`` fewer), so the per-seed differences are ``k`` pp."""
    plain = np.zeros((len(per_seed_diff), 100), dtype=bool)
    plain[:, :50] = True
    taf = plain.copy()
    for seed, k in enumerate(per_seed_diff):
        taf[seed, 50 : 50 + k] = True
        taf[seed, : max(0, -k)] = False
    return compare_methods({"plain": plain, "taf": taf}, "plain", n_boot=200)


def _taf_row(result: dict) -> str:
    return next(line for line in format_markdown(result).splitlines() if line.startswith("| taf |"))


def test_the_verdict_line_says_how_many_seeds_would_detect_the_difference():
    # Per-seed differences +1, +3, +2 pp: mean 2, sd 1; seed CI 2 +- 4.303 / sqrt(3) straddles 0. Discordance
    # 6 / 300 = 0.02: clip MDD at 5 seeds 1.77 (500 pairs), so 5 seeds (the seed MDD decides: 2.08 at 4).
    result = _result([1, 3, 2])
    taf = result["methods"]["taf"]
    assert taf["verdict"] == "no detectable difference"
    assert taf["mdd"]["mdd"] == pytest.approx(3.0965, abs=1e-3) and taf["seeds_to_detect"] == 5
    assert _clip_mdd(500, 0.02) == pytest.approx(1.7677, abs=1e-3)
    row = _taf_row(result)
    assert row.endswith("| no detectable difference; MDD would reach 2.00 at 5 seeds |")
    assert row.count("|") == 8  # still seven cells
    del result["methods"]["taf"]["seeds_to_detect"]  # a compare.json of an older videotaf
    assert _taf_row(result).endswith("| no detectable difference |")


def test_the_verdict_line_without_a_count():
    same = _result([0, 0, 0])  # no difference to detect
    assert same["methods"]["taf"]["seeds_to_detect"] is None
    assert _taf_row(same).endswith("| no detectable difference |")
    # Differences +10, -10, +1: mean 0.33, sd 10.0: about (2.8 x 10 / 0.33)^2 = 7000 seeds, beyond MAX_SEEDS.
    far = _result([10, -10, 1])
    assert far["methods"]["taf"]["seeds_to_detect"] is None
    assert _taf_row(far).endswith("| no detectable difference; MDD stays above 0.33 up to 1000 seeds |")
    # +4, +5, +6: mean 5, sd 1, MDD 3.10 at the 3 seeds run (9.96 at 2): no more seeds to ask for.
    clear = _result([4, 5, 6])
    assert clear["methods"]["taf"]["seeds_to_detect"] == 3 and _taf_row(clear).endswith("| better |")


def _settings(tmp_path: Path, seeds: int, **changes) -> CompareSettings:
    base = dict(
        checkpoint=tmp_path / "ckpt.pt",
        methods=[parse_method("plain"), parse_method("taf")],
        seeds=seeds,
        out_dir=tmp_path / "cmp",
        base=toy_config(str(tmp_path / "base")),
        epochs=3,
        decay_after=2,
        lr_from="config",
        n_boot=100,
    )
    return CompareSettings(**{**base, **changes})


def _write_previous(tmp_path: Path, settings: CompareSettings, **extra) -> Path:
    path = settings.out_dir / "compare.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"n_seeds": settings.seeds, "plan": plan_record(settings), **extra}))
    return path


def test_another_seed_count_of_the_same_plan_may_rewrite_the_comparison(tmp_path, capsys):
    assert prepare_out_dir(_settings(tmp_path, 2), overwrite=False) is None  # nothing there yet
    _write_previous(tmp_path, _settings(tmp_path, 2))
    assert prepare_out_dir(_settings(tmp_path, 3), overwrite=False) == 2
    assert "adding seeds to the 2-seed comparison" in capsys.readouterr().err
    assert prepare_out_dir(_settings(tmp_path, 1), overwrite=False) == 2
    assert "scoring the first 1 seeds of the 2-seed comparison" in capsys.readouterr().err
    assert prepare_out_dir(_settings(tmp_path, 2), overwrite=False) == 2  # the same command again: rescored


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"epochs": 4}, "epochs 3 there, 4 now"),
        ({"methods": [parse_method("plain"), parse_method("ce_adv")]}, "methods"),
        ({"lr_from": "auto"}, "lr_from"),
        ({"overrides": ("adversarial.eps=0.1",)}, "overrides"),
        ({"checkpoint": Path("/elsewhere/ckpt.pt")}, "checkpoint"),
    ],
)
def test_another_plan_is_refused_unless_overwrite(tmp_path, change, named):
    _write_previous(tmp_path, _settings(tmp_path, 2))
    other = _settings(tmp_path, 3, **change)
    with pytest.raises(OutputExistsError, match=named) as info:
        prepare_out_dir(other, overwrite=False)
    assert "--overwrite" in str(info.value) and "\n" not in str(info.value)
    assert prepare_out_dir(other, overwrite=True) == 2


def test_a_comparison_without_a_recorded_plan_is_refused(tmp_path):
    settings = _settings(tmp_path, 2)
    path = _write_previous(tmp_path, settings)
    path.write_text(json.dumps({"n_seeds": 2}))  # an older videotaf's compare.json
    with pytest.raises(OutputExistsError, match="records no plan"):
        prepare_out_dir(settings, overwrite=False)


TINY = """
model: {name: tsm, num_classes: 3, num_frames: 2, options: {depth: 18, width: 0.25, dropout: 0.0}}
data: {kind: somethingv2, root: DATA, num_frames: 2, crop_size: 16, scale_size: 16, flip: false, seed: 0,
       num_workers: 0}
optim: {lr: 0.01, epochs: 1, milestones: [], batch_size: 6, fc_lr_mult_weight: 1.0, fc_lr_mult_bias: 1.0}
runtime: {device: cpu, deterministic: true, progress: none}
"""


@pytest.mark.slow
def test_rerun_with_more_seeds_trains_only_the_new_ones(tmp_path, monkeypatch, capsys):
    from videotaf.cli import main
    from videotaf.data.synth import synthesize

    data = synthesize(tmp_path / "data", num_classes=3, train_per_class=4, val_per_class=4, num_frames=8, size=16)
    cfg = tmp_path / "base.yaml"
    cfg.write_text(TINY.replace("DATA", str(data)))
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "base")]) == 0
    what: list[str] = []
    real = compare.fit_or_reuse

    def counted(*args, **kwargs):
        run_dir, done = real(*args, **kwargs)
        what.append(f"{run_dir.name}:{done}")
        return run_dir, done

    monkeypatch.setattr(compare, "fit_or_reuse", counted)
    out = tmp_path / "cmp"
    args = ["compare", "--checkpoint", str(tmp_path / "base" / "checkpoints" / "last.pt"), "--methods", "plain"]
    args += ["taf", "--epochs", "1", "--decay-after", "1", "--n-boot", "50", "--out", str(out)]

    def stamps() -> dict[str, int]:
        return {p.parent.parent.name: p.stat().st_mtime_ns for p in sorted(out.glob("runs/*/checkpoints/last.pt"))}

    assert main([*args, "--seeds", "2"]) == 0
    assert sorted(what) == ["plain_seed0:trained", "plain_seed1:trained", "taf_seed0:trained", "taf_seed1:trained"]
    first, json_stamp = stamps(), (out / "compare.json").stat().st_mtime_ns
    assert json.loads((out / "compare.json").read_text())["n_seeds"] == 2
    what.clear()

    assert main([*args, "--seeds", "3"]) == 0
    assert sorted(what) == [
        "plain_seed0:reused",
        "plain_seed1:reused",
        "plain_seed2:trained",
        "taf_seed0:reused",
        "taf_seed1:reused",
        "taf_seed2:trained",
    ]
    after = stamps()
    assert {k: after[k] for k in first} == first and set(after) - set(first) == {"plain_seed2", "taf_seed2"}
    result = json.loads((out / "compare.json").read_text())
    assert (out / "compare.json").stat().st_mtime_ns != json_stamp
    assert result["n_seeds"] == 3 and result["seeds"] == [0, 1, 2]
    assert len(result["methods"]["taf"]["delta_top1"]["per_seed"]) == 3
    assert "(3 seeds," in (out / "compare.md").read_text()
    what.clear()

    assert main([*args, "--seeds", "2"]) == 0  # fewer: the first two scored, nothing trained, seed 2 kept
    assert all(w.endswith(":reused") for w in what) and len(what) == 4
    assert json.loads((out / "compare.json").read_text())["seeds"] == [0, 1]
    assert stamps() == after
    capsys.readouterr()

    what.clear()
    assert main([*args[:-2], "--epochs", "2", "--out", str(out), "--seeds", "3"]) == 2  # another plan
    assert "holds another comparison" in capsys.readouterr().err and what == []
