"""timm-style model registry: ``@register_model`` factories, :func:`register_family`, :func:`build` and
:func:`available`.

A model family declares its options once, as the keyword arguments of its class's ``__init__``;
:func:`register_family` derives the factory (and so the options :func:`build` accepts) from that signature, as
timm's per-family ``_create`` does, instead of a factory that repeats every option.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from videotaf.models.base import VideoClassifier
from videotaf.models.weights import load_imagenet

M = TypeVar("M", bound=VideoClassifier)

_REGISTRY: dict[str, Callable[..., VideoClassifier]] = {}


def register_model(name: str) -> Callable[[Callable[..., VideoClassifier]], Callable[..., VideoClassifier]]:
    """Register ``factory(num_classes, num_frames, **options) -> VideoClassifier`` under ``name``."""

    def deco(factory: Callable[..., VideoClassifier]) -> Callable[..., VideoClassifier]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def register_family(name: str, cls: type[M], **fixed: Any) -> Callable[..., M]:
    """Register the model class ``cls`` under ``name``; returns the derived factory.

    The options of ``name`` are the keyword arguments of ``cls.__init__`` after ``num_classes`` and
    ``num_frames``, less those ``fixed`` here (e.g. GST-L is ``GST`` with ``beta=1``), plus ``imagenet_weights``
    (a local ImageNet file for the backbone, :func:`with_imagenet`) when ``cls`` defines ``load_imagenet_state``.
    """
    own = list(inspect.signature(cls.__init__).parameters.values())[3:]  # after self, num_classes, num_frames
    params = [
        inspect.Parameter("num_classes", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=int),
        inspect.Parameter("num_frames", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=int),
    ] + [p for p in own if p.name not in fixed]
    imagenet = hasattr(cls, "load_imagenet_state")
    if imagenet:
        params.append(inspect.Parameter("imagenet_weights", inspect.Parameter.KEYWORD_ONLY, default=None))

    def factory(num_classes: int, num_frames: int, imagenet_weights: str | None = None, **options: Any) -> M:
        return with_imagenet(cls(num_classes, num_frames, **fixed, **options), imagenet_weights)

    factory.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    factory.__name__ = factory.__qualname__ = name
    setting = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
    factory.__doc__ = f"{cls.__name__}{f' ({setting})' if setting else ''}: {(cls.__doc__ or '').splitlines()[0]}"
    register_model(name)(factory)
    return factory


def available() -> list[str]:
    """Sorted names accepted by :func:`build`."""
    return sorted(_REGISTRY)


def model_options(name: str) -> list[str]:
    """Keyword options accepted by model ``name`` (besides ``num_classes`` and ``num_frames``)."""
    factory = _lookup(name)
    params = inspect.signature(factory).parameters
    return [p for p in params if p not in ("num_classes", "num_frames")]


def _lookup(name: str) -> Callable[..., VideoClassifier]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def build(name: str, num_classes: int, num_frames: int, **options: Any) -> VideoClassifier:
    """Build model ``name`` for ``num_classes`` classes and clips of ``num_frames`` frames.

    Raises ValueError for an unknown name (listing the available ones) and TypeError for an option the model
    does not take (naming it and listing the accepted ones).
    """
    factory = _lookup(name)
    accepted = model_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(
            f"model {name!r} got unknown option(s) {', '.join(map(repr, unknown))}; accepted: {', '.join(accepted)}"
        )
    return factory(num_classes=num_classes, num_frames=num_frames, **options)


def with_imagenet(model: M, imagenet_weights: str | None) -> M:
    """``model`` after loading a local ImageNet checkpoint into its backbone when a path is given (factories)."""
    if imagenet_weights is not None:
        load_imagenet(model, imagenet_weights)
    return model
