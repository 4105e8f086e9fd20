"""Build the pieces of a run from its config: model (with initial weights), datasets, and a model back from its
checkpoint (:func:`load_model`).

``model.name`` is a registry name (``videotaf.models.build``) or ``"package.module:factory"`` for a model
outside the registry; the factory takes ``(num_classes, num_frames, **options)``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from videotaf.config import Config, ModelConfig
from videotaf.data import build_dataset, check_labels
from videotaf.engine.checkpoint import (
    EXPORT_FORMAT,
    FORMAT,
    CheckpointError,
    load_checkpoint,
    model_state_from_file,
    strip_aux_keys,
)
from videotaf.models import build
from videotaf.models.weights import load_pretrained


def _model_cfg_dict(model_cfg: ModelConfig | dict[str, Any]) -> dict[str, Any]:
    return asdict(model_cfg) if is_dataclass(model_cfg) else dict(model_cfg)


def build_model(model_cfg: ModelConfig | dict[str, Any], *, load_weights: bool = True) -> nn.Module:
    """Build the network of ``model_cfg``; with ``load_weights`` also load ``pretrained`` (see module doc).

    ``imagenet_weights`` is passed to the factory as the ``imagenet_weights`` option (only when
    ``load_weights``, since a restored checkpoint overwrites those weights anyway).
    """
    m = _model_cfg_dict(model_cfg)
    options = dict(m.get("options") or {})
    if load_weights and m.get("imagenet_weights"):
        options["imagenet_weights"] = m["imagenet_weights"]
    name = m["name"]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"model.name={name!r}: cannot import {attr!r} from {module_name!r}: {exc}") from exc
        model = factory(num_classes=m["num_classes"], num_frames=m["num_frames"], **options)
    else:
        model = build(name, m["num_classes"], m["num_frames"], **options)
    if load_weights and m.get("pretrained"):
        load_initial_weights(model, m["pretrained"], m.get("pretrained_source", "auto"))
    return model


def load_initial_weights(model: nn.Module, path: str | Path, source: str = "auto") -> None:
    """Load a full set of weights before training: an engine checkpoint / export (auxiliary BN dropped, strict),
    else an official checkpoint through ``videotaf.models.weights.load_pretrained``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained: checkpoint not found: {path}")
    obj = None
    if source in ("auto", "videotaf"):
        try:
            obj = load_checkpoint(path)
        except CheckpointError:
            if source == "videotaf":
                raise
    if isinstance(obj, dict) and obj.get("format") in (FORMAT, EXPORT_FORMAT):
        state = strip_aux_keys(obj["model"])
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches raise even with strict=False
            raise ValueError(f"{path}: weights do not fit the configured model: {str(exc)[:500]}") from exc
        missing = [k for k in missing if ".aux_bn." not in f".{k}"]
        if missing or unexpected:
            raise ValueError(
                f"{path}: weights do not fit the configured model: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        return
    load_pretrained(model, str(path), source=source)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in ``path`` (a checkpoint or an export) for inference.

    Returns ``(model, cfg_dict)``: the model in eval mode, auxiliary BN stripped, main-path weights loaded
    strictly; ``cfg_dict`` is the resolved config saved with it.
    """
    obj = load_checkpoint(path, map_location=map_location)
    state = strip_aux_keys(model_state_from_file(obj, path))
    cfg_dict = obj.get("config") or {}
    if "model" not in cfg_dict:
        raise CheckpointError(f"{path}: has no config.model section; cannot rebuild the model")
    model = build_model(cfg_dict["model"], load_weights=False)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even with strict=False
        raise CheckpointError(
            f"{path}: weights do not match model {cfg_dict['model'].get('name')!r}: {str(exc)[:500]}"
        ) from exc
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match model {cfg_dict['model'].get('name')!r}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    model.eval()
    return model, cfg_dict


def apply_channels_last(model: nn.Module) -> nn.Module:
    """Channels-last memory format for every 4-D (2-D conv) and 5-D (3-D conv) parameter, in place."""
    for p in model.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
        elif p.dim() == 5:
            p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def class_names_of(dataset: Dataset, num_classes: int) -> list[str]:
    """The dataset's class names (``classes`` / ``class_names`` attribute), else ``"0" .. "C-1"``."""
    for attr in ("classes", "class_names"):
        names = getattr(dataset, attr, None)
        if names is not None:
            names = [str(n) for n in names]
            if len(names) != num_classes:
                raise ValueError(
                    f"the dataset has {len(names)} classes but model.num_classes is {num_classes}; "
                    "set model.num_classes to match"
                )
            return names
    return [str(i) for i in range(num_classes)]


def skipped_count(dataset: Dataset) -> int | None:
    """How many samples the dataset skipped (its skip policy), when it counts them."""
    for attr in ("num_skipped", "skipped", "skip_count"):
        v = getattr(dataset, attr, None)
        if callable(v):
            v = v()
        if isinstance(v, int):
            return v
        if isinstance(v, Sequence) and not isinstance(v, str):
            return len(v)
    return None


def validation_class_names(cfg: Config) -> list[str]:
    """The class names of the validation split of ``cfg.data`` (checked against ``model.num_classes``)."""
    names_only = dataclasses.replace(cfg.data, cache_frames=False)  # reads the annotations, not the clips
    return class_names_of(build_dataset(names_only, cfg.data.val_split, False), cfg.model.num_classes)


def build_datasets(cfg: Config) -> tuple[Dataset, Dataset, list[str]]:
    """``(train, val, class_names)``: ``videotaf.data.build_dataset`` on ``data.train_split`` (training
    transforms) and ``data.val_split`` (1 clip, centre crop)."""
    if cfg.data.num_frames != cfg.model.num_frames:
        raise ValueError(f"data.num_frames={cfg.data.num_frames} differs from model.num_frames={cfg.model.num_frames}")
    train = build_dataset(cfg.data, cfg.data.train_split, True)
    val = build_dataset(cfg.data, cfg.data.val_split, False)
    check_labels(train, val, num_classes=cfg.model.num_classes, what="model.num_classes")
    return train, val, class_names_of(val, cfg.model.num_classes)
