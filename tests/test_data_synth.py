"""The synthetic long-term-motion dataset: deterministic, balanced, read unchanged by SomethingV2."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from videotaf.cli import main as cli_main
from videotaf.data import SomethingV2, read_class_list
from videotaf.data.synth import CATALOG, _trajectory, synthesize

SMALL = dict(num_classes=4, train_per_class=2, val_per_class=1, num_frames=8, size=32)


@pytest.fixture(scope="module")
def synth_pair(tmp_path_factory) -> tuple[Path, Path]:
    a = synthesize(tmp_path_factory.mktemp("a"), seed=3, **SMALL)
    b = synthesize(tmp_path_factory.mktemp("b"), seed=3, **SMALL)
    return a, b


def test_same_seed_gives_identical_files(synth_pair):
    a, b = synth_pair
    for name in ("something-something-v2-labels.json", "something-something-v2-train.json",
                 "something-something-v2-validation.json", "long_term_classes.txt", "synth_meta.json"):  # fmt: skip
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ds_a = SomethingV2(a, "train", num_frames=8, crop_size=32, scale_size=32)
    ds_b = SomethingV2(b, "train", num_frames=8, crop_size=32, scale_size=32)
    for i in range(len(ds_a)):
        assert np.array_equal(ds_a.read_frames(i, list(range(8))), ds_b.read_frames(i, list(range(8))))


def test_other_seed_differs(synth_pair, tmp_path):
    c = synthesize(tmp_path, seed=4, **SMALL)
    a = synth_pair[0]
    assert (a / "something-something-v2-train.json").read_bytes() != (
        c / "something-something-v2-train.json"
    ).read_bytes()
    va = SomethingV2(a, "train", num_frames=8).read_frames(0, [0])
    vc = SomethingV2(c, "train", num_frames=8).read_frames(0, [0])
    assert not np.array_equal(va, vc)


def test_layout_balance_and_decoding(synth_pair):
    root = synth_pair[0]
    train = SomethingV2(root, "train", num_frames=4, crop_size=24, scale_size=32, train=True, seed=0)
    val = SomethingV2(root, "validation", num_frames=4, crop_size=24, scale_size=32)
    assert train.num_classes == 4 and train.classes == sorted(c.name for c in CATALOG[:4])
    assert Counter(s.label for s in train.samples) == {i: 2 for i in range(4)}
    assert Counter(s.label for s in val.samples) == {i: 1 for i in range(4)}
    assert len({Path(s.path).name for s in train.samples + val.samples}) == 12  # unique ids across splits
    assert train.frame_count(0) == 8  # WebM without a header count
    clip, label = train[0]
    assert clip.shape == (4, 3, 24, 24) and 0 <= label < 4
    assert 0.0 <= clip.min() and clip.max() <= 1.0 and clip.std() > 0.02
    entry = json.loads((root / "something-something-v2-train.json").read_text())[0]
    assert set(entry) == {"id", "label", "template", "placeholders"} and "[something]" in entry["template"]


def test_long_term_classes_share_their_first_motion(synth_pair):
    root = synth_pair[0]
    # First four classes: lift+hold, lift+drop back, push right+stop, push right+slide back -> all long-term.
    assert read_class_list(root / "long_term_classes.txt") == sorted(c.name for c in CATALOG[:4])


def test_long_term_list_excludes_unique_first_motions(tmp_path):
    root = synthesize(tmp_path, num_classes=8, train_per_class=1, val_per_class=1, num_frames=8, size=16, seed=0)
    long_term = read_class_list(root / "long_term_classes.txt")
    assert len(long_term) == 6
    assert "Pressing something down" not in long_term  # its first motion is unique among the 8
    assert "Pushing something to the left until it stops" not in long_term


def test_classes_of_a_group_differ_only_after_the_first_phase():
    t, size = 16, 64
    tracks = {}
    for cls in CATALOG[:2] + CATALOG[4:5]:  # lift + hold / drop back / rise further
        pos, phases = _trajectory(np.random.default_rng(11), cls, t, size)
        tracks[cls.ending] = (pos, phases)
    s2 = tracks["hold"][1]["phase2"][0]
    assert all(p["phase1"] == tracks["hold"][1]["phase1"] for _, p in tracks.values())
    for pos, _ in tracks.values():
        # Phase 1 identical up to hand tremor: same fast lift.
        assert np.abs(pos[:s2, 1] - tracks["hold"][0][:s2, 1]).max() < 4
    end = {k: v[0][-1, 1] for k, v in tracks.items()}  # y grows downwards
    assert end["continue"] < end["hold"] - 3 < end["back"] - 6


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "s"
    rc = cli_main(["data", "synth", "--out", str(out), "--classes", "3", "--train-per-class", "1",
                   "--val-per-class", "1", "--frames", "8", "--size", "16", "--seed", "1"])  # fmt: skip
    assert rc == 0 and str(out) in capsys.readouterr().out
    assert len(SomethingV2(out, "validation")) == 3
    assert cli_main(["data", "synth", "--out", str(out), "--classes", "99"]) == 2


def test_nuisance_zero_gives_plain_still_clips(tmp_path):
    from videotaf.data.synth import render_clip

    plain, _ = render_clip(np.random.default_rng(0), CATALOG[0], 8, 32, nuisance=0.0)
    busy, _ = render_clip(np.random.default_rng(0), CATALOG[0], 8, 32, nuisance=1.0)
    # Frame 0 precedes every motion: with no nuisance the background is one flat colour (corners agree).
    corners = plain[0, [0, 0, -1, -1], [0, -1, 0, -1]].astype(int)
    assert np.abs(corners - corners[0]).max() <= 1
    assert np.abs(np.diff(busy[0].astype(int), axis=1)).mean() > np.abs(np.diff(plain[0].astype(int), axis=1)).mean()
