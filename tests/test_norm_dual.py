"""Dual normalisation beyond BatchNorm (Sec. 3.3 on video transformers): auxiliary LayerNorm/GroupNorm copies with
the dual-BN contract (identity before training, routing, strip), the default kinds, and the no-split warning."""

from __future__ import annotations

import copy
import io
import pickle
import warnings

import pytest
import torch
from torch import nn

from tiny_transformers import FRAMES, SIZE, kinds, tiny
from videotaf.bn import (
    AUX_NAME,
    adversarial_path,
    convert_dual_bn,
    convert_dual_norm,
    dual_norm_kinds,
    has_dual_bn,
    has_dual_norm,
    resolve_kinds,
    strip_dual_bn,
    strip_dual_norm,
)
from videotaf.engine.checkpoint import strip_aux_keys
from videotaf.models.base import VideoClassifier
from videotaf.objective import build_objective

from toy_models import Toy2D


class TokenToy(VideoClassifier):
    """A pre-norm token mixer: LayerNorm (one without affine parameters), GroupNorm, no BatchNorm."""

    def __init__(self, num_classes: int = 5, num_frames: int = 4, width: int = 8) -> None:
        super().__init__(num_classes, num_frames)
        self.embed = nn.Linear(3 * 4 * 4, width)
        self.norm1 = nn.LayerNorm(width)
        self.mix = nn.Linear(width, width)
        self.gn = nn.GroupNorm(2, width)
        self.plain = nn.LayerNorm(width, elementwise_affine=False)
        self.fc = nn.Linear(width, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.mix

    @property
    def classifier(self) -> nn.Module:
        return self.fc

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        b, t = clips.shape[:2]
        x = nn.functional.pixel_unshuffle(clips.flatten(0, 1), 4).flatten(2).transpose(1, 2)  # (B*T, hw, 48)
        x = self.embed(x)
        x = x + self.mix(self.norm1(x))
        x = self.gn(x.transpose(1, 2)).transpose(1, 2)
        return self.fc(self.plain(x).mean(1)).view(b, t, -1).mean(1)


def _perturb_aux(model: nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, AUX_NAME):
                for p in getattr(m, AUX_NAME).parameters():
                    p.add_(torch.randn_like(p) * 0.3)


@pytest.mark.parametrize("kind", ["token_toy", *kinds()])
def test_clean_path_bit_identical_and_adversarial_path_starts_equal(kind):
    torch.manual_seed(0)
    original = TokenToy() if kind == "token_toy" else tiny(kind)
    converted = convert_dual_norm(copy.deepcopy(original))
    assert dual_norm_kinds(converted) == (("layernorm", "groupnorm") if kind == "token_toy" else ("layernorm",))
    clips = torch.rand(2, FRAMES, 3, SIZE, SIZE) if kind != "token_toy" else torch.rand(2, 4, 3, 16, 16)
    for train in (False, True):
        original.train(train)
        converted.train(train)
        ref = original(clips)
        assert torch.equal(ref, converted(clips))
        with adversarial_path(converted):
            assert torch.equal(ref, converted(clips))


def test_keys_kept_aux_added_then_stripped_and_checkpoint_code_sees_them():
    model = TokenToy()
    keys = list(model.state_dict())
    convert_dual_norm(model)
    dual_keys = list(model.state_dict())
    assert [k for k in dual_keys if f".{AUX_NAME}." not in k] == keys
    # Affine-free layers have nothing to copy; the others copy their weight and bias.
    assert sorted(k for k in dual_keys if f".{AUX_NAME}." in k) == [
        "gn.aux_bn.bias",
        "gn.aux_bn.weight",
        "norm1.aux_bn.bias",
        "norm1.aux_bn.weight",
    ]
    assert type(model.plain) is nn.LayerNorm
    assert has_dual_bn(model) and has_dual_norm(model)  # the checkpoint's "dual_bn" flag
    assert list(strip_aux_keys(model.state_dict())) == keys  # export / load_model drop the copies
    strip_dual_norm(model)
    assert list(model.state_dict()) == keys
    assert type(model.norm1) is nn.LayerNorm and type(model.gn) is nn.GroupNorm and not has_dual_norm(model)
    assert strip_dual_bn is strip_dual_norm


@pytest.mark.parametrize("kind", ["token_toy", "vivit", "swin3d"])
def test_adversarial_path_routes_through_the_copies_only(kind):
    torch.manual_seed(0)
    model = convert_dual_norm(TokenToy() if kind == "token_toy" else tiny(kind)).eval()
    clips = torch.rand(2, 4, 3, 16, 16) if kind == "token_toy" else torch.rand(2, FRAMES, 3, SIZE, SIZE)
    clean = model(clips)
    _perturb_aux(model)
    assert torch.equal(model(clips), clean)  # the clean path never reads the copies
    with adversarial_path(model):
        adv = model(clips)
    assert not torch.allclose(adv, clean)
    assert all(not m.use_aux for m in model.modules() if hasattr(m, "use_aux"))  # restored on exit
    # The adversarial path is the original network carrying the copies' parameters.
    reference = strip_dual_norm(copy.deepcopy(model))
    named = dict(reference.named_modules())
    for name, m in model.named_modules():
        if hasattr(m, AUX_NAME):
            named[name].load_state_dict(getattr(m, AUX_NAME).state_dict())
    assert torch.allclose(reference(clips), adv, atol=1e-6)


def test_taf_step_trains_both_paths_of_a_layernorm_model():
    torch.manual_seed(0)
    model = convert_dual_norm(tiny("videomae")).train()
    build_objective("taf").step(model, torch.rand(2, FRAMES, 3, SIZE, SIZE), torch.tensor([0, 3]))
    ln = model.net.videomae.encoder.layer[0].layernorm_before
    assert ln.weight.grad.abs().sum() > 0 and ln.aux_bn.weight.grad.abs().sum() > 0
    assert not torch.equal(ln.weight.grad, ln.aux_bn.weight.grad)


def test_default_kinds_use_whatever_the_model_has():
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(3)
            self.ln = nn.LayerNorm(3)

    assert resolve_kinds(Toy2D()) == ("batchnorm",)
    assert resolve_kinds(TokenToy()) == ("layernorm", "groupnorm")
    mixed = convert_dual_norm(Mixed())  # BatchNorm present: the paper's dual BN only, exactly as before
    assert dual_norm_kinds(mixed) == ("batchnorm",) and type(mixed.ln) is nn.LayerNorm
    both = convert_dual_norm(Mixed(), ["layernorm", "batchnorm"])
    assert dual_norm_kinds(both) == ("batchnorm", "layernorm")
    with pytest.warns(UserWarning, match="no batchnorm"):
        bn_only = convert_dual_bn(TokenToy())  # the BatchNorm-era name converts BatchNorm only
    assert not has_dual_norm(bn_only)
    # A BatchNorm model converts exactly as convert_dual_bn did: same keys, same classes.
    a, b = convert_dual_norm(Toy2D()), convert_dual_bn(Toy2D())
    assert list(a.state_dict()) == list(b.state_dict())
    assert [type(m) for m in a.modules()] == [type(m) for m in b.modules()]
    with pytest.raises(ValueError, match="unknown normalisation kind"):
        convert_dual_norm(TokenToy(), "rmsnorm")


def test_model_declared_kinds_and_opt_out():
    model = TokenToy()
    model.dual_norm_kinds = ("groupnorm",)
    assert dual_norm_kinds(convert_dual_norm(model)) == ("groupnorm",)
    shared = TokenToy()
    shared.dual_norm_kinds = ()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit opt-out is not warned about
        convert_dual_norm(shared)
        convert_dual_norm(TokenToy(), "none")
        with adversarial_path(shared):  # nothing to route, nothing missing
            pass
    assert not has_dual_norm(shared)


def test_no_layer_to_split_warns_naming_the_model():
    class NoNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

    with pytest.warns(UserWarning, match="NoNorm has no layernorm/groupnorm layer"):
        convert_dual_norm(NoNorm())
    with pytest.warns(UserWarning, match="TokenToy has no batchnorm layer"):
        convert_dual_bn(TokenToy())
    model = convert_dual_norm(TokenToy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert_dual_norm(model)  # already converted: idempotent and silent
    assert all(not hasattr(getattr(m, AUX_NAME), AUX_NAME) for m in model.modules() if hasattr(m, AUX_NAME))


def test_adversarial_path_requires_conversion_of_layernorm_models():
    with pytest.raises(ValueError, match="layernorm.*convert_dual_norm"):
        with adversarial_path(TokenToy()):
            pass
    with pytest.raises(ValueError, match="convert_dual_norm"):
        build_objective("taf").step(tiny("vivit"), torch.rand(2, FRAMES, 3, SIZE, SIZE), torch.tensor([0, 1]))
    model = convert_dual_norm(TokenToy())
    model.extra = nn.LayerNorm(8)  # added after the conversion: partly converted
    with pytest.raises(ValueError, match="next to converted"):
        with adversarial_path(model):
            pass


def test_layernorm_copies_pickle_and_deepcopy():
    model = convert_dual_norm(tiny("timesformer"))
    buf = io.BytesIO()
    torch.save(model, buf)
    again = pickle.loads(pickle.dumps(model))
    assert has_dual_norm(again) and has_dual_norm(copy.deepcopy(model))
    clips = torch.rand(1, FRAMES, 3, SIZE, SIZE)
    model.eval()
    again.eval()
    assert torch.equal(model(clips), again(clips))
