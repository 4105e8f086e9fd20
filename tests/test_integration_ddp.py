"""TAFTrainer under ``torchrun`` with 2 gloo processes on the CPU: the same weights as one process on the whole
batch, and a checkpoint that loads with plain ``from_pretrained``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers as tf

from test_engine_ddp import free_port

SCRIPT = Path(__file__).resolve().parent / "ddp_hf_trainer.py"


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_match_one_process_on_the_whole_batch(tmp_path: Path):
    _run([sys.executable, str(SCRIPT), str(tmp_path / "one"), "4"])
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
          str(SCRIPT), str(tmp_path / "two"), "2"])  # fmt: skip
    assert (tmp_path / "two" / "world.txt").read_text() == "2"
    one = torch.load(tmp_path / "one" / "final.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "final.pt", weights_only=True)
    assert any("aux_bn" in k for k in two)
    for key, value in one.items():
        torch.testing.assert_close(two[key], value, rtol=1e-4, atol=1e-6, msg=key)
    logs = [e for e in json.loads((tmp_path / "two" / "log.json").read_text()) if "loss" in e]
    assert len(logs) == 2 and all("loss_adv" in e for e in logs)
    loaded = tf.AutoModelForVideoClassification.from_pretrained(str(tmp_path / "two" / "checkpoint-2"))
    assert not [k for k in loaded.state_dict() if "aux_bn" in k]
