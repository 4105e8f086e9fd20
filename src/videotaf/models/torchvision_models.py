"""Wrappers around torchvision's video classifiers (built with ``weights=None``; nothing downloads).

Clips ``(B, T, 3, H, W)`` in [0, 1] are normalised with the mean/std torchvision's own Kinetics transforms use
for each model, then permuted to torchvision's ``(B, 3, T, H, W)``. The final layer is replaced by a
``num_classes`` one after an optional local state dict (``weights=path``, the 400-class Kinetics file) is loaded.

``cam_layer`` gives ``(B, C, T', h, w)``:
- r3d_18 / mc3_18 / r2plus1d_18: ``layer4`` (T' = T/8 for r3d and r(2+1)d, T for mc3);
- s3d: ``features`` (T' = T/8);
- mvit_v2_s / swin3d_t: an identity :class:`~videotaf.models.tokens.TokenMapTap` on the tokens folded into maps
  (:mod:`videotaf.models.tokens`). MViT's logits come from the class token only, so the tap sits at the input of
  the last block (where attention still mixes the patch tokens into the class token), class token dropped, tokens
  in (T', h, w) order; Swin3D's ``features`` output is already a channels-last grid (B, T', h, w, C), tapped
  after a permute.

Neither has BatchNorm: ``convert_dual_norm`` (the default of ``--method taf``) gives their LayerNorms an
auxiliary copy.
"""

from __future__ import annotations

from typing import Any

import torch
import torchvision
from torch import nn
from torchvision.models.video import MViT
from torchvision.models.video.mvit import MSBlockConfig

from videotaf.models.base import VideoClassifier
from videotaf.models.layers.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from videotaf.models.registry import register_model
from videotaf.models.tokens import TokenMapTap, maps_to_tokens, tokens_to_maps
from videotaf.models.weights import ReferenceAccuracy, WeightsInfo, read_state_dict, register_weights, weights_info

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
KINETICS_MEAN_45 = (0.45, 0.45, 0.45)
KINETICS_STD_225 = (0.225, 0.225, 0.225)


class _ClipAvgPool(nn.Module):
    """S3D's AvgPool3d (2, 7, 7) stride 1, with the kernel clipped to the input size so small clips work.
    At 224 px this is exactly torchvision's pooling."""

    def __init__(self, kernel: tuple[int, int, int] = (2, 7, 7)) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = tuple(min(k, s) for k, s in zip(self.kernel, x.shape[2:]))
        return nn.functional.avg_pool3d(x, k, stride=1)


class _TappedMViTBlock(nn.Module):
    """Runs the last MViT block after passing the patch tokens through a :class:`TokenMapTap` as maps."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        self.tap = TokenMapTap()

    def forward(self, x: torch.Tensor, thw: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[int, int, int]]:
        # The class token is dropped from the maps; MViT's patch tokens are frame-major, (T', h, w).
        cls, maps = tokens_to_maps(x, thw, prefix=1, order="thw")
        return self.block(maps_to_tokens(cls, self.tap(maps), order="thw"), thw)


class _TappedNorm(nn.Module):
    """Swin3d: ``features`` output ``(B, T', h, w, C)`` -> tap as ``(B, C, T', h, w)`` -> back -> norm."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.tap = TokenMapTap()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.tap(x.permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1))


def _mvit_v2_s(num_frames: int, image_size: int, stochastic_depth_prob: float) -> MViT:
    """MViT-v2-S with torchvision's block table but the positional tables sized for ``num_frames`` x
    ``image_size`` (torchvision's builder pins them to 16 x 224)."""
    # Stage layout of MViT-v2-S: 16 blocks, pooling at blocks 1, 3 and 14 (channels 96->192->384->768).
    stage = [0] + [1] * 2 + [2] * 11 + [3] * 2
    channels = (96, 192, 384, 768)
    heads = (1, 2, 4, 8)
    kv = (8, 4, 2, 1)
    setting = []
    for i, s in enumerate(stage):
        first = i > 0 and stage[i - 1] != s
        cin, cout = channels[stage[i - 1] if i else 0], channels[s]
        setting.append(
            MSBlockConfig(
                num_heads=heads[s],
                input_channels=cin,
                output_channels=cout,
                kernel_q=[3, 3, 3],
                kernel_kv=[3, 3, 3],
                stride_q=[1, 2, 2] if first else [1, 1, 1],
                stride_kv=[1, kv[s], kv[s]],
            )
        )
    return MViT(
        spatial_size=(image_size, image_size),
        temporal_size=num_frames,
        block_setting=setting,
        residual_pool=True,
        residual_with_cls_embed=False,
        rel_pos_embed=True,
        proj_after_attn=True,
        stochastic_depth_prob=stochastic_depth_prob,
    )


class TorchvisionVideo(VideoClassifier):
    """A torchvision video classifier behind the videotaf contract (see the module docstring)."""

    def __init__(self, name: str, num_classes: int, num_frames: int, net: nn.Module, mean, std) -> None:
        super().__init__(num_classes, num_frames)
        self.arch = name
        self.normalize = Normalize(mean, std)
        self.net = net
        self._cam: nn.Module
        self._fc_path: str

    def _replace_head(self, path: str, in_features: int) -> None:
        parent = self.net
        *parents, last = path.split(".")
        for p in parents:
            parent = getattr(parent, p)
        fc = nn.Linear(in_features, self.num_classes)
        nn.init.normal_(fc.weight, 0.0, 0.001)
        nn.init.zeros_(fc.bias)
        setattr(parent, last, fc)
        self._fc_path = path

    @property
    def cam_layer(self) -> nn.Module:
        return self._cam

    @property
    def classifier(self) -> nn.Module:
        return self.net.get_submodule(self._fc_path)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.check_input(clips)
        return self.net(self.normalize(clips).transpose(1, 2))


def _load_local(net: nn.Module, weights: str | None, name: str) -> None:
    if weights is None:
        return

    sd = read_state_dict(weights)
    result = net.load_state_dict(sd, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{weights}: not a torchvision {name} state dict; missing keys: {result.missing_keys}; "
            f"unexpected keys: {result.unexpected_keys}"
        )


def _wrap(name: str, num_classes: int, num_frames: int, net: Any, weights: str | None) -> TorchvisionVideo:
    # ``net`` is typed Any: each torchvision architecture names its head and CAM layer differently.
    _load_local(net, weights, name)
    # One normalisation per architecture, the one its Kinetics weights were trained with (their WeightsInfo).
    info = weights_info(f"tv_{name}_kinetics400")
    model = TorchvisionVideo(name, num_classes, num_frames, net, info.mean, info.std)
    if name in ("r3d_18", "mc3_18", "r2plus1d_18"):
        model._replace_head("fc", net.fc.in_features)
        model._cam = net.layer4
    elif name == "s3d":
        conv = net.classifier[1]
        head = nn.Conv3d(conv.in_channels, num_classes, 1, bias=True)
        nn.init.normal_(head.weight, 0.0, 0.001)
        if head.bias is not None:  # always, with bias=True; the check is for the type checker
            nn.init.zeros_(head.bias)
        net.classifier[1] = head
        model._fc_path = "classifier.1"
        net.avgpool = _ClipAvgPool()
        model._cam = net.features
    elif name == "mvit_v2_s":
        model._replace_head("head.1", net.head[1].in_features)
        net.blocks[-1] = _TappedMViTBlock(net.blocks[-1])
        model._cam = net.blocks[-1].tap
    elif name == "swin3d_t":
        model._replace_head("head", net.head.in_features)
        net.norm = _TappedNorm(net.norm)
        model._cam = net.norm.tap
    return model


def _kinetics(  # size: one parameter per WeightsInfo field it fills
    arch: str, frames: int, scale: int, crop: int, mean: Any, std: Any, top1: float, cam: str, **kw: Any
) -> WeightsInfo:
    """The torchvision Kinetics-400 weights of ``arch``, as torchvision's ``Weights.KINETICS400_V1`` describes them
    (``meta`` and ``transforms()``; the file is given as the model's ``weights`` option, never downloaded)."""
    return register_weights(
        WeightsInfo(
            name=f"tv_{arch}_kinetics400",
            model=f"tv_{arch}",
            key_scheme="torchvision",
            num_frames=frames,
            mean=mean,
            std=std,
            scale_size=scale,
            crop_size=crop,
            cam_layer=cam,
            source="torchvision.models.video (KINETICS400_V1)",
            reference=(ReferenceAccuracy("Kinetics-400", frames, top1, kw.pop("protocol")),),
            **kw,
        )
    )


_RESNET3D: dict[str, Any] = dict(scale=128, crop=112, mean=KINETICS_MEAN, std=KINETICS_STD, cam="net.layer4")
_VIDEO_LEVEL = "video level, 5 clips"  # torchvision: clips_per_video=5
_NOT_SQUARE = "torchvision resizes to 128x171 (H x W) before the 112 crop"
# registry name -> (torchvision builder, weights family); MViT takes options of its own (below).
_TORCHVISION = {
    "tv_r3d_18": (
        torchvision.models.video.r3d_18,
        _kinetics("r3d_18", 16, **_RESNET3D, top1=63.2, protocol=_VIDEO_LEVEL, note=_NOT_SQUARE),
    ),
    "tv_mc3_18": (
        torchvision.models.video.mc3_18,
        _kinetics("mc3_18", 16, **_RESNET3D, top1=63.96, protocol=_VIDEO_LEVEL, note=_NOT_SQUARE),
    ),
    "tv_r2plus1d_18": (
        torchvision.models.video.r2plus1d_18,
        _kinetics("r2plus1d_18", 16, **_RESNET3D, top1=67.463, protocol=_VIDEO_LEVEL, note=_NOT_SQUARE),
    ),
    "tv_s3d": (
        torchvision.models.video.s3d,
        _kinetics(
            "s3d",
            128,
            256,
            224,
            KINETICS_MEAN,
            KINETICS_STD,
            68.368,
            "net.features",
            protocol="clip level, 1 clip of 128 frames",
            note="torchvision resizes to 256x256 (squashed) before the crop",
        ),
    ),
    "tv_swin3d_t": (
        torchvision.models.video.swin3d_t,
        _kinetics(
            "swin3d_t",
            32,
            256,
            224,
            IMAGENET_MEAN,
            IMAGENET_STD,
            77.715,
            "net.norm.tap",
            protocol="video level, 12 clips",
        ),
    ),
}
_kinetics(
    "mvit_v2_s",
    16,
    256,
    224,
    KINETICS_MEAN_45,
    KINETICS_STD_225,
    80.757,
    "net.blocks.15.tap",
    protocol=_VIDEO_LEVEL,
)


def _factory(name: str, builder: Any) -> Any:
    def factory(num_classes: int, num_frames: int, weights: str | None = None) -> TorchvisionVideo:
        return _wrap(name.removeprefix("tv_"), num_classes, num_frames, builder(weights=None), weights)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"torchvision {name.removeprefix('tv_')}; ``weights``: local Kinetics-400 state dict loaded before the new head."
    return factory


for _name, (_builder, _) in _TORCHVISION.items():
    register_model(_name)(_factory(_name, _builder))


@register_model("tv_mvit_v2_s")
def tv_mvit_v2_s(
    num_classes: int,
    num_frames: int,
    image_size: int = 224,
    stochastic_depth_prob: float = 0.2,
    weights: str | None = None,
) -> TorchvisionVideo:
    """torchvision MViT-v2-S sized for ``num_frames`` x ``image_size`` (the relative-position tables depend on
    it, so a Kinetics state dict loads only for 16 x 224)."""
    net = _mvit_v2_s(num_frames, image_size, stochastic_depth_prob)
    return _wrap("mvit_v2_s", num_classes, num_frames, net, weights)
