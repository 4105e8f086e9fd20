"""Shared by the benchmark scripts: machine description, JSON output, and BENCHMARKS.md sections.

Each script owns one section of BENCHMARKS.md between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` and
rewrites only that section, with the exact command, the machine and the date.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def machine() -> str:
    """One line naming the hardware the numbers come from."""
    if torch.cuda.is_available():
        dev = f"GPU {torch.cuda.get_device_name(0)}"
    else:
        dev = f"CPU only, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    return f"{dev}; {platform.processor() or platform.machine()}; Python {platform.python_version()}; torch {torch.__version__}"


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def header() -> str:
    today = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"Command: `{command_line()}`  \nMachine: {machine()}  \nDate: {today}\n"


def write_json(path: str | Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"command": command_line(), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2) + "\n")


def update_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the ``name`` section of BENCHMARKS.md with ``body``."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
