"""Dual BatchNorm (Sec. 3.3): identity before training, auxiliary routing, strip, 1-D/2-D/3-D and SyncBN."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn

from videotaf.bn import adversarial_path, bn_buffers, convert_dual_bn, has_dual_bn, strip_dual_bn

from toy_models import Toy2D, Toy3D


@pytest.mark.parametrize("model_cls", [Toy2D, Toy3D])
def test_clean_path_bit_identical_before_training(model_cls):
    torch.manual_seed(0)
    original = model_cls()
    converted = convert_dual_bn(copy.deepcopy(original))
    clips = torch.rand(2, 4, 3, 16, 16)
    # The adversarial path starts as a copy too (checked before any training forward moves the statistics).
    with adversarial_path(converted.eval()):
        assert torch.equal(original.eval()(clips), converted(clips))
    for train in (False, True, False):
        original.train(train)
        converted.train(train)
        assert torch.equal(original(clips), converted(clips))


def test_state_dict_keys_kept_and_aux_added_then_stripped():
    model = Toy2D()
    keys = list(model.state_dict())
    convert_dual_bn(model)
    dual_keys = list(model.state_dict())
    assert [k for k in dual_keys if ".aux_bn." not in k] == keys
    assert {k.replace(".aux_bn", "") for k in dual_keys if ".aux_bn." in k} == {
        k for k in keys if k.startswith(("stem.1", "block.1"))
    }
    strip_dual_bn(model)
    assert list(model.state_dict()) == keys
    assert type(model.stem[1]) is nn.BatchNorm2d and not has_dual_bn(model)


def test_auxiliary_path_uses_and_updates_only_auxiliary_statistics():
    torch.manual_seed(0)
    model = convert_dual_bn(Toy3D())
    bn = model.stem[1]
    main_before = bn.running_mean.clone()
    clips = torch.rand(2, 4, 3, 16, 16)
    with adversarial_path(model):
        model(clips + 0.3)  # training mode: updates the auxiliary running statistics only
    assert torch.equal(bn.running_mean, main_before)
    assert not torch.equal(bn.aux_bn.running_mean, main_before)
    assert bn.use_aux is False  # restored after the context

    model.eval()
    clean = model(clips)
    with adversarial_path(model):
        adv = model(clips)
    assert not torch.equal(clean, adv)
    # The adversarial path equals the original network carrying the auxiliary statistics.
    reference = strip_dual_bn(copy.deepcopy(model))
    for name, m in model.named_modules():
        if hasattr(m, "aux_bn"):
            dict(reference.named_modules())[name].load_state_dict(m.aux_bn.state_dict())
    assert torch.allclose(reference.eval()(clips), adv)


def test_batchnorm1d_and_syncbn_and_custom_subclass():
    class BNReLU(nn.BatchNorm1d):
        def forward(self, x):
            return torch.relu(super().forward(x))

    sync = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.Unflatten(1, (3, 1, 1)), nn.BatchNorm2d(3)))
    net = nn.Sequential(nn.Sequential(nn.Linear(4, 6), BNReLU(6), nn.Linear(6, 3), nn.BatchNorm1d(3)), sync)
    convert_dual_bn(net)
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"DualBNReLU", "DualSyncBatchNorm"} <= kinds
    net.eval()
    x = torch.randn(5, 4)
    out = net(x)
    assert (net[0][1](net[0][0](x)) >= 0).all()  # the subclass keeps its activation
    with adversarial_path(net):
        assert torch.equal(net(x), out)  # copies start equal
    assert len(bn_buffers(net)) == 2 * 2 * 3  # mean and var of 3 BNs, main and auxiliary


def test_convert_is_idempotent_and_copies_are_pickleable():
    model = convert_dual_bn(convert_dual_bn(Toy2D()))
    assert all(not hasattr(m.aux_bn, "aux_bn") for m in model.modules() if hasattr(m, "aux_bn"))
    buf = io.BytesIO()
    torch.save(model, buf)
    assert has_dual_bn(pickle.loads(pickle.dumps(model)))


def test_adversarial_path_requires_conversion_but_not_for_bn_free_models():
    with pytest.raises(ValueError, match="convert_dual_bn"):
        with adversarial_path(Toy2D()):
            pass
    bn_free = Toy2D(bn=False)
    with adversarial_path(bn_free):
        pass
