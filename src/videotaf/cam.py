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

How the features are weighted. Eq. (2) weights each channel by the spatial mean of its gradient (Grad-CAM). That
weighting is the one replaceable piece (:class:`CamWeighting`, as pytorch-grad-cam's ``get_cam_weights``): an
ablation is a new subclass given to :func:`register_cam_method`, selected by name (``TAOptions.cam_method``,
``adversarial.cam_method``, ``videotaf cam --cam-method``), never an edit of this module. :class:`LayerCam` ships as
one such ablation, not a default: the paper's TA is Grad-CAM.

Following AdvCAM/GAIN, the Grad-CAM weights are treated as constants during the attack (one forward, one backward
for the weights, one backward for the step); ``second_order=True`` keeps them in the graph instead.

Which layer. Eq. (2) reads the model's ``cam_layer`` (layer4 for the ResNet models, ``H/32 x W/32`` maps: 7x7 at
the paper's 224 px). Any other module can be named by its dotted name (:func:`cam_layer_of`, the ``cam_layer`` of
:class:`~videotaf.attack.TAOptions` and of :func:`temporal_gradcam`; ``adversarial.cam_layer`` in a config). Below
3x3 maps (layer4 at 56 px is 2x2) the per-frame CAM has hardly any spatial pattern left for TA to move, and a
:class:`CamResolutionWarning` says so once per layer and map size (:func:`warn_if_coarse`).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from videotaf.errors import VideotafError
from videotaf.models.base import split_output, unwrap
from videotaf.models.tokens import TokenMapTap

Score = Literal["log_prob", "ce", "logit"]
NormMode = Literal["paper", "minmax"]

# Below this a maximum or a range counts as zero: Eq. (3) would divide by (almost) nothing.
_EPS = 1e-12


class CamWeighting:
    """The weighting of Eq. (2): how the CAM layer's gradient turns into weights on its features.

    The CAM of a frame is ``(weights(features, grads) * features).sum(channels)``. Subclasses set ``name`` (the
    value of ``TAOptions.cam_method`` / ``adversarial.cam_method``) and override :meth:`weights`; register them
    with :func:`register_cam_method`. Weights must stay differentiable in ``grads`` (TA's ``second_order`` reading
    backpropagates through them) and cost no further backward pass.
    """

    name: ClassVar[str] = ""

    def weights(self, features: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Weights broadcastable to ``features`` ``(B, T', C, h, w)``: ``(B, T', C, 1, 1)`` per channel, or
        ``(B, T', C, h, w)`` per location."""
        raise NotImplementedError


class GradCam(CamWeighting):
    """Grad-CAM (Selvaraju et al. 2017), Eq. (2) and the default: each channel weighted by the spatial mean of its
    gradient, ``alpha_k = mean_ij dS / dF_kij`` -> ``(B, T', C, 1, 1)``."""

    name = "gradcam"

    def weights(self, features: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.mean(dim=(3, 4), keepdim=True)


class LayerCam(CamWeighting):
    """LayerCAM (Jiang et al. 2021), an ablation: each location weighted by its own positive gradient,
    ``w_kij = relu(dS / dF_kij)`` -> ``(B, T', C, h, w)``.

    Chosen over Grad-CAM++ because it needs no higher derivatives (Grad-CAM++'s closed form assumes an
    exponential score) and no division, so it stays finite and differentiable inside TA's attack, also with
    ``second_order``. Its maps keep the spatial detail of earlier layers that a channel mean averages away.
    """

    name = "layercam"

    def weights(self, features: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return F.relu(grads)


class CamMethodError(VideotafError, ValueError):
    """A CAM weighting named by the user is not registered."""


_CAM_METHODS: dict[str, CamWeighting] = {}


def register_cam_method(weighting: CamWeighting) -> CamWeighting:
    """Make ``weighting`` selectable by its ``name``; returns it. A second registration of a name replaces it."""
    if not weighting.name or not weighting.name.isidentifier():
        raise ValueError(f"a CAM weighting needs a name like 'gradcam', got {weighting.name!r}")
    _CAM_METHODS[weighting.name] = weighting
    return weighting


register_cam_method(GradCam())
register_cam_method(LayerCam())


def cam_method_names() -> tuple[str, ...]:
    """The registered CAM weightings, in registration order (``gradcam`` first)."""
    return tuple(_CAM_METHODS)


def cam_weighting(method: str | CamWeighting, *, field: str = "cam_method") -> CamWeighting:
    """The :class:`CamWeighting` named ``method`` (an instance is returned as is).

    Raises:
        CamMethodError: no weighting of that name is registered; the message names ``field`` and the known names.
    """
    if isinstance(method, CamWeighting):
        return method
    found = _CAM_METHODS.get(method)
    if found is None:
        raise CamMethodError(f"{field}: expected one of {', '.join(cam_method_names())}, got {method!r}")
    return found


def frame_cams(
    features: torch.Tensor, grads: torch.Tensor, relu: bool = False, method: str | CamWeighting = "gradcam"
) -> torch.Tensor:
    """Per-frame Grad-CAM, Eq. (2).

    Args:
        features: ``(B, T', C, h, w)`` activations of the CAM layer, F'(X_i) in the paper.
        grads: ``(B, T', C, h, w)`` gradient of the target score with respect to ``features``.
        relu: clamp negative evidence to zero (classic Grad-CAM). Off by default: Eq. (3) subtracts the minimum,
            which only matters for signed maps.
        method: the weighting (:class:`CamWeighting` or its registered name); ``"gradcam"`` is Eq. (2).

    Returns:
        ``(B, T', h, w)``: for each frame, the channel sum of ``features`` weighted by ``method``'s weights (for
        Grad-CAM the spatial mean of ``grads`` for that frame and channel).
    """
    if features.shape != grads.shape or features.dim() != 5:
        raise ValueError(
            f"features and grads must both be (B, T', C, h, w); got {tuple(features.shape)} and {tuple(grads.shape)}"
        )
    weights = cam_weighting(method).weights(features, grads)
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


class CamLayerError(VideotafError, ValueError):
    """A CAM layer named by the user is not a module of the model, or the model cannot take another one."""


class CamResolutionWarning(UserWarning):
    """The CAM layer's maps are smaller than 3x3: TA's per-frame Grad-CAM (Eq. 2) has almost no spatial pattern."""


# Below this many rows or columns a CAM map is (nearly) one number per frame: Eq. (3)-(5) then rank frames by
# little more than their pooled evidence, and TA degenerates into moving a frame-level score.
MIN_CAM_SIDE = 3
# (layer name, h, w) already warned about in this process: one line per layer and map size, not one per step.
_WARNED_COARSE: set[tuple[str, int, int]] = set()


def _default_cam_layer(inner: nn.Module) -> nn.Module:
    layer = getattr(inner, "cam_layer", None)
    if not isinstance(layer, nn.Module):
        raise TypeError(
            f"{type(inner).__name__} has no `cam_layer` module; TA needs the layer whose output holds "
            "per-frame feature maps (B*T', C, h, w) or (B, C, T', h, w). Wrap the model or set the attribute."
        )
    return layer


def module_names_hint(model: nn.Module, limit: int = 16) -> list[str]:
    """A few dotted module names of ``model`` to show in an error: its children and their children, in order.

    Auxiliary normalisation copies (``*.aux_bn``, :mod:`videotaf.bn`) are left out: they are not a CAM layer.
    """
    names = [n for n, _ in unwrap(model).named_modules() if n and n.count(".") <= 1 and "aux_bn" not in n]
    return names[:limit]


def cam_layer_of(model: nn.Module, name: str | None = None, *, field: str = "cam_layer") -> nn.Module:
    """The module whose output Grad-CAM reads (Eq. 2): the model's own ``cam_layer``, or the one named ``name``.

    Args:
        model: a model following :mod:`videotaf.models.base` (DDP, DataParallel and ``torch.compile`` wrappers are
            looked through).
        name: ``None`` for the model's ``cam_layer``; else a dotted module name as ``named_modules()`` gives it on
            the unwrapped model, e.g. ``"backbone.layer3"`` for TSM (a ``wrap_model`` network is ``"net.*"``).
        field: what the user set, named in the error (``"adversarial.cam_layer"``, ``"--cam-layer"``).

    Raises:
        CamLayerError: ``name`` is not a module of the model (the message names ``field``, the name and some valid
            names), or the model is a token model (a video transformer whose ``cam_layer`` is a
            :class:`~videotaf.models.tokens.TokenMapTap`) and ``name`` is another module: there, other layers
            output token sequences, not the per-frame maps Eq. (2) needs, so only the model's own tap is accepted.
        TypeError: the model has no ``cam_layer`` and no ``name`` was given.
    """
    inner = unwrap(model)
    if name is None:
        return _default_cam_layer(inner)
    try:
        layer = inner.get_submodule(name) if name else None
    except AttributeError:
        layer = None
    if layer is None:
        all_names = [n for n, _ in inner.named_modules() if n]
        # "layer3" for TSM is "backbone.layer3": a name that ends the way the user's does is the likeliest fix.
        guesses = [n for n in all_names if n.endswith("." + name)] or difflib.get_close_matches(name, all_names, 3)
        hint = f"did you mean {', '.join(map(repr, guesses[:3]))}? " if guesses else ""
        raise CamLayerError(
            f"{field}: {name!r} is not a module of {type(inner).__name__}; {hint}"
            f"modules include {', '.join(module_names_hint(inner))}"
        )
    own = getattr(inner, "cam_layer", None)
    if isinstance(own, TokenMapTap) and layer is not own:
        raise CamLayerError(
            f"{field}: {type(inner).__name__} is a token model whose per-frame maps come from its own token fold; "
            f"{name!r} outputs tokens, not (B, C, T', h, w) maps, so another CAM layer is not supported: "
            f"leave {field} unset"
        )
    return layer


def module_name(model: nn.Module, layer: nn.Module) -> str:
    """``layer``'s dotted name in the unwrapped ``model`` (its class name if it is not a submodule)."""
    for name, module in unwrap(model).named_modules():
        if module is layer:
            return name or type(layer).__name__
    return type(layer).__name__


def warn_if_coarse(model: nn.Module, layer: nn.Module, output: torch.Tensor, clips: torch.Tensor | None) -> None:
    """Warn (:class:`CamResolutionWarning`, once per process per layer and map size) when ``layer``'s maps are
    smaller than ``MIN_CAM_SIDE`` x ``MIN_CAM_SIDE``.

    Args:
        model: the model ``layer`` belongs to (for the layer's name in the message).
        layer: the CAM layer.
        output: its output as captured, ``(B*T', C, h, w)`` or ``(B, C, T', h, w)``; other shapes are left to
            :func:`frame_maps` to refuse.
        clips: the input ``(B, T, 3, H, W)``, for its size in the message (or None).
    """
    if output.dim() not in (4, 5):
        return
    h, w = int(output.shape[-2]), int(output.shape[-1])
    if h >= MIN_CAM_SIDE and w >= MIN_CAM_SIDE:  # the common case costs two comparisons per forward
        return
    name = module_name(model, layer)
    if (name, h, w) in _WARNED_COARSE:
        return
    _WARNED_COARSE.add((name, h, w))
    size = f" from {clips.shape[-2]}x{clips.shape[-1]} px input" if clips is not None and clips.dim() >= 2 else ""
    warnings.warn(
        f"Grad-CAM maps of {name} are {h}x{w}{size}: below {MIN_CAM_SIDE}x{MIN_CAM_SIDE} TA's per-frame CAMs "
        "(Eq. 2) have almost no spatial pattern; name a higher-resolution layer with adversarial.cam_layer "
        "(or --cam-layer), e.g. backbone.layer3 for TSM, or use a larger input",
        CamResolutionWarning,
        stacklevel=3,  # the caller of the attack's forward or of temporal_gradcam
    )


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
    method: str | CamWeighting = "gradcam",
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
        method: the weighting of the features (:func:`cam_weighting`); ``"gradcam"`` is Eq. (2).

    The gradient of the target score with respect to the features is one backward through the head only; the
    graph is retained for the later backward passes of the attack and the training loss.
    """
    (grads,) = torch.autograd.grad(
        target_score(logits, targets, score) * grad_scale, layer_output, retain_graph=True, create_graph=second_order
    )
    if grad_scale != 1.0:
        grads = grads.float() / grad_scale
    b = logits.shape[0]
    return frame_cams(frame_maps(layer_output, b), frame_maps(grads, b), relu=relu, method=method)


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
    cam_layer: str | None = None,
    method: str | CamWeighting = "gradcam",
) -> CamResult:
    """Per-frame Grad-CAM of a video model for figures and attention metrics (Eq. 2-3).

    Runs the model in the mode it is in; parameter ``.grad`` fields are not touched.

    Args:
        model: a model following :mod:`videotaf.models.base` (may be wrapped in DDP).
        clips: ``(B, T, 3, H, W)`` in [0, 1].
        targets: ``(B,)`` labels to explain; the predicted class when None.
        cam_layer: dotted name of the module to read the maps from (:func:`cam_layer_of`); None: the model's own.
        method: the weighting of Eq. (2) (:func:`cam_weighting`; ``"gradcam"``, or an ablation such as
            ``"layercam"``).

    Warns:
        CamResolutionWarning: the maps are smaller than 3x3 (once per layer and size, :func:`warn_if_coarse`).
    """
    tap = FeatureTap()
    weighting = cam_weighting(method)  # an unknown name fails before the forward pass
    layer = cam_layer_of(model, cam_layer)
    with torch.enable_grad(), tap.attached(layer):
        logits, _ = split_output(model(clips))
        if targets is None:
            targets = logits.argmax(dim=1)
        # The score's gradient is scaled away from float16's underflow when autocast runs in float16.
        scale = 2.0**16 if float16_autocast(clips.device) else 1.0
        features = tap.pop()
        warn_if_coarse(model, layer, features, clips)
        cams = cams_from_forward(logits, features, targets, score=score, relu=relu, grad_scale=scale, method=weighting)
    cams = cams.detach().float()
    cams_norm = normalize_cams(cams, mode=norm)
    return CamResult(cams, cams_norm, frame_attention(cams_norm), logits.detach(), targets)
