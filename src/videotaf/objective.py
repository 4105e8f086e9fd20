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

The first PGD step is :meth:`videotaf.attack.ProjectedGradientAscent.first_step` in both schedules; the fused
one asks it to run the training forward. A random start (``random_start=True``, off in the paper) attacks from
a point other than the clean clip, so nothing can be shared: :func:`build_objective` then builds the naive
schedule, and ``Objective(fused=True)`` with such an attack raises.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal, cast, get_args

import torch
import torch.nn.functional as F
from torch import nn

from videotaf.attack import (
    CrossEntropyAugmentation,
    ProjectedGradientAscent,
    TAOptions,
    TemporalAdversarialAugmentation,
)
from videotaf.bn import adversarial_path
from videotaf.models.base import split_output, unwrap

Method = Literal["plain", "ce_adv", "advprop", "taf"]
METHODS: tuple[Method, ...] = get_args(Method)


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
    model: nn.Module, logits: torch.Tensor, aux_logits: torch.Tensor | None, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The model's training loss for one forward: CE, plus the weighted auxiliary-head CE if it has one.

    Args:
        model: the model (possibly wrapped); its ``aux_loss_weight`` weights the auxiliary CE.
        logits: ``(B, classes)``; aux_logits: ``(B, classes)`` or None; labels: ``(B,)``.

    Returns:
        ``(total, aux)`` where ``aux`` is the unweighted auxiliary CE or None.
    """
    loss = F.cross_entropy(logits.float(), labels)
    weight = float(getattr(unwrap(model), "aux_loss_weight", 0.0) or 0.0)
    if aux_logits is None or weight == 0.0:
        return loss, None
    aux = F.cross_entropy(aux_logits.float(), labels)
    return loss + weight * aux, aux


class Objective:
    """One training step of Eq. (7) (or of an ablation) including its backward pass.

    Args:
        method: one of :data:`METHODS` (recorded; the behaviour follows from the other arguments).
        attack: the adversarial augmentation (``None`` for plain training); used through
            :meth:`~videotaf.attack.ProjectedGradientAscent.first_step` with the model given to :meth:`step`.
        alpha: weight of the clean loss in Eq. (7) (paper: 0.7).
        dual_bn: route adversarial clips through the auxiliary BatchNorm (``videotaf.bn``); the caller converts
            the model with ``convert_dual_bn`` before building the optimiser.
        fused: share the clean forward with the attack (see the module docstring); ``False`` runs the standalone
            attack first, the naive schedule, for comparison.
    """

    def __init__(
        self,
        method: Method,
        attack: ProjectedGradientAscent | None,
        alpha: float = 0.7,
        dual_bn: bool = False,
        fused: bool = True,
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if fused and attack is not None and attack.random_start:
            raise ValueError("a random-start attack cannot share the clean forward pass; use fused=False")
        self.method = method
        self.attack = attack
        self.alpha = float(alpha)
        self.needs_dual_bn = bool(dual_bn)
        self.fused = fused

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
        run_backward = backward or _plain_backward
        attack = self.attack
        if attack is None:
            logits, aux_logits = split_output(model(clips))
            loss, aux = model_loss(model, logits, aux_logits, labels)
            run_backward(loss)
            return StepOutput(loss.detach(), loss.detach(), None, _d(aux), logits.detach(), None, None)

        x0 = clips.detach()
        if self.fused:
            # Through ``model`` itself (DDP included): the attack's first forward is also the clean path of the loss.
            first = attack.first_step(model, x0, labels, training_forward=True)
            logits, aux_logits, adv = first.clean.logits, first.clean.aux_logits, first.adv
            if attack.steps > 1:
                adv = attack.continue_from(model, adv, x0, labels, first.targets, attack.steps - 1)
        else:
            adv = attack.run(model, x0, labels)
            logits, aux_logits = split_output(model(x0))
        loss_clean, aux = model_loss(model, logits, aux_logits, labels)

        with adversarial_path(unwrap(model)) if self.needs_dual_bn else nullcontext():
            logits_adv, aux_adv = split_output(model(adv))
            loss_adv, _ = model_loss(model, logits_adv, aux_adv, labels)
        loss = self.alpha * loss_clean + (1.0 - self.alpha) * loss_adv
        run_backward(loss)
        return StepOutput(
            loss.detach(),
            loss_clean.detach(),
            loss_adv.detach(),
            _d(aux),
            logits.detach(),
            logits_adv.detach(),
            adv.detach(),
        )


def _plain_backward(loss: torch.Tensor) -> None:
    loss.backward()  # type: ignore[no-untyped-call]


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
    fused: bool | None = None,
    generator: torch.Generator | None = None,
    ta: TAOptions | None = None,
) -> Objective:
    """The objective of a fine-tuning method (see the module docstring); paper defaults.

    Args:
        method: ``plain``, ``ce_adv``, ``advprop`` or ``taf`` (:data:`METHODS`).
        alpha: Eq. (7)'s weight of the clean loss. eps, step_size, steps: the PGD budget of Eq. (6).
        num_nonkey: N of Eq. (4)-(5) (TA only; ``None`` = all frames).
        random_start: start PGD from a random point of the eps-ball (forces the naive schedule).
        fused: share the clean forward with the attack; default: whenever the attack allows it.
        generator: for TA's random target labels and the random start.
        ta: TA's readings of the paper (:class:`~videotaf.attack.TAOptions`); only for ``method="taf"``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if ta is not None and method != "taf":
        raise ValueError(f"TA options only apply to method 'taf', not {method!r}")
    if method == "plain":
        return Objective("plain", None, alpha=1.0)
    attack: ProjectedGradientAscent
    if method == "taf":
        attack = TemporalAdversarialAugmentation(
            None, eps, step_size, steps, num_nonkey, random_start, options=ta, generator=generator
        )
    else:
        attack = CrossEntropyAugmentation(None, eps, step_size, steps, random_start, generator)
    return Objective(
        cast(Method, method),
        attack,
        alpha=alpha,
        dual_bn=method in ("advprop", "taf"),
        fused=not random_start if fused is None else fused,
    )
