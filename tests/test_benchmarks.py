"""The cost claims of ``videotaf.objective`` from counted passes, and the benchmark scripts end to end.

The pass counts come from ``benchmarks/_common.count_passes`` (module, tensor and parameter hooks), the helper
``benchmarks/step_cost.py`` computes its pass-count floors with; units as in ``videotaf.objective``: a forward =
1, an input-only backward = 1, a backward with parameter gradients = 2, the Grad-CAM weights' backward through
the head alone = 0 (it is listed, and checked, as a partial backward).

The script runs (``slow``) use the smallest settings, outputs in tmp_path, BENCHMARKS.md untouched. No timing is
asserted: the numbers are the scripts' business. What is checked is what must hold on any machine: every case
ran, and the deterministic quantities (pass floors, activation memory of the fused step) are right.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench_common import ROOT, common, run_script
from videotaf.bn import convert_dual_bn
from videotaf.objective import build_objective

from toy_models import AUX, MAIN, Toy2D, Toy3D


def count(
    method: str, steps: int = 1, fused: bool = True, model_cls=Toy2D, low_memory: bool = False
) -> common.PassCount:
    """Passes of one step; the single-backward schedule unless ``low_memory`` (the default schedule, which
    splits the final backward in two: same units)."""
    torch.manual_seed(0)
    model = model_cls().train()
    objective = build_objective(
        method, steps=steps, fused=fused, generator=torch.Generator().manual_seed(0), low_memory=low_memory
    )
    if objective.needs_dual_bn:
        convert_dual_bn(model)
    clips, labels = torch.rand(2, 4, 3, 16, 16), torch.tensor([0, 3])
    with common.count_passes(model) as passes:
        objective.step(model, clips, labels)
    return passes


def attack_passes(first: int, steps: int) -> list[list[tuple[int, str]]]:
    """TA's K steps: each a forward whose graph gets the head backward, then the input-only backward."""
    return [t for k in range(first, first + steps) for t in ([(k, "partial")], [(k, "input")])]


def check_attack_backwards(passes: common.PassCount, steps: int) -> None:
    for k in range(steps):
        head, attack = passes.backwards[2 * k], passes.backwards[2 * k + 1]
        assert head.reached == {k: {"fc"}} and not head.param_grads and not head.reached_input
        # The CAM loss is a function of the CAM layer's output (its weights are detached): all but the classifier.
        assert attack.reached == {k: set(MAIN) - {"fc"}} and attack.reached_input == {k}
        assert not attack.param_grads


@pytest.mark.parametrize("model_cls", [Toy2D, Toy3D])
def test_plain_step_is_one_forward_and_one_full_backward(model_cls):
    passes = count("plain", model_cls=model_cls)
    assert len(passes.forwards) == 1 and len(passes.backwards) == 1
    assert passes.traversals() == [[(0, "full")]]
    (backward,) = passes.backwards
    assert backward.reached == {0: set(passes.forwards[0].layers)} and not backward.reached_input
    assert passes.units == 3


@pytest.mark.parametrize("steps,units", [(1, 7), (3, 11)])
def test_fused_taf_step_shares_the_clean_forward(steps, units):
    passes = count("taf", steps)
    # The clean forward is the attack's first forward; K - 1 more attack forwards; the adversarial one last.
    assert [f.layers for f in passes.forwards] == [MAIN] * steps + [AUX]
    assert passes.forwards[0].input_requires_grad and not passes.forwards[-1].input_requires_grad
    assert passes.traversals() == attack_passes(0, steps) + [[(0, "full"), (steps, "full")]]
    check_attack_backwards(passes, steps)
    final = passes.backwards[-1]
    assert final.reached == {0: set(MAIN), steps: set(AUX)}
    # Every parameter of both paths (main and auxiliary BN, shared convs and classifier): 14 tensors.
    params = {n for f in (passes.forwards[0], passes.forwards[-1]) for names in f.params.values() for n in names}
    assert final.param_grads == params and len(params) == 14
    assert passes.units == units
    assert passes.units / count("plain").units == pytest.approx(units / 3)  # 7/3 and 11/3 of a plain step


@pytest.mark.parametrize("steps,units", [(1, 7), (3, 11)])
def test_low_memory_step_splits_the_final_backward_at_the_same_cost(steps, units):
    passes = count("taf", steps, low_memory=True)
    assert [f.layers for f in passes.forwards] == [MAIN] * steps + [AUX]
    # The clean graph's backward runs right after the first attack step (it frees the clean graph), then the
    # remaining attack steps, then the adversarial graph's own backward.
    order = attack_passes(0, 1) + [[(0, "full")]] + attack_passes(1, steps - 1) + [[(steps, "full")]]
    assert passes.traversals() == order
    assert passes.units == units == count("taf", steps).units
    assert build_objective("taf").low_memory  # the default schedule


@pytest.mark.parametrize("steps,units", [(1, 8), (3, 12)])
def test_naive_taf_step_runs_its_own_clean_forward(steps, units):
    passes = count("taf", steps, fused=False)
    assert [f.layers for f in passes.forwards] == [MAIN] * (steps + 1) + [AUX]
    assert passes.traversals() == attack_passes(0, steps) + [[(steps, "full"), (steps + 1, "full")]]
    check_attack_backwards(passes, steps)
    assert passes.backwards[-1].reached == {steps: set(MAIN), steps + 1: set(AUX)}
    assert passes.units == units
    assert passes.units == count("taf", steps).units + 1  # exactly the clean forward the fused step saves


def test_fused_ce_adv_step_backpropagates_the_attack_through_the_classifier():
    passes = count("ce_adv")
    assert passes.traversals() == [[(0, "input")], [(0, "full"), (1, "full")]]
    assert passes.backwards[0].reached == {0: set(MAIN)} and passes.backwards[0].reached_input == {0}
    assert passes.units == 7


def test_count_passes_by_hand():
    torch.manual_seed(0)
    model = Toy2D().train()
    x = torch.rand(2, 4, 3, 16, 16, requires_grad=True)
    labels = torch.tensor([1, 2])
    with common.count_passes(model) as passes:
        loss = F.cross_entropy(model(x), labels)
        torch.autograd.grad(loss, x, retain_graph=True)  # input only: 1
        loss.backward(retain_graph=True)  # parameters (and the input): 2
        torch.autograd.grad(loss, [model.fc.weight], retain_graph=True)  # the head's weight only: 0
        with torch.no_grad():
            model(x)  # a forward without a graph still costs 1
    assert len(passes.forwards) == 2 and not passes.forwards[1].input_requires_grad
    assert passes.traversals() == [[(0, "input")], [(0, "full")], [(0, "partial")]]
    assert [b.reached_input for b in passes.backwards] == [{0}, {0}, set()]
    assert passes.backwards[2].reached == {0: {"fc"}} and passes.backwards[2].param_grads == {"fc.weight"}
    assert passes.units == 2 + 1 + 2 + 0
    # Parameter gradients for some of the layers a backward goes through fit no cost unit.
    with common.count_passes(model) as mixed:
        torch.autograd.grad(F.cross_entropy(model(x), labels), [x, model.fc.weight])
    with pytest.raises(ValueError, match="only some parameters"):
        mixed.traversals()
    # Every hook is gone after the context.
    F.cross_entropy(model(x), labels).backward()
    assert len(passes.forwards) == 2 and len(passes.backwards) == 3


# ----------------------------------------------------------------------------------------- the scripts
def test_the_scripts_import_the_package_not_sys_path():
    """``benchmarks`` is a package: its scripts reach ``_common`` and each other by package imports."""
    scripts = sorted((ROOT / "benchmarks").glob("*.py"))
    assert (ROOT / "benchmarks" / "__init__.py") in scripts
    assert not [p.name for p in scripts if "sys.path" in p.read_text()]
    assert "from benchmarks import claims, regimes" in (ROOT / "benchmarks" / "networks.py").read_text()


@pytest.mark.slow
def test_step_cost_quick_measures_both_allocators(tmp_path: Path):
    out = tmp_path / "step_cost.json"
    run_script("step_cost", "--quick", "--reps", "1", "--out", str(out))
    runs = json.loads(out.read_text())["runs"]
    assert [r["cpu_memory"] for r in runs] == ["default", "keep"]
    for run in runs:
        rows = run["results"]["tsm_small"]["rows"]
        assert set(rows) == {
            *("plain", "taf_k1", "taf_k1_naive", "taf_k3", "ce_adv_k1", "taf_k1_frac25", "taf_k1_lowmem")
        }
        # Counted on the benchmark's own TSM, not copied from a table (fraction 0.25 of 8 clips: 2 attacked).
        floors = {s: r["pass_floor"] for s, r in rows.items()}
        expected = {"plain": 1, "taf_k1": 7 / 3, "taf_k1_naive": 8 / 3, "taf_k3": 11 / 3, "ce_adv_k1": 7 / 3}
        expected |= {"taf_k1_frac25": 1 + 5 * 0.25 / 3, "taf_k1_lowmem": 7 / 3}
        assert floors == pytest.approx(expected)
        # The fused K = 1 step keeps exactly two graphs' activations (clean + adversarial) until its one backward.
        assert rows["taf_k1"]["memory_ratio"] == pytest.approx(2.0, abs=0.02)
        assert rows["ce_adv_k1"]["memory_ratio"] == pytest.approx(2.0, abs=0.02)
        assert rows["taf_k1_naive"]["saved_ratio"] > rows["taf_k1"]["saved_ratio"]
        # The low-memory step frees the clean graph first; a quarter of the batch adds a quarter graph.
        assert rows["taf_k1_lowmem"]["memory_ratio"] < 1.1
        assert rows["taf_k1_lowmem"]["saved_ratio"] == pytest.approx(rows["taf_k1"]["saved_ratio"], rel=0.01)
        assert rows["taf_k1_frac25"]["memory_ratio"] == pytest.approx(1.25, abs=0.03)


@pytest.mark.slow
def test_loader_throughput_covers_every_source(tmp_path: Path, real_fixtures: Path):
    out = tmp_path / "loader.json"
    run_script("loader_throughput", "--repeats", "1", "--rounds", "1", "--out", str(out))
    payload = json.loads(out.read_text())
    # The recorded command is the one that reruns it: the package form, from the root.
    assert payload["command"].startswith("python -m benchmarks.loader_throughput --repeats 1 ")
    results = payload["results"]
    assert len(results) == 6 and sum("jpeg" in name for name in results) == 3
    for name, r in results.items():
        assert r["frames_per_clip"] == 8, name
        assert r["raw_clips_per_s"] > 0 and r["dataset_clips_per_s"] > 0, name
        # The one-off RGB conversion is a video-only comparison; JPEG folders have none.
        assert (r["raw_oneoff_rgb_clips_per_s"] is None) == ("jpeg" in name), name
    assert results["synth_webm_64px"]["clips"] == 32  # 8 classes x 4 training clips, once


@pytest.mark.slow
def test_claims_quick_pipeline(tmp_path: Path):
    out = tmp_path / "claims.json"
    work = tmp_path / "work"
    run_script("claims", "--quick", "--work", str(work), "--out", str(out))
    res = json.loads(out.read_text())
    # One `videotaf compare` per LR reading; the cheaper TAF (a quarter of each batch) is an arm of both.
    assert set(res["compare"]) == {"checkpoint", "config"}
    assert set(res["methods"]["checkpoint"]) == {"plain", "ce_adv", "advprop", "taf", "taf_f25"}
    assert set(res["methods"]["config"]) == {"plain", "taf", "taf_f25"}
    for reading, comparison in res["compare"].items():
        assert (work / f"lr_{reading}" / "compare.json").is_file()
        assert comparison["control"] == "plain" and comparison["n_seeds"] == 2
        assert set(comparison["methods"]) == set(res["methods"][reading]) - {"plain"}
    # The two readings really fine-tune at different LRs: the saved one is the baseline's last (decayed) LR.
    (lr_ckpt, _), (lr_cfg, _) = res["lr"]["checkpoint"], res["lr"]["config"]
    assert lr_cfg == pytest.approx(res["sizes"]["lr"]) and lr_ckpt < lr_cfg
    saved = [json.loads(line)["lr"] for line in (work / "baseline" / "metrics.jsonl").read_text().splitlines()]
    assert lr_ckpt == pytest.approx(saved[-1])
    assert set(res["robustness"]["methods"]) == {"plain", "taf"}
    assert set(res["sweep"]["top1"]) == {"alpha_0.5", "alpha_0.7", "alpha_0.9", "e6_k1", "e6_k3", "e64_k1", "e64_k3"}
    # The sweep's default point is the main taf arm: its runs are reused, not run twice.
    assert res["sweep"]["top1"]["alpha_0.7"]["label"] == res["sweep"]["top1"]["e64_k1"]["label"] == "taf"
    assert res["verdicts"] and all({"claim", "diff", "ci95", "verdict"} <= set(v) for v in res["verdicts"])
    assert {v["verdict"] for v in res["verdicts"]} <= {
        "holds", "reversed", "no detectable difference", "not measurable (1 seed)"
    }  # fmt: skip
    for table in res["methods"].values():
        for method in table.values():
            assert 0.0 <= method["mean"]["top1"] <= 100.0


def test_claims_paying_recipe_is_the_demo_s():
    """``--recipe paying`` runs the claims on the network study's paying regime: every recipe field is PAYING's
    (so ``--work`` pointed at ``videotaf demo --regime paying``'s output reuses its dataset and baseline), the
    comparisons' knobs stay the claims' own, and options given still win."""
    from benchmarks import claims

    from videotaf.engine.recipes import PAYING, SyntheticRecipe

    _, sizes = claims.parse_args(["--recipe", "paying", "--seeds", "2"])
    for f in dataclasses.fields(SyntheticRecipe):
        assert getattr(sizes, f.name) == getattr(PAYING, f.name), f.name
    assert sizes.seeds == 2 and sizes.corruptions == claims.FULL.corruptions
    _, quick = claims.parse_args(["--recipe", "paying", "--quick"])
    assert quick.model_options == PAYING.model_options and quick.train_crop == "none"
    assert quick.video_size == claims.QUICK.video_size and quick.finetune_lr == PAYING.finetune_lr
    _, default = claims.parse_args([])
    assert default == claims.FULL
    # --recipe fast: the demo's default regime, field for field (so --work pointed at `videotaf demo`'s output
    # reuses its dataset and baseline).
    from videotaf.engine.recipes import FAST

    _, fast = claims.parse_args(["--recipe", "fast"])
    for f in dataclasses.fields(SyntheticRecipe):
        assert getattr(fast, f.name) == getattr(FAST, f.name), f.name


@pytest.mark.slow
def test_regimes_quick_runs_every_cell(tmp_path: Path):
    out = tmp_path / "regimes.json"
    work = tmp_path / "work"
    run_script("regimes", "--quick", "--work", str(work), "--out", str(out))
    res = json.loads(out.read_text())
    names = [row["cell"]["name"] for row in res["cells"]]
    assert names[:7] == ["centre", "cam_4x4", "cam_7x7", "aug_center", "aug_none", "data_12", "lr_checkpoint"]
    assert names[7:] == ["attack_eps16", "attack_k3"]
    for row in res["cells"]:
        assert row["n_seeds"] == 2
        for key in ("taf", "ce_adv", "advprop", "taf_vs_ce_adv"):
            assert row[key]["verdict"] in {"better", "worse", "no detectable difference"}
    # The CAM-size cells only change the TAF arm: their other arms are the centre's runs, trained once.
    pool = work / "lr_config" / "runs"
    assert sorted(p.name for p in pool.iterdir() if p.name.startswith("plain")) == ["plain_seed0", "plain_seed1"]
    assert (pool / "taf_cam_4x4_seed0").is_dir() and (pool / "taf_cam_7x7_seed0").is_dir()
    # Map sizes measured at each CAM layer of the quick model (32 px input: strides 32, 16, 8).
    maps = {key.split(":")[1]: cam["map"] for key, cam in res["cam"].items() if key.startswith("main:")}
    assert maps == {"2x2": [1, 1], "4x4": [2, 2], "7x7": [4, 4]}
    assert set(res["baselines"]) == {"main", "small"}


@pytest.mark.slow
def test_train_throughput_runs_plain_and_taf_through_the_engine(tmp_path: Path):
    out = tmp_path / "throughput.json"
    run_script(
        "train_throughput",
        *("--classes", "4", "--train-per-class", "4", "--batch", "4", "--epochs", "1", "--rounds", "1"),
        *("--workers", "0", "--out", str(out)),
    )
    rows = json.loads(out.read_text())["results"]
    assert set(rows) == {"plain", "taf"}
    assert rows["plain"]["clips_per_s"] > 0 and rows["taf"]["clips_per_s"] > 0
    # Time per clip relative to plain: plain's throughput over TAF's (not the other way round).
    assert rows["taf"]["x_plain_time"] == pytest.approx(rows["plain"]["clips_per_s"] / rows["taf"]["clips_per_s"])


@pytest.mark.slow
def test_networks_quick_runs_pools_and_the_mechanism(tmp_path: Path):
    results = tmp_path / "networks"
    work = tmp_path / "work"
    run_script("networks", "--quick", "--pools", "s16", "s32_crop", "--work", str(work), "--results", str(results))
    res = json.loads((tmp_path / "networks.json").read_text())
    assert [r["pool"]["name"] for r in res["pools"]] == ["s16", "s32_crop"]
    s16, s32 = res["pools"]
    assert list(s16["arms"]) == ["taf", "taf_mid", "taf_frac25", "taf_random"]
    assert list(s32["arms"]) == ["taf"]
    assert s16["n_seeds"] == s32["n_seeds"] == 2
    # 32 px quick input: the small stem's last stage is 2x2 (stride 16), layer3 4x4; the ImageNet stem on the
    # 28 px crop ends at 1x1.
    assert s16["mechanism"]["taf"]["cam"]["map"] == [2, 2]
    assert s16["mechanism"]["taf_mid"]["cam"]["map"] == [4, 4]
    assert s32["mechanism"]["taf"]["cam"]["map"] == [1, 1]
    for mech in (*s16["mechanism"].values(), *s32["mechanism"].values()):
        assert 0.0 <= mech["target_is_label"] <= 100.0
        # Sec. 3.2's rule: a clip gets its true label exactly when the baseline misclassifies it.
        assert abs(mech["target_is_label"] - (100.0 - mech["train_mode_top1"])) < 1e-6
        assert mech["lc_adv"] >= 0.0 and mech["ce_clean"] > 0.0
    # The correlation points are the arms with a mechanism of their own: s16 taf and taf_mid, s32_crop taf.
    assert res["correlations"]["n"] == 3 and set(res["correlations"]["r"]) >= {"train-mode top-1"}
    # --more-seeds over the same seeds reuses every run and rewrites that arm's row in place, the others kept.
    run_script("networks", "--quick", "--pools", "s16", "--more-seeds", "2", "--arms", "taf_random", "--work",
               str(work), "--results", str(results))  # fmt: skip
    again = json.loads((results / "s16.json").read_text())
    assert list(again["arms"]) == list(s16["arms"]) and again["arms"]["taf_random"] == s16["arms"]["taf_random"]
    assert (work / "s16" / "seeds2_taf_random" / "compare.json").is_file()


def test_integration_step_cost_quick_times_both_trainers(tmp_path: Path):
    out = tmp_path / "integration_step_cost.json"
    run_script("integration_step_cost", "--quick", "--out", str(out))
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"hf_trainer", "lightning"}
    for row in results.values():
        assert len(row["pairs"]) == 3 and row["plain_s"] > 0 and row["taf_s"] > 0
        assert row["ratio"] == pytest.approx(row["taf_s"] / row["plain_s"])


def test_fast_regime_candidates_are_the_paying_recipe_cheapened_as_labelled():
    """Each candidate of ``benchmarks.fast_regime`` differs from FAST (itself PAYING at 32 px, 4 frames, tested in
    tests/test_demo.py) only in what its label says; the winner is FAST itself, the demo's default."""
    from benchmarks import fast_regime

    from videotaf.engine.recipes import FAST

    def changed(recipe) -> set[str]:
        return {f.name for f in dataclasses.fields(FAST) if getattr(recipe, f.name) != getattr(FAST, f.name)}

    (_, a32, _), (_, short, _), (_, winner, seeds) = (fast_regime.CANDIDATES[n] for n in ("A32", "E", "D32f4"))
    assert changed(a32) == {"num_frames"} and a32.num_frames == 8
    assert changed(short) == {"epochs", "milestones", "finetune_epochs", "finetune_decay"}
    assert (short.epochs, short.finetune_epochs) == (20, 6)
    assert winner is FAST and seeds == 5


def test_fast_regime_markdown_row():
    from benchmarks import fast_regime

    row = {
        "seeds": 3,
        "baseline_val_top1": 65.3125,
        "baseline_train_top1": 100.0,
        "delta": {"mean": 3.333, "ci95": [0.61, 6.06]},
        "clip_ci95": [1.04, 5.62],
        "mcnemar_p": 0.0012,
        "verdict": "better",
        "training_minutes": 6.14,
    }
    text = fast_regime.markdown({"D32f4": row})
    assert "| D32f4 | 32 px, 4 frames (`FAST`, the demo's default) | 100.0 / 65.3 | 3 | +3.33 " in text
    assert "| 0.0012 | better | 6.1 |" in text
