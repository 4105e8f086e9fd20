"""A small synthetic Something-Something V2 look-alike whose classes need long-range temporal reasoning.

Like the paper's Figure 1, every clip has a salient, fast first motion (the object is lifted, pushed right,
pushed left or pushed down) followed by a quieter second phase (it is held still, slides/drops back, or keeps
moving slowly). Classes sharing a first motion differ only in the second phase, so a model that attends only to
the salient key frames cannot separate them; those classes are listed in ``long_term_classes.txt``. A class
whose first motion is unique among the generated classes is decided by its key frames ("short-term").

Nuisances: object shape/colour/size, textured random backgrounds, 0-2 slowly drifting distractor objects, camera
jitter, phase timing and amplitude jitter, brightness/contrast jitter and pixel noise, so that a small model
trained on a small split overfits as on Something-Something. Output is the official V2 layout (VP9 WebM at
12 fps plus the three JSON files), read unchanged by :class:`videotaf.data.SomethingV2`. Every clip is rendered
from its own seeded generator and encoded bit-exactly, so a seed gives byte-identical files.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

__all__ = ["CATALOG", "SynthClass", "synthesize", "synth_clips", "render_clip", "write_video", "MAX_CLASSES"]

FPS = 12
VIDEOS_DIR = "20bn-something-something-v2"

_DIRS = {"up": (0.0, -1.0), "right": (1.0, 0.0), "left": (-1.0, 0.0), "down": (0.0, 1.0)}


@dataclass(frozen=True)
class SynthClass:
    """One generated class: its SSv2-style template, first (salient) motion and second (deciding) phase."""

    template: str
    first: str  # "up" | "right" | "left" | "down"
    ending: str  # "hold" | "back" | "continue"

    @property
    def name(self) -> str:
        return self.template.replace("[", "").replace("]", "")


# Order = which classes a given ``num_classes`` takes: groups sharing a first motion fill up first, then
# single-member ("short-term") groups, then the rest.
CATALOG: tuple[SynthClass, ...] = (
    SynthClass("Lifting [something] up and holding it", "up", "hold"),
    SynthClass("Lifting [something] up, then letting it drop back", "up", "back"),
    SynthClass("Pushing [something] to the right until it stops", "right", "hold"),
    SynthClass("Pushing [something] to the right, then it slides back", "right", "back"),
    SynthClass("Lifting [something] up, then raising it further slowly", "up", "continue"),
    SynthClass("Pushing [something] to the right so it keeps sliding", "right", "continue"),
    SynthClass("Pressing [something] down", "down", "hold"),
    SynthClass("Pushing [something] to the left until it stops", "left", "hold"),
    SynthClass("Pushing [something] to the left, then it slides back", "left", "back"),
    SynthClass("Pushing [something] to the left so it keeps sliding", "left", "continue"),
    SynthClass("Pressing [something] down, then letting it spring back", "down", "back"),
    SynthClass("Pressing [something] down and pushing it further slowly", "down", "continue"),
)
MAX_CLASSES = len(CATALOG)

_SHAPES = ("disk", "square", "triangle", "diamond", "bar")
_COLOURS = {
    "red": (0.85, 0.15, 0.12),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.15, 0.3, 0.9),
    "yellow": (0.92, 0.85, 0.15),
    "purple": (0.6, 0.2, 0.75),
    "orange": (0.95, 0.55, 0.1),
    "cyan": (0.1, 0.8, 0.85),
    "white": (0.95, 0.95, 0.95),
}


def _sdf(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Approximate signed distance (pixels) to a shape of radius ``r`` centred at the origin."""
    if shape == "disk":
        return np.sqrt(dx * dx + dy * dy) - r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) - 0.85 * r
    if shape == "diamond":
        return (np.abs(dx) + np.abs(dy) - 1.2 * r) * 0.7071
    if shape == "triangle":
        return np.maximum(np.abs(dx) * 0.866 + dy * 0.5, -dy) - 0.55 * r
    return np.maximum(np.abs(dx) - 1.3 * r, np.abs(dy) - 0.55 * r)  # bar


def _background(rng: np.random.Generator, h: int, w: int, nuisance: float = 1.0) -> np.ndarray:
    """Textured background: low-frequency gratings and blobs over a random base colour, plus fine grain."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0.25, 0.75, 3).astype(np.float32)
    img = np.broadcast_to(base, (h, w, 3)).copy()
    for _ in range(int(rng.integers(2, 5))):
        ang = rng.uniform(0, math.pi)
        freq = rng.uniform(0.02, 0.25)
        phase = rng.uniform(0, 2 * math.pi)
        amp = rng.uniform(0.02, 0.08) * nuisance
        tint = rng.uniform(-1, 1, 3).astype(np.float32)
        wave = np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * freq + phase)
        img += amp * wave[..., None] * tint
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rad = rng.uniform(0.1, 0.35) * min(h, w)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rad * rad))
        img += rng.uniform(-0.2, 0.2, 3).astype(np.float32) * nuisance * blob[..., None]
    img += nuisance * rng.normal(0, rng.uniform(0.01, 0.05), (h, w, 1)).astype(np.float32)
    return img


def _trajectory(rng: np.random.Generator, cls: SynthClass, t: int, size: int) -> tuple[np.ndarray, dict]:
    """Displacement (T, 2) of the object from its start, in pixels, and the phase frame ranges."""
    d = np.array(_DIRS[cls.first], dtype=np.float64)
    amp = rng.uniform(0.28, 0.4) * size
    s1 = int(rng.integers(1, max(2, round(0.25 * t)) + 1))
    d1 = int(rng.integers(max(2, round(0.12 * t)), max(3, round(0.2 * t)) + 1))
    pause = int(rng.integers(0, max(1, round(0.1 * t)) + 1))
    s2 = min(t - 2, s1 + d1 + pause)
    d2 = max(2, int(round((t - s2) * rng.uniform(0.7, 1.0))))
    pos = np.zeros((t, 2))
    for k in range(t):
        if k <= s1:
            p = 0.0
        elif k < s1 + d1:
            u = (k - s1) / d1
            p = 0.5 - 0.5 * math.cos(math.pi * u)  # fast, eased motion
        else:
            p = 1.0
        pos[k] = p * amp * d
    if cls.ending == "back":
        frac = rng.uniform(0.55, 0.95)
        for k in range(s2, t):
            pos[k] -= min(1.0, (k - s2) / d2) * frac * amp * d
    elif cls.ending == "continue":
        frac = rng.uniform(0.3, 0.5)
        for k in range(s2, t):
            pos[k] += min(1.0, (k - s2) / d2) * frac * amp * d
    # "hold" keeps the end point; everyone gets a little hand tremor.
    pos += rng.normal(0, 0.35, pos.shape)
    return pos, {"phase1": [s1, s1 + d1], "phase2": [s2, min(t, s2 + d2)]}


def render_clip(
    rng: np.random.Generator, cls: SynthClass, num_frames: int, size: int, nuisance: float = 1.0
) -> tuple[np.ndarray, dict]:
    """Render one clip: uint8 ``(num_frames, size, size, 3)`` RGB and its metadata (phases, object).

    ``nuisance`` scales background texture, distractor count, camera shake, photometric jitter and pixel noise
    (0: plain background, still camera, no noise; the motion phases and their timing jitter are unchanged).
    """
    t, h, w = num_frames, size, size
    margin = max(2, size // 16)
    bg = _background(rng, h + 2 * margin, w + 2 * margin, nuisance)
    shape = _SHAPES[int(rng.integers(len(_SHAPES)))]
    colour_name = list(_COLOURS)[int(rng.integers(len(_COLOURS)))]
    colour = np.clip(np.array(_COLOURS[colour_name]) + rng.normal(0, 0.06, 3), 0, 1).astype(np.float32)
    radius = rng.uniform(0.1, 0.15) * size
    disp, phases = _trajectory(rng, cls, t, size)
    lo, hi = disp.min(0), disp.max(0)
    pad = radius * 1.4 + 1
    start = np.array(
        [rng.uniform(pad - lo[0], max(pad - lo[0] + 1e-3, w - pad - hi[0])),
         rng.uniform(pad - lo[1], max(pad - lo[1] + 1e-3, h - pad - hi[1]))]
    )  # fmt: skip
    centres = start + disp
    distractors = []
    for _ in range(int(round(int(rng.integers(0, 3)) * min(1.0, nuisance)))):
        distractors.append(
            (
                _SHAPES[int(rng.integers(len(_SHAPES)))],
                np.clip(rng.uniform(0, 1, 3), 0, 1).astype(np.float32),
                rng.uniform(0.04, 0.08) * size,
                np.array([rng.uniform(0, w), rng.uniform(0, h)]),
                rng.normal(0, 0.006 * size, 2),
            )
        )
    # Camera jitter: a smoothed random walk of the crop window inside the larger background.
    shake = np.cumsum(rng.normal(0, 0.6, (t, 2)), axis=0)
    shake = np.clip((shake - shake.mean(0)) * nuisance, -margin, margin)
    gain = 1 + (rng.uniform(0.8, 1.2) - 1) * nuisance
    bias = rng.uniform(-0.08, 0.08) * nuisance
    noise = rng.uniform(0.01, 0.03) * nuisance
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = np.empty((t, h, w, 3), dtype=np.uint8)
    for k in range(t):
        oy, ox = int(round(margin + shake[k, 1])), int(round(margin + shake[k, 0]))
        img = bg[oy : oy + h, ox : ox + w].copy()
        sub = (ox - margin, oy - margin)  # scene moves opposite to the camera
        for d_shape, d_col, d_r, d_pos, d_vel in distractors:
            c = d_pos + d_vel * k
            a = np.clip(0.5 - _sdf(d_shape, xx - (c[0] - sub[0]), yy - (c[1] - sub[1]), d_r), 0, 1)
            img = img * (1 - a[..., None]) + a[..., None] * d_col
        cx, cy = centres[k, 0] - sub[0], centres[k, 1] - sub[1]
        dist = _sdf(shape, xx - cx, yy - cy, radius)
        rim = np.clip(1.5 - np.abs(dist + 0.5), 0, 1) * 0.6
        img = img * (1 - rim[..., None])
        a = np.clip(0.5 - dist, 0, 1)
        shade = 1.0 - 0.25 * np.clip((yy - cy) / (radius + 1e-6), -1, 1)
        img = img * (1 - a[..., None]) + a[..., None] * (colour * shade[..., None])
        img = img * gain + bias + rng.normal(0, noise, img.shape).astype(np.float32)
        frames[k] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    meta = dict(phases, object=f"{colour_name} {shape}")
    return frames, meta


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = FPS, codec: str = "libvpx-vp9") -> Path:
    """Encode uint8 ``(T, H, W, 3)`` RGB frames (H, W even) to ``path`` (container from the suffix).

    VP9 is encoded bit-exactly (single thread, no muxer dates/UIDs), so equal frames give equal bytes.
    """
    path = Path(path)
    fmt = {".webm": "webm", ".mp4": "mp4", ".avi": "avi", ".mkv": "matroska"}.get(path.suffix.lower())
    with av.open(str(path), "w", format=fmt, options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libvpx-vp9":
            stream.options = {
                "crf": "16", "b": "0", "deadline": "realtime", "cpu-used": "8", "threads": "1", "lag-in-frames": "0",
            }  # fmt: skip
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def synth_clips(
    num_classes: int = 8,
    per_class: int = 24,
    num_frames: int = 16,
    size: int = 64,
    seed: int = 0,
    split: str = "train",
    nuisance: float = 1.0,
) -> Iterator[tuple[int, np.ndarray, dict]]:
    """The clips of one split of :func:`synthesize`, rendered in memory and in the same order, without encoding.

    Yields ``(class id, uint8 frames (num_frames, size, size, 3), metadata)``; class ids are those of the labels
    file :func:`synthesize` writes (class names of the first ``num_classes`` of :data:`CATALOG`, alphabetical).
    For in-memory datasets (tests, the examples); the WebM files of :func:`synthesize` hold the same frames up to
    VP9's loss.
    """
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
    split_no = 0 if split == "train" else 1
    chosen = list(CATALOG[:num_classes])
    classes = sorted(c.name for c in chosen)
    by_name = {c.name: c for c in chosen}
    order = [(ci, k) for k in range(per_class) for ci in range(num_classes)]
    perm = np.random.default_rng([seed, 7, split_no]).permutation(len(order))
    for j in perm:
        ci, k = order[int(j)]
        rng = np.random.default_rng([seed, split_no, ci, k])
        frames, info = render_clip(rng, by_name[classes[ci]], num_frames, size, nuisance)
        yield ci, frames, info


def synthesize(
    out_dir: str | os.PathLike,
    num_classes: int = 8,
    train_per_class: int = 24,
    val_per_class: int = 12,
    num_frames: int = 16,
    size: int = 64,
    seed: int = 0,
    nuisance: float = 1.0,
) -> Path:
    """Write the synthetic dataset in the Something-Something V2 layout under ``out_dir``; returns its path.

    Files: ``something-something-v2-{labels,train,validation}.json``, ``20bn-something-something-v2/<id>.webm``
    (``num_frames`` frames of ``size x size`` at 12 fps), ``long_term_classes.txt`` (class names decided by the
    second phase) and ``synth_meta.json`` (per-video phase frame ranges [start, end) and the generator
    settings). Classes are the first ``num_classes`` of :data:`CATALOG` (2..12), ids alphabetical like the real
    labels file; every class has exactly ``train_per_class`` / ``val_per_class`` videos. ``nuisance`` (default 1)
    scales the nuisance variation (see :func:`render_clip`); lower values make the set easier to learn.
    """
    if not 2 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in [2, {MAX_CLASSES}], got {num_classes}")
    if train_per_class < 1 or val_per_class < 1:
        raise ValueError(f"train_per_class and val_per_class must be >= 1, got {train_per_class}, {val_per_class}")
    if num_frames < 8:
        raise ValueError(f"num_frames must be >= 8 to hold two motion phases, got {num_frames}")
    if nuisance < 0:
        raise ValueError(f"nuisance must be >= 0, got {nuisance}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    out = Path(out_dir)
    videos = out / VIDEOS_DIR
    videos.mkdir(parents=True, exist_ok=True)
    chosen = list(CATALOG[:num_classes])
    classes = sorted(c.name for c in chosen)
    by_name = {c.name: c for c in chosen}
    labels = {name: str(i) for i, name in enumerate(classes)}
    firsts = [c.first for c in chosen]
    long_term = [n for n in classes if firsts.count(by_name[n].first) > 1]

    meta: dict[str, dict] = {}
    next_id = 1
    for split, per_class in (("train", train_per_class), ("validation", val_per_class)):
        entries = []
        for ci, frames, info in synth_clips(num_classes, per_class, num_frames, size, seed, split, nuisance):
            cls = by_name[classes[ci]]
            vid = str(next_id)
            next_id += 1
            write_video(videos / f"{vid}.webm", frames)
            obj = info.pop("object")
            meta[vid] = dict(info, split=split, label=classes[ci])
            entries.append(
                {
                    "id": vid,
                    "label": cls.template.replace("[something]", obj).lower(),
                    "template": cls.template,
                    "placeholders": [obj],
                }
            )
        (out / f"something-something-v2-{split}.json").write_text(json.dumps(entries, indent=1) + "\n")
    (out / "something-something-v2-labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    (out / "long_term_classes.txt").write_text("".join(n + "\n" for n in long_term))
    settings = dict(
        num_classes=num_classes,
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        num_frames=num_frames,
        size=size,
        seed=seed,
        nuisance=nuisance,
        fps=FPS,
    )
    (out / "synth_meta.json").write_text(json.dumps({"settings": settings, "videos": meta}, indent=1) + "\n")
    return out
