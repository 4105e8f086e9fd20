"""The ``videotaf`` command line: one entry point, subcommands contributed by each layer.

Each module in ``_COMMAND_MODULES`` exposes ``register(subparsers)``, adding its subcommands with
``set_defaults(func=...)``; ``func(args) -> int`` is the exit status.

Exit statuses:

=====  ==========================================================================================
0      success
1      an unexpected error (a bug: the traceback is printed; please report it)
2      bad input or a refused action: a config, argument, checkpoint or dataset problem, or an output
       that exists (``--resume`` / ``--overwrite``); one line ``error: ...`` naming the file or field
3      the output cannot be written (disk full, permissions); one line naming the file
4      training diverged: a loss term (or the weights) became non-finite; one line naming the epoch, step,
       term and LR; ``last.pt``/``best.pt`` keep their last finite state
130    interrupted by SIGINT (Ctrl-C); in training after saving ``last.pt`` at the step boundary
143    training stopped by SIGTERM after saving ``last.pt`` (``--resume`` continues)
=====  ==========================================================================================

Also: ``videotaf data check`` exits 1 when it finds a bad file (its report lists them); a process killed by a
signal it does not handle (SIGKILL, or SIGTERM outside training) ends with the shell's ``128 + signal``.
A second writer into an output directory held by a live process gets status 2 (``OutputLockedError``).

``--debug`` (or ``VIDEOTAF_DEBUG=1``) prints the traceback of an expected failure too.

Warnings (videotaf's, e.g. :class:`videotaf.cam.CamResolutionWarning`, and those of torch or other libraries) are
printed as one line each, ``warning: <Category>: <message>``, on stderr, beside the output and never in place
of the one ``error:`` line of a failure.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import NoReturn, TextIO

from videotaf.data.errors import DataError
from videotaf.errors import TrainingDivergedError, VideotafError
from videotaf.io import DiskFullError

_COMMAND_MODULES = (
    "videotaf.cli.engine",
    "videotaf.cli.data",
    "videotaf.cli.analysis",
    "videotaf.cli.demo",
)

EXIT_BAD_INPUT = 2
EXIT_CANNOT_WRITE = 3
EXIT_DIVERGED = 4

# What a user can fix: printed as one line. ValueError is the library's "this input is out of range".
_BAD_INPUT: tuple[type[BaseException], ...] = (VideotafError, DataError, ValueError, FileNotFoundError)
_CANNOT_WRITE: tuple[type[BaseException], ...] = (DiskFullError, PermissionError, OSError)


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line too (``error: videotaf finetune: argument --eps: ...``), exit status 2;
    subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="videotaf",
        description="Temporal Adversarial Augmentation and TAF fine-tuning for video classifiers.",
    )
    parser.add_argument("--debug", action="store_true", help="print tracebacks of expected failures too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return " ".join(text.split())


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` of the command line: one line, without Python's file:line and source echo (the
    default is two lines, the second a line of library code that means nothing to a user)."""
    text = " ".join(str(message).split()) or category.__name__
    try:
        print(f"warning: {category.__name__}: {text}", file=file or sys.stderr, flush=True)
    except OSError:  # a closed or full stderr must not turn a warning into a failure
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    debug = args.debug or os.environ.get("VIDEOTAF_DEBUG", "") not in ("", "0")
    # Scoped to the command: the caller's (a test's, an embedding program's) warning handling comes back after it.
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args, debug)


def _run(args: argparse.Namespace, debug: bool) -> int:
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except TrainingDivergedError as exc:  # before _BAD_INPUT: a VideotafError with its own status
        if debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_DIVERGED
    except _BAD_INPUT as exc:
        if debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except _CANNOT_WRITE as exc:
        if debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_CANNOT_WRITE
