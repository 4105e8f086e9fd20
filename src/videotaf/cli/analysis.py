"""Subcommands of the analysis layer (see ``videotaf.cli``): compare, verdict, robustness, analyze, cam, report.

Examples::

    videotaf robustness --checkpoint runs/tsm/checkpoints/best.pt --checkpoint runs/tsm_taf/checkpoints/best.pt \\
        --corruptions paper --severities 1 2 3 4 5 --out runs/tsm_taf/robustness
    videotaf analyze --checkpoint runs/tsm_taf/checkpoints/best.pt --max-clips 256 --out attention.json
    videotaf analyze --checkpoint runs/tsm_taf/checkpoints/best.pt --cam-layer backbone.layer3 --out att_l3.json
    videotaf cam --checkpoint runs/tsm/checkpoints/best.pt --compare runs/tsm_taf/checkpoints/best.pt \\
        --video clip.webm --adversarial --out cam.png
    videotaf cam --checkpoint runs/tsm/checkpoints/best.pt --video dataset:17 --out cam17.png
    videotaf report runs/tsm runs/tsm_taf --out report/

Models come from ``videotaf.engine.checkpoint.load_model``; datasets from the checkpoint's saved config (or
``--config``) via ``videotaf.data.build_dataset`` with the test transforms and one clip per video. The CAM layer
of ``analyze``, ``cam`` and ``report --cam-examples`` is ``--cam-layer``, else that config's
``adversarial.cam_layer``, else each model's own (:func:`videotaf.cam.cam_layer_of`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from videotaf.analysis.attention import analyze_attention
from videotaf.analysis.clipcache import ClipCache, estimate_bytes
from videotaf.analysis.compare import CompareSettings, parse_method, prepare_out_dir, run_compare, write_outputs
from videotaf.analysis.corruptions import CORRUPTIONS, SEVERITIES
from videotaf.analysis.figures import cam_figure, cam_rows
from videotaf.analysis.inputs import class_names, eval_dataset, load_video_clip
from videotaf.analysis.predictions import predictions_verdict, read_predictions
from videotaf.analysis.render import compare_markdown
from videotaf.analysis.report import build_report
from videotaf.analysis.robustness import SUITES, evaluate_robustness, resolve_corruptions, write_robustness
from videotaf.attack import TargetRule
from videotaf.cam import cam_layer_of, cam_method_names
from videotaf.cli.args import add_overrides, holding_out, pixel_fraction
from videotaf.config import apply_overrides, config_from_dict, load_config
from videotaf.engine.builders import load_model
from videotaf.engine.finetune import FINETUNE_DECAY_AFTER, FINETUNE_EPOCHS, LR_FROM, AttackSettings
from videotaf.errors import VideotafError
from videotaf.io import atomic_write_bytes, check_output

__all__ = ["register"]


def _scale(text: str) -> float | None:
    if text.strip().lower() == "auto":
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', got {text!r}")
    return v


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config YAML for the dataset (default: the one saved in the first checkpoint)",
    )
    p.add_argument(
        "--dataset", dest="data_root", default=None, metavar="ROOT", help="dataset root directory (overrides data.root)"
    )
    p.add_argument("--split", default=None, help="split name (default: data.val_split)")
    add_overrides(p, "data.crop_size=112")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: data.num_workers)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def _device(text: str) -> Any:
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(text)


def _load_models(paths: list[Path], names: list[str] | None, device: Any) -> tuple[dict[str, Any], list[dict]]:
    if names and len(names) != len(paths):
        raise VideotafError(f"{len(names)} --name values for {len(paths)} checkpoints")
    models: dict[str, Any] = {}
    cfgs = []
    for i, path in enumerate(paths):
        model, cfg = load_model(path, map_location="cpu")
        name = names[i] if names else _checkpoint_name(path)
        while name in models:
            name += "'"
        models[name] = model.to(device).eval()
        cfgs.append(cfg)
    return models, cfgs


def _checkpoint_name(path: Path) -> str:
    """``RUN/checkpoints/best.pt`` -> ``RUN`` (its directory name); otherwise the file stem."""
    path = Path(path)
    if path.parent.name == "checkpoints":
        return path.parent.parent.name or path.stem
    return path.stem


def _config(args: argparse.Namespace, saved: dict[str, Any]) -> Any:
    overrides = list(args.overrides)
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    if args.config is not None:
        return load_config(args.config, overrides)
    return config_from_dict(apply_overrides(saved, overrides), "<checkpoint config>")


def _cam_layer(args: argparse.Namespace, cfg: Any, models: dict[str, Any]) -> str | None:
    """The CAM layer of ``analyze``, ``cam`` and ``report``: ``--cam-layer``, else the config's
    ``adversarial.cam_layer`` (the layer TA was trained with, when the config is the checkpoint's), else None
    (each model's own). One layer for every model, so their CAMs compare; checked against each model before any
    clip is read, the error naming the flag or the config field."""
    name, field = args.cam_layer, "--cam-layer"
    if name is None:
        name, field = getattr(getattr(cfg, "adversarial", None), "cam_layer", None), "adversarial.cam_layer"
    if name is not None:
        for model in models.values():
            cam_layer_of(model, name, field=field)
    return name


def _target_rule(cfg: Any) -> TargetRule:
    """TA's target rule for ``analyze``, ``cam`` and ``report``: the config's ``adversarial.target_rule`` (the
    checkpoint's, or ``--config`` / ``--set adversarial.target_rule=random``), else Sec. 3.2's ``paper``."""
    return cast(TargetRule, getattr(getattr(cfg, "adversarial", None), "target_rule", "paper"))


def _loader(args: argparse.Namespace, cfg: Any) -> tuple[Any, list[str] | None]:
    dataset = eval_dataset(cfg, args.split)
    workers = args.workers
    if workers is None:
        workers = int(getattr(cfg.data, "num_workers", 0) if hasattr(cfg, "data") else 0)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, num_workers=workers)
    return loader, class_names(dataset)


def _limit(loader: Any, max_clips: int | None) -> Any:
    """Yield batches until ``max_clips`` clips were given (the last batch cut)."""
    if max_clips is None:
        yield from loader
        return
    seen = 0
    for clips, labels in loader:
        if seen >= max_clips:
            return
        take = min(len(labels), max_clips - seen)
        seen += take
        yield clips[:take], labels[:take]


# ----------------------------------------------------------------------------------------- robustness
def _cache_note(corruptions: list[str], severities: list[int], cfg: Any, num_clips: int, cache: Path | None) -> str:
    """One line on the stream corruptions' cost: the clips they encode, and the cache's size estimate."""
    streams = [c for c in corruptions if CORRUPTIONS[c].stream]
    crop = int(cfg.data.crop_size)
    shape = (int(cfg.data.num_frames), 3, crop, crop)
    entries = len(streams) * len(severities)
    where = f"cache {cache}: up to {estimate_bytes(num_clips, shape, entries) / 2**20:.1f} MiB" if cache else "no cache"
    return f"{len(streams)} stream corruptions x {len(severities)} severities: {num_clips * entries} encodes ({where})"


def _cmd_robustness(args: argparse.Namespace) -> int:
    check_output(args.out / "robustness.json", overwrite=args.overwrite)
    corruptions = resolve_corruptions([args.suite] if args.suite else args.corruptions)
    device = _device(args.device)
    models, cfgs = _load_models(args.checkpoint, args.name, device)
    cfg = _config(args, cfgs[0])
    loader, _ = _loader(args, cfg)
    num_clips = min(len(loader.dataset), args.max_clips or len(loader.dataset))
    if any(CORRUPTIONS[c].stream for c in corruptions):
        print(_cache_note(corruptions, list(args.severities), cfg, num_clips, args.cache_dir), file=sys.stderr)
    cache = ClipCache(args.cache_dir) if args.cache_dir else None
    bar = tqdm(total=num_clips, unit="clip", desc="robustness", disable=None, file=sys.stderr)
    start = time.perf_counter()

    def progress(i: int) -> None:
        bar.update(min(args.batch_size, num_clips - bar.n))
        if args.verbose:
            print(f"batch {i + 1}", file=sys.stderr, flush=True)

    with bar:
        result = evaluate_robustness(
            models,
            _limit(loader, args.max_clips),
            corruptions,
            args.severities,
            seed=args.seed,
            device=device,
            spatial_scale=args.spatial_scale,
            progress=progress,
            cache=cache,
        )
    wall = time.perf_counter() - start
    result.update(suite=args.suite, wall_s=round(wall, 1), wall_s_per_100_clips=round(100 * wall / num_clips, 1))
    result["checkpoints"] = {name: str(p) for name, p in zip(models, args.checkpoint)}
    js, md = write_robustness(result, args.out)
    print(md.read_text())
    hits = f"; cache {cache.hits} hits, {cache.misses} misses" if cache else ""
    print(f"{num_clips} clips in {wall:.0f} s ({100 * wall / num_clips:.0f} s per 100 clips){hits}")
    print(f"wrote {js} and {md}")
    return 0


# ----------------------------------------------------------------------------------------- analyze
def _cmd_analyze(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_output(args.out, overwrite=args.overwrite)
    device = _device(args.device)
    models, cfgs = _load_models(args.checkpoint, args.name, device)
    cfg = _config(args, cfgs[0])
    cam_layer = _cam_layer(args, cfg, models)
    loader, _ = _loader(args, cfg)
    out: dict[str, Any] = {"checkpoints": {n: str(p) for n, p in zip(models, args.checkpoint)}, "models": {}}
    for name, model in models.items():
        out["models"][name] = analyze_attention(
            model,
            _limit(loader, args.max_clips),
            eps=args.eps,
            step_size=args.step_size,
            steps=args.steps,
            num_weakest=args.num_weakest,
            cam_target=args.cam_target,
            seed=args.seed,
            device=device,
            cam_layer=cam_layer,
            target_rule=_target_rule(cfg),
        )
    text = json.dumps(out, indent=2) + "\n"
    if args.out is not None:
        atomic_write_bytes(args.out, text.encode())
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


# ----------------------------------------------------------------------------------------- cam
def _cmd_cam(args: argparse.Namespace) -> int:
    check_output(args.out, overwrite=args.overwrite)
    device = _device(args.device)
    paths = [args.checkpoint] + list(args.compare)
    models, cfgs = _load_models(paths, args.name, device)
    cfg = _config(args, cfgs[0])
    cam_layer = _cam_layer(args, cfg, models)
    label = None
    names = None
    if args.video.startswith("dataset:"):
        try:
            index = int(args.video.split(":", 1)[1])
        except ValueError:
            raise VideotafError(f"--video {args.video!r}: expected dataset:INDEX with an integer index") from None
        dataset = eval_dataset(cfg, args.split)
        if not 0 <= index < len(dataset):
            raise VideotafError(f"--video {args.video!r}: index out of range (dataset has {len(dataset)} items)")
        clip, label = dataset[index]
        label = int(label) if int(label) >= 0 else None
        names = class_names(dataset)
    else:
        data = cfg.data
        num_frames = int(getattr(cfg.model, "num_frames", 8))
        crop = args.size or int(getattr(data, "crop_size", 224))
        scale = int(round(crop * 256 / 224)) if args.size else int(getattr(data, "scale_size", 256))
        clip = load_video_clip(args.video, num_frames, crop, scale)
    if args.label is not None:
        label = args.label
    rows = cam_rows(
        models,
        clip,
        label,
        adversarial=args.adversarial,
        eps=args.eps,
        step_size=args.step_size,
        steps=args.steps,
        target="label" if (args.target == "label" and label is not None) else "pred",
        class_names=names,
        seed=args.seed,
        cam_layer=cam_layer,
        target_rule=_target_rule(cfg),
        # --cam-method, else the weighting TA was trained with (adversarial.cam_method), else Grad-CAM
        cam_method=args.cam_method or getattr(getattr(cfg, "adversarial", None), "cam_method", "gradcam"),
    )
    title = f"{args.video}" + (f" (label {names[label] if names else label})" if label is not None else "")
    fig = cam_figure(rows, args.out, title=title)
    print(f"wrote {fig.path} ({fig.size[0]}x{fig.size[1]} px)")
    return 0


# ----------------------------------------------------------------------------------------- report
def _cmd_report(args: argparse.Namespace) -> int:
    check_output(args.out / "index.html", overwrite=args.overwrite)
    long_term = None
    if args.long_term is not None:
        if not args.long_term.is_file():
            raise VideotafError(f"--long-term file not found: {args.long_term}")
        long_term = [
            line.split("#", 1)[0].strip()
            for line in args.long_term.read_text().splitlines()
            if line.split("#", 1)[0].strip()
        ]
    cam_images = list(args.cam_image)
    # Generated figures are drawn in a scratch directory: build_report copies every CAM image beside the page.
    with tempfile.TemporaryDirectory() as scratch:
        if args.cam_examples:
            cam_images += _report_cams(args, Path(scratch))
        path = build_report(
            args.runs,
            args.out,
            names=args.names,
            baseline=args.baseline,
            long_term=long_term,
            cam_images=cam_images,
            compare_files=args.compare,
            title=args.title,
        )
    print(f"wrote {path}")
    return 0


def _report_cams(args: argparse.Namespace, work: Path) -> list[Path]:
    """CAM figures of the first ``--cam-examples`` dataset items for the runs' best (else last) checkpoints."""
    ckpts = []
    for run in args.runs:
        for name in ("best.pt", "last.pt"):
            if (run / "checkpoints" / name).is_file():
                ckpts.append(run / "checkpoints" / name)
                break
    if not ckpts:
        raise VideotafError("--cam-examples needs RUN/checkpoints/best.pt or last.pt in a run directory")
    device = _device(args.device)
    models, cfgs = _load_models(ckpts, None, device)
    cfg = _config(args, cfgs[0])
    cam_layer = _cam_layer(args, cfg, models)
    dataset = eval_dataset(cfg, args.split)
    names = class_names(dataset)
    out = []
    for i in range(min(args.cam_examples, len(dataset))):
        clip, label = dataset[i]
        label = int(label) if int(label) >= 0 else None
        rows = cam_rows(
            models,
            clip,
            label,
            adversarial=args.adversarial,
            class_names=names,
            seed=args.seed,
            cam_layer=cam_layer,
            target_rule=_target_rule(cfg),
        )
        out.append(cam_figure(rows, work / f"cam_item{i:04d}.png", title=f"dataset item {i}").path)
    return out


# ----------------------------------------------------------------------------------------- registration
def _add_attack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eps", type=pixel_fraction, default=64 / 255, help="L_inf budget (default 64/255)")
    p.add_argument("--step-size", type=pixel_fraction, default=32 / 255, help="PGD step (default 32/255)")
    p.add_argument("--steps", type=int, default=1, help="PGD steps K (default 1)")


def _add_cam_layer_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cam-layer",
        default=None,
        metavar="NAME",
        help="module the CAMs (and TA) read, by dotted name, e.g. backbone.layer3 for TSM (default: the config's "
        "adversarial.cam_layer, else each model's own CAM layer)",
    )


# ----------------------------------------------------------------------------------------- compare
def _cmd_compare(args: argparse.Namespace) -> int:
    settings = CompareSettings(
        checkpoint=args.checkpoint,
        methods=[parse_method(m) for m in args.methods],
        seeds=args.seeds,
        out_dir=args.out,
        base=load_config(args.config) if args.config is not None else None,
        epochs=args.epochs,
        decay_after=args.decay_after,
        lr_from=args.lr_from,
        overrides=tuple(args.overrides),
        attack=AttackSettings(args.alpha, args.eps, args.step_size, args.steps, args.num_nonkey),
        subset_classes=args.subset_classes,
        n_boot=args.n_boot,
        robustness_suite=args.robustness_suite,
        robustness_cache=args.cache_dir,
    )
    prepare_out_dir(settings, overwrite=args.overwrite)
    result = run_compare(settings, overwrite=args.overwrite, devices=args.devices)
    print(compare_markdown(result), end="")  # what compare.md holds
    print(f"wrote {args.out / 'compare.json'}, compare.md and compare.png")
    return 0


def _cmd_verdict(args: argparse.Namespace) -> int:
    check_output(args.out / "compare.json", overwrite=args.overwrite)
    records = [r for path in args.predictions for r in read_predictions(path)]
    names = args.classes.read_text().splitlines() if args.classes is not None else None
    result = predictions_verdict(records, args.control, class_names=names, n_boot=args.n_boot)
    result["predictions"] = [str(p) for p in args.predictions]
    write_outputs(result, args.out)
    print(compare_markdown(result), end="")
    print(f"wrote {args.out / 'compare.json'}, compare.md and compare.png")
    return 0


def _register_verdict(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verdict",
        help="compare's table, CIs and verdict from per-clip predictions your own trainer wrote",
        description="Score per-clip predictions (CSV header clip_id,label,prediction,seed,method, or a JSON list of "
        "such objects; one row per clip per run) with the statistics of videotaf compare. Writes OUT/compare.json, "
        "compare.md and compare.png.",
    )
    p.add_argument("predictions", nargs="+", type=Path, metavar="FILE", help="predictions files (.csv or .json)")
    p.add_argument("--control", default=None, help="the control method (default: the first method in the files)")
    p.add_argument("--classes", type=Path, default=None, metavar="FILE", help="class names, one per line, in id order")
    p.add_argument("--n-boot", type=int, default=10000, help="bootstrap resamples (default 10000)")
    p.add_argument("--out", type=Path, required=True, help="output directory (compare.json, .md, .png)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT/compare.json")
    p.set_defaults(func=holding_out(_cmd_verdict))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``compare``, ``verdict``, ``robustness``, ``analyze``, ``cam`` and ``report``; each sets
    ``func(args) -> int``."""
    _register_compare(subparsers)
    _register_verdict(subparsers)
    _register_robustness(subparsers)
    _register_analyze(subparsers)
    _register_cam(subparsers)
    _register_report(subparsers)


def _register_compare(subparsers: argparse._SubParsersAction) -> None:
    """``compare``: paired-seed fine-tunes of several methods against the control."""
    p = subparsers.add_parser(
        "compare",
        help="does a method beat the equal-epoch control on your data? paired-seed fine-tunes with CIs",
        description="For each seed, one fine-tune per method from --checkpoint (Sec. 4.1 protocol, same data order "
        "and augmentation across methods); the first method is the control. Finished runs are reused, an "
        "interrupted one resumes; rerun with another --seeds to add seeds (or score the first N). Writes "
        "OUT/compare.json, compare.md and compare.png.",
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="the trained model every fine-tune starts from")
    p.add_argument("--config", type=Path, default=None, help="base config (default: the checkpoint's own)")
    p.add_argument(
        "--methods",
        nargs="+",
        default=["plain", "taf"],
        metavar="METHOD",
        help="plain | ce_adv | advprop | taf, or LABEL=METHOD,KEY=VALUE,... (default: plain taf; first = control)",
    )
    p.add_argument("--seeds", type=int, default=3, help="fine-tunes per method (default 3)")
    p.add_argument("--epochs", type=int, default=FINETUNE_EPOCHS)
    p.add_argument("--decay-after", type=int, default=FINETUNE_DECAY_AFTER)
    p.add_argument("--lr-from", choices=LR_FROM, default="auto", help="starting LR (see videotaf finetune --help)")
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--eps", type=pixel_fraction, default=None)
    p.add_argument("--step-size", type=pixel_fraction, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--num-nonkey", type=int, default=None)
    add_overrides(p, "optim.lr=0.001 for every run")
    p.add_argument("--subset-classes", type=Path, default=None, metavar="FILE", help="classes scored separately")
    p.add_argument("--devices", nargs="+", default=None, help="run fine-tunes in parallel, one process per device")
    p.add_argument("--n-boot", type=int, default=10000, help="bootstrap resamples (default 10000)")
    p.add_argument(
        "--robustness-suite",
        choices=list(SUITES),
        default=None,
        help="also evaluate every fine-tune on this corruption suite and compare mPC (e.g. mini-c)",
    )
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR", help="clip cache of --robustness-suite")
    p.add_argument("--out", type=Path, required=True, help="output directory (runs/, compare.json, .md, .png)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace runs made with other settings and another comparison's outputs (rerunning with only another "
        "--seeds needs no --overwrite: finished runs are reused)",
    )
    p.set_defaults(func=holding_out(_cmd_compare))


def _register_robustness(subparsers: argparse._SubParsersAction) -> None:
    """``robustness``: accuracy under corruptions (Table 3)."""
    p = subparsers.add_parser(
        "robustness",
        help="top-1/top-5 under common corruptions (Table 3), mPC and rPC, checkpoints side by side",
        description="Evaluate checkpoints on corrupted clips (ImageNet-C corruptions and temporal perturbations); "
        "writes OUT/robustness.json and OUT/robustness.md.",
    )
    p.add_argument("--checkpoint", type=Path, action="append", required=True, help="repeat to compare models")
    p.add_argument("--name", action="append", default=None, help="display name per checkpoint (repeatable)")
    p.add_argument(
        "--suite",
        choices=list(SUITES),
        default=None,
        help="a named set instead of --corruptions: paper (Table 3), imagenet-c, temporal, mini-c (Mini "
        "Kinetics-C / Mini SSv2-C of Yi et al. 2021, codec and transmission faults included)",
    )
    p.add_argument(
        "--corruptions",
        nargs="+",
        default=["paper"],
        help="names or aliases: paper (Table 3, default), imagenet-c, temporal, mini-c, all",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the clips of the stream corruptions (H.264/H.265, bit errors, packet loss) in DIR, keyed by "
        "clip, corruption, severity and seed, for the next model or run (default: no cache)",
    )
    p.add_argument("--severities", nargs="+", type=int, default=list(SEVERITIES), choices=list(SEVERITIES))
    p.add_argument(
        "--spatial-scale",
        type=_scale,
        default=1.0,
        help="factor for pixel-sized corruption parameters, or 'auto' = min(H, W) / 224 (default 1)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-clips", type=int, default=None, help="evaluate only the first N clips")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_data_args(p)
    p.set_defaults(func=holding_out(_cmd_robustness))


def _register_analyze(subparsers: argparse._SubParsersAction) -> None:
    """``analyze``: temporal attention metrics and their change under TA and CE-PGD."""
    p = subparsers.add_parser(
        "analyze",
        help="temporal attention metrics (CAM share, entropy, weakest frames) and their change under TA vs CE-PGD",
    )
    p.add_argument("--checkpoint", type=Path, action="append", required=True)
    p.add_argument("--name", action="append", default=None)
    _add_attack_args(p)
    p.add_argument("--num-weakest", type=int, default=None, help="n of the weakest-frames share (default T'/2)")
    p.add_argument("--cam-target", choices=["pred", "label", "own"], default="pred")
    _add_cam_layer_arg(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-clips", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help="JSON file (default: print)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_data_args(p)
    p.set_defaults(func=_cmd_analyze)


def _register_cam(subparsers: argparse._SubParsersAction) -> None:
    """``cam``: the Grad-CAM figure of one clip."""
    p = subparsers.add_parser(
        "cam", help="Grad-CAM figure of one clip (Figures 1, 3, 6): frames, overlays, per-frame attention curve"
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="first row (e.g. the baseline)")
    p.add_argument("--compare", type=Path, action="append", default=[], help="more checkpoints, one row each")
    p.add_argument("--name", action="append", default=None)
    p.add_argument("--video", required=True, help="a video file, a folder of JPEG frames, or dataset:INDEX")
    p.add_argument("--label", type=int, default=None, help="true label of --video (for --target label / attacks)")
    p.add_argument("--target", choices=["pred", "label"], default="pred", help="class the CAMs explain")
    p.add_argument("--adversarial", action="store_true", help="add rows for the clip after TA and after CE-PGD")
    _add_attack_args(p)
    _add_cam_layer_arg(p)
    p.add_argument(
        "--cam-method",
        choices=cam_method_names(),
        default=None,
        help="weighting of Eq. 2: gradcam (the paper) or the ablation layercam (default: the config's "
        "adversarial.cam_method, else gradcam)",
    )
    p.add_argument("--size", type=int, default=None, help="crop size for --video files (default data.crop_size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="PNG path")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_data_args(p)
    p.set_defaults(func=_cmd_cam)


def _register_report(subparsers: argparse._SubParsersAction) -> None:
    """``report``: the HTML report of run directories."""
    p = subparsers.add_parser("report", help="HTML report of run directories (accuracy, curves, Fig. 4/5, robustness)")
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", type=Path, required=True, help="output directory (index.html and PNGs)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--names", nargs="+", default=None, help="display names, one per run")
    p.add_argument("--baseline", type=int, default=0, help="index of the baseline run (default 0)")
    p.add_argument("--long-term", type=Path, default=None, help="file of long-term class names, one per line")
    p.add_argument(
        "--compare", type=Path, action="append", default=[], help="compare.json (or its directory) to include"
    )
    p.add_argument("--cam-image", type=Path, action="append", default=[], help="extra CAM PNG (repeatable)")
    p.add_argument(
        "--cam-examples",
        type=int,
        default=0,
        help="draw CAM figures of the first N dataset items from the runs' checkpoints",
    )
    p.add_argument("--adversarial", action="store_true", help="with --cam-examples: add TA / CE-PGD rows")
    _add_cam_layer_arg(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--title", default="videotaf report")
    _add_data_args(p)
    p.set_defaults(func=holding_out(_cmd_report))
