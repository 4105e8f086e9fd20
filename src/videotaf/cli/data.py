"""``videotaf data ...`` subcommands: ``check`` (scan a dataset for bad input) and ``synth`` (write the synthetic set)."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from videotaf.config import load_config
from videotaf.data.check import CheckReport, check_dataset
from videotaf.data.config import DATASET_KINDS, DataConfig, build_dataset
from videotaf.data.errors import AnnotationError, DataError
from videotaf.data.filelist import LIST_FORMATS
from videotaf.data.synth import synthesize


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data check`` and ``data synth``; each sets ``func(args) -> int``."""
    data = subparsers.add_parser("data", help="dataset tools: check a dataset, write the synthetic dataset")
    sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    check = sub.add_parser(
        "check",
        help="decode every frame of every sample of a dataset split and list every problem",
        description="Read every annotation entry and decode every frame (JPEG folders: every file; videos: every "
        "packet), listing each problem with its file and annotation line. --fast decodes only the frames test "
        "sampling picks. Exit status 1 when there is any problem.",
    )
    check.add_argument("--config", help="experiment config (YAML): its data section and model.num_classes")
    check.add_argument("--dataset", choices=DATASET_KINDS, help="dataset layout (required without --config)")
    check.add_argument("--root", help="dataset root directory (required without --config)")
    check.add_argument(
        "--split",
        action="append",
        help="split name, repeatable (default: validation; with --config: data.train_split and data.val_split)",
    )
    check.add_argument("--list-file", help="file list (kind filelist), relative to --root")
    check.add_argument("--list-format", choices=LIST_FORMATS, help="file list format (default auto)")
    check.add_argument("--classes-file", help="class names, one per line (kind filelist)")
    check.add_argument("--num-frames", type=int, help="frames sampled per clip (default 8, or data.num_frames)")
    check.add_argument(
        "--num-classes",
        type=int,
        help="labels must be in [0, N) and the dataset must have N classes (default: model.num_classes of "
        "--config; without either, labels are checked against the dataset's own classes only)",
    )
    check.add_argument("--fast", action="store_true", help="decode only the frames test sampling picks")
    check.add_argument("--workers", type=int, default=0, help="check in N processes (default 0: in this one)")
    check.add_argument("--limit", type=int, help="check only the first N samples")
    check.add_argument("--quiet", action="store_true", help="print only problems and the summary")
    check.set_defaults(func=_check)

    synth = sub.add_parser("synth", help="write the synthetic long-term-motion dataset (SSv2 layout)")
    synth.add_argument("--out", required=True, help="output directory")
    synth.add_argument("--classes", type=int, default=8, help="number of classes, 2..12 (default 8)")
    synth.add_argument("--train-per-class", type=int, default=24, help="train videos per class (default 24)")
    synth.add_argument("--val-per-class", type=int, default=12, help="validation videos per class (default 12)")
    synth.add_argument("--frames", type=int, default=16, help="frames per video (default 16)")
    synth.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument(
        "--nuisance", type=float, default=1.0, help="scale of background/noise/jitter nuisances (default 1)"
    )
    synth.set_defaults(func=_synth)


def _check_config(args: argparse.Namespace) -> tuple[DataConfig, int | None, list[str]]:
    """The data config, label count and splits ``data check`` reads (ValueError for a bad command line)."""
    num_classes = args.num_classes
    if args.config:
        cfg = load_config(args.config)
        data = cfg.data
        if num_classes is None:
            num_classes = cfg.model.num_classes
        splits = args.split or list(dict.fromkeys([data.train_split, data.val_split]))
    else:
        if not args.dataset or not args.root:
            raise ValueError("--dataset and --root are required without --config")
        data = DataConfig(kind=args.dataset, root=args.root)
        splits = args.split or ["validation"]
    changes: dict = {}
    if args.dataset:
        changes["kind"] = args.dataset
    if args.root:
        changes["root"] = args.root
    if args.list_file:
        changes["list_files"] = {**data.list_files, **{split: args.list_file for split in splits}}
    if args.list_format:
        changes["list_format"] = args.list_format
    if args.classes_file:
        changes["classes_file"] = args.classes_file
    if args.num_frames is not None:
        changes["num_frames"] = args.num_frames
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"--num-classes must be >= 1, got {num_classes}")
    # Small crops (decoding is what is checked); "skip" collects every annotation problem instead of stopping at
    # the first; no DataLoader workers (--workers parallelises the check itself).
    data = dataclasses.replace(data, **changes, crop_size=32, scale_size=32, bad_input="skip", num_workers=0)
    return data, num_classes, splits


def _check(args: argparse.Namespace) -> int:
    try:
        data, num_classes, splits = _check_config(args)
    except ValueError as err:
        print(f"ERROR {err}")
        return 2
    failed = False
    for split in splits:
        report = _check_split(data, split, num_classes, args)
        for p in report.problems:
            print(f"ERROR {p}")
        print(f"{'OK' if report.ok else 'FAILED'}: split {split}: {report.summary()}")
        failed |= not report.ok
    return 1 if failed else 0


def _check_split(data: DataConfig, split: str, num_classes: int | None, args: argparse.Namespace) -> CheckReport:
    try:
        # The check decodes every clip itself; a frame cache would decode them all once more first.
        dataset = build_dataset(dataclasses.replace(data, cache_frames=False), split, train=False)
    except AnnotationError as err:
        return CheckReport(0, 0, 0, list(err.problems), full=not args.fast)
    except (DataError, ValueError) as err:
        return CheckReport(0, 0, 0, [str(err)], full=not args.fast)

    def progress(done: int, total: int) -> None:
        if not args.quiet and (done == total or done % 500 == 0):
            print(f"{split}: checked {done}/{total}", file=sys.stderr)

    return check_dataset(
        dataset,
        limit=args.limit,
        progress=progress,
        fast=args.fast,
        num_classes=num_classes,
        workers=args.workers,
    )


def _synth(args: argparse.Namespace) -> int:
    try:
        out = synthesize(
            args.out,
            num_classes=args.classes,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            num_frames=args.frames,
            size=args.size,
            seed=args.seed,
            nuisance=args.nuisance,
        )
    except ValueError as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
