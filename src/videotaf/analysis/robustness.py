"""Corruption robustness of one or more models side by side: Section 4.5 / Table 3 of the paper.

The data are read once: every batch is corrupted with every (corruption, severity) and each corrupted batch is
scored by every model, so all models see exactly the same corrupted clips. The random pattern of a batch is
seeded from ``(seed, corruption, severity, batch index)``, so the result does not depend on which other
corruptions are evaluated, nor on the device.

Metrics (percent): top-1 / top-5 per corruption and severity, their mean over severities, ``mPC`` (mean over
corruptions x severities, Hendrycks & Dietterich 2019; Yi et al. 2021) and ``rPC = mPC / clean`` (a ratio).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from videotaf.analysis.clipcache import MISS, ClipCache, Miss, clip_key
from videotaf.analysis.corruptions import (
    CORRUPTIONS,
    IMAGENET_C_CORRUPTIONS,
    MINI_C_CORRUPTIONS,
    PAPER_CORRUPTIONS,
    SEVERITIES,
    TEMPORAL_CORRUPTIONS,
    corrupt,
    corrupt_clip,
)
from videotaf.analysis.render import accuracy_pair, interval, markdown_table, md_cell, number
from videotaf.analysis.stats import corruption_summary

__all__ = [
    "evaluate_robustness",
    "batch_seed",
    "robustness_markdown",
    "write_robustness",
    "load_robustness",
    "resolve_corruptions",
    "clip_seed",
    "SUITES",
]

FORMAT = "videotaf-robustness"
METRICS = ("top1", "top5")
UNDECODABLE_RULE = "a clip whose damaged stream FFmpeg could not decode at all is counted as wrong for every model"
# Named corruption sets (``--suite``): the paper's Table 3, all of ImageNet-C, the temporal perturbations, and
# Mini Kinetics-C / Mini SSv2-C (Yi et al. 2021).
SUITES: dict[str, tuple[str, ...]] = {
    "paper": PAPER_CORRUPTIONS,
    "imagenet-c": IMAGENET_C_CORRUPTIONS,
    "temporal": TEMPORAL_CORRUPTIONS,
    "mini-c": MINI_C_CORRUPTIONS,
}


def resolve_corruptions(names: Sequence[str] | None) -> list[str]:
    """Expand aliases: the :data:`SUITES` (``paper`` = Table 3, ``imagenet-c``, ``temporal``, ``mini-c``),
    ``table3``, ``all``; check every name."""
    if not names:
        return list(PAPER_CORRUPTIONS)
    aliases = {**SUITES, "table3": PAPER_CORRUPTIONS, "all": tuple(CORRUPTIONS)}
    out: list[str] = []
    for name in names:
        expanded = aliases.get(name.lower(), (name,))
        for n in expanded:
            if n not in CORRUPTIONS:
                raise ValueError(
                    f"unknown corruption {n!r}; expected one of {', '.join(CORRUPTIONS)} or an alias "
                    f"({', '.join(aliases)})"
                )
            if n not in out:
                out.append(n)
    return out


def batch_seed(seed: int, corruption: str, severity: int, batch_index: int) -> int:
    """The generator seed of one corrupted batch: stable across runs, processes and corruption subsets."""
    key = f"{corruption}:{severity}:{batch_index}".encode()
    return (int(seed) * 1_000_003 + zlib.crc32(key)) % (2**63 - 1)


def clip_seed(seed: int, corruption: str, severity: int, key: str) -> int:
    """The generator seed of one clip's stream corruption, from the clip's content key (:func:`clip_key`): the
    same for every batch size and model, so cached clips are shared (see :mod:`videotaf.analysis.clipcache`)."""
    return batch_seed(seed, f"{corruption}@{key}", severity, 0)


def _topk_correct(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-clip top-1 and top-5 correctness ``(B,)`` bool each."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return (top[:, 0] == labels).cpu(), (top == labels[:, None]).any(dim=1).cpu()


def _pct(hits: int, n: int) -> float:
    return 100.0 * hits / n if n else float("nan")


def _mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else float("nan")


class _Outcomes:
    """Per-clip correctness of every model, clean and per (corruption, severity), gathered batch by batch."""

    def __init__(self, models: Sequence[str]) -> None:
        self.parts: dict[tuple[str, str], list[torch.Tensor]] = {}
        self.models = list(models)
        self.undecodable: dict[str, int] = {}

    def add(self, model: str, cell: str, top1: torch.Tensor, top5: torch.Tensor) -> None:
        self.parts.setdefault((model, cell + ":top1"), []).append(top1)
        self.parts.setdefault((model, cell + ":top5"), []).append(top5)

    def get(self, model: str, cell: str, metric: str) -> torch.Tensor:
        """``(N,)`` bool over every clip seen."""
        return torch.cat(self.parts[(model, f"{cell}:{metric}")])


def _cell_name(corruption: str, severity: int) -> str:
    return f"{corruption}/{severity}"


def _stream_batch(
    clips: torch.Tensor, corruption: str, severity: int, seed: int, cache: ClipCache | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A stream corruption applied clip by clip (seeded per clip, read from / written to ``cache``); returns the
    corrupted clips and a ``(B,)`` bool mask of the clips that decoded (the others are black frames)."""
    random = CORRUPTIONS[corruption].pattern != "deterministic"
    out, ok = [], []
    for clip in clips:
        key = clip_key(clip)
        cs = clip_seed(seed, corruption, severity, key) if random else None
        cached = cache.load(key, corruption, severity, cs) if cache is not None else MISS
        if isinstance(cached, Miss):
            gen = torch.Generator().manual_seed(cs if cs is not None else 0)
            got = corrupt_clip(clip.cpu(), corruption, severity, gen)
            if cache is not None:
                cache.store(key, corruption, severity, cs, got)
        else:
            got = cached
        ok.append(got is not None)
        out.append(torch.zeros_like(clip) if got is None else got.to(clip.device, clip.dtype))
    return torch.stack(out), torch.tensor(ok)


@dataclass(frozen=True)
class _Patterns:
    """What fixes the corruptions of an evaluation: the base seed, the spatial scale of the per-frame ones
    (:func:`~videotaf.analysis.corruptions.corrupt`) and the cache of the stream ones."""

    seed: int
    spatial_scale: float | None
    cache: ClipCache | None


def _corrupted(
    clips: torch.Tensor, corruption: str, severity: int, b_idx: int, patterns: _Patterns
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch under one (corruption, severity): the clips and the ``(B,)`` mask of decodable clips."""
    if CORRUPTIONS[corruption].stream:
        return _stream_batch(clips, corruption, severity, patterns.seed, patterns.cache)
    gen = torch.Generator().manual_seed(batch_seed(patterns.seed, corruption, severity, b_idx))
    x = corrupt(clips, corruption, severity, gen, spatial_scale=patterns.spatial_scale)
    return x, torch.ones(clips.shape[0], dtype=torch.bool)


def _score_batch(
    models: Mapping[str, nn.Module],
    clips: torch.Tensor,
    labels: torch.Tensor,
    cells: Sequence[tuple[str, int]],
    b_idx: int,
    tally: _Outcomes,
    patterns: _Patterns,
) -> None:
    """Score every model on one batch, clean and under every cell; undecodable clips count as wrong."""
    for k, m in models.items():
        tally.add(k, "clean", *_topk_correct(m(clips), labels))
    for c, s in cells:
        x, ok = _corrupted(clips, c, s, b_idx, patterns)
        name = _cell_name(c, s)
        tally.undecodable[name] = tally.undecodable.get(name, 0) + int((~ok).sum())
        for k, m in models.items():
            top1, top5 = _topk_correct(m(x), labels)
            tally.add(k, name, top1 & ok, top5 & ok)


def _model_result(tally: _Outcomes, model: str, names: Sequence[str], sev: Sequence[int], n_boot: int) -> dict:
    """The JSON entry of one model (see :func:`evaluate_robustness`)."""
    pct = {m: _pct(int(tally.get(model, "clean", m).sum()), len(tally.get(model, "clean", m))) for m in METRICS}
    per_c: dict[str, Any] = {}
    for c in names:
        per_s = {
            str(s): {m: 100.0 * float(tally.get(model, _cell_name(c, s), m).double().mean()) for m in METRICS}
            for s in sev
        }
        per_c[c] = {"severities": per_s, "mean": {m: _mean(v[m] for v in per_s.values()) for m in METRICS}}
    families: dict[str, Any] = {}
    for fam in dict.fromkeys(CORRUPTIONS[c].family for c in names):
        members = [per_c[c]["mean"] for c in names if CORRUPTIONS[c].family == fam]
        families[fam] = {m: _mean(v[m] for v in members) for m in METRICS}
    mpc = {m: _mean(per_c[c]["severities"][str(s)][m] for c in names for s in sev) for m in METRICS}
    rpc = {m: (mpc[m] / pct[m] if pct[m] > 0 else None) for m in METRICS}
    clean1 = tally.get(model, "clean", "top1").double()
    mpc1 = torch.stack([tally.get(model, _cell_name(c, s), "top1").double() for c in names for s in sev]).mean(0)
    summary = corruption_summary(clean1.numpy(), mpc1.numpy(), n_boot=n_boot)
    return {
        "clean": pct,
        "corruptions": per_c,
        "families": families,
        "mPC": mpc,
        "rPC": rpc,
        "ci95": {"mPC_top1": summary["mPC_ci95"], "rPC_top1": summary["rPC_ci95"], "over": "clips", "n_boot": n_boot},
        "per_clip": {"clean_top1": [int(v) for v in clean1.tolist()], "mpc_top1": [round(v, 6) for v in mpc1.tolist()]},
    }


def _check_severities(severities: Sequence[int]) -> list[int]:
    sev = [int(s) for s in severities]
    bad = [s for s in sev if s not in SEVERITIES]
    if bad or not sev:
        raise ValueError(f"severities must be a non-empty subset of 1..5, got {list(severities)}")
    return sev


def _default_device(models: Mapping[str, nn.Module], device: torch.device | str | None) -> torch.device:
    if device is None:
        param = next(next(iter(models.values())).parameters(), None)
        return param.device if param is not None else torch.device("cpu")
    return torch.device(device)


@torch.no_grad()
def evaluate_robustness(  # size: the robustness command's options, as keywords of the public API
    models: Mapping[str, nn.Module] | nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    spatial_scale: float | None = 1.0,
    max_batches: int | None = None,
    progress: Callable[[int], None] | None = None,
    cache: ClipCache | str | Path | None = None,
    n_boot: int = 2000,
) -> dict[str, Any]:
    """Top-1/top-5 of each model on clean and corrupted clips (Sec. 4.5, Table 3; Mini-C of Yi et al. 2021).

    Args:
        models: ``{name: model}`` (or one model, named ``"model"``); each maps ``(B, T, 3, H, W)`` in [0, 1] to
            logits ``(B, classes)``. Run in eval mode; their mode is restored afterwards.
        batches: iterable of ``(clips (B, T, 3, H, W), labels (B,))``; read once.
        corruptions: names or aliases (see :func:`resolve_corruptions`); default the paper's eight.
        severities: subset of 1..5.
        seed: base seed of the corruption patterns (:func:`batch_seed`; :func:`clip_seed` for stream ones).
        device: where models and clips run (default: the first model's device).
        spatial_scale: passed to :func:`~videotaf.analysis.corruptions.corrupt`.
        max_batches: stop after this many batches.
        progress: called with the batch index after each batch.
        cache: a :class:`~videotaf.analysis.clipcache.ClipCache` (or its root) for the stream corruptions.
        n_boot: bootstrap resamples of the clip-level intervals of mPC and rPC.

    Returns:
        A JSON-serialisable dict::

            {"format": "videotaf-robustness", "unit": "percent", "corruptions": [...], "severities": [...],
             "seed": s, "spatial_scale": x, "num_clips": n,
             "undecodable": {"corruption/severity": count}, "undecodable_rule": "...",   # stream corruptions
             "models": {name: {"clean": {"top1", "top5"},
                               "corruptions": {c: {"severities": {"1": {"top1", "top5"}, ...},
                                                   "mean": {"top1", "top5"}}},
                               "families": {family: {"top1", "top5"}},
                               "mPC": {"top1", "top5"}, "rPC": {"top1", "top5"},
                               "ci95": {"mPC_top1": [lo, hi], "rPC_top1": [lo, hi], "over": "clips"},
                               "per_clip": {"clean_top1": [0/1 per clip], "mpc_top1": [fraction per clip]}}}}

        A clip whose damaged stream FFmpeg cannot decode at all is counted as wrong for every model.
    """
    if isinstance(models, nn.Module):
        models = {"model": models}
    if not models:
        raise ValueError("evaluate_robustness: no models given")
    names = resolve_corruptions(corruptions)
    sev = _check_severities(severities)
    device = _default_device(models, device)
    if cache is not None and not isinstance(cache, ClipCache):
        cache = ClipCache(cache)
    patterns = _Patterns(int(seed), spatial_scale, cache)
    cells = [(c, s) for c in names for s in sev]
    modes = {k: m.training for k, m in models.items()}
    for m in models.values():
        m.eval()
    tally = _Outcomes(list(models))
    try:
        for b_idx, batch in enumerate(batches):
            if max_batches is not None and b_idx >= max_batches:
                break
            labels = torch.as_tensor(batch[1]).to(device).long()
            _score_batch(models, batch[0].to(device), labels, cells, b_idx, tally, patterns)
            if progress is not None:
                progress(b_idx)
    finally:
        for k, m in models.items():
            m.train(modes[k])
    if not tally.parts:
        raise ValueError("evaluate_robustness: the data gave no clips")
    out: dict[str, Any] = {
        "format": FORMAT,
        "unit": "percent",
        "corruptions": names,
        "severities": sev,
        "seed": int(seed),
        "spatial_scale": spatial_scale,
        "num_clips": len(tally.get(next(iter(models)), "clean", "top1")),
        "models": {k: _model_result(tally, k, names, sev, n_boot) for k in models},
    }
    streams = [_cell_name(c, s) for c, s in cells if CORRUPTIONS[c].stream]
    if streams:
        out["undecodable"] = {cell: tally.undecodable[cell] for cell in streams}
        out["undecodable_rule"] = UNDECODABLE_RULE
    return out


def _interval_lines(result: Mapping[str, Any]) -> list[str]:
    """The mPC / rPC top-1 intervals over clips and the undecodable-clip note, when the result has them."""
    lines = []
    for k, r in result["models"].items():
        ci = r.get("ci95")
        if not ci:
            continue
        mpc = interval(ci.get("mPC_top1") or (None, None), 1)
        rpc = interval(ci.get("rPC_top1") or (None, None), 3)
        lines.append(
            f"- {md_cell(k)}: mPC top-1 {number(r['mPC']['top1'], 1)} {mpc}, rPC top-1 {number(r['rPC']['top1'], 3)} "
            f"{rpc} (95% bootstrap over clips)"
        )
    if result.get("undecodable"):
        lost = {cell: n for cell, n in result["undecodable"].items() if n}
        lines.append(f"- clips that did not decode: {lost or 'none'}; {result.get('undecodable_rule', '')}")
    return ["", *lines] if lines else []


def robustness_markdown(result: Mapping[str, Any]) -> str:
    """Markdown tables of a :func:`evaluate_robustness` result: a Table-3 style summary with the models side by
    side (rows) and the corruptions as columns (mean over severities), then one per-severity table per model."""
    names = list(result["corruptions"])
    sev = [str(s) for s in result["severities"]]
    models = result["models"]
    rows = [
        [k, accuracy_pair(r["clean"]), *(accuracy_pair(r["corruptions"][c]["mean"]) for c in names)]
        + [accuracy_pair(r["mPC"]), accuracy_pair(r["rPC"], 3)]
        for k, r in models.items()
    ]
    lines = [
        f"Top-1/Top-5 (%) on {result['num_clips']} clips, severities {', '.join(sev)}, seed {result['seed']}.",
        "",
        *markdown_table(["model", "clean", *names, "mPC", "rPC"], rows),
    ]
    lines += _interval_lines(result)
    for k, r in models.items():
        per_severity = [
            [
                c,
                *(accuracy_pair(r["corruptions"][c]["severities"][s]) for s in sev),
                accuracy_pair(r["corruptions"][c]["mean"]),
            ]
            for c in names
        ]
        lines += ["", f"### {md_cell(k)}", "", *markdown_table(["corruption", *sev, "mean"], per_severity)]
    return "\n".join(lines) + "\n"


def write_robustness(result: Mapping[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``robustness.json`` and ``robustness.md`` into ``out_dir``; returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "robustness.json"
    md = out_dir / "robustness.md"
    js.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    md.write_text(robustness_markdown(result))
    return js, md


def load_robustness(path: str | Path) -> dict[str, Any]:
    """Read a robustness JSON written by :func:`write_robustness`; ValueError naming the file if it is not one."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read robustness JSON ({err})") from err
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "models" not in obj:
        raise ValueError(f"{path}: not a videotaf robustness result (expected format {FORMAT!r} and 'models')")
    return obj
