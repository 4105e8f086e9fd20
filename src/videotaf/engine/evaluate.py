"""Evaluation: 1 clip, centre crop (the paper's protocol, Sec. 4.1), top-1 / top-5 / loss / per class / subset.

The dataset's validation transform provides the single centre-cropped clip per video; this module only runs
the model over it and scores the logits. ``results`` (written as ``RUN/eval.json``)::

    {"top1": %, "top5": %, "loss": mean CE, "num_clips": n, "classes": [names],
     "per_class": {name: % or null when the class has no clip},
     "subset": {"top1": %, "classes": [names], "num_clips": n} or null,
     "clips": {"labels": [int] * n, "predictions": [int] * n, "loss": [float] * n}}

Accuracies are percentages (as the paper's tables). ``clips`` keeps each validation clip's label, top-1
prediction and cross-entropy in dataset order, so any two runs scored on the same split can be compared clip
by clip later (paired bootstrap, McNemar: ``videotaf compare``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from videotaf.config import Config
from videotaf.data import build_dataset
from videotaf.engine.builders import class_names_of, load_model
from videotaf.engine.distributed import gather_tensors
from videotaf.io import atomic_write_bytes


def read_class_subset(path: str | Path, class_names: Sequence[str]) -> list[str]:
    """Read a class list file: one class per line, either its name or its integer id; ``#`` starts a comment.

    Returns the class names in file order. Raises ValueError naming the file and line for unknown classes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class subset file not found: {path}")
    index = {name: i for i, name in enumerate(class_names)}
    out: list[str] = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if text in index:
            name = text
        elif text.isdigit() and int(text) < len(class_names):
            name = class_names[int(text)]
        else:
            raise ValueError(
                f"{path}:{lineno}: {text!r} is neither a class name nor a class id in [0, {len(class_names)})"
            )
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"{path}: no classes listed")
    return out


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """``(N,)`` bool: the label is among the ``k`` highest logits (ties broken by ``torch.topk``)."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)


def compute_metrics(
    logits: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str],
    subset: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Score ``logits`` ``(N, C)`` against ``labels`` ``(N,)``; see the module docstring for the keys."""
    if logits.dim() != 2 or labels.dim() != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"expected logits (N, C) and labels (N,), got {tuple(logits.shape)} {tuple(labels.shape)}")
    if logits.shape[1] != len(class_names):
        raise ValueError(f"logits have {logits.shape[1]} classes but {len(class_names)} class names were given")
    logits = logits.float().cpu()
    labels = labels.long().cpu()
    n = labels.numel()
    top1 = topk_correct(logits, labels, 1)
    top5 = topk_correct(logits, labels, 5)
    clip_loss = F.cross_entropy(logits, labels, reduction="none") if n else torch.zeros(0)
    loss = clip_loss.mean().item() if n else float("nan")

    def pct(mask: torch.Tensor) -> float:
        return 100.0 * mask.float().mean().item() if mask.numel() else float("nan")

    per_class: dict[str, float | None] = {}
    for c, name in enumerate(class_names):
        sel = labels == c
        per_class[name] = pct(top1[sel]) if bool(sel.any()) else None
    subset_out = None
    if subset is not None:
        names = list(subset)
        ids = torch.tensor([list(class_names).index(s) for s in names], dtype=torch.long)
        sel = torch.isin(labels, ids)
        subset_out = {"top1": pct(top1[sel]), "classes": names, "num_clips": int(sel.sum())}
    return {
        "top1": pct(top1),
        "top5": pct(top5),
        "loss": loss,
        "num_clips": int(n),
        "classes": list(class_names),
        "per_class": per_class,
        "subset": subset_out,
        "clips": {
            "labels": labels.tolist(),
            "predictions": logits.argmax(dim=1).tolist() if n else [],
            "loss": [round(v, 6) for v in clip_loss.tolist()],
        },
    }


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str = "cpu",
    *,
    amp: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` (eval mode) over ``loader`` of ``(clips (B,T,3,H,W), labels (B,))``.

    Returns ``(logits (N, C), labels (N,))`` on the CPU, gathered from every process in rank order.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    all_logits, all_labels = [], []
    try:
        for clips, labels in loader:
            clips = clips.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=amp):
                logits = model(clips)
            all_logits.append(logits.float().cpu())
            all_labels.append(torch.as_tensor(labels).long().cpu())
    finally:
        model.train(was_training)
    if all_logits:
        logits_t, labels_t = torch.cat(all_logits), torch.cat(all_labels)
    else:
        logits_t, labels_t = torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    logits_t, labels_t = gather_tensors(logits_t), gather_tensors(labels_t)
    return logits_t, labels_t


def evaluate(
    model: nn.Module,
    loader: Iterable,
    class_names: Sequence[str],
    device: torch.device | str = "cpu",
    *,
    subset: Iterable[str] | None = None,
    amp: bool = False,
) -> dict[str, Any]:
    """:func:`predict` then :func:`compute_metrics`."""
    logits, labels = predict(model, loader, device, amp=amp)
    if logits.numel() == 0:
        raise ValueError("evaluation set is empty")
    return compute_metrics(logits, labels, class_names, subset)


def write_results(results: dict[str, Any], path: str | Path) -> Path:
    """Write ``results`` as indented JSON (atomically); NaN becomes null."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and v != v:
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return atomic_write_bytes(Path(path), (json.dumps(clean(results), indent=2) + "\n").encode())


def split_metrics(checkpoint: str | Path, cfg: Config, split: str | None = None) -> dict[str, Any]:
    """:func:`compute_metrics` of the model in ``checkpoint`` on a split of ``cfg.data`` with the test transform
    (1 clip, centre crop), on the CPU. ``split`` defaults to the training split: its top-1 against the
    validation top-1 is the over-fitting gap the paper discusses (Sec. 3.1)."""
    model, _ = load_model(checkpoint)
    ds = build_dataset(cfg.data, split or cfg.data.train_split, False)
    logits, labels = predict(model, DataLoader(ds, batch_size=cfg.optim.batch_size, num_workers=0))
    return compute_metrics(logits, labels, class_names_of(ds, cfg.model.num_classes))


def train_split_metrics(run_dir: str | Path, cfg: Config) -> dict[str, float]:
    """Top-1 (%) and CE of a run's final model on its training split with the test transform, cached in
    ``RUN/train_eval.json`` (valid while newer than ``eval.json``): the training side of the over-fitting gap."""
    run_dir = Path(run_dir)
    cache = run_dir / "train_eval.json"
    if cache.is_file() and cache.stat().st_mtime >= (run_dir / "eval.json").stat().st_mtime:
        cached: dict[str, float] = json.loads(cache.read_text())
        return cached
    m = split_metrics(run_dir / "checkpoints" / "last.pt", cfg)
    out = {"top1": float(m["top1"]), "loss": float(m["loss"])}
    atomic_write_bytes(cache, (json.dumps(out) + "\n").encode())
    return out
