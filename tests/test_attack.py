"""TA (Eq. 6) and CE-based PGD (Eq. 1): budget, ascent, side-effect freedom, the target-label rule."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from videotaf.attack import CrossEntropyAugmentation, TAOptions, TemporalAdversarialAugmentation, select_targets
from videotaf.bn import convert_dual_bn

from toy_models import Toy2D, Toy3D

TRUE = TAOptions(target_rule="true")


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 2),
    t=st.integers(1, 4),
    hw=st.integers(6, 12),
    eps=st.floats(0.0, 0.5),
    step=st.floats(0.0, 0.5),
    steps=st.integers(1, 3),
    random_start=st.booleans(),
    layout3d=st.booleans(),
    seed=st.integers(0, 2**16),
)
@pytest.mark.slow
def test_adversarial_clip_stays_in_budget_and_range(b, t, hw, eps, step, steps, random_start, layout3d, seed):
    torch.manual_seed(seed)
    model = (Toy3D if layout3d else Toy2D)(num_frames=t, width=4)
    clips = torch.rand(b, t, 3, hw, hw)
    labels = torch.randint(0, 5, (b,))
    for attack in (
        TemporalAdversarialAugmentation(model, eps, step, steps, random_start=random_start),
        CrossEntropyAugmentation(model, eps, step, steps, random_start=random_start),
    ):
        adv = attack(clips, labels)
        assert adv.shape == clips.shape
        assert (adv - clips).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1


@pytest.mark.parametrize("model_cls", [Toy2D, Toy3D])
def test_ta_increases_cam_loss(model_cls):
    torch.manual_seed(0)
    model = model_cls(width=8).eval()
    clips = torch.rand(4, 4, 3, 16, 16) * 0.8 + 0.1
    labels = torch.tensor([0, 1, 2, 3])
    attack = TemporalAdversarialAugmentation(model, eps=2 / 255, step_size=1 / 255, steps=1, options=TRUE)

    def loss_of(x):
        logits, feats, _ = attack.forward_with_features(model, x)
        return attack.loss(logits, feats, labels, labels).item()

    before = loss_of(clips)
    after = loss_of(attack(clips, labels))
    assert after > before
    after3 = loss_of(TemporalAdversarialAugmentation(model, 6 / 255, 1 / 255, steps=3, options=TRUE)(clips, labels))
    assert after3 > after


def test_ce_attack_increases_cross_entropy():
    torch.manual_seed(0)
    model = Toy2D().eval()
    clips = torch.rand(4, 4, 3, 16, 16)
    labels = torch.tensor([0, 1, 2, 3])
    adv = CrossEntropyAugmentation(model, eps=2 / 255, step_size=1 / 255)(clips, labels)
    with torch.no_grad():
        assert F.cross_entropy(model(adv), labels) > F.cross_entropy(model(clips), labels)


@pytest.mark.parametrize("train_mode", [True, False])
@pytest.mark.parametrize("attack_cls", [TemporalAdversarialAugmentation, CrossEntropyAugmentation])
def test_attack_leaves_model_untouched(train_mode, attack_cls):
    torch.manual_seed(0)
    model = convert_dual_bn(Toy2D())
    model.train(train_mode)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    params = copy.deepcopy({k: v for k, v in model.named_parameters()})
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    clips, labels = torch.rand(2, 4, 3, 16, 16), torch.tensor([1, 3])
    attack_cls(model, steps=2)(clips, labels)
    assert model.training == train_mode
    for k, p in model.named_parameters():
        assert torch.equal(p, params[k]) and torch.equal(p.grad, grads[k]), k
    for k, b in model.named_buffers():
        assert torch.equal(b, buffers[k]), k
    assert set(buffers) == {k for k, _ in model.named_buffers()}


def test_attack_in_train_mode_uses_batch_statistics():
    # The CAM in training mode comes from batch statistics: with running stats far from the batch ones the
    # eval-mode and train-mode attacks differ.
    torch.manual_seed(0)
    model = Toy2D()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(3.0)
    clips, labels = torch.rand(2, 4, 3, 16, 16), torch.tensor([1, 3])
    attack = TemporalAdversarialAugmentation(model, options=TRUE)
    adv_train = attack(clips, labels)
    model.eval()
    adv_eval = attack(clips, labels)
    assert not torch.equal(adv_train, adv_eval)


def test_select_targets_rule():
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]] * 500)
    labels = torch.tensor([0, 0, 2, 1] * 500)  # right, wrong, right, wrong
    gen = torch.Generator().manual_seed(0)
    targets = select_targets(logits, labels, gen)
    right = logits.argmax(1) == labels
    assert torch.equal(targets[~right], labels[~right])
    assert (targets[right] != labels[right]).all()
    assert ((targets >= 0) & (targets < 3)).all()
    # Uniform over the other classes: label 0 -> {1, 2}, label 2 -> {0, 1}, 500 draws each.
    for label, others in ((0, (1, 2)), (2, (0, 1))):
        picked = targets[right & (labels == label)]
        counts = [(picked == o).sum().item() for o in others]
        assert sum(counts) == 500 and min(counts) > 200, counts
    again = select_targets(logits, labels, torch.Generator().manual_seed(0))
    assert torch.equal(targets, again)


def test_select_targets_single_class_is_true_label():
    assert select_targets(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long)).tolist() == [0, 0, 0]


def test_attack_argument_errors():
    model = Toy2D()
    with pytest.raises(ValueError, match="steps"):
        TemporalAdversarialAugmentation(model, steps=0)
    with pytest.raises(ValueError, match="num_nonkey"):
        TemporalAdversarialAugmentation(model, num_nonkey=0)
    with pytest.raises(TypeError, match="cam_layer"):
        TemporalAdversarialAugmentation(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="labels"):
        TemporalAdversarialAugmentation(model)(torch.rand(2, 4, 3, 8, 8), torch.tensor([0]))


def test_num_nonkey_limits_the_loss_to_the_weakest_frames():
    torch.manual_seed(0)
    model = Toy2D().eval()
    clips, labels = torch.rand(2, 4, 3, 16, 16), torch.tensor([0, 1])
    full = TemporalAdversarialAugmentation(model, options=TRUE)
    one = TemporalAdversarialAugmentation(model, options=TRUE, num_nonkey=1)
    huge = TemporalAdversarialAugmentation(model, options=TRUE, num_nonkey=99)
    logits, feats, _ = full.forward_with_features(model, clips)
    l_full = full.loss(logits, feats, labels, labels)
    l_one = one.loss(logits, feats, labels, labels)
    assert l_one < l_full  # the weakest frame is below the mean of all frames
    with pytest.warns(UserWarning, match=r"N=99 exceeds the 4 frames"):
        assert torch.equal(huge.loss(logits, feats, labels, labels), l_full)


def _small_head_model() -> Toy2D:
    # A classifier head of trained-network scale: the gradients the attack needs are then far below float16's
    # smallest normal number (6e-5) once spread over frames and pixels, as in a real network at 224 px.
    torch.manual_seed(0)
    model = Toy2D(num_classes=5, num_frames=4, width=8).train()
    with torch.no_grad():
        model.fc.weight.mul_(1e-3)
    return model


@pytest.mark.parametrize("attack_cls", [TemporalAdversarialAugmentation, CrossEntropyAugmentation])
def test_attack_under_float16_autocast_matches_float32(attack_cls):
    model = _small_head_model()
    clips, labels = torch.rand(2, 4, 3, 32, 32), torch.tensor([1, 3])
    ref = attack_cls(model, generator=torch.Generator().manual_seed(0))(clips, labels) - clips
    attack = attack_cls(model, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.float16):
        half = attack(clips, labels) - clips
    assert (ref != 0).float().mean() == 1.0
    # Unscaled, TA's float16 gradient is exactly zero here and the clip comes back unchanged.
    assert (half != 0).float().mean() > 0.99
    assert (half.sign() == ref.sign()).float().mean() > 0.99


@pytest.mark.slow
def test_attack_scale_backs_off_on_overflow_and_grows_back():
    model = _small_head_model()
    clips, labels = torch.rand(2, 4, 3, 32, 32), torch.tensor([1, 3])
    ref = TemporalAdversarialAugmentation(model, generator=torch.Generator().manual_seed(0))(clips, labels) - clips
    attack = TemporalAdversarialAugmentation(model, generator=torch.Generator().manual_seed(0))
    attack.scale = 2.0**60  # overflows float16 in the backward
    with torch.autocast("cpu", dtype=torch.float16):
        adv = attack(clips, labels)
    assert torch.isfinite(adv).all()
    assert attack.scale < 2.0**60
    assert ((adv - clips).sign() == ref.sign()).float().mean() > 0.99
    attack.growth_interval = 3  # the successful step above was the first clean one
    before = attack.scale
    with torch.autocast("cpu", dtype=torch.float16):
        attack(clips, labels)
        assert attack.scale == before
        attack(clips, labels)
    assert attack.scale == 2 * before
    # float32 never touches the scale.
    attack(clips, labels)
    attack(clips, labels)
    assert attack.scale == 2 * before
