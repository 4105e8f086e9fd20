"""Adversarial augmentation of video clips: TA (Eq. 6, Sec. 3.2) and the vanilla CE-based PGD (Eq. 1).

Both attacks are L_inf PGD in raw pixel space: clips are ``(B, T, 3, H, W)`` in [0, 1] and the model normalises
internally, so ``eps = 64/255`` is the paper's eps = 64 on the 0..255 scale. Every step is
``X <- Proj_{[X0 - eps, X0 + eps] and [0, 1]}(X + step_size * sign(grad L))``.

Called on their own, the attacks leave the model exactly as they found it: they run it in its current mode (in
training mode the CAMs come from batch statistics, as the trainer sees them), take gradients with
``torch.autograd.grad`` with respect to the input only (no parameter ``.grad`` moves) and restore every
BatchNorm buffer afterwards. Forward passes go through the unwrapped module, so a DDP wrapper never sees them.

Mixed precision. Under float16 autocast (the engine's CUDA AMP) the attack's gradients would underflow: TA's
loss is a mean over frames and pixels, so its gradient at each input pixel is tiny, and without scaling most
of it rounds to zero and sign() leaves those pixels unperturbed. Like ``torch.amp.GradScaler`` for the training
loss, every attack keeps a dynamic scale for its own backward passes (only the sign of the input gradient is
used, so the scale changes nothing else): it starts at 2**16, halves and recomputes when a gradient overflows,
and doubles after 2000 clean steps. In float32 and bfloat16 the scale is 1.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import torch
import torch.nn.functional as F
from torch import nn

from videotaf.bn import frozen_bn_stats
from videotaf.cam import (
    FeatureTap,
    NormMode,
    Score,
    cam_layer_of,
    cam_loss,
    cam_method_names,
    cams_from_forward,
    float16_autocast,
    normalize_cams,
    warn_if_coarse,
)
from videotaf.models.base import split_output, unwrap

TargetRule = Literal["paper", "true", "predicted", "random"]


@dataclass(frozen=True)
class TAOptions:
    """How TA reads the paper where it leaves a choice (see :mod:`videotaf.cam` and the README).

    Attributes:
        score: the class score whose gradient weights Eq. (2): ``"log_prob"`` (standard Grad-CAM sign),
            ``"ce"`` (the paper's literal sign) or ``"logit"`` (classic Grad-CAM on the raw score).
        cam_norm: Eq. (3) ``"paper"`` (literally) or ``"minmax"`` (divide by ``max - min``).
        relu: ReLU on the CAMs before Eq. (3).
        target_rule: ``"paper"`` (Sec. 3.2: the true label if misclassified, a random other label if right),
            ``"true"``, ``"predicted"`` or ``"random"`` (always a random label other than the true one, right or
            wrong: no clip gets the easier true-label target; :func:`random_other_labels`).
        second_order: keep the Grad-CAM weights in the graph (exact gradient, one more backward of cost).
        cam_layer: the module whose output Eq. (2) reads, by its dotted name in the unwrapped model (e.g.
            ``"backbone.layer3"`` for TSM; :func:`videotaf.cam.cam_layer_of`); ``None``: the model's own
            ``cam_layer`` (layer4 for the ResNet models). The paper reads the last stage at 224 px, 7x7 maps; at
            small inputs that stage is 2x2 or less and an earlier one keeps a spatial pattern.
        cam_method: the weighting of Eq. (2) by registered name (:class:`videotaf.cam.CamWeighting`):
            ``"gradcam"`` (the paper) or an ablation such as ``"layercam"``.
    """

    score: Score = "log_prob"
    cam_norm: NormMode = "paper"
    relu: bool = False
    target_rule: TargetRule = "paper"
    second_order: bool = False
    cam_layer: str | None = None
    cam_method: str = "gradcam"

    def __post_init__(self) -> None:
        if self.cam_method not in cam_method_names():
            raise ValueError(
                f"cam_method must be one of {', '.join(map(repr, cam_method_names()))}, got {self.cam_method!r}"
            )
        if self.cam_layer is not None and (not isinstance(self.cam_layer, str) or not self.cam_layer.strip()):
            raise ValueError(f"cam_layer must be None or a dotted module name, got {self.cam_layer!r}")
        for name, allowed in (
            ("score", get_args(Score)),
            ("cam_norm", get_args(NormMode)),
            ("target_rule", get_args(TargetRule)),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {getattr(self, name)!r}")


def random_other_labels(
    labels: torch.Tensor, num_classes: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A label drawn uniformly from the ``num_classes - 1`` classes other than each true label.

    One number per sample, ``torch.randint(0, num_classes - 1)`` from ``generator`` (on its device), shifted up
    by one where it reaches the true label, so every other class is equally likely and the true label never
    comes out.

    Args:
        labels: ``(B,)`` long, the true labels in ``[0, num_classes)``.
        num_classes: C >= 2.
        generator: optional ``torch.Generator``; the global RNG when None.

    Returns:
        ``(B,)`` long on ``labels``' device.
    """
    if num_classes < 2:
        raise ValueError(f"a label other than the true one needs num_classes >= 2, got {num_classes}")
    labels = labels.long()
    device = generator.device if generator is not None else labels.device
    draw = torch.randint(0, num_classes - 1, labels.shape, generator=generator, device=device).to(labels.device)
    return draw + (draw >= labels).long()


def select_targets(
    logits: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The target-label rule of Sec. 3.2 for the CAMs of TA.

    Where the prediction is wrong, the true label (boost the right evidence of a hard example, as in AdvCAM);
    where it is right, a label drawn uniformly from the other ``num_classes - 1`` classes (diverse temporal views).

    Args:
        logits: ``(B, num_classes)``.
        labels: ``(B,)`` long, the true labels.
        generator: optional ``torch.Generator`` for the random labels; one number is drawn per sample either way,
            so the stream does not depend on which predictions were right.

    Returns:
        ``(B,)`` long target labels.
    """
    num_classes = logits.shape[1]
    labels = labels.long()
    if num_classes < 2:
        return labels.clone()
    other = random_other_labels(labels, num_classes, generator)
    correct = logits.argmax(dim=1) == labels
    return torch.where(correct, other, labels)


class ForwardPass(NamedTuple):
    """One forward pass of the attack: logits ``(B, classes)``, the CAM layer's output as captured (``None``
    when the loss does not need it) and the auxiliary head's logits (``None`` unless the model has one)."""

    logits: torch.Tensor
    features: torch.Tensor | None
    aux_logits: torch.Tensor | None


class FirstStep(NamedTuple):
    """The first PGD step from the clean clip: the adversarial clip after it (detached), the clean forward
    pass it climbed from and the target labels fixed there."""

    adv: torch.Tensor
    clean: ForwardPass
    targets: torch.Tensor


class ProjectedGradientAscent:
    """L_inf PGD on clips in [0, 1] (Eq. 6 with the loss of a subclass); the base of TA and CE-PGD.

    A subclass defines :meth:`loss` (and :meth:`targets` when it attacks other labels than the true ones).
    :meth:`first_step` is written once for the standalone attack (:meth:`run`) and for the fused TAF step of
    :mod:`videotaf.objective`, which shares the clean forward pass with the training loss.

    Args:
        model: the model the standalone ``attack(clips, labels)`` runs on (may be wrapped in DDP); ``None`` for
            an attack that is only given models explicitly (:meth:`run`, :meth:`first_step`), as the objective does.
        eps: L_inf budget in [0, 1] pixel units (paper: 64/255).
        step_size: beta of Eq. (6) (paper: 32/255).
        steps: K of Eq. (6) (paper: 1).
        random_start: start from a uniform point of the eps-ball (off in the paper).
        generator: ``torch.Generator`` for the random start (and TA's random target labels).
    """

    uses_features = False
    # Dynamic loss scale for float16 autocast (see the module docstring).
    initial_scale = 2.0**16
    growth_interval = 2000

    def __init__(
        self,
        model: nn.Module | None,
        eps: float,
        step_size: float,
        steps: int,
        random_start: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if not 0.0 <= eps <= 1.0 or not 0.0 <= step_size <= 1.0:
            raise ValueError(f"eps and step_size must be in [0, 1] (pixel scale), got eps={eps}, step_size={step_size}")
        if steps < 1:
            raise ValueError(f"steps (K) must be >= 1, got {steps}")
        self.model = model
        self.eps = float(eps)
        self.step_size = float(step_size)
        self.steps = int(steps)
        self.random_start = bool(random_start)
        self.generator = generator
        self.scale = self.initial_scale
        self._clean_steps = 0

    # -- the loss, defined by subclasses -------------------------------------------------------------------------
    def targets(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The labels the attack loss is computed for, fixed at the first forward pass."""
        return labels

    def loss(
        self,
        logits: torch.Tensor,
        features: torch.Tensor | None,
        labels: torch.Tensor,
        targets: torch.Tensor,
        grad_scale: float = 1.0,
    ) -> torch.Tensor:
        """The scalar the attack climbs; ``grad_scale`` scales any backward pass the loss itself needs."""
        raise NotImplementedError

    # -- PGD -----------------------------------------------------------------------------------------------------
    def project(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """Onto the eps-ball around the clean clip ``x0`` and onto [0, 1]."""
        return torch.minimum(torch.maximum(x, x0 - self.eps), x0 + self.eps).clamp_(0.0, 1.0)

    def ascend(self, x: torch.Tensor, x0: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """One step of Eq. (6): ``Proj(x + step_size * sign(grad))``, detached."""
        return self.project(x.detach() + self.step_size * grad.sign(), x0)

    def start(self, x0: torch.Tensor) -> torch.Tensor:
        """The starting point: the clean clip, or a uniform point of the eps-ball with ``random_start``."""
        if not self.random_start or self.eps == 0:
            return x0.clone()
        device = self.generator.device if self.generator is not None else x0.device
        noise = torch.rand(x0.shape, generator=self.generator, device=device, dtype=x0.dtype).to(x0.device)
        return self.project(x0 + (2 * noise - 1) * self.eps, x0)

    def feature_layer(self, model: nn.Module) -> nn.Module:
        """The module whose output :meth:`loss` needs (only called when ``uses_features``): the CAM layer."""
        return cam_layer_of(model)

    def forward_with_features(self, model: nn.Module, x: torch.Tensor) -> ForwardPass:
        """``model(x)`` and, when the loss needs it, the CAM layer's output as captured (still in the graph).

        Warns (:class:`~videotaf.cam.CamResolutionWarning`, once per layer and size) when its maps are below 3x3.
        """
        if not self.uses_features:
            logits, aux = split_output(model(x))
            return ForwardPass(logits, None, aux)
        tap = FeatureTap()
        layer = self.feature_layer(model)
        with tap.attached(layer):
            output = model(x)
        logits, aux = split_output(output)
        features = tap.pop()
        warn_if_coarse(model, layer, features, x)
        return ForwardPass(logits, features, aux)

    def input_gradient(
        self,
        x: torch.Tensor,
        logits: torch.Tensor,
        features: torch.Tensor | None,
        labels: torch.Tensor,
        targets: torch.Tensor,
        retain_graph: bool = False,
    ) -> torch.Tensor:
        """d loss / d x through an existing forward pass (``x`` must require grad), up to a positive factor.

        Under float16 autocast the backward runs on ``loss * self.scale``; an overflow halves the scale and
        recomputes (the graph is kept for that), so the result is finite and its sign is the loss gradient's.
        """
        if not float16_autocast(x.device):
            loss = self.loss(logits, features, labels, targets)
            (grad,) = torch.autograd.grad(loss, x, retain_graph=retain_graph)
            return grad
        while True:
            loss = self.loss(logits, features, labels, targets, grad_scale=self.scale)
            (grad,) = torch.autograd.grad(loss * self.scale, x, retain_graph=True)
            if bool(torch.isfinite(grad).all()):
                break
            if self.scale <= 1.0:
                # Overflow even unscaled: step only where the gradient is finite.
                return torch.nan_to_num(grad, nan=0.0)
            self.scale /= 2.0
            self._clean_steps = 0
        self._clean_steps += 1
        if self._clean_steps >= self.growth_interval:
            self.scale *= 2.0
            self._clean_steps = 0
        return grad

    def first_step(
        self, model: nn.Module, x0: torch.Tensor, labels: torch.Tensor, *, training_forward: bool = False
    ) -> FirstStep:
        """Forward from the starting point, fix the targets, take one step of Eq. (6).

        Args:
            model: the model to attack.
            x0: ``(B, T, 3, H, W)`` clean clips in [0, 1], detached.
            labels: ``(B,)`` true labels.
            training_forward: the forward pass is also the clean pass of the training loss (the fused TAF step):
                it runs through ``model`` as given (a DDP wrapper included), updates BatchNorm statistics once as
                any training forward does, and its graph is kept for the loss's backward. Needs the clean clip as
                the starting point, so ``random_start`` raises here. Otherwise the forward runs through the
                unwrapped model with BatchNorm statistics frozen and the graph is freed.
        """
        if training_forward and self.random_start:
            raise ValueError(
                "random_start attacks from a random point, not from the clean forward pass: use fused=False"
            )
        with torch.enable_grad(), nullcontext() if training_forward else frozen_bn_stats(unwrap(model)):
            x = self.start(x0).requires_grad_(True)
            clean = self.forward_with_features(model if training_forward else unwrap(model), x)
            targets = self.targets(clean.logits.detach(), labels)
            grad = self.input_gradient(x, clean.logits, clean.features, labels, targets, retain_graph=training_forward)
        return FirstStep(self.ascend(x, x0, grad), clean, targets)

    def continue_from(
        self,
        model: nn.Module,
        x: torch.Tensor,
        x0: torch.Tensor,
        labels: torch.Tensor,
        targets: torch.Tensor,
        steps: int,
    ) -> torch.Tensor:
        """``steps`` more PGD steps from ``x``, each with its own forward; BatchNorm buffers are restored."""
        inner = unwrap(model)
        with torch.enable_grad(), frozen_bn_stats(inner):
            for _ in range(steps):
                x = x.detach().requires_grad_(True)
                fp = self.forward_with_features(inner, x)
                x = self.ascend(x, x0, self.input_gradient(x, fp.logits, fp.features, labels, targets))
        return x.detach()

    # -- standalone use ------------------------------------------------------------------------------------------
    def run(self, model: nn.Module, clips: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial clips ``(B, T, 3, H, W)`` within ``eps`` of ``clips`` (L_inf) and inside [0, 1].

        The model is left as found: parameters, ``.grad`` and BatchNorm buffers are untouched.
        """
        if clips.dim() != 5:
            raise ValueError(f"clips must be (B, T, C, H, W), got {tuple(clips.shape)}")
        if labels.shape != clips.shape[:1]:
            raise ValueError(f"labels must be ({clips.shape[0]},), got {tuple(labels.shape)}")
        x0 = clips.detach()
        first = self.first_step(model, x0, labels)
        if self.steps == 1:
            return first.adv
        return self.continue_from(model, first.adv, x0, labels, first.targets, self.steps - 1)

    def __call__(self, clips: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """:meth:`run` on the model given at construction."""
        if self.model is None:
            raise ValueError(f"{type(self).__name__} was built without a model; call .run(model, clips, labels)")
        return self.run(self.model, clips, labels)


class TemporalAdversarialAugmentation(ProjectedGradientAscent):
    """TA: PGD that maximises the CAM loss L_C of the non-key frames, Eq. (2)-(6).

    Args:
        model: a video model with a ``cam_layer`` (see :mod:`videotaf.models.base`); may be wrapped in DDP;
            ``None`` when the attack is only used through :meth:`run` / the objective.
        eps: L_inf budget in [0, 1] pixel units (paper: 64/255).
        step_size: beta of Eq. (6) (paper: 32/255).
        steps: K of Eq. (6) (paper: 1).
        num_nonkey: N of Eq. (4)-(5); ``None`` means every CAM frame (the paper's N = T). A value above the
            number of CAM frames T' (bLVNet-TAM's layer4 sees T/2) is clamped to T' with a warning, once.
        random_start: start from a uniform point of the eps-ball (off in the paper).
        options: the readings of Eq. (2)-(3) and of the target rule, and the CAM layer (:class:`TAOptions`;
            paper defaults).
        generator: ``torch.Generator`` for the random target labels and the random start.
    """

    uses_features = True

    def __init__(
        self,
        model: nn.Module | None,
        eps: float = 64 / 255,
        step_size: float = 32 / 255,
        steps: int = 1,
        num_nonkey: int | None = None,
        random_start: bool = False,
        options: TAOptions | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(model, eps, step_size, steps, random_start, generator)
        if num_nonkey is not None and num_nonkey < 1:
            raise ValueError(f"num_nonkey (N) must be >= 1 or None, got {num_nonkey}")
        self.num_nonkey = num_nonkey
        self.options = options or TAOptions()
        if model is not None:
            self.feature_layer(model)  # fail at construction, not in the middle of training
        self._warned_clamp = False

    def feature_layer(self, model: nn.Module) -> nn.Module:
        """The CAM layer of Eq. (2): ``options.cam_layer`` when set (raises :class:`~videotaf.cam.CamLayerError`
        for a name that is not a module of ``model``), else the model's own ``cam_layer``."""
        return cam_layer_of(model, self.options.cam_layer, field="TAOptions.cam_layer")

    def targets(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.options.target_rule == "true":
            return labels.long()
        if self.options.target_rule == "predicted":
            return logits.argmax(dim=1)
        if self.options.target_rule == "random" and logits.shape[1] >= 2:
            return random_other_labels(labels, logits.shape[1], self.generator)
        return select_targets(logits, labels, self.generator)

    def loss(
        self,
        logits: torch.Tensor,
        features: torch.Tensor | None,
        labels: torch.Tensor,
        targets: torch.Tensor,
        grad_scale: float = 1.0,
    ) -> torch.Tensor:
        """L_C, Eq. (5), of the CAMs (Eq. 2-3) for ``targets``."""
        if features is None:
            raise ValueError("TA's loss needs the CAM layer's output of the forward pass (forward_with_features)")
        o = self.options
        cams = cams_from_forward(
            logits, features, targets, o.score, o.relu, o.second_order, grad_scale, method=o.cam_method
        )
        cams_norm = normalize_cams(cams, o.cam_norm)
        frames = cams_norm.shape[1]
        n = frames if self.num_nonkey is None else self.num_nonkey
        if n > frames:
            if not self._warned_clamp:
                warnings.warn(
                    f"num_nonkey N={n} exceeds the {frames} frames of the CAM layer; attacking all {frames}",
                    stacklevel=2,
                )
                self._warned_clamp = True
            n = frames
        return cam_loss(cams_norm, n)


class CrossEntropyAugmentation(ProjectedGradientAscent):
    """Vanilla adversarial augmentation, Eq. (1): PGD maximising the cross-entropy of the true label.

    The CE-based baseline of Table 2a (and AdvProp's attack); same interface as
    :class:`TemporalAdversarialAugmentation`.
    """

    def __init__(
        self,
        model: nn.Module | None,
        eps: float = 64 / 255,
        step_size: float = 32 / 255,
        steps: int = 1,
        random_start: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(model, eps, step_size, steps, random_start, generator)

    def loss(
        self,
        logits: torch.Tensor,
        features: torch.Tensor | None,
        labels: torch.Tensor,
        targets: torch.Tensor,
        grad_scale: float = 1.0,
    ) -> torch.Tensor:
        """Eq. (1): the summed cross-entropy of the true labels (a sum, so the gradient does not shrink with B)."""
        return F.cross_entropy(logits.float(), labels, reduction="sum")
