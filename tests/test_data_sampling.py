"""TSN segment sampling (0-based) and the clip transforms, against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from videotaf.data.sampling import clip_indices, segment_indices
from videotaf.data.transforms import (
    center_crop_params,
    crop_resize,
    fixed_crop_offsets,
    multiscale_crop_params,
)


def test_test_sampling_is_reference_centres_minus_one():
    # Reference (1-based): tick = 10/4 = 2.5, frame k = int(1.25 + 2.5k) + 1 -> 2, 4, 7, 9.
    assert segment_indices(10, 4, train=False) == [1, 3, 6, 8]
    # tick = 30/8 = 3.75: int(1.875 + 3.75k) -> 1, 5, 9, 13, 16, 20, 24, 28.
    assert segment_indices(30, 8, train=False) == [1, 5, 9, 13, 16, 20, 24, 28]


def test_short_video_repeats_indices_in_order():
    # 3 frames, 8 segments. Test: tick = .375 -> int(.1875 + .375k).
    assert segment_indices(3, 8, train=False) == [0, 0, 0, 1, 1, 2, 2, 2]
    # Train: no room for random offsets; floor(k * 3 / 8).
    assert segment_indices(3, 8, train=True, generator=torch.Generator().manual_seed(0)) == [0, 0, 0, 1, 1, 1, 2, 2]
    assert segment_indices(1, 4, train=True) == [0, 0, 0, 0]
    assert segment_indices(1, 4, train=False) == [0, 0, 0, 0]


def test_train_sampling_seeded_random_offset_per_segment():
    g = torch.Generator().manual_seed(123)
    got = segment_indices(20, 4, train=True, generator=g)
    offsets = torch.randint(5, (4,), generator=torch.Generator().manual_seed(123)).tolist()
    assert got == [0 + offsets[0], 5 + offsets[1], 10 + offsets[2], 15 + offsets[3]]
    assert got == segment_indices(20, 4, train=True, generator=torch.Generator().manual_seed(123))
    # n // T = 1: every offset is 0, the segments are the frames themselves.
    assert segment_indices(9, 8, train=True) == list(range(8))


def test_shared_offset_is_the_same_for_every_segment():
    got = segment_indices(40, 4, train=True, generator=torch.Generator().manual_seed(5), shared_offset=True)
    r = got[0]
    assert got == [r, 10 + r, 20 + r, 30 + r]


def test_multi_clip_test_sampling_is_evenly_shifted():
    # tick = 5: clip 0 at 5(k + .25), clip 1 at 5(k + .75).
    assert clip_indices(20, 4, train=False, num_clips=2) == [[1, 6, 11, 16], [3, 8, 13, 18]]
    assert clip_indices(20, 4, train=False, num_clips=1) == [[2, 7, 12, 17]]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 400), t=st.integers(1, 32), seed=st.integers(0, 2**31), train=st.booleans())
def test_indices_in_range_sorted_and_one_per_segment(n, t, seed, train):
    idx = segment_indices(n, t, train=train, generator=torch.Generator().manual_seed(seed))
    assert len(idx) == t
    assert all(0 <= i < n for i in idx)
    assert idx == sorted(idx)
    if n >= t:
        seg = n // t if train else n / t
        for k, i in enumerate(idx):
            assert int(k * seg) <= i < (k + 1) * seg


def test_sampling_rejects_bad_arguments():
    with pytest.raises(ValueError, match="0 frames"):
        segment_indices(0, 8, train=False)
    with pytest.raises(ValueError, match="clip_index"):
        segment_indices(10, 4, train=False, clip_index=2, num_clips=2)


def test_fixed_offsets_hand_computed():
    # 240x320 image, 210x240 crop: steps (240-210)//4 = 7 rows, (320-240)//4 = 20 columns.
    offs = fixed_crop_offsets(240, 320, 210, 240)
    assert len(offs) == 13 and len(set(offs)) == 13
    assert offs[:5] == [(0, 0), (0, 80), (28, 0), (28, 80), (14, 40)]
    assert set(offs[5:]) == {(14, 0), (14, 80), (28, 40), (0, 40), (7, 20), (7, 60), (21, 20), (21, 60)}


def test_multiscale_crop_sizes_and_positions():
    # Short side 240: candidate sides int(240 * s) = 240, 210, 180, 158; aspect differs by <= 1 scale step.
    sides = [240, 210, 180, 158]
    allowed = {(sides[i], sides[j]) for i in range(4) for j in range(4) if abs(i - j) <= 1}
    seen = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        top, left, h, w = multiscale_crop_params(240, 320, 224, generator=g)
        assert (h, w) in allowed
        assert (top, left) in fixed_crop_offsets(240, 320, h, w)
        seen.add((h, w))
    assert seen == allowed
    # A side within 2 px of the output size snaps to it: int(64 * .875) = 56 == crop 56.
    for _ in range(50):
        _, _, h, w = multiscale_crop_params(64, 64, 56, generator=g)
        assert h in (64, 56, 48, 42) and w in (64, 56, 48, 42)


def test_center_crop_equals_resize_short_side_then_crop():
    assert center_crop_params(240, 320, 256, 224) == (15, 55, 210, 210)
    # Smooth image: the window-first implementation matches resize(256) + centre crop(224).
    yy, xx = torch.meshgrid(torch.arange(240.0), torch.arange(320.0), indexing="ij")
    img = torch.stack([xx / 320, yy / 240, (xx + yy) / 560]).unsqueeze(0) * 255
    fast = crop_resize(img, center_crop_params(240, 320, 256, 224), 224)
    big = torch.nn.functional.interpolate(img, size=(256, 341), mode="bilinear", align_corners=False, antialias=True)
    top, left = (256 - 224) // 2, (341 - 224) // 2
    ref = big[:, :, top : top + 224, left : left + 224]
    assert fast.shape == (1, 3, 224, 224)
    assert (fast - ref).abs().max() < 2.0  # within 2/255 on a gradient image


def test_crop_is_identical_for_every_frame():
    clip = torch.rand(1, 3, 40, 50).repeat(6, 1, 1, 1) * 255
    out = crop_resize(clip, multiscale_crop_params(40, 50, 32, generator=torch.Generator().manual_seed(1)), 32)
    assert out.shape == (6, 3, 32, 32)
    assert torch.equal(out, out[:1].expand_as(out))
