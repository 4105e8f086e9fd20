"""Dual normalisation: the clean and adversarial paths of TAF share every weight except the normalisation layers
(Sec. 3.3, Fig. 2).

Following AdvProp (Xie et al. 2020), each normalisation layer gets an auxiliary copy used only by adversarial
examples, so that their statistics (BatchNorm) and their affine parameters (every kind) never pollute the clean
path used at inference. The paper splits BatchNorm; video transformers (MViT, Swin3D, VideoMAE, TimeSformer,
ViViT) have only LayerNorm, whose copy is a copy of its affine parameters: it has no statistics to split, and
for AdvProp-style training separating the affine parameters matters more than the statistics (Zhang et al.
2024, arXiv 2403.19150).

Kinds (:data:`NORM_KINDS`): ``"batchnorm"`` (BatchNorm1d/2d/3d, SyncBatchNorm and their subclasses),
``"layernorm"`` and ``"groupnorm"`` (with affine parameters; a parameter-free LayerNorm/GroupNorm has nothing to
split). ``kinds="auto"`` (the default, what ``videotaf train``/``finetune`` uses) takes whatever the model has:

- a model that declares ``dual_norm_kinds`` (:mod:`videotaf.models.base`) gets exactly those (``()`` opts out);
- otherwise, a model with any BatchNorm gets dual BatchNorm only (the paper's setting; any LayerNorm it also has
  stays shared);
- otherwise its LayerNorm and GroupNorm layers are converted.

A model with nothing of the requested kinds to split triggers one ``UserWarning`` naming its class: TAF then
trains without a separate adversarial path.

How it is built, and why: each normalisation module keeps its identity, parameters and buffers, and has its class
swapped for a subclass that owns an auxiliary child. Hence

- the original ``state_dict`` keys are untouched (the auxiliary layer adds ``<name>.aux_bn.*``, for every kind:
  the checkpoint and export code recognise auxiliary entries by that name), so pretrained weights load before or
  after conversion and :func:`strip_dual_norm` gives back exactly the original keys;
- BatchNorm1d/2d/3d, SyncBatchNorm and custom subclasses (e.g. a BN fused with an activation, a channels-first
  LayerNorm) keep their own input checks and ``forward`` (timm's split BN turns every BN into a 2-D one and breaks
  on 5-D video tensors);
- the clean path is literally the original module, so before training it is bit-identical to the original model.

``convert_dual_bn`` / ``strip_dual_bn`` / ``has_dual_bn`` are the BatchNorm-era names: the first converts
BatchNorm only, the other two act on every kind.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from videotaf.models.base import NORM_KIND_NAMES

#: The normalisation kinds :func:`convert_dual_norm` can split, and the module classes of each.
# The kinds are named by the models' contract (a model may declare ``dual_norm_kinds``); here, their classes.
NORM_KINDS: dict[str, tuple[type[nn.Module], ...]] = dict(
    zip(NORM_KIND_NAMES, ((_BatchNorm,), (nn.LayerNorm,), (nn.GroupNorm,)), strict=True)
)
#: Name of the auxiliary child of every converted layer (and so of its ``state_dict`` entries).
AUX_NAME = "aux_bn"

_DUAL_CLASSES: dict[type[nn.Module], type[nn.Module]] = {}


class _DualNormMixin:
    """Routes ``forward`` to ``aux_bn`` (the auxiliary copy) while the adversarial path is active."""

    aux_bn: nn.Module
    use_aux: bool
    _base_class: type[nn.Module]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_aux:
            out: torch.Tensor = self.aux_bn(x)
            return out
        return super().forward(x)  # type: ignore[misc, no-any-return]


def _dual_class(base: type[nn.Module]) -> type[nn.Module]:
    cls = _DUAL_CLASSES.get(base)
    if cls is None:
        name = f"Dual{base.__name__}"
        cls = type(name, (_DualNormMixin, base), {"_base_class": base, "__module__": __name__})
        cls.__qualname__ = name
        # Module-level name keeps models holding these classes picklable (torch.save of a whole module).
        globals()[name] = cls
        _DUAL_CLASSES[base] = cls
    return cls


def _is_dual(module: nn.Module) -> bool:
    return isinstance(module, _DualNormMixin)


def _kind_of(module: nn.Module) -> str | None:
    for kind, classes in NORM_KINDS.items():
        if isinstance(module, classes):
            return kind
    return None


def _splittable(module: nn.Module) -> bool:
    """BatchNorm always (statistics); LayerNorm/GroupNorm only with affine parameters (a copy of nothing is
    the same layer)."""
    if isinstance(module, _BatchNorm):
        return True
    return any(p is not None for p in module._parameters.values())


def _norm_layers(model: nn.Module) -> list[nn.Module]:
    """Every normalisation layer of a known kind in the main network (auxiliary copies excluded)."""
    aux = {id(m.aux_bn) for m in model.modules() if isinstance(m, _DualNormMixin)}
    return [m for m in model.modules() if _kind_of(m) is not None and id(m) not in aux]


def _batchnorms(model: nn.Module) -> list[_BatchNorm]:
    """Every BatchNorm of the main network (auxiliary copies excluded)."""
    return [m for m in _norm_layers(model) if isinstance(m, _BatchNorm)]


def resolve_kinds(model: nn.Module, kinds: str | Iterable[str] = "auto") -> tuple[str, ...]:
    """The normalisation kinds :func:`convert_dual_norm` splits for ``model`` (see the module docstring).

    Args:
        model: the network (its own ``dual_norm_kinds`` attribute, if set, decides ``"auto"``).
        kinds: ``"auto"``, ``"none"``, one kind name, or an iterable of names from :data:`NORM_KINDS`.

    Returns:
        The kinds, in :data:`NORM_KINDS` order; ``()`` means nothing is split.
    """
    if kinds == "auto":
        declared = getattr(model, "dual_norm_kinds", None)
        if declared is not None and declared != "auto":
            return resolve_kinds(model, declared)
        if any(isinstance(m, _BatchNorm) for m in model.modules()):
            return ("batchnorm",)
        return ("layernorm", "groupnorm")
    if kinds == "none":
        return ()
    names = {kinds} if isinstance(kinds, str) else set(kinds)
    unknown = sorted(names - set(NORM_KINDS))
    if unknown:
        raise ValueError(f"unknown normalisation kind(s) {unknown}; choose from 'auto', 'none', {sorted(NORM_KINDS)}")
    return tuple(k for k in NORM_KINDS if k in names)


def convert_dual_norm(model: nn.Module, kinds: str | Iterable[str] = "auto") -> nn.Module:
    """Give every normalisation layer of the requested kinds an auxiliary copy for the adversarial path, in place.

    Sec. 3.3 / Fig. 2 of the paper (auxiliary BN of AdvProp), extended to LayerNorm and GroupNorm. The copy starts
    from the layer's current weight, bias and (BatchNorm) running statistics, so the adversarial path starts
    equal to the clean one. Idempotent; layers converted earlier stay converted.

    Args:
        model: any ``nn.Module``.
        kinds: ``"auto"`` (the default: the model's ``dual_norm_kinds``, else BatchNorm where the model has any,
            else LayerNorm and GroupNorm), ``"none"``, or kind names from :data:`NORM_KINDS`.

    Returns:
        ``model`` itself.

    Warns:
        UserWarning: naming the model class, when the requested kinds were not empty but the model has no such
        layer to split (TAF then has no separate adversarial path).
    """
    return _convert(model, resolve_kinds(model, kinds), stacklevel=3)


def _convert(model: nn.Module, wanted: tuple[str, ...], stacklevel: int) -> nn.Module:
    targets = [m for m in _norm_layers(model) if _kind_of(m) in wanted and _splittable(m)]
    if wanted and not targets and not has_dual_norm(model):
        warnings.warn(
            f"{type(model).__name__} has no {'/'.join(wanted)} layer with parameters or statistics to split: "
            "the adversarial path (TAF/AdvProp, Sec. 3.3) shares every weight with the clean path",
            UserWarning,
            stacklevel=stacklevel,  # the caller of the public function
        )
    for layer in targets:
        if _is_dual(layer):
            continue
        aux = copy.deepcopy(layer)
        layer.__class__ = _dual_class(type(layer))
        cast(_DualNormMixin, layer).use_aux = False
        layer.add_module(AUX_NAME, aux)
    return model


def convert_dual_bn(model: nn.Module) -> nn.Module:
    """:func:`convert_dual_norm` for BatchNorm only (the paper's dual BN): ``convert_dual_norm(model, "batchnorm")``.

    Returns:
        ``model`` itself.
    """
    return _convert(model, ("batchnorm",), stacklevel=3)


def strip_dual_norm(model: nn.Module) -> nn.Module:
    """Drop every auxiliary copy, in place: the model, its classes and its ``state_dict`` keys are the original
    ones (the clean path, the one for inference)."""
    for module in list(model.modules()):
        if isinstance(module, _DualNormMixin):
            state: dict[str, Any] = module.__dict__
            del state["_modules"][AUX_NAME]
            del state["use_aux"]
            cast(Any, module).__class__ = module._base_class
    return model


def has_dual_norm(model: nn.Module) -> bool:
    """True when ``model`` holds at least one converted normalisation layer (of any kind)."""
    return any(_is_dual(m) for m in model.modules())


def dual_norm_kinds(model: nn.Module) -> tuple[str, ...]:
    """The kinds of the converted layers of ``model``, in :data:`NORM_KINDS` order (``()`` when none)."""
    found = {_kind_of(m) for m in model.modules() if _is_dual(m)}
    return tuple(k for k in NORM_KINDS if k in found)


# The checkpoint code's names: "has dual BN" = "has auxiliary entries", whatever the kind.
strip_dual_bn = strip_dual_norm
has_dual_bn = has_dual_norm


@contextmanager
def adversarial_path(model: nn.Module) -> Iterator[nn.Module]:
    """Within this context every converted normalisation layer of ``model`` uses its auxiliary copy.

    The adversarial path of Eq. (7). A model with nothing that ``convert_dual_norm(model)`` would split (e.g.
    one that declares ``dual_norm_kinds = ()``) has nothing to route: the context is then a no-op.

    Raises:
        ValueError: when the model has layers that ``convert_dual_norm(model)`` would split but none was
            converted, or when a kind was only partly converted (layers added after the conversion).
    """
    layers = [(m, str(_kind_of(m))) for m in _norm_layers(model)]
    duals = [m for m, _ in layers if isinstance(m, _DualNormMixin)]
    if not duals:
        wanted = resolve_kinds(model)
        missing = sorted({k for m, k in layers if k in wanted and _splittable(m)})
        if missing:
            raise ValueError(
                f"{type(model).__name__} has {'/'.join(missing)} layers without auxiliary copies; call "
                "convert_dual_norm(model) (convert_dual_bn for BatchNorm only) first"
            )
    converted = {k for m, k in layers if _is_dual(m)}
    partial = sorted({k for m, k in layers if k in converted and _splittable(m) and not _is_dual(m)})
    if partial:
        raise ValueError(
            f"{type(model).__name__} has {'/'.join(partial)} layers without auxiliary copies next to converted "
            "ones; call convert_dual_norm(model) (convert_dual_bn for BatchNorm only) again after changing it"
        )
    previous = [m.use_aux for m in duals]
    for m in duals:
        m.use_aux = True
    try:
        yield model
    finally:
        for m, prev in zip(duals, previous):
            m.use_aux = prev


def bn_buffers(model: nn.Module) -> list[torch.Tensor]:
    """The floating-point running statistics (mean and variance) of every BatchNorm, auxiliary ones included.

    For keeping BatchNorm statistics of both paths consistent across DDP ranks with an all-reduce. LayerNorm and
    GroupNorm have none.
    """
    out: list[torch.Tensor] = []
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
    swapped: list[tuple[nn.Module, str, torch.Tensor]] = []
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
