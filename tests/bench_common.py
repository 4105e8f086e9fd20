"""The ``benchmarks`` package for the tests (the repository root is on pytest's ``pythonpath``): the pass counter
behind the cost floors (``benchmarks._common``) and a runner of the scripts as ``python -m benchmarks.<name>``."""

from __future__ import annotations

import subprocess
import sys

from benchmarks import _common as common

ROOT = common.ROOT


def run_script(name: str, *args: str) -> None:
    """Run ``python -m benchmarks.<name> ARGS --no-md`` from the root, as the docs say; BENCHMARKS.md untouched."""
    before = (ROOT / "BENCHMARKS.md").read_bytes()
    subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *args, "--no-md"], check=True, cwd=ROOT)
    assert (ROOT / "BENCHMARKS.md").read_bytes() == before
