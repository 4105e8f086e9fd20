"""TAF in the Hugging Face ``Trainer``: :class:`TAFTrainer` (optional extra ``hf``: transformers, accelerate).

An unmodified video-classification script (``VideoMAEForVideoClassification`` + ``Trainer`` + the image
processor's ``pixel_values``) becomes TAF by swapping the class and naming the method::

    trainer = TAFTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=val,
                         processing_class=image_processor, taf=TAFSettings(method="taf"))

What it does (everything else is the ``Trainer``'s own: optimiser, schedule, gradient accumulation, autocast,
``eval_strategy``, logging, DDP through ``torchrun``/``accelerate launch``):

- pixel units: ``pixel_values`` ``(B, T, C, H, W)`` come normalised by the processor's mean/std; each step maps
  them back to [0, 1] pixels per channel (``x = pixel_values * std + mean``) and the model sees
  ``(x - mean) / std`` again (:func:`videotaf.models.hf.from_hf`), so eps, the step size and the [0, 1] clamp of
  Eq. (6) are in pixel units. Mean/std: ``image_mean``/``image_std`` on [0, 1] pixels, else the
  ``processing_class``'s (its rescale folded in), else the model type's processor defaults;
- the step is :meth:`videotaf.objective.Objective.step` on the Trainer's model with ``accelerator.backward`` as
  its backward, under ``accelerator.autocast()`` (so TA's float16 gradient scaling sees the autocast dtype);
- the auxiliary LayerNorm path (``videotaf.bn.convert_dual_norm``) is added in ``__init__``, before the Trainer
  builds its optimiser; ``save_model`` and the periodic checkpoints save the clean weights only (they load with
  plain ``AutoModelForVideoClassification.from_pretrained``); each periodic checkpoint also holds
  ``videotaf_aux_norm.safetensors``, which ``train(resume_from_checkpoint=...)`` loads back;
- the clean and adversarial losses of Eq. (7) are logged as ``loss_clean``, ``loss_adv`` (and ``loss_aux``) next
  to the Trainer's ``loss`` (the total), so they appear in ``trainer.state.log_history``.

Several processes: the Trainer wraps the model in DDP, whose forward Objective.step calls twice per step (clean
and adversarial), so the step runs the single-backward schedule there (``low_memory=False``: same gradients,
both graphs alive until the one backward) and ``ddp_find_unused_parameters`` defaults to False (True would let
the second forward mark the clean path's LayerNorms unused). One process keeps the default ``low_memory=True``.
DataParallel (``n_gpu > 1`` without a launcher) is refused: launch one process per GPU.
FSDP and DeepSpeed are not supported: their sharded saves and loads bypass the clean/auxiliary split.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from videotaf.analysis.predictions import records_from_arrays, write_predictions
from videotaf.bn import AUX_NAME, convert_dual_norm, has_dual_norm
from videotaf.engine.checkpoint import strip_aux_keys
from videotaf.errors import VideotafError
from videotaf.integrations.common import TAFSettings, step_losses
from videotaf.models.hf import HFVideoModel, from_hf, processor_dict_mean_std
from videotaf.objective import Objective

__all__ = ["AUX_FILE", "TAFSettings", "TAFTrainer", "write_trainer_predictions"]

#: The auxiliary normalisation weights inside a periodic checkpoint directory (for resuming).
AUX_FILE = "videotaf_aux_norm.safetensors"


class TrainerInputError(VideotafError, ValueError):
    """A batch or model the TAF step cannot take (the message names the field and what was expected)."""


def _is_aux(key: str) -> bool:
    return f".{AUX_NAME}." in f".{key}"


class _PixelView(nn.Module):
    """Clips in [0, 1] -> the Trainer's model (DDP included) on normalised ``pixel_values``: the model the
    objective sees. ``cam_layer``/``classifier`` are the :class:`~videotaf.models.hf.HFVideoModel`'s."""

    def __init__(self, video: HFVideoModel) -> None:
        super().__init__()
        self.video = video
        self._runner: tuple[nn.Module, ...] = ()  # a tuple, so the DDP wrapper is not registered as a child

    @property
    def cam_layer(self) -> nn.Module:
        return self.video.cam_layer

    @property
    def classifier(self) -> nn.Module:
        return self.video.classifier

    def run_through(self, model: nn.Module) -> None:
        """Route forwards through ``model`` (the Trainer's, possibly DDP-wrapped, copy of ``video.net``)."""
        self._runner = (model,)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.video.check_frames(clips)
        runner = self._runner[0] if self._runner else self.video.net
        out = runner(pixel_values=self.video.normalize(clips))
        logits: torch.Tensor = out.logits if hasattr(out, "logits") else out[0]
        return logits


def resolve_mean_std(
    model: nn.Module, processing_class: Any, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[Sequence[float] | None, Sequence[float] | None]:
    """The processor's mean/std on [0, 1] pixels: given, else the processor's, else None (model-type defaults)."""
    if (mean is None) != (std is None):
        raise ValueError("TAFTrainer: give both image_mean and image_std, or neither")
    if mean is not None:
        return mean, std
    to_dict = getattr(processing_class, "to_dict", None)
    found = processor_dict_mean_std(to_dict()) if callable(to_dict) else None
    return found if found is not None else (None, None)


class TAFTrainer(Trainer):
    """A ``transformers.Trainer`` whose training step is TAF (or CE-adversarial, AdvProp, plain): Eq. (7).

    Args:
        model: a ``VideoMAE``/``Timesformer``/``Vivit`` ``ForVideoClassification`` model (single-label).
        args, *rest, **kwargs: as for ``Trainer``.
        taf: the method and its attack (:class:`~videotaf.integrations.common.TAFSettings`; default: TAF with
            the paper's alpha 0.7, eps 64/255, step 32/255, K = 1).
        image_mean, image_std: the normalisation of ``pixel_values`` on [0, 1] pixels (see the module docstring).

    Batches are dicts with ``pixel_values`` ``(B, T, C, H, W)`` (normalised) and ``labels`` ``(B,)``.
    """

    def __init__(
        self,
        model: nn.Module,
        args: Any = None,
        *rest: Any,
        taf: TAFSettings | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        self.taf = taf or TAFSettings()
        problem = getattr(getattr(model, "config", None), "problem_type", None)
        if problem not in (None, "single_label_classification"):
            raise TrainerInputError(f"TAFTrainer: config.problem_type {problem!r}: TAF needs single-label classes")
        mean, std = resolve_mean_std(model, kwargs.get("processing_class"), image_mean, image_std)
        if self.taf.dual:
            convert_dual_norm(model, self.taf.dual_norm)  # before the Trainer builds its optimiser
        self._view = _PixelView(from_hf(model, mean=mean, std=std))
        if args is not None and args.ddp_find_unused_parameters is None:
            # Read when the Trainer builds its accelerator, in __init__; see the module docstring.
            args.ddp_find_unused_parameters = False
        super().__init__(model, args, *rest, **kwargs)
        self._objective: Objective | None = None
        self._loss_sums: dict[str, list[torch.Tensor]] = {}

    # ----------------------------------------------------------------------------------------- the step
    def taf_objective(self) -> Objective:
        """The step's :class:`~videotaf.objective.Objective` (single-backward schedule under several processes)."""
        if self._objective is None:
            self._objective = self.taf.objective(low_memory=self.accelerator.num_processes == 1)
        return self._objective

    def clips_of(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, H, W)`` normalised ``pixel_values`` -> the clips in [0, 1] pixel units (float32)."""
        if pixel_values.dim() != 5 or pixel_values.shape[2] != 3:
            raise TrainerInputError(
                f"pixel_values must be (B, T, 3, H, W) as Hugging Face video models take, got {tuple(pixel_values.shape)}"
            )
        norm = self._view.video.normalize.to(pixel_values.device)  # the view is not the Trainer's to move
        mean, std = norm.mean.view(1, 1, 3, 1, 1), norm.std.view(1, 1, 3, 1, 1)
        return pixel_values.float() * std + mean

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        """One step of Eq. (7) with the Trainer's backward; returns the total loss over the accumulation steps."""
        if self.args.n_gpu > 1:
            raise TrainerInputError("TAFTrainer does not run under DataParallel: launch one process per GPU")
        model.train()
        inputs = self._prepare_inputs(inputs)
        for key in ("pixel_values", "labels"):
            if key not in inputs:
                raise TrainerInputError(f"TAFTrainer: the batch has no {key!r} (keys: {sorted(inputs)})")
        labels = inputs["labels"]
        if labels.dim() != 1 or labels.dtype.is_floating_point:
            raise TrainerInputError(f"labels must be (B,) class indices, got {tuple(labels.shape)} {labels.dtype}")
        scale = 1.0 / max(1, getattr(self, "current_gradient_accumulation_steps", 1))
        backward: Callable[[torch.Tensor], None] = lambda loss: self.accelerator.backward(loss * scale)  # noqa: E731
        self._view.run_through(model)
        with self.compute_loss_context_manager(), self.accelerator.autocast():
            out = self.taf_objective().step(self._view, self.clips_of(inputs["pixel_values"]), labels.long(), backward)
        losses = step_losses(out)
        for name, value in losses.items():
            self._loss_sums.setdefault(name, []).append(value)  # tensors: no device sync per step
        return losses["total"] * scale

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """The Trainer's log, with the mean clean/adversarial/auxiliary losses since the last training log."""
        if "loss" in logs and self._loss_sums:
            for name in ("clean", "adv", "aux"):
                values = self._loss_sums.get(name)
                if values:
                    mean = torch.stack(values).float().mean()
                    logs[f"loss_{name}"] = round(float(self.accelerator.gather(mean).mean()), 4)
            self._loss_sums = {}
        super().log(logs, start_time)

    # ------------------------------------------------------------------------------------- checkpoints
    def _model(self) -> nn.Module:
        if not isinstance(self.model, nn.Module):
            raise TrainerInputError("TAFTrainer has no model")
        return self.model

    def _save(self, output_dir: str | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """``save_pretrained`` of the clean path: no auxiliary keys, so plain ``from_pretrained`` loads it."""
        if state_dict is None:
            state_dict = self.accelerator.unwrap_model(self.model).state_dict()
        super()._save(output_dir, state_dict=strip_aux_keys(state_dict))

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """Write the auxiliary weights into the checkpoint directory first, then the Trainer's checkpoint (whose
        ``trainer_state.json``, written last, marks it complete)."""
        if self.args.should_save and has_dual_norm(self._model()):
            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            state = self.accelerator.unwrap_model(self.model).state_dict()
            aux = {k: v.detach().contiguous().cpu() for k, v in state.items() if _is_aux(k)}
            save_file(aux, str(folder / AUX_FILE), metadata={"format": "pt"})
        super()._save_checkpoint(model, trial)

    def _load_aux(self, checkpoint: str, model: nn.Module, *, required: bool) -> None:
        path = os.path.join(checkpoint, AUX_FILE)
        if not os.path.isfile(path):
            if required:
                raise VideotafError(
                    f"{checkpoint}: no {AUX_FILE}, so the auxiliary normalisation path cannot be resumed "
                    f"(a checkpoint of a run without it? resume with the method it was trained with)"
                )
            return
        result = model.load_state_dict(load_file(path), strict=False)
        absent = sorted(k for k in model.state_dict() if _is_aux(k) and k in result.missing_keys)
        if result.unexpected_keys or absent:
            raise VideotafError(
                f"{path}: auxiliary weights do not match the model (unexpected {result.unexpected_keys[:3]}, "
                f"missing {absent[:3]})"
            )

    def _load_weights(self, checkpoint: str, model: nn.Module, *, aux_required: bool) -> None:
        """A checkpoint's clean weights through ``from_pretrained`` (its key conversions: transformers 5 saves
        VideoMAE's ``query.bias`` as ``q_bias``, which the Trainer's own resume does not map back), then the
        auxiliary path from :data:`AUX_FILE`."""
        net = self.accelerator.unwrap_model(model)
        fresh = type(net).from_pretrained(checkpoint, local_files_only=True)
        result = net.load_state_dict(fresh.state_dict(), strict=False)
        missing = [k for k in result.missing_keys if not _is_aux(k)]
        if missing or result.unexpected_keys:
            raise VideotafError(
                f"{checkpoint}: its weights do not fit the model (missing {missing[:3]}, "
                f"unexpected {result.unexpected_keys[:3]})"
            )
        if has_dual_norm(net):
            self._load_aux(checkpoint, net, required=aux_required)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        """Resume: the clean weights and the auxiliary path (refused without :data:`AUX_FILE`)."""
        self._load_weights(resume_from_checkpoint, self._model() if model is None else model, aux_required=True)

    def _load_best_model(self) -> None:
        """``load_best_model_at_end``: the best checkpoint's weights, its auxiliary path when it has one."""
        if self.state.best_model_checkpoint:
            self._load_weights(self.state.best_model_checkpoint, self._model(), aux_required=False)


def write_trainer_predictions(
    output: Any,
    path: str | Path,
    *,
    method: str,
    seed: int,
    clip_ids: Sequence[object] | None = None,
) -> Path:
    """Write ``Trainer.predict``'s output as a predictions file for ``videotaf verdict``
    (:mod:`videotaf.analysis.predictions`; CSV for ``*.csv``, else JSON).

    Args:
        output: the ``PredictionOutput`` (``predictions``: logits ``(N, classes)``, or a tuple whose first item
            they are; ``label_ids``: ``(N,)``).
        method, seed: the run's method name and seed (pair seeds across methods as ``compare`` does).
        clip_ids: one id per clip in the dataset's order (default ``0 .. N-1``: the same evaluation set in the
            same order for every run).
    """
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    if output.label_ids is None:
        raise TrainerInputError("Trainer.predict output has no label_ids: the evaluation set needs 'labels'")
    predicted = np.asarray(logits).argmax(axis=-1)
    return write_predictions(
        path, records_from_arrays(output.label_ids, predicted, seed=seed, method=method, clip_ids=clip_ids)
    )
