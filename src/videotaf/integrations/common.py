"""What the trainer integrations share: the method's settings and how a step's losses are read.

Eps and step size are in pixel units (fractions of the [0, 1] range, the paper's 64/255 and 32/255), whatever
normalisation the trainer's inputs carry; the integrations undo it before the attack.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from videotaf.attack import TAOptions
from videotaf.objective import METHODS, Objective, StepOutput, build_objective, uses_aux_norm


@dataclass(frozen=True)
class TAFSettings:
    """The fine-tuning method and its attack (the arguments of :func:`videotaf.objective.build_objective`).

    Attributes:
        method: ``plain``, ``ce_adv``, ``advprop`` or ``taf`` (Table 2a).
        alpha: Eq. (7)'s weight of the clean loss (paper: 0.7).
        eps, step_size: the L_inf budget and step of Eq. (6), in [0, 1] pixel units (paper: 64/255, 32/255).
        steps: PGD steps K (paper: 1).
        fraction: share of each batch that is attacked, in (0, 1] (1: the paper).
        num_nonkey: N of Eq. (4)-(5) (``None``: all frames).
        cam_layer: the module TA's Grad-CAM reads, by dotted name in the model (``None``: the model's own).
        dual_norm: normalisation kinds given an auxiliary copy (``videotaf.bn``: ``"auto"``, ``"none"`` or names);
            used by ``advprop`` and ``taf`` only.
    """

    method: str = "taf"
    alpha: float = 0.7
    eps: float = 64 / 255
    step_size: float = 32 / 255
    steps: int = 1
    fraction: float = 1.0
    num_nonkey: int | None = None
    cam_layer: str | None = None
    dual_norm: str | tuple[str, ...] = "auto"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("eps", "step_size"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is in [0, 1] pixel units (e.g. 64/255), got {value}")
        if self.cam_layer is not None and self.method != "taf":
            raise ValueError(f"cam_layer only applies to method 'taf', not {self.method!r}")

    @property
    def dual(self) -> bool:
        """Whether the method routes adversarial clips through auxiliary normalisation layers (Sec. 3.3)."""
        return uses_aux_norm(self.method)

    def objective(self, *, low_memory: bool = True) -> Objective:
        """The step of this method (:func:`~videotaf.objective.build_objective`); TA's random labels and the
        attacked rows come from the global RNG, so a trainer's saved RNG state makes a resumed run repeat them."""
        ta = TAOptions(cam_layer=self.cam_layer) if self.cam_layer is not None else None
        return build_objective(
            self.method,
            alpha=self.alpha,
            eps=self.eps,
            step_size=self.step_size,
            steps=self.steps,
            num_nonkey=self.num_nonkey,
            ta=ta,
            fraction=self.fraction,
            low_memory=low_memory,
        )


def step_losses(out: StepOutput) -> dict[str, torch.Tensor]:
    """The losses of one step, detached: ``total`` (Eq. 7), ``clean`` and, when present, ``adv`` and ``aux``.

    The one place the integrations read :class:`~videotaf.objective.StepOutput`'s named loss terms.
    """
    return dict(out.losses)
