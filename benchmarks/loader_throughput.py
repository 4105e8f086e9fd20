"""Loader throughput: clips/s through ``videotaf.data`` datasets + DataLoader vs raw PyAV/Pillow decoding.

For each source (synthetic WebM, real MP4, real WebM, real JPEG folder) the same clips (test sampling, the same
frame indices) are read twice: once by a plain loop that only decodes the sampled frames with PyAV (video) or
Pillow (JPEG) and once through the dataset (counting, sampling, decoding, crop/resize, float conversion) and a
``DataLoader`` (batching). The ratio dataset/raw shows the overhead of the data layer (target >= 0.9). The raw
video loop converts to RGB with one kept single-threaded ``VideoReformatter``, as the data layer does; a third timing converts
each frame with ``frame.to_ndarray(format="rgb24")``, which builds a new swscale context per frame (what the data
layer did before 2026-12-07), to show what keeping the converter is worth.

    python -m benchmarks.loader_throughput [--out JSON] [--synth DIR] [--repeats 3] [--rounds 3] [--workers 0]

Writes JSON (default benchmarks/results/loader_throughput.json) and the "loader" section of BENCHMARKS.md.

Not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader

from benchmarks._common import ROOT, header, update_section, write_json
from videotaf.data import FileList, SomethingV2
from videotaf.data.decode import detect_frame_template, draft_request
from videotaf.data.synth import synthesize

FIXTURES = ROOT / "tests" / "data" / "real"  # real camera footage, Apache-2.0 (see its NOTICE.md)


_KEPT = VideoReformatter()


def raw_video(path: str, indices: list[int], kept: bool = True) -> list[np.ndarray]:
    """The sampled frames of ``path`` in RGB, converted by one kept reformatter (``kept``) or one-off per frame."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        wanted, last, got = set(indices), max(indices), {}
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                rgb = _KEPT.reformat(frame, format="rgb24", threads=1) if kept else frame.reformat(format="rgb24")
                got[i] = rgb.to_ndarray()
            if i >= last:
                break
    return [got[i] for i in indices]


def raw_jpeg(folder: str, numbers: list[int], template: str, min_short: int | None = None) -> list[np.ndarray]:
    out = []
    for n in numbers:
        with Image.open(Path(folder) / template.format(n)) as img:
            request = draft_request(*img.size, min_short) if min_short is not None else None
            if request is not None:
                img.draft(None, request)
            out.append(np.asarray(img.convert("RGB")))
    return out


def measure(dataset, repeats: int, workers: int, batch: int, rounds: int, raw_draft: bool = False) -> dict:
    """Clips/s of raw decoding and of the dataset + DataLoader. ``raw_draft``: the raw side decodes JPEGs at the
    same reduced DCT scale as the dataset does, so the ratio isolates the data layer's own work."""
    # Work list fixed up front (not timed): sampled indices per item, frame counts cached by a warm-up pass.
    jobs = []
    for i, s in enumerate(dataset.samples):
        idx = [j for c in dataset.sample_indices(i) for j in c]
        jobs.append((s, [s.start + j for j in idx]))
    template = dataset.frame_template or detect_frame_template(dataset.samples[0].path)
    need = dataset.decode_short_side() if raw_draft else None
    for s, idx in jobs:  # warm the OS file cache for both sides
        raw_video(s.path, idx) if s.is_video else raw_jpeg(s.path, idx, template, need)
    loader_ds = ConcatDataset([dataset] * repeats)
    n_clips = len(loader_ds)

    # Alternate the two sides over several rounds and keep each side's best time: the machine is shared, and a
    # single pass mostly measures whoever else is busy.
    raw_s = ds_s = oneoff_s = float("inf")
    video = jobs[0][0].is_video
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeats):
            for s, idx in jobs:
                raw_video(s.path, idx) if s.is_video else raw_jpeg(s.path, idx, template, need)
        raw_s = min(raw_s, time.perf_counter() - t0)
        if video:
            t0 = time.perf_counter()
            for _ in range(repeats):
                for s, idx in jobs:
                    raw_video(s.path, idx, kept=False)
            oneoff_s = min(oneoff_s, time.perf_counter() - t0)
        loader = DataLoader(loader_ds, batch_size=batch, num_workers=workers)
        t0 = time.perf_counter()
        seen = 0
        for clips, _ in loader:
            seen += clips.shape[0]
        ds_s = min(ds_s, time.perf_counter() - t0)
        assert seen == n_clips
    return {
        "clips": n_clips,
        "frames_per_clip": len(jobs[0][1]),
        "raw_clips_per_s": n_clips / raw_s,
        "raw_oneoff_rgb_clips_per_s": n_clips / oneoff_s if video else None,
        "dataset_clips_per_s": n_clips / ds_s,
        "ratio": raw_s / ds_s,
    }


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "loader_throughput.json"))
    ap.add_argument("--no-md", action="store_true", help="do not rewrite BENCHMARKS.md")
    ap.add_argument("--synth", help="existing synthetic dataset root (default: generate a small one)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (raw decode is single-process)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="alternating raw/dataset rounds; best time of each kept")
    ap.add_argument("--num-frames", type=int, default=8)
    ap.add_argument("--crop", type=int, default=56)
    ap.add_argument("--scale", type=int, default=64)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    opts = dict(num_frames=args.num_frames, crop_size=args.crop, scale_size=args.scale)

    tmp = tempfile.TemporaryDirectory()
    synth_root = (
        Path(args.synth)
        if args.synth
        else synthesize(
            Path(tmp.name) / "synth", num_classes=8, train_per_class=4, val_per_class=2, num_frames=16, size=64, seed=0
        )
    )
    real = Path(tmp.name) / "real"
    real.mkdir()
    for name in ("clip_a.mp4", "clip_b.mp4", "clip_d.mp4", "clip_a.webm", "frames_a"):
        (real / name).symlink_to(FIXTURES / name)
    (real / "mp4.txt").write_text("clip_a.mp4 0\nclip_b.mp4 1\nclip_d.mp4 2\n")
    (real / "webm.txt").write_text("clip_a.webm 0\n")
    (real / "jpeg.txt").write_text("frames_a 10 0\n")
    # (name, dataset, raw side decodes JPEGs at the dataset's DCT scale, repeats): the JPEG folder three ways, so
    # that the speed a user gets (draft decoding vs a naive full-size loop) and the data layer's own overhead (same
    # decode on both sides) are both on record.
    jpeg_opts = dict(opts, jpeg_draft=False)
    cases = [
        ("synth_webm_64px", SomethingV2(synth_root, "train", **opts), False, args.repeats),
        ("real_mp4_340x256", FileList(real, "mp4.txt", **opts), False, args.repeats * 4),
        ("real_webm_340x256", FileList(real, "webm.txt", **opts), False, args.repeats * 8),
        (
            "real_jpeg_320x240 full-size decode, both sides",
            FileList(real, "jpeg.txt", **jpeg_opts),
            False,
            args.repeats * 16,
        ),
        ("real_jpeg_320x240 draft decode, both sides", FileList(real, "jpeg.txt", **opts), True, args.repeats * 16),
        (
            "real_jpeg_320x240 draft decode vs full-size raw",
            FileList(real, "jpeg.txt", **opts),
            False,
            args.repeats * 16,
        ),
    ]
    results = {}
    for name, ds, raw_draft, repeats in cases:
        r = measure(ds, repeats, args.workers, args.batch, args.rounds, raw_draft=raw_draft)
        results[name] = r
        print(f"{name:48s} raw {r['raw_clips_per_s']:8.1f} clips/s  dataset+loader {r['dataset_clips_per_s']:8.1f} "
              f"clips/s  ratio {r['ratio']:.2f}  one-off RGB {_cell(r['raw_oneoff_rgb_clips_per_s'])} "
              f"({r['clips']} clips x {r['frames_per_clip']} frames)")  # fmt: skip
    write_json(args.out, {"settings": vars(args) | {"torch_threads": 1, "av": av.__version__}, "results": results})
    if not args.no_md:
        lines = [
            header(),
            f"Settings: T={args.num_frames}, crop {args.crop}, short side {args.scale}, batch {args.batch}, "
            f"{args.workers} DataLoader workers, 1 torch thread; best of {args.rounds} alternating rounds. "
            "JPEG 'draft decode': frames at least twice the size the crop needs are decoded at a reduced DCT scale "
            "(the data layer's default, `data.jpeg_draft`); 'both sides' means the raw loop decodes the same way.",
            "",
            "| source | raw decode (clips/s) | dataset + DataLoader (clips/s) | ratio (goal >= 0.9) "
            "| raw, one-off RGB conversion per frame (clips/s) | kept / one-off |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in results.items():
            oneoff = r["raw_oneoff_rgb_clips_per_s"]
            gain = f"{r['raw_clips_per_s'] / oneoff:.2f}" if oneoff else "-"
            lines.append(
                f"| {name} | {r['raw_clips_per_s']:.1f} | {r['dataset_clips_per_s']:.1f} | {r['ratio']:.2f} "
                f"| {_cell(oneoff)} | {gain} |"
            )
        update_section("loader", "\n".join(lines))
    print(f"wrote {args.out}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
