"""Checkpoints: atomic writes, full training state, safe (``weights_only``) loading, export.

A training checkpoint is a dict of tensors and primitive containers only, so that it loads with
``torch.load(weights_only=True)`` (no pickled code runs when a file is opened)::

    format: "videotaf-checkpoint", version: 1
    model:      state_dict incl. the auxiliary BN (``*.aux_bn.*``) when the model has dual BN
    dual_bn:    bool
    optimizer, scheduler, scaler: their state_dicts ({} when absent)
    rng:        {"python": [...], "numpy": {...}, "torch": ByteTensor, "cuda": [ByteTensor, ...]}
    epoch:      epochs completed; step: optimizer steps done in total; epoch_step: steps done in ``epoch``
    best_metric: float | None; config: the resolved config (nested dict)

Writes go through :func:`videotaf.io.atomic_write`: a crash leaves either the old or the new file, never a
half-written one. Rebuilding a model from a checkpoint is :func:`videotaf.engine.builders.load_model`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from videotaf.bn import has_dual_bn
from videotaf.errors import VideotafError
from videotaf.io import TORCH_LOAD_ERRORS, atomic_torch_save, torch_load_weights
from videotaf.models.base import unwrap

FORMAT = "videotaf-checkpoint"
EXPORT_FORMAT = "videotaf-weights"
VERSION = 1


class CheckpointError(VideotafError, RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not a videotaf checkpoint; names the file."""


# --------------------------------------------------------------------------------------------------- RNG


def rng_state() -> dict[str, Any]:
    """RNG states of python, numpy, torch (CPU) and every CUDA device, as tensors and primitives."""
    py = random.getstate()
    np_state: Any = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


# --------------------------------------------------------------------------------------------------- saving


def training_state(  # size: one keyword per saved part of the checkpoint (module docstring)
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    epoch: int = 0,
    step: int = 0,
    epoch_step: int = 0,
    best_metric: float | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the checkpoint dict described in the module docstring."""
    model = unwrap(model)
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "dual_bn": has_dual_bn(model),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": rng_state(),
        "epoch": int(epoch),
        "step": int(step),
        "epoch_step": int(epoch_step),
        "best_metric": None if best_metric is None else float(best_metric),
        "config": config or {},
    }


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Atomically write ``state`` (from :func:`training_state`) to ``path``."""
    return atomic_torch_save(state, path)


# --------------------------------------------------------------------------------------------------- loading


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; raise :class:`CheckpointError` naming the file if it is
    missing, truncated or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch_load_weights(path, map_location=map_location)
    except TORCH_LOAD_ERRORS as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path} ({path.stat().st_size} bytes): the file is truncated, corrupt or "
            f"not a weights-only torch file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict, got {type(obj).__name__}")
    return obj


def strip_aux_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop every auxiliary-BN entry (``*.aux_bn.*``): the rest loads into the unmodified model."""
    return {k: v for k, v in state_dict.items() if ".aux_bn." not in f".{k}"}


def model_state_from_file(obj: dict[str, Any], path: str | Path = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The model state_dict inside an engine checkpoint or an exported weights file."""
    fmt = obj.get("format")
    if fmt in (FORMAT, EXPORT_FORMAT):
        return obj["model"]
    raise CheckpointError(
        f"{path}: not a videotaf checkpoint (format={fmt!r}); official checkpoints are read by "
        "videotaf.models.weights.load_pretrained"
    )


def export(path: str | Path, out: str | Path) -> Path:
    """Write the main-path weights of checkpoint ``path`` (auxiliary BN dropped) and its config to ``out``.

    The export holds only ``{"format", "version", "model", "config"}`` and loads with ``weights_only=True``
    and with :func:`load_model`.
    """
    obj = load_checkpoint(path)
    state = strip_aux_keys(model_state_from_file(obj, path))
    return atomic_torch_save(
        {"format": EXPORT_FORMAT, "version": VERSION, "model": state, "config": obj.get("config") or {}}, out
    )
