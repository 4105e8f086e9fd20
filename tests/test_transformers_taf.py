"""TA and TAF on video transformers (VideoMAE, TimeSformer, ViViT, MViT-v2, Swin3D): TA raises L_C, the fused TAF
step equals the standalone attack plus separate losses (as for the CNNs in test_objective.py), and the attention
backends (eager, PyTorch SDPA) with first- and second-order Grad-CAM weights."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from tiny_transformers import CLASSES, FRAMES, SIZE, kinds, tiny
from videotaf.attack import TAOptions, TemporalAdversarialAugmentation
from videotaf.bn import adversarial_path, convert_dual_norm
from videotaf.objective import build_objective

TRUE = TAOptions(target_rule="true")


def _clips(b: int = 2) -> torch.Tensor:
    return torch.rand(b, FRAMES, 3, SIZE, SIZE) * 0.8 + 0.1


@pytest.mark.parametrize("kind", kinds())
def test_ta_increases_cam_loss(kind):
    torch.manual_seed(0)
    model = tiny(kind, layers=2).eval()
    clips, labels = _clips(3), torch.tensor([0, 1, 2])
    attack = TemporalAdversarialAugmentation(model, eps=2 / 255, step_size=1 / 255, steps=1, options=TRUE)

    def loss_of(x):
        logits, feats, _ = attack.forward_with_features(model, x)
        return attack.loss(logits, feats, labels, labels).item()

    before = loss_of(clips)
    after = loss_of(attack(clips, labels))
    assert after > before
    three = TemporalAdversarialAugmentation(model, 6 / 255, 1 / 255, steps=3, options=TRUE)
    assert loss_of(three(clips, labels)) > after


@pytest.mark.parametrize("kind", kinds())
def test_fused_taf_step_equals_standalone_attack_then_losses(kind):
    torch.manual_seed(0)
    model = convert_dual_norm(tiny(kind)).train()
    reference = copy.deepcopy(model)
    clips, labels = _clips(3), torch.tensor([0, 1, 4])
    objective = build_objective("taf", alpha=0.7, generator=torch.Generator().manual_seed(5))

    out = objective.step(model, clips, labels)

    attack = TemporalAdversarialAugmentation(reference, generator=torch.Generator().manual_seed(5))
    adv = attack(clips, labels)
    loss_clean = F.cross_entropy(reference(clips), labels)
    with adversarial_path(reference):
        loss_adv = F.cross_entropy(reference(adv), labels)
    (0.7 * loss_clean + 0.3 * loss_adv).backward()

    assert torch.equal(out.adv_clips, adv)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), name
    assert torch.isclose(out.losses["total"], 0.7 * loss_clean.detach() + 0.3 * loss_adv.detach(), rtol=1e-5)
    assert out.logits_adv.shape == (3, CLASSES)


def _taf_step(model, second_order: bool):
    objective = build_objective(
        "taf", ta=TAOptions(second_order=second_order), generator=torch.Generator().manual_seed(0)
    )
    clips = _clips()
    out = objective.step(model, clips, torch.tensor([0, 3]))
    grads_ok = all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    return out.adv_clips - clips, grads_ok


@pytest.mark.parametrize("kind", ["videomae", "vivit"])
@pytest.mark.parametrize("second_order", [False, True])
def test_sdpa_and_eager_attention_give_the_same_adversarial_clips(kind, second_order):
    deltas = {}
    for attn in ("eager", "sdpa"):
        torch.manual_seed(0)
        model = convert_dual_norm(tiny(kind, layers=2, attn=attn)).train()
        assert model.net.config._attn_implementation == attn
        # Double backward through SDPA needs its math kernel (see the next test); first order runs the default one.
        with sdpa_kernel(SDPBackend.MATH) if second_order else torch.enable_grad():
            deltas[attn], grads_ok = _taf_step(model, second_order)
        assert grads_ok and (deltas[attn] != 0).float().mean() > 0.9, attn
    assert (deltas["eager"].sign() == deltas["sdpa"].sign()).float().mean() > 0.99


def test_second_order_through_fused_cpu_sdpa_is_not_supported():
    # ViViT's maps sit below the last attention (class-token head): second-order Grad-CAM weights differentiate
    # that attention twice, which PyTorch's fused CPU SDPA kernel cannot do; its math kernel can (above).
    torch.manual_seed(0)
    model = convert_dual_norm(tiny("vivit", attn="sdpa")).train()
    with (
        sdpa_kernel(SDPBackend.FLASH_ATTENTION),
        pytest.raises(RuntimeError, match="derivative for .* not implemented"),
    ):
        _taf_step(model, second_order=True)
    # VideoMAE's maps sit above every attention (mean-pooling head): second order never differentiates SDPA twice.
    torch.manual_seed(0)
    model = convert_dual_norm(tiny("videomae", attn="sdpa")).train()
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        assert _taf_step(model, second_order=True)[1]


@pytest.mark.parametrize("kind", kinds(["timesformer", "mvit", "swin3d"]))
def test_second_order_on_eager_attention_models(kind):
    torch.manual_seed(0)
    delta, grads_ok = _taf_step(convert_dual_norm(tiny(kind)).train(), second_order=True)
    assert grads_ok and (delta != 0).float().mean() > 0.9


def test_timesformer_has_no_sdpa_in_transformers():
    with pytest.raises(ValueError, match="scaled_dot_product_attention"):
        tiny("timesformer", attn="sdpa")
