"""Feed an official checkpoint the way it was trained: its family's metadata (``videotaf.models.weights.WeightsInfo``)
into the config of a fine-tune or an evaluation.

A known family (the TSM authors' release, mmaction2's TSM and TPN, GST, bLVNet-TAM, torchvision's Kinetics video
weights) fixes the number of frames, the evaluation resize and crop and the Grad-CAM layer; its mean/std is the one
the model normalises with. :func:`with_weights_info` sets those config fields unless the user's config file or a
``--set`` names them, and returns the one line the command prints.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from videotaf.config import Config, ConfigError, _read_yaml, apply_overrides, validate_config
from videotaf.engine.checkpoint import EXPORT_FORMAT, FORMAT, CheckpointError, load_checkpoint
from videotaf.models.weights import WeightsInfo, checkpoint_scheme, find_weights

# WeightsInfo attribute -> the config fields it sets. The frames of the model and of the sampler are one number
# (validated equal): naming either keeps both.
_FIELDS = (
    ("num_frames", ("model.num_frames", "data.num_frames")),
    ("scale_size", ("data.scale_size",)),
    ("crop_size", ("data.crop_size",)),
    ("cam_layer", ("adversarial.cam_layer",)),
)


def is_videotaf_file(path: str | Path) -> bool:
    """Whether ``path`` is a videotaf checkpoint or export (else an official checkpoint or a plain state dict)."""
    try:
        return load_checkpoint(path).get("format") in (FORMAT, EXPORT_FORMAT)
    except CheckpointError:
        return False


def checkpoint_family(cfg: Config, checkpoint: str | Path | None) -> WeightsInfo | None:
    """The checkpoint family the model of ``cfg`` starts from, or None.

    ``checkpoint``: an official file (recognised by its key scheme, or ``model.pretrained_source`` when that is
    not ``auto``); a videotaf file has no family (its config already holds its preprocessing). Without a
    checkpoint (``train``), a torchvision video model's ``weights`` option names the torchvision family.
    """
    if checkpoint is not None:
        if is_videotaf_file(checkpoint):
            return None
        source = cfg.model.pretrained_source
        scheme = checkpoint_scheme(checkpoint) if source == "auto" else source
        return find_weights(cfg.model.name, scheme)
    if cfg.model.options.get("weights"):
        return find_weights(cfg.model.name, "torchvision")
    return None


def explicit_fields(config: str | Path | None, overrides: list[str]) -> set[str]:
    """The dotted ``section.key`` names the user set: in the ``config`` file (``_base_`` included) or a ``--set``."""
    raw: dict[str, Any] = _read_yaml(Path(config)) if config is not None else {}
    raw = apply_overrides(raw, overrides)
    return {f"{section}.{key}" for section, values in raw.items() if isinstance(values, dict) for key in values}


def _get(cfg: Config, name: str) -> Any:
    section, key = name.split(".")
    return getattr(getattr(cfg, section), key)


def with_weights_info(cfg: Config, info: WeightsInfo, explicit: set[str]) -> tuple[Config, str]:
    """``cfg`` with ``info``'s frames, resize, crop and CAM layer in every field not in ``explicit``; and the
    one-line note saying so (and which fields the config kept).

    Raises:
        ConfigError: the result is not a valid config (e.g. ``adversarial.num_nonkey`` above the family's frames).
    """
    sections: dict[str, dict[str, Any]] = {}
    kept = []
    for attr, fields in _FIELDS:
        value = getattr(info, attr)
        if explicit.isdisjoint(fields):
            for name in fields:
                section, key = name.split(".")
                sections.setdefault(section, {})[key] = value
            continue
        current = [(name, _get(cfg, name)) for name in fields]
        kept += [f"{name}={v}" for name, v in current if v != value]
    cfg = dataclasses.replace(
        cfg, **{s: dataclasses.replace(getattr(cfg, s), **values) for s, values in sections.items()}
    )
    validate_config(cfg, f"the config with {info.name}'s preprocessing")
    note = info.summary() + (f"; the config keeps {', '.join(kept)}" if kept else "")
    return cfg, note


def apply_checkpoint_family(
    cfg: Config, checkpoint: str | Path | None, config: str | Path | None, overrides: list[str]
) -> tuple[Config, str | None]:
    """:func:`with_weights_info` for the family of ``checkpoint`` (:func:`checkpoint_family`), the user's
    ``config`` file and ``overrides`` deciding what is explicit; ``(cfg, None)`` when there is no known family."""
    info = checkpoint_family(cfg, checkpoint)
    if info is None:
        return cfg, None
    try:
        return with_weights_info(cfg, info, explicit_fields(config, overrides))
    except ConfigError as exc:
        raise ConfigError(f"{exc} (set by weights {info.name}; override it with --set)") from None
