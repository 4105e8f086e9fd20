"""Kill a real training process with a signal mid-run, resume it, compare with an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from videotaf.engine import checkpoint as ck

TESTS = Path(__file__).resolve().parent

RUNNER = textwrap.dedent(
    """
    import sys, time
    import torch
    torch.set_num_threads(1)
    from engine_toys import ToyClips, toy_config, toy_datasets
    from videotaf.engine.train import fit

    class SlowClips(ToyClips):
        # Slow enough that the parent can kill us between steps.
        def __getitem__(self, i):
            time.sleep(0.03)
            return super().__getitem__(i)

    def datasets(cfg):
        _, val, names = toy_datasets(cfg)
        return SlowClips(24, 4, 16, 3, seed=1), val, names

    out, resume = sys.argv[1], sys.argv[2] == "1"
    fit(toy_config(out, "taf", checkpoint_every_steps=1), datasets_fn=datasets, resume=resume)
    """
)


def run_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    ref, run = tmp_path / "ref", tmp_path / "run"
    subprocess.run([sys.executable, str(script), str(ref), "0"], env=run_env(), check=True, capture_output=True)

    proc = subprocess.Popen(
        [sys.executable, str(script), str(run), "0"], env=run_env(), stderr=subprocess.PIPE, text=True
    )
    seen = []
    deadline = time.monotonic() + 120
    try:
        for line in proc.stderr:  # progress lines: "epoch 1/2 step k/4 ..."
            seen.append(line)
            if "epoch 1/2 step 3/4" in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGKILL)  # no handler can run: only what is on disk survives
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    state = ck.load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["epoch"] == 0 and 2 <= state["epoch_step"] <= 4  # killed inside the first epoch

    subprocess.run([sys.executable, str(script), str(run), "1"], env=run_env(), check=True, capture_output=True)
    a, b = ck.load_checkpoint(ref / "checkpoints" / "last.pt"), ck.load_checkpoint(run / "checkpoints" / "last.pt")
    assert b["epoch"] == 2 and b["step"] == a["step"] == 8
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(x["momentum_buffer"], y["momentum_buffer"])


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run), "0"], env=run_env(), stderr=subprocess.PIPE, text=True
    )
    try:
        for line in proc.stderr:
            if "epoch 1/2 step 2/4" in line:
                break
        proc.send_signal(signal.SIGTERM)
        err = proc.stderr.read()
    finally:
        proc.wait(timeout=60)
    assert proc.returncode != 0 and "TrainingInterrupted" in err
    state = ck.load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["epoch"] == 0 and state["epoch_step"] in (2, 3)
