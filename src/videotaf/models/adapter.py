"""Bring your own video classifier: wrap any ``nn.Module`` so that TA and TAF run on it.

TAF is model-agnostic (Sec. 1): all it needs is a layer whose output holds per-frame feature maps. ``wrap_model``
adds what the videotaf contract (:mod:`videotaf.models.base`) expects around an existing network:

- clips arrive as ``(B, T, 3, H, W)`` in [0, 1]; the wrapper normalises them (your mean/std) and lays them out
  the way the network wants (``"BCTHW"`` for 3-D CNNs and torchvision's video models, ``"BTCHW"`` unchanged);
- ``cam_layer`` is looked up by its dotted name (e.g. ``"layer4"`` or ``"backbone.stages.3"``); its output must
  be ``(B*T', C, h, w)`` or ``(B, C, T', h, w)``;
- ``classifier`` names the final layer for the larger learning rate of the reference protocols (optional).

Weights stay where they are: the wrapped network is a child module called ``net``, so its ``state_dict`` keys are
``net.<original key>`` and :func:`unwrap_state_dict` gives the original keys back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from videotaf.models.base import VideoClassifier
from videotaf.models.layers.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize

Layout = Literal["BCTHW", "BTCHW"]


def _submodule(net: nn.Module, name: str, what: str) -> nn.Module:
    try:
        return net.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in net.named_modules() if n][:40]
        raise ValueError(f"{what} {name!r} is not a submodule of {type(net).__name__}; some names: {names}") from None


class WrappedVideoModel(VideoClassifier):
    """A foreign video classifier behind the videotaf contract (see :func:`wrap_model`)."""

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        num_frames: int,
        cam_layer: str,
        classifier: str | None,
        layout: Layout,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
    ) -> None:
        super().__init__(num_classes, num_frames)
        if layout not in ("BCTHW", "BTCHW"):
            raise ValueError(f"input_layout must be 'BCTHW' or 'BTCHW', got {layout!r}")
        self.net = net
        self.normalize = Normalize(mean, std) if mean is not None and std is not None else nn.Identity()
        self.layout = layout
        self._cam_name = cam_layer
        self._classifier_name = classifier
        _submodule(net, cam_layer, "cam_layer")
        if classifier is not None:
            _submodule(net, classifier, "classifier")

    @property
    def cam_layer(self) -> nn.Module:
        return self.net.get_submodule(self._cam_name)

    @property
    def classifier(self) -> nn.Module:
        if self._classifier_name is None:
            return nn.Identity()
        return self.net.get_submodule(self._classifier_name)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.check_input(clips)
        x = self.normalize(clips)
        if self.layout == "BCTHW":
            x = x.transpose(1, 2)
        return self.net(x)


def wrap_model(
    net: nn.Module,
    *,
    num_classes: int,
    num_frames: int,
    cam_layer: str,
    classifier: str | None = None,
    input_layout: Layout = "BCTHW",
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] | None = IMAGENET_STD,
) -> WrappedVideoModel:
    """Wrap ``net`` so that TA/TAF and the engine can use it.

    Args:
        net: takes a normalised clip in ``input_layout`` and returns logits ``(B, num_classes)``.
        num_classes, num_frames: recorded on the wrapper (and in checkpoints).
        cam_layer: dotted name of the module with the per-frame maps (Grad-CAM layer, Eq. 2).
        classifier: dotted name of the final layer (optional).
        input_layout: ``"BCTHW"`` (3-D CNNs, torchvision video models) or ``"BTCHW"``.
        mean, std: per-channel normalisation applied to [0, 1] clips; ``None`` if ``net`` normalises itself.

    Example::

        net = torchvision.models.video.r2plus1d_18(num_classes=174)
        model = wrap_model(net, num_classes=174, num_frames=16, cam_layer="layer4", classifier="fc",
                           mean=(0.43216, 0.394666, 0.37645), std=(0.22803, 0.22145, 0.216989))
    """
    return WrappedVideoModel(net, num_classes, num_frames, cam_layer, classifier, input_layout, mean, std)


def unwrap_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The wrapped network's own keys (drops the ``net.`` prefix of :class:`WrappedVideoModel`)."""
    return {k[4:]: v for k, v in state_dict.items() if k.startswith("net.")}
