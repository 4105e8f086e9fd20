"""The training loop: baseline training and TAF / AdvProp / CE-adversarial / plain fine-tuning (Sec. 3.3, 4.1).

Read top to bottom: :func:`train_one_epoch` runs the optimisation steps of one epoch; :func:`fit` builds the
loaders (:func:`build_loaders`) and the model, objective and optimiser (:func:`build_training`), restores an
interrupted run (:func:`restore`), then runs the epochs (:func:`run_epoch`), evaluates, checkpoints and logs
each one (:func:`epoch_record`). What changes from step to step is one :class:`RunState`.

One step (``train_one_epoch``)::

    optimizer.zero_grad()
    out = objective.step(model, clips, labels, backward)    # forward(s) + ONE backward, Eq. (7)
    [scaler.unscale_]; clip_grad_norm_(clip_grad_norm); optimizer/scaler.step(); scheduler.step()

Resume granularity. ``last.pt`` is written at the end of every epoch and, with
``runtime.checkpoint_every_steps = k > 0``, after every k-th optimizer step. It holds the RNG states, the
optimizer/scheduler/scaler states, the epoch, the step within the epoch and the partial epoch sums. The data
order of epoch ``e`` is a function of ``(seed, e)`` (:class:`~videotaf.engine.distributed.ResumableSampler`) and
the loader's worker seeds are derived from ``(seed, epoch)``, so ``--resume`` continues with exactly the
batches an uninterrupted run would see: on the CPU with ``runtime.deterministic`` the resumed run ends with
bit-identical weights when either ``data.num_workers: 0`` (augmentation draws come from the restored global
RNG) or ``data.seed`` is set (the data layer then draws per (seed, epoch, index)). With workers and
``data.seed: null`` the worker RNG streams restart identically only at epoch boundaries, so a mid-epoch resume
then differs in augmentation draws (not in data order). Under DDP every rank's RNG states are gathered into
the checkpoint and each rank restores its own; the data order is sharded from the same (seed, epoch) order.
"""

from __future__ import annotations

import os
import random
import signal
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from videotaf.bn import convert_dual_norm
from videotaf.cam import cam_layer_of
from videotaf.config import Config, config_to_dict, save_config
from videotaf.engine import checkpoint as ckpt_mod
from videotaf.engine.allocator import keep_freed_memory
from videotaf.engine.builders import apply_channels_last, build_datasets, build_model, skipped_count
from videotaf.engine.distributed import (
    DistInfo,
    ResumableSampler,
    ShardSampler,
    all_reduce_sum,
    any_rank,
    barrier,
    gather_objects,
    init_distributed,
    sync_bn_buffers,
    wrap_ddp,
)
from videotaf.engine.evaluate import compute_metrics, predict, write_results
from videotaf.engine.logs import MetricsLogger, Progress, log
from videotaf.engine.optim import base_lr, build_optimizer, build_scheduler, lr_factor
from videotaf.engine.runs import next_step, prepare_run_dir
from videotaf.errors import OutputLockedError, TrainingDivergedError
from videotaf.io import output_lock, remove_stale_temporaries
from videotaf.objective import Objective, build_objective


class TrainingInterrupted(Exception):
    """SIGTERM/SIGINT arrived; ``last.pt`` was written at the step boundary (``--resume`` continues).

    ``signum`` is the signal that stopped the run (the command line exits with ``128 + signum``: 130 for
    SIGINT/Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int = signal.SIGTERM) -> None:
        super().__init__(message)
        self.signum = int(signum)


# The positional layout of ``EpochSums`` in checkpoints written before the sums were named.
_LEGACY_SUMS = ("total", "clean", "adv", "correct", "clips", "seconds")


@dataclass
class EpochSums:
    """Running sums of one epoch on one process, by name (saved by name in mid-epoch checkpoints).

    ``losses[name]`` is the sum over clips of the loss term ``name`` of :class:`~videotaf.objective.StepOutput`
    (each step adds its value times its B clips); ``counts`` holds ``"clips"``, ``"correct"`` (clean-path top-1
    hits), ``"attacked"`` (clips that took the adversarial path) and ``"nonfinite_steps"`` (steps skipped for a
    non-finite loss, ``optim.max_nonfinite_steps``).
    """

    losses: dict[str, float] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def clips(self) -> float:
        return self.counts.get("clips", 0.0)

    def add_step(self, losses: dict[str, float], counts: dict[str, float], seconds: float) -> None:
        """Add one step: each loss term (a mean over its clips) weighted by the step's ``counts["clips"]``."""
        _accumulate(self.losses, losses, float(counts.get("clips", 0.0)))
        _accumulate(self.counts, counts)
        self.seconds += seconds

    def add(self, other: EpochSums) -> None:
        """Add another process's sums, name by name."""
        _accumulate(self.losses, other.losses)
        _accumulate(self.counts, other.counts)
        self.seconds += other.seconds

    def to_state(self) -> dict[str, Any]:
        """The checkpoint form: ``{"losses": {...}, "counts": {...}, "seconds": s}`` (floats, by name)."""
        return {"losses": dict(self.losses), "counts": dict(self.counts), "seconds": self.seconds}

    @classmethod
    def from_state(cls, state: Any, *, adversarial: bool) -> EpochSums:
        """Read :meth:`to_state`'s form, or the float64 tensor ``[loss, loss_clean, loss_adv, correct, clips,
        seconds]`` that checkpoints held before the sums were named (``adversarial``: whether that run had an
        adversarial term; the old layout stored 0.0 for a plain run)."""
        if isinstance(state, dict):
            return cls(dict(state["losses"]), dict(state["counts"]), float(state["seconds"]))
        old = dict(zip(_LEGACY_SUMS, (float(v) for v in torch.as_tensor(state).to(torch.float64).tolist())))
        names = ("total", "clean", "adv") if adversarial else ("total", "clean")
        return cls({k: old[k] for k in names}, {"clips": old["clips"], "correct": old["correct"]}, old["seconds"])


def _accumulate(into: dict[str, float], values: dict[str, float], weight: float = 1.0) -> None:
    for name, value in values.items():
        into[name] = into.get(name, 0.0) + float(value) * weight


def reduce_sums(local: EpochSums) -> EpochSums:
    """The sums of every process (DDP), added name by name (``local`` itself without a process group)."""
    total = EpochSums()
    for part in gather_objects(local.to_state()):
        total.add(EpochSums.from_state(part, adversarial=True))
    return total


@dataclass
class RunState:
    """Where a run stands: what a checkpoint restores and every step advances."""

    epoch: int = 0  # epochs completed
    epoch_step: int = 0  # optimizer steps done in the current epoch
    step: int = 0  # optimizer steps in total
    best: float | None = None  # best validation top-1 so far
    sums: EpochSums = field(default_factory=EpochSums)  # of the current epoch
    nonfinite: int = 0  # steps skipped for a non-finite loss over the run (optim.max_nonfinite_steps)
    first_losses: dict[str, float] = field(default_factory=dict)  # the first epoch's mean loss terms, by name
    warned: set[str] = field(default_factory=set)  # loss terms the growth warning named (not saved)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; with ``deterministic`` also force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id; python/numpy follow it so augmentations are reproducible.
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The loader seed of ``epoch`` (worker seeds derive from it)."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % 2**63


class NonFiniteLossError(TrainingDivergedError):
    """A step's loss term was not finite (on some process); raised before the optimizer update."""

    def __init__(self, term: str, value: float, lr: float) -> None:
        super().__init__(f"loss term {term!r} is {value} at LR {lr:.4g}")
        self.term, self.value, self.lr = term, value, lr


class LossGuard:
    """The non-finite check of every training step (clean, adversarial, ... terms by name).

    Every DDP rank sees the same verdict (one ``all_reduce`` of the terms per step), so all of them stop, or skip,
    at the same step. ``max_skips`` steps (``optim.max_nonfinite_steps``, over the run; ``skipped`` so far) are
    skipped before the run stops: the step's gradients are dropped and the BatchNorm statistics its forward
    updated are put back (a NaN there would outlive the skip), as AMP's scaler skips an overflowing step.
    """

    def __init__(self, max_skips: int = 0, skipped: int = 0) -> None:
        self.max_skips, self.skipped = max_skips, skipped

    def snapshot(self, model: nn.Module) -> list[torch.Tensor] | None:
        """The model's buffers before a step, only when a skip may need them (a copy per step costs time)."""
        if self.skipped >= self.max_skips:
            return None
        return [b.detach().clone() for b in model.buffers()]

    def check(self, losses: dict[str, torch.Tensor], lr: float) -> bool:
        """``False`` when every term is finite on every process; ``True`` for a step to skip; otherwise raises
        :class:`NonFiniteLossError` naming the first non-finite term (components before ``total``)."""
        names = [n for n in losses if n != "total"] + [n for n in losses if n == "total"]
        values = all_reduce_sum(torch.stack([losses[n].detach().to(torch.float64) for n in names]))
        finite = torch.isfinite(values).tolist()
        if all(finite):
            return False
        if self.skipped < self.max_skips:
            self.skipped += 1
            return True
        first = finite.index(False)
        raise NonFiniteLossError(names[first], float(values[first]), lr)

    @staticmethod
    def restore(model: nn.Module, saved: list[torch.Tensor] | None) -> None:
        if saved is not None:
            with torch.no_grad():
                for buffer, value in zip(model.buffers(), saved):
                    buffer.copy_(value)


def _update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    clip_grad_norm: float | None,
) -> None:
    """``[scaler.unscale_]; clip_grad_norm_; optimizer/scaler.step()`` after a step's backward."""
    if scaler is not None and scaler.is_enabled():
        scaler.unscale_(optimizer)
    if clip_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    if scaler is not None and scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


@dataclass
class EpochContext:
    """What a run brings to one epoch of :func:`train_one_epoch` besides the data, the optimizer and the guard.

    ``scheduler`` steps after every step (a skipped one too); ``amp`` runs the steps under autocast and
    ``scaler`` scales their backward; ``sums`` are the epoch's sums so far (a mid-epoch resume), updated in place;
    ``progress`` gets each step's loss terms and LR; ``on_step(sums)`` runs after every step (checkpointing); when
    ``should_stop()`` turns true the epoch ends after the current step. :func:`run_epoch` fills all of them.
    """

    scheduler: Any = None
    scaler: torch.amp.GradScaler | None = None
    amp: bool = False
    sums: EpochSums | None = None
    progress: Progress | None = None
    on_step: Callable[[EpochSums], None] | None = None
    should_stop: Callable[[], bool] | None = None


def train_one_epoch(
    model: nn.Module,
    objective: Objective,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    clip_grad_norm: float | None = None,
    guard: LossGuard | None = None,
    context: EpochContext | None = None,
) -> EpochSums:
    """Optimise over ``loader`` of ``(clips (B,T,3,H,W), labels (B,))`` once with ``objective.step`` (Eq. 7).

    Returns this process's running sums (``context.sums`` continued in place when given). ``clip_grad_norm``
    clips the gradients' total norm before each update. ``guard`` checks every step's loss terms before the
    update (default: stop at the first non-finite one, :class:`NonFiniteLossError`); a skipped step counts in
    ``counts["nonfinite_steps"]``. ``context``: the run's schedule, mixed precision, resumed sums and hooks
    (:class:`EpochContext`; default none of them).
    """
    ctx = EpochContext() if context is None else context
    model.train()
    sums = EpochSums() if ctx.sums is None else ctx.sums
    guard = LossGuard() if guard is None else guard
    scaler = ctx.scaler
    use_scaler = scaler is not None and scaler.is_enabled()

    def backward(loss: torch.Tensor) -> None:
        (scaler.scale(loss) if use_scaler and scaler is not None else loss).backward()

    t_last = time.perf_counter()
    for clips, labels in loader:
        clips = clips.to(device, non_blocking=True)
        labels = torch.as_tensor(labels).to(device, non_blocking=True).long()
        optimizer.zero_grad(set_to_none=True)
        saved = guard.snapshot(model)
        with torch.autocast(device.type, enabled=ctx.amp):
            out = objective.step(model, clips, labels, backward=backward)
        lr = base_lr(optimizer)
        skip = guard.check(out.losses, lr)  # before the update: non-finite gradients never reach the weights
        if skip:
            guard.restore(model, saved)
            optimizer.zero_grad(set_to_none=True)
        else:
            _update(model, optimizer, scaler, clip_grad_norm)
        if ctx.scheduler is not None:
            ctx.scheduler.step()  # a skipped step still advances the schedule: it is a step of the data order

        losses = {} if skip else {name: value.item() for name, value in out.losses.items()}
        counts = {**out.counts, "correct": (out.logits_clean.argmax(1) == labels).sum().item()}
        now = time.perf_counter()
        sums.add_step(losses, {"nonfinite_steps": 1} if skip else counts, now - t_last)
        t_last = now
        if ctx.progress is not None:
            ctx.progress.update(**step_values(losses), lr=lr)
        if ctx.on_step is not None:
            ctx.on_step(sums)
        if ctx.should_stop is not None and ctx.should_stop():
            break
    return sums


def step_values(losses: dict[str, float]) -> dict[str, float]:
    """The progress line's names of a step's loss terms: ``loss`` (the total), ``loss_<term>`` for the others."""
    return {("loss" if name == "total" else f"loss_{name}"): value for name, value in losses.items()}


class _StopFlag:
    """Turns SIGTERM/SIGINT into a flag checked at step boundaries (single-process runs only: under DDP every
    rank would have to agree on the stopping step, so the default handlers stay)."""

    def __init__(self, install: bool) -> None:
        self.set = False
        self.signum = int(signal.SIGTERM)  # which signal set the flag
        self.previous: dict[int, Any] = {}
        if install:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    self.previous[sig] = signal.signal(sig, self._handle)
                except ValueError:  # not the main thread
                    pass

    def _handle(self, signum: int, frame: Any) -> None:
        self.set, self.signum = True, int(signum)

    def __call__(self) -> bool:
        return self.set

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


DatasetsFn = Callable[[Config], tuple[Dataset, Dataset, list[str]]]


@dataclass
class Loaders:
    """The data side of a run: datasets, their loaders and the resumable order of the training set."""

    train_set: Dataset
    class_names: list[str]
    train: DataLoader
    val: DataLoader
    sampler: ResumableSampler
    generator: torch.Generator  # reseeded per epoch: the worker seeds derive from it
    batch: int  # per process
    steps_per_epoch: int


def build_loaders(cfg: Config, info: DistInfo, datasets_fn: DatasetsFn | None = None) -> Loaders:
    """Datasets and loaders; the per-process batch is ``optim.batch_size / world_size``."""
    oc, rt = cfg.optim, cfg.runtime
    if oc.batch_size % info.world_size:
        raise ValueError(f"optim.batch_size={oc.batch_size} is not divisible by the {info.world_size} processes")
    batch = oc.batch_size // info.world_size
    train_set, val_set, class_names = (datasets_fn or build_datasets)(cfg)
    if len(train_set) < oc.batch_size:  # type: ignore[arg-type]
        raise ValueError(
            f"the training set has {len(train_set)} clips, fewer than one batch (optim.batch_size={oc.batch_size})"  # type: ignore[arg-type]
        )
    sampler = ResumableSampler(len(train_set), shuffle=True, seed=rt.seed, num_replicas=info.world_size, rank=info.rank)  # type: ignore[arg-type]
    generator = torch.Generator()
    loader_kw: dict[str, Any] = dict(
        num_workers=cfg.data.num_workers,
        pin_memory=cfg.data.pin_memory and info.device.type == "cuda",
        worker_init_fn=_seed_worker,
        persistent_workers=False,
    )
    train = DataLoader(train_set, batch_size=batch, sampler=sampler, drop_last=True, generator=generator, **loader_kw)
    val = DataLoader(
        val_set,
        batch_size=batch,
        sampler=ShardSampler(len(val_set), info.world_size, info.rank),  # type: ignore[arg-type]
        generator=torch.Generator().manual_seed(rt.seed),
        **loader_kw,
    )
    return Loaders(train_set, class_names, train, val, sampler, generator, batch, sampler.per_rank // batch)


@dataclass
class Training:
    """The optimisation side of a run."""

    model: nn.Module  # the model itself (dual BN converted, on its device)
    ddp_model: nn.Module  # what the steps call: ``model`` or its DDP wrapper
    objective: Objective
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp: bool


def build_training(cfg: Config, info: DistInfo, steps_per_epoch: int, *, load_weights: bool) -> Training:
    """Weights -> SyncBN -> dual BN -> device -> optimizer (so the auxiliary BN is optimised); DDP is wrapped last
    by :func:`fit`, after a checkpoint is restored."""
    ac, rt = cfg.adversarial, cfg.runtime
    device = info.device
    # Mixed precision (fp16 autocast + GradScaler) is a CUDA feature here; on the CPU runs stay in float32.
    amp = rt.amp and device.type == "cuda"
    objective = build_objective(
        ac.method,
        alpha=ac.alpha,
        eps=ac.eps,
        step_size=ac.step_size,
        steps=ac.steps,
        num_nonkey=ac.num_nonkey,
        random_start=ac.random_start,
        ta=ac.ta_options(),
        fraction=ac.fraction,
        low_memory=ac.low_memory,
        dual_norm=ac.dual_norm,
    )
    model = build_model(cfg.model, load_weights=load_weights)
    if ac.cam_layer is not None:
        # A misspelt layer fails now, naming the field, rather than at the first TA step (or, for a method that
        # does not run TA, not at all: the saved config would carry a name the analysis commands then refuse).
        cam_layer_of(model, ac.cam_layer, field="adversarial.cam_layer")
    if rt.sync_bn and info.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if objective.needs_dual_bn:
        convert_dual_norm(model)
    model.to(device)
    if rt.channels_last:
        apply_channels_last(model)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    return Training(model, model, objective, optimizer, scheduler, scaler, amp)


def restore(path: Path, training: Training, info: DistInfo) -> tuple[RunState, dict[str, Any]]:
    """Load ``path`` into ``training``; returns the run state and this rank's RNG state (set it last)."""
    state = ckpt_mod.load_checkpoint(path, map_location="cpu")
    try:
        training.model.load_state_dict(state["model"])
        training.optimizer.load_state_dict(state["optimizer"])
        training.scheduler.load_state_dict(state["scheduler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ckpt_mod.CheckpointError(
            f"{path} does not match the configured run (model / method / optimizer groups differ): {str(exc)[:400]}"
        ) from exc
    if state.get("scaler"):
        training.scaler.load_state_dict(state["scaler"])
    run = RunState(int(state["epoch"]), int(state["epoch_step"]), int(state["step"]), state.get("best_metric"))
    # Absent from checkpoints of earlier releases: no skipped steps, no first-epoch losses recorded.
    run.nonfinite = int(state.get("nonfinite_steps", 0))
    run.first_losses = dict(state.get("first_epoch_losses") or {})
    if state.get("epoch_sums") is not None and run.epoch_step > 0:
        adversarial = training.objective.attack is not None
        run.sums = EpochSums.from_state(state["epoch_sums"], adversarial=adversarial)
    per_rank = state.get("rng_per_rank") or []
    rng = per_rank[info.rank] if len(per_rank) == info.world_size else state["rng"]
    return run, rng


def _finite(t: torch.Tensor) -> bool:
    return not torch.is_floating_point(t) or bool(torch.isfinite(t).all())


class Checkpointer:
    """Writes ``last.pt`` / ``best.pt`` of a run: every rank takes part (their RNG states are gathered), rank 0
    writes."""

    def __init__(self, ckpt_dir: Path, training: Training, cfg_dict: dict[str, Any], info: DistInfo) -> None:
        self.dir, self.training, self.cfg_dict, self.info = ckpt_dir, training, cfg_dict, info

    def kept(self) -> str:
        """What the run directory holds after a failure: ``last.pt``'s position, for the one-line error."""
        path = self.dir / "last.pt"
        if not path.is_file():
            return "no checkpoint was written before it"
        state = ckpt_mod.load_checkpoint(path)
        return f"{path} (epoch {state['epoch']}, step {state['step']}) is kept as it was"

    def check_finite(self, run: RunState, name: str) -> None:
        """Refuse to write non-finite weights or statistics (on any process: every rank raises together)."""
        bad = next((k for k, v in self.training.model.state_dict().items() if not _finite(v)), None)
        if any_rank(bad is not None, self.info.device):
            lr = base_lr(self.training.optimizer)
            where = f"epoch {run.epoch + 1} step {run.epoch_step}" if run.epoch_step else f"end of epoch {run.epoch}"
            raise TrainingDivergedError(
                f"{where}: the model's {bad or 'state (on another process)'} "
                f"is not finite at LR {lr:.4g}, so {name} was not written; {self.kept()} (lower optim.lr or set "
                "optim.clip_grad_norm)"
            )

    def save(self, run: RunState, name: str = "last.pt", *, mid_epoch: bool = False) -> None:
        self.check_finite(run, name)
        rngs = gather_objects(ckpt_mod.rng_state()) if self.info.distributed else None
        if not self.info.is_main:
            return
        t = self.training
        state = ckpt_mod.training_state(
            t.model,
            optimizer=t.optimizer,
            scheduler=t.scheduler,
            scaler=t.scaler,
            epoch=run.epoch,
            step=run.step,
            epoch_step=run.epoch_step if mid_epoch else 0,
            best_metric=run.best,
            config=self.cfg_dict,
        )
        state["epoch_sums"] = (run.sums if mid_epoch else EpochSums()).to_state()
        state["nonfinite_steps"] = run.nonfinite
        state["first_epoch_losses"] = dict(run.first_losses)
        if rngs is not None:
            state["rng_per_rank"] = rngs
        ckpt_mod.save_checkpoint(state, self.dir / name)


def run_epoch(
    cfg: Config,
    loaders: Loaders,
    training: Training,
    run: RunState,
    checkpointer: Checkpointer,
    stop: _StopFlag,
    info: DistInfo,
) -> EpochSums:
    """Train epoch ``run.epoch`` from step ``run.epoch_step`` (non-zero after a mid-epoch resume).

    Leaves ``run.sums`` with this process's sums; raises :class:`TrainingInterrupted` after saving ``last.pt``
    when a stop signal arrives, and :class:`~videotaf.errors.TrainingDivergedError` (one line: epoch, step, term,
    LR) at a non-finite loss beyond ``optim.max_nonfinite_steps``, before that step's update and without writing.
    """
    rt = cfg.runtime
    epoch = run.epoch
    loaders.sampler.set_epoch(epoch)
    loaders.sampler.set_start(run.epoch_step * loaders.batch)
    loaders.generator.manual_seed(epoch_seed(rt.seed, epoch))
    train_set: Any = loaders.train_set
    if hasattr(train_set, "set_epoch"):
        train_set.set_epoch(epoch)  # per-(seed, epoch, index) augmentation when data.seed is set
    if hasattr(train_set, "reset_skipped") and run.epoch_step == 0:
        train_set.reset_skipped()

    guard = LossGuard(cfg.optim.max_nonfinite_steps, run.nonfinite)

    def on_step(sums: EpochSums) -> None:
        run.step += 1
        run.epoch_step += 1
        run.nonfinite = guard.skipped
        every = rt.checkpoint_every_steps
        if (every and run.step % every == 0) or stop.set:
            checkpointer.save(run, mid_epoch=True)

    progress = Progress(
        loaders.steps_per_epoch,
        desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
        mode=rt.progress,
        log_every=rt.log_every,
        initial=run.epoch_step,
        enabled=info.is_main,
    )
    try:
        sums = train_one_epoch(
            training.ddp_model,
            training.objective,
            loaders.train,
            training.optimizer,
            device=info.device,
            clip_grad_norm=cfg.optim.clip_grad_norm,
            guard=guard,
            context=EpochContext(
                scheduler=training.scheduler,
                scaler=training.scaler,
                amp=training.amp,
                sums=run.sums,
                progress=progress,
                on_step=on_step,
                should_stop=stop,
            ),
        )
    except NonFiniteLossError as exc:
        raise TrainingDivergedError(
            f"epoch {epoch + 1} step {run.epoch_step + 1}/{loaders.steps_per_epoch}: {exc}; stopped before its "
            f"update, {checkpointer.kept()} (lower optim.lr, keep optim.clip_grad_norm, or skip up to N such steps "
            "with optim.max_nonfinite_steps: N)"
        ) from exc
    progress.close()
    if stop():
        raise TrainingInterrupted(
            f"interrupted at epoch {epoch + 1} step {run.epoch_step}; last.pt saved", signum=stop.signum
        )
    return sums


class LossGrowthWarning(UserWarning):
    """A training loss term's epoch mean grew :data:`GROWTH_FACTOR`-fold over its first epoch's: diverging."""


GROWTH_FACTOR = 1e6


def warn_if_grown(run: RunState, total: EpochSums, *, enabled: bool = True) -> None:
    """Record the first epoch's mean loss terms in ``run``; later, warn once per term that grew 1e6-fold.

    A run can climb to 1e13 without a NaN (gradient clipping keeps every step finite) and then reports
    garbage; one ``warning: LossGrowthWarning: ...`` line says so while the run goes on.
    """
    means = {name: value / max(total.clips, 1.0) for name, value in total.losses.items()}
    if not run.first_losses:
        run.first_losses = means
        return
    for name, value in means.items():
        first = run.first_losses.get(name)
        if enabled and first and first > 0 and value > GROWTH_FACTOR * first and name not in run.warned:
            run.warned.add(name)
            warnings.warn(
                f"loss term {name!r} grew from {first:.4g} (epoch 1 mean) to {value:.4g} in epoch {run.epoch + 1}:"
                " the run is diverging (lower optim.lr)",
                LossGrowthWarning,
                stacklevel=2,
            )


def epoch_record(cfg: Config, epoch: int, local: EpochSums, total: EpochSums, skipped: int | None) -> dict[str, Any]:
    """The ``metrics.jsonl`` line of a finished epoch (validation fields filled in by the caller).

    ``lr`` is the base LR the schedule gives the epoch's first step, whether or not the run was resumed.
    """
    n = max(total.clips, 1.0)
    # One field per loss term, by name (train_loss is the total); the three fields of every earlier release are
    # always there (None: no such term, e.g. train_loss_adv of a plain run).
    terms: dict[str, float | None] = {f"train_{k}": v / n for k, v in step_values(total.losses).items()}
    for key in ("train_loss", "train_loss_clean", "train_loss_adv"):
        terms.setdefault(key, None)
    return {
        "epoch": epoch + 1,
        "lr": cfg.optim.lr * lr_factor(float(epoch), cfg.optim),
        **terms,
        "train_top1": 100.0 * total.counts.get("correct", 0.0) / n,
        "val_loss": None,
        "val_top1": None,
        "val_top5": None,
        # Seconds are per process and processes run in parallel: throughput is clips over the slowest.
        "clips_per_s": total.clips / max(local.seconds, 1e-9),
        "epoch_time_s": local.seconds,
        "skipped": skipped,
        "nonfinite_steps": int(total.counts.get("nonfinite_steps", 0)),
    }


def fit(
    cfg: Config,
    *,
    resume: bool | str | Path = False,
    overwrite: bool = False,
    datasets_fn: DatasetsFn | None = None,
    subset_classes: list[str] | None = None,
    on_start: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train (or fine-tune) the model of ``cfg`` for ``cfg.optim.epochs`` epochs into ``cfg.runtime.output_dir``.

    Args:
        cfg: the resolved config; ``cfg.adversarial.method`` selects the objective (``videotaf.objective``).
        resume: ``True`` continues from ``RUN/checkpoints/last.pt``; a path continues from that checkpoint.
        overwrite: replace a run already in the output directory (without it, and without ``resume``, such a
            directory raises :class:`~videotaf.errors.RunExistsError` before anything is built). The old run's
            files are removed only once the data, the model and any checkpoint have been read, so a bad input
            never costs the run it would have replaced.
        datasets_fn: ``cfg -> (train_set, val_set, class_names)``; default ``videotaf.data.build_dataset``.
        subset_classes: class names scored separately in the final ``eval.json`` (e.g. long-term motions).
        on_start: called once the data, the model and any checkpoint are read and checked, before training.

    Returns:
        The last epoch record (as in ``metrics.jsonl``) plus ``"run_dir"``.

    Writes ``config.yaml``, ``metrics.jsonl``, ``checkpoints/last.pt``, ``checkpoints/best.pt`` (highest val
    top-1) and ``eval.json`` (final model) under the run directory, on rank 0 only.

    The run directory is held (:func:`videotaf.io.output_lock`, by rank 0) from start to end: a second writer
    is refused (:class:`~videotaf.errors.OutputLockedError`, naming this process). A non-finite loss term stops
    the run (:class:`~videotaf.errors.TrainingDivergedError`) before its update, leaving the last finite
    ``last.pt``/``best.pt`` as they were; ``optim.max_nonfinite_steps`` skips up to that many such steps.
    """
    info = init_distributed(cfg.runtime.device)
    with _writer_lock(Path(cfg.runtime.output_dir), info):
        return _fit(
            cfg,
            info,
            resume=resume,
            overwrite=overwrite,
            datasets_fn=datasets_fn,
            subset_classes=subset_classes,
            on_start=on_start,
        )


@contextmanager
def _writer_lock(run_dir: Path, info: DistInfo) -> Iterator[None]:
    """Rank 0 holds ``run_dir``'s writer lock; every rank learns whether it got it (so all refuse together)."""
    with ExitStack() as stack:
        error: OutputLockedError | None = None
        if info.is_main:
            try:
                stack.enter_context(output_lock(run_dir))
            except OutputLockedError as exc:
                error = exc
        if any_rank(error is not None, info.device):
            raise error or OutputLockedError(f"--out {run_dir} is being written by another process (see rank 0)")
        yield


def _fit(
    cfg: Config,
    info: DistInfo,
    *,
    resume: bool | str | Path,
    overwrite: bool,
    datasets_fn: DatasetsFn | None,
    subset_classes: list[str] | None,
    on_start: Callable[[], None] | None,
) -> dict[str, Any]:
    """:func:`fit` once the run directory is held: open the run, then train its remaining epochs."""
    rt = cfg.runtime
    if info.device.type == "cpu" and rt.keep_cpu_memory:
        keep_freed_memory()
    seed_everything(rt.seed + info.rank, rt.deterministic)
    loaders, training, run, rng = _open_run(cfg, info, resume, overwrite, datasets_fn)
    if on_start is not None and info.is_main:
        on_start()
    run_dir = Path(rt.output_dir)
    training.ddp_model = wrap_ddp(training.model, info)
    checkpointer = Checkpointer(run_dir / "checkpoints", training, config_to_dict(cfg), info)
    logger = MetricsLogger(run_dir, enabled=info.is_main, tensorboard=rt.tensorboard)
    if info.is_main:
        logger.truncate_after(run.epoch + 1)
    stop = _StopFlag(install=not info.distributed)
    if rng is not None:
        # Last, after every RNG-consuming build step, so the stream continues where the checkpoint left it.
        ckpt_mod.set_rng_state(rng)
    try:
        record = _train_epochs(cfg, info, loaders, training, run, checkpointer, logger, stop, subset_classes)
    finally:
        stop.restore()
        logger.close()
    return {**record, "run_dir": str(run_dir)}


def _open_run(
    cfg: Config, info: DistInfo, resume: bool | str | Path, overwrite: bool, datasets_fn: DatasetsFn | None
) -> tuple[Loaders, Training, RunState, Any]:
    """Check the run directory, build the data and the model, restore a checkpoint; only then touch the files.

    Returns ``(loaders, training, run state, RNG state to restore last or None)``.
    """
    run_dir = Path(cfg.runtime.output_dir)
    ckpt_dir = run_dir / "checkpoints"
    resume_path: Path | None = None
    if resume:
        resume_path = ckpt_dir / "last.pt" if resume is True else Path(resume)
        if not resume_path.is_file():
            raise ckpt_mod.CheckpointError(f"--resume: no checkpoint at {resume_path}")
    # Every rank checks (so all of them refuse together) before anything is built.
    prepare_run_dir(run_dir, resume=bool(resume), overwrite=overwrite, remove=False)
    loaders = build_loaders(cfg, info, datasets_fn)
    training = build_training(cfg, info, loaders.steps_per_epoch, load_weights=resume_path is None)
    run, rng = RunState(), None
    if resume_path is not None:
        run, rng = restore(resume_path, training, info)
    # Only now, with the data, the model and the checkpoint read, are the run's files touched: a bad input
    # leaves an earlier run (even one being overwritten) as it was (a new directory holds only the writer's lock
    # file). Rank 0 removes an overwritten run's files.
    if info.is_main:
        prepare_run_dir(run_dir, resume=bool(resume), overwrite=overwrite, remove=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(ckpt_dir)
        save_config(cfg, run_dir / "config.yaml")
    barrier()
    if resume_path is not None:
        log(
            f"resuming from {resume_path}: epoch {run.epoch}, step {run.epoch_step}/{loaders.steps_per_epoch}",
            enabled=info.is_main,
        )
    return loaders, training, run, rng


def _train_epochs(  # size: the loop's collaborators, each built once by _fit
    cfg: Config,
    info: DistInfo,
    loaders: Loaders,
    training: Training,
    run: RunState,
    checkpointer: Checkpointer,
    logger: MetricsLogger,
    stop: _StopFlag,
    subset_classes: list[str] | None,
) -> dict[str, Any]:
    """The epochs left in ``run``, then the final evaluation (``eval.json``); returns the last epoch's record."""
    oc = cfg.optim
    record: dict[str, Any] = {}
    last_pred: tuple[torch.Tensor, torch.Tensor] | None = None
    while run.epoch < oc.epochs:
        epoch = run.epoch
        local = run_epoch(cfg, loaders, training, run, checkpointer, stop, info)
        sync_bn_buffers(training.model)
        total = reduce_sums(local)
        record = epoch_record(cfg, epoch, local, total, skipped_count(loaders.train_set))
        warn_if_grown(run, total, enabled=info.is_main)
        run.epoch, run.epoch_step, run.sums = epoch + 1, 0, EpochSums()
        if run.epoch % cfg.runtime.eval_every == 0 or run.epoch == oc.epochs:
            last_pred = _validate(loaders, training, run, checkpointer, record, info)
        if info.is_main:
            # Logged before last.pt records the epoch as done: a kill in between re-runs the epoch and
            # rewrites its line (truncate_after); a finished epoch is never left without one.
            logger.log_epoch(record)
            val_top1 = "-" if record["val_top1"] is None else f"{record['val_top1']:.2f}"
            log(
                f"epoch {run.epoch}/{oc.epochs} loss {record['train_loss']:.4f} train_top1 "
                f"{record['train_top1']:.2f} val_top1 {val_top1} lr {record['lr']:.3g}"
            )
        checkpointer.save(run)
        barrier()
    if last_pred is None:
        last_pred = predict(training.ddp_model, loaders.val, info.device, amp=training.amp)
    final = compute_metrics(*last_pred, loaders.class_names, subset_classes)
    if info.is_main:
        write_results(final, Path(cfg.runtime.output_dir) / "eval.json")
    return record


def _validate(
    loaders: Loaders,
    training: Training,
    run: RunState,
    checkpointer: Checkpointer,
    record: dict[str, Any],
    info: DistInfo,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score the validation split into ``record``; a new best top-1 saves ``best.pt``. Returns the predictions."""
    pred = predict(training.ddp_model, loaders.val, info.device, amp=training.amp)
    val = compute_metrics(*pred, loaders.class_names)
    record.update(val_loss=val["loss"], val_top1=val["top1"], val_top5=val["top5"])
    if run.best is None or val["top1"] > run.best:
        run.best = val["top1"]
        checkpointer.save(run, "best.pt")
    return pred


def fit_or_reuse(
    cfg: Config,
    *,
    overwrite: bool = False,
    datasets_fn: DatasetsFn | None = None,
    subset_classes: list[str] | None = None,
) -> tuple[Path, str]:
    """Run ``fit(cfg, ...)`` unless ``cfg.runtime.output_dir`` already holds that run.

    Returns ``(run_dir, what)`` with ``what`` one of ``"trained"``, ``"resumed"``, ``"reused"``. A run made
    with another config raises :class:`~videotaf.errors.RunExistsError` unless ``overwrite``.
    """
    run_dir = Path(cfg.runtime.output_dir)
    step = next_step(run_dir, cfg, overwrite=overwrite)
    if step == "reuse":
        return run_dir, "reused"
    if step == "resume":
        fit(cfg, resume=True, datasets_fn=datasets_fn, subset_classes=subset_classes)
        return run_dir, "resumed"
    # Also a run killed before its first checkpoint: nothing to resume, nothing of value to lose.
    fit(cfg, overwrite=True, datasets_fn=datasets_fn, subset_classes=subset_classes)
    return run_dir, "trained"
