"""Local weight loading: ImageNet initialisation and importers for the official checkpoint key schemes.

Nothing here downloads; every function takes a local file. Files are read with
``torch.load(weights_only=True)`` and unwrapped from ``{"state_dict": ...}`` / ``{"model": ...}`` containers and
the ``module.`` prefix of (Distributed)DataParallel.

Key schemes understood by :func:`load_pretrained`:

- ``"tsm"`` (mit-han-lab/temporal-shift-module): ``module.base_model.layer1.0.conv1.net.weight`` (the shift wraps
  conv1 as ``.net``), ``module.base_model.bn1.*``, ``module.new_fc.*`` (or ``base_model.fc.*`` without dropout);
- ``"mmaction2"`` (TSM and TPN recognisers): ``backbone.conv1.conv.weight``, ``backbone.conv1.bn.*``,
  ``backbone.layer1.0.conv1.conv[.net].weight``, ``backbone.layer1.0.conv1.bn.*``, ``...downsample.conv/bn``,
  ``cls_head.fc_cls.*``, TPN neck ``neck.spatial_modulation.spatial_modulation.0.0.conv/bn``,
  ``neck.temporal_modulation_ops.i.conv.conv``, ``neck.downsample_ops.0.conv.conv``,
  ``neck.level_fusion_k.downsamples.i.conv.conv/bn``, ``neck.level_fusion_k.fusion_conv.conv/bn``,
  ``neck.pyramid_fusion.conv/bn``, ``neck.aux_head.conv.conv/bn``, ``neck.aux_head.fc``;
- ``"gst"`` (chenxuluo/GST-video): ``module.base_model.layer1.0.conv2.weight`` (spatial) and ``...Tconv.weight``
  (temporal), ``module.new_fc.*``;
- ``"blvnet"`` (IBM/bLVNet-TAM): ``module.baseline_model.<bLResNet keys>`` (``b_conv0``, ``layer1.big.0...``,
  ``layer1.tam.prev``, ``layer4.0.tam.curr``), ``module.new_fc.*``;
- ``"videotaf"``: this package's own ``state_dict`` keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

SOURCES = ("auto", "tsm", "mmaction2", "gst", "blvnet", "videotaf")


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model; the message lists missing, unexpected and mis-shaped keys."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from ``path`` (weights only), unwrapping containers and the ``module.`` prefix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
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


def _rules(rules: list[tuple[str, str]]) -> Callable[[str], str]:
    compiled = [(re.compile(p), r) for p, r in rules]

    def convert(key: str) -> str:
        for pattern, repl in compiled:
            key = pattern.sub(repl, key)
        return key

    return convert


_HEAD = [(r"^new_fc\.", "fc."), (r"^backbone\.fc\.", "fc.")]

CONVERTERS: dict[str, Callable[[str], str]] = {
    "tsm": _rules([(r"^base_model\.", "backbone."), (r"\.net\.", ".")] + _HEAD),
    "mmaction2": _rules(
        [
            (r"^backbone\.conv1\.conv\.", "backbone.conv1."),
            (r"^backbone\.conv1\.bn\.", "backbone.bn1."),
            (r"\.conv(\d)\.conv\.(net\.)?", r".conv\1."),
            (r"(\.layer\d+\.\d+)\.conv(\d)\.bn\.", r"\1.bn\2."),
            (r"\.downsample\.conv\.", ".downsample.0."),
            (r"\.downsample\.bn\.", ".downsample.1."),
            (r"^cls_head\.fc_cls\.", "fc."),
            (r"^neck\.aux_head\.", "aux_head."),
            (r"^neck\.spatial_modulation\.spatial_modulation\.0\.0\.", "neck.spatial_modulation."),
            (r"^neck\.temporal_modulation_ops\.(\d)\.conv\.conv\.", r"neck.temporal_modulation.\1."),
            (r"^neck\.downsample_ops\.0\.conv\.conv\.", "neck.bottom_up."),
            (r"\.downsamples\.(\d)\.conv\.", r".downsamples.\1."),
        ]
    ),
    "gst": _rules(
        [
            (r"^base_model\.", "backbone."),
            (r"(\.layer\d+\.\d+)\.conv2\.weight$", r"\1.conv2.spatial.weight"),
            (r"(\.layer\d+\.\d+)\.Tconv\.weight$", r"\1.conv2.temporal.weight"),
        ]
        + _HEAD
    ),
    "blvnet": _rules([(r"^baseline_model\.", "backbone."), (r"(\.layer4\.\d+)\.tam\.", r"\1.temporal.")] + _HEAD),
    "videotaf": lambda k: k,
}

_DROP = re.compile(r"^data_preprocessor\.")  # mmaction2 keeps normalisation buffers there; ours are not saved


def detect_source(keys: list[str]) -> str:
    """Guess the key scheme of a (``module.``-stripped) state dict."""
    if any(k.startswith("baseline_model.") for k in keys):
        return "blvnet"
    # Our own TPN also has "neck." keys; only mmaction2 has a "cls_head" and ConvModule-wrapped stem.
    if any(k.startswith("cls_head.") or k.startswith("backbone.conv1.conv.") for k in keys):
        return "mmaction2"
    if any(k.startswith("base_model.") for k in keys):
        return "gst" if any(k.endswith(".Tconv.weight") for k in keys) else "tsm"
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
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    raw = {k: v for k, v in read_state_dict(path).items() if not _DROP.match(k)}
    if source == "auto":
        source = detect_source(list(raw))
    convert = CONVERTERS[source]
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


def _check_and_load(target: nn.Module, state: dict[str, torch.Tensor], path: Path, skip: Callable[[str], bool]):
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


def inflate_gst_state(imagenet: dict[str, torch.Tensor], backbone: nn.Module) -> dict[str, torch.Tensor]:
    """Map a 2-D torchvision ResNet state dict onto a GST 3-D backbone.

    Every conv gets a time axis of length 1; the 3x3 conv feeding a GST split becomes the spatial branch,
    sliced ``[:out*(alpha-1)/alpha, :in/beta]``; the temporal branch is absent here (keeps its Kaiming init).
    """
    own = backbone.state_dict()
    out = {}
    for key, target in own.items():
        if ".temporal." in key or key.endswith("num_batches_tracked"):
            continue
        src_key = key.replace(".spatial.", ".")
        if src_key not in imagenet:
            continue
        w = imagenet[src_key]
        if target.dim() == 5 and w.dim() == 4:
            w = w.unsqueeze(2)
        if ".spatial." in key:
            o, i = target.shape[:2]
            if w.shape[0] < o or w.shape[1] < i:
                raise CheckpointMismatchError(f"{src_key}: {tuple(w.shape)} too small for {tuple(target.shape)}")
            w = w[:o, :i]
        out[key] = w.contiguous()
    return out


def load_imagenet(model: nn.Module, path: str | Path) -> None:
    """Initialise ``model.backbone`` from a local ImageNet file (the fc of the file is ignored).

    TSM / TPN: torchvision ResNet state dict, loaded as is. GST / GST-L: the same file, inflated
    (:func:`inflate_gst_state`). bLVNet-TAM: an ImageNet bLResNet checkpoint of the authors (same key names as
    our backbone; the TAM weights are not in it and keep their init).
    """
    from videotaf.models.blvnet import BLVNetTAM
    from videotaf.models.gst import GST
    from videotaf.models.tpn import TPN
    from videotaf.models.tsm import TSM

    path = Path(path)
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith("fc.")}
    if isinstance(model, (TSM, TPN)):
        _check_and_load(model.backbone, state, path, skip=lambda k: False)
    elif isinstance(model, GST):
        inflated = inflate_gst_state(state, model.backbone)
        _check_and_load(model.backbone, inflated, path, skip=lambda k: ".temporal." in k)
    elif isinstance(model, BLVNetTAM):
        _check_and_load(model.backbone, state, path, skip=lambda k: "tam." in k or ".temporal." in k)
    else:
        raise TypeError(f"no ImageNet initialisation defined for {type(model).__name__}")
