"""Argument types shared by the subcommands of every layer (``videotaf.cli``)."""

from __future__ import annotations

import argparse
from fractions import Fraction


def pixel_fraction(text: str) -> float:
    """``64/255`` or ``0.25`` -> float in [0, 1]: attack budgets are written as pixel fractions, as in the paper."""
    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a fraction such as 64/255, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a value in [0, 1] (pixel scale, e.g. 64/255), got {text!r}")
    return value
