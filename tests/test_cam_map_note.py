"""``videotaf finetune`` says which layer TA reads and its map size before a TA run (issue 19)."""

from __future__ import annotations

import pytest

from videotaf.config import config_from_dict
from videotaf.engine.finetune import cam_map_note, cam_map_size


def tsm_config(method: str, crop: int, stem: str, cam_layer: str | None = None):
    return config_from_dict(
        {
            "model": {
                "name": "tsm",
                "num_classes": 4,
                "num_frames": 4,
                "options": {"depth": 18, "width": 0.25, "stem": stem, "blocks": [1, 1, 1, 1]},
            },
            "data": {"kind": "somethingv2", "root": "unused", "num_frames": 4, "crop_size": crop, "scale_size": crop},
            "adversarial": {"method": method, "cam_layer": cam_layer},
        },
        "test",
    )


@pytest.mark.parametrize(
    ("crop", "stem", "layer", "expected"),
    [
        (64, "imagenet", None, ("backbone.layer4", 2, 2)),  # 64 / 32
        (64, "small", None, ("backbone.layer4", 4, 4)),  # 64 / 16
        (64, "imagenet", "backbone.layer3", ("backbone.layer3", 4, 4)),  # 64 / 16
        (96, "small", "backbone.layer2", ("backbone.layer2", 24, 24)),  # 96 / 4: small stem 2, layer2 2
    ],
)
def test_map_size_follows_the_stride_of_the_layer_ta_reads(crop, stem, layer, expected):
    assert cam_map_size(tsm_config("taf", crop, stem, layer)) == expected


def test_note_warns_below_4x4_and_is_silent_for_other_methods():
    coarse = cam_map_note(tsm_config("taf", 64, "imagenet"))
    fine = cam_map_note(tsm_config("taf", 64, "small"))
    assert coarse is not None and coarse.startswith("TA reads backbone.layer4: 2x2 maps per frame at 64 px")
    assert "4x4 or more" in coarse
    assert fine == "TA reads backbone.layer4: 4x4 maps per frame at 64 px input"
    assert cam_map_note(tsm_config("plain", 64, "imagenet")) is None
    assert cam_map_note(tsm_config("advprop", 64, "small")) is None
