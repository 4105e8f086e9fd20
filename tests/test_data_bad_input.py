"""Bad input: every kind of broken file or annotation gives an error naming it; skip policy and ``data check``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from videotaf.cli import main as cli_main
from videotaf.data import (
    AnnotationError,
    BadSampleError,
    Diving48,
    FileList,
    SkipBadSamples,
    SomethingV1,
    SomethingV2,
    check_dataset,
)
from videotaf.data.synth import write_video

CLASSES = ["Holding something", "Lifting something"]


def _clip(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)


def _ssv2(root: Path, ids: list[str], templates: list[str] | None = None) -> Path:
    (root / "something-something-v2-labels.json").write_text(json.dumps({c: str(i) for i, c in enumerate(CLASSES)}))
    templates = templates or [CLASSES[i % 2] for i in range(len(ids))]
    entries = [{"id": i, "template": t.replace("something", "[something]")} for i, t in zip(ids, templates)]
    (root / "something-something-v2-validation.json").write_text(json.dumps(entries))
    (root / "20bn-something-something-v2").mkdir(exist_ok=True)
    return root


def _video(root: Path, vid: str, n: int = 6, seed: int = 0) -> Path:
    return write_video(root / "20bn-something-something-v2" / f"{vid}.webm", _clip(n, seed))


def _opts(**kw):
    return dict(num_frames=4, crop_size=16, scale_size=16, **kw)


@pytest.fixture
def broken(tmp_path: Path, real_fixtures: Path) -> Path:
    """Five samples: good, missing, garbage bytes, empty file, truncated WebM (half of the real clip_a.webm)."""
    root = _ssv2(tmp_path, ["1", "2", "3", "4", "5"])
    _video(root, "1")
    vids = root / "20bn-something-something-v2"
    (vids / "3.webm").write_bytes(b"this is not a video" * 50)
    (vids / "4.webm").write_bytes(b"")
    data = (real_fixtures / "clip_a.webm").read_bytes()
    (vids / "5.webm").write_bytes(data[: len(data) // 2])
    return root


@pytest.mark.parametrize(
    "index,vid,what",
    [(1, "2", "not found"), (2, "3", "cannot open video"), (3, "4", "empty"), (4, "5", "truncated")],
)
def test_bad_video_errors_name_the_file(broken: Path, index, vid, what):
    ds = SomethingV2(broken, "validation", **_opts())
    assert ds[0][0].shape == (4, 3, 16, 16)
    with pytest.raises(BadSampleError, match=what) as info:
        ds[index]
    assert f"{vid}.webm" in str(info.value)


def test_truncated_video_whose_header_claims_more_frames(tmp_path: Path, real_fixtures: Path):
    # AVI keeps its frame count in the header: cutting the file leaves a claim of 164 frames.
    data = (real_fixtures / "clip_c.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    (tmp_path / "list.txt").write_text("cut.avi 0\n")
    ds = FileList(tmp_path, "list.txt", **_opts())
    assert ds.frame_count(0) == 164
    with pytest.raises(BadSampleError, match=r"cut\.avi: truncated video: container header says 164"):
        ds[0]


def test_skip_policy_substitutes_next_sample_and_counts(broken: Path):
    ds = SomethingV2(broken, "validation", bad_input="skip", **_opts())
    good = SomethingV2(broken, "validation", **_opts())[0]
    # 4 (empty) -> 5 (truncated) -> wraps to 1 (good): two skips, deterministic substitute.
    clip, label = ds[3]
    assert torch.equal(clip, good[0]) and label == good[1]
    assert ds.skipped == 2
    assert clip.abs().sum() > 0  # a real clip, never a zero tensor
    assert ds.reset_skipped() == 2 and ds.skipped == 0
    for i in range(len(ds)):
        ds[i]
    # sample 2 (missing) -> 3 -> 4 -> 5 -> 1: 4 skips; 3 -> 3; 4 -> 2; 5 -> 1.
    assert ds.skipped == 4 + 3 + 2 + 1


def test_skip_counter_is_shared_with_dataloader_workers(broken: Path):
    ds = SomethingV2(broken, "validation", bad_input="skip", **_opts())
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=1)
    ((clips, labels),) = list(loader)
    assert clips.shape == (5, 4, 3, 16, 16)
    assert ds.skipped == 10


def test_skip_wrapper_for_any_dataset(broken: Path):
    wrapped = SkipBadSamples(SomethingV2(broken, "validation", **_opts()))
    assert wrapped.num_classes == 2 and len(wrapped) == 5
    wrapped[4]
    assert wrapped.skipped == 1 and wrapped.reset_skipped() == 1


def test_all_bad_gives_up_with_an_error(tmp_path: Path):
    root = _ssv2(tmp_path, ["1", "2"])
    ds = SomethingV2(root, "validation", bad_input="skip", max_skip_tries=3, **_opts())
    with pytest.raises(BadSampleError, match="3 consecutive bad samples"):
        ds[0]


def test_unknown_template_names_file_and_entry(tmp_path: Path):
    root = _ssv2(tmp_path, ["1", "2"], ["Holding something", "Juggling something"])
    with pytest.raises(AnnotationError, match=r"validation\.json: entry 1 \(id '2'\): unknown template") as info:
        SomethingV2(root, "validation")
    assert len(info.value.problems) == 1
    ds = SomethingV2(root, "validation", bad_input="skip")
    assert len(ds) == 1 and "Juggling" in ds.annotation_problems[0]


def test_ssv1_unknown_label_and_missing_frames_folder(tmp_path: Path):
    (tmp_path / "something-something-v1-labels.csv").write_text("Holding something\nLifting something\n")
    (tmp_path / "something-something-v1-validation.csv").write_text("1;Holding something\n2;Dancing\n")
    with pytest.raises(AnnotationError, match=r"something-something-v1-validation\.csv:2: unknown label 'Dancing'"):
        SomethingV1(tmp_path, "validation")
    ds = SomethingV1(tmp_path, "validation", bad_input="skip", **_opts())
    with pytest.raises(BadSampleError, match=r"20bn-something-something-v1/1: frames folder not found"):
        ds.load(0)


def test_missing_frame_file_named(tmp_path: Path):
    folder = tmp_path / "v"
    folder.mkdir()
    for k in (1, 2, 4):
        Image.fromarray(_clip(1)[0]).save(folder / f"img_{k:05d}.jpg")
    (tmp_path / "list.txt").write_text("v 4 0\n")
    ds = FileList(tmp_path, "list.txt", **_opts())
    with pytest.raises(BadSampleError, match=r"img_00003\.jpg: frame file not found"):
        ds[0]


def test_label_out_of_range_and_malformed_lines(tmp_path: Path):
    (tmp_path / "list.txt").write_text("a 10 1\nb 10 7\nc ten 1\nd 10 -1\n")
    with pytest.raises(AnnotationError) as info:
        FileList(tmp_path, "list.txt", num_classes=3)
    problems = info.value.problems
    assert len(problems) == 3
    assert problems[0].endswith("list.txt:2: label 7 out of range [0, 3)")
    assert "list.txt:3: non-integer field" in problems[1]
    assert "list.txt:4: label -1 out of range" in problems[2]


def test_diving48_label_out_of_range(tmp_path: Path):
    (tmp_path / "Diving48_vocab.json").write_text(json.dumps([["Back", "15som", "05Twis", "FREE"]] * 48))
    ann = [{"vid_name": "x", "label": 48, "start_frame": 0, "end_frame": 9}]
    (tmp_path / "Diving48_V2_train.json").write_text(json.dumps(ann))
    with pytest.raises(AnnotationError, match=r"Diving48_V2_train\.json: entry 0 \('x'\): label 48 out of range"):
        Diving48(tmp_path, "train")


def test_paths_escaping_the_root_are_rejected(tmp_path: Path):
    (tmp_path / "list.txt").write_text("../outside 10 0\n/etc/frames 10 0\nok/../../x 10 0\n")
    with pytest.raises(AnnotationError) as info:
        FileList(tmp_path, "list.txt", list_format="rawframes")
    assert len(info.value.problems) == 3
    assert all("escapes the dataset root" in p for p in info.value.problems)
    root = _ssv2(tmp_path, ["../../etc/passwd"])
    with pytest.raises(AnnotationError, match="entry 0 .* not a file name inside"):
        SomethingV2(root, "validation")


def test_missing_annotation_file_named(tmp_path: Path):
    with pytest.raises(AnnotationError, match=r"something-something-v2-labels\.json: labels file not found"):
        SomethingV2(tmp_path, "train")


def test_check_dataset_reports_every_problem(broken: Path):
    ds = SomethingV2(broken, "validation", bad_input="skip", **_opts())
    report = check_dataset(ds)
    assert not report.ok and report.num_checked == 5
    assert report.bad_indices == [1, 2, 3, 4]
    for vid, what in (("2", "not found"), ("3", "cannot open"), ("4", "empty"), ("5", "truncated")):
        assert any(f"{vid}.webm" in p and what in p for p in report.problems)


def test_cli_data_check(broken: Path, tmp_path: Path, capsys):
    rc = cli_main(["data", "check", "--dataset", "somethingv2", "--root", str(broken), "--split", "validation"])
    out = capsys.readouterr().out
    assert rc == 1
    assert out.count("ERROR ") == 4 and "FAILED" in out
    good = tmp_path / "good"
    good.mkdir()
    _ssv2(good, ["1"])
    _video(good, "1")
    assert cli_main(["data", "check", "--dataset", "somethingv2", "--root", str(good), "--split", "val"]) == 0
    assert "OK" in capsys.readouterr().out
    # Annotation problems are listed too, each with its entry.
    bad_ann = tmp_path / "ann"
    bad_ann.mkdir()
    _ssv2(bad_ann, ["1", "2"], ["Juggling something", "Dancing"])
    assert cli_main(["data", "check", "--dataset", "somethingv2", "--root", str(bad_ann)]) == 1
    out = capsys.readouterr().out
    assert "entry 0 (id '1'): unknown template" in out and "entry 1 (id '2'): unknown template" in out


def test_fixture_files_untouched(real_fixtures: Path, tmp_path: Path):
    # The truncation tests copy bytes; the shared fixture must remain whole.
    shutil.copy(real_fixtures / "clip_a.webm", tmp_path / "a.webm")
    from videotaf.data import video_frame_count

    assert video_frame_count(tmp_path / "a.webm") == 150


def test_header_a_frame_too_long_is_resampled_not_an_error(tmp_path: Path):
    from videotaf.data.decode import clear_frame_count_cache, set_frame_count

    root = _ssv2(tmp_path, ["1"])
    path = _video(root, "1", n=6)
    ds = SomethingV2(root, "validation", **_opts())
    set_frame_count(path, 7)  # as if the container header claimed one frame more than the stream holds
    assert ds.frame_count(0) == 7 and ds.sample_indices(0) == [[0, 2, 4, 6]]
    clip, _ = ds[0]
    assert clip.shape == (4, 3, 16, 16)
    assert ds.frame_count(0) == 6  # corrected count cached
    set_frame_count(path, 20)  # a claim far beyond the stream: truncated file
    with pytest.raises(BadSampleError, match="truncated video: container header says 20 frames, only 6"):
        ds[0]
    clear_frame_count_cache()
