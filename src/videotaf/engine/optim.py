"""SGD with the reference protocols' LR groups and per-iteration LR schedules.

Groups (TSM protocol, used by all four models' official code bases):

- ``decay``:    conv / linear weights outside the classifier, LR x1, weight decay
- ``no_decay``: biases and every normalisation parameter (BatchNorm incl. the auxiliary BN of Sec. 3.3,
  GroupNorm, LayerNorm), LR x1, no weight decay
- ``fc_weight``: classifier weights, LR x ``fc_lr_mult_weight`` (5), weight decay
- ``fc_bias``:   classifier biases, LR x ``fc_lr_mult_bias`` (10), no weight decay

The schedule is a multiplicative factor of the fractional epoch ``e = step / steps_per_epoch``: linear warm-up
over ``warmup_epochs``, then ``gamma ** #{milestones <= e}`` (step) or a half cosine to 0 at ``epochs``. The TAF
fine-tuning protocol (Sec. 4.1) is ``epochs=15, schedule=step, milestones=[10], gamma=0.1``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from videotaf.config import OptimConfig
from videotaf.models.base import unwrap

_NORM_TYPES: tuple[type, ...] = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Split the trainable parameters of ``model`` into the four groups of the module docstring.

    Each group carries ``name`` and ``lr_mult``; its ``lr`` is ``cfg.lr * lr_mult``. Empty groups are left out.
    Classifier parameters come from ``model.classifier`` when the model has one.
    """
    model = unwrap(model)
    classifier_ids: set[int] = set()
    try:
        head = model.classifier
    except (AttributeError, NotImplementedError):
        head = None
    if isinstance(head, nn.Module):
        classifier_ids = {id(p) for p in head.parameters()}

    norm_param_ids = {id(p) for m in model.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters(False)}
    groups: dict[str, list[nn.Parameter]] = {"decay": [], "no_decay": [], "fc_weight": [], "fc_bias": []}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        is_bias = p.ndim <= 1 or name.endswith(".bias") or name == "bias"
        if id(p) in classifier_ids:
            groups["fc_bias" if is_bias else "fc_weight"].append(p)
        elif id(p) in norm_param_ids or is_bias:
            groups["no_decay"].append(p)
        else:
            groups["decay"].append(p)
    spec = {
        "decay": (1.0, cfg.weight_decay),
        "no_decay": (1.0, 0.0),
        "fc_weight": (cfg.fc_lr_mult_weight, cfg.weight_decay),
        "fc_bias": (cfg.fc_lr_mult_bias, 0.0),
    }
    out = []
    for gname, params in groups.items():
        if not params:
            continue
        mult, wd = spec[gname]
        out.append({"params": params, "name": gname, "lr_mult": mult, "lr": cfg.lr * mult, "weight_decay": wd})
    return out


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.SGD:
    """SGD (momentum, optional Nesterov) over :func:`param_groups`.

    Call after ``convert_dual_bn`` so the auxiliary BN parameters are included (in ``no_decay``).
    """
    return torch.optim.SGD(
        param_groups(model, cfg),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )


def lr_factor(epoch: float, cfg: OptimConfig) -> float:
    """Multiplier of the base LR at fractional epoch ``epoch`` (0-based)."""
    if cfg.warmup_epochs > 0 and epoch < cfg.warmup_epochs:
        warm = (epoch + 1e-12) / cfg.warmup_epochs
    else:
        warm = 1.0
    if cfg.schedule == "step":
        # A milestone m applies from the first iteration of epoch m on; the float guard keeps e = 9.9999 in epoch 9.
        decays = bisect.bisect_right(list(cfg.milestones), math.floor(epoch + 1e-9))
        return warm * cfg.gamma**decays
    start = cfg.warmup_epochs
    span = max(cfg.epochs - start, 1e-12)
    progress = min(max((epoch - start) / span, 0.0), 1.0)
    return warm * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration :class:`~torch.optim.lr_scheduler.LambdaLR` following :func:`lr_factor`.

    Call ``scheduler.step()`` after every ``optimizer.step()``.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch} (is the training set empty?)")
    fn: Callable[[int], float] = lambda step: lr_factor(step / steps_per_epoch, cfg)  # noqa: E731
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The current LR of the x1 groups (what ``metrics.jsonl`` reports as ``lr``)."""
    for g in optimizer.param_groups:
        return g["lr"] / g.get("lr_mult", 1.0)
    return 0.0
