"""``videotaf compare``: does a method beat the equal-epoch control on *your* data? Paired seeds, with CIs.

The paper compares TAF only with the model it started from (Table 1), never with the same 15 epochs of plain
fine-tuning; at CPU scale that control gains as much as TAF. ``compare`` runs, for each seed, one fine-tune per
method from the same checkpoint with the protocol of :func:`videotaf.engine.finetune.finetune_config`:

- the same seed gives every method the same data order and the same augmentation draws (``data.seed`` is the
  run seed), so differences within a seed are paired;
- the first method is the control (normally ``plain``);
- finished runs are reused, an interrupted one resumes (:func:`videotaf.engine.train.fit_or_reuse`), so an
  interrupted ``compare`` continues where it stopped;
- rerun with more ``--seeds`` on a finished comparison (the same plan otherwise, :func:`plan_record`, checked by
  :func:`prepare_out_dir`), it trains only the new seeds and rewrites the outputs; with fewer, it scores the first
  N seeds (the other runs stay on disk); another plan is refused unless ``overwrite``;
- with ``devices`` the runs go to a pool of worker processes, one per device (e.g. ``cuda:0 cuda:1``).

It then scores every run's ``eval.json`` clip by clip (:mod:`videotaf.analysis.stats`: paired differences over
seeds with Student t CIs, a paired bootstrap over clips, McNemar's test, the minimum detectable difference and a
verdict) and writes ``compare.json``, ``compare.md`` and ``compare.png`` into the output directory.

A method is given as ``NAME`` (``plain``, ``ce_adv``, ``advprop``, ``taf``) or as ``LABEL=NAME,KEY=VALUE,...``
with config overrides for that method only, e.g. ``taf25=taf,adversarial.fraction=0.25``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from videotaf.analysis.clipcache import ClipCache
from videotaf.analysis.render import compare_markdown
from videotaf.analysis.robust_compare import compare_robustness
from videotaf.analysis.stats import compare_methods
from videotaf.config import Config, ConfigError, save_config, with_overrides
from videotaf.engine.builders import validation_class_names
from videotaf.engine.evaluate import read_class_subset, train_split_metrics
from videotaf.engine.finetune import AttackSettings, base_config, finetune_config, finetune_lr
from videotaf.engine.runs import next_step
from videotaf.engine.train import fit_or_reuse
from videotaf.errors import OutputExistsError, VideotafError
from videotaf.io import atomic_write_bytes, check_output
from videotaf.objective import METHODS


@dataclass(frozen=True)
class MethodSpec:
    """One compared arm: a label (its run directories and rows), the fine-tuning method and its overrides."""

    label: str
    method: str
    overrides: tuple[str, ...] = ()


def parse_method(text: str) -> MethodSpec:
    """``taf`` or ``taf25=taf,adversarial.fraction=0.25`` -> :class:`MethodSpec` (ConfigError when malformed)."""
    label, sep, rest = text.partition("=")
    if not sep:
        label, rest = text, text
    parts = [p.strip() for p in rest.split(",") if p.strip()]
    if not label.strip() or not parts:
        raise ConfigError(f"--methods {text!r}: expected NAME or LABEL=NAME[,KEY=VALUE...]")
    method, overrides = parts[0], tuple(parts[1:])
    if method not in METHODS:
        raise ConfigError(f"--methods {text!r}: method must be one of {', '.join(METHODS)}, got {method!r}")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--methods {text!r}: override {item!r} is not KEY=VALUE")
    if not all(c.isalnum() or c in "_-." for c in label):
        raise ConfigError(f"--methods {text!r}: label {label!r} may hold letters, digits, '_', '-', '.' only")
    return MethodSpec(label.strip(), method, overrides)


@dataclass(frozen=True)
class PlannedRun:
    """One fine-tune of the comparison."""

    spec: MethodSpec
    seed: int
    cfg: Config

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.runtime.output_dir)


@dataclass
class CompareSettings:
    """What ``videotaf compare`` runs (see the module docstring); ``base`` is the checkpoint's config by default."""

    checkpoint: Path
    methods: list[MethodSpec]
    seeds: int
    out_dir: Path
    base: Config | None = None
    epochs: int = 15
    decay_after: int = 10
    lr_from: str = "auto"
    overrides: tuple[str, ...] = ()
    attack: AttackSettings = dataclasses.field(default_factory=AttackSettings)
    subset_classes: Path | None = None
    n_boot: int = 10000
    robustness_suite: str | None = None  # also score mPC on this corruption suite (analysis/robust_compare.py)
    robustness_cache: Path | None = None


def plan_record(settings: CompareSettings) -> dict[str, Any]:
    """What makes two ``compare`` invocations the same comparison, but for the number of seeds: ``compare.json``'s
    ``plan`` (JSON-ready; paths resolved). The runs' own configs (the base config included) are checked run by
    run (:func:`check_plan`)."""
    subset = settings.subset_classes
    return {
        "checkpoint": str(Path(settings.checkpoint).resolve()),
        "methods": [{"label": m.label, "method": m.method, "overrides": list(m.overrides)} for m in settings.methods],
        "epochs": settings.epochs,
        "decay_after": settings.decay_after,
        "lr_from": settings.lr_from,
        "overrides": list(settings.overrides),
        "attack": dataclasses.asdict(settings.attack),
        "subset_classes": None if subset is None else str(Path(subset).resolve()),
        "n_boot": settings.n_boot,
    }


def prepare_out_dir(settings: CompareSettings, *, overwrite: bool) -> int | None:
    """Before any work: may this comparison write ``OUT/compare.json``? Returns the seeds an earlier one scored.

    An earlier ``compare.json`` with the same :func:`plan_record` is rewritten whatever ``--seeds`` is now (its
    finished runs are reused); one with another plan, or with none recorded (an older videotaf), is refused
    unless ``overwrite``.

    Raises:
        OutputExistsError: another comparison's ``compare.json`` and no ``overwrite``.
        VideotafError: ``OUT`` cannot be written.
    """
    path = settings.out_dir / "compare.json"
    check_output(path, overwrite=True)  # only whether it can be written: the plan decides the rest
    if not path.is_file():
        return None
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        previous = {}
    recorded = previous.get("plan") if isinstance(previous, dict) else None
    if not overwrite:
        if recorded is None:
            raise OutputExistsError(
                f"--out {path} records no plan (not written by this videotaf's compare); pass --overwrite to replace "
                "it (finished runs with the same settings are still reused) or choose another --out"
            )
        now = plan_record(settings)
        changed = [
            f"{key} {recorded.get(key)!r} there, {value!r} now"
            for key, value in now.items()
            if recorded.get(key) != value
        ]
        if changed:
            raise OutputExistsError(
                f"--out {path} holds another comparison ({'; '.join(changed)}); pass --overwrite to replace it or "
                "choose another --out (only --seeds may change)"
            )
    before = previous.get("n_seeds") if isinstance(previous, dict) else None
    if isinstance(before, int) and before != settings.seeds:
        what = "adding seeds to" if settings.seeds > before else f"scoring the first {settings.seeds} seeds of"
        print(f"[compare] {what} the {before}-seed comparison in {settings.out_dir}", file=sys.stderr, flush=True)
    return before if isinstance(before, int) else None


def plan_runs(settings: CompareSettings) -> list[PlannedRun]:
    """The fine-tunes of the comparison, seed-major: ``OUT/runs/<label>_seed<s>`` (configs validated here)."""
    if settings.seeds < 1:
        raise ConfigError(f"--seeds expects an int >= 1, got {settings.seeds}")
    labels = [m.label for m in settings.methods]
    if len(labels) < 2:
        raise ConfigError("--methods needs the control and at least one other method")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--methods: labels must differ, got {labels}")
    base = settings.base if settings.base is not None else base_config(settings.checkpoint)[0]
    lr, _ = finetune_lr(settings.checkpoint, settings.lr_from, base.optim.lr)
    plan = []
    for seed in range(settings.seeds):
        for spec in settings.methods:
            cfg = finetune_config(
                base,
                settings.checkpoint,
                spec.method,
                epochs=settings.epochs,
                decay_after=settings.decay_after,
                attack=settings.attack,
                output_dir=settings.out_dir / "runs" / f"{spec.label}_seed{seed}",
                seed=seed,
                lr=lr,
            )
            # Same seed, same augmentation draws for every method: the per-clip data seed is the run seed.
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, seed=seed))
            cfg = with_overrides(cfg, [*settings.overrides, *spec.overrides], f"compare {spec.label} seed {seed}")
            plan.append(PlannedRun(spec, seed, cfg))
    return plan


def check_plan(plan: Sequence[PlannedRun], *, overwrite: bool) -> dict[str, str]:
    """What each run will do (``train``, ``resume``, ``reuse``), refusing runs made with other configs first."""
    return {str(run.run_dir): next_step(run.run_dir, run.cfg, overwrite=overwrite) for run in plan}


def execute(
    plan: Sequence[PlannedRun],
    *,
    subset: list[str] | None = None,
    overwrite: bool = False,
    devices: Sequence[str] | None = None,
) -> None:
    """Run every planned fine-tune: in this process one after the other, or one worker process per device."""
    if not devices:
        for run in plan:
            print(f"[compare] {run.spec.label} seed {run.seed}: {run.run_dir}", file=sys.stderr, flush=True)
            fit_or_reuse(run.cfg, overwrite=overwrite, subset_classes=subset)
        return
    plans_dir = plan[0].run_dir.parent.parent / "plans"

    def launch(item: tuple[int, PlannedRun]) -> None:
        index, run = item
        device = devices[index % len(devices)]
        cfg = dataclasses.replace(run.cfg, runtime=dataclasses.replace(run.cfg.runtime, device=device))
        config = save_config(cfg, plans_dir / f"{run.run_dir.name}.yaml")
        step = next_step(run.run_dir, cfg, overwrite=overwrite)
        if step == "reuse":
            return
        flag = "--resume" if step == "resume" else "--overwrite"
        cmd = [sys.executable, "-m", "videotaf", "train", "--config", str(config), "--out", str(run.run_dir), flag]
        if subset is not None:
            subset_file = plans_dir / "subset_classes.txt"
            cmd += ["--subset-classes", str(subset_file)]
        print(f"[compare] {run.spec.label} seed {run.seed} on {device}: {run.run_dir}", file=sys.stderr, flush=True)
        done = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise VideotafError(f"fine-tune {run.run_dir} failed (exit {done.returncode}): {last}")

    plans_dir.mkdir(parents=True, exist_ok=True)
    if subset is not None:
        (plans_dir / "subset_classes.txt").write_text("\n".join(subset) + "\n")
    # Threads only wait on the worker processes; each process owns its device.
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        list(pool.map(launch, enumerate(plan)))


def _read_eval(run: PlannedRun) -> dict[str, Any]:
    path = run.run_dir / "eval.json"
    ev: dict[str, Any] = json.loads(path.read_text())
    if "clips" not in ev:
        raise VideotafError(f"{path} has no per-clip predictions (written by an older videotaf); rerun it")
    return ev


def collect(plan: Sequence[PlannedRun], *, subset: list[str] | None = None, n_boot: int = 10000) -> dict[str, Any]:
    """Score the finished runs of ``plan`` against the control (the first method): the ``compare.json`` body."""
    labels_order = list(dict.fromkeys(run.spec.label for run in plan))
    seeds = sorted({run.seed for run in plan})
    by_key = {(run.spec.label, run.seed): run for run in plan}
    correct: dict[str, list[np.ndarray]] = {label: [] for label in labels_order}
    train_top1: dict[str, list[float]] = {label: [] for label in labels_order}
    val_loss: dict[str, list[float]] = {label: [] for label in labels_order}
    clip_labels: np.ndarray | None = None
    class_names: list[str] | None = None
    for seed in seeds:
        for label in labels_order:
            run = by_key[(label, seed)]
            ev = _read_eval(run)
            y = np.asarray(ev["clips"]["labels"], dtype=np.int64)
            if clip_labels is None:
                clip_labels, class_names = y, list(ev["classes"])
            elif not np.array_equal(y, clip_labels):
                raise VideotafError(f"{run.run_dir}/eval.json: scored on other validation clips than the others")
            correct[label].append(np.asarray(ev["clips"]["predictions"], dtype=np.int64) == y)
            train_top1[label].append(float(train_split_metrics(run.run_dir, run.cfg)["top1"]))
            val_loss[label].append(float(ev["loss"]))
    if clip_labels is None or class_names is None:
        raise VideotafError("compare: no runs to score")
    mask = None
    if subset:
        ids = [class_names.index(name) for name in subset]
        mask = np.isin(clip_labels, ids)
    result = compare_methods(
        {label: np.stack(rows) for label, rows in correct.items()},
        labels_order[0],
        labels=clip_labels,
        class_names=class_names,
        subset_mask=mask,
        subset_name="long-term classes" if subset else "subset",
        train_top1=train_top1,
        val_loss=val_loss,
        n_boot=n_boot,
    )
    result["seeds"] = seeds
    result["runs"] = {
        run.spec.label: {
            "method": run.spec.method,
            "overrides": list(run.spec.overrides),
            "run_dirs": [str(by_key[(run.spec.label, s)].run_dir) for s in seeds],
        }
        for run in plan
        if run.seed == seeds[0]
    }
    return result


def compare_figure(result: dict[str, Any], path: str | Path) -> Path:
    """PNG: each method's per-seed paired differences against the control (points), their mean with the 95% CI
    over seeds (thick bar) and the paired-bootstrap CI over clips (thin bar)."""
    methods = list(result["methods"])
    fig = Figure(figsize=(max(4.8, 1.8 + 1.6 * len(methods)), 3.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.axhline(0.0, color="#888", lw=1, ls="--")
    for i, name in enumerate(methods):
        m = result["methods"][name]
        per_seed = m["delta_top1"]["per_seed"]
        ax.scatter([i - 0.12] * len(per_seed), per_seed, s=18, color="#4c72b0", zorder=3, label=None)
        mean, ci = m["delta_top1"]["mean"], m["delta_top1"]["ci95"]
        if ci is not None:
            ax.errorbar([i], [mean], yerr=[[mean - ci[0]], [ci[1] - mean]], fmt="o", color="#222", lw=3, capsize=0)
        else:
            ax.plot([i], [mean], "o", color="#222")
        b = m["bootstrap"]
        ax.errorbar([i + 0.12], [b["mean"]], yerr=[[b["mean"] - b["ci95"][0]], [b["ci95"][1] - b["mean"]]], fmt="s",
                    color="#c44e52", lw=1, capsize=3, ms=3)  # fmt: skip
        ax.annotate(m["verdict"], (i, ax.get_ylim()[1]), ha="center", va="top", fontsize=7, color="#444")
    ax.set_xticks(range(len(methods)), methods)
    ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.set_ylabel(f"top-1 - {result['control']} (pp)")
    ax.set_title(
        f"{result['n_seeds']} seeds x {result['n_clips']} clips\n"
        "points: seeds; black: mean, 95% CI over seeds; red: 95% CI over clips",
        fontsize=8,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def write_outputs(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """``compare.json``, ``compare.md`` and ``compare.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "compare.json", "md": out_dir / "compare.md", "png": out_dir / "compare.png"}
    atomic_write_bytes(paths["json"], (json.dumps(result, indent=2) + "\n").encode())
    md = compare_markdown(result)
    atomic_write_bytes(paths["md"], md.encode())
    compare_figure(result, paths["png"])
    return paths


def run_compare(
    settings: CompareSettings,
    *,
    overwrite: bool = False,
    devices: Sequence[str] | None = None,
    plan: Sequence[PlannedRun] | None = None,
    out_dir: Path | None = None,
) -> dict:
    """Plan, check, run and score a comparison; returns the ``compare.json`` body (also written).

    ``plan``: the runs, when the caller already planned them (default ``plan_runs(settings)``); ``out_dir``: where
    ``compare.json/md/png`` go (default ``settings.out_dir``; another directory lets several comparisons share
    one directory of runs)."""
    plan = plan_runs(settings) if plan is None else plan
    subset = None
    if settings.subset_classes is not None:
        subset = read_class_subset(settings.subset_classes, validation_class_names(plan[0].cfg))
    todo = check_plan(plan, overwrite=overwrite)
    counts = {what: list(todo.values()).count(what) for what in ("train", "resume", "reuse")}
    print(f"[compare] {len(plan)} fine-tunes: {counts}", file=sys.stderr, flush=True)
    execute(plan, subset=subset, overwrite=overwrite, devices=devices)
    result = collect(plan, subset=subset, n_boot=settings.n_boot)
    result["checkpoint"] = str(settings.checkpoint)
    result["lr_from"] = settings.lr_from
    result["plan"] = plan_record(settings)
    if settings.robustness_suite:
        by_label = {
            label: [r for r in plan if r.spec.label == label] for label in dict.fromkeys(r.spec.label for r in plan)
        }
        cache = ClipCache(settings.robustness_cache) if settings.robustness_cache else None
        result["robustness"] = compare_robustness(
            by_label, settings.robustness_suite, cache=cache, n_boot=settings.n_boot
        )
    write_outputs(result, settings.out_dir if out_dir is None else out_dir)
    return result
