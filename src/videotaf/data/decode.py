"""Frame reading: PyAV for video files, Pillow for extracted-JPEG folders.

Only the frames that were sampled are converted (video) or opened (JPEG); video decoding stops at the highest
sampled index. Frame indices in this module are 0-based positions in the decoded stream (video) or 0-based
offsets from the first frame file (folders).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from videotaf.data.errors import BadSampleError

__all__ = [
    "CorruptVideoError",
    "ShortVideoError",
    "decode_every_frame",
    "decode_video_frames",
    "video_frame_count",
    "folder_frame_count",
    "folder_frame_numbers",
    "verify_jpeg_frame",
    "detect_frame_template",
    "load_jpeg_frames",
    "draft_request",
    "clear_frame_count_cache",
]

# (path, size, mtime_ns) -> frame count. Per process: every DataLoader worker fills its own copy, which is cheap
# because counting only demuxes (no decoding).
_COUNT_CACHE: dict[tuple[str, int, int], int] = {}
_FOLDER_CACHE: dict[str, int] = {}
_LOCK = threading.Lock()
# One RGB converter per thread and process, kept across frames and videos. ``VideoFrame.to_ndarray(format="rgb24")``
# sets up a fresh swscale context for every frame, which costs about as much as decoding the frame (measured per
# frame, fresh vs kept: 1.5 vs 0.15 ms on 64 px VP9, 4.0 vs 0.9 ms on 340x256 VP9, with 0.7 and 2.8 ms to decode); a
# kept reformatter re-creates its context only when the frame size or pixel format changes, same pixels out.
# Single-threaded (``threads=1``): swscale's automatic slice threads do not survive ``fork``, so a context made in
# the main process and used in a forked DataLoader worker waits for them forever; one thread is also the faster
# choice for frames this small (0.09 against 0.74 ms per 32 px frame), and the workers are the parallelism.
_RGB = threading.local()


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    kept = getattr(_RGB, "kept", None)
    if kept is None or kept[0] != os.getpid():  # a forked worker makes its own
        kept = _RGB.kept = (os.getpid(), VideoReformatter())
    return kept[1].reformat(frame, format="rgb24", threads=1).to_ndarray()


class ShortVideoError(BadSampleError):
    """The decoder delivered fewer frames than the sampled indices need (``decoded`` frames in total)."""

    def __init__(self, message: str, decoded: int) -> None:
        super().__init__(message)
        self.decoded = decoded


class CorruptVideoError(BadSampleError):
    """The decoder failed part-way through a video (after ``decoded`` frames)."""

    def __init__(self, message: str, decoded: int) -> None:
        super().__init__(message)
        self.decoded = decoded


def clear_frame_count_cache() -> None:
    """Forget every cached frame count (video files and frame folders)."""
    with _LOCK:
        _COUNT_CACHE.clear()
        _FOLDER_CACHE.clear()


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise BadSampleError(f"{path}: video file not found")
    if path.stat().st_size == 0:
        raise BadSampleError(f"{path}: video file is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise BadSampleError(f"{path}: cannot open video ({err})") from err
    if not container.streams.video:
        container.close()
        raise BadSampleError(f"{path}: file has no video stream")
    return container


def _cache_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def video_frame_count(path: str | os.PathLike, *, refresh: bool = False) -> int:
    """Number of frames of the first video stream of ``path``, cached per (file, size, mtime).

    Uses the container header when it states a count. WebM/Matroska headers usually say 0 (Something-Something
    V2): then the video packets are counted by demuxing once (one packet per shown frame; VP9 hidden frames
    travel inside superframes), which is exact and far cheaper than decoding.
    """
    path = Path(path)
    if not path.is_file():
        raise BadSampleError(f"{path}: video file not found")
    key = _cache_key(path)
    if not refresh:
        with _LOCK:
            if key in _COUNT_CACHE:
                return _COUNT_CACHE[key]
    container = _open(path)
    try:
        stream = container.streams.video[0]
        count = int(stream.frames or 0)
        if count <= 0:
            try:
                count = sum(1 for packet in container.demux(stream) if packet.size)
            except av.error.FFmpegError as err:
                raise BadSampleError(f"{path}: corrupt video while counting frames ({err})") from err
            expected = _frames_from_duration(container, stream)
            # A cut-off download keeps the header's duration but loses packets: a clear shortfall is an error,
            # a frame or two of rounding is not.
            if expected and count < expected - max(2, 0.1 * expected):
                raise BadSampleError(
                    f"{path}: truncated video: header duration implies ~{expected} frames, file holds {count}"
                )
    finally:
        container.close()
    if count <= 0:
        raise BadSampleError(f"{path}: video stream has no frames (empty or truncated file)")
    set_frame_count(path, count)
    return count


def _frames_from_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    rate = stream.average_rate or stream.guessed_rate
    if not rate:
        return 0
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000
    else:
        return 0
    return int(round(seconds * float(rate)))


def set_frame_count(path: str | os.PathLike, count: int) -> None:
    """Record the true frame count of ``path`` (e.g. after the decoder delivered fewer frames than the header)."""
    path = Path(path)
    with _LOCK:
        _COUNT_CACHE[_cache_key(path)] = int(count)


def decode_video_frames(path: str | os.PathLike, indices: Sequence[int]) -> np.ndarray:
    """Decode the frames at 0-based stream positions ``indices`` (any order, repeats allowed).

    Returns uint8 ``(len(indices), H, W, 3)`` RGB. Decoding runs from the start and stops right after the highest
    requested index; frames not requested are decoded (the codec needs them) but never converted to RGB.
    Raises ``BadSampleError`` naming the file for missing/empty/corrupt files and ``ShortVideoError`` when the
    stream ends before the highest index.
    """
    path = Path(path)
    if len(indices) == 0:
        raise ValueError("decode_video_frames: indices is empty")
    wanted = set(int(i) for i in indices)
    if min(wanted) < 0:
        raise ValueError(f"decode_video_frames: negative frame index in {sorted(wanted)[:4]}")
    last = max(wanted)
    got: dict[int, np.ndarray] = {}
    container = _open(path)
    position = -1
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for position, frame in enumerate(container.decode(stream)):
                if position in wanted:
                    got[position] = _to_rgb(frame)
                if position >= last:
                    break
        except av.error.FFmpegError as err:
            raise BadSampleError(
                f"{path}: corrupt or truncated video, decoding failed after frame {position + 1} ({err})"
            ) from err
    finally:
        container.close()
    decoded = position + 1
    if decoded <= last:
        raise ShortVideoError(
            f"{path}: stream ended after {decoded} frames but frame index {last} was requested", decoded
        )
    return np.stack([got[int(i)] for i in indices])


def decode_every_frame(path: str | os.PathLike) -> int:
    """Decode every packet of the first video stream of ``path`` (no RGB conversion); returns the frames decoded.

    This is what a full health check needs: corruption anywhere in the stream surfaces, not only before the
    sampled frames. Raises ``BadSampleError`` naming the file when it is missing, empty or cannot be opened,
    and ``CorruptVideoError`` (with ``decoded``) when the decoder fails part-way or flags frames it could only
    decode by concealing errors. (Garbage that still parses as a valid bitstream cannot be told from a picture.)
    """
    path = Path(path)
    container = _open(path)
    decoded = 0
    concealed: list[int] = []
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if getattr(frame, "is_corrupt", False):
                    concealed.append(decoded)
                decoded += 1
        except av.error.FFmpegError as err:
            raise CorruptVideoError(
                f"{path}: corrupt or truncated video, decoding failed after frame {decoded} ({err})", decoded
            ) from err
    finally:
        container.close()
    if concealed:
        raise CorruptVideoError(
            f"{path}: corrupt video, {len(concealed)} of {decoded} frames decoded with errors concealed "
            f"(first: frame index {concealed[0]})",
            decoded,
        )
    return decoded


_NUMBERED = re.compile(r"^(.*?)(\d+)(\.jpe?g)$", re.IGNORECASE)


def detect_frame_template(folder: str | os.PathLike) -> str | None:
    """Guess the file-name template (``"img_{:05d}.jpg"``, ``"{:05d}.jpg"``, ...) from one frame in ``folder``."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    for name in names:
        m = _NUMBERED.match(name)
        if m:
            prefix, digits, ext = m.groups()
            return f"{prefix.replace('{', '{{').replace('}', '}}')}{{:0{len(digits)}d}}{ext}"
    return None


def folder_frame_count(folder: str | os.PathLike, template: str) -> int:
    """Number of frame files in ``folder`` that match ``template`` (cached per folder)."""
    folder = str(folder)
    with _LOCK:
        if folder in _FOLDER_CACHE:
            return _FOLDER_CACHE[folder]
    if not os.path.isdir(folder):
        raise BadSampleError(f"{folder}: frames folder not found")
    sample = template.format(0)
    ext = os.path.splitext(sample)[1].lower()
    prefix = template.split("{", 1)[0]
    count = sum(
        1 for n in os.listdir(folder) if n.lower().endswith(ext) and n.startswith(prefix) and n[len(prefix)].isdigit()
    )
    if count == 0:
        raise BadSampleError(f"{folder}: frames folder has no '{template}' images")
    with _LOCK:
        _FOLDER_CACHE[folder] = count
    return count


def folder_frame_numbers(folder: str | os.PathLike, template: str) -> list[int]:
    """Sorted file numbers of the frames in ``folder`` whose names fit ``template`` (``img_{:05d}.jpg`` -> the
    numbers of ``img_00001.jpg``, ...). Not cached: for checks that must see the folder as it is now."""
    folder = str(folder)
    if not os.path.isdir(folder):
        raise BadSampleError(f"{folder}: frames folder not found")
    prefix = template.split("{", 1)[0].replace("{{", "{").replace("}}", "}")
    suffix = template.rsplit("}", 1)[-1]
    numbers = []
    for name in os.listdir(folder):
        if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix):
            middle = name[len(prefix) : len(name) - len(suffix)]
            if middle.isdigit() and template.format(int(middle)) == name:
                numbers.append(int(middle))
    return sorted(numbers)


def verify_jpeg_frame(file: str | os.PathLike) -> tuple[int, int]:
    """Decode one frame file completely (every scan, full size); returns its ``(width, height)``.

    Raises ``BadSampleError`` naming the file when it is missing, not an image, truncated or corrupt.
    """
    file = Path(file)
    try:
        with Image.open(file) as img:
            img.load()
            return img.size
    except FileNotFoundError as err:
        raise BadSampleError(f"{file}: frame file not found") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise BadSampleError(f"{file}: unreadable image ({err})") from err


def load_jpeg_frames(
    folder: str | os.PathLike, numbers: Sequence[int], template: str, *, min_short_side: int | None = None
) -> np.ndarray:
    """Open only the frame files ``template.format(n)`` for n in ``numbers`` (file numbers, repeats allowed).

    ``min_short_side``: the smallest short side the caller needs. A JPEG at least twice that size is decoded at a
    reduced DCT scale (1/2, 1/4 or 1/8, the largest that keeps the short side >= ``min_short_side``; Pillow's
    draft mode): libjpeg then skips most of the inverse DCT, which makes decoding several times faster, and the
    caller's antialiased resize would have discarded that detail anyway. None decodes at full size.

    Returns uint8 ``(len(numbers), H, W, 3)`` RGB. Raises ``BadSampleError`` naming the missing folder/file,
    an unreadable image, or frames of different sizes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BadSampleError(f"{folder}: frames folder not found")
    cache: dict[int, np.ndarray] = {}
    out = []
    for n in numbers:
        n = int(n)
        if n not in cache:
            file = folder / template.format(n)
            try:
                with Image.open(file) as img:
                    if min_short_side is not None:
                        _draft(img, min_short_side)
                    # asarray of an RGB image reads the pixels directly; convert() would copy them once more.
                    cache[n] = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
            except FileNotFoundError as err:
                raise BadSampleError(f"{file}: frame file not found") from err
            except OSError as err:
                raise BadSampleError(f"{file}: unreadable image ({err})") from err
        out.append(cache[n])
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise BadSampleError(f"{folder}: frames have different sizes {sorted(shapes)}")
    return np.stack(out)


def draft_request(width: int, height: int, min_short_side: int) -> tuple[int, int] | None:
    """The size to pass to Pillow's ``Image.draft`` so that a ``width x height`` JPEG decodes at the smallest DCT
    scale whose short side is still >= ``min_short_side``; None when no reduced scale qualifies (short side below
    twice the need)."""
    short = min(width, height)
    if short < 2 * min_short_side:
        return None
    # draft() keeps every side >= the requested size, so asking for the frame scaled to the needed short side
    # (rounded up) picks exactly the scale we want.
    return -(-width * min_short_side // short), -(-height * min_short_side // short)


def _draft(img: Image.Image, min_short_side: int) -> None:
    request = draft_request(*img.size, min_short_side) if img.format == "JPEG" else None
    if request is not None:
        img.draft(None, request)
