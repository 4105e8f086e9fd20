"""Hugging Face ``transformers`` video classifiers behind the videotaf contract: VideoMAE, TimeSformer, ViViT.

:func:`from_hf` wraps a ``*ForVideoClassification`` model; the registered model ``"hf"`` loads one from a local
directory (``from_pretrained(path)``, nothing is downloaded) for the CLI::

    model: {name: hf, num_classes: 174, num_frames: 16, options: {path: /models/videomae-base-ssv2}}

What the wrapper adds (:mod:`videotaf.models.base`):

- clips ``(B, T, 3, H, W)`` in [0, 1] are normalised with the image processor's mean/std (arguments; defaults:
  the model type's processor, or the directory's ``preprocessor_config.json`` for ``"hf"``) and passed as
  ``pixel_values`` in the same ``(B, T, C, H, W)`` layout, which all three models take;
- ``cam_layer``: the :class:`~videotaf.models.tokens.TokenMapTap` of a :class:`~videotaf.models.tokens.TokenFold`
  hooked on the last encoder layer, giving ``(B, C, T', h, w)`` with ``T'`` = frames / tubelet size:

  ============  ========================  ==========  ============  ========================================
  model         tokens of the last layer  prefix      patch order   fold at
  ============  ========================  ==========  ============  ========================================
  VideoMAE      T'*h*w (tubelet t, p, p)  none        (T', h, w)    last layer's output (mean pooling);
                                                                    its input without mean pooling
  TimeSformer   1 + T*h*w                 class       (h, w, T)     last layer's input (class-token head)
  ViViT         1 + T'*h*w                class       (T', h, w)    last layer's input (class-token head)
  ============  ========================  ==========  ============  ========================================

  A classifier that reads the class token gets nothing from the patch tokens of the last layer's output, so the
  fold sits at that layer's input, where attention still mixes them into the class token (as for MViT);
- ``classifier``: the model's ``classifier`` Linear.

The network's own module tree and ``state_dict`` keys are untouched (the fold is a forward hook, the wrapper adds
the prefix ``net.``), so ``unwrap_state_dict(model.state_dict())`` loads back into the Hugging Face model. These
models have LayerNorm only: TAF's adversarial path gets auxiliary LayerNorms (``videotaf.bn``, ``kinds="auto"``;
``dual_norm="none"`` keeps them shared).

``transformers`` is an optional dependency (``pip install videotaf[hf]``), imported only when a model is built.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from videotaf.models.base import NORM_KIND_NAMES, VideoClassifier
from videotaf.models.layers.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from videotaf.models.registry import register_model
from videotaf.models.tokens import TokenFold, TokenOrder, Where

SUPPORTED = ("videomae", "timesformer", "vivit")

# The processors' defaults expressed on [0, 1] pixels. ViViT's processor rescales to [-1, 1] (x * 2 - 1) and then
# normalises with mean = std = 0.5, i.e. (x - 0.75) / 0.25 on [0, 1] pixels.
DEFAULT_MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "videomae": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "timesformer": (IMAGENET_MEAN, IMAGENET_STD),
    "vivit": ((0.75, 0.75, 0.75), (0.25, 0.25, 0.25)),
}


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(
            "Hugging Face models need the optional dependency transformers: pip install 'videotaf[hf]'"
        ) from exc
    return transformers


@dataclass(frozen=True)
class TokenLayout:
    """Where the per-frame maps of a Hugging Face video transformer are and how its tokens are laid out."""

    prefix: int  # leading non-patch tokens (class token)
    order: TokenOrder  # order of the patch tokens
    tubelet: int  # frames per temporal patch
    patch: tuple[int, int]  # pixels per spatial patch (h, w)
    where: Where  # fold the last encoder layer's input or output


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


def token_layout(config: Any) -> TokenLayout:
    """The :class:`TokenLayout` of a ``transformers`` config (VideoMAE, TimeSformer or ViViT).

    Raises:
        TypeError: for another model type, or TimeSformer's ``space_only`` attention (its classification head
            does not return one row per clip).
    """
    kind = getattr(config, "model_type", None)
    if kind == "videomae":
        where: Where = "output" if getattr(config, "use_mean_pooling", True) else "input"
        return TokenLayout(0, "thw", int(config.tubelet_size), _pair(config.patch_size), where)
    if kind == "timesformer":
        if config.attention_type == "space_only":
            raise TypeError("TimeSformer with attention_type='space_only' is not supported (one logit row per frame)")
        return TokenLayout(1, "hwt", 1, _pair(config.patch_size), "input")
    if kind == "vivit":
        t, ph, pw = (int(v) for v in config.tubelet_size)
        return TokenLayout(1, "thw", t, (ph, pw), "input")
    raise TypeError(f"model type {kind!r} is not supported; supported: {', '.join(SUPPORTED)}")


class HFVideoModel(VideoClassifier):
    """A Hugging Face ``*ForVideoClassification`` model behind the videotaf contract (see :func:`from_hf`)."""

    def __init__(
        self,
        net: nn.Module,
        num_frames: int,
        mean: Sequence[float],
        std: Sequence[float],
        dual_norm: str | Sequence[str] = "auto",
    ) -> None:
        # transformers is an optional dependency and untyped here: its config is read attribute by attribute.
        config: Any = net.config
        super().__init__(int(config.num_labels), num_frames)
        layout = token_layout(config)
        if num_frames % layout.tubelet:
            raise ValueError(f"num_frames={num_frames} is not a multiple of the tubelet size {layout.tubelet}")
        size = _pair(config.image_size)
        grid = (num_frames // layout.tubelet, size[0] // layout.patch[0], size[1] // layout.patch[1])
        _check_dual_norm(dual_norm)
        self.arch = str(config.model_type)
        self.layout = layout
        self.normalize = Normalize(mean, std)
        self.net = net
        # Not a submodule of ``net``: the network's state_dict keys stay Hugging Face's own.
        self.fold = TokenFold(grid, layout.prefix, layout.order)
        self.fold.attach(encoder_layers(net)[-1], layout.where)
        self.dual_norm_kinds = (
            None if dual_norm == "auto" else (dual_norm if isinstance(dual_norm, str) else tuple(dual_norm))
        )

    @property
    def cam_layer(self) -> nn.Module:
        return self.fold.tap

    @property
    def classifier(self) -> nn.Module:
        head = self.net.get_submodule("classifier")
        return head

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.check_frames(clips)
        out = self.net(pixel_values=self.normalize(clips))
        logits: torch.Tensor = out.logits if hasattr(out, "logits") else out[0]
        return logits


def _check_dual_norm(dual_norm: str | Sequence[str]) -> None:
    names = {dual_norm} if isinstance(dual_norm, str) else set(dual_norm)
    unknown = sorted(names - {"auto", "none", *NORM_KIND_NAMES})
    if unknown:
        raise ValueError(f"dual_norm: unknown kind(s) {unknown}; choose from 'auto', 'none', {list(NORM_KIND_NAMES)}")


# Where the layer list lives differs between models and transformers versions (ViViT: encoder.layer in 4.x, layers
# in 5.x).
_LAYER_PATHS = ("encoder.layer", "encoder.layers", "layers", "layer")


def encoder_layers(net: nn.Module) -> nn.ModuleList:
    """The transformer layers of a Hugging Face video classifier (``<base model>.encoder.layer`` or ``.layers``)."""
    base: Any = net.base_model
    for path in _LAYER_PATHS:
        try:
            layers = base.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return layers
    raise TypeError(
        f"{type(net).__name__} has no transformer layer list ({', '.join(_LAYER_PATHS)}) to take per-frame maps from"
    )


def from_hf(
    model: nn.Module,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    num_frames: int | None = None,
    tubelet_size: int | None = None,
    dual_norm: str | Sequence[str] = "auto",
) -> HFVideoModel:
    """Wrap a ``transformers`` ``VideoMAEForVideoClassification``, ``TimesformerForVideoClassification`` or
    ``VivitForVideoClassification`` so that TA (Eq. 2-6) and TAF (Eq. 7) run on it.

    Args:
        model: the Hugging Face model; it takes ``pixel_values`` ``(B, T, C, H, W)``, already normalised.
        mean, std: its image processor's normalisation on [0, 1] pixels (``None``: the processor defaults of its
            model type, :data:`DEFAULT_MEAN_STD`; give both or neither).
        num_frames: clip length ``T`` (default and only accepted value: ``config.num_frames``, which the model's
            position embeddings are sized for).
        tubelet_size: frames per temporal patch (default and only accepted value: the config's; 1 for
            TimeSformer).
        dual_norm: normalisation kinds TAF's adversarial path splits (``videotaf.bn``): ``"auto"`` (LayerNorm),
            ``"none"`` (shared), or kind names.

    Returns:
        An :class:`HFVideoModel` taking ``(B, T, 3, H, W)`` clips in [0, 1], with ``cam_layer`` output
        ``(B, C, T / tubelet, H / patch, W / patch)``. The wrapped model is ``.net`` (not copied).
    """
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "base_model"):
        raise TypeError(f"expected a transformers *ForVideoClassification model, got {type(model).__name__}")
    layout = token_layout(config)
    if tubelet_size is not None and tubelet_size != layout.tubelet:
        raise ValueError(f"tubelet_size={tubelet_size} but the {config.model_type} config has {layout.tubelet}")
    frames = int(config.num_frames)
    if num_frames is not None and num_frames != frames:
        raise ValueError(
            f"num_frames={num_frames} but this {config.model_type} model was built for {frames} frames "
            "(config.num_frames; its position embeddings are sized for it)"
        )
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is None or std is None:
        mean, std = DEFAULT_MEAN_STD[config.model_type]
    return HFVideoModel(model, frames, mean, std, dual_norm)


def processor_mean_std(path: str | Path) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The mean/std on [0, 1] pixels of the image/video processor saved in ``path``, or None if there is none.

    Folds the processor's rescaling into them: a processor computing ``(x255 * rescale - offset - m) / s`` is
    ``(x - (offset + m) / (255 * rescale)) / (s / (255 * rescale))`` on ``x = x255 / 255``.
    """
    for name in ("preprocessor_config.json", "video_preprocessor_config.json"):
        file = Path(path) / name
        if not file.is_file():
            continue
        return processor_dict_mean_std(json.loads(file.read_text()))
    return None


def processor_dict_mean_std(cfg: dict[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """:func:`processor_mean_std` of a processor's settings (``processor.to_dict()`` or its saved JSON)."""
    if "image_mean" not in cfg or "image_std" not in cfg:
        return None
    mean = cfg["image_mean"] if cfg.get("do_normalize", True) else [0.0, 0.0, 0.0]
    std = cfg["image_std"] if cfg.get("do_normalize", True) else [1.0, 1.0, 1.0]
    mean = [float(mean)] * 3 if isinstance(mean, (int, float)) else [float(m) for m in mean]
    std = [float(std)] * 3 if isinstance(std, (int, float)) else [float(s) for s in std]
    scale = 255.0 * float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 255.0
    # ViViT's processors map [0, 255] to [-1, 1]: the offset is their own (``offset`` key or implicit).
    vivit = "vivit" in str(cfg.get("image_processor_type", cfg.get("video_processor_type", ""))).lower()
    offset = 1.0 if cfg.get("offset", vivit) and cfg.get("do_rescale", True) else 0.0
    return tuple((offset + m) / scale for m in mean), tuple(s / scale for s in std)


@register_model("hf")
def hf(
    num_classes: int,
    num_frames: int,
    path: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    attn_implementation: str | None = None,
    dual_norm: str = "auto",
) -> HFVideoModel:
    """A Hugging Face video classifier from the local directory ``path`` (``from_pretrained``, offline).

    The head is re-initialised when the saved model has another number of classes than ``num_classes``.
    ``mean``/``std`` default to the directory's processor config, else to the model type's processor defaults;
    ``attn_implementation``: ``"eager"`` or ``"sdpa"`` (default: transformers' choice); ``dual_norm``: see
    :func:`from_hf`.
    """
    if path is None or not Path(path).is_dir():
        raise ValueError(
            f"model 'hf': path {path!r} is not a local directory (save the model there with save_pretrained; "
            "nothing is downloaded)"
        )
    tf = _transformers()
    kwargs: dict[str, Any] = {"local_files_only": True, "num_labels": num_classes, "ignore_mismatched_sizes": True}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    net = tf.AutoModelForVideoClassification.from_pretrained(str(path), **kwargs)
    if mean is None and std is None:
        mean, std = processor_mean_std(path) or (None, None)
    return from_hf(net, mean=mean, std=std, num_frames=num_frames, dual_norm=dual_norm)
