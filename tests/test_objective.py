"""Eq. (7) and the fused step: same adversarial clip and gradients as the standalone attack + separate losses."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from videotaf.attack import CrossEntropyAugmentation, TAOptions, TemporalAdversarialAugmentation
from videotaf.bn import adversarial_path, convert_dual_bn
from videotaf.models.base import ModelOutputs
from videotaf.objective import METHODS, build_objective

from toy_models import Toy2D, Toy3D


def _reference_step(model, attack, clips, labels, alpha, dual):
    adv = attack(clips, labels)
    loss_clean = F.cross_entropy(model(clips), labels)
    if dual:
        with adversarial_path(model):
            loss_adv = F.cross_entropy(model(adv), labels)
    else:
        loss_adv = F.cross_entropy(model(adv), labels)
    (alpha * loss_clean + (1 - alpha) * loss_adv).backward()
    return adv


@pytest.mark.parametrize("method", ["taf", "advprop", "ce_adv"])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("model_cls", [Toy2D, Toy3D])
def test_fused_step_equals_standalone_attack_then_losses(method, steps, model_cls):
    torch.manual_seed(0)
    model = model_cls()
    objective = build_objective(method, alpha=0.7, steps=steps, generator=torch.Generator().manual_seed(5))
    if objective.needs_dual_bn:
        convert_dual_bn(model)
    reference = copy.deepcopy(model)
    clips = torch.rand(3, 4, 3, 16, 16)
    labels = torch.tensor([0, 1, 4])

    out = objective.step(model, clips, labels)

    gen = torch.Generator().manual_seed(5)
    if method == "taf":
        attack = TemporalAdversarialAugmentation(reference, steps=steps, generator=gen)
    else:
        attack = CrossEntropyAugmentation(reference, steps=steps, generator=gen)
    adv = _reference_step(reference, attack, clips, labels, 0.7, objective.needs_dual_bn)

    assert torch.allclose(out.adv_clips, adv, atol=0, rtol=0)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-7), name
    for (name, b), c in zip(model.named_buffers(), reference.buffers()):
        assert torch.allclose(b.float(), c.float(), rtol=1e-6, atol=1e-7), name
    assert set(out.losses) == {"total", "clean", "adv"} and out.logits_adv.shape == (3, 5)
    assert out.counts == {"clips": 3, "attacked": 3}
    assert torch.isclose(out.losses["total"], 0.7 * out.losses["clean"] + 0.3 * out.losses["adv"])


def test_plain_is_cross_entropy():
    torch.manual_seed(0)
    model = Toy2D()
    reference = copy.deepcopy(model)
    clips, labels = torch.rand(2, 4, 3, 16, 16), torch.tensor([0, 3])
    out = build_objective("plain").step(model, clips, labels)
    F.cross_entropy(reference(clips), labels).backward()
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(p.grad, q.grad)
    assert set(out.losses) == {"total", "clean"} and out.adv_clips is None
    assert out.counts == {"clips": 2, "attacked": 0}


def test_adversarial_forward_goes_through_auxiliary_bn():
    torch.manual_seed(0)
    model = convert_dual_bn(Toy2D())
    clips, labels = torch.rand(2, 4, 3, 16, 16), torch.tensor([0, 3])
    build_objective("taf").step(model, clips, labels)
    bn = model.block[1]
    assert bn.aux_bn.weight.grad is not None and bn.aux_bn.weight.grad.abs().sum() > 0
    assert bn.weight.grad.abs().sum() > 0
    assert not torch.equal(bn.running_mean, bn.aux_bn.running_mean)


def test_dual_bn_methods_require_conversion():
    model = Toy2D()
    with pytest.raises(ValueError, match="convert_dual_bn"):
        build_objective("taf").step(model, torch.rand(2, 4, 3, 16, 16), torch.tensor([0, 1]))


def test_alpha_one_gives_clean_gradient_only():
    torch.manual_seed(0)
    model = convert_dual_bn(Toy2D())
    reference = copy.deepcopy(model)
    clips, labels = torch.rand(2, 4, 3, 16, 16), torch.tensor([0, 3])
    build_objective("taf", alpha=1.0).step(model, clips, labels)
    F.cross_entropy(reference(clips), labels).backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        if ".aux_bn." in name:
            assert p.grad is None or p.grad.abs().sum() == 0
        else:
            assert torch.allclose(p.grad, q.grad, atol=1e-7), name


def test_aux_head_loss_is_added():
    class WithAux(Toy2D):
        aux_loss_weight = 0.5

        def forward(self, clips):
            logits = super().forward(clips)
            return ModelOutputs(logits, logits * 2) if self.training else logits

    torch.manual_seed(0)
    model = WithAux()
    clips, labels = torch.rand(2, 4, 3, 16, 16), torch.tensor([0, 3])
    out = build_objective("plain").step(model, clips, labels)
    logits = out.logits_clean
    expected = F.cross_entropy(logits, labels) + 0.5 * F.cross_entropy(2 * logits, labels)
    assert torch.isclose(out.losses["total"], expected)
    assert torch.isclose(out.losses["aux"], F.cross_entropy(2 * logits, labels))


def test_build_objective_validation():
    assert set(METHODS) == {"plain", "ce_adv", "advprop", "taf"}
    with pytest.raises(ValueError, match="method"):
        build_objective("fgsm")
    with pytest.raises(ValueError, match="only apply"):
        build_objective("ce_adv", ta=TAOptions(score="logit"))
    with pytest.raises(ValueError, match="score"):
        TAOptions(score="gradient")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="random"):
        build_objective("taf", random_start=True, fused=True)
    assert not build_objective("taf", random_start=True).fused
    with pytest.raises(ValueError, match="alpha"):
        build_objective("taf", alpha=1.5)
    assert build_objective("taf").needs_dual_bn and build_objective("advprop").needs_dual_bn
    assert not build_objective("ce_adv").needs_dual_bn and not build_objective("plain").needs_dual_bn


def test_taf_training_reduces_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = convert_dual_bn(Toy2D(width=16))
    clips, labels = torch.rand(4, 4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    objective = build_objective("taf", eps=4 / 255, step_size=2 / 255)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        losses.append(objective.step(model, clips, labels).losses["total"].item())
        opt.step()
    assert losses[-1] < 0.1 * losses[0]


def test_fused_taf_step_under_float16_autocast_perturbs_like_float32():
    # The engine runs the step under float16 autocast on CUDA; the fused attack must not lose its gradient there.
    torch.manual_seed(0)
    model = Toy2D(num_classes=5, num_frames=4, width=8).train()
    with torch.no_grad():
        model.fc.weight.mul_(1e-3)  # trained-network scale: unscaled float16 gradients underflow to zero
    convert_dual_bn(model)
    clips, labels = torch.rand(2, 4, 3, 32, 32), torch.tensor([1, 3])
    out = {}
    for name, enabled in (("fp32", False), ("fp16", True)):
        objective = build_objective("taf", generator=torch.Generator().manual_seed(0))
        m = copy.deepcopy(model)
        with torch.autocast("cpu", dtype=torch.float16, enabled=enabled):
            out[name] = objective.step(m, clips, labels)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters() if p.requires_grad)
    delta32, delta16 = out["fp32"].adv_clips - clips, out["fp16"].adv_clips - clips
    assert (delta16 != 0).float().mean() > 0.99
    assert (delta16.sign() == delta32.sign()).float().mean() > 0.99
