"""One HTML page comparing training runs (engine run directories), with the PNG figures beside it.

Sections, always present (with a note when a run has no data for it): runs, accuracy (``eval.json``), loss
curves (Figure 5, ``metrics.jsonl``), class-wise change against the baseline run with the long-term classes
highlighted (Figure 4), robustness tables (any ``robustness*.json`` in a run directory, written by
``videotaf robustness``), and CAM examples (PNGs named ``cam*.png`` in a run directory, in the ``figures/`` folder
beside the runs - where ``videotaf demo`` writes its CAM figures, ``OUT/figures/cam_val*.png`` - or passed
explicitly). A fine-tune whose ``model.pretrained`` is a checkpoint of another run of the report continues that
run's epoch axis in the loss curves, as in the paper's Figure 5.
The page uses inline CSS and relative links only, so the output directory can be moved or archived as a whole.
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import yaml

from videotaf.analysis.figures import classwise_figure, loss_curves_figure, read_eval, read_metrics
from videotaf.analysis.render import (
    MISSING,
    accuracy_pair,
    format_markdown,
    interval,
    md_row_cells,
    md_unescape,
    number,
)
from videotaf.analysis.robustness import load_robustness
from videotaf.analysis.stats import paired_bootstrap

__all__ = ["build_report", "find_robustness_files", "find_cam_images", "find_shared_cam_images", "SECTIONS"]

SECTIONS = (
    ("runs", "Runs"),
    ("compare", "Does a method beat the control? (videotaf compare)"),
    ("accuracy", "Accuracy"),
    ("loss-curves", "Loss curves"),
    ("classwise", "Class-wise change"),
    ("robustness", "Robustness to corruptions"),
    ("cams", "CAM examples"),
)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0; }
.note { color: #777; font-style: italic; }
.pos { color: #1a7f37; } .neg { color: #b42318; }
code { background: #f6f6f6; padding: 0 0.2em; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _href(rel: str) -> str:
    return _e(quote(rel))


def _fmt(v: Any, digits: int = 2) -> str:
    return _e(number(v, digits))


def _delta(v: float | None, digits: int = 2) -> str:
    """The signed difference, green when positive, red when negative."""
    text = number(v, digits, signed=True)
    if v is None or text == MISSING:
        return text
    cls = "pos" if v > 0 else "neg" if v < 0 else ""
    return f'<span class="{cls}">{text}</span>'


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """HTML table; header cells are escaped here, row cells must already be HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _clip_ci(ev: Mapping[str, Any], base: Mapping[str, Any] | None) -> list[float] | None:
    """95% paired-bootstrap CI (pp) of ``ev``'s top-1 minus ``base``'s over the same validation clips."""
    if base is None or ev is base or "clips" not in ev or "clips" not in base:
        return None
    y, y0 = ev["clips"]["labels"], base["clips"]["labels"]
    if y != y0 or not y:
        return None
    labels = np.asarray(y)
    right = np.asarray(ev["clips"]["predictions"]) == labels
    right0 = np.asarray(base["clips"]["predictions"]) == labels
    ci: list[float] = paired_bootstrap(right, right0, n_boot=2000)["ci95"]
    return ci


def _classwise_ci(
    ev: Mapping[str, Any], base: Mapping[str, Any], classes: Sequence[bool] | None, n_boot: int = 2000
) -> list[float] | None:
    """95% bootstrap CI (pp) of the mean over the selected classes of the per-class top-1 change (Figure 4's
    statistic), resampling the validation clips (the same clips for both runs)."""
    if _clip_ci(ev, base) is None:
        return None
    labels = np.asarray(ev["clips"]["labels"])
    diff = (np.asarray(ev["clips"]["predictions"]) == labels).astype(float)
    diff -= np.asarray(base["clips"]["predictions"]) == labels
    num_classes = len(ev["classes"])
    chosen = np.ones(num_classes, bool) if classes is None else np.asarray(classes, bool)
    rng = np.random.default_rng(0)
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(labels), len(labels))
        count = np.bincount(labels[idx], minlength=num_classes)
        total = np.bincount(labels[idx], weights=diff[idx], minlength=num_classes)
        present = chosen & (count > 0)
        if present.any():
            stats.append(100.0 * float(np.mean(total[present] / count[present])))
    if not stats:
        return None
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return [float(lo), float(hi)]


def _ci(ci: Sequence[float] | None) -> str:
    """A difference's interval in the report's tables: signed bounds, ``-`` without one."""
    return interval(ci, signed=True, missing=MISSING)


def _markdown_html(text: str) -> str:
    """The small Markdown subset of :func:`videotaf.analysis.render.format_markdown` (headings, tables, bullets)."""
    out: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            out.append(_table(table[0], [[_e(c) for c in row] for row in table[2:]]))
            table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append([c.replace("`", "") for c in md_row_cells(line)])
            continue
        flush()
        if line.startswith("#"):
            out.append(f"<h4>{_e(md_unescape(line.lstrip('#').strip()).replace('`', ''))}</h4>")
        elif line.startswith("- "):
            out.append(f'<p class="note">{_e(line[2:])}</p>')
        elif line.strip():
            out.append(f"<p>{_e(line)}</p>")
    flush()
    return "".join(out)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def find_robustness_files(run_dir: str | Path) -> list[Path]:
    """``robustness*.json`` files in ``run_dir`` and up to two directory levels below, sorted."""
    run_dir = Path(run_dir)
    found: set[Path] = set()
    for pattern in ("robustness*.json", "*/robustness*.json", "*/*/robustness*.json"):
        found.update(p for p in run_dir.glob(pattern) if p.is_file())
    return sorted(found)


def find_cam_images(run_dir: str | Path) -> list[Path]:
    """``cam*.png`` files in ``run_dir``, in ``run_dir/cams`` and up to two levels below, sorted."""
    run_dir = Path(run_dir)
    found: set[Path] = set()
    for pattern in ("cam*.png", "*/cam*.png", "*/*/cam*.png", "cams/*.png"):
        found.update(p for p in run_dir.glob(pattern) if p.is_file())
    return sorted(found)


def find_shared_cam_images(run_dirs: Sequence[str | Path]) -> list[Path]:
    """``cam*.png`` files in the ``figures/`` folder beside the runs (``PARENT/figures/`` for each distinct parent
    directory of ``run_dirs``), sorted: where ``videotaf demo`` writes the CAM figures comparing its runs
    (``OUT/figures/cam_val*.png`` beside ``OUT/baseline``, ``OUT/plain``, ``OUT/taf``)."""
    parents = dict.fromkeys(Path(p).resolve().parent for p in run_dirs)
    found: set[Path] = set()
    for parent in parents:
        found.update(p for p in (parent / "figures").glob("cam*.png") if p.is_file())
    return sorted(found)


def _checkpoint_owner(pretrained: Any, runs: Sequence[Path], own: int) -> int | None:
    """Index of the run in ``runs`` (other than ``own``) whose ``checkpoints/*.pt`` ``pretrained`` names.

    An absolute path is compared resolved; a relative one (as written relative to where the fine-tune was
    started) resolved from the current directory, else by its trailing ``RUN/checkpoints`` components."""
    if not isinstance(pretrained, str) or not pretrained:
        return None
    path = Path(pretrained).expanduser()
    if path.parent.name != "checkpoints" or path.suffix != ".pt":
        return None
    target = path.parent.parent
    resolved = [r.resolve() for r in runs]
    for j, r in enumerate(resolved):
        if j != own and target.resolve() == r:
            return j
    if not path.is_absolute() and ".." not in target.parts:
        tail = target.parts
        for j, r in enumerate(resolved):
            if j != own and tail and r.parts[-len(tail) :] == tail:
                return j
    return None


def _start_epoch(pretrained: str, records: Sequence[Mapping[str, Any]]) -> float | None:
    """The parent's epoch a fine-tune started from: for ``best.pt`` the first epoch with the highest
    ``val_top1`` (how the engine picks it), otherwise (``last.pt``) ``None``, meaning the last logged epoch."""
    if Path(pretrained).name != "best.pt":
        return None
    scored = [
        (float(r["val_top1"]), float(r["epoch"]))
        for r in records
        if isinstance(r.get("val_top1"), (int, float)) and isinstance(r.get("epoch"), (int, float))
    ]
    if not scored:
        return None
    best = max(v for v, _ in scored)
    return min(e for v, e in scored if v == best)


def _continuations(
    labels: Sequence[str],
    runs: Sequence[Path],
    configs: Sequence[Mapping[str, Any]],
    metrics: Sequence[Sequence[Mapping[str, Any]] | None],
) -> dict[str, str | tuple[str, float]]:
    """``{fine-tune label: parent label, or (parent label, start epoch)}`` for the runs whose ``model.pretrained``
    is a checkpoint of another run of the report with logged metrics (see :func:`loss_curves_figure`)."""
    out: dict[str, str | tuple[str, float]] = {}
    for i, cfg in enumerate(configs):
        model = cfg.get("model")
        pretrained = model.get("pretrained") if isinstance(model, Mapping) else None
        j = _checkpoint_owner(pretrained, runs, i)
        parent_metrics = metrics[j] if j is not None else None
        if j is None or not metrics[i] or not parent_metrics:
            continue
        start = _start_epoch(str(pretrained), parent_metrics)
        out[labels[i]] = labels[j] if start is None else (labels[j], start)
    return out


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    try:
        obj = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(obj).__name__}")
    return obj


def _unique_names(run_dirs: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(run_dirs):
            raise ValueError(f"got {len(names)} names for {len(run_dirs)} run directories")
        out = [str(n) for n in names]
    else:
        out = [p.resolve().name or str(p) for p in run_dirs]
    seen: dict[str, int] = {}
    unique = []
    for n in out:
        if n in seen:
            seen[n] += 1
            n = f"{n} ({seen[n]})"
        else:
            seen[n] = 1
        unique.append(n)
    return unique


def _safe_file_part(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:80] or "run"


def _robustness_html(result: Mapping[str, Any], source: str) -> str:
    names = list(result.get("corruptions", []))
    models = result.get("models", {})
    header = ["model", "clean"] + names + ["mPC", "rPC"]
    rows = []
    for k, r in models.items():
        cells = [_e(k), _e(accuracy_pair(r["clean"]))]
        cells += [_e(accuracy_pair(r["corruptions"][c]["mean"])) for c in names]
        cells += [_e(accuracy_pair(r["mPC"])), _e(accuracy_pair(r["rPC"], 3))]
        ci = r.get("ci95")  # absent in results written before the intervals existed
        if ci:
            cells += [
                _e(interval(ci["mPC_top1"], 1, missing=MISSING)),
                _e(interval(ci["rPC_top1"], 3, missing=MISSING)),
            ]
        rows.append(cells)
    if any(r.get("ci95") for r in models.values()):
        header += ["mPC top-1 95% CI", "rPC top-1 95% CI"]
    sev = ", ".join(str(s) for s in result.get("severities", []))
    suite = f" (suite {_e(result['suite'])})" if result.get("suite") else ""
    caption = (
        f"<p>From <code>{_e(source)}</code>{suite}: top-1/top-5 (%) on {_e(result.get('num_clips', '?'))} clips, "
        f"mean over severities {_e(sev)}; rPC = mPC / clean; intervals: bootstrap over clips.</p>"
    )
    if result.get("undecodable"):
        lost = sum(result["undecodable"].values())
        caption += f"<p>{lost} corrupted clips did not decode: {_e(result.get('undecodable_rule', ''))}.</p>"
    return caption + _table(header, rows)


def build_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    names: Sequence[str] | None = None,
    baseline: int = 0,
    long_term: Iterable[str] | None = None,
    cam_images: Sequence[str | Path] = (),
    compare_files: Sequence[str | Path] = (),
    title: str = "videotaf report",
) -> Path:
    """Write ``out_dir/index.html`` (and its PNGs) comparing ``run_dirs``; returns the HTML path.

    Args:
        run_dirs: engine run directories (``config.yaml``, ``metrics.jsonl``, ``eval.json`` - each optional).
        names: display names (default: the directory names).
        baseline: index of the run the class-wise change (Figure 4) and accuracy deltas compare against.
        long_term: class names highlighted in Figure 4 (default: each eval's ``subset.classes``).
        cam_images: extra CAM PNGs (e.g. from ``videotaf cam``) to show besides those found in the runs and in
            the ``figures/`` folder beside them (:func:`find_shared_cam_images`).
        compare_files: ``compare.json`` files of ``videotaf compare`` (or their directories), shown with their
            figure; a ``compare.json`` inside a given run directory is found by itself.

    Every accuracy difference is shown with a 95% CI: a paired bootstrap over the validation clips when both
    runs' ``eval.json`` hold per-clip predictions on the same clips (one seed each: training noise is not in
    it; ``videotaf compare`` measures that).
    """
    runs = [Path(p) for p in run_dirs]
    if not runs:
        raise ValueError("build_report: no run directories")
    for p in runs:
        if not p.is_dir():
            raise FileNotFoundError(f"run directory not found: {p}")
    if not 0 <= baseline < len(runs):
        raise ValueError(f"baseline index {baseline} out of range for {len(runs)} runs")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = _Runs(
        labels=_unique_names(runs, names),
        runs=runs,
        configs=[_read_config(p) for p in runs],
        metrics=[read_metrics(p) if (p / "metrics.jsonl").is_file() else None for p in runs],
        evals=[read_eval(p) if (p / "eval.json").is_file() else None for p in runs],
        baseline=baseline,
        out_dir=out_dir,
    )
    body = {
        "runs": _runs_section(report),
        "accuracy": _accuracy_section(report),
        "compare": _compare_section(report, compare_files),
        "loss-curves": _loss_section(report),
        "classwise": _classwise_section(report, list(long_term) if long_term is not None else None),
        "robustness": _robustness_section(report),
        "cams": _cams_section(report, cam_images),
    }
    path = out_dir / "index.html"
    path.write_text(_page(title, body), encoding="utf-8")
    (out_dir / "report.json").write_text(
        json.dumps({"runs": [str(p) for p in runs], "names": report.labels, "baseline": baseline}, indent=2) + "\n"
    )
    return path


@dataclass(frozen=True)
class _Runs:
    """What every section of the report reads: the runs, their names, files and the baseline's index."""

    labels: list[str]
    runs: list[Path]
    configs: list[dict[str, Any]]
    metrics: list[list[dict[str, Any]] | None]
    evals: list[dict[str, Any] | None]
    baseline: int
    out_dir: Path


_PAGE = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    "<title>{title}</title><style>{css}</style></head><body>"
    "<h1>{title}</h1><ul>{toc}</ul>{sections}</body></html>\n"
)


def _page(title: str, body: Mapping[str, str]) -> str:
    """The HTML page: the table of contents and one ``<section>`` per entry of :data:`SECTIONS`, in that order."""
    toc = "".join(f'<li><a href="#{sid}">{_e(stitle)}</a></li>' for sid, stitle in SECTIONS)
    sections = "".join(f'<section id="{sid}"><h2>{_e(stitle)}</h2>{body[sid]}</section>' for sid, stitle in SECTIONS)
    return _PAGE.format(title=_e(title), css=_CSS, toc=toc, sections=sections)


def _runs_section(r: _Runs) -> str:
    rows = []
    for label, p, cfg, m in zip(r.labels, r.runs, r.configs, r.metrics):
        model = cfg.get("model", {}) if isinstance(cfg.get("model"), dict) else {}
        adv = cfg.get("adversarial", {}) if isinstance(cfg.get("adversarial"), dict) else {}
        rows.append(
            [
                _e(label),
                f"<code>{_e(p)}</code>",
                _e(model.get("name", "-")),
                _e(adv.get("method", "-")),
                _e(len(m) if m is not None else "-"),
            ]
        )
    return _table(["run", "directory", "model", "method", "epochs logged"], rows)


def _accuracy_row(label: str, ev: Mapping[str, Any], base_eval: Mapping[str, Any] | None) -> list[str]:
    subset = ev.get("subset") if isinstance(ev.get("subset"), Mapping) else None
    d1 = (
        float(ev["top1"]) - float(base_eval["top1"])
        if base_eval is not None and ev.get("top1") is not None and base_eval.get("top1") is not None
        else None
    )
    return [
        _e(label),
        _fmt(ev.get("top1")),
        _delta(d1),
        _ci(_clip_ci(ev, base_eval)),
        _fmt(ev.get("top5")),
        _fmt(ev.get("loss"), 4),
        _e(ev.get("num_clips", "-")),
        _fmt(subset.get("top1")) if subset else "-",
    ]


def _accuracy_section(r: _Runs) -> str:
    if all(e is None for e in r.evals):
        return _note("No eval.json in any run directory.")
    base_eval = r.evals[r.baseline]
    rows = [
        _accuracy_row(label, ev, base_eval) if ev is not None else [_e(label)] + ["-"] * 7
        for label, ev in zip(r.labels, r.evals)
    ]
    return _table(
        ["run", "top-1 (%)", f"Δ top-1 vs {r.labels[r.baseline]}", "95% CI (clips)", "top-5 (%)", "loss", "clips",
         "subset top-1"],
        rows,
    ) + _note(
        "From each run's eval.json (1 clip, centre crop). CI: paired bootstrap over the validation clips (one "
        "seed per run, so training noise is not included; see videotaf compare)."
    )  # fmt: skip


def _compare_section(r: _Runs, compare_files: Sequence[str | Path]) -> str:
    found = [Path(f) / "compare.json" if Path(f).is_dir() else Path(f) for f in compare_files]
    found += [p / "compare.json" for p in r.runs if (p / "compare.json").is_file()]
    parts = []
    for i, f in enumerate(dict.fromkeys(found)):
        if not f.is_file():
            raise FileNotFoundError(f"compare.json not found: {f}")
        result = json.loads(f.read_text())
        fig = f.parent / "compare.png"
        img = ""
        if fig.is_file():
            shutil.copyfile(fig, r.out_dir / f"compare_{i}.png")
            img = f'<img src="compare_{i}.png" alt="paired differences against the control">'
        parts.append(f"<h3><code>{_e(f)}</code></h3>" + _markdown_html(format_markdown(result)) + img)
    if parts:
        return "".join(parts)
    return _note(
        "No compare.json given or found: run videotaf compare --checkpoint CKPT --methods plain taf --seeds 3 "
        "--out DIR and pass --compare DIR."
    )


def _loss_section(r: _Runs) -> str:
    with_metrics = {label: m for label, m in zip(r.labels, r.metrics) if m}
    if not with_metrics:
        return _note("No metrics.jsonl in any run directory.")
    continues = _continuations(r.labels, r.runs, r.configs, r.metrics)
    loss_curves_figure(with_metrics, r.out_dir / "loss_curves.png", continues=continues)
    note = "Solid: training loss; dashed: test (validation) loss (Figure 5)."
    if continues:
        note += (
            " Fine-tunes continue the epoch axis of the run their model.pretrained checkpoint comes from: "
            + "; ".join(
                f"{name} from {spec if isinstance(spec, str) else f'{spec[0]} (epoch {spec[1]:g}, best.pt)'}"
                for name, spec in continues.items()
            )
            + "."
        )
    return '<img src="loss_curves.png" alt="train and test loss per epoch">' + _note(note)


def _classwise_part(r: _Runs, i: int, ev: Mapping[str, Any], long_term: list[str] | None) -> str:
    """Figure 4 of run ``i`` against the baseline, and its mean change over all, long-term and other classes."""
    label, base_label, base_eval = r.labels[i], r.labels[r.baseline], r.evals[r.baseline]
    assert base_eval is not None  # _classwise_section checks it
    fname = f"classwise_{i}_{_safe_file_part(label)}.png"
    data = classwise_figure(base_eval, ev, r.out_dir / fname, long_term=long_term, title=f"{label} vs {base_label}")
    rows = [
        ["all", _delta(data["mean_delta"]), _ci(_classwise_ci(ev, base_eval, None))],
        [
            f"long-term ({sum(data['long_term'])})",
            _delta(data["mean_delta_long_term"]),
            _ci(_classwise_ci(ev, base_eval, data["long_term"])),
        ],
        [
            "other",
            _delta(data["mean_delta_other"]),
            _ci(_classwise_ci(ev, base_eval, [not m for m in data["long_term"]])),
        ],
    ]
    return (
        f"<h3>{_e(label)} vs {_e(base_label)}</h3>"
        f'<img src="{_href(fname)}" alt="class-wise top-1 change of {_e(label)}">'
        + _table(["classes", "mean Δ top-1 (points)", "95% CI (clips)"], rows)
    )


def _classwise_section(r: _Runs, long_term: list[str] | None) -> str:
    base_eval = r.evals[r.baseline]
    parts = []
    if base_eval is not None and isinstance(base_eval.get("per_class"), Mapping):
        for i, ev in enumerate(r.evals):
            if i == r.baseline or ev is None or not isinstance(ev.get("per_class"), Mapping):
                continue
            parts.append(_classwise_part(r, i, ev, long_term))
    if parts:
        return "".join(parts) + _note("Bars by class index; long-term classes in red (Figure 4).")
    return _note("Needs per-class accuracy (eval.json) for the baseline and at least one other run.")


def _robustness_section(r: _Runs) -> str:
    parts = []
    for label, p in zip(r.labels, r.runs):
        for f in find_robustness_files(p):
            parts.append(f"<h3>{_e(label)}</h3>" + _robustness_html(load_robustness(f), str(f.relative_to(p))))
    return "".join(parts) if parts else _note("No robustness*.json in any run directory.")


def _cam_sources(r: _Runs, cam_images: Sequence[str | Path]) -> list[tuple[str, Path]]:
    """``(caption label, PNG)`` of every CAM image: the runs', the shared ``figures/`` folder's, the given ones."""
    sources: list[tuple[str, Path]] = [(label, f) for label, p in zip(r.labels, r.runs) for f in find_cam_images(p)]
    sources += [(f.parent.parent.name + "/figures", f) for f in find_shared_cam_images(r.runs)]
    sources += [("extra", Path(f)) for f in cam_images]
    unique: dict[Path, tuple[str, Path]] = {}
    for label, f in sources:  # an image found twice (e.g. also given with --cam-image) is shown once
        unique.setdefault(f.resolve(), (label, f))
    return list(unique.values())


def _cams_section(r: _Runs, cam_images: Sequence[str | Path]) -> str:
    parts = []
    cam_dir = r.out_dir / "cams"
    for i, (label, f) in enumerate(_cam_sources(r, cam_images)):
        if not f.is_file():
            raise FileNotFoundError(f"CAM image not found: {f}")
        cam_dir.mkdir(parents=True, exist_ok=True)
        dest = cam_dir / f"{i:03d}_{_safe_file_part(label)}_{_safe_file_part(f.name)}"
        if dest.suffix.lower() != ".png":
            dest = dest.with_suffix(".png")
        shutil.copyfile(f, dest)
        rel = dest.relative_to(r.out_dir).as_posix()
        parts.append(
            f'<figure><img src="{_href(rel)}" alt="CAM example {_e(f.name)}">'
            f"<figcaption>{_e(label)}: <code>{_e(f.name)}</code></figcaption></figure>"
        )
    if parts:
        return "".join(parts)
    return _note(
        "No CAM images: none given (--cam-image, --cam-examples), and no cam*.png in a run directory or in the "
        "figures/ folder beside the runs."
    )
