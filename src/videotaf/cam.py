"""Temporal Grad-CAM as a differentiable loss: Eq. (2)-(5) of Duan et al. (IJCAI 2023).

The CAMs stay in the autograd graph so that PGD can climb the CAM loss (Eq. 6). Shapes:

- ``features``, ``grads``: ``(B, T', C, h, w)``, the output of the model's ``cam_layer`` folded per clip
  (:func:`frame_maps`) and the gradient of the target score with respect to it.
- CAMs: ``(B, T', h, w)``, one map per temporal position of the CAM layer (``T'`` can be smaller than the number
  of input frames, e.g. bLVNet-TAM's layer4 sees T/2 frames).

Reading of Eq. (2). The paper writes the weights as the spatial mean of d L_ce / d F'(X_i). Taken literally that
makes large values mean *less* evidence for the target label, which turns Eq. (4)-(5) upside down. We follow the
standard Grad-CAM convention (Selvaraju et al. 2017; the AdvCAM work the paper cites): the gradient is that of the
target's log-probability, i.e. minus the gradient of the cross-entropy, so larger = more evidence for the target.
``score="ce"`` gives the literal sign and ``score="logit"`` the raw class score of classic Grad-CAM.

Following AdvCAM/GAIN, the Grad-CAM weights are treated as constants during the attack (one forward, one backward
for the weights, one backward for the step); ``second_order=True`` keeps them in the graph instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from videotaf.models.base import split_output, unwrap

Score = Literal["log_prob", "ce", "logit"]
NormMode = Literal["paper", "minmax"]

# Below this a maximum or a range counts as zero: Eq. (3) would divide by (almost) nothing.
_EPS = 1e-12


def frame_cams(features: torch.Tensor, grads: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """Per-frame Grad-CAM, Eq. (2).

    Args:
        features: ``(B, T', C, h, w)`` activations of the CAM layer, F'(X_i) in the paper.
        grads: ``(B, T', C, h, w)`` gradient of the target score with respect to ``features``.
        relu: clamp negative evidence to zero (classic Grad-CAM). Off by default: Eq. (3) subtracts the minimum,
            which only matters for signed maps.

    Returns:
        ``(B, T', h, w)``: for each frame, the channel sum of ``features`` weighted by the spatial mean of
        ``grads`` for that frame and channel.
    """
    if features.shape != grads.shape or features.dim() != 5:
        raise ValueError(
            f"features and grads must both be (B, T', C, h, w); got {tuple(features.shape)} and {tuple(grads.shape)}"
        )
    weights = grads.mean(dim=(3, 4), keepdim=True)
    cams = (weights * features).sum(dim=2)
    return F.relu(cams) if relu else cams


def normalize_cams(cams: torch.Tensor, mode: NormMode = "paper") -> torch.Tensor:
    """Normalise the CAMs of each clip jointly over all its frames, Eq. (3).

    ``mode="paper"`` is Eq. (3) literally, ``(X - min) / max``; ``mode="minmax"`` divides by ``max - min``
    instead. min and max run over every frame and pixel of a clip (never per frame: the cross-frame comparison
    is the point), and gradients flow through both.

    Degenerate cases, so that no NaN or Inf can come out: in ``"paper"`` mode a clip whose maximum is <= 0
    (nothing is positive evidence) falls back to ``max - min``; when that range is zero too (a constant map) the
    result is all zeros.

    Args:
        cams: ``(B, T', h, w)``.

    Returns:
        ``(B, T', h, w)``, non-negative; in ``[0, 1]`` in ``"minmax"`` mode.
    """
    if cams.dim() != 4:
        raise ValueError(f"cams must be (B, T', h, w), got {tuple(cams.shape)}")
    if mode not in ("paper", "minmax"):
        raise ValueError(f"mode must be 'paper' or 'minmax', got {mode!r}")
    flat = cams.flatten(1)
    lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
    hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
    span = hi - lo
    if mode == "paper":
        denom = torch.where(hi > _EPS, hi, span)
    else:
        denom = span
    usable = denom > _EPS
    # Both branches of torch.where get differentiated, so the unused one must stay finite too.
    safe = torch.where(usable, denom, torch.ones_like(denom))
    return torch.where(usable, (cams - lo) / safe, torch.zeros_like(cams))


def frame_sums(cams_norm: torch.Tensor) -> torch.Tensor:
    """``(B, T', h, w) -> (B, T')``: the per-frame sums Eq. (4) sorts by."""
    return cams_norm.flatten(2).sum(dim=2)


def nonkey_frames(cams_norm: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` non-key frames of Eq. (4): smallest per-frame CAM sums first.

    Ties keep frame order (stable sort), so the selection is deterministic.

    Args:
        cams_norm: ``(B, T', h, w)`` normalised CAMs (Eq. 3).
        n: number of frames, ``1 <= n <= T'``.

    Returns:
        ``(B, n)`` long frame indices, ascending by per-frame sum.
    """
    t = cams_norm.shape[1]
    if not 1 <= n <= t:
        raise ValueError(f"n must be between 1 and the number of CAM frames ({t}), got {n}")
    order = torch.sort(frame_sums(cams_norm.detach()), dim=1, stable=True).indices
    return order[:, :n]


def cam_loss(cams_norm: torch.Tensor, n: int) -> torch.Tensor:
    """The CAM loss L_C of Eq. (5).

    The mean over the ``n`` non-key frames (Eq. 4) of each frame's spatial mean of the normalised CAM, averaged
    over the batch. The paper's default is ``n = T'`` (8 or 16 for 8 or 16 frames). The frame selection is an
    index and carries no gradient; the values do.

    Args:
        cams_norm: ``(B, T', h, w)``.
        n: number of non-key frames.

    Returns:
        Scalar tensor.
    """
    idx = nonkey_frames(cams_norm, n)
    per_frame = cams_norm.flatten(2).mean(dim=2)
    return per_frame.gather(1, idx).mean()


def frame_maps(output: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Fold a CAM layer's output into ``(B, T', C, h, w)``.

    Accepts the two layouts of the model contract: ``(B*T', C, h, w)`` from 2-D backbones (frames of a clip are
    consecutive) and ``(B, C, T', h, w)`` from 3-D backbones.
    """
    if output.dim() == 4:
        if output.shape[0] % batch_size:
            raise ValueError(
                f"CAM layer output has {output.shape[0]} maps, not a multiple of the batch size {batch_size}"
            )
        return output.view(batch_size, output.shape[0] // batch_size, *output.shape[1:])
    if output.dim() == 5:
        if output.shape[0] != batch_size:
            raise ValueError(f"CAM layer output batch {output.shape[0]} != clip batch {batch_size}")
        return output.permute(0, 2, 1, 3, 4)
    raise ValueError(f"CAM layer output must be (B*T', C, h, w) or (B, C, T', h, w), got {tuple(output.shape)}")


def target_score(logits: torch.Tensor, targets: torch.Tensor, score: Score = "log_prob") -> torch.Tensor:
    """Sum over the batch of the score whose gradient weights Eq. (2); see the module docstring for the sign."""
    if score == "log_prob":
        return logits.log_softmax(dim=1).gather(1, targets[:, None]).sum()
    if score == "ce":
        return F.cross_entropy(logits, targets, reduction="sum")
    if score == "logit":
        return logits.gather(1, targets[:, None]).sum()
    raise ValueError(f"score must be 'log_prob', 'ce' or 'logit', got {score!r}")


def cam_layer_of(model: nn.Module) -> nn.Module:
    """The model's ``cam_layer`` (see :mod:`videotaf.models.base`), with a clear error when it has none."""
    layer = getattr(unwrap(model), "cam_layer", None)
    if not isinstance(layer, nn.Module):
        raise TypeError(
            f"{type(unwrap(model)).__name__} has no `cam_layer` module; TA needs the layer whose output holds "
            "per-frame feature maps (B*T', C, h, w) or (B, C, T', h, w). Wrap the model or set the attribute."
        )
    return layer


class FeatureTap:
    """Captures the output of a module (the CAM layer) during forward passes, keeping it in the graph."""

    def __init__(self) -> None:
        self.output: torch.Tensor | None = None

    def _hook(self, module: nn.Module, inputs: object, output: object) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"CAM layer {type(module).__name__} returned {type(output).__name__}, not a tensor")
        self.output = output

    @contextmanager
    def attached(self, layer: nn.Module) -> Iterator[FeatureTap]:
        handle = layer.register_forward_hook(self._hook)
        try:
            yield self
        finally:
            handle.remove()

    def pop(self) -> torch.Tensor:
        if self.output is None:
            raise RuntimeError("the CAM layer did not run during the forward pass")
        out, self.output = self.output, None
        return out


def cams_from_forward(
    logits: torch.Tensor,
    layer_output: torch.Tensor,
    targets: torch.Tensor,
    score: Score = "log_prob",
    relu: bool = False,
    second_order: bool = False,
    grad_scale: float = 1.0,
) -> torch.Tensor:
    """Eq. (2) from one forward pass -> ``(B, T', h, w)``.

    Args:
        logits: ``(B, classes)`` of the forward pass.
        layer_output: the CAM layer's output of the same pass, as captured (``(B*T', C, h, w)`` or
            ``(B, C, T', h, w)``), still in the graph.
        targets: ``(B,)`` labels whose score weights the maps.
        grad_scale: multiplies the score before its backward and divides the gradient after it (in float32).
            Under float16 autocast the gradient at the CAM layer is the score's gradient spread over every
            frame and pixel, often below float16's smallest normal number; scaling keeps it representable.

    The gradient of the target score with respect to the features is one backward through the head only; the
    graph is retained for the later backward passes of the attack and the training loss.
    """
    (grads,) = torch.autograd.grad(
        target_score(logits, targets, score) * grad_scale, layer_output, retain_graph=True, create_graph=second_order
    )
    if grad_scale != 1.0:
        grads = grads.float() / grad_scale
    b = logits.shape[0]
    return frame_cams(frame_maps(layer_output, b), frame_maps(grads, b), relu=relu)


# torch >= 2.4 asks autocast about any device type; 2.1-2.3 have one function pair per device type.
_DEVICE_AUTOCAST_API = hasattr(torch, "get_autocast_dtype")


def float16_autocast(device: torch.device) -> bool:
    """Whether float16 autocast is on for ``device``'s type (its gradients can underflow without scaling)."""
    kind = device.type
    if _DEVICE_AUTOCAST_API:
        try:
            return torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == torch.float16
        except RuntimeError:  # a device type autocast does not know (e.g. meta)
            return False
    if kind == "cuda":
        return torch.is_autocast_enabled() and torch.get_autocast_gpu_dtype() == torch.float16
    if kind == "cpu":
        return torch.is_autocast_cpu_enabled() and torch.get_autocast_cpu_dtype() == torch.float16
    return False


@dataclass
class CamResult:
    """Output of :func:`temporal_gradcam`; every tensor is detached."""

    cams: torch.Tensor  # (B, T', h, w) raw Eq. (2) maps
    cams_norm: torch.Tensor  # (B, T', h, w) Eq. (3)
    frame_scores: torch.Tensor  # (B, T') share of the normalised CAM mass per frame, sums to 1
    logits: torch.Tensor  # (B, classes)
    targets: torch.Tensor  # (B,) the labels the CAMs explain


def frame_attention(cams_norm: torch.Tensor) -> torch.Tensor:
    """``(B, T', h, w) -> (B, T')``: each frame's share of the clip's normalised CAM mass (uniform if zero)."""
    sums = frame_sums(cams_norm)
    total = sums.sum(dim=1, keepdim=True)
    uniform = torch.full_like(sums, 1.0 / sums.shape[1])
    return torch.where(total > _EPS, sums / total.clamp_min(_EPS), uniform)


def temporal_gradcam(
    model: nn.Module,
    clips: torch.Tensor,
    targets: torch.Tensor | None = None,
    score: Score = "log_prob",
    relu: bool = False,
    norm: NormMode = "paper",
) -> CamResult:
    """Per-frame Grad-CAM of a video model for figures and attention metrics (Eq. 2-3).

    Runs the model in the mode it is in; parameter ``.grad`` fields are not touched.

    Args:
        model: a model following :mod:`videotaf.models.base` (may be wrapped in DDP).
        clips: ``(B, T, 3, H, W)`` in [0, 1].
        targets: ``(B,)`` labels to explain; the predicted class when None.
    """
    tap = FeatureTap()
    with torch.enable_grad(), tap.attached(cam_layer_of(model)):
        logits, _ = split_output(model(clips))
        if targets is None:
            targets = logits.argmax(dim=1)
        # The score's gradient is scaled away from float16's underflow when autocast runs in float16.
        scale = 2.0**16 if float16_autocast(clips.device) else 1.0
        cams = cams_from_forward(logits, tap.pop(), targets, score=score, relu=relu, grad_scale=scale)
    cams = cams.detach().float()
    cams_norm = normalize_cams(cams, mode=norm)
    return CamResult(cams, cams_norm, frame_attention(cams_norm), logits.detach(), targets)
