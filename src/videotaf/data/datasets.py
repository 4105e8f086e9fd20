"""The datasets of every layout, gathered (the modules that hold them are listed below).

- :mod:`videotaf.data.base`: :class:`VideoDataset` (sampling, decoding, transforms, bad-input policy),
  :class:`Sample`, :class:`Annotations` (what a parse function returns), :class:`SkipCounter`.
- :mod:`videotaf.data.somethingv1`: :class:`SomethingV1`, :func:`parse_somethingv1`.
- :mod:`videotaf.data.somethingv2`: :class:`SomethingV2`, :func:`parse_somethingv2`.
- :mod:`videotaf.data.diving48`: :class:`Diving48`, :func:`parse_diving48`.
- :mod:`videotaf.data.filelist`: :class:`FileList` (rawframes, GST, bLVNet and video lists),
  :func:`parse_filelist`.

Every parse function takes annotation file paths and returns :class:`Annotations` (entries, class names, the
problems of bad entries) without opening a video or frame file; each dataset class parses, then applies its
``bad_input`` policy (see :mod:`videotaf.data.base`).
"""

from __future__ import annotations

from videotaf.data.base import (
    Annotations,
    Sample,
    SkipCounter,
    VideoDataset,
    flip_pairs_by_name,
    read_class_list,
)
from videotaf.data.diving48 import Diving48, parse_diving48
from videotaf.data.filelist import LIST_FORMATS, FileList, parse_filelist
from videotaf.data.somethingv1 import SSV1_FLIP_PAIRS_CSV, SomethingV1, parse_somethingv1
from videotaf.data.somethingv2 import SSV2_FLIP_PAIRS, SomethingV2, parse_somethingv2

__all__ = [
    "Annotations",
    "Sample",
    "SkipCounter",
    "VideoDataset",
    "SomethingV1",
    "SomethingV2",
    "Diving48",
    "FileList",
    "LIST_FORMATS",
    "SSV1_FLIP_PAIRS_CSV",
    "SSV2_FLIP_PAIRS",
    "flip_pairs_by_name",
    "parse_diving48",
    "parse_filelist",
    "parse_somethingv1",
    "parse_somethingv2",
    "read_class_list",
]
