"""Mini Kinetics-C / Mini SSv2-C corruptions (Yi et al. 2021): severity order, seeding, the codec round trips
against direct encodes, damaged streams, undecodable clips counted as wrong, the clip cache, mPC/rPC intervals
and the ``--suite mini-c`` command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from videotaf.analysis import codec, corruptions
from videotaf.analysis.clipcache import MISS, ClipCache, clip_key, estimate_bytes
from videotaf.analysis.corruptions import (
    CORRUPTIONS,
    IMAGENET_C_CORRUPTIONS,
    MINI_C_CORRUPTIONS,
    PAPER_CORRUPTIONS,
    SEVERITIES,
    TEMPORAL_CORRUPTIONS,
    corrupt,
    corrupt_clip,
    minic_frame_index,
    rain_mask,
)
from videotaf.analysis.robust_compare import compare_robustness, robustness_compare_markdown
from videotaf.analysis.robustness import evaluate_robustness, load_robustness, resolve_corruptions
from videotaf.analysis.stats import corruption_summary, paired_score_difference


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_clip(t: int = 8, h: int = 32, w: int = 32) -> torch.Tensor:
    """``(T, 3, H, W)``: a colour gradient with a bright square moving right one pixel per frame (codecs
    compress it well, so CRF steps show; each frame differs, so temporal corruptions show)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    frames = []
    for i in range(t):
        img = torch.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.6 - 0.3 * xx * yy])
        img[:, 8:16, 4 + 2 * i : 12 + 2 * i] = torch.tensor([0.9, 0.8, 0.2]).view(3, 1, 1)
        frames.append(img)
    return torch.stack(frames)


@pytest.fixture()
def repeatable_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """One stream per (frames, encoder, CRF) within a test: the encoders are not bit-for-bit repeatable through
    PyAV (videotaf.analysis.codec), and these tests check our parameters, seeding and damage, not the encoder."""
    real = codec.encode_frames
    streams: dict[tuple[bytes, str, int], bytes] = {}

    def encode(frames: np.ndarray, encoder: str, crf: int) -> bytes:
        return streams.setdefault((frames.tobytes(), encoder, crf), real(frames, encoder, crf))

    monkeypatch.setattr(codec, "encode_frames", encode)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


# ----------------------------------------------------------------------------------------- the suite
def test_mini_c_suite_is_the_benchmarks_twelve_and_the_old_suites_keep_their_names() -> None:
    assert resolve_corruptions(["mini-c"]) == list(MINI_C_CORRUPTIONS)
    assert len(MINI_C_CORRUPTIONS) == 12 and set(MINI_C_CORRUPTIONS) <= set(CORRUPTIONS)
    assert resolve_corruptions(["paper"]) == list(PAPER_CORRUPTIONS)
    assert resolve_corruptions(["temporal"]) == ["reversed", "shuffled", "frozen_frames", "frame_rate"]
    assert resolve_corruptions(["imagenet-c"]) == list(IMAGENET_C_CORRUPTIONS)
    assert TEMPORAL_CORRUPTIONS == ("reversed", "shuffled", "frozen_frames", "frame_rate")
    assert {n for n in MINI_C_CORRUPTIONS if CORRUPTIONS[n].stream} == {
        "bit_error",
        "packet_loss",
        "h264_crf",
        "h265_crf",
    }


# ----------------------------------------------------------------------------------------- severity order
@pytest.mark.parametrize("name", ["minic_motion_blur", "rain", "minic_contrast", "h264_crf", "h265_crf"])
def test_psnr_against_the_clean_clip_falls_with_severity(name: str) -> None:
    clip = smooth_clip()
    values = [psnr(clip, corrupt(clip[None], name, s, gen(0))[0]) for s in SEVERITIES]
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_frame_rate_shows_fewer_distinct_frames_with_severity() -> None:
    # 24 frames read at 12 fps, re-timed to 10, 8, 6, 4, 2 fps: ceil(24 fps / 12) distinct frames remain.
    ids = torch.arange(24, dtype=torch.float32).view(1, 24, 1, 1, 1).expand(1, 24, 3, 2, 2) / 24
    counts = [len(torch.unique(corrupt(ids, "minic_frame_rate", s)[0, :, 0, 0, 0])) for s in SEVERITIES]
    assert counts == [20, 16, 12, 8, 4]


def test_frame_index_hand_computed() -> None:
    # 8 fps from 12: low-rate frame k = floor(8 i / 12) holds the source frame nearest 1.5 k (halves round up).
    assert minic_frame_index(8, 8).tolist() == [0, 0, 2, 3, 3, 5, 6, 6]
    assert minic_frame_index(6, 2).tolist() == [0] * 6
    assert minic_frame_index(5, 12).tolist() == [0, 1, 2, 3, 4]


def test_temporal_motion_blur_is_the_window_mean() -> None:
    # Severity 1: frame i = mean of frames i-1 and i (the first frame repeats at the start).
    x = torch.tensor([0.0, 0.2, 0.4, 1.0]).view(1, 4, 1, 1, 1).expand(1, 4, 3, 2, 2)
    out = corrupt(x, "minic_motion_blur", 1)[0, :, 0, 0, 0]
    torch.testing.assert_close(out, torch.tensor([0.0, 0.1, 0.3, 0.7]))


def test_rain_mask_draws_streaks_of_the_asked_length() -> None:
    mask = rain_mask(3, 40, 30, 1, 10, corruptions._Rng(gen(2), torch.device("cpu")))
    assert mask.shape == (3, 1, 40, 30)
    # One streak of 11 rows per frame, one column wide per row (it steps left once, at its middle row).
    for frame in mask[:, 0]:
        rows = frame.sum(dim=1)
        assert int(frame.sum()) == 11 and rows.max() == 1 and int((rows > 0).sum()) == 11
        assert int((frame.sum(dim=0) > 0).sum()) <= 2


# ----------------------------------------------------------------------------------------- codec round trips
@pytest.mark.parametrize("name,encoder,crf", [("h264_crf", "libx264", 37), ("h265_crf", "libx265", 39)])
def test_crf_corruption_is_the_encoders_output(name: str, encoder: str, crf: int, repeatable_encoder: None) -> None:
    clip = smooth_clip(6, 30, 26)  # padded to 32 x 32 for the encoder, cropped back after decoding
    out = corrupt_clip(clip, name, 3)
    assert out is not None and out.shape == clip.shape
    frames = codec.clip_to_frames(clip)
    direct = codec.decode_stream(codec.encode_frames(frames, encoder, crf), encoder, 6, 32, 32)
    assert direct is not None
    expected = codec.frames_to_clip(direct, 30, 26, clip)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # The codec did work: the clip changed, and it is made of 8-bit levels.
    assert not torch.equal(out, clip)
    torch.testing.assert_close(out * 255, (out * 255).round(), rtol=0, atol=1e-4)


def test_colour_conversion_is_bt601_limited_range_and_lossless_encoding_keeps_it() -> None:
    # White -> Y 235, black -> Y 16, both with neutral chroma 128 (BT.601 "TV" levels); pure red -> Cr 240.
    rgb = np.zeros((2, 4, 3), dtype=np.uint8)
    rgb[:, :2] = 255
    rgb[:, 2:, 0] = 255
    frame = codec.rgb_to_yuv420_frame(rgb)
    y, u, v = (np.frombuffer(bytes(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in frame.planes)
    assert y.tolist() == [[235, 235, 81, 81]] * 2
    assert u.tolist() == [[128, 90]] and v.tolist() == [[128, 240]]
    back = codec.yuv420_frame_to_rgb(frame)
    assert back is not None and np.abs(back.astype(int) - rgb).max() <= 2
    # CRF 0 is lossless in libx264: the decoded clip is exactly the conversion round trip.
    frames = codec.clip_to_frames(smooth_clip(3, 16, 16))
    decoded = codec.decode_stream(codec.encode_frames(frames, "libx264", 0), "libx264", 3, 16, 16)
    expected = np.stack([codec.yuv420_frame_to_rgb(codec.rgb_to_yuv420_frame(f)) for f in frames])
    assert decoded is not None and np.array_equal(decoded, expected)


def test_flip_bytes_and_drop_packets_hand_checked() -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    rng = np.random.default_rng(0)
    assert codec.flip_bytes(data, 0.0, rng) == data
    flipped = np.frombuffer(codec.flip_bytes(data, 0.01, np.random.default_rng(5)), dtype=np.uint8)
    hits = np.random.default_rng(5).random(len(data)) < 0.01  # the same draws the function makes first
    original = np.frombuffer(data, dtype=np.uint8)
    assert (flipped[~hits] == original[~hits]).all()
    assert 60 < hits.sum() < 150 and (flipped != original).sum() <= hits.sum()
    assert codec.drop_packets(data, 0.0, rng) == data
    assert codec.drop_packets(data, 1.0, rng) == b""
    kept = np.random.default_rng(3).random(55) >= 0.5  # 10240 bytes = 54 packets of 188 and one of 88
    dropped = codec.drop_packets(data, 0.5, np.random.default_rng(3))
    assert len(dropped) == 188 * int(kept[:54].sum()) + 88 * int(kept[54])


@pytest.mark.parametrize("name", ["bit_error", "packet_loss"])
def test_transport_damage_is_seeded_and_differs_from_the_clean_stream_only_when_damaged(
    name: str, monkeypatch: pytest.MonkeyPatch, repeatable_encoder: None
) -> None:
    clip = smooth_clip(6)
    frames = codec.clip_to_frames(clip)
    stream = codec.encode_frames(frames, "libx264", corruptions.TRANSPORT_CRF)
    undamaged = codec.frames_to_clip(codec.decode_stream(stream, "libx264", 6, 32, 32), 32, 32, clip)  # type: ignore[arg-type]
    # At the benchmark's rates this small stream is usually left alone: the clip is then the clean round trip.
    table = "BIT_ERROR_RATE" if name == "bit_error" else "PACKET_LOSS"
    monkeypatch.setattr(corruptions, table, (0.0,) * 5)
    torch.testing.assert_close(corrupt_clip(clip, name, 1, gen(0)), undamaged, rtol=0, atol=0)
    # At heavy rates: the same seed repeats the damage, another seed damages differently, and it shows.
    monkeypatch.setattr(corruptions, table, (0.004 if name == "bit_error" else 0.15,) * 5)
    outs = [corrupt_clip(clip, name, 5, gen(s)) for s in (1, 1, 2)]
    as_black = [torch.zeros_like(clip) if o is None else o for o in outs]
    torch.testing.assert_close(as_black[0], as_black[1], rtol=0, atol=0)
    assert not torch.equal(as_black[0], as_black[2])
    assert any(not torch.equal(o, undamaged) for o in as_black)


def test_damaged_streams_never_crash_the_decoder() -> None:
    frames = codec.clip_to_frames(smooth_clip(5, 16, 16))
    for encoder in codec.CODECS:
        stream = codec.encode_frames(frames, encoder, 30)
        for seed in range(12):
            rng = np.random.default_rng(seed)
            damaged = codec.drop_packets(codec.flip_bytes(stream, 0.02, rng), 0.2, rng, packet_bytes=32)
            out = codec.decode_stream(damaged, encoder, 5, 16, 16)
            assert out is None or (out.shape == (5, 16, 16, 3) and out.dtype == np.uint8)
        assert codec.decode_stream(b"", encoder, 5, 16, 16) is None
        assert codec.decode_stream(bytes(range(256)) * 4, encoder, 5, 16, 16) is None


# ----------------------------------------------------------------------------------------- evaluation
class Constant(nn.Module):
    """Always class 0, whatever the clip (black frames included)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return torch.tensor([5.0, 0.0, 0.0]).expand(clips.shape[0], 3)


def test_an_undecodable_clip_counts_as_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every packet lost: nothing decodes. The constant model would be right on black frames; it must not count.
    monkeypatch.setattr(corruptions, "PACKET_LOSS", (1.0,) * 5)
    clips = torch.stack([smooth_clip(3, 16, 16), smooth_clip(3, 16, 16).flip(-1)])
    assert corrupt_clip(clips[0], "packet_loss", 2, gen(0)) is None
    assert torch.equal(corrupt(clips, "packet_loss", 2, gen(0)), torch.zeros_like(clips))
    res = evaluate_robustness(Constant(), [(clips, torch.tensor([0, 0]))], ["packet_loss"], [2])
    model = res["models"]["model"]
    assert model["clean"]["top1"] == 100.0
    assert model["corruptions"]["packet_loss"]["severities"]["2"] == {"top1": 0.0, "top5": 0.0}
    assert res["undecodable"] == {"packet_loss/2": 2} and "counted as wrong" in res["undecodable_rule"]
    assert model["per_clip"] == {"clean_top1": [1, 1], "mpc_top1": [0.0, 0.0]}


def test_cache_is_reused_and_gives_the_same_result(tmp_path: Path, repeatable_encoder: None) -> None:
    clips = torch.stack([smooth_clip(4, 16, 16), smooth_clip(4, 16, 16) * 0.5])
    data = [(clips, torch.tensor([0, 1]))]
    cache = ClipCache(tmp_path / "cache")
    first = evaluate_robustness(Constant(), data, ["h264_crf", "bit_error"], [1, 5], seed=3, cache=cache)
    assert (cache.hits, cache.misses) == (0, 8)
    again = ClipCache(tmp_path / "cache")
    second = evaluate_robustness(Constant(), data, ["h264_crf", "bit_error"], [1, 5], seed=3, cache=again)
    assert (again.hits, again.misses) == (8, 0)
    assert first["models"] == second["models"]
    uncached = evaluate_robustness(Constant(), data, ["h264_crf", "bit_error"], [1, 5], seed=3)
    assert uncached["models"] == first["models"]
    # Keys: the CRF entry has no seed (the same for every seed), the bit-error one has the clip's seed.
    key = clip_key(clips[0])
    assert again.load(key, "h264_crf", 1, None) is not MISS
    assert again.load(key, "bit_error", 5, None) is MISS
    assert len(list((tmp_path / "cache" / "v1" / "bit_error" / "5").glob(f"{key}-*.npy"))) == 1
    cached = again.load(key, "h264_crf", 5, None)
    assert isinstance(cached, torch.Tensor)
    torch.testing.assert_close(cached, corrupt_clip(clips[0], "h264_crf", 5), rtol=0, atol=0)


def test_clip_key_and_size_estimate() -> None:
    clip = smooth_clip(2, 16, 16)
    assert clip_key(clip) == clip_key(clip.clone()) and clip_key(clip) != clip_key(clip.flip(0))
    assert clip_key(clip) != clip_key(clip[:, :, :4])
    # 10 clips x 4 entries x (8 * 3 * 56 * 56 bytes + 128-byte header).
    assert estimate_bytes(10, (8, 3, 56, 56), 4) == 10 * 4 * (75264 + 128)


# ----------------------------------------------------------------------------------------- mPC / rPC intervals
def test_corruption_summary_hand_computed() -> None:
    out = corruption_summary([1, 1, 0, 1], [0.5, 1.0, 0.0, 0.5], n_boot=2000, seed=1)
    assert out["mPC"] == pytest.approx(50.0)
    assert out["rPC"] == pytest.approx(0.5 / 0.75)
    lo, hi = out["mPC_ci95"]
    assert 0 <= lo <= 50 <= hi <= 100
    assert out["rPC_ci95"][0] <= out["rPC"] <= out["rPC_ci95"][1]
    constant = corruption_summary([1] * 5, [0.4] * 5, n_boot=100)
    assert constant["mPC_ci95"] == pytest.approx([40.0, 40.0]) and constant["rPC_ci95"] == pytest.approx([0.4, 0.4])
    assert corruption_summary([0, 0], [0.0, 0.0], n_boot=10)["rPC"] is None


def test_paired_score_difference_over_seeds_and_clips() -> None:
    method = [[0.5, 1.0, 0.5], [1.0, 1.0, 0.5]]
    control = [[0.5, 0.5, 0.5], [0.5, 1.0, 0.0]]
    out = paired_score_difference(method, control, n_boot=500)
    # Per seed: method 66.7 and 83.3, control 50 and 50: differences 16.7 and 33.3 pp.
    assert out["delta"]["per_seed"] == pytest.approx([100 / 6, 100 / 3])
    assert out["delta"]["mean"] == pytest.approx(25.0) and out["bootstrap"]["mean"] == pytest.approx(25.0)
    assert out["delta"]["ci95"][0] < 25 < out["delta"]["ci95"][1]
    assert out["bootstrap"]["ci95"][0] <= 25 <= out["bootstrap"]["ci95"][1]
    with pytest.raises(ValueError, match="fractions"):
        paired_score_difference([[50.0]], [[0.5]])
    assert math.isclose(paired_score_difference([0.5], [0.5], n_boot=10)["bootstrap"]["ci95"][1], 0.0)


# ----------------------------------------------------------------------------------------- compare, CLI
class _FakeRun:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir


def test_compare_robustness_reads_each_runs_suite_result(tmp_path: Path) -> None:
    # Two seeds x (plain, taf) runs with their mini-c results already written: nothing is recomputed.
    per_clip = {("plain", 0): [0.5, 0.5, 0.0], ("plain", 1): [0.5, 0.0, 0.0], ("taf", 0): [1.0, 0.5, 0.0]}
    per_clip[("taf", 1)] = [0.5, 0.5, 0.5]
    runs: dict[str, list[_FakeRun]] = {"plain": [], "taf": []}
    for (label, seed), mpc in per_clip.items():
        run_dir = tmp_path / f"{label}{seed}"
        run_dir.mkdir()
        result = {"format": "videotaf-robustness", "models": {"model": {"per_clip": {"mpc_top1": mpc}}}}
        (run_dir / "robustness-mini-c.json").write_text(json.dumps(result))
        runs[label].append(_FakeRun(run_dir))
    out = compare_robustness(runs, "mini-c", n_boot=200)
    taf = out["methods"]["taf"]
    # Seed 0: taf 50.0 vs plain 33.3; seed 1: 50.0 vs 16.7 -> +16.7 and +33.3 pp.
    assert out["control"] == "plain" and out["n_clips"] == 3
    assert taf["delta"]["per_seed"] == pytest.approx([50 / 3, 100 / 3])
    text = robustness_compare_markdown(out)
    assert "## Corruption robustness (mini-c)" in text and "| taf | 50.00 | 25.00 | +25.00 |" in text
    assert robustness_compare_markdown(None) == ""


@pytest.fixture()
def tiny_cli(monkeypatch: pytest.MonkeyPatch):
    """load_model -> the constant model; the evaluation dataset -> 2 smooth clips of 4 frames at 16 px."""
    import videotaf.cli.analysis as commands

    class Data(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int):
            clip = smooth_clip(4, 16, 16)
            return (clip if i == 0 else clip.flip(-1)), i

    monkeypatch.setattr(commands, "load_model", lambda path, map_location="cpu": (Constant(), {}))
    monkeypatch.setattr(commands, "eval_dataset", lambda cfg, split=None: Data())


def test_cli_robustness_suite_mini_c(tmp_path: Path, tiny_cli, capsys: pytest.CaptureFixture[str]) -> None:
    from videotaf.cli import main

    args = ["robustness", "--checkpoint", "a.pt", "--suite", "mini-c", "--severities", "5", "--batch-size", "2"]
    args += ["--workers", "0", "--device", "cpu", "--cache-dir", str(tmp_path / "cache")]
    assert main([*args, "--out", str(tmp_path / "rob")]) == 0
    first = capsys.readouterr()
    assert "4 stream corruptions x 1 severities: 8 encodes (cache" in first.err and "MiB" in first.err
    assert "cache 0 hits, 8 misses" in first.out and "s per 100 clips" in first.out
    res = load_robustness(tmp_path / "rob" / "robustness.json")
    assert res["suite"] == "mini-c" and res["corruptions"] == list(MINI_C_CORRUPTIONS)
    assert res["wall_s_per_100_clips"] > 0 and set(res["undecodable"]) == {
        f"{c}/5" for c in ("bit_error", "packet_loss", "h265_crf", "h264_crf")
    }
    model = res["models"]["a"]
    assert model["clean"]["top1"] == 50.0 and len(model["per_clip"]["mpc_top1"]) == 2
    assert "mPC top-1" in (tmp_path / "rob" / "robustness.md").read_text()
    assert main([*args, "--out", str(tmp_path / "rob2")]) == 0
    assert "cache 8 hits, 0 misses" in capsys.readouterr().out
    assert load_robustness(tmp_path / "rob2" / "robustness.json")["models"] == res["models"]
