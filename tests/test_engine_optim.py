from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_toys import TinyNet
from videotaf.bn import convert_dual_bn
from videotaf.config import OptimConfig, load_config
from videotaf.engine.optim import build_optimizer, build_scheduler, lr_factor, param_groups


def groups_by_name(model, cfg):
    return {g["name"]: g for g in param_groups(model, cfg)}


def test_lr_groups_follow_the_tsm_protocol():
    model = convert_dual_bn(TinyNet())
    cfg = OptimConfig(lr=0.1, weight_decay=1e-3)
    g = groups_by_name(model, cfg)
    ids = {name: {id(p) for p in grp["params"]} for name, grp in g.items()}
    assert ids["fc_weight"] == {id(model.fc.weight)} and ids["fc_bias"] == {id(model.fc.bias)}
    assert g["fc_weight"]["lr"] == pytest.approx(0.5) and g["fc_weight"]["weight_decay"] == 1e-3
    assert g["fc_bias"]["lr"] == pytest.approx(1.0) and g["fc_bias"]["weight_decay"] == 0.0
    bn = model.stem[1]
    for p in (bn.weight, bn.bias, bn.aux_bn.weight, bn.aux_bn.bias, model.stem[0].bias):
        assert id(p) in ids["no_decay"]
    assert g["no_decay"]["weight_decay"] == 0.0 and g["no_decay"]["lr"] == pytest.approx(0.1)
    assert ids["decay"] == {id(model.stem[0].weight), id(model.block[0].weight)}
    # every trainable parameter exactly once
    all_ids = [i for s in ids.values() for i in s]
    assert sorted(all_ids) == sorted(id(p) for p in model.parameters())


def test_optimizer_settings():
    opt = build_optimizer(TinyNet(), OptimConfig(lr=0.01, momentum=0.9, nesterov=True))
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["momentum"] == 0.9 and g["nesterov"] for g in opt.param_groups)


def test_step_schedule_finetune_protocol():
    # Sec. 4.1: 15 epochs, LR x0.1 after 10.
    cfg = OptimConfig(lr=0.01, epochs=15, schedule="step", milestones=[10], gamma=0.1)
    assert lr_factor(0, cfg) == 1.0
    assert lr_factor(9.999, cfg) == 1.0
    assert lr_factor(10.0, cfg) == pytest.approx(0.1)
    assert lr_factor(14.9, cfg) == pytest.approx(0.1)
    cfg = OptimConfig(milestones=[20, 40])
    assert [lr_factor(e, cfg) for e in (19, 20, 39, 40)] == pytest.approx([1, 0.1, 0.1, 0.01])


def test_cosine_and_warmup():
    cfg = OptimConfig(epochs=10, schedule="cosine", warmup_epochs=2)
    assert lr_factor(1.0, cfg) == pytest.approx(0.5)
    assert lr_factor(2.0, cfg) == pytest.approx(1.0)
    assert lr_factor(6.0, cfg) == pytest.approx(0.5)
    assert lr_factor(10.0, cfg) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(0.0, cfg) < 1e-9


@settings(max_examples=40, deadline=None)
@given(e=st.floats(0, 49.99), mult=st.sampled_from([1.0, 5.0, 10.0]))
def test_scheduler_per_iteration_matches_factor(e, mult):
    steps = 7
    cfg = OptimConfig(lr=0.02, epochs=50, schedule="cosine", warmup_epochs=1.5)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 0.02 * mult, "lr_mult": mult}], lr=0.02)
    sched = build_scheduler(opt, cfg, steps)
    k = int(e * steps)
    for _ in range(k):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02 * mult * lr_factor(k / steps, cfg), rel=1e-9, abs=1e-15)
    assert 0.0 <= lr_factor(k / steps, cfg) <= 1.0 + 1e-12


def test_finetune_yaml_protocol():
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs/finetune/ssv1_tsm_r50_8f_taf.yaml")
    assert (cfg.optim.epochs, cfg.optim.milestones, cfg.optim.gamma) == (15, [10], 0.1)
    assert cfg.adversarial.method == "taf" and math.isclose(cfg.adversarial.eps, 64 / 255)
