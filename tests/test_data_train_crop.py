"""``data.train_crop``: the training view is the TSN multi-scale crop, the evaluation view, or the whole frame.

Planted frames make the expected views exact: a 60 x 80 frame, red and green at 128 with blue rising along the
columns (so a mirrored view differs from the view), and a 10 x 10 block of its own colour in each corner. With ``crop_size`` 32 and ``scale_size`` 40 the evaluation window is
``side = round(32 * 60 / 40) = 48``, ``top = (60 - 48) // 2 = 6``, ``left = (80 - 48) // 2 = 16``: it cuts the
left and right corner blocks away (columns 0-9 and 70-79 lie outside 16..63) and half of the top and bottom ones'
rows. The whole frame resized to 32 x 32 keeps each corner block under the output's corner pixel.
"""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from videotaf.config import ConfigError, config_from_dict
from videotaf.data import DataConfig, FileList, Sample, VideoDataset, build_dataset
from videotaf.data.transforms import TRAIN_CROPS, center_crop_params, crop_resize, to_float, train_crop_params

H, W, CROP, SCALE, T = 60, 80, 32, 40, 4
CORNERS = {  # (row slice, column slice) of each block -> its colour
    "top_left": ((slice(0, 10), slice(0, 10)), (255, 0, 0)),
    "top_right": ((slice(0, 10), slice(70, 80)), (0, 255, 0)),
    "bottom_left": ((slice(50, 60), slice(0, 10)), (0, 0, 255)),
    "bottom_right": ((slice(50, 60), slice(70, 80)), (255, 255, 0)),
}
GREY = 128


def planted_frame() -> np.ndarray:
    frame = np.full((H, W, 3), GREY, dtype=np.uint8)
    frame[:, :, 2] = 3 * np.arange(W)  # 0 .. 237, left to right
    for (rows, cols), colour in CORNERS.values():
        frame[rows, cols] = colour
    return frame


class Planted(VideoDataset):
    """One 8-frame "video" whose frames are all :func:`planted_frame` (so train and test sampling see the same)."""

    def __init__(self, **kw) -> None:
        super().__init__(num_frames=T, crop_size=CROP, scale_size=SCALE, **kw)
        self.classes = ["a", "b"]
        self.samples = [Sample("planted", 0, "test:1", num_frames=8, is_video=True)]
        self.flip_map = {0: 1, 1: 0}  # what a parse function's left/right pairs would give (_finish is skipped)

    def read_frames(self, index: int, indices) -> np.ndarray:
        return np.stack([planted_frame()] * len(indices))


def corner_colours(clip: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The colour (0..255) of each output corner pixel of the first frame."""
    px = {"top_left": (0, 0), "top_right": (0, -1), "bottom_left": (-1, 0), "bottom_right": (-1, -1)}
    return {k: tuple(int(round(float(v) * 255)) for v in clip[0, :, r, c]) for k, (r, c) in px.items()}


def eval_view() -> torch.Tensor:
    x = torch.from_numpy(np.stack([planted_frame()] * T)).permute(0, 3, 1, 2)
    return to_float(crop_resize(x, center_crop_params(H, W, SCALE, CROP), CROP))


def test_center_is_exactly_the_evaluation_view() -> None:
    assert center_crop_params(H, W, SCALE, CROP) == (6, 16, 48, 48)  # the window of the module docstring
    clip, label = Planted(train=True, train_crop="center")[0]
    assert clip.shape == (T, 3, CROP, CROP) and label == 0
    assert torch.equal(clip, eval_view())
    assert torch.equal(clip, Planted(train=False)[0][0])  # the evaluation dataset's own item
    # The window cuts every corner block away: no corner pixel keeps a corner colour.
    colours = {c for _, c in CORNERS.values()}
    assert not set(corner_colours(clip).values()) & colours


def test_center_has_no_spatial_randomness() -> None:
    ds = Planted(train=True, train_crop="center")  # seed None: the global RNG, as DataLoader workers use it
    torch.manual_seed(0)
    first = ds[0][0]
    assert all(torch.equal(ds[0][0], first) for _ in range(5))
    seeded = Planted(train=True, train_crop="center", seed=3)
    draws = []
    for epoch in range(3):
        seeded.set_epoch(epoch)
        draws.append(seeded[0][0])
    assert all(torch.equal(d, first) for d in draws)


def test_center_still_flips() -> None:
    ds = Planted(train=True, train_crop="center", flip=True)
    torch.manual_seed(0)
    view = eval_view()
    seen = {"plain": 0, "flipped": 0}
    for _ in range(40):
        clip, label = ds[0]
        if torch.equal(clip, view):
            assert label == 0
            seen["plain"] += 1
        else:
            assert torch.equal(clip, view.flip(-1)) and label == 1  # mirrored, label swapped, nothing else
            seen["flipped"] += 1
    assert seen["plain"] > 5 and seen["flipped"] > 5


def test_none_keeps_the_whole_frame() -> None:
    clip, _ = Planted(train=True, train_crop="none")[0]
    assert clip.shape == (T, 3, CROP, CROP)
    # Every corner block is under the output corner (32/60 and 32/80 of the frame: a block is 5 x 4 output pixels).
    assert corner_colours(clip) == {k: c for k, (_, c) in CORNERS.items()}
    assert [round(float(v) * 255) for v in clip[0, :2, CROP // 2, CROP // 2]] == [GREY, GREY]  # the middle
    x = torch.from_numpy(np.stack([planted_frame()] * T)).permute(0, 3, 1, 2)
    assert torch.equal(clip, to_float(crop_resize(x, (0, 0, H, W), CROP)))


def test_multiscale_is_the_default_and_random() -> None:
    ds = Planted(train=True)
    assert ds.train_crop == "multiscale" and DataConfig().train_crop == "multiscale"
    torch.manual_seed(0)
    views = {tuple(ds[0][0][0, 0].flatten()[:64].tolist()) for _ in range(20)}
    assert len(views) > 1  # the default draws crops; "center" (above) never does
    # Same generator, same box as multiscale_crop_params draws (train_crop_params adds no draw of its own).
    from videotaf.data.transforms import multiscale_crop_params

    a = train_crop_params("multiscale", H, W, CROP, SCALE, generator=torch.Generator().manual_seed(5))
    assert a == multiscale_crop_params(H, W, CROP, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    assert train_crop_params("center", H, W, CROP, SCALE, generator=g) == (6, 16, 48, 48)
    assert train_crop_params("none", H, W, CROP, SCALE, generator=g) == (0, 0, H, W)
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(5).get_state())  # nothing drawn


def test_decode_size_follows_the_view() -> None:
    # multi-scale: the smallest crop is 0.66 of the short side, ceil(32 / 0.66) = 49; center: the evaluation
    # window, so scale_size 40; none: the whole frame shrinks to the crop, so the crop's 32.
    assert Planted(train=True).decode_short_side() == 49
    assert Planted(train=True, train_crop="center").decode_short_side() == SCALE
    assert Planted(train=True, train_crop="none").decode_short_side() == CROP


def test_bad_values_are_refused_naming_the_field() -> None:
    assert typing.get_args(typing.get_type_hints(DataConfig)["train_crop"]) == TRAIN_CROPS
    with pytest.raises(ValueError, match=r"^data.train_crop must be one of 'multiscale', 'center', 'none', got 'x'$"):
        DataConfig(train_crop="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        config_from_dict({"data": {"train_crop": "random"}}, "cfg.yaml")
    assert "\n" not in str(info.value)
    assert "field 'data.train_crop' expects 'multiscale' | 'center' | 'none', got 'random'" in str(info.value)
    with pytest.raises(ValueError, match="train_crop must be one of"):
        Planted(train=True, train_crop="corner")
    with pytest.raises(ValueError, match="train_crop must be one of"):
        train_crop_params("corner", H, W, CROP, SCALE)  # type: ignore[arg-type]


def test_config_reaches_the_dataset_on_real_frames(real_fixtures: Path, tmp_path: Path) -> None:
    # frames_a: 10 JPEG frames. With T = 10 every training segment is one frame long, so training and test
    # sampling pick the same frames and the "center" training item must equal the evaluation item exactly.
    (tmp_path / "frames_a").symlink_to(real_fixtures / "frames_a")
    (tmp_path / "frames.txt").write_text("frames_a 10 1\n")
    common = dict(kind="filelist", root=str(tmp_path), list_files={"train": "frames.txt"}, num_frames=10)
    cfg = DataConfig(**common, crop_size=56, scale_size=64, train_crop="center", num_workers=0)
    train = build_dataset(cfg, "train", train=True)
    assert isinstance(train, FileList) and train.train_crop == "center"
    test = build_dataset(cfg, "train", train=False)
    assert torch.equal(train[0][0], test[0][0])
    whole = build_dataset(DataConfig(**common, crop_size=56, train_crop="none"), "train", train=True)
    frames = torch.from_numpy(whole.read_frames(0, list(range(10)))).permute(0, 3, 1, 2)
    assert torch.equal(whole[0][0], to_float(crop_resize(frames, (0, 0, *frames.shape[-2:]), 56)))
