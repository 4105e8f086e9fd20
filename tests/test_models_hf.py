"""Hugging Face adapters: ``from_hf`` (VideoMAE, TimeSformer, ViViT), the registered ``hf`` model loading a local
directory, the mean/std defaults, keys, errors, and the lazy import of ``transformers``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from tiny_transformers import CLASSES, FRAMES, HF_KINDS, SIZE, hf_config, hf_net
from videotaf.cam import FeatureTap
from videotaf.models import HFVideoModel, build, from_hf, unwrap_state_dict
from videotaf.models.hf import DEFAULT_MEAN_STD, processor_mean_std, token_layout

MAP_SHAPES = {"videomae": (32, 2, 4, 4), "timesformer": (32, 4, 4, 4), "vivit": (32, 2, 4, 4)}


@pytest.mark.parametrize("kind", HF_KINDS)
def test_from_hf_keeps_the_network_and_exposes_per_frame_maps(kind):
    torch.manual_seed(0)
    net = hf_net(kind, layers=2).eval()
    clips = torch.rand(2, FRAMES, 3, SIZE, SIZE)
    mean, std = DEFAULT_MEAN_STD[kind]
    with torch.no_grad():
        raw = net(pixel_values=(clips - torch.tensor(mean).view(1, 1, 3, 1, 1)) / torch.tensor(std).view(1, 1, 3, 1, 1))
    model = from_hf(net)
    assert isinstance(model, HFVideoModel) and model.net is net
    assert (model.num_classes, model.num_frames, model.arch) == (CLASSES, FRAMES, kind)
    assert model.classifier is net.classifier and isinstance(model.classifier, nn.Linear)
    tap = FeatureTap()
    with torch.no_grad(), tap.attached(model.cam_layer):
        logits = model.eval()(clips)
    assert torch.allclose(logits, raw.logits, atol=1e-6)  # the fold changes nothing downstream
    assert tap.pop().shape == (2, *MAP_SHAPES[kind])
    # The Hugging Face keys are kept (prefix "net."); they load back into a fresh network.
    assert list(unwrap_state_dict(model.state_dict())) == list(net.state_dict())
    fresh = hf_net(kind, layers=2)
    fresh.load_state_dict(unwrap_state_dict(model.state_dict()))


def test_token_layouts_and_videomae_without_mean_pooling():
    assert token_layout(hf_config("videomae")).where == "output"
    assert token_layout(hf_config("timesformer")).order == "hwt"
    vivit = token_layout(hf_config("vivit"))
    assert (vivit.prefix, vivit.tubelet, vivit.patch, vivit.where) == (1, 2, (8, 8), "input")
    # Without mean pooling VideoMAE reads its first token: the maps are taken before the last layer.
    torch.manual_seed(0)
    model = from_hf(hf_net("videomae", layers=2, use_mean_pooling=False))
    assert model.layout.where == "input"
    clips = torch.rand(2, FRAMES, 3, SIZE, SIZE)
    from videotaf.cam import temporal_gradcam

    cams = temporal_gradcam(model.eval(), clips, torch.tensor([0, 1])).cams
    assert cams.shape == (2, 2, 4, 4) and (cams.abs().flatten(2).sum(2) > 0).all()


def test_from_hf_arguments():
    net = hf_net("vivit")
    model = from_hf(net, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5), num_frames=FRAMES, tubelet_size=2)
    assert torch.allclose(model.normalize.mean.flatten(), torch.tensor([0.1, 0.2, 0.3]))
    assert from_hf(net, dual_norm="none").dual_norm_kinds == "none"
    with pytest.raises(ValueError, match="num_frames=8 but"):
        from_hf(net, num_frames=8)
    with pytest.raises(ValueError, match="tubelet_size=1"):
        from_hf(net, tubelet_size=1)
    with pytest.raises(ValueError, match="both mean and std"):
        from_hf(net, mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="dual_norm"):
        from_hf(net, dual_norm="batch")
    with pytest.raises(TypeError, match="transformers"):
        from_hf(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="space_only"):
        from_hf(hf_net("timesformer", attention_type="space_only"))
    with pytest.raises(ValueError, match=r"num_frames=4 .* T=2"):
        from_hf(net)(torch.rand(1, 2, 3, SIZE, SIZE))


def test_processor_defaults_match_the_processors():
    import transformers as tf

    for kind, proc in (("videomae", tf.VideoMAEImageProcessor), ("vivit", tf.VivitImageProcessor)):
        p = proc(do_resize=False, do_center_crop=False)
        frame = (torch.rand(3, 8, 8) * 255).round()
        expected = p(images=[[frame.permute(1, 2, 0).numpy().astype("uint8")]], return_tensors="pt")["pixel_values"]
        mean, std = DEFAULT_MEAN_STD[kind]
        ours = (frame / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
        assert torch.allclose(expected.reshape(3, 8, 8), ours, atol=1e-4), kind


def test_processor_config_in_the_directory(tmp_path):
    assert processor_mean_std(tmp_path) is None
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"image_processor_type": "VivitImageProcessor", "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
                    "rescale_factor": 1 / 127.5, "offset": True})
    )  # fmt: skip
    mean, std = processor_mean_std(tmp_path)
    assert mean == pytest.approx((0.75,) * 3) and std == pytest.approx((0.25,) * 3)
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]})
    )
    assert processor_mean_std(tmp_path) == (pytest.approx((0.485, 0.456, 0.406)), pytest.approx((0.229, 0.224, 0.225)))


def test_registered_hf_model_loads_a_local_directory(tmp_path):
    torch.manual_seed(0)
    net = hf_net("videomae")
    net.save_pretrained(tmp_path / "m")
    model = build("hf", CLASSES, FRAMES, path=str(tmp_path / "m"))
    reference = from_hf(net)
    clips = torch.rand(2, FRAMES, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.allclose(model.eval()(clips), reference.eval()(clips), atol=1e-6)
    other = build("hf", 7, FRAMES, path=str(tmp_path / "m"), attn_implementation="eager", mean=[0.5] * 3, std=[0.2] * 3)
    assert other.classifier.out_features == 7 and other.net.config._attn_implementation == "eager"
    assert torch.allclose(other.normalize.std.flatten(), torch.full((3,), 0.2))
    with pytest.raises(ValueError, match="num_frames=8"):
        build("hf", CLASSES, 8, path=str(tmp_path / "m"))


@pytest.mark.parametrize("path", [None, "no/such/dir", "model.safetensors"])
def test_hf_model_needs_a_local_directory(path, tmp_path):
    if path == "model.safetensors":
        path = str(tmp_path / path)
        open(path, "w").close()
    with pytest.raises(ValueError, match="is not a local directory") as info:
        build("hf", CLASSES, FRAMES, path=path)
    assert repr(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow  # a fresh interpreter importing torch: several seconds
def test_package_imports_without_transformers():
    code = (
        "import sys; sys.modules['transformers'] = None\n"  # any import of it would now fail
        "import videotaf, videotaf.models, videotaf.bn, videotaf.engine.train\n"
        "from videotaf.models import build, available\n"
        "assert 'hf' in available()\n"
        "build('tsm', 3, 4, depth=18, width=0.25)\n"
        "try:\n"
        "    import tempfile; build('hf', 3, 4, path=tempfile.mkdtemp())\n"
        "except ImportError as e:\n"
        "    assert 'videotaf[hf]' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
