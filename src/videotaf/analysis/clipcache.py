"""On-disk cache of corrupted clips for the slow stream corruptions (encode, damage, decode; see
:mod:`videotaf.analysis.codec`), so a second model or seed evaluated on the same clips reuses them.

Key: ``(clip, corruption, severity, seed)``. The clip is named by a hash of its exact pixel values (so the key
does not depend on batch size, worker count or dataset paths), the seed only for corruptions with a random
pattern (an H.264 CRF round trip is the same for every seed). A clip that did not decode is stored as a marker.

Layout: ``ROOT/v1/<corruption>/<severity>/<clip hash>[-<seed>].npy`` holding the decoded frames ``(T, 3, H, W)``
uint8 (stream corruptions decode to 8-bit frames, so the round trip through the cache is exact), or ``.none``
for an undecodable clip. Files are written atomically; a half-written entry never exists.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch

from videotaf.io import atomic_write_bytes

__all__ = ["ClipCache", "clip_key", "MISS", "Miss", "estimate_bytes"]

VERSION = "v1"


class Miss:
    """Sentinel of a cache miss (``None`` is a cached undecodable clip)."""

    def __repr__(self) -> str:
        return "MISS"


MISS = Miss()


def clip_key(clip: torch.Tensor) -> str:
    """Hex digest naming a clip ``(T, 3, H, W)`` by its shape and exact values (20 hex digits of SHA-1)."""
    data = clip.detach().to("cpu", torch.float32).contiguous().numpy()
    digest = hashlib.sha1(repr(tuple(data.shape)).encode())
    digest.update(data.tobytes())
    return digest.hexdigest()[:20]


def estimate_bytes(num_clips: int, clip_shape: tuple[int, ...], num_entries: int) -> int:
    """Disk bytes of ``num_clips`` clips of ``clip_shape`` ``(T, 3, H, W)`` cached ``num_entries`` times each
    (corruptions x severities), at one byte per value plus the 128-byte ``.npy`` header."""
    return int(num_clips) * int(num_entries) * (int(np.prod(clip_shape)) + 128)


class ClipCache:
    """Corrupted clips under ``root`` (see the module docstring); ``hits`` and ``misses`` count lookups."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root) / VERSION
        self.hits = 0
        self.misses = 0

    def _path(self, key: str, corruption: str, severity: int, seed: int | None) -> Path:
        stem = key if seed is None else f"{key}-{seed}"
        return self.root / corruption / str(int(severity)) / stem

    def load(self, key: str, corruption: str, severity: int, seed: int | None) -> torch.Tensor | None | Miss:
        """The cached clip ``(T, 3, H, W)`` float in [0, 1], ``None`` (cached as undecodable) or :data:`MISS`."""
        base = self._path(key, corruption, severity, seed)
        if base.with_suffix(".none").exists():
            self.hits += 1
            return None
        try:
            frames = np.load(base.with_suffix(".npy"), allow_pickle=False)
        except (OSError, ValueError):
            self.misses += 1
            return MISS
        self.hits += 1
        return torch.from_numpy(frames).float() / 255

    def store(self, key: str, corruption: str, severity: int, seed: int | None, clip: torch.Tensor | None) -> None:
        """Save ``clip`` ``(T, 3, H, W)`` in [0, 1] (must be k / 255 values) or ``None`` (undecodable)."""
        base = self._path(key, corruption, severity, seed)
        base.parent.mkdir(parents=True, exist_ok=True)
        if clip is None:
            atomic_write_bytes(base.with_suffix(".none"), b"")
            return
        buf = io.BytesIO()
        np.save(buf, (clip.detach().cpu() * 255).round().to(torch.uint8).numpy(), allow_pickle=False)
        atomic_write_bytes(base.with_suffix(".npy"), buf.getvalue())
