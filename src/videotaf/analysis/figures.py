"""Figures of the paper, drawn on matplotlib ``Figure`` objects with the Agg canvas (no pyplot, no display,
no change to the global backend).

- :func:`cam_figure`: frames in a row with their Grad-CAM map blended over them (:func:`overlay_heatmap`: the
  frame stays readable) and the per-frame attention curve under them, the row's label (model, prediction) in a
  text column left of the frames; one row per model/input (Figures 1 and 6: baseline above TAF; Figure 3: the
  clip after TA and after CE-based PGD at the same budget). :func:`cam_rows` computes the rows with
  :func:`videotaf.cam.temporal_gradcam`.
- :func:`loss_curves_figure`: train and test loss per epoch for several runs (Figure 5); fine-tunes continue
  the epoch axis of the run they started from.
- :func:`classwise_figure`: per-class accuracy change between two evaluations, bars by class index, long-term
  classes in another colour (Figure 4).

Every function returns the data it drew, so tests (and reports) can check the picture against the numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from torch import nn

from videotaf.attack import (
    CrossEntropyAugmentation,
    TAOptions,
    TargetRule,
    TemporalAdversarialAugmentation,
)
from videotaf.cam import Score, temporal_gradcam
from videotaf.engine.logs import read_metrics

__all__ = [
    "CamRow",
    "CamFigure",
    "frame_to_cam_index",
    "cam_rows",
    "cam_figure",
    "overlay_heatmap",
    "read_metrics",
    "read_eval",
    "loss_curves_figure",
    "classwise_change",
    "classwise_figure",
]

LONG_TERM_COLOR = "tab:red"
OTHER_COLOR = "tab:blue"
CAM_CMAP = "inferno"


# ----------------------------------------------------------------------------------------- CAM figure
@dataclass
class CamRow:
    """One row of a CAM figure.

    ``clip``: ``(T, 3, H, W)`` in [0, 1]; ``cams``: ``(T', h, w)`` CAM maps (any scale, e.g. Eq. 3);
    ``frame_scores``: ``(T',)`` per-frame attention share (``CamResult.frame_scores``); ``label``: row title.
    """

    label: str
    clip: torch.Tensor
    cams: torch.Tensor
    frame_scores: torch.Tensor
    info: str = ""


@dataclass
class CamFigure:
    """What :func:`cam_figure` wrote: ``curves[r]`` is the ``(T,)`` attention curve drawn under row ``r`` (the
    frame share of the CAM slice each frame maps to), ``frame_to_cam[r]`` that mapping, ``size`` ``(width,
    height)`` in pixels, ``labels`` the rows' labels and ``figure`` the drawn matplotlib figure (its text and
    axes boxes let tests check the layout)."""

    path: Path
    curves: list[np.ndarray]
    frame_to_cam: list[np.ndarray]
    size: tuple[int, int]
    labels: list[str] = field(default_factory=list)
    figure: Figure | None = field(default=None, repr=False)


def frame_to_cam_index(num_frames: int, cam_frames: int) -> np.ndarray:
    """``(T,)`` index of the CAM slice covering each input frame's temporal centre: ``floor((t + 0.5) T' / T)``.

    The identity when ``T' = T``; for bLVNet-TAM (``T' = T / 2``) frames 0 and 1 map to slice 0, and so on.
    """
    if num_frames < 1 or cam_frames < 1:
        raise ValueError(f"frame counts must be >= 1, got T={num_frames}, T'={cam_frames}")
    t = np.arange(num_frames)
    return np.minimum(np.floor((t + 0.5) * cam_frames / num_frames).astype(int), cam_frames - 1)


def _row_heatmaps(row: CamRow, size: tuple[int, int]) -> np.ndarray:
    """``(T', H, W)`` heat maps in [0, 1]: the CAMs upsampled to the frame size, scaled jointly over the row so
    that frames stay comparable (as Eq. 3 normalises over all frames)."""
    cams = row.cams.detach().float().cpu()
    up = F.interpolate(cams[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    lo, hi = float(up.min()), float(up.max())
    if hi - lo > 1e-12:
        up = (up - lo) / (hi - lo)
    else:
        up = torch.zeros_like(up)
    return up.numpy()


def overlay_heatmap(
    frame: np.ndarray, heat: np.ndarray, *, alpha: float = 0.6, cmap: str = CAM_CMAP, knee: float = 0.5
) -> np.ndarray:
    """``(H, W, 3)`` frame in [0, 1] with the ``(H, W)`` heat map in [0, 1] blended over it.

    Each pixel mixes in the colour of its heat with opacity ``alpha * min(1, heat / knee)``: where the map is
    cold the frame is shown unchanged, and even at the peak ``1 - alpha`` of the frame's own contrast remains,
    so the frame stays readable under the map. The colours are the upper three quarters of a perceptually
    uniform colour map (inferno: purple to yellow; its black end would only darken the frame).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
    if not 0.0 < knee <= 1.0:
        raise ValueError(f"overlay knee must be in (0, 1], got {knee}")
    heat = np.clip(np.asarray(heat, dtype=np.float64), 0.0, 1.0)
    colour = matplotlib.colormaps[cmap](0.25 + 0.75 * heat)[..., :3]
    a = (alpha * np.minimum(1.0, heat / knee))[..., None]
    out: np.ndarray = (1.0 - a) * np.asarray(frame, dtype=np.float64) + a * colour
    return np.clip(out, 0.0, 1.0)


def _fit_lines(text: str, font: FontProperties, max_width: float, max_lines: int, renderer: RendererAgg) -> list[str]:
    """``text`` wrapped at spaces into at most ``max_lines`` lines no wider than ``max_width`` pixels, as
    measured by ``renderer``; a word wider than a line is cut, and what does not fit ends the last line with an
    ellipsis."""

    def width(s: str) -> float:
        return float(renderer.get_text_width_height_descent(s, font, ismath=False)[0])

    def cut(s: str, suffix: str = "") -> tuple[str, str]:
        """The longest prefix of ``s`` (one character at least) that fits with ``suffix``, and the rest."""
        lo, hi = 1, len(s)  # widths grow with the prefix: bisect for the longest that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if width(s[:mid].rstrip() + suffix) <= max_width:
                lo = mid
            else:
                hi = mid - 1
        return s[:lo].rstrip() + suffix, s[lo:].lstrip()

    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        rest = paragraph.split()
        while rest:
            word = rest[0]
            candidate = f"{current} {word}" if current else word
            if width(candidate) <= max_width:
                current = candidate
                rest.pop(0)
            elif current:
                lines.append(current)
                current = ""
            else:  # a single word wider than the line
                head, tail = cut(word)
                lines.append(head)
                rest[0] = tail
                if not tail:
                    rest.pop(0)
        lines.append(current)
    if len(lines) > max_lines:
        last = " ".join(lines[max_lines - 1 :])
        lines = lines[: max_lines - 1] + [cut(last, "\u2026")[0]]
    return lines


def _check_row(row: CamRow, index: int) -> None:
    if row.clip.dim() != 4 or row.clip.shape[1] != 3:
        raise ValueError(f"row {index} ({row.label!r}): clip must be (T, 3, H, W), got {tuple(row.clip.shape)}")
    if row.cams.dim() != 3:
        raise ValueError(f"row {index} ({row.label!r}): cams must be (T', h, w), got {tuple(row.cams.shape)}")
    if row.frame_scores.dim() != 1 or row.frame_scores.shape[0] != row.cams.shape[0]:
        raise ValueError(
            f"row {index} ({row.label!r}): frame_scores must be (T',) with T' = {row.cams.shape[0]}, "
            f"got {tuple(row.frame_scores.shape)}"
        )


def cam_figure(  # size: the figure's geometry as keyword options
    rows: Sequence[CamRow],
    out_path: str | Path,
    *,
    title: str | None = None,
    frame_px: int = 96,
    curve_px: int = 70,
    label_px: int = 180,
    dpi: int = 100,
    alpha: float = 0.6,
    cmap: str = CAM_CMAP,
) -> CamFigure:
    """Write a PNG with one block per row: the frames with the Grad-CAM map blended over them, the attention
    curve below, and the row's label (model, prediction) in a text column of ``label_px`` pixels left of them.

    Figures 1 and 6 (baseline row above the TAF row) and Figure 3 (rows for the clip after TA and after CE-based
    PGD). For ``T' < T`` each frame shows the CAM slice at its temporal position (:func:`frame_to_cam_index`).
    The map is blended with :func:`overlay_heatmap` (opacity ``alpha * heat``, ``cmap``), so the frame stays
    visible; labels are wrapped to the text column and ellipsised when too long, never drawn over the frames.
    All rows must have the same number of frames ``T``. Returns the curves drawn (see :class:`CamFigure`).
    """
    if not rows:
        raise ValueError("cam_figure: no rows")
    for i, row in enumerate(rows):
        _check_row(row, i)
    t = rows[0].clip.shape[0]
    if any(r.clip.shape[0] != t for r in rows):
        raise ValueError(
            f"cam_figure: every row needs the same number of frames, got {[r.clip.shape[0] for r in rows]}"
        )
    h, w = rows[0].clip.shape[-2:]
    frame_h = max(16, int(round(frame_px * h / w)))
    title_px = 30 if title else 0
    block_px = frame_h + curve_px + 24
    box = _CamLayout(t, frame_px, frame_h, curve_px, label_px, label_px + t * frame_px, title_px + len(rows) * block_px)
    fig = Figure(figsize=(box.width_px / dpi, box.height_px / dpi), dpi=dpi)
    renderer = FigureCanvasAgg(fig).get_renderer()
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 4 / box.height_px, va="top")
    curves, maps = [], []
    for r, row in enumerate(rows):
        clip = row.clip.detach().float().cpu().clamp(0, 1)
        scores = row.frame_scores.detach().double().cpu().numpy()
        index = frame_to_cam_index(t, row.cams.shape[0])
        heat = _row_heatmaps(row, (clip.shape[-2], clip.shape[-1]))
        top = title_px + r * block_px
        for i in range(t):
            ax = fig.add_axes(box.frame_rect(top, i))
            frame = clip[i].permute(1, 2, 0).numpy()
            ax.imshow(overlay_heatmap(frame, heat[index[i]], alpha=alpha, cmap=cmap), interpolation="bilinear")
            ax.set_axis_off()
        curve = scores[index]
        _draw_curve(fig.add_axes(box.curve_rect(top)), curve)
        _draw_label(fig, box, row, top, renderer, dpi)
        curves.append(curve)
        maps.append(index)
    _cam_key(fig, title_px + frame_h, curve_px, label_px, box.width_px, box.height_px, alpha, cmap)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=dpi, format="png")
    return CamFigure(out_path, curves, maps, (box.width_px, box.height_px), [r.label for r in rows], fig)


@dataclass(frozen=True)
class _CamLayout:
    """Pixel geometry of :func:`cam_figure`: ``t`` frames of ``frame_px`` x ``frame_h`` right of a ``label_px``
    text column, the attention curve ``curve_px`` high below them."""

    t: int
    frame_px: int
    frame_h: int
    curve_px: int
    label_px: int
    width_px: int
    height_px: int

    def frame_rect(self, top: float, i: int) -> tuple[float, float, float, float]:
        left = self.label_px + i * self.frame_px
        return (
            left / self.width_px,
            1 - (top + self.frame_h) / self.height_px,
            self.frame_px / self.width_px,
            self.frame_h / self.height_px,
        )

    def curve_rect(self, top: float) -> tuple[float, float, float, float]:
        return (
            self.label_px / self.width_px,
            1 - (top + self.frame_h + self.curve_px) / self.height_px,
            self.t * self.frame_px / self.width_px,
            (self.curve_px - 6) / self.height_px,
        )


def _draw_curve(cax: Any, curve: np.ndarray) -> None:
    """The per-frame attention share below a row's frames."""
    t = len(curve)
    cax.plot(np.arange(t), curve, marker="o", markersize=3, color="tab:orange", linewidth=1.5)
    cax.fill_between(np.arange(t), 0, curve, color="tab:orange", alpha=0.2)
    cax.set_xlim(-0.5, t - 0.5)
    peak = float(np.nanmax(curve)) if curve.size else 1.0
    cax.set_ylim(0, max(peak * 1.15, 1e-6))
    cax.set_xticks(np.arange(t))
    cax.tick_params(labelsize=6, length=2, pad=1)
    cax.set_ylabel("share", fontsize=6)


def _draw_label(fig: Figure, box: _CamLayout, row: CamRow, top: float, renderer: Any, dpi: int) -> None:
    """The label column: the row's name (bold), then its info (the prediction), each wrapped to the column and cut
    with an ellipsis when the frame height is used up; centred on the frames."""
    name_font = FontProperties(size=8, weight="bold")
    info_font = FontProperties(size=7)
    pad = 6  # pixels between the figure edge and the text, and between the text and the first frame
    text_w = max(box.label_px - 2 * pad, 1)
    name_h = name_font.get_size_in_points() * dpi / 72 * 1.25
    info_h = info_font.get_size_in_points() * dpi / 72 * 1.25
    name_lines = _fit_lines(row.label, name_font, text_w, max(1, min(2, int(box.frame_h // name_h))), renderer)
    room = int((box.frame_h - len(name_lines) * name_h) // info_h)
    info_lines = _fit_lines(row.info, info_font, text_w, room, renderer) if row.info and room > 0 else []
    lines = [(s, name_font, name_h) for s in name_lines] + [(s, info_font, info_h) for s in info_lines]
    y = top + (box.frame_h - sum(lh for _, _, lh in lines)) / 2
    for text, font, lh in lines:
        fig.text(pad / box.width_px, 1 - y / box.height_px, text, fontproperties=font, va="top", ha="left")
        y += lh


def _cam_key(
    fig: Figure, top: float, band: float, label_px: int, width_px: int, height_px: int, alpha: float, cmap: str
) -> None:
    """The key of the map's colours, blended as on the frames (over mid grey), in the label column beside the
    first row's attention curve (left of its tick labels); axes label ``"cam-key"``. Skipped when too narrow."""
    key_w = label_px - 2 * 6 - 44
    if key_w < 30 or band < 40:
        return
    y = top + band / 2
    ax = fig.add_axes((6 / width_px, 1 - (y + 4) / height_px, key_w / width_px, 8 / height_px), label="cam-key")
    ramp = np.linspace(0.0, 1.0, 128)[None, :].repeat(2, axis=0)
    ax.imshow(overlay_heatmap(np.full((*ramp.shape, 3), 0.5), ramp, alpha=alpha, cmap=cmap), aspect="auto")
    ax.set_xticks([])
    ax.set_yticks([])
    font: dict[str, Any] = {"fontsize": 6, "color": "0.3"}
    fig.text(6 / width_px, 1 - (y - 6) / height_px, "Grad-CAM, 0 to row max", va="bottom", ha="left", **font)
    fig.text(6 / width_px, 1 - (y + 6) / height_px, "0", va="top", ha="left", **font)
    fig.text((6 + key_w) / width_px, 1 - (y + 6) / height_px, "max", va="top", ha="right", **font)


def cam_rows(  # size: keyword options of the cam command and the report's CAM examples
    models: Mapping[str, nn.Module],
    clip: torch.Tensor,
    label: int | None = None,
    *,
    adversarial: bool = False,
    eps: float = 64 / 255,
    step_size: float = 32 / 255,
    steps: int = 1,
    target: str = "pred",
    score: Score = "log_prob",
    class_names: Sequence[str] | None = None,
    seed: int = 0,
    cam_layer: str | None = None,
    target_rule: TargetRule = "paper",
    cam_method: str = "gradcam",
) -> list[CamRow]:
    """CAM rows of ``clip`` ``(T, 3, H, W)`` for each model (Figures 1 and 6), and with ``adversarial`` the rows
    of the clip after TA (Eq. 6) and after CE-based PGD (Eq. 1) at the same budget, for each model (Figure 3).

    ``target``: the class explained, ``"pred"`` (each model's clean prediction, kept for its adversarial rows)
    or ``"label"`` (needs ``label``). Adversarial attacks need a label; without one the clean prediction is used.
    ``cam_layer``: dotted name of the module the CAMs and TA read (:func:`videotaf.cam.cam_layer_of`), the same
    for every model; None: each model's own ``cam_layer``. ``target_rule``: TA's target labels
    (:class:`~videotaf.attack.TAOptions`, Sec. 3.2's ``"paper"`` rule by default). ``cam_method``: the weighting
    of Eq. (2) for the maps and TA (:func:`videotaf.cam.cam_weighting`; ``"layercam"`` is an ablation).
    """
    if clip.dim() != 4 or clip.shape[1] != 3:
        raise ValueError(f"cam_rows: clip must be (T, 3, H, W), got {tuple(clip.shape)}")
    if target not in ("pred", "label"):
        raise ValueError(f"cam_rows: target must be 'pred' or 'label', got {target!r}")
    if target == "label" and label is None:
        raise ValueError("cam_rows: target='label' needs the clip's label")

    def describe(logits: torch.Tensor) -> str:
        prob = logits.softmax(dim=1)[0]
        k = int(prob.argmax())
        name = class_names[k] if class_names is not None and k < len(class_names) else str(k)
        # The probability first: a long class name may be ellipsised in the figure's label column.
        return f"pred {float(prob[k]):.2f}: {name}"

    rows: list[CamRow] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, model in models.items():
            was_training = model.training
            model.eval()
            try:
                param = next(model.parameters(), None)
                device = param.device if param is not None else torch.device("cpu")
                x = clip[None].to(device)
                tgt = torch.tensor([label], device=device) if target == "label" else None
                res = temporal_gradcam(model, x, targets=tgt, score=score, cam_layer=cam_layer, method=cam_method)
                rows.append(CamRow(name, clip, res.cams_norm[0].cpu(), res.frame_scores[0].cpu(), describe(res.logits)))
                if adversarial:
                    y = (
                        tgt
                        if tgt is not None
                        else (torch.tensor([label], device=device) if label is not None else res.targets)
                    )
                    attacks = {
                        "TA": TemporalAdversarialAugmentation(
                            model,
                            eps=eps,
                            step_size=step_size,
                            steps=steps,
                            options=TAOptions(cam_layer=cam_layer, target_rule=target_rule, cam_method=cam_method),
                        ),
                        "CE-PGD": CrossEntropyAugmentation(model, eps=eps, step_size=step_size, steps=steps),
                    }
                    for a_name, attack in attacks.items():
                        adv = attack(x, y.long()).detach()
                        r2 = temporal_gradcam(
                            model, adv, targets=res.targets, score=score, cam_layer=cam_layer, method=cam_method
                        )
                        rows.append(
                            CamRow(
                                f"{name} + {a_name} (eps {eps * 255:.0f}/255)",
                                adv[0].cpu(),
                                r2.cams_norm[0].cpu(),
                                r2.frame_scores[0].cpu(),
                                describe(r2.logits),
                            )
                        )
            finally:
                model.train(was_training)
    return rows


# ----------------------------------------------------------------------------------------- run files
def read_eval(path: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read ``RUN/eval.json`` (or the file itself, or pass a dict through); checks ``classes``/``per_class``."""
    if isinstance(path, Mapping):
        return dict(path)
    path = Path(path)
    if path.is_dir():
        path = path / "eval.json"
    if not path.is_file():
        raise FileNotFoundError(f"eval file not found: {path}")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object")
    obj.setdefault("_source", str(path))
    return obj


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f


def _last_epoch(epochs: Sequence[float]) -> float:
    finite = [e for e in epochs if math.isfinite(e)]
    return max(finite) if finite else 0.0


def _continues(
    runs: Mapping[str, Any], continues: Mapping[str, str | tuple[str, float]] | None
) -> dict[str, tuple[str, float | None]]:
    """``continues`` read as ``{fine-tune: (parent, the parent's epoch it started from, or None)}``; both runs
    must be in ``runs``."""
    parents: dict[str, tuple[str, float | None]] = {}
    for name, spec in (continues or {}).items():
        parent, at = (spec, None) if isinstance(spec, str) else (spec[0], float(spec[1]))
        if name not in runs or parent not in runs:
            raise ValueError(f"loss_curves_figure: continues {name!r} -> {parent!r} names a run not in runs")
        parents[name] = (parent, at)
    return parents


def _epoch_offsets(
    own_epochs: Mapping[str, Sequence[float]], parents: Mapping[str, tuple[str, float | None]]
) -> dict[str, float]:
    """Epochs added to each run's own: where its parent's curve is, plus the epoch it started from (default the
    parent's last logged one), so chains of fine-tunes add up."""
    offsets: dict[str, float] = {}

    def offset(name: str, seen: tuple[str, ...] = ()) -> float:
        if name in offsets:
            return offsets[name]
        if name in seen:
            raise ValueError(f"loss_curves_figure: runs continue each other in a cycle: {' -> '.join(seen)}")
        if name not in parents:
            offsets[name] = 0.0
        else:
            parent, at = parents[name]
            start = _last_epoch(own_epochs[parent]) if at is None else at
            offsets[name] = offset(parent, (*seen, name)) + start
        return offsets[name]

    for name in own_epochs:
        offset(name)
    return offsets


def _loss_curves(
    records: Mapping[str, Sequence[Mapping[str, Any]]],
    parents: Mapping[str, tuple[str, float | None]],
    train_key: str,
    test_key: str,
) -> dict[str, dict[str, Any]]:
    """What :func:`loss_curves_figure` draws and returns: each run's epochs (offset for fine-tunes), train and
    test losses (NaN where missing), and for a fine-tune its parent (``continues``) and ``offset``."""
    own_epochs = {name: [_num(r.get("epoch", j + 1)) for j, r in enumerate(recs)] for name, recs in records.items()}
    offsets = _epoch_offsets(own_epochs, parents)
    data: dict[str, dict[str, Any]] = {}
    for name, recs in records.items():
        data[name] = {
            "epoch": [e + offsets[name] for e in own_epochs[name]],
            "train": [_num(r.get(train_key)) for r in recs],
            "test": [_num(r.get(test_key)) for r in recs],
        }
        if name in parents:
            data[name].update(continues=parents[name][0], offset=offsets[name])
    return data


def _draw_loss_curves(ax: Any, data: Mapping[str, Mapping[str, Any]]) -> dict[float, list[str]]:
    """One colour per run, train solid and test dashed; a thin segment joins a fine-tune to its parent's point
    where it started. Returns ``{start epoch: [parents]}`` of the fine-tunes drawn."""
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    branches: dict[float, list[str]] = {}
    for i, (name, d) in enumerate(data.items()):
        color = colors[i % len(colors)]
        ax.plot(d["epoch"], d["train"], "-", marker="o", markersize=3, color=color, label=f"{name} train")
        ax.plot(d["epoch"], d["test"], "--", marker="s", markersize=3, color=color, label=f"{name} test")
        if "continues" in d and d["epoch"]:
            from_data = data[d["continues"]]
            start = d["offset"]
            branches.setdefault(start, []).append(d["continues"])
            # The parent's values at the epoch the fine-tune started from (NaN when it logged none there).
            there = [j for j, e in enumerate(from_data["epoch"]) if e == start]
            for key, style in (("train", "-"), ("test", "--")):
                y0 = from_data[key][there[-1]] if there else float("nan")
                ax.plot([start, d["epoch"][0]], [y0, d[key][0]], style, color=color, linewidth=1.0, alpha=0.7)
    return branches


def _mark_branches(ax: Any, branches: Mapping[float, Sequence[str]]) -> None:
    """A dotted line where fine-tunes branch off, labelled with their parents."""
    for start, names in branches.items():
        ax.axvline(start, color="0.5", linestyle=":", linewidth=0.8)
        ax.annotate(
            "fine-tuning from " + ", ".join(dict.fromkeys(names)),
            (start, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            fontsize=7,
            color="0.35",
            va="top",
            ha="left",
        )


def loss_curves_figure(
    runs: Mapping[str, str | Path | Sequence[Mapping[str, Any]]],
    out_path: str | Path,
    *,
    train_key: str = "train_loss",
    test_key: str = "val_loss",
    title: str | None = "Training and testing loss",
    continues: Mapping[str, str | tuple[str, float]] | None = None,
    dpi: int = 100,
) -> dict[str, dict[str, Any]]:
    """Figure 5: train (solid) and test (dashed) loss per epoch, one colour per run.

    ``runs``: ``{name: run dir, metrics.jsonl path, or list of records}``. Missing values are gaps.
    ``continues``: ``{name: parent}`` for fine-tunes of another run in ``runs`` (or ``{name: (parent, epoch)}``
    with the parent's epoch the fine-tune started from; default the parent's last logged epoch). As in the
    paper's Figure 5 a fine-tune continues its parent's epoch axis: its epochs are offset by that epoch (chains
    of fine-tunes add up), a thin segment joins it to the parent's point there, and a dotted line marks where it
    branches off. Returns ``{name: {"epoch": [...], "train": [...], "test": [...]}}`` as drawn, with
    ``"continues"`` (the parent) and ``"offset"`` (the epochs added) for fine-tunes.
    """
    if not runs:
        raise ValueError("loss_curves_figure: no runs")
    records = {name: list(src) if not isinstance(src, (str, Path)) else read_metrics(src) for name, src in runs.items()}
    data = _loss_curves(records, _continues(runs, continues), train_key, test_key)
    fig = Figure(figsize=(6.4, 4.0), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    _mark_branches(ax, _draw_loss_curves(ax, data))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=dpi, format="png")
    return data


def classwise_change(
    base: str | Path | Mapping[str, Any],
    new: str | Path | Mapping[str, Any],
    long_term: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Per-class top-1 change ``new - base`` (points) between two ``eval.json`` results, in class-index order.

    ``long_term``: class names to highlight (Figure 4's long-term motions); default the ``subset.classes`` of
    ``new`` (then ``base``) when the evaluation had a class subset. Classes without clips give ``None``.
    Returns ``{"classes", "delta", "long_term" (bools), "mean_delta", "mean_delta_long_term", "mean_delta_other"}``.
    """
    a, b = read_eval(base), read_eval(new)
    where_a, where_b = a.get("_source", "base"), b.get("_source", "new")
    for obj, where in ((a, where_a), (b, where_b)):
        if not isinstance(obj.get("per_class"), Mapping):
            raise ValueError(f"{where}: eval result has no 'per_class' mapping")
    classes = list(a.get("classes") or a["per_class"].keys())
    classes_b = list(b.get("classes") or b["per_class"].keys())
    if classes != classes_b:
        raise ValueError(f"{where_a} and {where_b} have different class lists ({len(classes)} vs {len(classes_b)})")
    if long_term is None:
        for obj in (b, a):
            subset = obj.get("subset")
            if isinstance(subset, Mapping) and subset.get("classes"):
                long_term = subset["classes"]
                break
    lt = set(long_term or ())
    unknown = sorted(lt - set(classes))
    if unknown:
        raise ValueError(f"long-term classes not in the evaluation's class list: {unknown[:5]}")
    delta: list[float | None] = []
    for c in classes:
        va, vb = a["per_class"].get(c), b["per_class"].get(c)
        delta.append(None if va is None or vb is None else float(vb) - float(va))
    mask = [c in lt for c in classes]

    def mean_of(sel: Iterable[bool]) -> float | None:
        vals = [d for d, s in zip(delta, sel) if s and d is not None]
        return sum(vals) / len(vals) if vals else None

    return {
        "classes": classes,
        "delta": delta,
        "long_term": mask,
        "mean_delta": mean_of([True] * len(classes)),
        "mean_delta_long_term": mean_of(mask),
        "mean_delta_other": mean_of([not m for m in mask]),
    }


def classwise_figure(
    base: str | Path | Mapping[str, Any],
    new: str | Path | Mapping[str, Any],
    out_path: str | Path,
    *,
    long_term: Iterable[str] | None = None,
    title: str | None = "Class-wise top-1 change",
    dpi: int = 100,
) -> dict[str, Any]:
    """Figure 4: bars of the per-class top-1 change by class index, long-term classes in red.

    Returns the :func:`classwise_change` data drawn.
    """
    data = classwise_change(base, new, long_term)
    n = len(data["classes"])
    fig = Figure(figsize=(max(6.4, min(24.0, 0.09 * n + 2)), 3.6), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(n)
    y = np.array([math.nan if d is None else d for d in data["delta"]], dtype=float)
    colors = [LONG_TERM_COLOR if m else OTHER_COLOR for m in data["long_term"]]
    ax.bar(x, np.nan_to_num(y), color=colors, width=0.8)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("class index")
    ax.set_ylabel("top-1 change (points)")
    ax.set_xlim(-1, n)
    if title:
        ax.set_title(title)

    handles = [Patch(color=OTHER_COLOR, label="other classes")]
    if any(data["long_term"]):
        handles.insert(0, Patch(color=LONG_TERM_COLOR, label="long-term classes"))
    ax.legend(handles=handles, fontsize=7)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=dpi, format="png")
    data["colors"] = colors
    return data
