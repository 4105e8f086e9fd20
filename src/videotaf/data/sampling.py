"""TSN segment sampling (Wang et al. 2016) as used by TSM/GST/TPN on Something-Something.

The reference code numbers frames from 1 (``frame k = k*avg + randint(avg) + 1``); this API returns **0-based**
stream positions, i.e. the reference index minus one. Frame-folder datasets add their first file number back.
"""

from __future__ import annotations

import torch

__all__ = ["segment_indices", "clip_indices"]


def segment_indices(
    num_video_frames: int,
    num_segments: int,
    *,
    train: bool,
    generator: torch.Generator | None = None,
    clip_index: int = 0,
    num_clips: int = 1,
    shared_offset: bool = False,
) -> list[int]:
    """0-based frame indices of one clip of ``num_segments`` frames from a video of ``num_video_frames`` frames.

    Train (n >= T): ``avg = n // T``; frame k = ``k * avg + r_k`` with ``r_k ~ U{0..avg-1}`` drawn from
    ``generator`` (one shared ``r`` for all segments when ``shared_offset``, as bLVNet-TAM does).
    Train (n < T): indices repeat in order, frame k = ``floor(k * n / T)`` (no randomness is possible).
    Test: ``tick = n / T``; frame k = ``int(tick * (k + (j + 0.5) / num_clips))`` for clip ``j`` of
    ``num_clips``; with one clip this is the reference centre ``int(tick/2 + tick*k)``, with more clips the
    offsets are spread evenly inside each segment. Short videos repeat indices the same way.
    """
    n, t = int(num_video_frames), int(num_segments)
    if n <= 0:
        raise ValueError(f"segment_indices: video has {n} frames; need at least 1")
    if t <= 0:
        raise ValueError(f"segment_indices: num_segments must be >= 1, got {t}")
    if not 0 <= clip_index < num_clips:
        raise ValueError(f"segment_indices: clip_index {clip_index} not in [0, {num_clips})")
    if train:
        avg = n // t
        if avg == 0:
            return [k * n // t for k in range(t)]
        if shared_offset:
            r = int(torch.randint(avg, (1,), generator=generator))
            return [k * avg + r for k in range(t)]
        offsets = torch.randint(avg, (t,), generator=generator).tolist()
        return [k * avg + r for k, r in enumerate(offsets)]
    tick = n / t
    shift = (clip_index + 0.5) / num_clips
    return [min(n - 1, int(tick * (k + shift))) for k in range(t)]


def clip_indices(
    num_video_frames: int,
    num_segments: int,
    *,
    train: bool,
    num_clips: int = 1,
    generator: torch.Generator | None = None,
    shared_offset: bool = False,
) -> list[list[int]]:
    """Indices of every clip of a sample: one random clip when training, ``num_clips`` shifted clips when testing."""
    if train:
        return [
            segment_indices(
                num_video_frames, num_segments, train=True, generator=generator, shared_offset=shared_offset
            )
        ]
    return [
        segment_indices(num_video_frames, num_segments, train=False, clip_index=j, num_clips=num_clips)
        for j in range(num_clips)
    ]
