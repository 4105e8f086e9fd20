from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
FIXTURES = DATA / "real"
# Every file the tests read from FIXTURES; a missing one is an error of the checkout, never a reason to skip.
FIXTURE_FILES = (
    "clip_a.mp4",
    "clip_a.webm",
    "clip_b.mp4",
    "clip_c.avi",
    "clip_d.mp4",
    *(f"frames_a/img_{k:05d}.jpg" for k in range(1, 11)),
)
SSV2_CLASSES = DATA / "sthv2-classes.txt"

# Two cores on CI: more threads than cores only adds contention for these tiny tensors.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    """``tests/data/real``, the real footage (see its NOTICE.md)."""
    missing = [name for name in FIXTURE_FILES if not (FIXTURES / name).is_file()]
    if missing:
        pytest.fail(f"test data missing from {FIXTURES}: {', '.join(missing)}", pytrace=False)
    return FIXTURES


@pytest.fixture(scope="session")
def ssv2_classes() -> list[str]:
    """The 174 Something-Something V2 class names in id order (``tests/data/sthv2-classes.txt``)."""
    if not SSV2_CLASSES.is_file():
        pytest.fail(f"test data missing: {SSV2_CLASSES}", pytrace=False)
    return SSV2_CLASSES.read_text().splitlines()


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic dataset in the Something-Something V2 layout (3 classes, 4 + 2 clips each, 16 px)."""
    from videotaf.data.synth import synthesize

    return synthesize(
        tmp_path_factory.mktemp("synth"),
        num_classes=3,
        train_per_class=4,
        val_per_class=2,
        num_frames=8,
        size=16,
        seed=0,
    )
