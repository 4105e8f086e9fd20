"""The pure annotation parse functions on tiny hand-written files (expectations worked out by hand), the
label-range check, and how annotation-time drops are counted.

No video or frame file exists under these roots: parsing must never open one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from videotaf.data import (
    AnnotationError,
    DataConfig,
    FileList,
    SomethingV2,
    check_labels,
    label_problems,
    parse_diving48,
    parse_filelist,
    parse_somethingv1,
    parse_somethingv2,
)
from videotaf.data.base import annotation_error
from videotaf.data.filelist import detect_list_format
from videotaf.data.somethingv2 import parse_somethingv2_labels


def _abs(p: Path) -> str:
    return os.path.normpath(os.path.abspath(p))


# ----------------------------------------------------------------------------- Something-Something V1
V1_LABELS = """Zooming in
Holding something
Pushing something from left to right
Dropping something
Pushing something from right to left
Zooming in
"""
V1_TRAIN = """100218;Holding something

4;Dropping something
77
9;Juggling
../x;Zooming in
12 ; Zooming in
"""


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    (tmp_path / "labels.csv").write_text(V1_LABELS)
    (tmp_path / "train.csv").write_text(V1_TRAIN)
    return tmp_path


def test_parse_somethingv1_sorted(v1: Path):
    ann = parse_somethingv1(v1 / "labels.csv", v1 / "train.csv", v1 / "frames")
    # Alphabetical: Dropping 0, Holding 1, Pushing L->R 2, Pushing R->L 3, Zooming 4.
    assert ann.classes == [
        "Dropping something",
        "Holding something",
        "Pushing something from left to right",
        "Pushing something from right to left",
        "Zooming in",
    ]
    frames = _abs(v1 / "frames")
    assert [(s.path, s.label, s.source, s.num_frames, s.start, s.is_video) for s in ann.samples] == [
        (f"{frames}/100218", 1, f"{v1}/train.csv:1", None, 1, False),
        (f"{frames}/4", 0, f"{v1}/train.csv:3", None, 1, False),
        (f"{frames}/12", 4, f"{v1}/train.csv:7", None, 1, False),
    ]
    assert ann.problems == [
        f"{v1}/labels.csv:6: duplicate class name 'Zooming in'",
        f"{v1}/train.csv:4: expected 'id;class name', got '77'",
        f"{v1}/train.csv:5: unknown label 'Juggling' (not in labels.csv)",
        f"{v1}/train.csv:6: video id '../x' is not a path inside {frames}",
    ]
    assert ann.dropped == 3  # the duplicate class name drops no entry
    # CSV pair (2, 4) = the two Pushing classes -> sorted ids 2 and 3.
    assert ann.flip_map == {2: 3, 3: 2}
    assert ann.class_source == str(v1 / "labels.csv")


def test_parse_somethingv1_csv_order_and_unlabelled(v1: Path):
    ann = parse_somethingv1(v1 / "labels.csv", v1 / "train.csv", v1 / "frames", class_order="csv", unlabelled_ok=True)
    assert ann.classes[:2] == ["Zooming in", "Holding something"] and len(ann.classes) == 5
    assert [s.label for s in ann.samples] == [1, 3, -1, 0]  # "77" is an unlabelled entry now
    assert ann.flip_map == {2: 4, 4: 2}
    assert ann.dropped == 2
    with pytest.raises(ValueError, match="class_order"):
        parse_somethingv1(v1 / "labels.csv", v1 / "train.csv", v1, class_order="alpha")


def test_parse_somethingv1_missing_and_empty_files(tmp_path: Path):
    with pytest.raises(AnnotationError, match=r"labels\.csv: labels file not found"):
        parse_somethingv1(tmp_path / "labels.csv", tmp_path / "train.csv", tmp_path)
    (tmp_path / "labels.csv").write_text("\n\n")
    with pytest.raises(AnnotationError, match=r"labels\.csv: labels file lists no classes"):
        parse_somethingv1(tmp_path / "labels.csv", tmp_path / "train.csv", tmp_path)


# ----------------------------------------------------------------------------- Something-Something V2
V2_LABELS = {
    "Holding something next to something": "1",
    "Putting something on a surface": "0",
    "Pushing something from left to right": "2",
    "Pushing something from right to left": "3",
}
V2_ENTRIES = [
    {"id": "78687", "template": "Holding [something] next to [something]", "placeholders": ["a", "b"]},
    {"id": 42, "template": "putting [something] on a surface"},
    {"id": "43", "template": "Juggling [something]"},
    {"template": "Holding [something] next to [something]"},
    "oops",
    {"id": "../../etc/passwd", "template": "Putting [something] on a surface"},
    {"id": "44"},
    {"id": "45", "template": "Pushing [something] from right to left"},
]


def test_parse_somethingv2(tmp_path: Path):
    (tmp_path / "labels.json").write_text(json.dumps(V2_LABELS))
    (tmp_path / "train.json").write_text(json.dumps(V2_ENTRIES))
    ann = parse_somethingv2(tmp_path / "labels.json", tmp_path / "train.json", tmp_path / "videos")
    assert ann.classes == [
        "Putting something on a surface",
        "Holding something next to something",
        "Pushing something from left to right",
        "Pushing something from right to left",
    ]
    vids, a = _abs(tmp_path / "videos"), tmp_path / "train.json"
    assert [(s.path, s.label, s.source, s.num_frames, s.start, s.is_video) for s in ann.samples] == [
        (f"{vids}/78687.webm", 1, f"{a}: entry 0 (id '78687')", None, 0, True),
        (f"{vids}/42.webm", 0, f"{a}: entry 1 (id '42')", None, 0, True),  # case-insensitive template match
        (f"{vids}/45.webm", 3, f"{a}: entry 7 (id '45')", None, 0, True),
    ]
    assert ann.problems == [
        f"{a}: entry 2 (id '43'): unknown template 'Juggling [something]' (class 'Juggling something' not in "
        "labels.json)",
        f"{a}: entry 3: expected an object with an 'id', got \"{{'template': 'Holding [something] next to "
        "[something]'}\"",
        f"{a}: entry 4: expected an object with an 'id', got 'oops'",
        f"{a}: entry 5 (id '../../etc/passwd'): video id is not a file name inside {vids}",
        f"{a}: entry 6 (id '44'): missing 'template'",
    ]
    assert ann.dropped == 5
    assert ann.flip_map == {2: 3, 3: 2}
    test = parse_somethingv2(tmp_path / "labels.json", tmp_path / "train.json", tmp_path, unlabelled_ok=True)
    assert [s.label for s in test.samples] == [1, 0, -1, 3]


@pytest.mark.parametrize(
    "labels,message",
    [
        ({"A": "0", "B": "2"}, "class ids must be 0..1 without gaps"),
        ({"A": "0", "B": "zero"}, "class 'B' has non-integer id 'zero'"),
        ({"A": "0", "B": "0"}, "id 0 used by 'A' and 'B'"),
        (["A", "B"], r"expected a JSON object \{class name: id\}, got list"),
        ({}, "expected a JSON object"),
    ],
)
def test_parse_somethingv2_labels_defects(tmp_path: Path, labels, message):
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(AnnotationError, match=message) as info:
        parse_somethingv2_labels(tmp_path / "labels.json")
    assert str(info.value).startswith(str(tmp_path / "labels.json"))


def test_parse_somethingv2_malformed_json_names_file_and_position(tmp_path: Path):
    (tmp_path / "labels.json").write_text('{"A": "0",\n "B": }')
    with pytest.raises(AnnotationError, match=r"labels\.json: cannot parse labels file as JSON \(.*line 2 column"):
        parse_somethingv2_labels(tmp_path / "labels.json")


# ----------------------------------------------------------------------------- Diving48
def test_parse_diving48(tmp_path: Path):
    vocab = [["Back", "15som", "05Twis", "FREE"], "Forward 25som NoTwis PIKE", ["Inward", "35som", "NoTwis", "TUCK"]]
    entries = [
        {"vid_name": "a_00000", "label": 2, "start_frame": 0, "end_frame": 52},
        {"vid_name": "b", "label": 0, "start_frame": 10, "end_frame": 19},
        {"vid_name": "c", "label": 1},
        {"vid_name": "../d", "label": 0},
        {"vid_name": 7, "label": 0},
        {"vid_name": "e", "label": 3},
        {"vid_name": "f", "label": True},
        {"vid_name": "g", "label": 1, "start_frame": 5, "end_frame": 4},
        ["h", 1],
    ]
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "train.json").write_text(json.dumps(entries))
    ann = parse_diving48(tmp_path / "vocab.json", tmp_path / "train.json", tmp_path / "rgb")
    assert ann.classes == ["Back 15som 05Twis FREE", "Forward 25som NoTwis PIKE", "Inward 35som NoTwis TUCK"]
    rgb, a = _abs(tmp_path / "rgb"), tmp_path / "train.json"
    assert [(s.path, s.label, s.source, s.num_frames, s.start) for s in ann.samples] == [
        (f"{rgb}/a_00000.mp4", 2, f"{a}: entry 0 ('a_00000')", 53, 0),  # end_frame + 1
        (f"{rgb}/b.mp4", 0, f"{a}: entry 1 ('b')", 10, 10),
        (f"{rgb}/c.mp4", 1, f"{a}: entry 2 ('c')", None, 0),
    ]
    assert ann.problems == [
        f"{a}: entry 3 ('../d'): vid_name is not a file name inside {rgb}",
        f"{a}: entry 4 (7): vid_name is not a file name inside {rgb}",
        f"{a}: entry 5 ('e'): label 3 out of range [0, 3)",
        f"{a}: entry 6 ('f'): label True is not an integer in [0, 3)",
        f"{a}: entry 7 ('g'): bad frame range start_frame=5 end_frame=4",
        f"{a}: entry 8: expected an object with 'vid_name' and 'label', got \"['h', 1]\"",
    ]
    assert ann.dropped == 6 and ann.flip_map == {}


@pytest.mark.parametrize(
    "vocab,annotation,message",
    [
        ([["Back"]], {"vid_name": "a", "label": 0}, r"train\.json: expected a JSON list of .* entries, got dict"),
        ({"0": "Back"}, [], r"vocab\.json: expected a non-empty JSON list of class descriptions, got dict"),
        ([["Back"], [1, 2]], [], r"vocab\.json: entry 1 must be a list of strings, got \[1, 2\]"),
    ],
)
def test_parse_diving48_wrong_json_shapes(tmp_path: Path, vocab, annotation, message):
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "train.json").write_text(json.dumps(annotation))
    with pytest.raises(AnnotationError, match=message):
        parse_diving48(tmp_path / "vocab.json", tmp_path / "train.json", tmp_path / "rgb")


# ----------------------------------------------------------------------------- file lists
RAWFRAMES = """frames/a 10 2

frames/b 2 0
frames/c 5 7
frames/d five 1
frames/e 5
../f 5 1
frames/g 0 1
frames/h 4 1
"""


def test_parse_filelist_rawframes_every_line_kind(tmp_path: Path):
    (tmp_path / "list.txt").write_text(RAWFRAMES)
    ann = parse_filelist("list.txt", tmp_path, classes=["zero", "one", "two"], min_frames=3)
    assert ann.list_format == "rawframes"
    root, a = _abs(tmp_path), tmp_path / "list.txt"
    assert [(s.path, s.label, s.source, s.num_frames, s.start, s.is_video) for s in ann.samples] == [
        (f"{root}/frames/a", 2, f"{a}:1", 10, 1, False),
        (f"{root}/frames/h", 1, f"{a}:9", 4, 1, False),
    ]
    assert ann.problems == [
        f"{a}:4: label 7 out of range [0, 3)",
        f"{a}:5: non-integer field in 'frames/d five 1' (expected 'path num_frames label')",
        f"{a}:6: expected 'path num_frames label' (3 fields), got 'frames/e 5'",
        f"{a}:7: path '../f' escapes the dataset root {root}",
        f"{a}:8: num_frames 0 < 1",
    ]
    assert ann.dropped == 5 and ann.filtered == 1  # frames/b: 2 frames < min_frames=3, not a problem
    assert ann.classes == ["zero", "one", "two"] and ann.flip_map == {}


def test_parse_filelist_infers_classes_from_labels(tmp_path: Path):
    (tmp_path / "list.txt").write_text(RAWFRAMES)
    ann = parse_filelist(tmp_path / "list.txt", tmp_path)  # absolute list path works too
    # Without names or a count, label 7 is fine and the classes are "0" .. "7".
    assert [s.label for s in ann.samples] == [2, 0, 7, 1]
    assert ann.classes == [str(i) for i in range(8)]
    assert ann.class_source == str(tmp_path / "list.txt")
    assert parse_filelist("list.txt", tmp_path, num_classes=3).classes == ["0", "1", "2"]


def test_parse_filelist_gst_blvnet_video(tmp_path: Path):
    (tmp_path / "gst.txt").write_text("frames/a\t10\t2\nframes b\t5\t1\n")
    gst = parse_filelist("gst.txt", tmp_path)
    assert gst.list_format == "gst"
    assert [(Path(s.path).name, s.num_frames, s.start, s.label) for s in gst.samples] == [
        ("a", 10, 1, 2),
        ("frames b", 5, 1, 1),  # tabs separate fields, so a path may hold a space
    ]
    (tmp_path / "blv.txt").write_text("frames/a 3 10 2\nframes/b 5 4 1\n")
    blv = parse_filelist("blv.txt", tmp_path, start_index=0)
    assert blv.list_format == "blvnet"
    assert [(s.num_frames, s.start, s.label) for s in blv.samples] == [(8, 3, 2)]  # files 3..10
    assert blv.problems == [f"{tmp_path}/blv.txt:2: end frame 4 < start frame 5"]
    (tmp_path / "vid.txt").write_text("\n\nvideos/v1.webm 4\nvideos/v2.mp4\n")
    vid = parse_filelist("vid.txt", tmp_path)
    assert vid.list_format == "video"
    assert [(s.num_frames, s.start, s.label, s.is_video) for s in vid.samples] == [(None, 0, 4, True)]
    assert vid.problems == [f"{tmp_path}/vid.txt:4: expected 'path label' (2 fields), got 'videos/v2.mp4'"]


def test_parse_filelist_forced_format_and_classes_file(tmp_path: Path):
    (tmp_path / "classes.txt").write_text("zero\n\none\n")
    (tmp_path / "list.txt").write_text("frames/a 3 10 1\n")
    ann = parse_filelist("list.txt", tmp_path, list_format="rawframes", classes="classes.txt")
    assert ann.classes == ["zero", "one"] and ann.class_source == str(tmp_path / "classes.txt")
    assert ann.samples == [] and ann.problems == [
        f"{tmp_path}/list.txt:1: expected 'path num_frames label' (3 fields), got 'frames/a 3 10 1'"
    ]
    with pytest.raises(ValueError, match="num_classes=3 but 2 class names"):
        parse_filelist("list.txt", tmp_path, classes="classes.txt", num_classes=3)
    with pytest.raises(AnnotationError, match=r"missing\.txt: class names file not found"):
        parse_filelist("list.txt", tmp_path, classes="missing.txt")
    with pytest.raises(ValueError, match="list_format must be one of"):
        parse_filelist("list.txt", tmp_path, list_format="csv")


def test_parse_filelist_empty_and_undetectable(tmp_path: Path):
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(AnnotationError, match=r"empty\.txt: file list is empty"):
        parse_filelist("empty.txt", tmp_path)
    (tmp_path / "odd.txt").write_text("\na b c d e\n")
    with pytest.raises(AnnotationError, match=r"odd\.txt:2: cannot detect the list format from 'a b c d e'"):
        parse_filelist("odd.txt", tmp_path)


@pytest.mark.parametrize(
    "line,fmt",
    [("a 1", "video"), ("a 10 1", "rawframes"), ("a\t10\t1", "gst"), ("a 1 10 1", "blvnet"), ("a", None),
     ("a b c d e", None), ("  a 10 1  ", "rawframes")],
)  # fmt: skip
def test_detect_list_format(line, fmt):
    assert detect_list_format(line) == fmt


# ----------------------------------------------------------------------------- errors, labels, skip counts
def test_annotation_error_is_one_line_naming_the_first_problem():
    one = annotation_error(["a.txt:3: bad"])
    assert str(one) == "a.txt:3: bad" and one.problems == ["a.txt:3: bad"]
    many = annotation_error(["a.txt:3: bad", "a.txt:5: worse", "b.txt:1: worst"])
    assert "\n" not in str(many)
    assert str(many) == ("a.txt:3: bad (and 2 more bad annotation entries; 'videotaf data check' lists them all)")
    assert len(many.problems) == 3


def test_raise_policy_error_is_one_line(tmp_path: Path):
    (tmp_path / "list.txt").write_text(RAWFRAMES)
    with pytest.raises(AnnotationError) as info:
        FileList(tmp_path, "list.txt", classes=["zero", "one", "two"])
    assert str(info.value) == (
        f"{tmp_path}/list.txt:4: label 7 out of range [0, 3) (and 4 more bad annotation entries; "
        "'videotaf data check' lists them all)"
    )
    assert len(info.value.problems) == 5


def test_labels_beyond_the_model_classes(tmp_path: Path):
    (tmp_path / "list.txt").write_text("v/a.mp4 3\nv/b.mp4 99\nv/c.mp4 0\nv/d.mp4 12\n")
    ds = FileList(tmp_path, "list.txt")
    assert ds.num_classes == 100  # inferred from the largest label: nothing looks wrong yet
    assert label_problems(ds, 100) == []
    assert label_problems(ds, 10) == [
        f"{tmp_path}/list.txt:2: label 99 out of range [0, 10) (num_classes=10; the dataset has 100 classes)",
        f"{tmp_path}/list.txt:4: label 12 out of range [0, 10) (num_classes=10; the dataset has 100 classes)",
    ]
    with pytest.raises(AnnotationError) as info:
        check_labels(ds, num_classes=10, what="model.num_classes")
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{tmp_path}/list.txt:2: label 99 out of range [0, 10)")
    assert "model.num_classes=10" in msg and "1 more bad annotation entry" in msg
    check_labels(ds, ds, num_classes=100)  # several datasets, all fine


def test_check_labels_unlabelled_test_entries(tmp_path: Path):
    (tmp_path / "something-something-v2-labels.json").write_text(json.dumps({"A": "0", "B": "1"}))
    (tmp_path / "something-something-v2-test.json").write_text(json.dumps([{"id": "1"}, {"id": "2"}]))
    test = SomethingV2(tmp_path, "test")
    check_labels(test, num_classes=2, allow_unlabelled=True)
    with pytest.raises(AnnotationError, match=r"test\.json: entry 0 \(id '1'\): label -1 \(an unlabelled test entry\)"):
        check_labels(test, num_classes=2)


def test_training_refuses_labels_beyond_model_num_classes(tmp_path: Path):
    from videotaf.config import Config
    from videotaf.engine.builders import build_datasets

    (tmp_path / "train.txt").write_text("v/a.mp4 3\nv/b.mp4 99\n")
    (tmp_path / "val.txt").write_text("v/c.mp4 1\n")
    cfg = Config()
    cfg.model.num_classes, cfg.model.num_frames = 10, 8
    cfg.data = DataConfig(
        kind="filelist", root=str(tmp_path), list_files={"train": "train.txt", "validation": "val.txt"}
    )
    with pytest.raises(AnnotationError, match=r"train\.txt:2: label 99 out of range \[0, 10\) \(model\.num_classes=10"):
        build_datasets(cfg)


def test_annotation_drops_count_as_skipped(tmp_path: Path):
    from videotaf.engine.builders import skipped_count

    (tmp_path / "list.txt").write_text(RAWFRAMES)
    ds = FileList(tmp_path, "list.txt", classes=["zero", "one", "two"], bad_input="skip", min_frames=3)
    assert len(ds) == 2 and ds.dropped_entries == 5 and len(ds.annotation_problems) == 5
    assert ds.skipped == 5 and skipped_count(ds) == 5  # what the training log reports
    ds._skips.increment()  # one substitute at load time
    assert ds.skipped == 6
    assert ds.reset_skipped() == 6
    assert ds.skipped == 5  # the dropped entries are missing from every epoch


def test_ssv1_duplicate_class_is_a_problem_but_drops_no_entry(v1: Path):
    from videotaf.data import SomethingV1

    ds = SomethingV1(v1, "train", labels_file="labels.csv", annotation_file="train.csv", bad_input="skip")
    assert len(ds.annotation_problems) == 4 and ds.dropped_entries == 3 and ds.skipped == 3
