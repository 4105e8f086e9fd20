"""TAF in a PyTorch Lightning module: a small TSM on videotaf's synthetic clips, two methods, two seeds, a verdict.

The user's ``LightningModule`` keeps its model, optimiser and steps; ``TAFMixin`` adds ``configure_taf`` (the
method, and the auxiliary BatchNorm path before the optimiser exists) and ``taf_step`` (Eq. 7, returned for
Lightning's own backward). Each run writes its per-clip predictions from ``predict_step``; the script ends with
``videotaf verdict``'s table (plain fine-tuning is the control).

    python examples/lightning_taf.py --out runs/lightning_example      # about a minute on 2 CPU cores
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from videotaf.analysis.predictions import predictions_verdict, read_predictions
from videotaf.analysis.stats import format_markdown
from videotaf.data.synth import synth_clips
from videotaf.integrations.lightning import TAFMixin, TAFSettings, write_lightning_predictions
from videotaf.models.tsm import TSM

CLASSES, FRAMES, SIZE = 4, 8, 32


class VideoClassifier(TAFMixin, L.LightningModule):
    """An ordinary LightningModule, plus the two TAF calls."""

    def __init__(self, model: torch.nn.Module, method: str, lr: float = 0.01) -> None:
        super().__init__()
        self.model, self.lr = model, lr
        # TA reads layer2 (4x4 maps at 32 px; layer4's would be 1x1, see the README on small inputs).
        cam_layer = "backbone.layer2" if method == "taf" else None
        self.configure_taf(TAFSettings(method=method, eps=16 / 255, step_size=8 / 255, cam_layer=cam_layer))

    def training_step(self, batch, batch_idx):
        clips, labels = batch
        return self.taf_step(clips, labels)

    def predict_step(self, batch, batch_idx):
        clips, labels = batch
        return self.taf_predict_step(clips, labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4)


def split(name: str, per_class: int) -> TensorDataset:
    """Clips ``(N, T, 3, H, W)`` in [0, 1] and labels of one synthetic split."""
    items = list(synth_clips(CLASSES, per_class, FRAMES, SIZE, seed=0, split=name, nuisance=0.3))
    clips = np.stack([frames for _, frames, _ in items]).transpose(0, 1, 4, 2, 3)
    return TensorDataset(torch.from_numpy(clips).float() / 255, torch.tensor([label for label, _, _ in items]))


def pretrained(train: TensorDataset) -> TSM:
    """Stands in for your pre-trained checkpoint: a small TSM (ResNet-18 at 1/8 width) trained briefly."""
    L.seed_everything(0)
    module = VideoClassifier(TSM(CLASSES, FRAMES, depth=18, width=0.125, dropout=0.0), "plain", lr=0.05)
    trainer(4).fit(module, DataLoader(train, batch_size=8, shuffle=True))
    return module.model


def trainer(epochs: int) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip


def fine_tune(method: str, seed: int, start: TSM, train: TensorDataset, val: TensorDataset, out: Path) -> Path:
    """One run from the same start; the seed fixes the data order (the same for both methods)."""
    L.seed_everything(seed)
    module = VideoClassifier(copy.deepcopy(start), method)
    order = torch.Generator().manual_seed(seed)
    trainer(2).fit(module, DataLoader(train, batch_size=8, shuffle=True, generator=order))
    module.save_inference_weights(out / f"{method}_seed{seed}.pt")  # clean weights: TSM(...).load_state_dict
    outputs = trainer(1).predict(module, DataLoader(val, batch_size=16))
    return write_lightning_predictions(outputs, out / f"{method}_seed{seed}.json", method=method, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/lightning_example"))
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    train, val = split("train", 8), split("validation", 6)
    start = pretrained(train)
    files = [
        fine_tune(method, seed, start, train, val, args.out)
        for seed in range(args.seeds)
        for method in ("plain", "taf")
    ]
    records = [r for path in files for r in read_predictions(path)]
    print(format_markdown(predictions_verdict(records, "plain", n_boot=2000)))
    print(f"\nthe same from the shell: videotaf verdict {' '.join(map(str, files))} --out {args.out / 'verdict'}")


if __name__ == "__main__":
    main()
