"""Dual BatchNorm: the clean and adversarial paths of TAF share every weight except BatchNorm (Sec. 3.3, Fig. 2).

Following AdvProp (Xie et al. 2020), each BatchNorm gets an auxiliary copy used only by adversarial examples, so
their statistics never pollute the clean path used at inference.

How it is built, and why: each BatchNorm module keeps its identity, parameters and buffers, and has its class
swapped for a subclass that owns an ``aux_bn`` child. Hence

- the original ``state_dict`` keys are untouched (the auxiliary layer adds ``<name>.aux_bn.*``), so pretrained
  weights load before or after conversion and :func:`strip_dual_bn` gives back exactly the original keys;
- BatchNorm1d/2d/3d, SyncBatchNorm and custom subclasses (e.g. a BN fused with an activation) keep their own
  input checks and ``forward`` (timm's split BN turns every BN into a 2-D one and breaks on 5-D video tensors);
- the clean path is literally the original module, so before training it is bit-identical to the original model.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

_DUAL_CLASSES: dict[type, type] = {}


class _DualBatchNormMixin:
    """Routes ``forward`` to ``aux_bn`` while the adversarial path is active."""

    aux_bn: _BatchNorm
    use_aux: bool
    _base_class: type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_aux:
            out: torch.Tensor = self.aux_bn(x)
            return out
        base: torch.Tensor = super().forward(x)  # type: ignore[misc]
        return base


def _dual_class(base: type) -> type:
    cls = _DUAL_CLASSES.get(base)
    if cls is None:
        name = f"Dual{base.__name__}"
        cls = type(name, (_DualBatchNormMixin, base), {"_base_class": base, "__module__": __name__})
        cls.__qualname__ = name
        # Module-level name keeps models holding these classes picklable (torch.save of a whole module).
        globals()[name] = cls
        _DUAL_CLASSES[base] = cls
    return cls


def _is_dual(module: nn.Module) -> bool:
    return isinstance(module, _DualBatchNormMixin)


def _batchnorms(model: nn.Module) -> list[_BatchNorm]:
    """Every BatchNorm of the main network (auxiliary copies excluded)."""
    aux = {id(m.aux_bn) for m in model.modules() if _is_dual(m)}
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and id(m) not in aux]


def convert_dual_bn(model: nn.Module) -> nn.Module:
    """Give every BatchNorm1d/2d/3d and SyncBatchNorm of ``model`` an auxiliary copy, in place.

    The copy starts from the main layer's current weight, bias and running statistics. Idempotent.

    Returns:
        ``model`` itself.
    """
    for bn in _batchnorms(model):
        if _is_dual(bn):
            continue
        aux = copy.deepcopy(bn)
        bn.__class__ = _dual_class(type(bn))
        cast(_DualBatchNormMixin, bn).use_aux = False
        bn.add_module("aux_bn", aux)
    return model


def strip_dual_bn(model: nn.Module) -> nn.Module:
    """Drop the auxiliary BatchNorms, in place: the model and its ``state_dict`` keys are the original ones."""
    for module in list(model.modules()):
        if _is_dual(module):
            del module._modules["aux_bn"]
            del module.use_aux
            module.__class__ = cast(_DualBatchNormMixin, module)._base_class
    return model


def has_dual_bn(model: nn.Module) -> bool:
    """True when ``model`` holds at least one converted BatchNorm."""
    return any(_is_dual(m) for m in model.modules())


@contextmanager
def adversarial_path(model: nn.Module) -> Iterator[nn.Module]:
    """Within this context every converted BatchNorm of ``model`` uses its auxiliary copy (the adversarial path).

    A model without any BatchNorm (e.g. a video transformer) has nothing to split: the context is then a no-op.

    Raises:
        ValueError: when the model has BatchNorm layers but was not converted with :func:`convert_dual_bn`.
    """
    bns = _batchnorms(model)
    if bns and not all(_is_dual(bn) for bn in bns):
        raise ValueError("model has BatchNorm layers without auxiliary copies; call convert_dual_bn(model) first")
    duals = [cast(_DualBatchNormMixin, bn) for bn in bns]
    previous = [bn.use_aux for bn in duals]
    for bn in duals:
        bn.use_aux = True
    try:
        yield model
    finally:
        for bn, prev in zip(duals, previous):
            bn.use_aux = prev


def bn_buffers(model: nn.Module) -> list[torch.Tensor]:
    """The floating-point running statistics (mean and variance) of every BatchNorm, auxiliary ones included.

    For keeping BatchNorm statistics of both paths consistent across DDP ranks with an all-reduce.
    """
    out = []
    for m in model.modules():
        if isinstance(m, _BatchNorm) and m.track_running_stats:
            out += [b for b in (m.running_mean, m.running_var) if b is not None]
    return out


@contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Run forwards that must not move any BatchNorm statistic (running mean, variance, batch count).

    Lets an attack run the model in training mode (batch statistics, as the trainer sees it). The buffers are
    swapped for scratch copies and the original tensors put back on exit, so the originals are never written:
    their autograd version counters stay put and a graph built before (the shared clean forward of
    ``videotaf.objective``) can still be differentiated.
    """
    swapped = []
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            for name, buf in m._buffers.items():
                if buf is not None:
                    swapped.append((m, name, buf))
                    m._buffers[name] = buf.detach().clone()
    try:
        yield
    finally:
        for m, name, buf in swapped:
            m._buffers[name] = buf
