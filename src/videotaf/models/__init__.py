"""Video classifiers behind one contract (:class:`~videotaf.models.base.VideoClassifier`) and a registry.

``build(name, num_classes, num_frames, **options)`` / ``available()``. Importing this package registers "tsm",
"tpn", "blvnet_tam", "gst", "gst_l" and the torchvision wrappers "tv_*".
"""

from videotaf.models import blvnet, gst, torchvision_models, tpn, tsm  # noqa: F401  (registration)
from videotaf.models.adapter import WrappedVideoModel, unwrap_state_dict, wrap_model
from videotaf.models.base import VideoClassifier
from videotaf.models.registry import available, build, model_options, register_model
from videotaf.models.weights import load_imagenet, load_pretrained

__all__ = [
    "VideoClassifier",
    "WrappedVideoModel",
    "available",
    "build",
    "load_imagenet",
    "load_pretrained",
    "model_options",
    "register_model",
    "unwrap_state_dict",
    "wrap_model",
]
