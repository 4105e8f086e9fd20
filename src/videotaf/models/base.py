"""The contract every videotaf model keeps, so that TA, TAF and the engine work on any of them.

- ``forward(clips)``: ``clips`` is ``(B, T, 3, H, W)`` float in [0, 1]; returns logits ``(B, num_classes)``.
  Normalisation is the model's first layer (:class:`~videotaf.models.layers.Normalize`).
- ``cam_layer``: the module whose output holds the per-frame feature maps Grad-CAM is taken from (Eq. 2):
  either ``(B*T', C, h, w)`` (2-D backbones) or ``(B, C, T', h, w)`` (3-D backbones). ``T'`` may differ from
  ``T`` (bLVNet-TAM's layer4 sees T/2 frames).
- ``classifier``: the final layer(s), which get the larger learning rate of the reference protocols.
- Auxiliary heads: a model with an auxiliary training head (TPN) returns :class:`ModelOutputs`
  ``(logits, aux_logits)`` in training mode, as torchvision's Inception does, and plain logits in eval mode;
  its ``aux_loss_weight`` is the head's weight in the training loss (``aux_loss_weight * CE(aux_logits, y)``).
  :func:`split_output` reads either form.
- ``dual_norm_kinds`` (optional): which normalisation layers TAF/AdvProp give an auxiliary copy for the
  adversarial path (``videotaf.bn.convert_dual_norm``); ``None`` (default) = whatever the model has (BatchNorm if
  any, else LayerNorm/GroupNorm), ``()`` = none (every layer shared).
- token models (video transformers) expose per-frame maps through a :class:`~videotaf.models.tokens.TokenFold`
  whose ``tap`` is the ``cam_layer`` (:mod:`videotaf.models.tokens`).

DDP, DataParallel and ``torch.compile`` wrap a model; :func:`unwrap` finds the model inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from videotaf.models.layers.normalize import Normalize
from videotaf.models.weights import load_backbone_state

# The normalisation kinds a model may declare in ``dual_norm_kinds`` (``videotaf.bn.NORM_KINDS`` maps them to
# layer classes).
NORM_KIND_NAMES = ("batchnorm", "layernorm", "groupnorm")


class ModelOutputs(NamedTuple):
    """Training-mode output of a model with an auxiliary head: ``(B, classes)`` logits of both heads."""

    logits: torch.Tensor
    aux_logits: torch.Tensor


def split_output(output: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(logits, aux_logits or None)`` from a model's forward output (a tensor or :class:`ModelOutputs`)."""
    if isinstance(output, torch.Tensor):
        return output, None
    if isinstance(output, tuple) and len(output) == 2 and all(isinstance(t, torch.Tensor) for t in output):
        return output[0], output[1]
    raise TypeError(
        f"a video model must return logits (B, classes) or (logits, aux_logits), got {type(output).__name__}"
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel / compiled wrapper."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


class VideoClassifier(nn.Module):
    """Base class of the models in the registry. Subclasses set ``cam_layer`` and ``classifier``."""

    num_classes: int
    num_frames: int
    aux_loss_weight: float = 0.0
    dual_norm_kinds: str | tuple[str, ...] | None = None

    def __init__(self, num_classes: int, num_frames: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.num_classes = int(num_classes)
        self.num_frames = int(num_frames)

    @property
    def cam_layer(self) -> nn.Module:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def classifier(self) -> nn.Module:  # pragma: no cover - overridden
        raise NotImplementedError

    def check_input(self, clips: torch.Tensor) -> None:
        """Raise a ValueError naming the expected layout when ``clips`` is not ``(B, T, 3, H, W)``."""
        if clips.dim() != 5 or clips.shape[2] != 3:
            raise ValueError(
                f"{type(self).__name__} expects clips of shape (B, T, 3, H, W) in [0, 1], got {tuple(clips.shape)}"
            )

    def check_frames(self, clips: torch.Tensor) -> None:
        """:meth:`check_input`, and ``T`` must be the ``num_frames`` the model was built for."""
        self.check_input(clips)
        if clips.shape[1] != self.num_frames:
            raise ValueError(
                f"{type(self).__name__} was built for num_frames={self.num_frames} but clips have T={clips.shape[1]}"
            )


class BackboneClassifier(VideoClassifier):
    """Normalise -> ``backbone`` -> dropout -> ``fc``: the frame of TSM, bLVNet-TAM, GST and TPN.

    Grad-CAM reads ``backbone.layer4``; ``fc`` starts from N(0, ``fc_std``) weights and zero bias, as in the
    reference implementations (0.001 for TSM/TAM/GST, 0.01 for TPN's head).
    """

    def __init__(
        self, num_classes: int, num_frames: int, backbone: nn.Module, features: int, dropout: float, fc_std: float
    ) -> None:
        super().__init__(num_classes, num_frames)
        self.normalize = Normalize()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(features, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, fc_std)
        nn.init.zeros_(self.fc.bias)

    @property
    def cam_layer(self) -> nn.Module:
        return self.backbone.get_submodule("layer4")

    def load_imagenet_state(self, state: dict[str, torch.Tensor], path: str | Path) -> None:
        """Initialise the backbone from an ImageNet state dict with the same keys (torchvision ResNet for TSM and
        TPN); subclasses whose backbone differs from the file override this."""
        load_backbone_state(self.backbone, state, path)

    @property
    def classifier(self) -> nn.Module:
        return self.fc
