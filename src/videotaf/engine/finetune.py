"""The fine-tuning protocol of Sec. 4.1, written once: base config + checkpoint + method -> the fine-tune's config.

The paper fine-tunes a trained model for 15 epochs with the LR decayed x0.1 after 10 (its Table 1 and 2 runs),
from "the same [settings] as the status when the pre-trained models are logged". :func:`finetune_config` applies
exactly that to a base config: the schedule (``epochs``, ``milestones=[decay_after]``, ``gamma=0.1``, no
warm-up), the starting weights (``model.pretrained``) and the method with its attack settings (Eq. 6-7).
Everything else (data, batch size, seed) comes from the base config, normally the one the checkpoint was
trained with. The CLI (``videotaf finetune``), the demo and the benchmarks all build their fine-tunes here.

The starting LR. Read literally, "the same [settings] as the status when the pre-trained models are logged"
means the LR the checkpoint was saved with (for a baseline trained to its end: its final, decayed LR), not the
baseline's initial LR. Restarting at the initial LR turns the plain fine-tune into a warm restart, which can gain
by itself. :func:`finetune_lr` reads the saved LR from the checkpoint's optimizer state (``lr_from``:
``"checkpoint"``), keeps the config's (``"config"``), or takes the checkpoint's when it has one and the config's
otherwise (``"auto"``, the default of the CLI and the demo).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from videotaf.cam import FeatureTap, cam_layer_of, module_name
from videotaf.config import Config, ConfigError, config_from_dict, load_config, validate_config
from videotaf.engine.builders import build_model
from videotaf.engine.checkpoint import load_checkpoint
from videotaf.models.weights import load_weights_file
from videotaf.objective import METHODS

LrFrom = Literal["auto", "checkpoint", "config"]
LR_FROM: tuple[LrFrom, ...] = ("auto", "checkpoint", "config")

FINETUNE_EPOCHS = 15
FINETUNE_DECAY_AFTER = 10


@dataclass(frozen=True)
class AttackSettings:
    """Overrides of the config's ``adversarial`` section; ``None`` keeps the config's value (paper defaults:
    alpha 0.7, eps 64/255, step 32/255, K 1, N = T)."""

    alpha: float | None = None
    eps: float | None = None
    step_size: float | None = None
    steps: int | None = None
    num_nonkey: int | None = None


def finetune_config(  # size: the protocol's keyword options (README), the finetune command's flags
    base: Config,
    checkpoint: str | Path,
    method: str,
    *,
    epochs: int = FINETUNE_EPOCHS,
    decay_after: int = FINETUNE_DECAY_AFTER,
    attack: AttackSettings | None = None,
    output_dir: str | Path | None = None,
    seed: int | None = None,
    lr: float | None = None,
) -> Config:
    """The config of a fine-tune of ``checkpoint`` with ``method`` (one of :data:`videotaf.objective.METHODS`).

    Args:
        base: the config to start from (the checkpoint's own, or the user's ``--config``).
        checkpoint: the trained model (an engine checkpoint, an export or an official checkpoint).
        method: ``plain`` (the equal-epoch control), ``ce_adv``, ``advprop`` or ``taf``.
        epochs, decay_after: the schedule (paper: 15 and 10); ``decay_after >= epochs`` means no decay.
        attack: overrides of the attack settings.
        output_dir: the run directory (default: the base config's).
        seed: the run's seed (default: the base config's): the data order, and ``data.seed`` too when the base
            config sets one (augmentation draws per clip).
        lr: the starting base LR (default: the base config's ``optim.lr``; see :func:`finetune_lr`).

    Raises:
        ConfigError: a value out of range (validated as any config).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    changes = {k: v for k, v in dataclasses.asdict(attack or AttackSettings()).items() if v is not None}
    data = base.data
    if seed is not None and data.seed is not None:
        data = dataclasses.replace(data, seed=seed)
    cfg = dataclasses.replace(
        base,
        data=data,
        model=dataclasses.replace(base.model, pretrained=str(checkpoint), pretrained_source="auto"),
        optim=dataclasses.replace(
            base.optim,
            lr=base.optim.lr if lr is None else float(lr),
            epochs=epochs,
            schedule="step",
            milestones=[decay_after],
            gamma=0.1,
            warmup_epochs=0.0,
        ),
        adversarial=dataclasses.replace(base.adversarial, method=method, **changes),
        runtime=dataclasses.replace(
            base.runtime,
            output_dir=str(output_dir) if output_dir is not None else base.runtime.output_dir,
            seed=base.runtime.seed if seed is None else seed,
        ),
    )
    validate_config(cfg, f"fine-tune of {checkpoint}")
    return cfg


def saved_lr(checkpoint: str | Path) -> float | None:
    """The base LR (of the x1 parameter groups) in a checkpoint's optimizer state, or None when it has none.

    Raises ValueError naming the file when it cannot be read. Reads videotaf checkpoints and the official
    TSM / mmaction2 ones (``{"optimizer": {"param_groups": ...}}``);
    groups carrying ``lr_mult`` (ours, TSM's) are divided by it. This is the LR of the next step the run would
    have taken: for a finished run, its final (decayed) LR.
    """
    obj = load_weights_file(checkpoint)  # an unreadable file stops here, with its one-line error
    groups = (obj.get("optimizer") or {}).get("param_groups") if isinstance(obj, dict) else None
    if not groups:
        return None
    for group in groups:
        mult = float(group.get("lr_mult", 1.0) or 1.0)
        if "lr" in group and mult == 1.0:
            return float(group["lr"])
    first = groups[0]
    return float(first["lr"]) / float(first.get("lr_mult", 1.0) or 1.0) if "lr" in first else None


def finetune_lr(checkpoint: str | Path, lr_from: str, config_lr: float) -> tuple[float, str]:
    """``(lr, where it came from)`` for a fine-tune of ``checkpoint`` (see the module docstring).

    Raises:
        ConfigError: ``lr_from="checkpoint"`` and the checkpoint holds no optimizer state.
    """
    if lr_from not in LR_FROM:
        raise ConfigError(f"--lr-from expects one of {', '.join(LR_FROM)}, got {lr_from!r}")
    if lr_from == "config":
        return config_lr, "the config (--lr-from config)"
    lr = saved_lr(checkpoint)
    if lr is not None:
        return lr, f"the optimizer state saved in {checkpoint} (Sec. 4.1)"
    if lr_from == "checkpoint":
        raise ConfigError(f"{checkpoint} holds no optimizer state to read the LR from; use --lr-from config")
    return config_lr, f"the config ({checkpoint} holds no optimizer state)"


def base_config(checkpoint: str | Path, config: str | Path | None = None) -> tuple[Config, str]:
    """``(config, where it came from)``: the ``config`` file when given, else the one saved in ``checkpoint``.

    Raises:
        ConfigError: no ``config`` given and the checkpoint holds none.
    """
    if config is not None:
        return load_config(config), str(config)
    stored = load_checkpoint(checkpoint).get("config") or {}
    if not stored:
        raise ConfigError(f"{checkpoint} holds no config; pass --config")
    source = f"{checkpoint} (saved config)"
    return config_from_dict(stored, source), source


def cam_map_size(cfg: Config) -> tuple[str, int, int]:
    """``(layer name, h, w)``: the per-frame map size of the layer TA's Grad-CAM reads (Eq. 2) at the config's
    input (``data.crop_size``), from one forward of a blank clip through the untrained network.

    On the synthetic benchmarks TAF paid only where this map was at least 4x4 (BENCHMARKS.md, "Where does TAF
    pay?"), which is why fine-tuning prints it before a TA run.
    """
    model = build_model(cfg.model, load_weights=False).eval()
    layer = cam_layer_of(model, cfg.adversarial.cam_layer, field="adversarial.cam_layer")
    size = cfg.data.crop_size
    tap = FeatureTap()
    with torch.no_grad(), tap.attached(layer):
        model(torch.zeros(1, cfg.model.num_frames, 3, size, size))
    maps = tap.pop()
    return module_name(model, layer), int(maps.shape[-2]), int(maps.shape[-1])


def cam_map_note(cfg: Config) -> str | None:
    """The line ``videotaf finetune`` prints before a TA fine-tune (None for other methods): layer, map size and
    input size, so a user sees before paying 2.3x per step whether TA's per-frame CAMs have spatial structure."""
    if cfg.adversarial.method != "taf":
        return None
    name, h, w = cam_map_size(cfg)
    crop = cfg.data.crop_size
    hint = "" if min(h, w) >= 4 else " (TAF paid only with maps of 4x4 or more in our study; see README)"
    return f"TA reads {name}: {h}x{w} maps per frame at {crop} px input{hint}"
