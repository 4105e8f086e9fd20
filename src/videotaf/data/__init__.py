"""Data layer: official dataset layouts, TSN sampling, TSM transforms, bad-input policy, synthetic data.

Items are ``(clip (T, 3, H, W) float in [0, 1], label int)``. See :mod:`videotaf.data.datasets` for the
datasets (one module per layout, each with a pure annotation parse function, over :mod:`videotaf.data.base`),
:mod:`videotaf.data.sampling` (0-based indices), :mod:`videotaf.data.transforms`, :mod:`videotaf.data.check`
and :mod:`videotaf.data.synth`.
"""

from videotaf.data.check import CheckReport, SkipBadSamples, check_dataset, check_labels, label_problems
from videotaf.data.config import DATASET_KINDS, DataConfig, build_dataset
from videotaf.data.datasets import (
    SSV1_FLIP_PAIRS_CSV,
    SSV2_FLIP_PAIRS,
    Annotations,
    Diving48,
    FileList,
    Sample,
    SomethingV1,
    SomethingV2,
    VideoDataset,
    flip_pairs_by_name,
    parse_diving48,
    parse_filelist,
    parse_somethingv1,
    parse_somethingv2,
    read_class_list,
)
from videotaf.data.decode import decode_video_frames, load_jpeg_frames, video_frame_count
from videotaf.data.errors import AnnotationError, BadSampleError, DataError
from videotaf.data.sampling import clip_indices, segment_indices

__all__ = [
    "Annotations",
    "AnnotationError",
    "BadSampleError",
    "CheckReport",
    "DATASET_KINDS",
    "DataConfig",
    "DataError",
    "Diving48",
    "FileList",
    "SSV1_FLIP_PAIRS_CSV",
    "SSV2_FLIP_PAIRS",
    "Sample",
    "SkipBadSamples",
    "SomethingV1",
    "SomethingV2",
    "VideoDataset",
    "build_dataset",
    "check_dataset",
    "check_labels",
    "clip_indices",
    "decode_video_frames",
    "flip_pairs_by_name",
    "label_problems",
    "load_jpeg_frames",
    "parse_diving48",
    "parse_filelist",
    "parse_somethingv1",
    "parse_somethingv2",
    "read_class_list",
    "segment_indices",
    "video_frame_count",
]
