"""The contract every videotaf model keeps, so that TA, TAF and the engine work on any of them.

- ``forward(clips)``: ``clips`` is ``(B, T, 3, H, W)`` float in [0, 1]; returns logits ``(B, num_classes)``.
  Normalisation is the model's first layer (:class:`~videotaf.models.layers.Normalize`).
- ``cam_layer``: the module whose output holds the per-frame feature maps Grad-CAM is taken from (Eq. 2):
  either ``(B*T', C, h, w)`` (2-D backbones) or ``(B, C, T', h, w)`` (3-D backbones). ``T'`` may differ from
  ``T`` (bLVNet-TAM's layer4 sees T/2 frames).
- ``classifier``: the final layer(s), which get the larger learning rate of the reference protocols.
- ``aux_logits`` / ``aux_loss_weight``: a model with an auxiliary training head (TPN) stores the head's logits
  of its latest training-mode forward in ``aux_logits`` (``None`` in eval mode); the objective adds
  ``aux_loss_weight * CE(aux_logits, y)``.
- ``dual_norm_kinds`` (optional): which normalisation layers TAF/AdvProp give an auxiliary copy for the
  adversarial path (``videotaf.bn.convert_dual_norm``); ``None`` (default) = whatever the model has (BatchNorm if
  any, else LayerNorm/GroupNorm), ``()`` = none (every layer shared).
- token models (video transformers) expose per-frame maps through a :class:`~videotaf.models.tokens.TokenFold`
  whose ``tap`` is the ``cam_layer`` (:mod:`videotaf.models.tokens`).
"""

from __future__ import annotations

import torch
from torch import nn

from videotaf.models.layers.normalize import Normalize


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
        self.aux_logits: torch.Tensor | None = None

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
        return self.backbone.layer4

    @property
    def classifier(self) -> nn.Module:
        return self.fc
