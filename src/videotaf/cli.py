"""The ``videotaf`` command line: one entry point, subcommands contributed by each layer.

Each module in ``_COMMAND_MODULES`` exposes ``register(subparsers)``, adding its subcommands with
``set_defaults(func=...)``; ``func(args) -> int`` is the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys

_COMMAND_MODULES = (
    "videotaf.engine.commands",
    "videotaf.data.commands",
    "videotaf.analysis.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videotaf",
        description="Temporal Adversarial Augmentation and TAF fine-tuning for video classifiers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
