"""``videotaf data ...`` subcommands: ``check`` (scan a dataset for bad input) and ``synth`` (write the synthetic set)."""

from __future__ import annotations

import argparse
import sys

from videotaf.data.check import check_dataset
from videotaf.data.config import DATASET_KINDS, DataConfig, build_dataset
from videotaf.data.errors import AnnotationError, DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data check`` and ``data synth``; each sets ``func(args) -> int``."""
    data = subparsers.add_parser("data", help="dataset tools: check a dataset, write the synthetic dataset")
    sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    check = sub.add_parser("check", help="decode every sample of a dataset split and list every problem")
    check.add_argument("--dataset", required=True, choices=DATASET_KINDS, help="dataset layout")
    check.add_argument("--root", required=True, help="dataset root directory")
    check.add_argument("--split", default="validation", help="split name (default: validation)")
    check.add_argument("--list-file", help="file list (kind filelist), relative to --root")
    check.add_argument("--list-format", default="auto", choices=("auto", "rawframes", "gst", "blvnet", "video"))
    check.add_argument("--classes-file", help="class names, one per line (kind filelist)")
    check.add_argument("--num-frames", type=int, default=8, help="frames sampled per clip (default 8)")
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


def _check(args: argparse.Namespace) -> int:
    cfg = DataConfig(
        kind=args.dataset,
        root=args.root,
        list_files={args.split: args.list_file} if args.list_file else {},
        list_format=args.list_format,
        classes_file=args.classes_file,
        num_frames=args.num_frames,
        crop_size=32,
        scale_size=32,
        bad_input="skip",  # collect every annotation problem instead of stopping at the first file
        num_workers=0,
    )
    try:
        dataset = build_dataset(cfg, args.split, train=False)
    except AnnotationError as err:
        for p in err.problems:
            print(f"ERROR {p}")
        print(f"FAILED: {len(err.problems)} problem(s)")
        return 1
    except (DataError, ValueError) as err:
        print(f"ERROR {err}")
        return 1

    def progress(done: int, total: int) -> None:
        if not args.quiet and (done == total or done % 500 == 0):
            print(f"checked {done}/{total}", file=sys.stderr)

    report = check_dataset(dataset, limit=args.limit, progress=progress)
    for p in report.problems:
        print(f"ERROR {p}")
    print(("OK: " if report.ok else "FAILED: ") + report.summary())
    return 0 if report.ok else 1


def _synth(args: argparse.Namespace) -> int:
    from videotaf.data.synth import synthesize  # noqa: PLC0415 (imports the encoder only when needed)

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
