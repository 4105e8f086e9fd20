"""Video classifiers behind one contract (:class:`~videotaf.models.base.VideoClassifier`) and a registry.

``build(name, num_classes, num_frames, **options)`` / ``available()``. Importing this package registers "tsm",
"tpn", "blvnet_tam", "gst", "gst_l", the torchvision wrappers "tv_*" and "hf" (a Hugging Face video transformer from a
local directory; :func:`from_hf` wraps one in memory; needs the ``hf`` extra only when used).
"""

from videotaf.models import blvnet, gst, hf, torchvision_models, tpn, tsm  # noqa: F401  (registration)
from videotaf.models.adapter import WrappedVideoModel, unwrap_state_dict, wrap_model
from videotaf.models.base import VideoClassifier
from videotaf.models.hf import HFVideoModel, from_hf
from videotaf.models.registry import available, build, model_options, register_model
from videotaf.models.weights import load_imagenet, load_pretrained

__all__ = [
    "HFVideoModel",
    "VideoClassifier",
    "WrappedVideoModel",
    "available",
    "build",
    "from_hf",
    "load_imagenet",
    "load_pretrained",
    "model_options",
    "register_model",
    "unwrap_state_dict",
    "wrap_model",
]
