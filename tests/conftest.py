from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "real"

# Two cores on CI: more threads than cores only adds contention for these tiny tensors.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"real footage fixtures not found at {FIXTURES}")
    return FIXTURES
