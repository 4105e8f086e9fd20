"""Argument types and wrappers shared by the subcommands of every layer (``videotaf.cli``)."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from fractions import Fraction

from videotaf.io import output_lock


def add_overrides(p: argparse.ArgumentParser, example: str = "optim.lr=0.001") -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``: the config override every subcommand takes."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config field, e.g. --set {example} (repeatable; values parsed as YAML)",
    )


def pixel_fraction(text: str) -> float:
    """``64/255`` or ``0.25`` -> float in [0, 1]: attack budgets are written as pixel fractions, as in the paper."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a fraction such as 64/255, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a value in [0, 1] (pixel scale, e.g. 64/255), got {text!r}")
    return value


def holding_out(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``command`` run while holding the writer's lock of its ``--out`` directory (:func:`videotaf.io.output_lock`)
    for its whole life: a second ``compare``/``robustness``/``report`` into the same directory is refused in one
    line naming this process. ``compare``'s device workers write into their own run directories (each ``train``
    holds its own), so the parent's lock never blocks them."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        with output_lock(args.out):
            return command(args)

    return run
