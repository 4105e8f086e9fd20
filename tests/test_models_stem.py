"""The small-input TSM variants (issue 19): a stride-16 stem and per-stage block counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from videotaf.models import build
from videotaf.models.resnet import ResNet2d, resolve_arch


def stage_sizes(net: ResNet2d, size: int) -> list[tuple[int, int]]:
    outs = net.forward_stages(torch.rand(2, 3, size, size))
    return [tuple(o.shape[-2:]) for o in outs]


def test_small_stem_halves_the_stride_at_every_stage():
    # 64 px: the ImageNet stem ends at 64/32 = 2x2, the small stem at 64/16 = 4x4; every stage doubles likewise.
    imagenet = ResNet2d(18, 0.25, stem="imagenet")
    small = ResNet2d(18, 0.25, stem="small")
    assert stage_sizes(imagenet, 64) == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert stage_sizes(small, 64) == [(32, 32), (16, 16), (8, 8), (4, 4)]
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (2, 2)
    assert isinstance(small.maxpool, nn.Identity)


def test_small_stem_keeps_every_key_but_conv1s_shape():
    a = ResNet2d(18, 0.25, stem="imagenet").state_dict()
    b = ResNet2d(18, 0.25, stem="small").state_dict()
    assert list(a) == list(b)
    differ = [k for k in a if a[k].shape != b[k].shape]
    assert differ == ["conv1.weight"]


def test_blocks_override_the_depths_counts():
    net = ResNet2d(18, 0.25, blocks=[1, 1, 2, 1])
    assert [len(getattr(net, f"layer{i}")) for i in range(1, 5)] == [1, 1, 2, 1]
    block, layers = resolve_arch(50, (1, 2, 1, 1))
    assert layers == (1, 2, 1, 1) and block.__name__ == "Bottleneck"


@pytest.mark.parametrize("blocks", [[1, 1, 1], [1, 0, 1, 1], [1, 1, 1, 1.5], [1, True, 1, 1]])
def test_bad_block_counts_are_refused(blocks):
    with pytest.raises(ValueError, match="blocks must be four integers"):
        resolve_arch(18, blocks)


def test_unknown_stem_is_refused():
    with pytest.raises(ValueError, match="stem must be one of"):
        ResNet2d(18, 0.25, stem="tiny")


def test_tsm_registry_builds_the_small_input_variant_and_its_cam_layer_is_4x4():
    model = build("tsm", num_classes=5, num_frames=4, depth=18, width=0.25, stem="small", blocks=[1, 1, 2, 1])
    seen = []
    handle = model.cam_layer.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    logits = model(torch.rand(2, 4, 3, 64, 64))
    handle.remove()
    assert logits.shape == (2, 5)
    assert seen[0][-2:] == (4, 4)
    assert sum(1 for m in model.modules() if type(m).__name__ == "BasicBlock") == 5


def test_imagenet_weights_need_the_imagenet_stem(tmp_path):
    weights = tmp_path / "resnet18.pth"
    torch.save(ResNet2d(18, 0.25).state_dict(), weights)
    with pytest.raises(ValueError, match="need stem='imagenet'"):
        build("tsm", num_classes=5, num_frames=4, depth=18, width=0.25, stem="small", imagenet_weights=str(weights))
    model = build("tsm", num_classes=5, num_frames=4, depth=18, width=0.25, imagenet_weights=str(weights))
    assert torch.equal(model.backbone.conv1.weight, torch.load(weights)["conv1.weight"])
