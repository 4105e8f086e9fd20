"""The TAF training objective, Eq. (7), and its ablations (Table 2a).

``alpha * L(clean through the main BN) + (1 - alpha) * L(adversarial through the auxiliary BN)``, where ``L`` is
the model's own training loss: cross-entropy, plus ``aux_loss_weight * CE(aux_logits)`` for models with an
auxiliary training head (TPN).

Methods (``build_objective``):

========  =====================================  ============  ==================================
method    adversarial example                    auxiliary BN  paper
========  =====================================  ============  ==================================
plain     none (CE on clean clips only)          no            the equal-epoch control
ce_adv    PGD on the cross-entropy, Eq. (1)      no            "CE-based" fine-tuning, Table 2a
advprop   PGD on the cross-entropy, Eq. (1)      yes           AdvProp [Xie et al. 2020]
taf       TA, PGD on the CAM loss, Eq. (2)-(6)   yes           TAF, Sec. 3.3
========  =====================================  ============  ==================================

Cost. A plain step is one forward and one backward (about 3 forward-equivalents). The fused schedule of
:meth:`Objective.step` shares the clean forward between the loss and the attack (the input requires grad), so at
K = 1 a TAF step is: the clean forward (1), one input-only backward for the attack (~1, plus a backward through
the head for the Grad-CAM weights), then one backward of the summed loss through the clean and the adversarial
graphs (2 + 2) after the adversarial forward (1): about 7/3 of a plain step; each further PGD step adds a forward
and an input backward (11/3 at K = 3). A single backward also means DDP reduces gradients once per step.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from videotaf.attack import CrossEntropyAugmentation, TemporalAdversarialAugmentation, _ProjectedGradientAscent
from videotaf.bn import adversarial_path
from videotaf.cam import unwrap

METHODS = ("plain", "ce_adv", "advprop", "taf")


@dataclass
class StepOutput:
    """What one training step produced; every tensor is detached."""

    loss: torch.Tensor
    loss_clean: torch.Tensor
    loss_adv: torch.Tensor | None
    loss_aux: torch.Tensor | None
    logits_clean: torch.Tensor
    logits_adv: torch.Tensor | None
    adv_clips: torch.Tensor | None


def model_loss(
    model: nn.Module, logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The model's training loss for its latest forward: CE, plus the weighted auxiliary-head CE if it has one.

    Returns:
        ``(total, aux)`` where ``aux`` is the unweighted auxiliary CE or None.
    """
    loss = F.cross_entropy(logits.float(), labels)
    inner = unwrap(model)
    aux_logits = getattr(inner, "aux_logits", None)
    weight = float(getattr(inner, "aux_loss_weight", 0.0) or 0.0)
    if aux_logits is None or weight == 0.0:
        return loss, None
    aux = F.cross_entropy(aux_logits.float(), labels)
    return loss + weight * aux, aux


class Objective:
    """One training step of Eq. (7) (or of an ablation) including its backward pass.

    Args:
        attack_factory: builds the attack for a model (``None`` for plain training).
        alpha: weight of the clean loss in Eq. (7) (paper: 0.7).
        dual_bn: route adversarial clips through the auxiliary BatchNorm (``videotaf.bn``); the caller converts
            the model with ``convert_dual_bn`` before building the optimiser.
        fused: share the clean forward with the attack (see the module docstring); ``False`` runs the standalone
            attack first, the naive schedule, for comparison.
    """

    def __init__(
        self,
        method: str,
        attack_factory: Callable[[nn.Module], _ProjectedGradientAscent] | None,
        alpha: float = 0.7,
        dual_bn: bool = False,
        fused: bool = True,
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.method = method
        self.attack_factory = attack_factory
        self.alpha = float(alpha)
        self.needs_dual_bn = bool(dual_bn)
        self.fused = fused
        self._attacks: dict[int, _ProjectedGradientAscent] = {}

    def attack_for(self, model: nn.Module) -> _ProjectedGradientAscent | None:
        """The attack bound to ``model`` (built once per model)."""
        if self.attack_factory is None:
            return None
        key = id(unwrap(model))
        if key not in self._attacks:
            self._attacks[key] = self.attack_factory(model)
        return self._attacks[key]

    def step(
        self,
        model: nn.Module,
        clips: torch.Tensor,
        labels: torch.Tensor,
        backward: Callable[[torch.Tensor], None] | None = None,
    ) -> StepOutput:
        """Forward pass(es) and ONE backward of the step's loss.

        Args:
            model: the model, possibly wrapped in DDP; in training mode for training.
            clips: ``(B, T, 3, H, W)`` in [0, 1].
            labels: ``(B,)`` long.
            backward: called with the scalar loss (default ``loss.backward()``; pass e.g.
                ``lambda l: scaler.scale(l).backward()`` for mixed precision).

        Call ``optimizer.zero_grad()`` before and ``optimizer.step()`` after.
        """
        backward = backward or (lambda loss: loss.backward())
        attack = self.attack_for(model)
        if attack is None:
            logits = model(clips)
            loss, aux = model_loss(model, logits, labels)
            backward(loss)
            return StepOutput(loss.detach(), loss.detach(), None, _d(aux), logits.detach(), None, None)

        x0 = clips.detach()
        if self.fused and not attack.random_start:
            x = x0.clone().requires_grad_(True)
            # Through ``model`` itself (DDP included): this forward is also the clean path of the loss.
            logits, features = attack.forward_with_features(model, x)
            loss_clean, aux = model_loss(model, logits, labels)
            targets = attack.targets(logits.detach(), labels)
            grad = attack.input_gradient(x, logits, features, labels, targets, retain_graph=True)
            adv = attack.ascend(x, x0, grad)
            if attack.steps > 1:
                adv = attack.continue_from(adv, x0, labels, targets, attack.steps - 1)
        else:
            adv = attack(x0, labels)
            logits = model(x0)
            loss_clean, aux = model_loss(model, logits, labels)

        with adversarial_path(unwrap(model)) if self.needs_dual_bn else nullcontext():
            logits_adv = model(adv)
            loss_adv, _ = model_loss(model, logits_adv, labels)
        loss = self.alpha * loss_clean + (1.0 - self.alpha) * loss_adv
        backward(loss)
        return StepOutput(
            loss.detach(),
            loss_clean.detach(),
            loss_adv.detach(),
            _d(aux),
            logits.detach(),
            logits_adv.detach(),
            adv.detach(),
        )


def _d(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()


def build_objective(
    method: str,
    *,
    alpha: float = 0.7,
    eps: float = 64 / 255,
    step_size: float = 32 / 255,
    steps: int = 1,
    num_nonkey: int | None = None,
    random_start: bool = False,
    fused: bool = True,
    generator: torch.Generator | None = None,
    **ta_options: object,
) -> Objective:
    """The objective of a fine-tuning method (see the module docstring); paper defaults.

    ``ta_options`` go to :class:`~videotaf.attack.TemporalAdversarialAugmentation` (``score``, ``cam_norm``,
    ``relu``, ``target_rule``, ``second_order``) and are only accepted for ``method="taf"``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if ta_options and method != "taf":
        raise ValueError(f"options {sorted(ta_options)} only apply to method 'taf', not {method!r}")
    if method == "plain":
        return Objective(method, None, alpha=1.0)

    def make_ce(model: nn.Module) -> _ProjectedGradientAscent:
        return CrossEntropyAugmentation(model, eps, step_size, steps, random_start, generator)

    def make_ta(model: nn.Module) -> _ProjectedGradientAscent:
        return TemporalAdversarialAugmentation(
            model, eps, step_size, steps, num_nonkey, random_start, generator=generator, **ta_options
        )

    factory = make_ta if method == "taf" else make_ce
    return Objective(method, factory, alpha=alpha, dual_bn=method in ("advprop", "taf"), fused=fused)
