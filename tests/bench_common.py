"""``benchmarks/_common.py`` for the tests (``benchmarks/`` is not a package): the pass counter behind the cost
floors, loaded once under one module name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

if "benchmarks_common" in sys.modules:
    common = sys.modules["benchmarks_common"]
else:
    _spec = importlib.util.spec_from_file_location("benchmarks_common", ROOT / "benchmarks" / "_common.py")
    assert _spec is not None and _spec.loader is not None
    common = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(common)
