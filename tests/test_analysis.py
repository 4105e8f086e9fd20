"""Analysis layer: robustness metrics (mPC / rPC) on fake models, attention metrics on hand-made CAMs, figures
(CAM figure curves, loss curves, class-wise change), the HTML report and the CLI wiring."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from videotaf.analysis.attention import (
    analyze_attention,
    attention_metrics,
    attention_shift,
    normalized_entropy,
    peak_share,
    weakest_share,
)
from videotaf.analysis.figures import (
    CamRow,
    cam_figure,
    cam_rows,
    classwise_change,
    classwise_figure,
    frame_to_cam_index,
    loss_curves_figure,
    read_metrics,
)
from videotaf.analysis.report import SECTIONS, build_report
from videotaf.analysis.robustness import (
    evaluate_robustness,
    load_robustness,
    robustness_markdown,
    write_robustness,
)
from videotaf.models.base import VideoClassifier


# ----------------------------------------------------------------------------------------- tiny models
class TinyNet(VideoClassifier):
    """A 2-D conv per frame with a temporal mix; CAM layer output ``(B*T, C, h, w)``."""

    def __init__(self, num_classes: int = 3, num_frames: int = 4, width: int = 4, seed: int = 0) -> None:
        super().__init__(num_classes, num_frames)
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU())
        self.fc = nn.Linear(width, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.features

    @property
    def classifier(self) -> nn.Module:
        return self.fc

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.check_input(clips)
        b, t = clips.shape[:2]
        x = self.features(clips.flatten(0, 1) - 0.5)
        x5 = x.view(b, t, *x.shape[1:])
        x = x5 + 0.5 * x5.roll(1, dims=1)
        return self.fc(x.mean(dim=(3, 4))).mean(dim=1)


class BinModel(nn.Module):
    """Predicts the bin of one frame's mean intensity: logits_k = -|10 * mean - (k + 0.5)|, 10 classes."""

    def __init__(self, frame: int) -> None:
        super().__init__()
        self.frame = frame
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        m = clips[:, self.frame].mean(dim=(1, 2, 3)) * 10
        return -(m[:, None] - (torch.arange(10, dtype=clips.dtype) + 0.5)).abs()


def grey_clip(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(len(values), 1, 1, 1).expand(len(values), 3, 4, 4)


# Frame 0 / frame 1 grey levels and labels. First-frame model: A, B, C right (bins 0, 3, 5), D wrong (bin 7 vs
# label 2, not in its top-5 {7, 6, 8, 5, 9}). Reversed clips show frame 1 first: only B stays right (top-1 and
# top-5). frame_rate (T = 2) keeps frame 0 first; contrast leaves constant frames unchanged.
CLIPS = torch.stack(
    [grey_clip([0.05, 0.95]), grey_clip([0.35, 0.35]), grey_clip([0.55, 0.12]), grey_clip([0.72, 0.72])]
)
LABELS = torch.tensor([0, 3, 5, 2])


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(CLIPS[:2], LABELS[:2]), (CLIPS[2:], LABELS[2:])]


# ----------------------------------------------------------------------------------------- robustness
def test_robustness_mpc_rpc_hand_computed(tmp_path: Path) -> None:
    models = {"first": BinModel(0), "last": BinModel(1)}
    res = evaluate_robustness(models, batches(), ["reversed", "frame_rate", "contrast"], [1, 3], seed=0)
    first, last = res["models"]["first"], res["models"]["last"]
    assert res["num_clips"] == 4
    assert first["clean"] == {"top1": 75.0, "top5": 75.0}
    assert first["corruptions"]["reversed"]["severities"]["1"] == {"top1": 25.0, "top5": 25.0}
    assert first["corruptions"]["frame_rate"]["mean"] == {"top1": 75.0, "top5": 75.0}
    assert first["mPC"]["top1"] == pytest.approx((25 + 75 + 75) / 3)
    assert first["rPC"]["top1"] == pytest.approx((25 + 75 + 75) / 3 / 75)
    # The last-frame model: clean A wrong (bin 9), B right, C wrong (bin 1), D wrong -> 25 %. Reversed and
    # frame_rate (frames [f0, f0]) show it frame 0: 75 %.
    assert last["clean"]["top1"] == 25.0
    assert last["corruptions"]["reversed"]["mean"]["top1"] == 75.0
    assert last["corruptions"]["frame_rate"]["mean"]["top1"] == 75.0
    assert last["mPC"]["top5"] == pytest.approx((75 + 75 + 25) / 3)
    assert last["rPC"]["top5"] == pytest.approx((75 + 75 + 25) / 3 / 25)
    assert first["families"]["temporal"]["top1"] == pytest.approx(50.0)
    js, md = write_robustness(res, tmp_path)
    assert load_robustness(js)["models"]["first"]["mPC"] == first["mPC"]
    text = md.read_text()
    assert "| first | 75.0/75.0 | 25.0/25.0 | 75.0/75.0 | 75.0/75.0 | 58.3/58.3 | 0.778/0.778 |" in text
    assert "### last" in text and text == robustness_markdown(res)


def test_robustness_patterns_do_not_depend_on_the_other_corruptions() -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 2, 3, 8, 8)
    y = torch.randint(0, 3, (6,))
    model = TinyNet(3, 2, seed=3).eval()
    data = [(x[:3], y[:3]), (x[3:], y[3:])]
    alone = evaluate_robustness(model, data, ["gaussian_noise"], [5], seed=4)
    mixed = evaluate_robustness(model, data, ["impulse_noise", "gaussian_noise"], [2, 5], seed=4)
    assert (
        alone["models"]["model"]["corruptions"]["gaussian_noise"]["severities"]["5"]
        == mixed["models"]["model"]["corruptions"]["gaussian_noise"]["severities"]["5"]
    )
    assert model.training is False
    with pytest.raises(ValueError, match="unknown corruption"):
        evaluate_robustness(model, data, ["fros"], [1])
    with pytest.raises(ValueError, match="severities"):
        evaluate_robustness(model, data, ["snow"], [0])


# ----------------------------------------------------------------------------------------- attention metrics
def test_attention_metrics_on_hand_made_distributions() -> None:
    uniform = torch.full((1, 4), 0.25)
    onehot = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    twohot = torch.tensor([[0.5, 0.0, 0.5, 0.0]])
    ramp = torch.tensor([[0.1, 0.4, 0.2, 0.3]])
    assert float(normalized_entropy(uniform)) == pytest.approx(1.0)
    assert float(normalized_entropy(onehot)) == pytest.approx(0.0)
    assert float(normalized_entropy(twohot)) == pytest.approx(math.log(2) / math.log(4))
    assert float(normalized_entropy(torch.ones(1, 1))) == 1.0
    assert float(weakest_share(ramp, 2)) == pytest.approx(0.3)
    assert float(weakest_share(uniform)) == pytest.approx(0.5)  # default n = T' // 2
    assert float(peak_share(ramp)) == pytest.approx(0.4)
    m = attention_metrics(torch.cat([uniform, onehot]), 1)
    assert m["weakest_share"].tolist() == pytest.approx([0.25, 0.0])
    s = attention_shift(uniform, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), 2)
    assert float(s["l1"]) == pytest.approx(1.5)
    assert float(s["tv"]) == pytest.approx(0.75)
    assert float(s["entropy_change"]) == pytest.approx(-1.0)
    assert float(s["nonkey_gain"]) == pytest.approx(0.5)  # weakest of a tie: frames 0, 1 (stable)
    zero = attention_shift(ramp, ramp)
    assert float(zero["l1"]) == 0 and float(zero["entropy_change"]) == 0
    with pytest.raises(ValueError, match="non-negative"):
        normalized_entropy(torch.tensor([[-0.1, 1.1]]))
    with pytest.raises(ValueError, match="same shape"):
        attention_shift(uniform, torch.ones(1, 3) / 3)


def test_analyze_attention_matches_direct_metrics() -> None:
    from videotaf.cam import temporal_gradcam

    torch.manual_seed(1)
    x = torch.rand(4, 4, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 0])
    model = TinyNet(3, 4).eval()
    data = [(x[:2], y[:2]), (x[2:], y[2:])]
    res = analyze_attention(model, data, attacks={"identity": lambda c, lab: c.clone()}, num_weakest=2)
    p = temporal_gradcam(model, x).frame_scores.double()
    direct = attention_metrics(p, 2)
    assert res["num_clips"] == 4 and res["cam_frames"] == 4
    assert res["clean"]["entropy"]["mean"] == pytest.approx(float(direct["entropy"].mean()), abs=1e-9)
    assert res["clean"]["weakest_share"]["mean"] == pytest.approx(float(direct["weakest_share"].mean()), abs=1e-9)
    assert res["clean"]["mean_profile"] == pytest.approx(p.mean(0).tolist(), abs=1e-9)
    assert res["attacks"]["identity"]["shift"]["l1"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert res["attacks"]["identity"]["top1"] == res["clean"]["top1"]
    json.dumps(res)


def test_analyze_attention_default_attacks_move_attention() -> None:
    torch.manual_seed(2)
    x = torch.rand(2, 4, 3, 16, 16)
    model = TinyNet(3, 4, seed=5).eval()
    res = analyze_attention(model, [(x, torch.tensor([0, 1]))], eps=16 / 255, step_size=16 / 255)
    assert set(res["attacks"]) == {"ta", "ce"}
    for a in ("ta", "ce"):
        shift = res["attacks"][a]["shift"]
        assert 0 <= shift["tv"]["mean"] <= 1
        assert shift["l1"]["mean"] == pytest.approx(2 * shift["tv"]["mean"])
    assert res["attacks"]["ta"]["shift"]["l1"]["mean"] > 0


# ----------------------------------------------------------------------------------------- figures
def test_frame_to_cam_index() -> None:
    assert frame_to_cam_index(4, 4).tolist() == [0, 1, 2, 3]
    assert frame_to_cam_index(8, 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert frame_to_cam_index(3, 1).tolist() == [0, 0, 0]


def test_cam_figure_png_and_curves(tmp_path: Path) -> None:
    clip = torch.rand(4, 3, 24, 32)
    scores = torch.tensor([0.1, 0.9])
    row_half = CamRow("T' = T/2", clip, torch.rand(2, 3, 4), scores)
    row_full = CamRow("T' = T", clip, torch.rand(4, 3, 4), torch.tensor([0.4, 0.3, 0.2, 0.1]))
    fig = cam_figure([row_half, row_full], tmp_path / "sub" / "cam.png", title="a <title> & more")
    with Image.open(fig.path) as img:
        assert img.format == "PNG"
        assert img.size == fig.size
    assert fig.size[0] > 4 * 60 and fig.size[1] > 2 * 60
    np.testing.assert_allclose(fig.curves[0], [0.1, 0.1, 0.9, 0.9])
    np.testing.assert_allclose(fig.curves[1], [0.4, 0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="frame_scores"):
        cam_figure([CamRow("bad", clip, torch.rand(2, 3, 4), torch.rand(3))], tmp_path / "x.png")


def test_cam_rows_curves_equal_gradcam_frame_scores(tmp_path: Path) -> None:
    from videotaf.cam import temporal_gradcam

    torch.manual_seed(3)
    clip = torch.rand(4, 3, 16, 16)
    models = {"baseline": TinyNet(3, 4, seed=1).eval(), "taf": TinyNet(3, 4, seed=2).eval()}
    rows = cam_rows(models, clip, label=1, adversarial=True, eps=8 / 255, step_size=8 / 255)
    assert [r.label.split(" ")[0] for r in rows] == ["baseline"] * 3 + ["taf"] * 3
    assert "TA" in rows[1].label and "CE-PGD" in rows[2].label
    assert float((rows[1].clip - clip).abs().max()) <= 8 / 255 + 1e-6
    fig = cam_figure(rows, tmp_path / "cam.png")
    with Image.open(fig.path) as img:
        assert img.size == fig.size
    direct = temporal_gradcam(models["taf"], clip[None]).frame_scores[0]
    np.testing.assert_allclose(fig.curves[3], direct.numpy(), atol=1e-6)
    assert all(abs(c.sum() - 1) < 1e-5 for c in fig.curves)


LONG_CLASS = "Pretending to pick something up from a table but actually putting it down somewhere else " * 2


def test_cam_figure_labels_stay_in_their_column(tmp_path: Path) -> None:
    """Long model and class names are wrapped/ellipsised in the label column: no text box (as the renderer
    measures it) overlaps a frame, and every text lies inside the figure."""
    clip = torch.rand(4, 3, 24, 32)
    rows = [
        CamRow("baseline", clip, torch.rand(4, 3, 4), torch.full((4,), 0.25), f"pred 0.54: {LONG_CLASS}"),
        CamRow("a-model-name-without-any-space-" * 4, clip, torch.rand(2, 3, 4), torch.tensor([0.5, 0.5]), "x"),
        CamRow("TAF", clip, torch.rand(4, 3, 4), torch.full((4,), 0.25), "pred 0.45: Waving"),
    ]
    fig = cam_figure(rows, tmp_path / "cam.png", title="a clip")
    assert fig.figure is not None
    renderer = fig.figure.canvas.get_renderer()
    frames = [ax.get_window_extent(renderer) for ax in fig.figure.axes if ax.images and ax.get_label() != "cam-key"]
    assert len(frames) == 3 * 4
    texts = [t for t in fig.figure.texts if t.get_text().strip()]
    assert len(texts) >= 1 + 3  # the title and the rows' labels
    width, height = fig.size
    for t in texts:
        box = t.get_window_extent(renderer)
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, (t.get_text(), box)
        for frame in frames:
            overlap_w = min(box.x1, frame.x1) - max(box.x0, frame.x0)
            overlap_h = min(box.y1, frame.y1) - max(box.y0, frame.y0)
            assert overlap_w <= 0.5 or overlap_h <= 0.5, (t.get_text(), box, frame)
    drawn = [t.get_text() for t in texts]
    assert any(line.endswith("\u2026") for line in drawn)  # the long class name is ellipsised ...
    assert any(line.startswith("pred 0.54:") for line in drawn)  # ... after its probability
    assert "baseline" in drawn and "TAF" in drawn


def test_cam_overlay_leaves_the_frame_visible(tmp_path: Path) -> None:
    """The saved PNG, frame by frame: where the map is cold the frame is unchanged; where it is hot the frame's
    own contrast survives (a checkerboard stays a checkerboard) and the map's colour shows."""

    blocks = 4
    size = 32
    checker = ((np.add.outer(np.arange(size) // 8, np.arange(size) // 8) % 2) * 0.6 + 0.2).astype(np.float32)
    clip = torch.from_numpy(checker).expand(2, 3, size, size).clone()
    cams = torch.zeros(2, size, size)
    cams[:, :, : size // 2] = 1.0  # hot left half, cold right half, at the frame's resolution
    fig = cam_figure([CamRow("m", clip, cams, torch.tensor([0.5, 0.5]), "pred")], tmp_path / "cam.png")
    assert fig.figure is not None
    renderer = fig.figure.canvas.get_renderer()
    png = np.asarray(Image.open(fig.path).convert("RGB"), dtype=np.float64) / 255.0
    height = png.shape[0]
    for ax in [ax for ax in fig.figure.axes if ax.images and ax.get_label() != "cam-key"]:
        box = ax.get_window_extent(renderer)
        crop = png[int(round(height - box.y1)) : int(round(height - box.y0)), int(round(box.x0)) : int(round(box.x1))]
        cell_h, cell_w = crop.shape[0] / blocks, crop.shape[1] / blocks
        # The mean colour of the central half of each 8x8 block (away from resampled edges).
        means = np.array(
            [
                [
                    crop[
                        int((i + 0.25) * cell_h) : int((i + 0.75) * cell_h),
                        int((j + 0.25) * cell_w) : int((j + 0.75) * cell_w),
                    ].mean(axis=(0, 1))
                    for j in range(blocks)
                ]
                for i in range(blocks)
            ]
        )
        raw = checker[::8, ::8][..., None].repeat(3, axis=2)
        cold, hot = np.s_[:, blocks // 2 :], np.s_[:, : blocks // 2]
        assert np.abs(means[cold] - raw[cold]).max() < 0.03  # the frame itself, untouched
        bright = raw[hot][..., 0] > 0.5
        luma = means[hot].mean(axis=-1)
        raw_contrast = raw[hot][..., 0][bright].mean() - raw[hot][..., 0][~bright].mean()
        contrast = luma[bright].mean() - luma[~bright].mean()
        assert contrast >= 0.3 * raw_contrast  # the checkerboard still reads under the hottest map
        assert np.abs(means[hot] - raw[hot]).mean() > 0.1  # and the map is there


def test_overlay_heatmap_blends_by_heat() -> None:
    from videotaf.analysis.figures import overlay_heatmap

    frame = np.random.default_rng(0).random((5, 6, 3))
    heat = np.zeros((5, 6))
    heat[0, 0], heat[1, 1] = 1.0, 0.25
    out = overlay_heatmap(frame, heat, alpha=0.6)
    mask = heat == 0
    np.testing.assert_allclose(out[mask], frame[mask])
    # At the peak 40 % of the frame is kept: (out - 0.6 colour) / 0.4 gives the frame back.
    import matplotlib

    colour = np.array(matplotlib.colormaps["inferno"](1.0)[:3])
    np.testing.assert_allclose((out[0, 0] - 0.6 * colour) / 0.4, frame[0, 0], atol=1e-9)
    assert np.abs(out[1, 1] - frame[1, 1]).max() > 0
    with pytest.raises(ValueError, match="alpha"):
        overlay_heatmap(frame, heat, alpha=1.5)


def write_run(path: Path, *, losses: list[tuple[float, float]], per_class: dict, top1: float, subset=None) -> Path:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "tsm"}, "adversarial": {"method": "taf"}}))
    with (path / "metrics.jsonl").open("w") as f:
        for e, (tr, va) in enumerate(losses, 1):
            f.write(json.dumps({"epoch": e, "lr": 0.01, "train_loss": tr, "val_loss": va, "val_top1": 10.0}) + "\n")
    (path / "eval.json").write_text(
        json.dumps(
            {
                "top1": top1,
                "top5": top1 + 20,
                "loss": 1.5,
                "per_class": per_class,
                "classes": list(per_class),
                "num_clips": 40,
                "subset": subset,
            }
        )
    )
    return path


CLASSES = ["Lifting [something] up", "Pushing <b>", "Dropping & catching", "Waving"]


def test_loss_curves_and_classwise(tmp_path: Path) -> None:
    a = write_run(
        tmp_path / "a", losses=[(2.0, 2.5), (1.5, 2.4)], per_class=dict(zip(CLASSES, [50, 20, 40, None])), top1=40.0
    )
    b = write_run(
        tmp_path / "b",
        losses=[(2.1, 2.3), (1.7, 2.2)],
        per_class=dict(zip(CLASSES, [60, 15, 55, 10])),
        top1=45.0,
        subset={"top1": 50.0, "classes": [CLASSES[2]], "num_clips": 10},
    )
    data = loss_curves_figure({"base": a, "taf": read_metrics(b)}, tmp_path / "loss.png")
    assert data["base"] == {"epoch": [1.0, 2.0], "train": [2.0, 1.5], "test": [2.5, 2.4]}
    assert data["taf"]["test"] == [2.3, 2.2]
    assert Image.open(tmp_path / "loss.png").format == "PNG"
    cw = classwise_figure(a, b, tmp_path / "cw.png")
    assert cw["delta"] == [10.0, -5.0, 15.0, None]
    assert cw["long_term"] == [False, False, True, False]  # from b's eval subset
    assert cw["colors"][2] != cw["colors"][0]
    assert cw["mean_delta_long_term"] == 15.0 and cw["mean_delta_other"] == pytest.approx(2.5)
    explicit = classwise_change(a, b, long_term=[CLASSES[0], CLASSES[1]])
    assert explicit["long_term"] == [True, True, False, False]
    with pytest.raises(ValueError, match="not in the evaluation"):
        classwise_change(a, b, long_term=["nope"])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2"):
        read_metrics(tmp_path / "bad")


def write_metrics(path: Path, losses: list[tuple[float, float]], val_top1: list[float] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    with (path / "metrics.jsonl").open("w") as f:
        for e, (tr, va) in enumerate(losses, 1):
            top1 = val_top1[e - 1] if val_top1 else 10.0
            f.write(json.dumps({"epoch": e, "train_loss": tr, "val_loss": va, "val_top1": top1}) + "\n")
    return path


def test_loss_curves_fine_tunes_continue_the_baseline_axis(tmp_path: Path) -> None:
    base = write_metrics(tmp_path / "base", [(2.0, 2.5), (1.8, 2.4), (1.6, 2.3)])
    ft = write_metrics(tmp_path / "ft", [(1.5, 2.2), (1.4, 2.1)])
    ft2 = write_metrics(tmp_path / "ft2", [(1.3, 2.0)])
    data = loss_curves_figure(
        {"base": base, "ft": ft, "ft2": ft2, "alone": ft},
        tmp_path / "loss.png",
        continues={"ft": "base", "ft2": ("ft", 1)},
    )
    assert data["base"] == {"epoch": [1.0, 2.0, 3.0], "train": [2.0, 1.8, 1.6], "test": [2.5, 2.4, 2.3]}
    assert data["ft"]["epoch"] == [4.0, 5.0] and data["ft"]["offset"] == 3.0 and data["ft"]["continues"] == "base"
    assert data["ft"]["train"] == [1.5, 1.4]
    # A fine-tune of the fine-tune's epoch 1 (its epoch 4 on the common axis) starts at 5.
    assert data["ft2"]["epoch"] == [5.0] and data["ft2"]["offset"] == 4.0
    assert data["alone"]["epoch"] == [1.0, 2.0] and "offset" not in data["alone"]
    with pytest.raises(ValueError, match="cycle"):
        loss_curves_figure({"a": base, "b": ft}, tmp_path / "x.png", continues={"a": "b", "b": "a"})
    with pytest.raises(ValueError, match="not in runs"):
        loss_curves_figure({"a": base}, tmp_path / "x.png", continues={"a": "nope"})


def test_report_loss_curves_follow_model_pretrained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report reads each run's model.pretrained: a checkpoint of another run of the report (absolute, or
    relative to where it was started) makes the fine-tune continue that run's epochs; best.pt starts it at the
    baseline's best epoch; a checkpoint from elsewhere changes nothing."""
    import videotaf.analysis.report as report

    out = tmp_path / "demo"
    base = write_metrics(out / "baseline", [(2.0, 2.5), (1.8, 2.4), (1.6, 2.3), (1.5, 2.35)], [10, 30, 30, 20])
    runs = {"baseline": base}
    pretrained = {
        "plain": str(base / "checkpoints" / "last.pt"),  # absolute
        "taf": "demo/baseline/checkpoints/last.pt",  # relative to tmp_path, where "it was run"
        "best": "baseline/checkpoints/best.pt",  # relative to demo/, not to the current directory
        "other": str(tmp_path / "other" / "checkpoints" / "last.pt"),  # not a run of the report
    }
    for name, ckpt in pretrained.items():
        runs[name] = write_metrics(out / name, [(1.4, 2.2), (1.3, 2.1)])
        (runs[name] / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "tsm", "pretrained": ckpt}}))
    drawn: dict = {}
    original = report.loss_curves_figure

    def spy(*args, **kwargs):
        drawn.update(original(*args, **kwargs))
        return drawn

    monkeypatch.setattr(report, "loss_curves_figure", spy)
    monkeypatch.chdir(tmp_path)
    page = build_report(list(runs.values()), tmp_path / "report").read_text()
    assert drawn["baseline"]["epoch"] == [1.0, 2.0, 3.0, 4.0]
    assert drawn["plain"]["epoch"] == [5.0, 6.0] and drawn["plain"]["continues"] == "baseline"
    assert drawn["taf"]["epoch"] == [5.0, 6.0]
    assert drawn["best"]["epoch"] == [3.0, 4.0]  # best.pt: the first epoch with the highest val_top1 (2)
    assert drawn["other"]["epoch"] == [1.0, 2.0] and "continues" not in drawn["other"]
    assert "taf from baseline" in page and "best from baseline (epoch 2, best.pt)" in page


def test_report_shows_the_demo_cam_figures(tmp_path: Path) -> None:
    """videotaf demo writes OUT/figures/cam_val*.png beside its runs; the report of those runs shows them."""
    out = tmp_path / "demo"
    runs = [write_metrics(out / name, [(1.0, 1.0)]) for name in ("baseline", "plain", "taf")]
    (out / "figures").mkdir()
    for i in (0, 3):
        Image.new("RGB", (30, 10), "blue").save(out / "figures" / f"cam_val{i:03d}.png")
    Image.new("RGB", (30, 10), "blue").save(out / "figures" / "not_a_cam.png")
    Image.new("RGB", (30, 10), "red").save(runs[2] / "cam_own.png")
    page = build_report(runs, tmp_path / "report", cam_images=[out / "figures" / "cam_val003.png"])
    parser = _Collector()
    parser.feed(page.read_text())
    cams = [src for src in parser.imgs if src.startswith("cams/")]
    assert len(cams) == 3  # the run's own, the two beside the runs (the one also given is shown once)
    assert all((page.parent / src).is_file() for src in cams)
    text = "".join(parser.text)
    assert "demo/figures: cam_val000.png" in text and "demo/figures: cam_val003.png" in text
    assert "not_a_cam" not in text and "taf: cam_own.png" in text


# ----------------------------------------------------------------------------------------- report
class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.ids: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"])
        if "id" in a:
            self.ids.append(a["id"])

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_has_every_section_and_no_broken_images(tmp_path: Path) -> None:
    from urllib.parse import unquote

    a = write_run(
        tmp_path / "runs" / "base",
        losses=[(2.0, 2.5), (1.5, 2.4)],
        per_class=dict(zip(CLASSES, [50, 20, 40, None])),
        top1=40.0,
    )
    b = write_run(
        tmp_path / "runs" / "taf run",
        losses=[(2.1, 2.3)],
        per_class=dict(zip(CLASSES, [60, 15, 55, 10])),
        top1=45.0,
        subset={"top1": 50.0, "classes": [CLASSES[2]], "num_clips": 10},
    )
    rob = evaluate_robustness({"base": BinModel(0), "taf": BinModel(1)}, batches(), ["reversed", "contrast"], [1])
    write_robustness(rob, b / "robustness")
    Image.new("RGB", (20, 10), "red").save(a / "cam_example.png")
    out = build_report([a, b], tmp_path / "report", names=["base <script>", "taf & co"])
    html_text = out.read_text()
    parser = _Collector()
    parser.feed(html_text)
    assert [sid for sid, _ in SECTIONS] == [i for i in parser.ids if i in dict(SECTIONS)]
    assert len(parser.imgs) >= 3  # loss curves, class-wise, CAM
    for src in parser.imgs:
        assert not src.startswith(("/", "http")), src
        assert (out.parent / unquote(src)).is_file(), src
    assert "<script>" not in html_text and "base &lt;script&gt;" in html_text
    text = "".join(parser.text)
    assert "Pushing <b>" not in html_text  # class names never reach the page unescaped
    assert "45.00" in text and "+5.00" in text  # accuracy table and delta vs baseline
    # Robustness of BinModel(0) on reversed (25 %) and contrast (75 %): mPC 50, rPC 50 / 75.
    assert "mPC" in text and "50.0/50.0" in text and "0.667/0.667" in text
    assert "long-term (1)" in text


def test_report_with_missing_files_still_has_every_section(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = build_report([tmp_path / "empty"], tmp_path / "out")
    parser = _Collector()
    parser.feed(out.read_text())
    assert {sid for sid, _ in SECTIONS} <= set(parser.ids)
    assert parser.imgs == []
    with pytest.raises(FileNotFoundError, match="nope"):
        build_report([tmp_path / "nope"], tmp_path / "out")


# ----------------------------------------------------------------------------------------- CLI
@pytest.fixture()
def fake_engine(monkeypatch: pytest.MonkeyPatch):
    """load_model -> a TinyNet; the evaluation dataset -> 3 random clips (no files, no data layer config)."""
    import videotaf.cli.analysis as commands

    def load_model(path, map_location="cpu"):
        return TinyNet(3, 4, seed=len(str(path))).eval(), {}

    class Data(torch.utils.data.Dataset):
        classes = ["a", "b", "c"]

        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int):
            g = torch.Generator().manual_seed(i)
            return torch.rand(4, 3, 16, 16, generator=g), i % 3

    monkeypatch.setattr(commands, "load_model", load_model)
    monkeypatch.setattr(commands, "eval_dataset", lambda cfg, split=None: Data())


def test_cli_robustness_analyze_cam(tmp_path: Path, fake_engine, real_fixtures: Path, capsys) -> None:
    from videotaf.cli import main

    rc = main(
        [
            "robustness",
            "--checkpoint",
            "runA/checkpoints/best.pt",
            "--checkpoint",
            "b.pt",
            "--corruptions",
            "gaussian_noise",
            "reversed",
            "--severities",
            "1",
            "2",
            "--out",
            str(tmp_path / "rob"),
            "--batch-size",
            "2",
            "--workers",
            "0",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    res = load_robustness(tmp_path / "rob" / "robustness.json")
    assert list(res["models"]) == ["runA", "b"] and res["num_clips"] == 3
    assert (tmp_path / "rob" / "robustness.md").read_text().startswith("Top-1/Top-5")
    rc = main(
        [
            "analyze",
            "--checkpoint",
            "a.pt",
            "--max-clips",
            "2",
            "--eps",
            "8/255",
            "--step-size",
            "8/255",
            "--out",
            str(tmp_path / "att.json"),
            "--workers",
            "0",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    att = json.loads((tmp_path / "att.json").read_text())
    assert att["models"]["a"]["num_clips"] == 2 and set(att["models"]["a"]["attacks"]) == {"ta", "ce"}
    rc = main(
        [
            "cam",
            "--checkpoint",
            "a.pt",
            "--compare",
            "bb.pt",
            "--video",
            "dataset:1",
            "--adversarial",
            "--out",
            str(tmp_path / "cam.png"),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    with Image.open(tmp_path / "cam.png") as img:
        assert img.format == "PNG"
    rc = main(
        [
            "cam",
            "--checkpoint",
            "a.pt",
            "--video",
            str(real_fixtures / "clip_d.mp4"),
            "--size",
            "32",
            "--out",
            str(tmp_path / "cam_video.png"),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0 and (tmp_path / "cam_video.png").is_file()
    assert main(["cam", "--checkpoint", "a.pt", "--video", "dataset:9", "--out", str(tmp_path / "x.png")]) == 2
    assert "index out of range" in capsys.readouterr().err
    # An existing output is refused before any work, and replaced with --overwrite.
    cam_args = ["cam", "--checkpoint", "a.pt", "--video", "dataset:1", "--out", str(tmp_path / "cam.png")]
    assert main(cam_args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*cam_args, "--overwrite"]) == 0


def test_cli_report(tmp_path: Path) -> None:
    from videotaf.cli import main

    a = write_run(tmp_path / "a", losses=[(2.0, 2.5)], per_class=dict(zip(CLASSES, [50, 20, 40, 0])), top1=40.0)
    b = write_run(tmp_path / "b", losses=[(2.1, 2.3)], per_class=dict(zip(CLASSES, [60, 15, 55, 10])), top1=45.0)
    lt = tmp_path / "long_term.txt"
    lt.write_text(f"# long-term motions\n{CLASSES[0]}\n")
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "rep"), "--long-term", str(lt)]) == 0
    assert "long-term (1)" in (tmp_path / "rep" / "index.html").read_text()
