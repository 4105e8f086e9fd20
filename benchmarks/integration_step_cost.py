"""What TAF costs per step inside the Hugging Face ``Trainer`` and Lightning, against the same trainer's plain step.

Side by side in one process, on the same model, batch and trainer settings:

- Hugging Face: the stock ``transformers.Trainer`` (its own CE step) against ``TAFTrainer`` with ``taf`` (K = 1),
  a tiny VideoMAE (hidden 48, 1 layer, 8 frames at 32 px, batch 8) on processor-normalised ``pixel_values``;
- Lightning: a ``LightningModule`` whose ``training_step`` returns ``F.cross_entropy(model(clips), labels)``
  against the same module with ``TAFMixin.taf_step`` (``taf``, K = 1), a small TSM (ResNet-18 at 1/8 width,
  8 frames at 32 px, batch 8, TA on layer2).

A step is timed from the trainer's step-begin to its step-end callback (forward, attack, backward, optimiser);
the first ``--warmup`` steps are dropped and the median of the rest is reported; ``--reps`` alternates the order of
plain and TAF. The pass-count floor of the fused K = 1 step is 7/3 of a plain step (``videotaf.objective``).

    python benchmarks/integration_step_cost.py                 # rewrites the integration_step_cost section
    python benchmarks/integration_step_cost.py --quick --no-md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
import transformers as tf
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, header, update_section, write_json
from videotaf.integrations.lightning import TAFMixin, TAFSettings
from videotaf.integrations.transformers import TAFTrainer
from videotaf.models.tsm import TSM

SECTION = "integration_step_cost"
CLASSES, FRAMES, SIZE, BATCH = 4, 8, 32, 8


class _HFTimer(tf.TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t)


class _LTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.times.append(time.perf_counter() - self._t)


class _Dicts(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.pv = torch.randn(n, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.pv)

    def __getitem__(self, i: int) -> dict:
        return {"pixel_values": self.pv[i], "labels": i % CLASSES}


def hf_step_time(method: str, steps: int, warmup: int) -> float:
    """Median seconds per optimiser step of the stock Trainer (``plain``) or TAFTrainer (``taf``)."""
    torch.manual_seed(0)
    config = tf.VideoMAEConfig(
        image_size=SIZE, num_frames=FRAMES, patch_size=8, tubelet_size=2, hidden_size=48, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=96, num_labels=CLASSES,
    )  # fmt: skip
    model = tf.VideoMAEForVideoClassification(config)
    args = tf.TrainingArguments(
        output_dir=str(ROOT / "runs" / "bench_integration"), per_device_train_batch_size=BATCH, max_steps=steps,
        save_strategy="no", report_to="none", disable_tqdm=True, logging_strategy="no", use_cpu=not torch.cuda.is_available(),
    )  # fmt: skip
    timer = _HFTimer()
    kwargs = dict(model=model, args=args, train_dataset=_Dicts(BATCH * steps), callbacks=[timer])
    trainer = tf.Trainer(**kwargs) if method == "plain" else TAFTrainer(**kwargs, taf=TAFSettings(method=method))
    trainer.train()
    return statistics.median(timer.times[warmup:])


class _Module(TAFMixin, L.LightningModule):
    def __init__(self, method: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = TSM(CLASSES, FRAMES, depth=18, width=0.125, dropout=0.0)
        self.method = method
        if method != "plain":
            self.configure_taf(TAFSettings(method=method, cam_layer="backbone.layer2"))

    def training_step(self, batch, batch_idx):
        clips, labels = batch
        if self.method == "plain":  # the user's own step, no videotaf in it
            return F.cross_entropy(self.model(clips), labels)
        return self.taf_step(clips, labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


def lightning_step_time(method: str, steps: int, warmup: int) -> float:
    """Median seconds per training batch of the plain module or the same module with ``taf_step``."""
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.rand(BATCH * steps, FRAMES, 3, SIZE, SIZE, generator=g), torch.arange(BATCH * steps) % CLASSES
    )
    timer = _LTimer()
    trainer = L.Trainer(
        max_steps=steps, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(_Module(method), DataLoader(data, batch_size=BATCH))
    return statistics.median(timer.times[warmup:])


def measure(steps: int, warmup: int, reps: int) -> dict:
    """``{integration: {"plain_s", "taf_s", "ratio", "per_rep"}}`` with the order of plain/TAF alternated."""
    out: dict = {}
    for name, fn in (("hf_trainer", hf_step_time), ("lightning", lightning_step_time)):
        per_rep = []
        for rep in range(reps):
            order = ("plain", "taf") if rep % 2 == 0 else ("taf", "plain")
            times = {method: fn(method, steps, warmup) for method in order}
            per_rep.append({"plain_s": times["plain"], "taf_s": times["taf"], "ratio": times["taf"] / times["plain"]})
        plain = statistics.median(r["plain_s"] for r in per_rep)
        taf = statistics.median(r["taf_s"] for r in per_rep)
        out[name] = {"plain_s": plain, "taf_s": taf, "ratio": taf / plain, "per_rep": per_rep}
    return out


def markdown(result: dict) -> str:
    lines = [
        "## Step cost inside the trainers (Hugging Face `Trainer`, Lightning)",
        "",
        header(),
        f"Median of {result['steps'] - result['warmup']} timed steps per run, {result['reps']} runs per row with the "
        "order of plain and TAF alternated; the fused K = 1 floor is 7/3 = 2.33.",
        "",
        "| trainer | model | plain step, ms | TAF step, ms | TAF / plain |",
        "|---|---|---|---|---|",
    ]
    models = {
        "hf_trainer": "tiny VideoMAE (stock `Trainer` vs `TAFTrainer`)",
        "lightning": "small TSM (CE step vs `taf_step`)",
    }
    for name, row in result["results"].items():
        lines.append(
            f"| {name} | {models[name]} | {1000 * row['plain_s']:.1f} | {1000 * row['taf_s']:.1f} | {row['ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="4 steps, 1 warm-up, 1 run")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "integration_step_cost.json")
    p.add_argument("--no-md", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.steps, args.warmup, args.reps = 4, 1, 1
    result = {
        "steps": args.steps,
        "warmup": args.warmup,
        "reps": args.reps,
        "results": measure(args.steps, args.warmup, args.reps),
    }
    write_json(args.out, result)
    print(markdown(result))
    if not args.no_md:
        update_section(SECTION, markdown(result))


if __name__ == "__main__":
    main()
