"""``data.cache_frames``: every clip decoded once, the same clips out, no decoding afterwards, a size guard."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from videotaf.data import BadSampleError, DataConfig, build_dataset
from videotaf.data import base as data_base


def _config(root: Path, **kw) -> DataConfig:
    return DataConfig(
        kind="somethingv2", root=str(root), num_frames=4, crop_size=16, scale_size=16, seed=3, num_workers=0, **kw
    )


def test_cached_clips_equal_decoded_clips_and_later_reads_do_not_decode(synth_root: Path, monkeypatch):
    plain = build_dataset(_config(synth_root), "train", True)
    cached = build_dataset(_config(synth_root, cache_frames=True), "train", True)
    for epoch in (0, 1):  # a second epoch draws other offsets and crops from the same kept frames
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(len(plain)):
            a, la = plain[i]
            b, lb = cached[i]
            assert la == lb and torch.equal(a, b)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a clip that the cache holds")

    monkeypatch.setattr(data_base, "decode_video_frames", no_decoding)
    batch, labels = next(iter(DataLoader(cached, batch_size=4)))
    assert batch.shape == (4, 4, 3, 16, 16) and labels.shape == (4,)
    with pytest.raises(AssertionError, match="decoded a clip"):
        plain[0]  # the uncached dataset still decodes, so the patch is live


def test_cache_holds_every_frame_of_every_clip(synth_root: Path):
    ds = build_dataset(_config(synth_root), "validation", False)
    held = ds.cache_frames()
    # 3 classes x 2 validation clips, 8 frames of 16 x 16 RGB, uint8.
    assert held == 6 * 8 * 16 * 16 * 3
    assert held == sum(ds._cached[i].nbytes for i in range(len(ds)))


def test_cache_refuses_a_dataset_larger_than_the_allowance(synth_root: Path):
    ds = build_dataset(_config(synth_root), "train", True)
    with pytest.raises(ValueError, match=r"data\.cache_frames: 12 clips of .* set data\.cache_frames: false"):
        ds.cache_frames(max_bytes=1000)
    assert not ds._cached


def test_a_clip_that_fails_to_decode_stays_uncached_and_fails_where_it_is_read(synth_root: Path, tmp_path: Path):
    root = tmp_path / "synth"
    shutil.copytree(synth_root, root)
    victim = sorted((root / "20bn-something-something-v2").iterdir())[0]
    victim.write_bytes(b"")  # an empty file: cannot be opened
    ds = build_dataset(_config(root), "train", True)
    bad = next(i for i, s in enumerate(ds.samples) if Path(s.path) == victim)
    ds.cache_frames()
    assert bad not in ds._cached and len(ds._cached) == len(ds) - 1
    with pytest.raises(BadSampleError, match="empty"):
        ds[bad]
    skipping = build_dataset(dataclasses.replace(_config(root), bad_input="skip", cache_frames=True), "train", True)
    skipping[bad]  # substituted by the next clip, as without the cache
    assert skipping.skipped == 1
