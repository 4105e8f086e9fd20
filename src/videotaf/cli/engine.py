"""Subcommands of the engine layer (see ``videotaf.cli``): train, finetune, eval, export.

Examples::

    videotaf train --config configs/ssv2/tsm_r50_8f.yaml --set optim.lr=0.005 --out runs/tsm8
    videotaf train --out runs/tsm8 --resume                     # config read back from runs/tsm8/config.yaml
    videotaf finetune --config configs/finetune/ssv2_tsm_r50_8f.yaml --checkpoint runs/tsm8/checkpoints/best.pt \\
        --method taf --out runs/tsm8_taf
    videotaf finetune --out runs/tsm8_taf --resume              # checkpoint and method read back from the run
    videotaf eval --checkpoint runs/tsm8_taf/checkpoints/best.pt --subset-classes long_term.txt --out eval.json
    videotaf export --checkpoint runs/tsm8_taf/checkpoints/best.pt --out tsm8_taf.pt
    torchrun --nproc_per_node 2 -m videotaf train --config configs/synthetic/tsm_tiny.yaml

Expected failures raise :class:`~videotaf.errors.VideotafError` (or a data/config error); ``videotaf.cli``
prints them as one line. A run directory that already holds a run is refused unless ``--resume`` or
``--overwrite`` is given; ``eval`` and ``export`` refuse an existing ``--out`` file unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from videotaf.cli.args import add_overrides, pixel_fraction
from videotaf.config import Config, ConfigError, config_from_dict, load_config, with_overrides
from videotaf.data import build_dataset
from videotaf.engine.builders import build_model, class_names_of, load_model, validation_class_names
from videotaf.engine.checkpoint import CheckpointError, export
from videotaf.engine.distributed import resolve_device
from videotaf.engine.evaluate import evaluate, read_class_subset, write_results
from videotaf.engine.finetune import (
    FINETUNE_DECAY_AFTER,
    FINETUNE_EPOCHS,
    LR_FROM,
    AttackSettings,
    base_config,
    cam_map_note,
    finetune_config,
    finetune_lr,
)
from videotaf.engine.pretrained import apply_checkpoint_family, is_videotaf_file
from videotaf.engine.runs import prepare_run_dir
from videotaf.engine.train import TrainingInterrupted, fit
from videotaf.io import check_output
from videotaf.objective import METHODS


def _add_run_options(p: argparse.ArgumentParser) -> None:
    add_overrides(p)
    p.add_argument("--out", type=Path, default=None, help="run directory (overrides runtime.output_dir)")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CKPT",
        help="continue the interrupted run from RUN/checkpoints/last.pt (or from CKPT)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the run directory")
    p.add_argument(
        "--subset-classes",
        type=Path,
        default=None,
        metavar="FILE",
        help="class list (names or ids, one per line) scored separately in RUN/eval.json",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``finetune``, ``eval`` and ``export``; each sets ``func(args) -> int``."""
    p = subparsers.add_parser("train", help="train a baseline model from a YAML config")
    p.add_argument("--config", type=Path, default=None, help="YAML config (optional with --resume and --out)")
    _add_run_options(p)
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a trained model with plain / ce_adv / advprop / taf (paper Sec. 4.1 protocol)",
        description=(
            f"Fine-tunes for --epochs (default {FINETUNE_EPOCHS}) epochs, LR x0.1 after --decay-after (default "
            f"{FINETUNE_DECAY_AFTER}); these replace optim.epochs/schedule/milestones/gamma/warmup of the config. "
            "Attack settings default to the config's adversarial section (paper: alpha 0.7, eps 64/255, "
            "step 32/255, K 1, N = T). With --resume --out RUN, everything is read back from RUN/config.yaml."
        ),
    )
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: the checkpoint's own config)")
    p.add_argument("--checkpoint", type=Path, default=None, help="trained model to start from")
    p.add_argument("--method", choices=METHODS, default=None)
    p.add_argument("--epochs", type=int, default=FINETUNE_EPOCHS)
    p.add_argument("--decay-after", type=int, default=FINETUNE_DECAY_AFTER, help="epoch of the x0.1 LR decay")
    p.add_argument("--alpha", type=float, default=None, help="weight of the clean loss in [0, 1], Eq. (7)")
    p.add_argument("--eps", type=pixel_fraction, default=None, help="L-inf budget in [0, 1] pixels, e.g. 64/255")
    p.add_argument("--step-size", type=pixel_fraction, default=None, help="PGD step in [0, 1] pixels, e.g. 32/255")
    p.add_argument("--steps", type=int, default=None, help="PGD steps K")
    p.add_argument("--num-nonkey", type=int, default=None, help="attacked frames N in [1, T] (default T)")
    p.add_argument(
        "--lr-from",
        choices=LR_FROM,
        default="auto",
        help="starting LR: the one saved in the checkpoint's optimizer state (the paper's reading, Sec. 4.1), the "
        "config's optim.lr, or auto = the checkpoint's when it has one (default); --set optim.lr=X overrides both",
    )
    _add_run_options(p)
    p.set_defaults(func=cmd_finetune)

    p = subparsers.add_parser("eval", help="evaluate a checkpoint (1 clip, centre crop) and write results JSON")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--config", type=Path, default=None, help="config for the data (default: the checkpoint's)")
    add_overrides(p)
    p.add_argument("--subset-classes", type=Path, default=None, metavar="FILE")
    p.add_argument("--split", default=None, help="dataset split to evaluate (default: data.val_split)")
    p.add_argument("--out", type=Path, required=True, help="results JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("export", help="write inference weights (auxiliary BN stripped, weights only)")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=cmd_export)


def _out_override(args: argparse.Namespace) -> list[str]:
    return [f"runtime.output_dir={json.dumps(str(args.out))}"] if args.out is not None else []


def _saved_run_config(args: argparse.Namespace) -> Path | None:
    """RUN/config.yaml when resuming ``--out RUN`` without ``--config``."""
    if args.resume and args.out is not None and args.config is None:
        path = args.out / "config.yaml"
        if not path.is_file():
            raise ConfigError(f"--resume: {path} not found; pass --config or the --out of an existing run")
        return path
    return None


def _fed_as_trained(cfg: Config, checkpoint: Path | None, args: argparse.Namespace) -> Config:
    """``cfg`` with the preprocessing of the checkpoint family the model starts from, unless ``--config`` or
    ``--set`` names it (``videotaf.engine.pretrained``); prints the one line that says which."""
    cfg, note = apply_checkpoint_family(cfg, checkpoint, args.config, list(args.overrides))
    if note:
        print(note, file=sys.stderr)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    """``videotaf train``: baseline training (``adversarial.method`` from the config, normally plain)."""
    path = _saved_run_config(args) or args.config
    if path is None:
        raise ConfigError("--config is required (or --resume with --out RUN holding RUN/config.yaml)")
    cfg = load_config(path, list(args.overrides) + _out_override(args))
    if path == args.config:  # a new run; a resumed one reads back the config its start resolved
        # A torchvision video model given its Kinetics weights (model.options.weights) is fed as they were trained.
        cfg = _fed_as_trained(cfg, None, args)
    return _run_fit(cfg, args)


def _run_fit(cfg: Config, args: argparse.Namespace, start_note: str | None = None) -> int:
    """``fit`` for ``train`` and ``finetune``; the run directory is checked before anything is built.

    ``start_note`` is printed once everything is read and checked, so that a failure stays one line."""
    prepare_run_dir(cfg.runtime.output_dir, resume=bool(args.resume), overwrite=args.overwrite, remove=False)
    subset = _subset(args.subset_classes, cfg)
    on_start = (lambda: print(start_note, file=sys.stderr, flush=True)) if start_note else None
    try:
        fit(cfg, resume=args.resume, overwrite=args.overwrite, subset_classes=subset, on_start=on_start)
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 128 + exc.signum  # the shell's convention: 130 for SIGINT (Ctrl-C), 143 for SIGTERM
    return 0


def _subset(path: Path | None, cfg: Config) -> list[str] | None:
    if path is None:
        return None
    return read_class_subset(path, validation_class_names(cfg))


def cmd_finetune(args: argparse.Namespace) -> int:
    """``videotaf finetune``: plain / ce_adv / advprop / taf fine-tuning from ``--checkpoint`` (Sec. 4.1)."""
    saved = _saved_run_config(args)
    if saved is not None:
        # The protocol was applied when the run started; its config.yaml holds the result.
        cfg = load_config(saved, list(args.overrides) + _out_override(args))
        for flag, value, recorded in (
            ("--method", args.method, cfg.adversarial.method),
            ("--checkpoint", args.checkpoint and str(args.checkpoint), cfg.model.pretrained),
        ):
            if value is not None and value != recorded:
                raise ConfigError(f"{flag} {value} differs from {recorded} recorded in {saved}; omit it to resume")
        return _run_fit(cfg, args)
    if args.checkpoint is None or args.method is None:
        raise ConfigError("--checkpoint and --method are required (or --resume --out RUN of a started fine-tune)")
    if not args.checkpoint.is_file():
        raise CheckpointError(f"--checkpoint: file not found: {args.checkpoint}")
    base, source = base_config(args.checkpoint, args.config)
    attack = AttackSettings(args.alpha, args.eps, args.step_size, args.steps, args.num_nonkey)
    lr, lr_source = finetune_lr(args.checkpoint, args.lr_from, base.optim.lr)
    cfg = finetune_config(
        base,
        args.checkpoint,
        args.method,
        epochs=args.epochs,
        decay_after=args.decay_after,
        attack=attack,
        output_dir=args.out,
        lr=lr,
    )
    cfg = with_overrides(cfg, list(args.overrides), source)
    cfg = _fed_as_trained(cfg, args.checkpoint, args)
    out_dir = Path(cfg.runtime.output_dir).resolve()
    if args.checkpoint.resolve().is_relative_to(out_dir):
        # Writing the fine-tuning run into the run that holds its starting checkpoint would overwrite it.
        if args.out is not None:
            raise ConfigError(f"--out {args.out} contains the starting checkpoint {args.checkpoint}; choose another")
        cfg.runtime.output_dir = f"{cfg.runtime.output_dir.rstrip('/')}_{args.method}"
        print(f"fine-tuning run directory: {cfg.runtime.output_dir}", file=sys.stderr)
    source_of_lr = lr_source if cfg.optim.lr == lr else "--set optim.lr"
    note = f"fine-tuning LR {cfg.optim.lr:g} from {source_of_lr}"
    cam_note = cam_map_note(cfg)
    return _run_fit(cfg, args, start_note=note if cam_note is None else f"{note}\n{cam_note}")


def _videotaf_model(args: argparse.Namespace) -> tuple[nn.Module, Config]:
    """``eval`` of a videotaf checkpoint: its model, and its saved config (or ``--config``) with ``--set``."""
    model, cfg_dict = load_model(args.checkpoint)
    if args.config is not None:
        return model, load_config(args.config, args.overrides)
    return model, with_overrides(config_from_dict(cfg_dict, f"{args.checkpoint} (saved config)"), args.overrides)


def _official_model(args: argparse.Namespace) -> tuple[nn.Module, Config]:
    """``eval`` of an official checkpoint: the model of ``--config`` with its weights, fed as its family was
    trained (frames, resize, crop: ``videotaf.engine.pretrained``) unless the config or ``--set`` says otherwise."""
    cfg = _fed_as_trained(load_config(args.config, args.overrides), args.checkpoint, args)
    model = build_model(dataclasses.replace(cfg.model, pretrained=str(args.checkpoint), imagenet_weights=None))
    return model.eval(), cfg


def cmd_eval(args: argparse.Namespace) -> int:
    """``videotaf eval``: 1-clip centre-crop evaluation of a checkpoint; writes ``--out`` JSON."""
    check_output(args.out, overwrite=args.overwrite)
    if args.config is not None and args.checkpoint.is_file() and not is_videotaf_file(args.checkpoint):
        model, cfg = _official_model(args)
    else:
        model, cfg = _videotaf_model(args)
    dataset = build_dataset(cfg.data, args.split or cfg.data.val_split, False)
    names = class_names_of(dataset, cfg.model.num_classes)
    subset = read_class_subset(args.subset_classes, names) if args.subset_classes else None
    device = resolve_device(cfg.runtime.device)
    model.to(device)
    loader = DataLoader(
        dataset,
        batch_size=cfg.optim.batch_size,
        shuffle=False,
        num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(0),
    )
    results = evaluate(model, loader, names, device, subset=subset, amp=cfg.runtime.amp and device.type == "cuda")
    results["checkpoint"] = str(args.checkpoint)
    write_results(results, args.out)
    line = f"top1 {results['top1']:.2f}  top5 {results['top5']:.2f}  loss {results['loss']:.4f}"
    if results["subset"]:
        line += f"  subset top1 {results['subset']['top1']:.2f}"
    print(line + f"  ({results['num_clips']} clips) -> {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``videotaf export``: main-path weights and config only (auxiliary BN dropped)."""
    check_output(args.out, overwrite=args.overwrite)
    out = export(args.checkpoint, args.out)
    print(json.dumps({"exported": str(out)}))
    return 0
