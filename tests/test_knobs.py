"""Issue 19's knobs: TA's target rule (``adversarial.target_rule: random``) and the adversarial path's
normalisation (``adversarial.dual_norm``) for every method, from the attack to the config and the run identity."""

from __future__ import annotations

import pytest
import torch

import videotaf.analysis.attention as attention_mod
import videotaf.analysis.figures as figures_mod
from engine_toys import TinyNet, toy_config, toy_datasets
from videotaf.attack import TAOptions, TemporalAdversarialAugmentation, random_other_labels, select_targets
from videotaf.cli.analysis import _target_rule
from videotaf.config import ConfigError, load_config, save_config, with_overrides
from videotaf.engine import checkpoint as ck
from videotaf.engine.runs import next_step
from videotaf.engine.train import fit
from videotaf.errors import RunExistsError
from videotaf.objective import METHODS, build_objective

# Seed 0 draws torch.randint(0, 3, (4,)) = [2, 0, 2, 0] (checked below); with 4 classes and labels [0, 1, 2, 3]
# a draw d becomes d + (d >= label): [2+1, 0, 2+1, 0] = [3, 0, 3, 0], never the label.
LABELS = torch.tensor([0, 1, 2, 3])
# Predictions [0, 2, 2, 1]: rows 0 and 2 are right, rows 1 and 3 wrong.
LOGITS = torch.nn.functional.one_hot(torch.tensor([0, 2, 2, 1]), 4).float() * 5.0


def seeded() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_the_draw_the_hand_values_rest_on():
    assert torch.randint(0, 3, (4,), generator=seeded()).tolist() == [2, 0, 2, 0]


def test_random_and_paper_rules_by_hand():
    assert random_other_labels(LABELS, 4, seeded()).tolist() == [3, 0, 3, 0]
    # Sec. 3.2: the right rows 0 and 2 take the random label, the wrong rows 1 and 3 their true label.
    assert select_targets(LOGITS, LABELS, seeded()).tolist() == [3, 1, 3, 3]
    paper = TemporalAdversarialAugmentation(None, options=TAOptions(target_rule="paper"), generator=seeded())
    rand = TemporalAdversarialAugmentation(None, options=TAOptions(target_rule="random"), generator=seeded())
    assert paper.targets(LOGITS, LABELS).tolist() == [3, 1, 3, 3]
    # The misclassified row 1 gets its true label (1) under the paper's rule, another one (0) under random.
    assert rand.targets(LOGITS, LABELS).tolist() == [3, 0, 3, 0]


@pytest.mark.parametrize("num_classes", [2, 3, 5, 11])
def test_random_rule_never_returns_the_true_label_and_covers_the_others(num_classes):
    gen = torch.Generator().manual_seed(num_classes)
    labels = torch.randint(0, num_classes, (3000,), generator=gen)
    logits = torch.randn(3000, num_classes, generator=gen)  # right and wrong predictions mixed
    logits[::2] = torch.nn.functional.one_hot(labels[::2], num_classes).float()  # half of them surely right
    attack = TemporalAdversarialAugmentation(None, options=TAOptions(target_rule="random"), generator=gen)
    targets = attack.targets(logits, labels)
    assert targets.dtype == torch.long and ((targets >= 0) & (targets < num_classes)).all()
    assert (targets != labels).all()
    # Every other class comes out for label 0 (uniform: about 3000 / C / (C - 1) each).
    assert set(targets[labels == 0].tolist()) == set(range(1, num_classes))
    if num_classes == 2:
        assert torch.equal(targets, 1 - labels)


def test_random_other_labels_needs_two_classes():
    with pytest.raises(ValueError, match="num_classes >= 2"):
        random_other_labels(torch.zeros(2, dtype=torch.long), 1)


def test_target_rule_from_the_config_and_set_overrides():
    cfg = load_config(None, ["adversarial.method=taf", "adversarial.target_rule=random"])
    options = cfg.adversarial.ta_options()
    assert options is not None and options.target_rule == "random"
    attack = build_objective("taf", ta=options, generator=seeded()).attack
    assert isinstance(attack, TemporalAdversarialAugmentation)
    assert attack.targets(LOGITS, LABELS).tolist() == [3, 0, 3, 0]
    with pytest.raises(ConfigError, match="adversarial.target_rule"):
        load_config(None, ["adversarial.target_rule=sometimes"])
    with pytest.raises(ValueError, match="target_rule"):
        TAOptions(target_rule="sometimes")  # type: ignore[arg-type]


def test_analysis_commands_build_ta_with_the_configured_rule(monkeypatch):
    seen: list[str] = []

    class Spy(TemporalAdversarialAugmentation):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(self.options.target_rule)

    monkeypatch.setattr(attention_mod, "TemporalAdversarialAugmentation", Spy)
    monkeypatch.setattr(figures_mod, "TemporalAdversarialAugmentation", Spy)
    cfg = load_config(None, ["adversarial.target_rule=random"])
    rule = _target_rule(cfg)
    assert rule == "random" and _target_rule(load_config(None)) == "paper"
    torch.manual_seed(0)
    model = TinyNet()
    clips, labels = torch.rand(2, 4, 3, 16, 16), torch.tensor([0, 1])
    attention_mod.analyze_attention(model, [(clips, labels)], eps=4 / 255, step_size=2 / 255, target_rule=rule)
    figures_mod.cam_rows({"m": model}, clips[0], 0, adversarial=True, eps=4 / 255, target_rule=rule)
    assert seen == ["random", "random"]


@pytest.mark.parametrize(
    ("dual_norm", "expected"),
    [
        ("auto", {"plain": False, "ce_adv": False, "advprop": True, "taf": True}),
        ("aux", {"plain": False, "ce_adv": True, "advprop": True, "taf": True}),
        ("shared", {"plain": False, "ce_adv": False, "advprop": False, "taf": False}),
    ],
)
def test_dual_norm_decides_the_adversarial_path_for_every_method(dual_norm, expected):
    assert {m: build_objective(m, dual_norm=dual_norm).needs_dual_bn for m in METHODS} == expected


def test_dual_norm_rejects_other_values():
    with pytest.raises(ValueError, match="dual_norm"):
        build_objective("taf", dual_norm="both")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="adversarial.dual_norm"):
        load_config(None, ["adversarial.dual_norm=both"])


def _bn_counts(state: dict[str, torch.Tensor]) -> tuple[int, int | None]:
    """``num_batches_tracked`` of TinyNet's first BatchNorm on the main path and on the auxiliary one."""
    aux = state.get("stem.1.aux_bn.num_batches_tracked")
    return int(state["stem.1.num_batches_tracked"]), None if aux is None else int(aux)


# One epoch of the toy run: 24 clips in batches of 6, 4 steps. At K = 1 a step makes two training-mode forwards
# (the clean one, shared with the attack, and the adversarial one): both through the main BatchNorm when the
# path is shared (8), one each through the main and the auxiliary copy otherwise (4 and 4).
@pytest.mark.parametrize(
    ("method", "dual_norm", "main", "aux"),
    [
        ("taf", "shared", 8, None),
        ("ce_adv", "aux", 4, 4),
        pytest.param("taf", "auto", 4, 4, marks=pytest.mark.slow),  # today's defaults, for contrast
        pytest.param("ce_adv", "auto", 8, None, marks=pytest.mark.slow),
    ],
)
def test_training_routes_adversarial_clips_by_dual_norm(tmp_path, method, dual_norm, main, aux):
    cfg = with_overrides(
        toy_config(str(tmp_path / "run"), method),
        ["optim.epochs=1", "optim.milestones=[]", f"adversarial.dual_norm={dual_norm}"],
    )
    fit(cfg, datasets_fn=toy_datasets)
    last = ck.load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert last["step"] == 4
    assert _bn_counts(last["model"]) == (main, aux)
    assert last["dual_bn"] == (aux is not None)
    assert any(".aux_bn." in k for k in last["model"]) == (aux is not None)
    if aux is not None:  # the two paths saw different clips, so their statistics parted
        assert not torch.equal(last["model"]["stem.1.running_mean"], last["model"]["stem.1.aux_bn.running_mean"])


def test_target_rule_and_dual_norm_are_part_of_the_run_identity(tmp_path):
    run = tmp_path / "run"
    cfg = toy_config(str(run), "taf")
    save_config(cfg, run / "config.yaml")
    (run / "eval.json").write_text("{}")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    assert next_step(run, cfg, overwrite=False) == "reuse"
    for change in ("adversarial.target_rule=random", "adversarial.dual_norm=shared"):
        other = with_overrides(cfg, [change])
        with pytest.raises(RunExistsError, match="another config"):
            next_step(run, other, overwrite=False)
        assert next_step(run, other, overwrite=True) == "train"
