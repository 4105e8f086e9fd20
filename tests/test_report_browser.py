"""The HTML report as a user sees it: rendered by headless Chromium, every image loads and nothing is logged to the
console. Chromium is required, not optional: ``.ci/run`` installs it (Debian package ``chromium``); without it the
test fails and says how to install it."""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from videotaf.analysis.compare import write_outputs
from videotaf.analysis.figures import cam_figure, cam_rows
from videotaf.analysis.inputs import load_video_clip
from videotaf.analysis.report import build_report
from videotaf.analysis.stats import compare_methods

from toy_models import Toy2D

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

# Injected first in <head> of a copy of the page: records script errors, failed resource loads (capture phase)
# and console.error/warn calls, and after the load event writes what every <img> loaded into the DOM, which
# --dump-dom then prints.
CHECK_SCRIPT = """<script>
window.__problems = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  window.__problems.push(t && t !== window && t.src ? "failed to load " + t.src : String(e.message));
}, true);
["error", "warn"].forEach(function (level) {
  var original = console[level];
  console[level] = function () {
    window.__problems.push("console." + level + ": " + Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
});
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth, height: img.naturalHeight};
  });
  var out = document.createElement("pre");
  out.id = "videotaf-check";
  out.textContent = JSON.stringify({images: images, problems: window.__problems});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "headless Chromium is needed for the browser test: apt-get install -y --no-install-recommends chromium",
        pytrace=False,
    )


def run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    profile.mkdir(parents=True, exist_ok=True)
    cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def check_page(page: Path, profile: Path) -> tuple[dict, list[str]]:
    """Load ``page`` (a copy with :data:`CHECK_SCRIPT` beside it) in Chromium: the check's result and the
    console lines Chromium logged."""
    html = page.read_text(encoding="utf-8")
    assert "<head>" in html
    probe = page.with_name(f"_browser_check_{page.name}")
    probe.write_text(html.replace("<head>", "<head>" + CHECK_SCRIPT, 1), encoding="utf-8")
    proc = run_chromium(["--dump-dom", probe.resolve().as_uri()], profile)
    found = re.search(r'<pre id="videotaf-check">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"no check result in Chromium's DOM (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    result = json.loads(html_lib.unescape(found.group(1)))
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return result, console


def write_run(
    path: Path,
    losses: list[tuple[float, float]],
    predictions: list[int],
    labels: list[int],
    classes: list[str],
    pretrained: str | None = None,
) -> Path:
    path.mkdir(parents=True)
    model = {"name": "tsm", **({"pretrained": pretrained} if pretrained else {})}
    (path / "config.yaml").write_text(yaml.safe_dump({"model": model, "adversarial": {"method": path.name}}))
    with (path / "metrics.jsonl").open("w") as f:
        for e, (tr, va) in enumerate(losses, 1):
            f.write(json.dumps({"epoch": e, "train_loss": tr, "val_loss": va, "val_top1": 50.0}) + "\n")
    right = np.asarray(predictions) == np.asarray(labels)
    per_class = {c: 100.0 * float(right[np.asarray(labels) == k].mean()) for k, c in enumerate(classes)}
    (path / "eval.json").write_text(
        json.dumps(
            {
                "top1": 100.0 * float(right.mean()),
                "top5": 100.0,
                "loss": 1.0,
                "classes": classes,
                "per_class": per_class,
                "num_clips": len(labels),
                "subset": {"top1": per_class[classes[0]], "classes": classes[:1], "num_clips": labels.count(0)},
                "clips": {"labels": labels, "predictions": predictions, "loss": [1.0] * len(labels)},
            }
        )
    )
    return path


@pytest.mark.slow
def test_report_renders_in_chromium(tmp_path: Path, real_fixtures: Path) -> None:
    classes = ["Lifting something up, then letting it drop back", "Pushing something", "Waving", "Turning"]
    rng = np.random.default_rng(0)
    labels = [k % 4 for k in range(40)]
    preds = {
        name: [y if rng.random() < p else (y + 1) % 4 for y in labels]
        for name, p in (("baseline", 0.5), ("plain", 0.55), ("taf", 0.6))
    }
    out = tmp_path / "demo"
    base = write_run(out / "baseline", [(2.0, 2.1), (1.7, 1.9), (1.5, 1.8)], preds["baseline"], labels, classes)
    finetune_losses = {"plain": [(1.4, 1.75), (1.3, 1.8)], "taf": [(1.45, 1.7), (1.35, 1.65)]}
    runs = [base] + [
        write_run(out / name, losses, preds[name], labels, classes, str(base / "checkpoints" / "last.pt"))
        for name, losses in finetune_losses.items()
    ]
    # A real CAM figure, where the demo writes them (the report finds it beside the runs).
    clip = load_video_clip(real_fixtures / "clip_d.mp4", 4, 32, 40)
    torch.manual_seed(0)
    models = {"plain": Toy2D(4, 4).eval(), "TAF": Toy2D(4, 4).eval()}
    cam_figure(cam_rows(models, clip, 0, class_names=classes), out / "figures" / "cam_val000.png", title=classes[0])
    # A compare section (videotaf compare's outputs) from per-seed correctness.
    correct = {name: rng.random((3, 40)) < p for name, p in (("plain", 0.55), ("taf", 0.6))}
    write_outputs(compare_methods(correct, "plain", n_boot=200), tmp_path / "compare")

    page = build_report(runs, tmp_path / "report", compare_files=[tmp_path / "compare"])
    html = page.read_text(encoding="utf-8")
    for name in ("loss_curves.png", "classwise_1_plain.png", "compare_0.png", "cam_val000.png"):
        assert name in html, name

    result, console = check_page(page, tmp_path / "profile")
    images = result["images"]
    assert len(images) == html.count("<img ") >= 5  # loss curves, 2 class-wise, compare, CAM
    for img in images:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, img
    assert result["problems"] == [] and console == [], (result["problems"], console)

    # The check itself catches a broken image and a console error.
    broken = page.with_name("broken.html")
    broken.write_text(
        html.replace('src="loss_curves.png"', 'src="missing.png"').replace(
            "</body>", "<script>console.error('boom')</script></body>"
        ),
        encoding="utf-8",
    )
    result, console = check_page(broken, tmp_path / "profile")
    assert [img["width"] for img in result["images"] if img["src"] == "missing.png"] == [0]
    assert any("missing.png" in p for p in result["problems"]) and any("boom" in p for p in result["problems"])
    assert any("boom" in line for line in console)

    # A screenshot of the whole page (it is about 4000 px high), to look at (kept in the test's tmp_path).
    shot = tmp_path / "report.png"
    proc = run_chromium(
        [f"--screenshot={shot}", "--window-size=1280,4400", page.resolve().as_uri()], tmp_path / "profile"
    )
    assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
