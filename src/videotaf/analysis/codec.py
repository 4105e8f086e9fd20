"""Stream primitives for the codec and transmission corruptions of Mini Kinetics-C / Mini SSv2-C (Yi et al. 2021).

A clip is encoded in memory to a raw elementary stream (Annex B H.264 or H.265) with the libx264 / libx265
encoders bundled in PyAV's FFmpeg, the stream's bytes may be damaged (:func:`flip_bytes`, :func:`drop_packets`),
and FFmpeg's decoder reads it back with its own error concealment (its default for H.264 and HEVC: guessed
motion vectors and deblocking over lost macroblocks). Nothing here knows about severities: the catalogue in
:mod:`videotaf.analysis.corruptions` picks the parameters.

Determinism: the encoders and the decoders run on one thread (FFmpeg's frame-threaded decoding of a damaged
stream need not be deterministic), the colour conversions are done here with every buffer byte written (see
:func:`rgb_to_yuv420_frame`), and every random choice comes from the numpy ``Generator`` the caller passes, so
the damage is a function of the seed. The encoders themselves are not bit-for-bit repeatable through PyAV on
this machine: for noise-like content libx264 gave 4 distinct streams in 200 encodes of one 32x32 random clip
(PSNR 22 dB between two of their decodes at CRF 37), libx265 up to 13 in 15 encodes of a 64x64 one; for smooth
content (the tests' moving square) libx264 gave one stream in 100 encodes. Every model of one evaluation sees
the same decoded clip, and the on-disk cache (:mod:`videotaf.analysis.clipcache`) makes a rerun read back
exactly the same clips; without it, stream-corruption accuracies can move slightly between runs.

Frame fill: a damaged stream can decode to fewer frames than were encoded (a lost frame boundary merges two
frames, a lost parameter set loses everything up to the next one). The missing frames at the end show the last
decoded frame (what a player shows while it waits); a stream of which no frame decodes gives ``None``, which
the robustness evaluation counts as a wrong prediction.
"""

from __future__ import annotations

from fractions import Fraction
from typing import cast

import av
import numpy as np
import torch
from numpy.typing import NDArray

__all__ = [
    "CODECS",
    "STREAM_FPS",
    "TS_PACKET_BYTES",
    "PAD_TO",
    "clip_to_frames",
    "rgb_to_yuv420_frame",
    "yuv420_frame_to_rgb",
    "frames_to_clip",
    "encode_frames",
    "decode_stream",
    "flip_bytes",
    "drop_packets",
]

# encoder name -> (decoder name, encoder options besides the CRF). x265 logs to stderr unless told not to;
# pools/frame-threads 1 pin its thread setup (see the module docstring).
CODECS: dict[str, tuple[str, dict[str, str]]] = {
    "libx264": ("h264", {"threads": "1"}),
    "libx265": ("hevc", {"x265-params": "log-level=none:pools=1:frame-threads=1"}),
}
# The frame rate written into the stream. Something-Something v2 videos are 12 fps; with CRF rate control it
# changes only the timing fields, not the quantisation.
STREAM_FPS = 12
# One MPEG transport-stream packet: the unit lost when a TS stream travels over UDP (7 of them per datagram).
TS_PACKET_BYTES = 188
# Frame sides are padded to whole 16x16 macroblocks (see :func:`clip_to_frames`).
PAD_TO = 16


def clip_to_frames(clip: torch.Tensor) -> NDArray[np.uint8]:
    """``(T, 3, H, W)`` float in [0, 1] -> ``(T, H', W', 3)`` uint8, padded to sides that are multiples of
    :data:`PAD_TO` by repeating the last row / column.

    yuv420p needs even sides; an odd chroma width (a width of 22, say) made FFmpeg's colour conversion leave
    unset padding that x264 then read: the same clip encoded to different streams on some calls. Whole
    macroblocks avoid both.
    """
    frames = (clip.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    _, h, w, _ = frames.shape
    pad = ((0, 0), (0, -h % PAD_TO), (0, -w % PAD_TO), (0, 0))
    return np.ascontiguousarray(np.pad(frames, pad, mode="edge"))


def frames_to_clip(frames: NDArray[np.uint8], height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """``(T, H', W', 3)`` uint8 -> ``(T, 3, height, width)`` in [0, 1] with ``like``'s dtype and device (the even
    padding of :func:`clip_to_frames` cropped off)."""
    out = torch.from_numpy(np.ascontiguousarray(frames[:, :height, :width])).permute(0, 3, 1, 2)
    return out.to(device=like.device, dtype=like.dtype) / 255


# BT.601 limited range ("TV" levels), the matrix FFmpeg assumes for untagged SD video.
_RGB_TO_YCBCR = (
    np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=np.float64)
    / 255.0
)
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


def rgb_to_yuv420_frame(rgb: NDArray[np.uint8]) -> av.VideoFrame:
    """``(H, W, 3)`` uint8 RGB (even sides) -> a yuv420p ``VideoFrame``: BT.601 limited range, chroma the mean
    of each 2x2 block.

    The conversion is done here, not by FFmpeg's scaler, and every byte of the frame's buffers (line padding
    included) is written: frames converted by PyAV carried unset padding bytes that made libx264's output vary
    from call to call on a loaded machine.
    """
    ycc = rgb.astype(np.float64) @ _RGB_TO_YCBCR.T + _YCBCR_OFFSET
    h, w = rgb.shape[:2]
    chroma = ycc[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    planes = (ycc[..., 0], chroma[..., 0], chroma[..., 1])
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, values in zip(frame.planes, planes):
        buf = np.zeros((plane.height, plane.line_size), dtype=np.uint8)
        buf[:, : plane.width] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        plane.update(buf.tobytes())
    return frame


def yuv420_frame_to_rgb(frame: av.VideoFrame) -> NDArray[np.uint8] | None:
    """A decoded yuv420p frame -> ``(H, W, 3)`` uint8 RGB (inverse of :func:`rgb_to_yuv420_frame`, chroma
    repeated over its 2x2 block); ``None`` for another pixel format (a damaged stream can claim one)."""
    if frame.format.name != "yuv420p":
        return None
    h, w = frame.height, frame.width
    y, u, v = (
        np.frombuffer(bytes(p), dtype=np.uint8).reshape(p.height, p.line_size)[:, : p.width].astype(np.float64)
        for p in frame.planes
    )
    chroma = np.stack([u, v], axis=-1).repeat(2, axis=0).repeat(2, axis=1)[:h, :w]
    ycc = np.concatenate([y[..., None], chroma], axis=-1) - _YCBCR_OFFSET
    rgb = ycc @ np.linalg.inv(_RGB_TO_YCBCR).T
    return cast(NDArray[np.uint8], np.clip(np.rint(rgb), 0, 255).astype(np.uint8))


def encode_frames(frames: NDArray[np.uint8], encoder: str, crf: int) -> bytes:
    """Encode ``(T, H, W, 3)`` uint8 RGB frames (even sides) with ``encoder`` (a key of :data:`CODECS`) at
    constant rate factor ``crf``, yuv420p, :data:`STREAM_FPS` fps; returns the Annex B elementary stream."""
    _, options = CODECS[encoder]
    ctx = cast(av.VideoCodecContext, av.CodecContext.create(encoder, "w"))
    ctx.width, ctx.height = int(frames.shape[2]), int(frames.shape[1])
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, STREAM_FPS)
    ctx.framerate = Fraction(STREAM_FPS, 1)
    ctx.options = {"crf": str(int(crf)), **options}
    chunks: list[bytes] = []
    for i, frame in enumerate(frames):
        video_frame = rgb_to_yuv420_frame(frame)
        video_frame.pts = i
        chunks += [bytes(p) for p in ctx.encode(video_frame)]
    chunks += [bytes(p) for p in ctx.encode(None)]
    return b"".join(chunks)


def _decode_all(data: bytes, decoder: str) -> list[NDArray[np.uint8]]:
    """Every frame FFmpeg's ``decoder`` gets out of the elementary stream ``data``; packets it rejects are
    skipped, as a player does."""
    ctx = cast(av.VideoCodecContext, av.CodecContext.create(decoder, "r"))
    ctx.thread_count = 1
    frames: list[NDArray[np.uint8]] = []
    try:
        packets = list(ctx.parse(data)) + list(ctx.parse(None))
    except av.FFmpegError:
        return frames
    for packet in [*packets, None]:
        try:
            frames += [rgb for rgb in map(yuv420_frame_to_rgb, ctx.decode(packet)) if rgb is not None]
        except av.FFmpegError:
            continue
    return frames


def decode_stream(data: bytes, encoder: str, num_frames: int, height: int, width: int) -> NDArray[np.uint8] | None:
    """Decode the stream ``data`` made by ``encoder`` to ``(num_frames, height, width, 3)`` uint8, or ``None``
    when no frame of that size decodes (the clip is lost).

    Frames of another size (a damaged parameter set can change it) count as lost; missing frames at the end
    repeat the last decoded one, extra ones are dropped (see the module docstring).
    """
    decoder, _ = CODECS[encoder]
    frames = [f for f in _decode_all(data, decoder) if f.shape[:2] == (height, width)]
    if not frames:
        return None
    frames = frames[:num_frames] + [frames[-1]] * max(0, num_frames - len(frames))
    return np.stack(frames)


def flip_bytes(data: bytes, probability: float, rng: np.random.Generator) -> bytes:
    """Replace each byte of ``data`` with probability ``probability`` by a uniformly random byte (FFmpeg's
    ``noise`` bitstream filter with amount ``1 / probability`` does the same with its own generator)."""
    buf = np.frombuffer(data, dtype=np.uint8).copy()
    hit = rng.random(buf.size) < probability
    buf[hit] = rng.integers(0, 256, int(hit.sum()), dtype=np.uint8)
    return buf.tobytes()


def drop_packets(data: bytes, loss: float, rng: np.random.Generator, packet_bytes: int = TS_PACKET_BYTES) -> bytes:
    """Cut ``data`` into ``packet_bytes``-sized transport packets and drop each with probability ``loss``
    (independent losses); the survivors are joined in order, as a receiver hands them to the decoder."""
    n = -(-len(data) // packet_bytes)
    keep = rng.random(n) >= loss
    return b"".join(data[i * packet_bytes : (i + 1) * packet_bytes] for i in range(n) if keep[i])
