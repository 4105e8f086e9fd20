"""Run by tests/test_integration_ddp.py (with the tests directory on PYTHONPATH): two AdvProp steps of TAFTrainer on 4 clips, alone (batch 4) or under
``torchrun --nproc_per_node 2`` (gloo, batch 2 per process); rank 0 saves the weights and the log history."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import transformers as tf

from tiny_transformers import CLASSES, FRAMES, SIZE, hf_net
from videotaf.integrations.transformers import TAFSettings, TAFTrainer


class Clips(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.pv = torch.rand(4, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        return {"pixel_values": self.pv[i], "labels": i % CLASSES}


def main(out: Path, batch: int) -> None:
    torch.manual_seed(0)
    net = hf_net("videomae")
    args = tf.TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch, learning_rate=1e-2, max_steps=2, use_cpu=True,
        report_to="none", logging_steps=1, save_strategy="steps", save_steps=2, disable_tqdm=True, seed=0,
        optim="sgd",  # Adam's first step is lr * sign(g): float-order noise in tiny gradients would flip it
    )  # fmt: skip
    trainer = TAFTrainer(model=net, args=args, train_dataset=Clips(), taf=TAFSettings(method="advprop"))
    trainer.train()
    if trainer.is_world_process_zero():
        torch.save(trainer.model.state_dict(), out / "final.pt")
        (out / "log.json").write_text(json.dumps(trainer.state.log_history))
        (out / "world.txt").write_text(str(trainer.accelerator.num_processes))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
