"""Local weight loading: the machinery for ImageNet initialisation and for importing official checkpoints.

Nothing here downloads; every function takes a local file. Files are read with
``torch.load(weights_only=True)`` and unwrapped from ``{"state_dict": ...}`` / ``{"model": ...}`` containers and
the ``module.`` prefix of (Distributed)DataParallel.

Each model keeps its own checkpoint mapping beside it (as timm does): a model module registers the key scheme
of its official release with :func:`register_key_scheme` (``tsm`` in ``tsm.py``, ``mmaction2`` in ``tpn.py``,
``gst`` in ``gst.py``, ``blvnet`` in ``blvnet.py``) and its model class says how ImageNet weights initialise its
backbone (``load_imagenet_state``). Beside its key scheme a model module also registers the families of official
checkpoints it reads (:class:`WeightsInfo`, :func:`register_weights`): how they must be fed (frames, resize, crop,
mean/std), their CAM layer and published accuracy. This module imports no model, so the models can import it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from videotaf.io import TORCH_LOAD_ERRORS, torch_load_weights
from videotaf.models.layers.normalize import IMAGENET_MEAN, IMAGENET_STD


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model; the message lists missing, unexpected and mis-shaped keys."""


def load_weights_file(path: str | Path) -> Any:
    """The object in a weights-only torch file; a one-line ValueError naming the file when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return torch_load_weights(path)
    except TORCH_LOAD_ERRORS as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ValueError(
            f"cannot read weights file {path} ({path.stat().st_size} bytes): the file is truncated, corrupt or not "
            f"a weights-only torch file ({type(exc).__name__}: {first})"
        ) from exc


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from ``path`` (weights only), unwrapping containers and the ``module.`` prefix."""
    obj = load_weights_file(path)
    while isinstance(obj, dict) and not _is_state_dict(obj):
        for key in ("state_dict", "model", "model_state", "module"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        else:
            raise ValueError(f"{path}: no state dict found (top-level keys: {sorted(obj)[:10]})")
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in obj.items()}


def _is_state_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


# ------------------------------------------------------------------------------------------- key schemes


def key_rules(rules: list[tuple[str, str]]) -> Callable[[str], str]:
    """A key converter applying regex substitutions ``(pattern, replacement)`` in order."""
    compiled = [(re.compile(p), r) for p, r in rules]

    def convert(key: str) -> str:
        for pattern, repl in compiled:
            key = pattern.sub(repl, key)
        return key

    return convert


# The classifier of TSM, GST and bLVNet-TAM releases: ``new_fc`` (or ``base_model.fc`` without dropout).
CLASSIFIER_RULES = [(r"^new_fc\.", "fc."), (r"^backbone\.fc\.", "fc.")]


@dataclass(frozen=True)
class KeyScheme:
    """How to read one release's checkpoints: ``convert`` maps its keys to ours, ``detect`` recognises its key
    set; schemes are tried by descending ``priority`` (the more specific first)."""

    name: str
    convert: Callable[[str], str]
    detect: Callable[[list[str]], bool]
    priority: int = 0


_SCHEMES: dict[str, KeyScheme] = {}


def register_key_scheme(
    name: str, rules: list[tuple[str, str]], detect: Callable[[list[str]], bool], priority: int = 0
) -> None:
    """Register the checkpoint key scheme ``name``: regex ``rules`` (applied in order) and its ``detect``."""
    _SCHEMES[name] = KeyScheme(name, key_rules(rules), detect, priority)


def key_schemes() -> list[str]:
    """The names :func:`load_pretrained` accepts as ``source`` (besides ``auto`` and ``videotaf``)."""
    return sorted(_SCHEMES)


_DROP = re.compile(r"^data_preprocessor\.")  # mmaction2 keeps normalisation buffers there; ours are not saved


def detect_source(keys: list[str]) -> str:
    """Guess the key scheme of a (``module.``-stripped) state dict; ``"videotaf"`` when none matches."""
    for scheme in sorted(_SCHEMES.values(), key=lambda sc: -sc.priority):
        if scheme.detect(keys):
            return scheme.name
    return "videotaf"


def _class_dependent_prefixes(model: nn.Module) -> list[str]:
    names = {id(m): n for n, m in model.named_modules()}
    prefixes = []
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Module) and id(classifier) in names:
        prefixes.append(names[id(classifier)] + ".")
    if hasattr(model, "aux_head"):
        prefixes.append("aux_head.fc.")
    return prefixes


def _format_keys(title: str, keys: list[str], limit: int = 40) -> str:
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return f"{title} ({len(keys)}): {', '.join(keys[:limit])}{more}"


def load_pretrained(model: nn.Module, path: str | Path, source: str = "auto", reset_classifier: bool = False) -> str:
    """Load an official or videotaf checkpoint into ``model``; returns the key scheme used.

    ``reset_classifier=True`` skips classifier tensors whose shape differs (a checkpoint trained with another
    class count); every other mismatch raises :class:`CheckpointMismatchError` listing the missing, unexpected
    and mis-shaped keys. BN ``num_batches_tracked`` counters absent from old checkpoints are tolerated.
    """
    sources = ("auto", "videotaf", *key_schemes())
    if source not in sources:
        raise ValueError(f"source must be one of {', '.join(sources)}, got {source!r}")
    raw = {k: v for k, v in read_state_dict(path).items() if not _DROP.match(k)}
    if source == "auto":
        source = detect_source(list(raw))
    convert = _SCHEMES[source].convert if source in _SCHEMES else (lambda k: k)
    state = {convert(k): v for k, v in raw.items()}
    own = model.state_dict()
    prefixes = _class_dependent_prefixes(model)
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = []
    for k in list(state):
        if k in own and state[k].shape != own[k].shape:
            if reset_classifier and any(k.startswith(p) for p in prefixes):
                del state[k]
            else:
                mismatched.append(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
    if missing or unexpected or mismatched:
        parts = [f"{path} (scheme {source!r}) does not fit {type(model).__name__}"]
        if missing:
            parts.append(_format_keys("missing keys", missing))
        if unexpected:
            parts.append(_format_keys("unexpected keys", unexpected))
        if mismatched:
            hint = " (pass reset_classifier=True to re-initialise a classifier of another class count)"
            parts.append(_format_keys("shape mismatches", mismatched) + hint)
        raise CheckpointMismatchError("\n".join(parts))
    model.load_state_dict(state, strict=False)
    return source


# -------------------------------------------------------------------------------------------- ImageNet


def load_backbone_state(
    target: nn.Module, state: dict[str, torch.Tensor], path: str | Path, skip: Callable[[str], bool] = lambda k: False
) -> None:
    """Load ImageNet ``state`` into ``target`` (a backbone); keys for which ``skip`` is true may be missing.

    Raises :class:`CheckpointMismatchError` listing missing, unexpected and mis-shaped keys."""
    own = target.state_dict()
    missing = [k for k in own if k not in state and not skip(k) and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = [f"{path}: ImageNet weights do not fit the {type(target).__name__} backbone (same depth/width?)"]
        for title, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        ):
            if keys:
                parts.append(_format_keys(title, keys))
        raise CheckpointMismatchError("\n".join(parts))
    target.load_state_dict(state, strict=False)


def load_imagenet(model: nn.Module, path: str | Path) -> None:
    """Initialise ``model``'s backbone from a local ImageNet file (its ``fc`` is ignored).

    The model class says how (``load_imagenet_state(state, path)``): TSM / TPN load a torchvision ResNet state
    dict as is, GST / GST-L inflate it, bLVNet-TAM takes the authors' ImageNet bLResNet checkpoint.
    """
    loader = getattr(model, "load_imagenet_state", None)
    if loader is None:
        raise TypeError(f"no ImageNet initialisation defined for {type(model).__name__}")
    path = Path(path)
    loader({k: v for k, v in read_state_dict(path).items() if not k.startswith("fc.")}, path)


# ------------------------------------------------------------------------------- weights with metadata


@dataclass(frozen=True)
class ReferenceAccuracy:
    """A published top-1 of one checkpoint of a family, with the protocol it was measured under."""

    dataset: str
    num_frames: int
    top1: float
    protocol: str  # e.g. "1 centre crop x 1 clip"


@dataclass(frozen=True)
class WeightsInfo:
    """How a known family of checkpoints must be fed, as torchvision's ``Weights`` / timm's pretrained configs.

    A family is one release of one model (the TSM authors' files, mmaction2's TSM, ...); its checkpoints share
    the preprocessing, and their key scheme (:func:`register_key_scheme`) or model option names the family.

    Attributes:
        name: the family, e.g. ``"tsm_release"``.
        model: the registry name the checkpoints load into.
        key_scheme: the :func:`detect_source` result of its files (``"torchvision"`` for a torchvision video
            state dict given as the model's ``weights`` option).
        num_frames: the frames of the default checkpoint (others in ``reference``).
        mean, std: the per-channel normalisation of [0, 1] pixels the checkpoints were trained with.
        scale_size, crop_size: evaluation resize (short side) and centre crop, in pixels.
        cam_layer: the dotted name of the Grad-CAM layer (Eq. 2) in the built model.
        source: where the checkpoints and the numbers come from.
        reference: published accuracies.
        note: anything the fields cannot say (e.g. a squashing resize).
    """

    name: str
    model: str
    key_scheme: str
    num_frames: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale_size: int
    crop_size: int
    cam_layer: str
    source: str
    reference: tuple[ReferenceAccuracy, ...] = ()
    note: str = ""

    def summary(self) -> str:
        """One line: the family and the preprocessing it sets."""
        return (
            f"weights {self.name} ({self.source}): {self.num_frames} frames, scale {self.scale_size}, "
            f"crop {self.crop_size}, mean {list(self.mean)}, std {list(self.std)}, CAM layer {self.cam_layer}"
        )


def resnet_release(
    name: str, model: str, key_scheme: str, num_frames: int, *, source: str, reference: tuple[ReferenceAccuracy, ...]
) -> WeightsInfo:
    """The entry of a ResNet-backbone release (TSM, TPN, GST, bLVNet-TAM): all of them share the ImageNet
    mean/std, the "resize 256, centre crop 224" test protocol and Grad-CAM on ``backbone.layer4``."""
    return WeightsInfo(
        name, model, key_scheme, num_frames, IMAGENET_MEAN, IMAGENET_STD, 256, 224, "backbone.layer4", source, reference
    )


_WEIGHTS: dict[str, WeightsInfo] = {}


def register_weights(info: WeightsInfo) -> WeightsInfo:
    """Add a checkpoint family; one family per (model, key scheme)."""
    for other in _WEIGHTS.values():
        if other.name != info.name and (other.model, other.key_scheme) == (info.model, info.key_scheme):
            raise ValueError(f"weights {info.name!r}: {other.name!r} already covers {info.model} / {info.key_scheme}")
    _WEIGHTS[info.name] = info
    return info


def known_weights() -> list[WeightsInfo]:
    """Every registered checkpoint family, by name."""
    return [_WEIGHTS[k] for k in sorted(_WEIGHTS)]


def find_weights(model: str, key_scheme: str) -> WeightsInfo | None:
    """The family of checkpoints of ``model`` read with ``key_scheme``; None for videotaf's own and unknown ones."""
    for info in _WEIGHTS.values():
        if info.model == model and info.key_scheme == key_scheme:
            return info
    return None


def weights_info(name: str) -> WeightsInfo:
    """The family ``name``; a ValueError listing the known ones otherwise."""
    if name not in _WEIGHTS:
        raise ValueError(f"unknown weights {name!r}; known: {', '.join(sorted(_WEIGHTS))}")
    return _WEIGHTS[name]


def checkpoint_scheme(path: str | Path) -> str:
    """The key scheme of the state dict in ``path`` (:func:`detect_source`), without loading it into a model."""
    return detect_source([k for k in read_state_dict(path) if not _DROP.match(k)])
