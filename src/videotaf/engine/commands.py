"""Subcommands of the engine layer (see ``videotaf.cli``): train, finetune, eval, export, demo.

Examples::

    videotaf train --config configs/ssv2/tsm_r50_8f.yaml --set optim.lr=0.005 --out runs/tsm8
    videotaf train --out runs/tsm8 --resume                     # config read back from runs/tsm8/config.yaml
    videotaf finetune --config configs/finetune/ssv2_tsm_r50_8f.yaml --checkpoint runs/tsm8/checkpoints/best.pt \\
        --method taf --out runs/tsm8_taf
    videotaf eval --checkpoint runs/tsm8_taf/checkpoints/best.pt --subset-classes long_term.txt --out eval.json
    videotaf export --checkpoint runs/tsm8_taf/checkpoints/best.pt --out tsm8_taf.pt
    videotaf demo --quick
    torchrun --nproc_per_node 2 -m videotaf train --config configs/synthetic/tsm_tiny.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

from videotaf.config import METHODS, ConfigError, config_from_dict, load_config

FINETUNE_EPOCHS = 15
FINETUNE_DECAY_AFTER = 10


def _fraction(text: str) -> float:
    """``64/255`` or ``0.25`` -> float (attack budgets are written as pixel fractions, as in the paper)."""
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a fraction such as 64/255, got {text!r}") from None


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set optim.lr=0.001 (repeatable; values parsed as YAML)",
    )
    p.add_argument("--out", type=Path, default=None, help="run directory (overrides runtime.output_dir)")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="CKPT",
        help="continue the interrupted run from RUN/checkpoints/last.pt (or from CKPT)",
    )
    p.add_argument(
        "--subset-classes",
        type=Path,
        default=None,
        metavar="FILE",
        help="class list (names or ids, one per line) scored separately in RUN/eval.json",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``finetune``, ``eval``, ``export`` and ``demo``; each sets ``func(args) -> int``."""
    p = subparsers.add_parser("train", help="train a baseline model from a YAML config")
    p.add_argument("--config", type=Path, default=None, help="YAML config (optional with --resume and --out)")
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a trained model with plain / ce_adv / advprop / taf (paper Sec. 4.1 protocol)",
        description=(
            f"Fine-tunes for --epochs (default {FINETUNE_EPOCHS}) epochs, LR x0.1 after --decay-after (default "
            f"{FINETUNE_DECAY_AFTER}); these replace optim.epochs/schedule/milestones/warmup of the config. "
            "Attack settings default to the config's adversarial section (paper: alpha 0.7, eps 64/255, "
            "step 32/255, K 1, N = T)."
        ),
    )
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: the checkpoint's own config)")
    p.add_argument("--checkpoint", type=Path, required=True, help="trained model to start from")
    p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--epochs", type=int, default=FINETUNE_EPOCHS)
    p.add_argument("--decay-after", type=int, default=FINETUNE_DECAY_AFTER, help="epoch of the x0.1 LR decay")
    p.add_argument("--alpha", type=float, default=None, help="weight of the clean loss, Eq. (7)")
    p.add_argument("--eps", type=_fraction, default=None, help="L-inf budget in [0,1] pixels, e.g. 64/255")
    p.add_argument("--step-size", type=_fraction, default=None, help="PGD step, e.g. 32/255")
    p.add_argument("--steps", type=int, default=None, help="PGD steps K")
    p.add_argument("--num-nonkey", type=int, default=None, help="attacked frames N (default T)")
    _add_common(p)
    p.set_defaults(func=cmd_finetune)

    p = subparsers.add_parser("eval", help="evaluate a checkpoint (1 clip, centre crop) and write results JSON")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--config", type=Path, default=None, help="config for the data (default: the checkpoint's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--subset-classes", type=Path, default=None, metavar="FILE")
    p.add_argument("--split", default=None, help="dataset split to evaluate (default: data.val_split)")
    p.add_argument("--out", type=Path, required=True, help="results JSON")
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("export", help="write inference weights (auxiliary BN stripped, weights only)")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "demo", help="synthetic long-term-motion data: baseline, then plain vs TAF fine-tuning, side by side"
    )
    p.add_argument("--quick", action="store_true", help="smaller run for smoke tests (~2 min on 2 cores)")
    p.add_argument("--out", type=Path, default=Path("demo_runs"), help="output directory (default demo_runs)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _train_config(args: argparse.Namespace, fallback: Path | None = None):
    path = args.config
    if path is None and fallback is not None and fallback.is_file():
        path = fallback
    overrides = list(getattr(args, "extra_overrides", [])) + list(args.overrides)
    if args.out is not None:
        overrides.append(f"runtime.output_dir={json.dumps(str(args.out))}")
    return load_config(path, overrides)


def cmd_train(args: argparse.Namespace) -> int:
    """``videotaf train``: baseline training (``adversarial.method`` from the config, normally plain)."""
    fallback = args.out / "config.yaml" if (args.resume and args.out is not None) else None
    if args.config is None and fallback is None:
        return _fail("--config is required (or --resume with --out RUN holding RUN/config.yaml)")
    try:
        cfg = _train_config(args, fallback)
    except ConfigError as exc:
        return _fail(str(exc))
    return _run_fit(cfg, args)


def _run_fit(cfg, args: argparse.Namespace) -> int:
    """``fit`` for ``train`` and ``finetune``: exit 143 after a SIGTERM (last.pt saved), 2 on a bad checkpoint."""
    from videotaf.engine.checkpoint import CheckpointError  # noqa: PLC0415
    from videotaf.engine.train import TrainingInterrupted, fit  # noqa: PLC0415

    try:
        fit(cfg, resume=args.resume, subset_classes=_subset(args.subset_classes, cfg))
    except TrainingInterrupted as exc:
        print(str(exc), file=sys.stderr)
        return 143
    except CheckpointError as exc:
        return _fail(str(exc))
    return 0


def _subset(path: Path | None, cfg) -> list[str] | None:
    if path is None:
        return None
    from videotaf.engine.evaluate import read_class_subset  # noqa: PLC0415

    names = _class_names_for(cfg)
    return read_class_subset(path, names)


def _class_names_for(cfg) -> list[str]:
    from videotaf.engine.builders import class_names_of  # noqa: PLC0415

    try:
        from videotaf.data import build_dataset  # noqa: PLC0415
    except ImportError:
        return [str(i) for i in range(cfg.model.num_classes)]
    return class_names_of(build_dataset(cfg.data, cfg.data.val_split, False), cfg.model.num_classes)


def finetune_overrides(args: argparse.Namespace) -> list[str]:
    """The paper's fine-tuning protocol (Sec. 4.1) as config overrides, before the user's ``--set``."""
    out = [
        f"model.pretrained={json.dumps(str(args.checkpoint))}",
        "model.pretrained_source=auto",
        f"optim.epochs={args.epochs}",
        "optim.schedule=step",
        f"optim.milestones=[{args.decay_after}]",
        "optim.gamma=0.1",
        "optim.warmup_epochs=0",
        f"adversarial.method={args.method}",
    ]
    for flag, key in (
        ("alpha", "alpha"),
        ("eps", "eps"),
        ("step_size", "step_size"),
        ("steps", "steps"),
        ("num_nonkey", "num_nonkey"),
    ):
        value = getattr(args, flag)
        if value is not None:
            out.append(f"adversarial.{key}={value!r}")
    return out


def cmd_finetune(args: argparse.Namespace) -> int:
    """``videotaf finetune``: plain / ce_adv / advprop / taf fine-tuning from ``--checkpoint``."""
    from videotaf.config import apply_overrides  # noqa: PLC0415
    from videotaf.engine.checkpoint import CheckpointError, load_checkpoint  # noqa: PLC0415

    if not args.checkpoint.is_file():
        return _fail(f"--checkpoint: file not found: {args.checkpoint}")
    args.extra_overrides = finetune_overrides(args)
    try:
        if args.config is None and not (args.resume and args.out and (args.out / "config.yaml").is_file()):
            # Start from the config the checkpoint was trained with.
            saved = load_checkpoint(args.checkpoint).get("config") or {}
            if not saved:
                return _fail(f"{args.checkpoint} holds no config; pass --config")
            extra = list(args.extra_overrides) + list(args.overrides)
            if args.out is not None:
                extra.append(f"runtime.output_dir={json.dumps(str(args.out))}")
            cfg = config_from_dict(apply_overrides(saved, extra), f"{args.checkpoint} (saved config)")
        else:
            cfg = _train_config(args, args.out / "config.yaml" if (args.resume and args.out) else None)
    except (ConfigError, CheckpointError) as exc:
        return _fail(str(exc))
    out_dir = Path(cfg.runtime.output_dir).resolve()
    if args.checkpoint.resolve().is_relative_to(out_dir):
        # Writing the fine-tuning run into the run that holds its starting checkpoint would overwrite it.
        if args.out is not None:
            return _fail(f"--out {args.out} contains the starting checkpoint {args.checkpoint}; choose another")
        cfg.runtime.output_dir = f"{cfg.runtime.output_dir.rstrip('/')}_{args.method}"
        print(f"fine-tuning run directory: {cfg.runtime.output_dir}", file=sys.stderr)
    return _run_fit(cfg, args)


def cmd_eval(args: argparse.Namespace) -> int:
    """``videotaf eval``: 1-clip centre-crop evaluation of a checkpoint; writes ``--out`` JSON."""
    import torch  # noqa: PLC0415
    from torch.utils.data import DataLoader  # noqa: PLC0415

    from videotaf.config import apply_overrides  # noqa: PLC0415
    from videotaf.engine.builders import class_names_of  # noqa: PLC0415
    from videotaf.engine.checkpoint import CheckpointError, load_model  # noqa: PLC0415
    from videotaf.engine.distributed import resolve_device  # noqa: PLC0415
    from videotaf.engine.evaluate import evaluate, read_class_subset, write_results  # noqa: PLC0415

    try:
        model, cfg_dict = load_model(args.checkpoint)
        if args.config is not None:
            cfg = load_config(args.config, args.overrides)
        else:
            cfg = config_from_dict(apply_overrides(cfg_dict, args.overrides), f"{args.checkpoint} (saved config)")
    except (ConfigError, CheckpointError) as exc:
        return _fail(str(exc))
    from videotaf.data import build_dataset  # noqa: PLC0415

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
    from videotaf.engine.checkpoint import CheckpointError, export  # noqa: PLC0415

    try:
        out = export(args.checkpoint, args.out)
    except CheckpointError as exc:
        return _fail(str(exc))
    print(json.dumps({"exported": str(out)}))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``videotaf demo``: see :mod:`videotaf.demo`."""
    from videotaf.demo import run_demo  # noqa: PLC0415

    run_demo(args.out, quick=args.quick, seed=args.seed)
    return 0
