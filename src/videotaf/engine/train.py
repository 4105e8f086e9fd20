"""The training loop: baseline training and TAF / AdvProp / CE-adversarial / plain fine-tuning (Sec. 3.3, 4.1).

Read top to bottom: :func:`train_one_epoch` runs the optimisation steps of one epoch, :func:`fit` builds
everything from a :class:`~videotaf.config.Config` and runs the epochs (resume, evaluation, checkpoints, logs).

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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from videotaf.config import Config, config_to_dict, save_config
from videotaf.engine import checkpoint as ckpt_mod
from videotaf.engine.allocator import keep_freed_memory
from videotaf.engine.builders import apply_channels_last, build_datasets, build_model, skipped_count
from videotaf.engine.distributed import (
    DistInfo,
    ResumableSampler,
    ShardSampler,
    all_reduce_sum,
    barrier,
    gather_objects,
    init_distributed,
    sync_bn_buffers,
    wrap_ddp,
)
from videotaf.engine.evaluate import compute_metrics, predict, write_results
from videotaf.engine.logs import MetricsLogger, Progress, log
from videotaf.engine.optim import base_lr, build_optimizer, build_scheduler

# Sums kept per epoch (and in mid-epoch checkpoints): loss*n, loss_clean*n, loss_adv*n, correct, n, seconds.
_SUMS = ("loss", "loss_clean", "loss_adv", "correct", "clips", "seconds")


class TrainingInterrupted(Exception):
    """SIGTERM/SIGINT arrived; ``last.pt`` was written at the step boundary (``--resume`` continues)."""


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


def train_one_epoch(
    model: nn.Module,
    objective: Any,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    amp: bool = False,
    clip_grad_norm: float | None = None,
    sums: torch.Tensor | None = None,
    progress: Progress | None = None,
    on_step: Callable[[torch.Tensor], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Optimise over ``loader`` of ``(clips (B,T,3,H,W), labels (B,))`` once with ``objective.step`` (Eq. 7).

    Returns this process's running sums (see ``_SUMS``; float64, continued from ``sums`` when resuming
    mid-epoch). ``on_step(sums)`` runs after every optimizer step (checkpointing); when ``should_stop()``
    turns true the epoch ends early after the current step.
    """
    model.train()
    sums = torch.zeros(len(_SUMS), dtype=torch.float64) if sums is None else sums.clone()
    use_scaler = scaler is not None and scaler.is_enabled()

    def backward(loss: torch.Tensor) -> None:
        (scaler.scale(loss) if use_scaler else loss).backward()

    t_last = time.perf_counter()
    for clips, labels in loader:
        clips = clips.to(device, non_blocking=True)
        labels = torch.as_tensor(labels).to(device, non_blocking=True).long()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=amp):
            out = objective.step(model, clips, labels, backward=backward)
        if use_scaler:
            scaler.unscale_(optimizer)
        if clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        if use_scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        lr = base_lr(optimizer)
        if scheduler is not None:
            scheduler.step()

        n = labels.shape[0]
        correct = (out.logits_clean.argmax(1) == labels).sum().item()
        adv = out.loss_adv.item() if out.loss_adv is not None else 0.0
        now = time.perf_counter()
        sums += torch.tensor(
            [out.loss.item() * n, out.loss_clean.item() * n, adv * n, correct, n, now - t_last], dtype=torch.float64
        )
        t_last = now
        if progress is not None:
            values = {"loss": out.loss.item(), "lr": lr}
            if out.loss_adv is not None:
                values["loss_adv"] = adv
            progress.update(**values)
        if on_step is not None:
            on_step(sums)
        if should_stop is not None and should_stop():
            break
    return sums


class _StopFlag:
    """Turns SIGTERM/SIGINT into a flag checked at step boundaries (single-process runs only: under DDP every
    rank would have to agree on the stopping step, so the default handlers stay)."""

    def __init__(self, install: bool) -> None:
        self.set = False
        self.previous: dict[int, Any] = {}
        if install:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    self.previous[sig] = signal.signal(sig, self._handle)
                except ValueError:  # not the main thread
                    pass

    def _handle(self, signum: int, frame: Any) -> None:
        self.set = True

    def __call__(self) -> bool:
        return self.set

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


DatasetsFn = Callable[[Config], tuple[Dataset, Dataset, list[str]]]


def fit(
    cfg: Config,
    *,
    resume: bool | str | Path = False,
    datasets_fn: DatasetsFn | None = None,
    subset_classes: list[str] | None = None,
) -> dict[str, Any]:
    """Train (or fine-tune) the model of ``cfg`` for ``cfg.optim.epochs`` epochs into ``cfg.runtime.output_dir``.

    Args:
        cfg: the resolved config; ``cfg.adversarial.method`` selects the objective (``videotaf.objective``).
        resume: ``True`` continues from ``RUN/checkpoints/last.pt``; a path continues from that checkpoint.
        datasets_fn: ``cfg -> (train_set, val_set, class_names)``; default ``videotaf.data.build_dataset``.
        subset_classes: class names scored separately in the final ``eval.json`` (e.g. long-term motions).

    Returns:
        The last epoch record (as in ``metrics.jsonl``) plus ``"run_dir"``.

    Writes ``config.yaml``, ``metrics.jsonl``, ``checkpoints/last.pt``, ``checkpoints/best.pt`` (highest val
    top-1) and ``eval.json`` (final model) under the run directory, on rank 0 only.
    """
    from videotaf.bn import convert_dual_norm  # noqa: PLC0415
    from videotaf.objective import build_objective  # noqa: PLC0415

    rt, oc, ac = cfg.runtime, cfg.optim, cfg.adversarial
    info: DistInfo = init_distributed(rt.device)
    device = info.device
    # Mixed precision (fp16 autocast + GradScaler) is a CUDA feature here; on the CPU runs stay in float32.
    amp = rt.amp and device.type == "cuda"
    if device.type == "cpu" and rt.keep_cpu_memory:
        keep_freed_memory()
    run_dir = Path(rt.output_dir)
    ckpt_dir = run_dir / "checkpoints"
    seed_everything(rt.seed + info.rank, rt.deterministic)

    resume_path: Path | None = None
    if resume:
        resume_path = ckpt_dir / "last.pt" if resume is True else Path(resume)
        if not resume_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {resume_path}")

    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    cfg_dict = config_to_dict(cfg)

    # Data: per-process batch; the global batch is optim.batch_size.
    if oc.batch_size % info.world_size:
        raise ValueError(f"optim.batch_size={oc.batch_size} is not divisible by the {info.world_size} processes")
    batch = oc.batch_size // info.world_size
    train_set, val_set, class_names = (datasets_fn or build_datasets)(cfg)
    if len(train_set) < oc.batch_size:
        raise ValueError(
            f"the training set has {len(train_set)} clips, fewer than one batch (optim.batch_size={oc.batch_size})"
        )
    sampler = ResumableSampler(len(train_set), shuffle=True, seed=rt.seed, num_replicas=info.world_size, rank=info.rank)
    loader_gen = torch.Generator()
    loader_kw: dict[str, Any] = dict(
        num_workers=cfg.data.num_workers,
        pin_memory=cfg.data.pin_memory and device.type == "cuda",
        worker_init_fn=_seed_worker,
        persistent_workers=False,
    )
    train_loader = DataLoader(
        train_set, batch_size=batch, sampler=sampler, drop_last=True, generator=loader_gen, **loader_kw
    )
    val_loader = DataLoader(
        val_set,
        batch_size=batch,
        sampler=ShardSampler(len(val_set), info.world_size, info.rank),
        generator=torch.Generator().manual_seed(rt.seed),
        **loader_kw,
    )
    steps_per_epoch = sampler.per_rank // batch

    # Model: weights -> SyncBN -> dual BN -> device -> optimizer (so the aux BN parameters are optimised) -> DDP.
    objective = build_objective(
        ac.method,
        alpha=ac.alpha,
        eps=ac.eps,
        step_size=ac.step_size,
        steps=ac.steps,
        num_nonkey=ac.num_nonkey,
        random_start=ac.random_start,
        **ac.ta_options(),
    )
    model = build_model(cfg.model, load_weights=resume_path is None)
    if rt.sync_bn and info.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if objective.needs_dual_bn:
        convert_dual_norm(model)
    model.to(device)
    if rt.channels_last:
        apply_channels_last(model)
    optimizer = build_optimizer(model, oc)
    scheduler = build_scheduler(optimizer, oc, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    start_epoch, start_step, global_step, best = 0, 0, 0, None
    partial_sums: torch.Tensor | None = None
    rng_to_restore = None
    if resume_path is not None:
        state = ckpt_mod.load_checkpoint(resume_path, map_location="cpu")
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ckpt_mod.CheckpointError(
                f"{resume_path} does not match the configured run (model / method / optimizer groups differ): "
                f"{str(exc)[:400]}"
            ) from exc
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, start_step = int(state["epoch"]), int(state["epoch_step"])
        global_step, best = int(state["step"]), state.get("best_metric")
        if state.get("epoch_sums") is not None and start_step > 0:
            partial_sums = state["epoch_sums"].to(torch.float64)
        per_rank = state.get("rng_per_rank") or []
        rng_to_restore = per_rank[info.rank] if len(per_rank) == info.world_size else state["rng"]
        log(
            f"resuming from {resume_path}: epoch {start_epoch}, step {start_step}/{steps_per_epoch}",
            enabled=info.is_main,
        )
    ddp_model = wrap_ddp(model, info)

    logger = MetricsLogger(run_dir, enabled=info.is_main, tensorboard=rt.tensorboard)
    if info.is_main:
        logger.truncate_after(start_epoch + 1)
    stop = _StopFlag(install=not info.distributed)

    def save_last(epoch: int, epoch_step: int, sums: torch.Tensor | None, path_name: str = "last.pt") -> None:
        # Every rank takes part (collective), so each rank's RNG streams are saved and restored as its own.
        rngs = gather_objects(ckpt_mod.rng_state()) if info.distributed else None
        if not info.is_main:
            return
        state = ckpt_mod.training_state(
            model,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            epoch=epoch,
            step=global_step,
            epoch_step=epoch_step,
            best_metric=best,
            config=cfg_dict,
        )
        state["epoch_sums"] = sums if sums is not None else torch.zeros(len(_SUMS), dtype=torch.float64)
        if rngs is not None:
            state["rng_per_rank"] = rngs
        ckpt_mod.save_checkpoint(state, ckpt_dir / path_name)

    if rng_to_restore is not None:
        # Last, after every RNG-consuming build step, so the stream continues where the checkpoint left it.
        ckpt_mod.set_rng_state(rng_to_restore)

    record: dict[str, Any] = {}
    last_pred: tuple[torch.Tensor, torch.Tensor] | None = None
    try:
        for epoch in range(start_epoch, oc.epochs):
            sampler.set_epoch(epoch)
            first = start_step if epoch == start_epoch else 0
            sampler.set_start(first * batch)
            loader_gen.manual_seed(epoch_seed(rt.seed, epoch))
            if hasattr(train_set, "set_epoch"):
                train_set.set_epoch(epoch)  # per-(seed, epoch, index) augmentation when data.seed is set
            if hasattr(train_set, "reset_skipped") and epoch != start_epoch:
                train_set.reset_skipped()
            step_in_epoch = first

            def on_step(sums: torch.Tensor, _epoch: int = epoch) -> None:
                nonlocal global_step, step_in_epoch
                global_step += 1
                step_in_epoch += 1
                every = rt.checkpoint_every_steps
                if (every and global_step % every == 0) or stop.set:
                    save_last(_epoch, step_in_epoch, sums)

            lr_epoch = base_lr(optimizer)
            progress = Progress(
                steps_per_epoch,
                desc=f"epoch {epoch + 1}/{oc.epochs}",
                mode=rt.progress,
                log_every=rt.log_every,
                initial=first,
                enabled=info.is_main,
            )
            sums = train_one_epoch(
                ddp_model,
                objective,
                train_loader,
                optimizer,
                device=device,
                scheduler=scheduler,
                scaler=scaler,
                amp=amp,
                clip_grad_norm=oc.clip_grad_norm,
                sums=partial_sums if epoch == start_epoch else None,
                progress=progress,
                on_step=on_step,
                should_stop=stop,
            )
            progress.close()
            if stop():
                raise TrainingInterrupted(f"interrupted at epoch {epoch + 1} step {step_in_epoch}; last.pt saved")

            sync_bn_buffers(model)
            totals = all_reduce_sum(sums)
            train_clips = max(totals[4].item(), 1.0)
            record = {
                "epoch": epoch + 1,
                "lr": lr_epoch,
                "train_loss": totals[0].item() / train_clips,
                "train_loss_clean": totals[1].item() / train_clips,
                "train_loss_adv": totals[2].item() / train_clips if ac.method != "plain" else None,
                "train_top1": 100.0 * totals[3].item() / train_clips,
                "val_loss": None,
                "val_top1": None,
                "val_top5": None,
                # Seconds are per process and processes run in parallel: throughput is clips over the slowest.
                "clips_per_s": totals[4].item() / max(sums[5].item(), 1e-9),
                "epoch_time_s": sums[5].item(),
                "skipped": skipped_count(train_set),
            }
            last_epoch = epoch + 1 == oc.epochs
            if (epoch + 1) % rt.eval_every == 0 or last_epoch:
                last_pred = predict(ddp_model, val_loader, device, amp=amp)
                val = compute_metrics(*last_pred, class_names)
                record.update(val_loss=val["loss"], val_top1=val["top1"], val_top5=val["top5"])
                if best is None or val["top1"] > best:
                    best = val["top1"]
                    save_last(epoch + 1, 0, None, "best.pt")
            save_last(epoch + 1, 0, None)
            if info.is_main:
                logger.log_epoch(record)
                log(
                    f"epoch {epoch + 1}/{oc.epochs} loss {record['train_loss']:.4f} train_top1 "
                    f"{record['train_top1']:.2f} val_top1 {record['val_top1']} lr {record['lr']:.3g}"
                )
            barrier()

        if last_pred is None:
            last_pred = predict(ddp_model, val_loader, device, amp=amp)
        final = compute_metrics(*last_pred, class_names, subset_classes)
        if info.is_main:
            write_results(final, run_dir / "eval.json")
    finally:
        stop.restore()
        logger.close()
    return {**record, "run_dir": str(run_dir)}
