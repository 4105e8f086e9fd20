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
import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from videotaf.analysis.corruptions import (
    CORRUPTIONS,
    IMAGENET_C_CORRUPTIONS,
    PAPER_CORRUPTIONS,
    SEVERITIES,
    TEMPORAL_CORRUPTIONS,
    corrupt,
)

__all__ = [
    "evaluate_robustness",
    "batch_seed",
    "robustness_markdown",
    "write_robustness",
    "load_robustness",
    "resolve_corruptions",
]

FORMAT = "videotaf-robustness"


def resolve_corruptions(names: Sequence[str] | None) -> list[str]:
    """Expand aliases: ``paper`` (Table 3), ``imagenet-c``, ``temporal``, ``all``; check every name."""
    if not names:
        return list(PAPER_CORRUPTIONS)
    aliases = {
        "paper": PAPER_CORRUPTIONS,
        "table3": PAPER_CORRUPTIONS,
        "imagenet-c": IMAGENET_C_CORRUPTIONS,
        "temporal": TEMPORAL_CORRUPTIONS,
        "all": tuple(CORRUPTIONS),
    }
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


def _topk_hits(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit1 = int((top[:, 0] == labels).sum())
    hit5 = int((top == labels[:, None]).any(dim=1).sum())
    return hit1, hit5


def _pct(hits: int, n: int) -> float:
    return 100.0 * hits / n if n else float("nan")


def _mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else float("nan")


@torch.no_grad()
def evaluate_robustness(
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
) -> dict[str, Any]:
    """Top-1/top-5 of each model on clean and corrupted clips (Sec. 4.5, Table 3).

    Args:
        models: ``{name: model}`` (or one model, named ``"model"``); each maps ``(B, T, 3, H, W)`` in [0, 1] to
            logits ``(B, classes)``. Run in eval mode; their mode is restored afterwards.
        batches: iterable of ``(clips (B, T, 3, H, W), labels (B,))``; read once.
        corruptions: names or aliases (see :func:`resolve_corruptions`); default the paper's eight.
        severities: subset of 1..5.
        seed: base seed of the corruption patterns (see :func:`batch_seed`).
        device: where models and clips run (default: the first model's device).
        spatial_scale: passed to :func:`~videotaf.analysis.corruptions.corrupt`.
        max_batches: stop after this many batches.
        progress: called with the batch index after each batch.

    Returns:
        A JSON-serialisable dict::

            {"format": "videotaf-robustness", "unit": "percent", "corruptions": [...], "severities": [...],
             "seed": s, "spatial_scale": x, "num_clips": n,
             "models": {name: {"clean": {"top1", "top5"},
                               "corruptions": {c: {"severities": {"1": {"top1", "top5"}, ...},
                                                   "mean": {"top1", "top5"}}},
                               "families": {family: {"top1", "top5"}},
                               "mPC": {"top1", "top5"}, "rPC": {"top1", "top5"}}}}
    """
    if isinstance(models, nn.Module):
        models = {"model": models}
    if not models:
        raise ValueError("evaluate_robustness: no models given")
    names = resolve_corruptions(corruptions)
    sev = [int(s) for s in severities]
    bad = [s for s in sev if s not in SEVERITIES]
    if bad or not sev:
        raise ValueError(f"severities must be a non-empty subset of 1..5, got {list(severities)}")
    if device is None:
        first = next(iter(models.values()))
        param = next(first.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    modes = {k: m.training for k, m in models.items()}
    for m in models.values():
        m.eval()
    clean_hits = {k: [0, 0] for k in models}
    hits = {k: {(c, s): [0, 0] for c in names for s in sev} for k in models}
    total = 0
    try:
        for b_idx, batch in enumerate(batches):
            if max_batches is not None and b_idx >= max_batches:
                break
            clips, labels = batch[0], batch[1]
            clips = clips.to(device)
            labels = torch.as_tensor(labels).to(device).long()
            total += int(labels.numel())
            for k, m in models.items():
                h1, h5 = _topk_hits(m(clips), labels)
                clean_hits[k][0] += h1
                clean_hits[k][1] += h5
            for c in names:
                for s in sev:
                    gen = torch.Generator().manual_seed(batch_seed(seed, c, s, b_idx))
                    x = corrupt(clips, c, s, gen, spatial_scale=spatial_scale)
                    for k, m in models.items():
                        h1, h5 = _topk_hits(m(x), labels)
                        hits[k][(c, s)][0] += h1
                        hits[k][(c, s)][1] += h5
            if progress is not None:
                progress(b_idx)
    finally:
        for k, m in models.items():
            m.train(modes[k])
    if total == 0:
        raise ValueError("evaluate_robustness: the data gave no clips")
    out_models: dict[str, Any] = {}
    for k in models:
        clean = {"top1": _pct(clean_hits[k][0], total), "top5": _pct(clean_hits[k][1], total)}
        per_c: dict[str, Any] = {}
        for c in names:
            per_s = {
                str(s): {"top1": _pct(hits[k][(c, s)][0], total), "top5": _pct(hits[k][(c, s)][1], total)} for s in sev
            }
            per_c[c] = {
                "severities": per_s,
                "mean": {m: _mean(v[m] for v in per_s.values()) for m in ("top1", "top5")},
            }
        families: dict[str, Any] = {}
        for fam in dict.fromkeys(CORRUPTIONS[c].family for c in names):
            members = [per_c[c]["mean"] for c in names if CORRUPTIONS[c].family == fam]
            families[fam] = {m: _mean(v[m] for v in members) for m in ("top1", "top5")}
        mpc = {m: _mean(per_c[c]["severities"][str(s)][m] for c in names for s in sev) for m in ("top1", "top5")}
        rpc = {m: (mpc[m] / clean[m] if clean[m] > 0 else None) for m in ("top1", "top5")}
        out_models[k] = {"clean": clean, "corruptions": per_c, "families": families, "mPC": mpc, "rPC": rpc}
    return {
        "format": FORMAT,
        "unit": "percent",
        "corruptions": names,
        "severities": sev,
        "seed": int(seed),
        "spatial_scale": spatial_scale,
        "num_clips": total,
        "models": out_models,
    }


def _cell(v: Mapping[str, Any], fmt: str = "{:.1f}") -> str:
    def one(x: Any) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "-"
        return fmt.format(x)

    return f"{one(v.get('top1'))}/{one(v.get('top5'))}"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def robustness_markdown(result: Mapping[str, Any]) -> str:
    """Markdown tables of a :func:`evaluate_robustness` result: a Table-3 style summary with the models side by
    side (rows) and the corruptions as columns (mean over severities), then one per-severity table per model."""
    names = list(result["corruptions"])
    sev = [str(s) for s in result["severities"]]
    models = result["models"]
    lines = [
        f"Top-1/Top-5 (%) on {result['num_clips']} clips, severities {', '.join(sev)}, seed {result['seed']}.",
        "",
        "| model | clean | " + " | ".join(_md_escape(c) for c in names) + " | mPC | rPC |",
        "|---" * (len(names) + 4) + "|",
    ]
    for k, r in models.items():
        row = [_md_escape(k), _cell(r["clean"])]
        row += [_cell(r["corruptions"][c]["mean"]) for c in names]
        row += [_cell(r["mPC"]), _cell(r["rPC"], "{:.3f}")]
        lines.append("| " + " | ".join(row) + " |")
    for k, r in models.items():
        lines += ["", f"### {_md_escape(k)}", ""]
        lines.append("| corruption | " + " | ".join(sev) + " | mean |")
        lines.append("|---" * (len(sev) + 2) + "|")
        for c in names:
            cells = [_cell(r["corruptions"][c]["severities"][s]) for s in sev]
            lines.append(f"| {_md_escape(c)} | " + " | ".join(cells) + f" | {_cell(r['corruptions'][c]['mean'])} |")
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
