"""Every annotation format parsed from small files written in the official layouts (exact labels and counts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from videotaf.data import (
    DataConfig,
    Diving48,
    FileList,
    SomethingV1,
    SomethingV2,
    build_dataset,
    flip_pairs_by_name,
)
from videotaf.data.synth import write_video


def _frames(n: int, h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    # Frame k carries its index in the red channel so tests can read back which frames were sampled.
    rng = np.random.default_rng(seed)
    f = rng.integers(0, 60, (n, h, w, 3), dtype=np.uint8)
    f[..., 0] = (np.arange(n, dtype=np.uint8) * 20)[:, None, None]
    return f


def _jpeg_folder(folder: Path, n: int, template: str, start: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(_frames(n)):
        Image.fromarray(f).save(folder / template.format(start + k), quality=95)


# ----------------------------------------------------------------------------- Something-Something V1
V1_CLASSES = ["Zooming in", "Holding something", "Pushing something from left to right", "Dropping something",
              "Pushing something from right to left"]  # fmt: skip


@pytest.fixture
def ssv1(tmp_path: Path) -> Path:
    (tmp_path / "something-something-v1-labels.csv").write_text("\n".join(V1_CLASSES) + "\n")
    (tmp_path / "something-something-v1-train.csv").write_text(
        "100218;Holding something\n4;Dropping something\n\n77;Zooming in\n"
    )
    (tmp_path / "something-something-v1-validation.csv").write_text("9;Pushing something from right to left\n")
    (tmp_path / "something-something-v1-test.csv").write_text("5\n6\n")
    frames = tmp_path / "20bn-something-something-v1"
    for vid, n in (("100218", 12), ("4", 5), ("77", 3), ("9", 8)):
        _jpeg_folder(frames / vid, n, "{:05d}.jpg")
    return tmp_path


def test_ssv1_sorted_order_labels_counts_and_frames(ssv1: Path):
    ds = SomethingV1(ssv1, "train", num_frames=4, crop_size=16, scale_size=16)
    assert ds.classes == sorted(V1_CLASSES) and ds.num_classes == 5
    assert len(ds) == 3
    assert [ds.classes[s.label] for s in ds.samples] == ["Holding something", "Dropping something", "Zooming in"]
    assert [ds.frame_count(i) for i in range(3)] == [12, 5, 3]
    assert ds.samples[0].source.endswith("something-something-v1-train.csv:1")
    assert ds.samples[2].source.endswith(":4")  # blank line 3 skipped, numbering kept
    clip, label = ds[0]
    assert clip.shape == (4, 3, 16, 16) and clip.dtype == torch.float32
    assert 0.0 <= clip.min() and clip.max() <= 1.0
    assert label == ds.classes.index("Holding something")
    # 12 frames, test sampling [1, 4, 7, 10] (0-based) -> red channel 20 * index, read back from the centre.
    assert ds.sample_indices(0) == [[1, 4, 7, 10]]
    red = clip[:, 0, 8, 8] * 255
    assert torch.allclose(red, torch.tensor([20.0, 80, 140, 200]), atol=8)


def test_ssv1_csv_order_and_test_split(ssv1: Path):
    ds = SomethingV1(ssv1, "val", class_order="csv", num_frames=2, crop_size=16, scale_size=16)
    assert ds.split == "validation" and ds.classes == V1_CLASSES
    assert [s.label for s in ds.samples] == [4]
    test = SomethingV1(ssv1, "test", num_frames=2)
    assert [s.label for s in test.samples] == [-1, -1]


def test_ssv1_flip_map_csv_pairs_follow_class_order(tmp_path: Path):
    names = [f"class {i:03d}" for i in range(174)][::-1]  # CSV order is reverse-alphabetical here
    (tmp_path / "something-something-v1-labels.csv").write_text("\n".join(names) + "\n")
    (tmp_path / "something-something-v1-train.csv").write_text("")
    csv = SomethingV1(tmp_path, "train", class_order="csv")
    assert csv.flip_map == {2: 4, 4: 2, 30: 41, 41: 30, 52: 66, 66: 52}
    srt = SomethingV1(tmp_path, "train", class_order="sorted")
    expect = {}
    for a, b in ((2, 4), (30, 41), (52, 66)):
        ia, ib = srt.classes.index(names[a]), srt.classes.index(names[b])
        expect[ia], expect[ib] = ib, ia
    assert srt.flip_map == expect and srt.flip_map != csv.flip_map


# ----------------------------------------------------------------------------- Something-Something V2
def _ssv2(root: Path, classes: list[str], entries: dict[str, list[dict]], frames: int = 6) -> Path:
    (root / "something-something-v2-labels.json").write_text(json.dumps({c: str(i) for i, c in enumerate(classes)}))
    for split, items in entries.items():
        (root / f"something-something-v2-{split}.json").write_text(json.dumps(items))
    vids = root / "20bn-something-something-v2"
    vids.mkdir(parents=True, exist_ok=True)
    for items in entries.values():
        for e in items:
            write_video(vids / f"{e['id']}.webm", _frames(frames, 32, 32))
    return root


def test_ssv2_template_to_class_and_webm_decode(tmp_path: Path):
    classes = ["Holding something next to something", "Putting something on a surface", "Zooming in on something"]
    train = [
        {"id": "78687", "label": "holding potato next to vicks", "template": "Holding [something] next to [something]",
         "placeholders": ["potato", "vicks"]},
        {"id": "42", "label": "zooming", "template": "Zooming in on [something]", "placeholders": ["x"]},
        {"id": "43", "label": "put", "template": "putting [something] on a surface", "placeholders": ["x"]},
    ]  # fmt: skip
    root = _ssv2(tmp_path, classes, {"train": train, "test": [{"id": "7"}]})
    ds = SomethingV2(root, "train", num_frames=4, crop_size=16, scale_size=20)
    assert ds.classes == classes and len(ds) == 3
    assert [s.label for s in ds.samples] == [0, 2, 1]  # last one matched case-insensitively
    assert Path(ds.samples[0].path).name == "78687.webm"
    clip, label = ds[1]
    assert clip.shape == (4, 3, 16, 16) and label == 2
    assert ds.frame_count(1) == 6  # WebM header says 0; counted from the packets
    test = SomethingV2(root, "test", num_frames=2)
    assert [s.label for s in test.samples] == [-1]


def test_ssv2_official_flip_map_matches_ids_and_names(ssv2_classes: list[str]):
    classes = ssv2_classes
    assert len(classes) == 174
    official = {86: 87, 87: 86, 93: 94, 94: 93, 166: 167, 167: 166}
    assert flip_pairs_by_name(classes) == official


def test_ssv2_dataset_flip_swaps_exactly_the_mapped_classes(tmp_path: Path, ssv2_classes: list[str]):
    classes = ssv2_classes
    mapped = [86, 87, 94, 167]
    unmapped = [0, 88]
    items = [{"id": str(i), "template": classes[c]} for i, c in enumerate(mapped + unmapped)]
    root = _ssv2(tmp_path, classes, {"train": items}, frames=4)
    ds = SomethingV2(root, "train", train=True, flip=True, num_frames=2, crop_size=16, seed=0)
    assert ds.flip_map == {86: 87, 87: 86, 93: 94, 94: 93, 166: 167, 167: 166}
    ref = SomethingV2(root, "train", train=True, flip=False, num_frames=2, crop_size=16, seed=0)
    outcomes = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        ref.set_epoch(epoch)
        for i, c in enumerate(mapped + unmapped):
            (x, y), (x0, y0) = ds[i], ref[i]
            assert y0 == c
            flipped = torch.equal(x, x0.flip(-1)) and not torch.equal(x, x0)
            assert flipped or torch.equal(x, x0)
            assert y == (official_swap(c) if flipped else c)
            outcomes.add((c in (86, 87, 94, 167), flipped))
    assert outcomes == {(True, True), (True, False), (False, True), (False, False)}


def official_swap(c: int) -> int:
    return {86: 87, 87: 86, 93: 94, 94: 93, 166: 167, 167: 166}.get(c, c)


def test_flip_is_off_by_default_for_something_something(tmp_path: Path, ssv2_classes: list[str]):
    classes = ssv2_classes
    root = _ssv2(tmp_path, classes, {"train": [{"id": "1", "template": classes[86]}]}, frames=4)
    ds = SomethingV2(root, "train", train=True, num_frames=2, crop_size=16)
    assert ds.flip is False
    assert all(ds[0][1] == 86 for _ in range(10))


# ----------------------------------------------------------------------------- Diving48
def test_diving48_vocab_labels_and_frame_ranges(tmp_path: Path):
    vocab = [
        ["Back", "15som", "05Twis", "FREE"],
        ["Forward", "25som", "NoTwis", "PIKE"],
        ["Inward", "35som", "NoTwis", "TUCK"],
    ]
    (tmp_path / "Diving48_vocab.json").write_text(json.dumps(vocab))
    train = [{"vid_name": "_8Vy3dlHg2w_00000", "label": 2, "start_frame": 0, "end_frame": 9},
             {"vid_name": "abc_00001", "label": 0, "start_frame": 0, "end_frame": 5}]  # fmt: skip
    (tmp_path / "Diving48_V2_train.json").write_text(json.dumps(train))
    (tmp_path / "Diving48_V2_test.json").write_text(json.dumps(train[1:]))
    (tmp_path / "rgb").mkdir()
    write_video(tmp_path / "rgb" / "_8Vy3dlHg2w_00000.mp4", _frames(10, 32, 32), codec="mpeg4")
    write_video(tmp_path / "rgb" / "abc_00001.mp4", _frames(6, 32, 32), codec="mpeg4")
    ds = Diving48(tmp_path, "train", num_frames=4, crop_size=16, scale_size=16)
    assert ds.num_classes == 3 and ds.classes[0] == "Back 15som 05Twis FREE"
    assert [s.label for s in ds.samples] == [2, 0]
    assert [ds.frame_count(i) for i in range(2)] == [10, 6]  # end_frame + 1
    clip, label = ds[0]
    assert clip.shape == (4, 3, 16, 16) and label == 2
    assert len(Diving48(tmp_path, "validation")) == 1  # alias of the test split


# ----------------------------------------------------------------------------- file lists
@pytest.fixture
def rawroot(tmp_path: Path) -> Path:
    _jpeg_folder(tmp_path / "frames" / "a", 10, "img_{:05d}.jpg")
    _jpeg_folder(tmp_path / "frames" / "b", 6, "img_{:05d}.jpg")
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "v1.webm", _frames(8, 32, 32))
    (tmp_path / "classes.txt").write_text("zero\none\ntwo\n")
    return tmp_path


@pytest.mark.parametrize(
    "fmt,text,counts,starts",
    [
        ("rawframes", "frames/a 10 2\nframes/b 6 0\n", [10, 6], [1, 1]),
        ("gst", "frames/a\t10\t2\nframes/b\t6\t0\n", [10, 6], [1, 1]),
        ("blvnet", "frames/a 3 10 2\nframes/b 1 6 0\n", [8, 6], [3, 1]),
    ],
)
def test_filelist_frame_formats_detected_and_parsed(rawroot: Path, fmt, text, counts, starts):
    (rawroot / "list.txt").write_text(text)
    ds = FileList(rawroot, "list.txt", classes="classes.txt", num_frames=4, crop_size=16, scale_size=16)
    assert ds.list_format == fmt
    assert ds.classes == ["zero", "one", "two"]
    assert [s.label for s in ds.samples] == [2, 0]
    assert [ds.frame_count(i) for i in range(2)] == counts
    assert [s.start for s in ds.samples] == starts
    clip, label = ds[0]
    assert clip.shape == (4, 3, 16, 16) and label == 2
    assert ds.frame_template == "img_{:05d}.jpg"
    assert FileList(rawroot, "list.txt", list_format=fmt).list_format == fmt


def test_filelist_blvnet_reads_frames_start_to_end(rawroot: Path):
    (rawroot / "list.txt").write_text("frames/a 3 10 1\n")
    ds = FileList(rawroot, "list.txt", num_frames=8, crop_size=16, scale_size=16)
    # 8 frames 3..10, test sampling picks each once -> frame files 3..10 -> red = 20 * (file - 1).
    clip, _ = ds[0]
    assert torch.allclose(clip[:, 0, 8, 8] * 255, torch.arange(2, 10).float() * 20, atol=8)


def test_filelist_video_format_and_inferred_classes(rawroot: Path):
    (rawroot / "list.txt").write_text("videos/v1.webm 4\n")
    ds = FileList(rawroot, "list.txt", num_frames=4, crop_size=16, scale_size=16)
    assert ds.list_format == "video" and ds.num_classes == 5 and ds.classes[4] == "4"
    assert ds.frame_count(0) == 8
    assert ds[0][0].shape == (4, 3, 16, 16)


def test_filelist_min_frames_drops_short_videos(rawroot: Path):
    (rawroot / "list.txt").write_text("frames/a 10 2\nframes/b 2 0\n")
    assert len(FileList(rawroot, "list.txt", min_frames=3)) == 1


def test_build_dataset_from_config(rawroot: Path, ssv1: Path):
    (rawroot / "train.txt").write_text("frames/a 10 2\n")
    cfg = DataConfig(kind="filelist", root=str(rawroot), list_files={"train": "train.txt"}, classes_file="classes.txt",
                     num_frames=4, crop_size=16, scale_size=16, seed=1)  # fmt: skip
    ds = build_dataset(cfg, "train", train=True)
    assert isinstance(ds, FileList) and ds.train and ds.num_frames == 4 and ds.seed == 1
    with pytest.raises(ValueError, match="no entry for split 'validation'"):
        build_dataset(cfg, "validation", train=False)
    v1 = build_dataset(DataConfig(kind="somethingv1", root=str(ssv1), class_order="csv", test_clips=2,
                                  num_frames=2, crop_size=16, scale_size=16), "validation", train=False)  # fmt: skip
    assert v1.classes == V1_CLASSES and v1[0][0].shape == (4, 3, 16, 16)
    with pytest.raises(ValueError, match="data.kind"):
        DataConfig(kind="kinetics")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown data config key"):
        DataConfig.from_dict({"kind": "somethingv2", "frames": 8})


def test_flip_warns_about_left_right_classes_without_a_mirror(tmp_path: Path, caplog):
    classes = ["Pushing something to the left", "Pushing something to the right", "Sliding something to the left"]
    root = _ssv2(tmp_path, classes, {"train": [{"id": "1", "template": classes[0]}]}, frames=4)
    with caplog.at_level("WARNING", logger="videotaf.data.datasets"):
        ds = SomethingV2(root, "train", train=True, flip=True, num_frames=2, crop_size=16)
    assert ds.flip_map == {0: 1, 1: 0}
    assert "Sliding something to the left" in caplog.text and "Pushing something" not in caplog.text


def test_skip_counter_survives_copies(tmp_path: Path):
    import copy
    import pickle

    root = _ssv2(tmp_path, ["A"], {"train": [{"id": "1", "template": "A"}]}, frames=4)
    ds = SomethingV2(root, "train", bad_input="skip")
    ds._skips.increment()
    assert copy.deepcopy(ds).skipped == 1 and pickle.loads(pickle.dumps(ds)).skipped == 1
