"""Tiny models and in-memory data for the engine tests (independent of videotaf.models / videotaf.data)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from videotaf.config import Config
from videotaf.models.base import VideoClassifier


class TinyNet(VideoClassifier):
    """Conv3d/BN/ReLU x2, global pool, fc; CAM layer output ``(B, C, T, h, w)``."""

    def __init__(self, num_classes: int = 3, num_frames: int = 4, width: int = 6, bn: bool = True) -> None:
        super().__init__(num_classes, num_frames)
        norm = (lambda c: nn.BatchNorm3d(c)) if bn else (lambda c: nn.Identity())
        self.stem = nn.Sequential(nn.Conv3d(3, width, 3, (1, 2, 2), 1), norm(width), nn.ReLU())
        self.block = nn.Sequential(nn.Conv3d(width, width, 3, 1, 1), norm(width), nn.ReLU())
        self.fc = nn.Linear(width, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.block

    @property
    def classifier(self) -> nn.Module:
        return self.fc

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.check_input(clips)
        x = (clips - 0.5).transpose(1, 2)  # (B, 3, T, H, W)
        x = self.block(self.stem(x))
        return self.fc(x.mean(dim=(2, 3, 4)))


def tiny_net_no_bn(num_classes: int = 3, num_frames: int = 4, width: int = 6) -> TinyNet:
    return TinyNet(num_classes, num_frames, width, bn=False)


class ToyClips(Dataset):
    """``n`` clips ``(T, 3, S, S)`` in [0, 1]: class c brightens (0), darkens (1) or stays flat (2) over time,
    plus fixed noise, so a small net learns it in a few steps. Deterministic in ``seed``."""

    def __init__(self, n: int = 24, num_frames: int = 4, size: int = 16, num_classes: int = 3, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % num_classes
        ramp = torch.linspace(0, 1, num_frames)
        base = torch.rand(n, 1, 1, 1, 1, generator=g) * 0.3 + 0.35
        noise = torch.rand(n, num_frames, 3, size, size, generator=g) * 0.2 - 0.1
        slope = torch.tensor([0.3, -0.3, 0.0] + [0.15 * (k % 2 * 2 - 1) for k in range(3, num_classes)])
        trend = slope[self.labels].view(n, 1, 1, 1, 1) * (ramp.view(1, -1, 1, 1, 1) - 0.5)
        self.clips = (base + trend + noise).clamp(0, 1)
        self.classes = [f"class_{i}" for i in range(num_classes)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.clips[i], int(self.labels[i])


def toy_datasets(cfg: Config) -> tuple[Dataset, Dataset, list[str]]:
    """``fit(datasets_fn=...)`` for the toy data: 24 training and 12 validation clips."""
    t, c = cfg.model.num_frames, cfg.model.num_classes
    train = ToyClips(24, t, 16, c, seed=1)
    val = ToyClips(12, t, 16, c, seed=2)
    return train, val, train.classes


def toy_config(out: str, method: str = "plain", **runtime) -> Config:
    """A config for TinyNet on ToyClips, CPU, deterministic."""
    from videotaf.config import config_from_dict

    return config_from_dict(
        {
            "model": {"name": "engine_toys:TinyNet", "num_classes": 3, "num_frames": 4},
            "data": {"num_frames": 4, "num_workers": 0},
            "optim": {
                "lr": 0.05,
                "epochs": 2,
                "milestones": [1],
                "batch_size": 6,
                "clip_grad_norm": 20.0,
                "weight_decay": 1e-4,
            },
            "adversarial": {"method": method, "eps": 16 / 255, "step_size": 8 / 255},
            "runtime": {
                "device": "cpu",
                "seed": 0,
                "deterministic": True,
                "output_dir": out,
                "progress": "lines",
                "log_every": 1,
                **runtime,
            },
        },
        "toy_config",
    )
