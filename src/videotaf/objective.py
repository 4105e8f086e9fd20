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

The auxiliary-BN column is each method's default (``dual_norm="auto"``); ``build_objective(dual_norm="aux")`` or
``"shared"`` (config ``adversarial.dual_norm``) sets it for any adversarial method, e.g. ``ce_adv`` through the
auxiliary BN (AdvProp's normalisation with the CE attack) or ``taf`` through the shared one.

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

Attacking a fraction of the batch (``fraction`` = rho < 1; the main saving of Fast AdvProp, Mei et al., ICLR 2022,
which attacks one sample in five). Each step draws ``k = max(1, round(rho * B))`` rows (Python's ``round``,
half to even): ``torch.randperm(B, generator=g)[:k]`` sorted ascending, with ``g`` the attack's generator
(``build_objective(generator=...)``; the global RNG when None), drawn before anything else of the step, so TA's
random target labels then come from the same stream for the k rows. Nothing is drawn when ``k == B``: the step
is then the full one. The attacked rows are attacked exactly as the standalone attack would attack that
sub-batch (:meth:`~videotaf.attack.ProjectedGradientAscent.run`: its own forwards through the unwrapped model,
batch statistics of the k rows, BatchNorm buffers untouched), then the clean forward runs on all B rows and the
adversarial forward on the k adversarial rows. The clean forward is not shared with the attack here: sharing it
would make the attack's input backward traverse the whole B-row graph (cost 1, not rho; the other rows'
gradients are not even zero, BatchNorm couples them) and would cost ``4 + 3 rho`` against this schedule's
``3 + 5 rho`` at K = 1 (cheaper only for rho > 1/2):

    attack forward (rho) + head backward (0) + input backward (rho) + clean forward (1) + adversarial forward
    (rho) + one backward through both graphs (2 + 2 rho) = 3 + 5 rho, i.e. 1 + 5 rho / 3 of a plain step
    (1.42x at rho = 1/4); each further PGD step adds 2 rho. ``fused`` has no effect when rho < 1.

Eq. (7) then reads ``alpha * mean CE over the B clean rows + (1 - alpha) * mean CE over the k attacked rows``:
each term is a mean over the clips it is computed on, so alpha keeps its meaning (the weight of the clean
term) whatever rho is; per attacked clip the adversarial gradient is B / k times larger than at rho = 1.
BatchNorm caveat: the auxiliary BatchNorm (and the attack's forwards) then normalise over k clips (per DDP
process), so their batch statistics are noisier, and a layer that needs more than one value per channel (a
BatchNorm1d on pooled features) fails when k = 1; keep k at a few clips.

Memory (``low_memory``). The fused step keeps the clean and the adversarial graphs alive together until its one
backward: twice a plain step's activation memory. With ``low_memory=True`` the clean loss's backward
(``alpha * L_clean``, through the given ``backward`` callable) runs right after the attack's first input
gradient, which frees the clean graph before the adversarial forward; the adversarial loss's backward
(``(1 - alpha) * L_adv``) follows. Same passes and gradients (up to float summation order), peak activation
memory about one graph, and no measurable time (0.99-1.05x the single-backward step, BENCHMARKS.md), so it is
the default; ``low_memory=False`` keeps the single backward. Under DistributedDataParallel the clean forward and its backward run in
``model.no_sync()``, so the gradients are still reduced once per step, by the second backward; parameters that
second backward cannot reach (the main-path BatchNorm affine parameters, used only by the clean forward) get a
zero-weighted term in it so that DDP (``find_unused_parameters=False``) still sees every gradient ready.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal, cast, get_args

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

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
#: Which normalisation the adversarial clips go through (:func:`build_objective`): ``auto`` (the method's own:
#: auxiliary for advprop and taf, shared for ce_adv), ``aux`` or ``shared``.
DualNorm = Literal["auto", "aux", "shared"]
DUAL_NORMS: tuple[DualNorm, ...] = get_args(DualNorm)


@dataclass
class StepOutput:
    """What one training step produced; every tensor is detached.

    ``losses`` maps each loss term's name to its scalar: ``"total"`` (the step's loss, Eq. 7), ``"clean"`` (the
    model's loss on the clean clips), and when the step has them ``"adv"`` (the model's loss on the attacked
    clips, their mean) and ``"aux"`` (the unweighted auxiliary-head CE of the clean forward). The training loop
    sums, checks, logs and checkpoints them by these names, so a new term is one new key here.
    ``counts`` holds ``"clips"`` (B) and ``"attacked"`` (k, the rows that took the adversarial path; 0 without
    an attack). ``adv_rows`` are the attacked rows of the batch (``None``: every row; see ``fraction`` in the
    module docstring); ``logits_adv`` has one row per attacked clip, in the order of ``adv_rows``.
    ``adv_clips`` always has the batch's B rows: the rows that were not attacked hold the clean clips unchanged.
    """

    losses: dict[str, torch.Tensor]
    counts: dict[str, int]
    logits_clean: torch.Tensor
    logits_adv: torch.Tensor | None
    adv_clips: torch.Tensor | None
    adv_rows: torch.Tensor | None = None


def _named(**terms: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The detached loss terms that exist, by name (a term that is None is absent)."""
    return {name: t.detach() for name, t in terms.items() if t is not None}


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
        fraction: the share rho in (0, 1] of each batch that is attacked and takes the adversarial path
            (``max(1, round(rho * B))`` rows drawn per step from the attack's generator; module docstring).
        low_memory: run the clean loss's backward before the adversarial forward (two backwards, the clean
            graph freed early; under DDP still one gradient reduction per step; module docstring).
    """

    def __init__(
        self,
        method: Method,
        attack: ProjectedGradientAscent | None,
        alpha: float = 0.7,
        dual_bn: bool = False,
        fused: bool = True,
        fraction: float = 1.0,
        low_memory: bool = True,
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if fused and attack is not None and attack.random_start:
            raise ValueError("a random-start attack cannot share the clean forward pass; use fused=False")
        self.method = method
        self.attack = attack
        self.alpha = float(alpha)
        self.needs_dual_bn = bool(dual_bn)
        self.fused = fused
        self.fraction = float(fraction)
        self.low_memory = bool(low_memory)

    def attacked_rows(self, batch: int, device: torch.device) -> torch.Tensor | None:
        """The rows of a ``batch``-row step to attack, drawn from the attack's generator; ``None`` = all rows.

        ``k = max(1, round(fraction * batch))``; nothing is drawn when ``k == batch``. Otherwise one
        ``torch.randperm(batch, generator=g)`` draw, its first k entries sorted ascending (long, on ``device``).
        """
        k = max(1, round(self.fraction * batch))
        if k >= batch:
            return None
        gen = self.attack.generator if self.attack is not None else None
        draw_device = gen.device if gen is not None else device
        perm = torch.randperm(batch, generator=gen, device=draw_device)
        return perm[:k].sort().values.to(device)

    def step(
        self,
        model: nn.Module,
        clips: torch.Tensor,
        labels: torch.Tensor,
        backward: Callable[[torch.Tensor], None] | None = None,
    ) -> StepOutput:
        """Forward pass(es) and the backward of the step's loss: ONE backward, or two with ``low_memory``.

        Args:
            model: the model, possibly wrapped in DDP; in training mode for training.
            clips: ``(B, T, 3, H, W)`` in [0, 1].
            labels: ``(B,)`` long.
            backward: called with the scalar loss (default ``loss.backward()``; pass e.g.
                ``lambda l: scaler.scale(l).backward()`` for mixed precision); with ``low_memory`` it is called
                twice, with ``alpha * L_clean`` and then with ``(1 - alpha) * L_adv``.

        Call ``optimizer.zero_grad()`` before and ``optimizer.step()`` after.
        """
        run_backward = backward or _plain_backward
        attack = self.attack
        if attack is None:
            logits, aux_logits = split_output(model(clips))
            loss, aux = model_loss(model, logits, aux_logits, labels)
            run_backward(loss)
            counts = {"clips": int(labels.shape[0]), "attacked": 0}
            return StepOutput(_named(total=loss, clean=loss, aux=aux), counts, logits.detach(), None, None)

        x0 = clips.detach()
        rows = self.attacked_rows(x0.shape[0], x0.device) if self.fraction < 1.0 else None
        adv_labels = labels if rows is None else labels[rows]
        # With low_memory the clean forward and its backward are not reduced by DDP: the second backward is.
        with _no_sync(model) if self.low_memory else nullcontext():
            targets: torch.Tensor | None = None  # set when the fused attack has further PGD steps to take
            if rows is None and self.fused:
                # Through ``model`` itself (DDP included): the attack's first forward is also the clean path.
                first = attack.first_step(model, x0, labels, training_forward=True)
                logits, aux_logits, adv = first.clean.logits, first.clean.aux_logits, first.adv
                targets = first.targets if attack.steps > 1 else None
                del first  # its CAM-layer output would outlive the clean graph (low_memory)
            else:
                # The standalone attack on the attacked rows, then the clean forward of the whole batch.
                adv = attack.run(model, x0 if rows is None else x0[rows], adv_labels)
                logits, aux_logits = split_output(model(x0))
            loss_clean, aux = model_loss(model, logits, aux_logits, labels)
            if self.low_memory:
                run_backward(self.alpha * loss_clean)  # frees the clean graph before the adversarial forward
        if targets is not None:
            adv = attack.continue_from(model, adv, x0, labels, targets, attack.steps - 1)

        with adversarial_path(unwrap(model)) if self.needs_dual_bn else nullcontext():
            logits_adv, aux_adv = split_output(model(adv))
            loss_adv, _ = model_loss(model, logits_adv, aux_adv, adv_labels)
        loss = self.alpha * loss_clean + (1.0 - self.alpha) * loss_adv
        if self.low_memory:
            adv_term = (1.0 - self.alpha) * loss_adv
            unreached = _ddp_unreached(model, loss_adv)
            run_backward(adv_term if unreached is None else adv_term + unreached)
        else:
            run_backward(loss)
        adv_clips = adv.detach()
        if rows is not None:
            adv_clips = x0.clone().index_copy_(0, rows, adv_clips)
        counts = {"clips": int(labels.shape[0]), "attacked": int(adv_labels.shape[0])}
        losses = _named(total=loss, clean=loss_clean, adv=loss_adv, aux=aux)
        return StepOutput(losses, counts, logits.detach(), logits_adv.detach(), adv_clips, rows)


def _no_sync(model: nn.Module) -> AbstractContextManager[object]:
    """``model.no_sync()`` for a DistributedDataParallel wrapper, nothing otherwise."""
    if isinstance(model, DistributedDataParallel):
        return model.no_sync()
    return nullcontext()


def _ddp_unreached(model: nn.Module, loss: torch.Tensor) -> torch.Tensor | None:
    """Zero times the parameters DDP waits for that ``loss``'s graph does not reach (None when none or no DDP).

    The second backward of a ``low_memory`` step is the one DDP reduces; the main-path BatchNorm parameters got
    their gradient in the first one (under ``no_sync``) and are not in the adversarial graph. Without
    ``find_unused_parameters`` DDP would wait for them forever; a zero-weighted term marks them ready, so their
    accumulated gradient is reduced with the rest. Found by walking the autograd graph of ``loss``.
    """
    if not isinstance(model, DistributedDataParallel) or model.find_unused_parameters:
        return None
    reached: set[int] = set()
    seen: set[object] = set()
    stack = [loss.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        variable = getattr(fn, "variable", None)
        if isinstance(variable, torch.Tensor):
            reached.add(id(variable))
        stack.extend(nxt for nxt, _ in fn.next_functions)
    ignored = set(getattr(model, "parameters_to_ignore", ()))
    missing = [
        p
        for name, p in model.module.named_parameters()
        if p.requires_grad and id(p) not in reached and name not in ignored
    ]
    if not missing:
        return None
    return 0.0 * torch.stack([p.sum().float() for p in missing]).sum()


def _plain_backward(loss: torch.Tensor) -> None:
    loss.backward()  # type: ignore[no-untyped-call]


def uses_aux_norm(method: str, dual_norm: DualNorm = "auto") -> bool:
    """Whether ``method``'s adversarial clips go through the auxiliary normalisation (Sec. 3.3): under ``"auto"``
    the method's own choice (AdvProp and TAF, the table above), else as ``dual_norm`` says; never for ``plain``,
    which has no adversarial clips."""
    if method == "plain":
        return False
    if dual_norm == "auto":
        return method in ("advprop", "taf")
    return dual_norm == "aux"


def build_objective(  # size: the method's keyword options, the README's API and the adversarial config section
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
    fraction: float = 1.0,
    low_memory: bool = True,
    dual_norm: DualNorm = "auto",
) -> Objective:
    """The objective of a fine-tuning method (see the module docstring); paper defaults.

    Args:
        method: ``plain``, ``ce_adv``, ``advprop`` or ``taf`` (:data:`METHODS`).
        alpha: Eq. (7)'s weight of the clean loss. eps, step_size, steps: the PGD budget of Eq. (6).
        num_nonkey: N of Eq. (4)-(5) (TA only; ``None`` = all frames).
        random_start: start PGD from a random point of the eps-ball (forces the naive schedule).
        fused: share the clean forward with the attack; default: whenever the attack allows it.
        generator: for TA's random target labels, the random start and the rows ``fraction`` attacks.
        ta: TA's readings of the paper and its CAM layer (:class:`~videotaf.attack.TAOptions`, e.g.
            ``TAOptions(cam_layer="backbone.layer3")``); only for ``method="taf"``.
        fraction: the share of each batch that is attacked, in (0, 1] (1: every clip, the paper; module docstring).
        low_memory: the clean loss's backward before the adversarial forward (module docstring); the default:
            half the fused step's activation memory at the same cost (``benchmarks/step_cost.py``).
        dual_norm: the normalisation of the adversarial path (:data:`DUAL_NORMS`): ``"auto"`` the method's own
            (the table of the module docstring: auxiliary for ``advprop`` and ``taf``, Sec. 3.3; shared for
            ``ce_adv``), ``"aux"`` the auxiliary copies for any method (e.g. ``ce_adv`` through its own BN),
            ``"shared"`` the main normalisation for any method (e.g. ``taf`` without Sec. 3.3's split). The
            result is :attr:`Objective.needs_dual_bn`: the caller converts the model when it is true.

    ``fraction``, ``low_memory`` and ``dual_norm`` do not apply to ``plain`` (ignored, like ``alpha``): it has no
    adversarial path.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if ta is not None and method != "taf":
        raise ValueError(f"TA options only apply to method 'taf', not {method!r}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if dual_norm not in DUAL_NORMS:
        raise ValueError(f"dual_norm must be one of {', '.join(DUAL_NORMS)}; got {dual_norm!r}")
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
        dual_bn=uses_aux_norm(method, dual_norm),
        fused=not random_start if fused is None else fused,
        fraction=fraction,
        low_memory=low_memory,
    )
