"""Layers shared by the models (timm-style: layers live apart from the models that use them)."""

from videotaf.models.layers.gst import GSTConv, gst_split
from videotaf.models.layers.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from videotaf.models.layers.tam import TAM
from videotaf.models.layers.temporal_shift import TemporalShift, temporal_shift

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "GSTConv",
    "Normalize",
    "TAM",
    "TemporalShift",
    "gst_split",
    "temporal_shift",
]
