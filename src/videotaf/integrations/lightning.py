"""TAF in PyTorch Lightning: :class:`TAFMixin` for a ``LightningModule`` (optional extra ``lightning``).

Why a mixin. The step has to run inside ``training_step`` (a callback cannot replace the loss, a wrapper module
would hide the user's own ``configure_optimizers``, ``validation_step`` and logging). A mixin keeps the user's
module as it is and adds one call::

    class VideoModule(TAFMixin, L.LightningModule):
        def __init__(self, method="taf"):
            super().__init__()
            self.model = build_model(...)   # any videotaf, torchvision (videotaf.models) or wrap_model model
            self.configure_taf(TAFSettings(method=method))

        def training_step(self, batch, batch_idx):
            clips, labels = batch           # (B, T, 3, H, W) in [0, 1], (B,)
            return self.taf_step(clips, labels)

        def configure_optimizers(self): ...

``taf_step`` runs :meth:`videotaf.objective.Objective.step` and returns Eq. (7)'s loss *without* its backward:
Lightning's automatic optimisation does that backward, so its precision plugin (autocast, float16 loss scaling),
gradient accumulation, clipping and DDP all apply unchanged. The step therefore uses the single-backward schedule
(``low_memory=False``: same gradients as the default, the clean and adversarial graphs alive together). The
clean/adversarial/auxiliary losses are logged as ``train/loss_clean``, ``train/loss_adv``, ``train/loss_aux``
and the total as ``train/loss``.

Checkpoints: Lightning's ``.ckpt`` keeps the auxiliary normalisation (``*.aux_bn.*``) for resuming
(``trainer.fit(..., ckpt_path=...)``). For inference, :meth:`TAFMixin.save_inference_weights` writes the model's
clean weights (a ``state_dict`` that loads strictly into the unconverted model), and a module built with the
``plain`` method loads a TAF ``.ckpt`` (its ``on_load_checkpoint`` drops the auxiliary keys); a TAF module
loading a checkpoint without them (a plain-trained start) gets them from the clean weights, as
:func:`videotaf.bn.convert_dual_norm` would.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from videotaf.analysis.predictions import Record, records_from_arrays, write_predictions
from videotaf.bn import AUX_NAME, convert_dual_norm, has_dual_norm
from videotaf.engine.checkpoint import strip_aux_keys
from videotaf.integrations.common import TAFSettings, step_losses
from videotaf.io import atomic_write_bytes
from videotaf.objective import Objective

__all__ = ["TAFMixin", "TAFSettings", "write_lightning_predictions"]

_AUX = f".{AUX_NAME}."


class TAFMixin:
    """Adds TAF (or CE-adversarial, AdvProp, plain) to a ``LightningModule``; see the module docstring.

    The module holds the video model as an attribute (``model`` by default; it takes ``(B, T, 3, H, W)`` clips
    in [0, 1] and has a ``cam_layer``, :mod:`videotaf.models.base`).
    """

    taf: TAFSettings
    _taf_objective: Objective
    _taf_model_attr: str

    def configure_taf(self, settings: TAFSettings | None = None, *, model_attr: str = "model") -> None:
        """Choose the method; adds the auxiliary normalisation path now, before Lightning builds the optimiser.

        Call at the end of ``__init__``, after the model attribute is set.
        """
        self.taf = settings or TAFSettings()
        self._taf_model_attr = model_attr
        if self.taf.dual:
            convert_dual_norm(self.taf_model, self.taf.dual_norm)
        self._taf_objective = self.taf.objective(low_memory=False)

    @property
    def taf_model(self) -> nn.Module:
        """The video model the step trains."""
        model = getattr(self, getattr(self, "_taf_model_attr", "model"), None)
        if not isinstance(model, nn.Module):
            raise AttributeError(f"{type(self).__name__} has no video model: call configure_taf(model_attr=...)")
        return model

    def taf_step(self, clips: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Eq. (7) on one batch: ``clips`` ``(B, T, 3, H, W)`` in [0, 1], ``labels`` ``(B,)``; returns the loss
        for Lightning's backward (the attack's own input gradients are done here)."""
        captured: list[torch.Tensor] = []
        out = self._taf_objective.step(self.taf_model, clips, labels.long(), backward=captured.append)
        log = getattr(self, "log", None)
        if callable(log):
            for name, value in step_losses(out).items():
                log("train/loss" if name == "total" else f"train/loss_{name}", value, prog_bar=name == "total")
        (loss,) = captured  # the single backward of low_memory=False: the whole of Eq. (7)
        return loss

    def taf_predict_step(
        self, clips: torch.Tensor, labels: torch.Tensor, clip_ids: Sequence[object] | None = None
    ) -> dict:
        """What a ``predict_step`` returns for :func:`write_lightning_predictions`: labels, predicted classes and
        (optionally) clip ids of one batch, through the clean path."""
        logits = self.taf_model(clips)
        return {"label": labels.detach().cpu(), "prediction": logits.argmax(1).detach().cpu(), "clip_id": clip_ids}

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's clean weights: its ``state_dict`` without the auxiliary normalisation."""
        return strip_aux_keys(self.taf_model.state_dict())

    def save_inference_weights(self, path: str | Path) -> Path:
        """Write :meth:`inference_state_dict` with ``torch.save`` (atomically); it loads strictly into the model
        as built, without ``convert_dual_norm``."""
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in self.inference_state_dict().items()}, buffer)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
        return path

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Fit the checkpoint's auxiliary keys to this module: dropped when it has no auxiliary path (inference),
        copied from the clean weights when it has one and they are missing (a TAF run from a plain checkpoint)."""
        state = checkpoint.get("state_dict")
        if not isinstance(state, dict):
            return
        mine = self.state_dict()  # type: ignore[attr-defined]
        if not has_dual_norm(self.taf_model):
            for key in [k for k in state if _AUX in f".{k}"]:
                del state[key]
            return
        for key in mine:
            if _AUX in f".{key}" and key not in state:
                clean = f".{key}".replace(_AUX, ".")[1:]
                if clean in state:
                    state[key] = state[clean].clone()


def lightning_records(outputs: Sequence[dict], *, method: str, seed: int) -> list[Record]:
    """Records from the per-batch dicts of :meth:`TAFMixin.taf_predict_step` (``trainer.predict``'s list); clip
    ids default to the running index over the batches."""
    labels = np.concatenate([np.asarray(o["label"]).reshape(-1) for o in outputs])
    predicted = np.concatenate([np.asarray(o["prediction"]).reshape(-1) for o in outputs])
    ids: list[object] | None = None
    if all(o.get("clip_id") is not None for o in outputs):
        ids = [i for o in outputs for i in o["clip_id"]]
    return records_from_arrays(labels, predicted, seed=seed, method=method, clip_ids=ids)


def write_lightning_predictions(outputs: Sequence[dict], path: str | Path, *, method: str, seed: int) -> Path:
    """Write ``trainer.predict``'s outputs (dicts of :meth:`TAFMixin.taf_predict_step`) as a predictions file for
    ``videotaf verdict`` (:mod:`videotaf.analysis.predictions`; CSV for ``*.csv``, else JSON)."""
    return write_predictions(path, lightning_records(outputs, method=method, seed=seed))
