"""End-to-end training throughput: clips/s of plain versus TAF fine-tuning through the whole engine.

Unlike ``step_cost.py`` (one step, data in memory), this runs ``videotaf.engine.train.fit`` on real WebM files
of the synthetic dataset: decoding in DataLoader workers, transforms, the step, the optimizer, logging and the
end-of-epoch evaluation, the way ``videotaf finetune`` runs. The figure is the engine's own ``clips_per_s`` of
the last epoch (the first epochs warm up caches and, on a GPU, cuDNN's autotuner), best over ``--rounds`` rounds
that alternate the methods.

    python -m benchmarks.train_throughput                  # CPU: small TSM, 64 px videos, 56 px crops
    python -m benchmarks.train_throughput --device cuda --amp --model tsm_r50 --size 256 --crop 224 \\
        --batch 16 --workers 8 --train-per-class 32       # the GPU question of the benchmark issue

Writes JSON (default benchmarks/results/train_throughput[_cuda].json) and the "train_throughput" section of
BENCHMARKS.md (``train_throughput_gpu`` on CUDA).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from benchmarks._common import ROOT, header, update_section, write_json
from videotaf.config import apply_overrides, config_from_dict
from videotaf.data.synth import synthesize
from videotaf.engine.logs import read_metrics

MODELS = {"tsm_small": {"depth": 18, "width": 0.25}, "tsm_r50": {"depth": 50}}


def run_config(args: argparse.Namespace, data_root: Path, out_dir: Path, method: str) -> dict:
    raw = {
        "model": {"name": "tsm", "num_classes": args.classes, "num_frames": args.frames, "options": MODELS[args.model]},
        "data": {
            "kind": "somethingv2",
            "root": str(data_root),
            "num_frames": args.frames,
            "crop_size": args.crop,
            "scale_size": args.size,
            "num_workers": args.workers,
            "pin_memory": args.device == "cuda",
            "seed": 0,
        },
        "optim": {"lr": 0.001, "epochs": args.epochs, "schedule": "step", "milestones": [], "batch_size": args.batch},
        "adversarial": {"method": method},
        "runtime": {
            "device": args.device,
            "amp": args.amp,
            "output_dir": str(out_dir),
            "progress": "none",
            "log_every": 10**6,
            "seed": 0,
        },
    }
    return config_from_dict(apply_overrides(raw, []), f"train_throughput {method}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="the engine's CUDA mixed precision (float16 + GradScaler)")
    p.add_argument("--model", choices=sorted(MODELS), default="tsm_small")
    p.add_argument("--methods", nargs="+", default=["plain", "taf"])
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--train-per-class", type=int, default=16)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=64, help="synthetic video side and test short side")
    p.add_argument("--crop", type=int, default=56)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--epochs", type=int, default=2, help="the last one is measured")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds over the methods; best kept")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", default=None)
    p.add_argument("--no-md", action="store_true", help="do not rewrite BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"train_throughput{'_cuda' if cuda else ''}.json")

    with tempfile.TemporaryDirectory() as tmp:
        data = synthesize(
            Path(tmp) / "synth",
            num_classes=args.classes,
            train_per_class=args.train_per_class,
            val_per_class=1,
            num_frames=2 * args.frames,
            size=args.size,
            seed=0,
        )
        from videotaf.engine.train import fit

        best: dict[str, float] = {}
        for r in range(args.rounds):
            for method in args.methods:
                run_dir = Path(tmp) / f"{method}_{r}"
                fit(run_config(args, data, run_dir, method))
                last = read_metrics(run_dir)[-1]
                best[method] = max(best.get(method, 0.0), float(last["clips_per_s"]))
                print(f"round {r + 1} {method:8s} {last['clips_per_s']:.2f} clips/s", flush=True)

    base = best.get("plain")
    rows = {m: {"clips_per_s": v, "x_plain_time": base / v if base else None} for m, v in best.items()}
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "no_md")}
    write_json(out, {"settings": settings, "results": rows})
    lines = [
        header(),
        f"TSM `{args.model}`, {args.frames} frames, {args.size} px WebM videos, {args.crop} px crops, batch "
        f"{args.batch}, {args.workers} DataLoader worker(s), {'float16 AMP' if args.amp else 'float32'}; "
        f"{args.classes * args.train_per_class} training clips; last of {args.epochs} epochs, best of {args.rounds} "
        "alternating rounds. Time per clip relative to plain in the last column.",
        "",
        "| method | clips/s (train, end to end) | time per clip x plain |",
        "|---|---|---|",
    ]
    for m, r in rows.items():
        ratio = f"{r['x_plain_time']:.2f}" if r["x_plain_time"] else "-"
        lines.append(f"| {m} | {r['clips_per_s']:.2f} | {ratio} |")
    print("\n".join(lines[2:]))
    if not args.no_md:
        update_section("train_throughput_gpu" if cuda else "train_throughput", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
