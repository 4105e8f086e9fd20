"""Tiny random video transformers for tests: Hugging Face VideoMAE / TimeSformer / ViViT and torchvision MViT-v2 /
Swin3D, all behind the videotaf contract (hidden size 16-32, 1-3 blocks, 32 px, 4 frames; nothing downloaded)."""

from __future__ import annotations

import re

import torch
from torch import nn
from torchvision.models.video import MViT
from torchvision.models.video.mvit import MSBlockConfig
from torchvision.models.video.swin_transformer import SwinTransformer3d

from videotaf.models.torchvision_models import _wrap

HF_KINDS = ("videomae", "timesformer", "vivit")
TV_KINDS = ("mvit", "swin3d")
ALL_KINDS = HF_KINDS + TV_KINDS
# torchvision's MViT and Swin3D take several seconds a step even tiny: their cases run with the slow tests.
HEAVY_KINDS = ("mvit", "swin3d")


def kinds(names: tuple[str, ...] | list[str] = ALL_KINDS) -> list[object]:
    """``names`` for ``pytest.mark.parametrize``, the heavy ones marked slow (CI's second step runs them)."""
    import pytest

    return [pytest.param(k, marks=pytest.mark.slow) if k in HEAVY_KINDS else k for k in names]


FRAMES, SIZE, CLASSES = 4, 32, 5


def hf_config(kind: str, layers: int = 1, attn: str = "eager", **overrides):
    import transformers as tf

    common = dict(
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=SIZE,
        num_frames=FRAMES,
        num_labels=CLASSES,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    if kind == "videomae":
        cfg = tf.VideoMAEConfig(patch_size=8, tubelet_size=2, **common, **overrides)
    elif kind == "timesformer":
        cfg = tf.TimesformerConfig(patch_size=8, **common, **overrides)
    elif kind == "vivit":
        cfg = tf.VivitConfig(tubelet_size=[2, 8, 8], **common, **overrides)
    else:
        raise ValueError(kind)
    cfg._attn_implementation = attn
    return cfg


def hf_net(kind: str, layers: int = 1, attn: str = "eager", **overrides) -> nn.Module:
    import transformers as tf

    cls = {
        "videomae": tf.VideoMAEForVideoClassification,
        "timesformer": tf.TimesformerForVideoClassification,
        "vivit": tf.VivitForVideoClassification,
    }[kind]
    return cls._from_config(hf_config(kind, layers, attn, **overrides), attn_implementation=attn)


def tiny_mvit():
    setting = [
        MSBlockConfig(1, 16, 16, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 2, 2]),
        MSBlockConfig(2, 16, 32, [3, 3, 3], [3, 3, 3], [1, 2, 2], [1, 1, 1]),
        MSBlockConfig(2, 32, 32, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 1, 1]),
    ]
    net = MViT(
        spatial_size=(SIZE, SIZE),
        temporal_size=FRAMES,
        block_setting=setting,
        residual_pool=True,
        residual_with_cls_embed=False,
        rel_pos_embed=True,
        proj_after_attn=True,
        dropout=0.0,
        stochastic_depth_prob=0.0,
        num_classes=400,
    )
    return _wrap("mvit_v2_s", CLASSES, FRAMES, net, None)


def tiny_swin3d():
    net = SwinTransformer3d(
        patch_size=[2, 4, 4],
        embed_dim=16,
        depths=[1, 1],
        num_heads=[1, 2],
        window_size=[2, 4, 4],
        stochastic_depth_prob=0.0,
        num_classes=400,
    )
    return _wrap("swin3d_t", CLASSES, FRAMES, net, None)


def tiny(kind: str, layers: int = 1, attn: str = "eager", **overrides) -> nn.Module:
    """A tiny videotaf model of ``kind`` (one of :data:`ALL_KINDS`), random weights, seeded by the caller."""
    from videotaf.models import from_hf

    if kind == "mvit":
        return tiny_mvit()
    if kind == "swin3d":
        return tiny_swin3d()
    return from_hf(hf_net(kind, layers, attn, **overrides))


def cam_grid(kind: str) -> tuple[int, int, int]:
    """(T', h, w) of the CAM maps of :func:`tiny` models."""
    return {"mvit": (2, 4, 4), "swin3d": (2, 4, 4), "timesformer": (4, 4, 4)}.get(kind, (2, 4, 4))


def expected_position(kind: str, frame: int, y: int, x: int) -> tuple[int, int, int]:
    """Where a single input pixel lands in the CAM maps of a :func:`tiny` model (the patch holding it)."""
    if kind == "timesformer":
        return frame, y // 8, x // 8
    return frame // 2, y // 8, x // 8  # tubelet 2 x 8 px (MViT: 2x4 patch embedding, one x2 pooling stage)


_KEEP = re.compile(
    r"(conv_proj\.weight|patch_embed\.proj\.weight|patch_embeddings\.projection\.weight"
    r"|blocks\.\d+(\.block)?\.project\.weight|reduction\.weight)$"
)


def make_local(model: nn.Module) -> nn.Module:
    """Zero every parameter but the patch embedding, the LayerNorm scales and the channel projections of the
    residual paths (MViT's skip projection, Swin's patch merging): every attention and MLP branch then adds zero,
    so a token only ever depends on its own patch and the CAM maps show where each input patch ends up."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            if _KEEP.search(name) or (isinstance(owner, nn.LayerNorm) and name.endswith("weight")):
                continue
            p.zero_()
        for m in model.modules():
            pos = getattr(m, "position_embeddings", None)
            if isinstance(pos, torch.Tensor) and not isinstance(pos, nn.Parameter):
                pos.zero_()  # VideoMAE's fixed sinusoidal table is a plain tensor attribute
    return model
