"""Decoding the real fixtures: frame counts (header and WebM without one), shapes, values, early stop."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from videotaf.data import FileList, decode_video_frames, load_jpeg_frames, video_frame_count
from videotaf.data.decode import clear_frame_count_cache, detect_frame_template


@pytest.mark.parametrize(
    "name,count,hw",
    [("clip_a.mp4", 300, (256, 340)), ("clip_a.webm", 150, (256, 340)), ("clip_c.avi", 164, (240, 320)),
     ("clip_d.mp4", 32, (256, 340)), ("clip_b.mp4", 280, (256, 340))],
)  # fmt: skip
def test_real_frame_counts_and_shapes(real_fixtures: Path, name, count, hw):
    clear_frame_count_cache()
    path = real_fixtures / name
    assert video_frame_count(path) == count
    frames = decode_video_frames(path, [count - 1, 0, 0])
    assert frames.shape == (3, *hw, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames[1], frames[2])
    assert frames.std() > 10  # real picture content, not a blank frame


def test_webm_header_has_no_count_but_we_count_150(real_fixtures: Path):
    with av.open(str(real_fixtures / "clip_a.webm")) as c:
        assert c.streams.video[0].frames == 0
    assert video_frame_count(real_fixtures / "clip_a.webm") == 150


def test_decoded_frames_match_full_decode(real_fixtures: Path):
    path = real_fixtures / "clip_a.webm"
    with av.open(str(path)) as c:
        full = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(full) == 150
    idx = [149, 3, 77]
    got = decode_video_frames(path, idx)
    for k, i in enumerate(idx):
        assert np.array_equal(got[k], full[i])


def test_decoding_stops_at_the_highest_index(real_fixtures: Path, monkeypatch):
    seen = []
    real_decode = av.container.InputContainer.decode

    def counting_decode(self, *args, **kwargs):
        for frame in real_decode(self, *args, **kwargs):
            seen.append(frame)
            yield frame

    monkeypatch.setattr(av.container.InputContainer, "decode", counting_decode)
    decode_video_frames(real_fixtures / "clip_a.mp4", [2, 10])
    assert len(seen) == 11


def test_jpeg_folder_only_sampled_frames_opened(real_fixtures: Path, monkeypatch):
    folder = real_fixtures / "frames_a"
    assert detect_frame_template(folder) == "img_{:05d}.jpg"
    opened = []
    from PIL import Image

    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: (opened.append(Path(fp).name), real_open(fp, *a, **k))[1])
    frames = load_jpeg_frames(folder, [1, 5, 5, 10], "img_{:05d}.jpg")
    assert frames.shape == (4, 240, 320, 3)  # NOTICE.md says 340x256; the files are 320x240
    assert sorted(set(opened)) == ["img_00001.jpg", "img_00005.jpg", "img_00010.jpg"]


def test_dataset_items_from_real_fixtures(real_fixtures: Path, tmp_path: Path):
    for name in ("clip_a.mp4", "clip_a.webm", "clip_c.avi", "clip_d.mp4"):
        (tmp_path / name).symlink_to(real_fixtures / name)
    (tmp_path / "frames_a").symlink_to(real_fixtures / "frames_a")
    (tmp_path / "videos.txt").write_text("clip_a.mp4 0\nclip_a.webm 1\nclip_c.avi 2\nclip_d.mp4 3\n")
    (tmp_path / "frames.txt").write_text("frames_a 10 1\n")
    videos = FileList(tmp_path, "videos.txt", num_frames=8, crop_size=56, scale_size=64)
    assert [videos.frame_count(i) for i in range(4)] == [300, 150, 164, 32]
    for i in range(4):
        clip, label = videos[i]
        assert clip.shape == (8, 3, 56, 56) and clip.dtype == torch.float32 and label == i
        assert 0.0 <= clip.min() < 0.2 and 0.8 < clip.max() <= 1.0
    train = FileList(tmp_path, "videos.txt", num_frames=8, crop_size=56, train=True, seed=0, test_clips=3)
    assert train[1][0].shape == (8, 3, 56, 56)  # training always returns one clip
    frames = FileList(tmp_path, "frames.txt", num_frames=4, crop_size=56, scale_size=64, test_clips=2)
    clip, label = frames[0]
    assert clip.shape == (8, 3, 56, 56) and label == 1
    # Two clips of 4 from 10 frames: ticks 2.5 -> [0, 3, 5, 8] and [1, 4, 6, 9].
    assert frames.sample_indices(0) == [[0, 3, 5, 8], [1, 4, 6, 9]]
    # Same content whether read from the mp4 or its webm re-encode (same centre crop): lossy, so loosely.
    a, _ = videos[0]
    b, _ = videos[1]
    assert (a[0] - b[0]).abs().mean() < 0.08


@pytest.mark.parametrize(
    "need,expected_hw", [(64, (120, 160)), (31, (60, 80)), (30, (30, 40)), (20, (30, 40)), (121, (240, 320))]
)
def test_jpeg_draft_picks_the_smallest_dct_scale_that_covers_the_need(real_fixtures: Path, need, expected_hw):
    # 320x240 frames: scales 1/2, 1/4, 1/8 give short sides 120, 60, 30; the chosen one is the smallest >= need
    # (and there is none below full size when need > 120).
    frames = load_jpeg_frames(real_fixtures / "frames_a", [1, 2], "img_{:05d}.jpg", min_short_side=need)
    assert frames.shape == (2, *expected_hw, 3) and frames.dtype == np.uint8


def test_jpeg_draft_matches_an_area_downscale_of_the_full_frame(real_fixtures: Path):
    full = load_jpeg_frames(real_fixtures / "frames_a", [3], "img_{:05d}.jpg")[0].astype(np.float64)
    half = load_jpeg_frames(real_fixtures / "frames_a", [3], "img_{:05d}.jpg", min_short_side=64)[0].astype(np.float64)
    # Averaging 2x2 blocks of the full decode is what a 1/2 DCT scale approximates; a wrong scale, a flipped or
    # shifted frame or a colour-space slip would be tens of grey levels off.
    area = full.reshape(120, 2, 160, 2, 3).mean(axis=(1, 3))
    assert np.abs(area - half).mean() < 3.0
    assert np.abs(area - np.roll(half, 4, axis=1)).mean() > 3 * np.abs(area - half).mean()


def test_dataset_decodes_jpegs_no_smaller_than_its_crop_needs(real_fixtures: Path, tmp_path: Path):
    (tmp_path / "frames_a").symlink_to(real_fixtures / "frames_a")
    (tmp_path / "frames.txt").write_text("frames_a 10 1\n")
    test = FileList(tmp_path, "frames.txt", num_frames=4, crop_size=56, scale_size=64)
    train = FileList(tmp_path, "frames.txt", num_frames=4, crop_size=56, train=True, seed=0)
    assert test.decode_short_side() == 64
    assert train.decode_short_side() == 85  # smallest multi-scale crop is 0.66 of the short side: ceil(56 / 0.66)
    assert test.read_frames(0, [0, 1]).shape == (2, 120, 160, 3)  # 240 >= 2 * 64: half scale
    assert train.read_frames(0, [0, 1]).shape == (2, 120, 160, 3)  # 120 >= 85 still
    big_crop = FileList(tmp_path, "frames.txt", num_frames=4, crop_size=100, train=True, seed=0)
    assert big_crop.read_frames(0, [0]).shape == (1, 240, 320, 3)  # needs 152: 240 < 2 * 152, full size
    exact = FileList(tmp_path, "frames.txt", num_frames=4, crop_size=56, scale_size=64, jpeg_draft=False)
    assert exact.read_frames(0, [0]).shape == (1, 240, 320, 3)
    a, b = test[0][0], exact[0][0]
    assert a.shape == b.shape == (4, 3, 56, 56)
    assert (a - b).abs().mean() < 0.02  # same view, different decode path


def test_draft_request_by_hand():
    from videotaf.data.decode import draft_request

    assert draft_request(320, 240, 64) == (86, 64)  # 320 * 64 / 240 = 85.3, rounded up
    assert draft_request(240, 320, 60) == (60, 80)
    assert draft_request(320, 240, 121) is None  # 240 < 2 * 121: no reduced scale covers it
    assert draft_request(320, 240, 120) == (160, 120)


def test_kept_rgb_converter_follows_each_videos_size_and_format(real_fixtures: Path):
    """The per-thread converter is reused across videos of different sizes and codecs: every frame must still
    equal PyAV's own one-off conversion of that frame."""
    for name in ("clip_a.mp4", "clip_c.avi", "clip_a.webm", "clip_c.avi"):
        path = real_fixtures / name
        with av.open(str(path)) as c:
            reference = [f.to_ndarray(format="rgb24") for _, f in zip(range(6), c.decode(video=0))]
        got = decode_video_frames(path, [5, 0, 2])
        for k, i in enumerate([5, 0, 2]):
            assert got[k].shape == reference[i].shape
            assert np.array_equal(got[k], reference[i])


def _decode_in_child(path: str, queue) -> None:
    queue.put(decode_video_frames(path, [0, 3]).sum())


def test_decoding_in_a_forked_worker_after_the_parent_decoded(real_fixtures: Path):
    """DataLoader workers are forked from a process that may have decoded already (a validation pass with
    ``num_workers: 0``): the child's RGB conversion must not wait on converter threads that fork left behind
    (it did, forever, with swscale's automatic slice threads)."""
    import multiprocessing

    path = str(real_fixtures / "clip_a.webm")
    expected = decode_video_frames(path, [0, 3]).sum()  # the parent's converter now exists
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_decode_in_child, args=(path, queue))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung converting frames to RGB")
    assert child.exitcode == 0 and queue.get(timeout=5) == expected
