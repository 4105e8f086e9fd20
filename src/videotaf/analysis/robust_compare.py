"""Corruption robustness inside ``videotaf compare --robustness-suite SUITE``: each method's mPC minus the
control's, with its interval over seeds (Student t) and over clips (paired bootstrap).

Every fine-tune of the comparison (its final model, ``checkpoints/last.pt``, the one ``eval.json`` scores) is
evaluated on the suite (:func:`videotaf.analysis.robustness.evaluate_robustness`; the result is kept as
``RUN/robustness-<suite>.json`` and reused when present), and the per-clip mPC (the fraction of the corruption x
severity cells a clip is right in) goes to :func:`videotaf.analysis.stats.paired_score_difference`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch.utils.data import DataLoader

from videotaf.analysis.clipcache import ClipCache
from videotaf.analysis.inputs import eval_dataset
from videotaf.analysis.render import robustness_compare_markdown
from videotaf.analysis.robustness import evaluate_robustness, load_robustness
from videotaf.analysis.stats import paired_score_difference
from videotaf.engine.builders import load_model
from videotaf.errors import VideotafError
from videotaf.io import atomic_write_bytes

__all__ = ["run_robustness", "compare_robustness", "robustness_compare_markdown"]


class _Run(Protocol):
    """What this module needs of :class:`videotaf.analysis.compare.PlannedRun`."""

    @property
    def run_dir(self) -> Path: ...


def run_robustness(run_dir: Path, suite: str, *, cache: ClipCache | None = None, batch_size: int = 8) -> dict:
    """The suite's robustness result of one run's final model, from ``RUN/robustness-<suite>.json`` or computed
    (and written there)."""
    path = Path(run_dir) / f"robustness-{suite}.json"
    if path.exists():
        return load_robustness(path)
    model, cfg = load_model(Path(run_dir) / "checkpoints" / "last.pt", map_location="cpu")
    loader = DataLoader(eval_dataset(cfg), batch_size=batch_size, shuffle=False, num_workers=0)
    result = evaluate_robustness({"model": model.eval()}, loader, [suite], cache=cache)
    result["suite"] = suite
    atomic_write_bytes(path, (json.dumps(result, indent=2) + "\n").encode())
    return result


def compare_robustness(
    runs: Mapping[str, Sequence[_Run]], suite: str, *, cache: ClipCache | None = None, n_boot: int = 10000
) -> dict[str, Any]:
    """``{"suite", "control", "n_clips", "methods": {label: paired_score_difference(...)}}`` for ``runs``
    (``{label: runs in seed order}``, the first label the control), in pp of mPC top-1."""
    scores: dict[str, np.ndarray] = {}
    for label, label_runs in runs.items():
        rows = []
        for run in label_runs:
            result = run_robustness(run.run_dir, suite, cache=cache)
            rows.append(np.asarray(result["models"]["model"]["per_clip"]["mpc_top1"], dtype=np.float64))
        if len({row.size for row in rows}) != 1:
            raise VideotafError(f"compare: the {label} runs were scored on different numbers of clips")
        scores[label] = np.stack(rows)
    labels = list(scores)
    control = labels[0]
    return {
        "suite": suite,
        "control": control,
        "n_clips": int(scores[control].shape[1]),
        "methods": {
            label: paired_score_difference(scores[label], scores[control], n_boot=n_boot) for label in labels[1:]
        },
    }
