"""The synthetic from-scratch TSM baseline, written once: its knobs, its config and its data.

``videotaf demo``, the claims benchmark (``benchmarks/claims.py``) and the studies built on it (``regimes``,
``networks``) all pre-train a small TSM (ResNet depth 18 at 1/4 width by default) from scratch with ``plain`` on
the synthetic long-term-motion set (:func:`videotaf.data.synth.synthesize`), then fine-tune it with the paper's
protocol scaled down (:mod:`videotaf.engine.finetune`). :class:`SyntheticRecipe` holds every knob of that recipe,
:func:`baseline_config` turns it into the baseline's :class:`~videotaf.config.Config` and
:func:`ensure_synthetic_data` makes (or finds) its dataset. The defaults are the demo's full run, which
``configs/synthetic/tsm_tiny.yaml`` writes out for the command line (a test keeps the two equal).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from videotaf.config import Config, config_from_dict
from videotaf.data.synth import synthesize
from videotaf.errors import OutputExistsError


@dataclass(frozen=True)
class SyntheticRecipe:
    """The knobs of the synthetic baseline and of its fine-tunes' schedule (defaults: ``videotaf demo``).

    Data: ``classes`` x ``train_per_class`` / ``val_per_class`` clips of ``video_frames`` frames at
    ``video_size`` px, generator seed ``data_seed`` and ``nuisance`` (:func:`~videotaf.data.synth.synthesize`).
    Model input: ``num_frames`` frames (TSN sampling) at ``crop`` px, ``train_crop`` the training view. The
    baseline: SGD at ``lr`` for ``epochs`` with LR x0.1 at ``milestones`` (``None``: 2/3 and 5/6 of the epochs),
    ``warmup_epochs`` of linear warm-up, validation every ``eval_every`` epochs (``None``: only after the last).
    The fine-tunes: ``finetune_epochs`` with LR x0.1 after ``finetune_decay`` (``None``: 2/3 of the epochs),
    starting at ``finetune_lr`` (``None``: the LR the baseline ended with, Sec. 4.1's "continue" reading; a number
    restarts there, ``videotaf compare --lr-from config``).
    ``cam_layer``: the layer TA's Grad-CAM reads (``adversarial.cam_layer``; ``None``: the model's own).
    """

    classes: int = 8
    train_per_class: int = 32
    val_per_class: int = 12
    video_frames: int = 16
    video_size: int = 64
    crop: int = 56
    num_frames: int = 8
    batch_size: int = 16
    lr: float = 0.01
    dropout: float = 0.3
    epochs: int = 24
    finetune_epochs: int = 4
    num_workers: int = 1
    cache_frames: bool = False  # decode each clip once and keep its frames in memory (``data.cache_frames``)
    data_seed: int = 0
    nuisance: float = 1.0  # the synthetic set's nuisance variation (``synthesize(nuisance=...)``)
    #: The baseline network's model options (TSM depth 18 at 1/4 width with the ImageNet stem).
    model_options: tuple[tuple[str, Any], ...] = (("depth", 18), ("width", 0.25))
    train_crop: str = "multiscale"  # the baseline's and the fine-tunes' training view (``data.train_crop``)
    milestones: tuple[int, ...] | None = (20,)
    finetune_decay: int | None = None
    finetune_lr: float | None = None
    warmup_epochs: float = 0.0
    eval_every: int | None = 1
    #: At 56 px layer4's maps are 2x2, where TA's per-frame Grad-CAM has almost no spatial pattern (the library
    #: warns below 3x3); layer3 gives 4x4 (``benchmarks/regimes.py`` measured both).
    cam_layer: str | None = "backbone.layer3"

    @property
    def base_milestones(self) -> list[int]:
        """Baseline LR x0.1 epochs: ``milestones``, or 2/3 and 5/6 of the epochs (the TSM recipe's shape, e.g.
        50 epochs -> 33, 41)."""
        if self.milestones is not None:
            return list(self.milestones)
        return sorted({max(1, round(self.epochs * 2 / 3)), max(1, round(self.epochs * 5 / 6))})

    @property
    def decay_after(self) -> int:
        """Fine-tuning LR x0.1 after this epoch: ``finetune_decay``, or 2/3 of the epochs (the paper: 10 of 15)."""
        if self.finetune_decay is not None:
            return self.finetune_decay
        return max(1, round(self.finetune_epochs * 2 / 3))


#: The network study's recipe (``benchmarks/networks.py``; BENCHMARKS.md "Where does TAF pay?"): a stride-16 TSM
#: (3x3 stride-2 stem without max-pool, five basic blocks, width 1/4: a 4x4 last stage at 64 px) trained from
#: scratch on whole 64 px frames, 32 training and 40 validation clips per class; fine-tunes restart at LR 0.005.
NETWORK_STUDY = SyntheticRecipe(
    classes=8,
    train_per_class=32,
    val_per_class=40,
    video_frames=16,
    video_size=64,
    crop=64,
    train_crop="none",
    model_options=(("depth", 18), ("width", 0.25), ("stem", "small"), ("blocks", [1, 1, 2, 1])),
    lr=0.01,
    epochs=30,
    milestones=(18, 25),
    warmup_epochs=1.0,
    eval_every=None,
    cam_layer=None,  # the last stage, 4x4
    finetune_epochs=10,
    finetune_decay=6,
    finetune_lr=0.005,
)
#: The one regime of the study where TAF paid detectably (its ``s16_x2`` pool: TAF - plain +4.79 pp [+3.61, +5.98]
#: over 3 seeds): :data:`NETWORK_STUDY` with twice the training clips, so the baseline learns the task (val top-1
#: 56.6 %, chance 12.5 %) and still over-fits (train 97.3 %).
PAYING = dataclasses.replace(NETWORK_STUDY, train_per_class=64)
#: ``videotaf demo``'s default regime: :data:`PAYING` at 32 px with 4 frames per clip, so that the baseline and
#: three paired seeds of fine-tunes fit a few minutes on 2 cores. At 32 px the small stem's last stage is 2x2,
#: so TA reads layer3 (4x4). The clips are decoded once and kept in memory (``data.cache_frames``; no loader
#: workers): at this size decoding cost more than the network. Found by trying three cheaper versions of PAYING
#: (BENCHMARKS.md "A paying regime in minutes"): this one kept a detectable gain.
FAST = dataclasses.replace(
    PAYING,
    video_size=32,
    crop=32,
    num_frames=4,
    cam_layer="backbone.layer3",
    num_workers=0,
    cache_frames=True,
)


R = TypeVar("R", bound=SyntheticRecipe)


def recipe_fields(recipe: SyntheticRecipe) -> dict[str, Any]:
    """Every knob of ``recipe`` by field name: ``dataclasses.replace(sizes, **recipe_fields(r))`` puts recipe ``r``
    into an instance of a subclass (the claims' ``Sizes``) and keeps that instance's own fields."""
    return {f.name: getattr(recipe, f.name) for f in dataclasses.fields(SyntheticRecipe)}


def on_paying_network(recipe: R) -> R:
    """``recipe``'s data and schedules with :data:`PAYING`'s network, training view and fine-tuning LR, for the
    ``--quick`` versions of the paying regime: at their 32 px the last stage is 2x2, so TA reads layer3 (4x4)."""
    return dataclasses.replace(
        recipe,
        model_options=PAYING.model_options,
        train_crop=PAYING.train_crop,
        finetune_lr=PAYING.finetune_lr,
        cam_layer="backbone.layer3",
    )


def baseline_config(recipe: SyntheticRecipe, data_root: str | Path, out_dir: str | Path, seed: int = 0) -> Config:
    """The from-scratch baseline (``plain``) of ``recipe`` on the dataset at ``data_root``, written to ``out_dir``;
    ``seed`` is both the data order's (``data.seed``) and the run's (``runtime.seed``)."""
    return config_from_dict(
        {
            "model": {
                "name": "tsm",
                "num_classes": recipe.classes,
                "num_frames": recipe.num_frames,
                "options": {**dict(recipe.model_options), "dropout": recipe.dropout},
            },
            "data": {
                "kind": "somethingv2",
                "root": str(data_root),
                "num_frames": recipe.num_frames,
                "crop_size": recipe.crop,
                "scale_size": recipe.video_size,
                "flip": False,
                "train_crop": recipe.train_crop,
                "seed": seed,
                "num_workers": recipe.num_workers,
                "cache_frames": recipe.cache_frames,
            },
            "optim": {
                "lr": recipe.lr,
                "epochs": recipe.epochs,
                "schedule": "step",
                "milestones": recipe.base_milestones,
                "weight_decay": 5e-4,
                "clip_grad_norm": 20.0,
                "batch_size": recipe.batch_size,
                "warmup_epochs": recipe.warmup_epochs,
                # The x5/x10 head LRs of the TSM protocol suit a new head on an ImageNet backbone; this backbone
                # starts from scratch, and the larger head LRs make its first epochs diverge.
                "fc_lr_mult_weight": 1.0,
                "fc_lr_mult_bias": 1.0,
            },
            "adversarial": {"method": "plain", "cam_layer": recipe.cam_layer},
            "runtime": {
                "device": "cpu",
                "seed": seed,
                "deterministic": True,
                "output_dir": str(out_dir),
                "progress": "lines",
                "log_every": 1000,
                "eval_every": recipe.epochs if recipe.eval_every is None else recipe.eval_every,
            },
        },
        "synthetic baseline recipe",
    )


def synth_settings(recipe: SyntheticRecipe) -> dict[str, Any]:
    """The keyword arguments of :func:`~videotaf.data.synth.synthesize` for ``recipe``'s dataset (also the
    ``settings`` its ``synth_meta.json`` records)."""
    return dict(
        num_classes=recipe.classes,
        train_per_class=recipe.train_per_class,
        val_per_class=recipe.val_per_class,
        num_frames=recipe.video_frames,
        size=recipe.video_size,
        seed=recipe.data_seed,
        nuisance=recipe.nuisance,
    )


def settings_mismatch(root: Path, wanted: dict[str, Any]) -> str | None:
    """``None`` when ``root/synth_meta.json`` records the ``wanted`` settings, else what differs (one line)."""
    settings = json.loads((root / "synth_meta.json").read_text()).get("settings", {})
    diff = [f"{k} {settings.get(k)!r} (wanted {v!r})" for k, v in wanted.items() if settings.get(k) != v]
    return ", ".join(diff) or None


def ensure_synthetic_data(
    root: str | Path,
    recipe: SyntheticRecipe,
    *,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """``recipe``'s synthetic dataset at ``root``: reused when its ``synth_meta.json`` records the same settings,
    synthesised when there is none (or, with ``overwrite``, one with other settings). ``log`` hears which.

    Raises :class:`~videotaf.errors.OutputExistsError` (one line: what differs) for a dataset with other settings:
    runs trained on it would otherwise be reused as if trained on the new one.
    """
    root = Path(root)
    say = log or (lambda _msg: None)
    wanted = synth_settings(recipe)
    if (root / "synth_meta.json").is_file():
        diff = settings_mismatch(root, wanted)
        if diff is None:
            say(f"reusing dataset {root}")
            return root
        if not overwrite:
            raise OutputExistsError(
                f"{root} holds a synthetic dataset with other settings ({diff}); use another directory or overwrite it"
            )
    say(f"synthesising {recipe.classes} classes x {recipe.train_per_class}/{recipe.val_per_class} clips into {root}")
    return synthesize(root, **wanted)
