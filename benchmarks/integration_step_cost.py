"""What TAF costs per step inside the Hugging Face ``Trainer`` and Lightning, against the same trainer's plain step.

Side by side in one process, on the same model, batch and trainer settings:

- Hugging Face: the stock ``transformers.Trainer`` (its own CE step) against ``TAFTrainer`` with ``taf`` (K = 1),
  a tiny VideoMAE (hidden 48, 1 layer, 8 frames at 32 px, batch 8) on processor-normalised ``pixel_values``;
- Lightning: a ``LightningModule`` whose ``training_step`` returns ``F.cross_entropy(model(clips), labels)``
  against the same module with ``TAFMixin.taf_step`` (``taf``, K = 1), a small TSM (ResNet-18 at 1/8 width,
  8 frames at 32 px, batch 8, TA on layer2).

A step is what the trainer's loop runs per batch: the Trainer's ``training_step`` (forward, attack, backward) and
the optimiser it built; for Lightning, ``training_step``, the backward of the loss it returns and the optimiser.
Plain and TAF steps alternate, so a change of machine load hits both; the first ``--warmup`` pairs are dropped,
and the medians and the median per-pair ratio are reported. The pass-count floor of the fused K = 1 step is 7/3
of a plain step (``videotaf.objective``).

    python -m benchmarks.integration_step_cost                 # rewrites the integration_step_cost section
    python -m benchmarks.integration_step_cost --quick --no-md
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
import transformers as tf
from transformers import default_data_collator

from benchmarks._common import ROOT, header, update_section, write_json
from videotaf.integrations.lightning import TAFMixin, TAFSettings
from videotaf.integrations.transformers import TAFTrainer
from videotaf.models.tsm import TSM

SECTION = "integration_step_cost"
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CLASSES, FRAMES, SIZE, BATCH = 4, 8, 32, 8


class _Dicts(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.pv = torch.randn(n, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.pv)

    def __getitem__(self, i: int) -> dict:
        return {"pixel_values": self.pv[i], "labels": i % CLASSES}


def _optimised(step: Callable[[], None], optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        step()
        optimizer.step()

    return run


def hf_steps(method: str) -> Callable[[], None]:
    """One optimiser step of the stock ``Trainer`` (``plain``) or of ``TAFTrainer``: its ``training_step`` (as
    the Trainer's loop calls it) and the optimiser it built."""
    torch.manual_seed(0)
    config = tf.VideoMAEConfig(
        image_size=SIZE, num_frames=FRAMES, patch_size=8, tubelet_size=2, hidden_size=48, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=96, num_labels=CLASSES,
    )  # fmt: skip
    args = tf.TrainingArguments(
        output_dir=str(ROOT / "runs" / "bench_integration"), report_to="none", use_cpu=not torch.cuda.is_available()
    )
    kwargs = dict(model=tf.VideoMAEForVideoClassification(config), args=args)
    trainer = tf.Trainer(**kwargs) if method == "plain" else TAFTrainer(**kwargs, taf=TAFSettings(method=method))
    trainer.current_gradient_accumulation_steps = 1  # what the Trainer's loop sets before each step
    batch = trainer._prepare_inputs(default_data_collator([_Dicts(BATCH)[i] for i in range(BATCH)]))
    model = trainer.model.to(args.device).train()
    return _optimised(lambda: trainer.training_step(model, batch), trainer.create_optimizer())


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


def lightning_steps(method: str) -> Callable[[], None]:
    """One step of the module as Lightning's automatic optimisation runs it: ``training_step``, the backward of
    the loss it returns, the optimiser (no logger attached: ``self.log`` does nothing)."""
    module = _Module(method).to(DEVICE).train()
    g = torch.Generator().manual_seed(0)
    batch = (
        torch.rand(BATCH, FRAMES, 3, SIZE, SIZE, generator=g).to(DEVICE),
        (torch.arange(BATCH) % CLASSES).to(DEVICE),
    )
    return _optimised(lambda: module.training_step(batch, 0).backward(), module.configure_optimizers())


def _timed(step: Callable[[], None]) -> float:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(steps: int, warmup: int) -> dict:
    """Per integration: plain and TAF steps alternated (so a change of machine load hits both), the median of
    each after ``warmup`` pairs, and the median of the per-pair ratios."""
    out: dict = {}
    for name, build in (("hf_trainer", hf_steps), ("lightning", lightning_steps)):
        plain, taf = build("plain"), build("taf")
        pairs = [(_timed(plain), _timed(taf)) for _ in range(warmup + steps)][warmup:]
        p_med, t_med = statistics.median(p for p, _ in pairs), statistics.median(t for _, t in pairs)
        out[name] = {
            "plain_s": p_med,
            "taf_s": t_med,
            "ratio": t_med / p_med,
            "pair_ratio_median": statistics.median(t / p for p, t in pairs),
            "pairs": pairs,
        }
    return out


def markdown(result: dict) -> str:
    lines = [
        "## Step cost inside the trainers (Hugging Face `Trainer`, Lightning)",
        "",
        header(),
        f"{result['steps']} plain and {result['steps']} TAF steps alternated after {result['warmup']} warm-up pairs; "
        "medians, and the median of the per-pair ratios; the fused K = 1 pass-count floor is 7/3 = 2.33.",
        "",
        "| trainer | model | plain step, ms | TAF step, ms | TAF / plain | per-pair ratio, median |",
        "|---|---|---|---|---|---|",
    ]
    models = {
        "hf_trainer": "tiny VideoMAE (stock `Trainer` vs `TAFTrainer`)",
        "lightning": "small TSM (CE step vs `taf_step`)",
    }
    for name, row in result["results"].items():
        lines.append(
            f"| {name} | {models[name]} | {1000 * row['plain_s']:.1f} | {1000 * row['taf_s']:.1f} | "
            f"{row['ratio']:.2f} | {row['pair_ratio_median']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="timed pairs of steps per integration")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="3 timed pairs, 1 warm-up")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "integration_step_cost.json")
    p.add_argument("--no-md", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.steps, args.warmup = 3, 1
    result = {"steps": args.steps, "warmup": args.warmup, "results": measure(args.steps, args.warmup)}
    write_json(args.out, result)
    print(markdown(result))
    if not args.no_md:
        update_section(SECTION, markdown(result))


if __name__ == "__main__":
    main()
