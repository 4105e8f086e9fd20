"""The fine-tuning protocol of Sec. 4.1, written once: base config + checkpoint + method -> the fine-tune's config.

The paper fine-tunes a trained model for 15 epochs with the LR decayed x0.1 after 10 (its Table 1 and 2 runs),
from "the same [settings] as the status when the pre-trained models are logged". :func:`finetune_config` applies
exactly that to a base config: the schedule (``epochs``, ``milestones=[decay_after]``, ``gamma=0.1``, no
warm-up), the starting weights (``model.pretrained``) and the method with its attack settings (Eq. 6-7).
Everything else (data, LR, batch size, seed) comes from the base config, normally the one the checkpoint was
trained with. The CLI (``videotaf finetune``), the demo and the benchmarks all build their fine-tunes here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from videotaf.config import Config, validate_config
from videotaf.objective import METHODS

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


def finetune_config(
    base: Config,
    checkpoint: str | Path,
    method: str,
    *,
    epochs: int = FINETUNE_EPOCHS,
    decay_after: int = FINETUNE_DECAY_AFTER,
    attack: AttackSettings | None = None,
    output_dir: str | Path | None = None,
    seed: int | None = None,
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
            base.optim, epochs=epochs, schedule="step", milestones=[decay_after], gamma=0.1, warmup_epochs=0.0
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
