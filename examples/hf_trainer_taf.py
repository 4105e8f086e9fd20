"""TAF in a Hugging Face video-classification script: VideoMAE + Trainer + the image processor, then a verdict.

What changes against the usual recipe is one class (``TAFTrainer`` for ``Trainer``) and its ``taf=`` argument;
the model, the processor's normalised ``pixel_values``, ``TrainingArguments`` and evaluation stay as they are.
Runs two methods (plain fine-tuning, the equal-epoch control, and TAF) with two seeds each on videotaf's
built-in synthetic clips, writes every run's per-clip predictions and prints ``videotaf verdict``'s table.

    python examples/hf_trainer_taf.py --out runs/hf_example        # about a minute on 2 CPU cores

A tiny VideoMAE built from a config keeps it CPU-sized; it shows the wiring, not TAF's effect: trained from
scratch on 32 clips it learns next to nothing, and the verdict says so. With a real model, load it with
``VideoMAEForVideoClassification.from_pretrained(path, num_labels=...)`` and its processor the same way.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
import transformers as tf

from videotaf.analysis.predictions import predictions_verdict, read_predictions
from videotaf.analysis.stats import format_markdown
from videotaf.data.synth import synth_clips
from videotaf.integrations.transformers import TAFSettings, TAFTrainer, write_trainer_predictions

CLASSES, FRAMES, SIZE = 4, 8, 32


class ProcessedClips(torch.utils.data.Dataset):
    """One split of the synthetic clips, through the image processor as a Hugging Face dataset would be."""

    def __init__(self, processor: tf.VideoMAEImageProcessor, split: str, per_class: int) -> None:
        clips = list(synth_clips(CLASSES, per_class, FRAMES, SIZE, seed=0, split=split, nuisance=0.3))
        videos = [list(frames) for _, frames, _ in clips]  # each video: a list of (H, W, 3) uint8 frames
        self.pixel_values = processor(videos, return_tensors="pt")["pixel_values"]  # (N, T, 3, H, W)
        self.labels = [label for label, _, _ in clips]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"pixel_values": self.pixel_values[i], "labels": self.labels[i]}


def pretrained_model() -> tf.VideoMAEForVideoClassification:
    """Stands in for ``from_pretrained``: a tiny VideoMAE (1 layer, 32 px, 8 frames)."""
    torch.manual_seed(0)
    config = tf.VideoMAEConfig(
        image_size=SIZE, num_frames=FRAMES, patch_size=8, tubelet_size=2, hidden_size=48, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=96, num_labels=CLASSES,
    )  # fmt: skip
    return tf.VideoMAEForVideoClassification(config)


def fine_tune(method: str, seed: int, start, processor, train, val, out: Path) -> Path:
    """One run: the Trainer as usual, TAFTrainer in its place; returns its predictions file."""
    args = tf.TrainingArguments(
        output_dir=str(out / f"{method}_seed{seed}"), seed=seed, num_train_epochs=3, learning_rate=1e-3,
        per_device_train_batch_size=8, eval_strategy="epoch", save_strategy="no", logging_steps=4,
        report_to="none", disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
    )  # fmt: skip
    trainer = TAFTrainer(
        model=copy.deepcopy(start), args=args, train_dataset=train, eval_dataset=val, processing_class=processor,
        taf=TAFSettings(method=method, eps=16 / 255, step_size=8 / 255),
    )  # fmt: skip
    trainer.train()
    predictions = trainer.predict(val)
    return write_trainer_predictions(predictions, out / f"{method}_seed{seed}.csv", method=method, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/hf_example"))
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    processor = tf.VideoMAEImageProcessor(do_resize=False, do_center_crop=False)
    train = ProcessedClips(processor, "train", per_class=8)
    val = ProcessedClips(processor, "validation", per_class=6)
    start = pretrained_model()
    files = [
        fine_tune(method, seed, start, processor, train, val, args.out)
        for seed in range(args.seeds)
        for method in ("plain", "taf")
    ]
    records = [r for path in files for r in read_predictions(path)]
    print(format_markdown(predictions_verdict(records, "plain", n_boot=2000)))
    print(f"\nthe same from the shell: videotaf verdict {' '.join(map(str, files))} --out {args.out / 'verdict'}")


if __name__ == "__main__":
    main()
