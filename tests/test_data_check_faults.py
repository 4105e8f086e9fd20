"""Fault injection: a damaged copy of every dataset layout, checked by ``videotaf data check``.

Each problem must be reported naming its file (and the annotation line or entry where there is one), the check
must exit non-zero and say how much it read, and under ``bad_input: raise`` the same damage must raise the data
layer's error type with a one-line message naming the file. Frames are tiny synthetic JPEGs (Pillow) and WebMs
(:mod:`videotaf.data.synth`) plus copies of the real fixtures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from videotaf.cli import main as cli_main
from videotaf.data import (
    AnnotationError,
    BadSampleError,
    DataError,
    Diving48,
    FileList,
    SomethingV1,
    SomethingV2,
    check_dataset,
)
from videotaf.data.decode import clear_frame_count_cache
from videotaf.data.synth import write_video

CLASSES = ["Holding something", "Lifting something"]


@pytest.fixture(autouse=True)
def _fresh_counts():
    # Frame counts are cached per (path, size, mtime); damaged copies are new files, but stay safe.
    clear_frame_count_cache()
    yield
    clear_frame_count_cache()


def _check(capsys, *args: str) -> tuple[int, list[str], str]:
    """``data check`` exit status, its ERROR lines, and its summary lines."""
    rc = cli_main(["data", "check", "--quiet", *args])
    out = capsys.readouterr().out.splitlines()
    errors = [ln[len("ERROR ") :] for ln in out if ln.startswith("ERROR ")]
    summary = "\n".join(ln for ln in out if ln.startswith(("OK:", "FAILED:")))
    return rc, errors, summary


def _one(errors: list[str], *parts: str) -> str:
    """The single ERROR line holding every one of ``parts``."""
    found = [e for e in errors if all(p in e for p in parts)]
    assert len(found) == 1, (parts, errors)
    return found[0]


def _jpegs(folder: Path, n: int, size: tuple[int, int] = (32, 24), template: str = "{:05d}.jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    for k in range(1, n + 1):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / template.format(k))


def _truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _scramble(path: Path, count: int = 4000, seed: int = 0) -> None:
    """Overwrite ``count`` bytes in the middle of ``path`` with random ones."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2
    data[at : at + count] = np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


# ----------------------------------------------------------------------------- Something-Something V1
@pytest.fixture
def ssv1(tmp_path: Path, real_fixtures: Path) -> Path:
    """Lines: 1 real frames (10), 2 sixteen frames with 00003 corrupt and 00007 truncated, 3 sixteen frames
    without 00005, 4 unknown label, 5 malformed, 6 missing folder."""
    root = tmp_path / "ssv1"
    frames = root / "20bn-something-something-v1"
    (frames / "1").mkdir(parents=True)
    for k in range(1, 11):
        shutil.copy(real_fixtures / "frames_a" / f"img_{k:05d}.jpg", frames / "1" / f"{k:05d}.jpg")
    _jpegs(frames / "2", 16)
    (frames / "2" / "00003.jpg").write_bytes(b"\xff\xd8 not a jpeg at all" * 20)
    _truncate(frames / "2" / "00007.jpg")
    _jpegs(frames / "3", 16)
    (frames / "3" / "00005.jpg").unlink()
    (root / "something-something-v1-labels.csv").write_text("\n".join(CLASSES) + "\n")
    (root / "something-something-v1-validation.csv").write_text(
        "1;Holding something\n2;Lifting something\n3;Holding something\n4;Dancing\n5 Holding something\n"
        "6;Lifting something\n"
    )
    return root


def test_ssv1_full_check_reads_every_frame(ssv1: Path, capsys):
    rc, errors, summary = _check(capsys, "--dataset", "somethingv1", "--root", str(ssv1))
    assert rc == 1
    ann = ssv1 / "something-something-v1-validation.csv"
    frames = ssv1 / "20bn-something-something-v1"
    _one(errors, f"{ann}:4: unknown label 'Dancing'")
    _one(errors, f"{ann}:5: expected 'id;class name'")
    _one(errors, f"{frames}/2/00003.jpg: unreadable image", f"(annotation {ann}:2)")
    cut = _one(errors, f"{frames}/2/00007.jpg: unreadable image", f"(annotation {ann}:2)")
    assert "truncated" in cut.lower()  # Pillow: "Truncated File Read" or "image file is truncated (...)"
    _one(errors, f"{frames}/3/00005.jpg: frame file not found", f"(annotation {ann}:3)")
    _one(errors, f"{frames}/6: frames folder not found", f"(annotation {ann}:6)")
    assert len(errors) == 6
    # Files: 10 + 16 + 15 (00005 missing); frames decoded: 10 + 14 + 15.
    assert summary == (
        "FAILED: split validation: 4/4 samples checked (every frame decoded), 41 files and 39 frames read, "
        "2 classes: 6 problem(s)"
    )


def test_ssv1_fast_check_misses_what_test_sampling_skips(ssv1: Path, capsys):
    rc, errors, summary = _check(capsys, "--dataset", "somethingv1", "--root", str(ssv1), "--fast")
    assert rc == 1
    # 8 of 16 frames are sampled (files 2, 4, ..., 16): the corrupt 00003 and 00007 are never opened.
    assert not any("00003.jpg" in e or "00007.jpg" in e for e in errors)
    _one(errors, "3/00005.jpg: frame file not found")
    # Files: folder 1 (10 frames) 8 distinct sampled, folder 2 its 8 sampled, folder 3 (15 files counted) 8
    # sampled and failed at 00005; frames decoded: 8 + 8.
    assert summary == (
        "FAILED: split validation: 4/4 samples checked (fast: only test-sampled frames decoded), 24 files and "
        "16 frames read, 2 classes: 4 problem(s)"
    )


def test_ssv1_raise_policy_errors_are_one_line(ssv1: Path):
    with pytest.raises(AnnotationError) as info:
        SomethingV1(ssv1, "validation")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{ssv1}/something-something-v1-validation.csv:4: unknown label")
    assert len(info.value.problems) == 2
    ds = SomethingV1(ssv1, "validation", bad_input="skip", num_frames=16, crop_size=16, scale_size=16)
    for index, name in ((1, "2/00003.jpg: unreadable image"), (2, "3/00005.jpg: frame file not found")):
        with pytest.raises(BadSampleError) as info:
            ds.load(index)
        assert isinstance(info.value, DataError) and "\n" not in str(info.value) and name in str(info.value)


# ----------------------------------------------------------------------------- Something-Something V2
def _ssv2_root(root: Path, entries: list) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "something-something-v2-labels.json").write_text(json.dumps({c: str(i) for i, c in enumerate(CLASSES)}))
    (root / "something-something-v2-validation.json").write_text(json.dumps(entries))
    (root / "20bn-something-something-v2").mkdir(exist_ok=True)
    return root


@pytest.fixture
def ssv2(tmp_path: Path, real_fixtures: Path) -> Path:
    """Entries: 0 good (16 frames), 1 truncated WebM, 2 missing video, 3 real clip_a.webm (150 frames),
    4 unknown template, 5 not an object."""
    t = "Holding [something]"
    root = _ssv2_root(
        tmp_path / "ssv2",
        [{"id": "1", "template": t}, {"id": "2", "template": t}, {"id": "3", "template": t},
         {"id": "4", "template": "Lifting [something]"}, {"id": "5", "template": "Juggling [something]"}, "junk"],
    )  # fmt: skip
    vids = root / "20bn-something-something-v2"
    clip = np.random.default_rng(0).integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)
    write_video(vids / "1.webm", clip)
    write_video(vids / "2.webm", clip)
    _truncate(vids / "2.webm")
    shutil.copy(real_fixtures / "clip_a.webm", vids / "4.webm")
    return root


def test_ssv2_full_check(ssv2: Path, capsys):
    rc, errors, summary = _check(capsys, "--dataset", "somethingv2", "--root", str(ssv2), "--split", "val")
    assert rc == 1
    ann = ssv2 / "something-something-v2-validation.json"
    vids = ssv2 / "20bn-something-something-v2"
    _one(errors, f"{ann}: entry 4 (id '5'): unknown template 'Juggling [something]'")
    _one(errors, f"{ann}: entry 5: expected an object with an 'id'")
    _one(errors, f"{vids}/2.webm: truncated video", f"(annotation {ann}: entry 1 (id '2'))")
    _one(errors, f"{vids}/3.webm: video file not found", f"(annotation {ann}: entry 2 (id '3'))")
    assert len(errors) == 4
    # 1.webm (16 frames), the truncated 2.webm (opened, counted short, not decoded), 4.webm (150 frames).
    assert summary == (
        "FAILED: split val: 4/4 samples checked (every frame decoded), 3 files and 166 frames read, "
        "2 classes: 4 problem(s)"
    )


def test_ssv2_malformed_labels_json(tmp_path: Path, capsys):
    root = _ssv2_root(tmp_path / "ssv2", [{"id": "1", "template": "Holding [something]"}])
    (root / "something-something-v2-labels.json").write_text('{"Holding something": "0",\n')
    rc, errors, summary = _check(capsys, "--dataset", "somethingv2", "--root", str(root))
    assert rc == 1
    assert len(errors) == 1
    assert errors[0].startswith(f"{root}/something-something-v2-labels.json: cannot parse labels file as JSON")
    assert "0 files and 0 frames read" in summary and summary.startswith("FAILED: split validation: 0/0 samples")
    with pytest.raises(AnnotationError) as info:
        SomethingV2(root, "validation")
    assert "\n" not in str(info.value) and "something-something-v2-labels.json" in str(info.value)


def test_ssv2_raise_policy_errors_are_one_line(ssv2: Path):
    with pytest.raises(AnnotationError) as info:
        SomethingV2(ssv2, "validation")
    assert "\n" not in str(info.value) and "validation.json: entry 4 (id '5'): unknown template" in str(info.value)
    ds = SomethingV2(ssv2, "validation", bad_input="skip", num_frames=4, crop_size=16, scale_size=16)
    for index, what in ((1, "2.webm: truncated video"), (2, "3.webm: video file not found")):
        with pytest.raises(BadSampleError) as info:
            ds.load(index)
        assert "\n" not in str(info.value) and what in str(info.value)


# ----------------------------------------------------------------------------- Diving48
VOCAB = [
    ["Back", "15som", "05Twis", "FREE"],
    ["Forward", "25som", "NoTwis", "PIKE"],
    ["Inward", "35som", "NoTwis", "TUCK"],
]


@pytest.fixture
def diving(tmp_path: Path, real_fixtures: Path) -> Path:
    """Entries: 0 good (clip_d, 32 frames), 1 clip_d with scrambled bytes, 2 clip_d annotated with 100 frames,
    3 vid_name escaping the root, 4 vid_name not a string, 5 label out of range."""
    root = tmp_path / "diving"
    (root / "rgb").mkdir(parents=True)
    for name in ("good", "corrupt", "short"):
        shutil.copy(real_fixtures / "clip_d.mp4", root / "rgb" / f"{name}.mp4")
    _scramble(root / "rgb" / "corrupt.mp4")
    (root / "Diving48_vocab.json").write_text(json.dumps(VOCAB))
    entries = [
        {"vid_name": "good", "label": 0, "start_frame": 0, "end_frame": 31},
        {"vid_name": "corrupt", "label": 1, "start_frame": 0, "end_frame": 31},
        {"vid_name": "short", "label": 2, "start_frame": 0, "end_frame": 99},
        {"vid_name": "../escape", "label": 0, "start_frame": 0, "end_frame": 9},
        {"vid_name": ["x"], "label": 0},
        {"vid_name": "big", "label": 48, "start_frame": 0, "end_frame": 9},
    ]
    (root / "Diving48_V2_test.json").write_text(json.dumps(entries))
    return root


def test_diving48_full_check(diving: Path, capsys):
    rc, errors, summary = _check(capsys, "--dataset", "diving48", "--root", str(diving))
    assert rc == 1
    ann, rgb = diving / "Diving48_V2_test.json", diving / "rgb"
    _one(errors, f"{ann}: entry 3 ('../escape'): vid_name is not a file name inside")
    _one(errors, f"{ann}: entry 4 (['x']): vid_name is not a file name inside")
    _one(errors, f"{ann}: entry 5 ('big'): label 48 out of range [0, 3)")
    _one(errors, f"{rgb}/corrupt.mp4: corrupt or truncated video, decoding failed after frame", "entry 1 ('corrupt')")
    _one(errors, f"{rgb}/short.mp4: truncated video: annotation says 100 frames, only 32 decodable", "entry 2")
    assert len(errors) == 5
    assert "3/3 samples checked (every frame decoded), 3 files and" in summary and "5 problem(s)" in summary


@pytest.mark.parametrize(
    "file,content,message",
    [
        ("Diving48_V2_test.json", {"vid_name": "good", "label": 0}, "expected a JSON list of"),
        ("Diving48_vocab.json", {"Back": 0}, "expected a non-empty JSON list of class descriptions"),
    ],
)
def test_diving48_wrong_json_shape(diving: Path, capsys, file, content, message):
    (diving / file).write_text(json.dumps(content))
    rc, errors, summary = _check(capsys, "--dataset", "diving48", "--root", str(diving), "--split", "test")
    assert rc == 1 and len(errors) == 1
    assert errors[0].startswith(f"{diving / file}: {message}")
    assert "0 files and 0 frames read" in summary
    with pytest.raises(AnnotationError) as info:
        Diving48(diving, "test")
    assert "\n" not in str(info.value) and str(info.value).startswith(str(diving / file))


# ----------------------------------------------------------------------------- file lists
LISTS = {
    # line 1 good, 2 malformed, 3 label out of range, 4 damaged data
    "rawframes": "frames/good 10 0\nframes/good ten 1\nframes/good 10 5\nframes/bad 10 2\n",
    "gst": "frames/good\t10\t0\nframes/good 10 1\nframes/good\t10\t5\nframes/bad\t10\t2\n",
    "blvnet": "frames/good 1 10 0\nframes/good 1 10\nframes/good 1 10 5\nframes/bad 1 10 2\n",
    "video": "videos/good.mp4 0\nvideos/good.mp4 zero\nvideos/good.mp4 5\nvideos/cut.mp4 2\n",
}
MALFORMED = {
    "rawframes": "non-integer field in 'frames/good ten 1'",
    "gst": "expected 'path<TAB>num_frames<TAB>label' (3 fields), got 'frames/good 10 1'",
    "blvnet": "expected 'path start end label' (4 fields), got 'frames/good 1 10'",
    "video": "non-integer field in 'videos/good.mp4 zero'",
}


@pytest.fixture
def listroot(tmp_path: Path, real_fixtures: Path) -> Path:
    root = tmp_path / "lists"
    shutil.copytree(real_fixtures / "frames_a", root / "frames" / "good")
    shutil.copytree(real_fixtures / "frames_a", root / "frames" / "bad")
    _truncate(root / "frames" / "bad" / "img_00004.jpg", 0.3)
    (root / "videos").mkdir()
    shutil.copy(real_fixtures / "clip_d.mp4", root / "videos" / "good.mp4")
    shutil.copy(real_fixtures / "clip_d.mp4", root / "videos" / "cut.mp4")
    _truncate(root / "videos" / "cut.mp4")
    (root / "classes.txt").write_text("zero\none\ntwo\n")
    for fmt, text in LISTS.items():
        (root / f"{fmt}.txt").write_text(text)
    return root


@pytest.mark.parametrize("fmt", list(LISTS))
def test_filelist_full_check(listroot: Path, capsys, fmt):
    args = ["--dataset", "filelist", "--root", str(listroot), "--list-file", f"{fmt}.txt"]
    rc, errors, summary = _check(capsys, *args, "--classes-file", "classes.txt")
    assert rc == 1
    lst = listroot / f"{fmt}.txt"
    _one(errors, f"{lst}:2: {MALFORMED[fmt]}")
    _one(errors, f"{lst}:3: label 5 out of range [0, 3)")
    if fmt == "video":
        _one(errors, f"{listroot}/videos/cut.mp4: cannot open video", f"(annotation {lst}:4)")
        read = "2 files and 32 frames read"  # good.mp4 decoded, cut.mp4 opened and refused
    else:
        _one(errors, f"{listroot}/frames/bad/img_00004.jpg: unreadable image", f"(annotation {lst}:4)")
        read = "20 files and 19 frames read"
    assert len(errors) == 3
    assert summary == (
        f"FAILED: split validation: 2/2 samples checked (every frame decoded), {read}, 3 classes: 3 problem(s)"
    )
    with pytest.raises(AnnotationError) as info:
        FileList(listroot, f"{fmt}.txt", classes="classes.txt")
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{lst}:2: ")
    ds = FileList(listroot, f"{fmt}.txt", classes="classes.txt", bad_input="skip", num_frames=10, crop_size=16)
    with pytest.raises(BadSampleError) as info:
        ds.load(1)
    assert "\n" not in str(info.value) and ("cut.mp4" if fmt == "video" else "img_00004.jpg") in str(info.value)


def test_labels_beyond_the_class_count(listroot: Path, capsys):
    (listroot / "list.txt").write_text("videos/good.mp4 0\nvideos/good.mp4 99\n")
    args = ["--dataset", "filelist", "--root", str(listroot), "--list-file", "list.txt"]
    rc, errors, summary = _check(capsys, *args)
    assert rc == 0 and summary.endswith("100 classes: OK")  # no class count to hold the labels to
    rc, errors, summary = _check(capsys, *args, "--num-classes", "10")
    assert rc == 1
    lst = listroot / "list.txt"
    _one(errors, f"{lst}:2: label 99 out of range [0, 10) (num_classes=10)")
    _one(errors, f"{lst}: the dataset has 100 classes but num_classes is 10")
    assert len(errors) == 2 and "2/2 samples checked" in summary and "2 files and 64 frames read" in summary


def test_check_from_config_covers_both_splits(listroot: Path, capsys, tmp_path: Path):
    (listroot / "train.txt").write_text("videos/good.mp4 0\nvideos/good.mp4 9\n")
    (listroot / "val.txt").write_text("frames/good 10 1\n")
    config = tmp_path / "run.yaml"
    config.write_text(
        "model:\n  name: tsm\n  num_classes: 5\n  num_frames: 8\n"
        f"data:\n  kind: filelist\n  root: {listroot}\n  list_files: {{train: train.txt, validation: val.txt}}\n"
    )
    rc, errors, summary = _check(capsys, "--config", str(config))
    assert rc == 1
    assert errors == [
        f"{listroot}/train.txt: the dataset has 10 classes but num_classes is 5",
        f"{listroot}/train.txt:2: label 9 out of range [0, 5) (num_classes=5)",
        f"{listroot}/val.txt: the dataset has 2 classes but num_classes is 5",
    ]
    lines = summary.splitlines()
    assert lines[0].startswith("FAILED: split train: 2/2 samples checked") and "2 files and 64 frames" in lines[0]
    assert lines[1].startswith("FAILED: split validation: 1/1 samples checked") and "10 files and 10 frames" in lines[1]
    rc, errors, summary = _check(capsys, "--config", str(config), "--split", "validation", "--num-classes", "2")
    assert rc == 0 and errors == [] and summary.startswith("OK: split validation")


def test_check_in_worker_processes_matches(ssv1: Path):
    ds = SomethingV1(ssv1, "validation", bad_input="skip", crop_size=16, scale_size=16)
    serial, parallel = check_dataset(ds), check_dataset(ds, workers=2)
    assert parallel.problems == serial.problems and parallel.bad_indices == serial.bad_indices == [1, 2, 3]
    assert (parallel.files_read, parallel.frames_read) == (serial.files_read, serial.frames_read) == (41, 39)


def test_command_line_mistakes(capsys):
    assert cli_main(["data", "check", "--root", "x"]) == 2
    assert "--dataset and --root are required without --config" in capsys.readouterr().out
