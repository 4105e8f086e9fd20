"""A diverging run stops without writing NaN, one writer per output directory, signals exit 130/143 (issue 21).

Where a second process or a signal is involved the test runs real processes (``python -m videotaf``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from engine_toys import TinyNet, ToyClips, toy_config, toy_datasets
from test_faults import cli, error_line, metrics, subprocess_env, write_config
from videotaf.bn import convert_dual_bn
from videotaf.config import OptimConfig
from videotaf.engine import checkpoint as ck
from videotaf.engine import train as train_mod
from videotaf.engine.distributed import ResumableSampler
from videotaf.engine.optim import build_optimizer
from videotaf.engine.train import LossGuard, NonFiniteLossError, fit, train_one_epoch
from videotaf.errors import OutputLockedError, TrainingDivergedError
from videotaf.io import LOCK_NAME, output_lock
from videotaf.objective import build_objective

EXIT_BAD_INPUT, EXIT_DIVERGED = 2, 4
CPU = torch.device("cpu")


def finite_checkpoint(path: Path) -> dict:
    state = ck.load_checkpoint(path)
    for name, value in state["model"].items():
        assert not torch.is_floating_point(value) or torch.isfinite(value).all(), name
    return state


# ============================================================================ 1. non-finite losses


class PoisonedClips(Dataset):
    """The toy training set with NaN pixels in the clips of the ``poisoned`` ``(epoch, index)`` pairs (the loop
    tells a dataset its epoch through ``set_epoch``)."""

    def __init__(self, base: Dataset, poisoned: set[tuple[int, int]]) -> None:
        self.base, self.poisoned, self.epoch = base, poisoned, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        clip, label = self.base[i]
        return (torch.full_like(clip, float("nan")) if (self.epoch, i) in self.poisoned else clip), label


def poisoned_index(epoch: int, step: int, batch: int = 6, world: int = 1, rank: int = 0) -> tuple[int, int]:
    """``(epoch, index)`` of the first clip of step ``step`` (1-based) of ``epoch`` (0-based) on ``rank``."""
    sampler = ResumableSampler(24, shuffle=True, seed=0, num_replicas=world, rank=rank)
    sampler.set_epoch(epoch)
    return epoch, list(sampler)[(step - 1) * batch]


def poisoned_datasets(*where: tuple[int, int]):
    """``toy_datasets`` whose clips at ``where`` (``poisoned_index`` pairs) are NaN."""

    def datasets(cfg):
        train, val, names = toy_datasets(cfg)
        return PoisonedClips(train, set(where)), val, names

    return datasets


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_before_its_update_and_keeps_the_finite_checkpoints(tmp_path):
    run = tmp_path / "run"
    cfg = toy_config(str(run), "taf", checkpoint_every_steps=1)
    with pytest.raises(TrainingDivergedError) as err:
        fit(cfg, datasets_fn=poisoned_datasets(poisoned_index(1, 2)))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("epoch 2 step 2/4: loss term 'clean' is nan at LR 0.005")  # x0.1 after epoch 1
    assert "optim.max_nonfinite_steps" in message and "(epoch 1, step 5) is kept" in message
    last = finite_checkpoint(run / "checkpoints" / "last.pt")
    assert (last["epoch"], last["epoch_step"], last["step"]) == (1, 1, 5)  # the step before the NaN one
    assert finite_checkpoint(run / "checkpoints" / "best.pt")["epoch"] == 1
    assert [r["epoch"] for r in metrics(run)] == [1]


@pytest.mark.slow
def test_max_nonfinite_steps_skips_and_counts_them(tmp_path):
    run = tmp_path / "run"
    cfg = toy_config(str(run), "taf", checkpoint_every_steps=1)
    cfg.optim.max_nonfinite_steps = 1
    fit(cfg, datasets_fn=poisoned_datasets(poisoned_index(1, 2)))
    assert [r["nonfinite_steps"] for r in metrics(run)] == [0, 1]
    finite_checkpoint(run / "checkpoints" / "last.pt")
    assert ck.load_checkpoint(run / "checkpoints" / "last.pt")["nonfinite_steps"] == 1
    # The budget is over the run, not per epoch: a second poisoned step in another epoch stops it.
    again = tmp_path / "again"
    cfg = toy_config(str(again), "plain")
    cfg.optim.max_nonfinite_steps = 1
    with pytest.raises(TrainingDivergedError, match=r"^epoch 2 step 1/4: loss term 'clean' is nan"):
        fit(cfg, datasets_fn=poisoned_datasets(poisoned_index(0, 3), poisoned_index(1, 1)))


def one_batch(seed: int, nan: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    data = ToyClips(6, 4, 16, 3, seed=seed)
    clips = data.clips.clone()
    if nan:
        clips[0] = float("nan")
    return clips, data.labels


@pytest.mark.slow
def test_a_skipped_step_changes_nothing_not_even_batchnorm_statistics():
    """[good, NaN, good] with one skip allowed ends where [good, good] ends (weights, BN buffers, momentum)."""
    torch.manual_seed(0)
    model = TinyNet()
    reference = TinyNet()
    reference.load_state_dict(model.state_dict())
    good, bad, good2 = one_batch(1), one_batch(2, nan=True), one_batch(3)
    results = []
    for net, batches in ((model, [good, bad, good2]), (reference, [good, good2])):
        opt = build_optimizer(net, OptimConfig(lr=0.05, weight_decay=0.0))
        sums = train_one_epoch(net, build_objective("plain"), batches, opt, device=CPU, guard=LossGuard(1))
        results.append(sums)
    assert results[0].counts["nonfinite_steps"] == 1 and results[0].clips == 12 == results[1].clips
    assert results[0].losses == pytest.approx(results[1].losses)
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_adversarial_term_is_named_and_no_update_happens():
    """Only the auxiliary-BN path is broken: the error names 'adv' (the clean loss is finite)."""
    torch.manual_seed(0)
    model = convert_dual_bn(TinyNet())
    with torch.no_grad():
        model.stem[1].aux_bn.weight.fill_(float("nan"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = build_optimizer(model, OptimConfig(lr=0.05, weight_decay=0.0))
    objective = build_objective("taf", eps=8 / 255, step_size=4 / 255)
    with pytest.raises(NonFiniteLossError) as err:
        train_one_epoch(model, objective, [one_batch(1)], opt, device=CPU)
    assert err.value.term == "adv" and str(err.value) == "loss term 'adv' is nan at LR 0.05"
    for name, value in model.state_dict().items():
        if "running" not in name and "num_batches" not in name:  # the forward itself moved the statistics
            assert torch.equal(value, before[name]) or torch.isnan(before[name]).all(), name


def test_non_finite_weights_are_never_written(tmp_path):
    cfg = toy_config(str(tmp_path), "plain")
    training = train_mod.build_training(cfg, train_mod.DistInfo(), 4, load_weights=True)
    saver = train_mod.Checkpointer(tmp_path, training, {}, train_mod.DistInfo())
    saver.save(train_mod.RunState(epoch=1, step=4))
    with torch.no_grad():
        training.model.fc.bias[0] = float("inf")
    with pytest.raises(TrainingDivergedError) as err:
        saver.save(train_mod.RunState(epoch=1, epoch_step=2, step=6), mid_epoch=True)
    assert str(err.value).startswith("epoch 2 step 2: the model's fc.bias is not finite at LR 0.05")
    assert f"{tmp_path / 'last.pt'} (epoch 1, step 4) is kept as it was" in str(err.value)
    assert finite_checkpoint(tmp_path / "last.pt")["step"] == 4


def test_a_million_fold_growth_warns_once_per_term():
    run = train_mod.RunState()
    sums = train_mod.EpochSums({"total": 4.0, "clean": 2.0}, {"clips": 2.0})
    train_mod.warn_if_grown(run, sums)  # the first epoch: the reference (means 2.0 and 1.0)
    assert run.first_losses == {"total": 2.0, "clean": 1.0}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        train_mod.warn_if_grown(run, train_mod.EpochSums({"total": 3.9e6, "clean": 2.2e6}, {"clips": 2.0}))
        train_mod.warn_if_grown(run, train_mod.EpochSums({"total": 8e9, "clean": 8e9}, {"clips": 2.0}))
    texts = [str(w.message) for w in seen if issubclass(w.category, train_mod.LossGrowthWarning)]
    # total: 1.95e6 < 2e6 (1e6 x 2.0), then 4e9: warned once; clean: 1.1e6 > 1e6 x 1.0 at once, then never again
    assert len(texts) == 2
    assert texts[0].startswith("loss term 'clean' grew from 1 (epoch 1 mean) to 1.1e+06")
    assert texts[1].startswith("loss term 'total' grew from 2 (epoch 1 mean) to 4e+09")


@pytest.mark.slow
def test_the_cli_exits_4_in_one_line_when_training_diverges(tmp_path, synth_root, capsys):
    config = write_config(tmp_path / "c.yaml", synth_root)
    run = tmp_path / "run"
    args = ["train", "--config", config, "--out", run, "--set", "optim.lr=5000.0", "--set", "optim.clip_grad_norm=null"]
    rc, _, err = cli(capsys, *args)
    assert rc == EXIT_DIVERGED
    line = error_line(err, after_training=True)
    # Epoch 1's BatchNorm statistics overflow at the next step: the epoch-2 LR (x0.1 after epoch 1) is named.
    assert line.startswith("error: epoch 2 step 1: the model's block.1.running_var is not finite at LR 500, so")
    assert "(epoch 1, step 3) is kept as it was" in line
    for name in ("last.pt", "best.pt"):
        finite_checkpoint(run / "checkpoints" / name)


def _ddp_worker(rank: int, world: int, out: str, port: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    from videotaf.engine.distributed import cleanup

    cfg = toy_config(os.path.join(out, "run"), "plain", checkpoint_every_steps=1)
    cfg.optim.epochs = 1
    # Rank 1's second step of the first epoch has a NaN clip; rank 0's batches are all finite.
    datasets = poisoned_datasets(poisoned_index(0, 2, batch=3, world=2, rank=1))
    try:
        fit(cfg, datasets_fn=datasets)
        outcome = "finished"
    except TrainingDivergedError as exc:
        outcome = str(exc)
    Path(out, f"rank{rank}.txt").write_text(outcome)
    cleanup()


@pytest.mark.slow
def test_every_ddp_rank_stops_at_the_same_step(tmp_path):
    import torch.multiprocessing as mp

    from test_engine_ddp import free_port

    ctx = mp.spawn(_ddp_worker, args=(2, str(tmp_path), free_port()), nprocs=2, join=False)
    deadline = time.monotonic() + 180
    while not ctx.join(timeout=5):  # a rank left waiting for the other would hang here
        if time.monotonic() > deadline:
            for proc in ctx.processes:
                proc.kill()
            pytest.fail("a DDP rank kept training after the other stopped")
    outcomes = [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert outcomes[0] == outcomes[1]  # the same step, the same term, on both ranks
    assert outcomes[0].startswith("epoch 1 step 2/4: loss term 'clean' is nan at LR 0.05; stopped before its update")
    assert finite_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 1


# ============================================================================ 3. one writer per directory

HOLDER = textwrap.dedent(
    """
    import sys, time
    from videotaf.io import output_lock
    with output_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
    """
)


def start_holder(tmp_path: Path, directory: Path) -> subprocess.Popen:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(directory), "--marker"],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.slow
def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_is_taken_over(tmp_path, capsys):
    out = tmp_path / "out"
    holder = start_holder(tmp_path, out)
    try:
        with pytest.raises(OutputLockedError) as err, output_lock(out):
            pass
        message = str(err.value)
        assert f"--out {out} is being written by another process (pid {holder.pid}: " in message
        assert "holder.py" in message and "--marker" in message and "\n" not in message
        # The command line: one line, exit 2, before any work (report's index.html is not even checked).
        rc, _, stderr = cli(capsys, "report", str(tmp_path), "--out", out)
        assert rc == EXIT_BAD_INPUT and f"pid {holder.pid}" in error_line(stderr)
    finally:
        holder.send_signal(signal.SIGKILL)  # no cleanup runs: the lock file and its holder's name stay
        holder.wait(timeout=30)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid
    with output_lock(out):  # the kernel released the dead holder's flock: taken over at once
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (out / LOCK_NAME).exists()


def test_the_lock_leaves_nothing_behind_and_nests_into_subdirectories(tmp_path):
    out = tmp_path / "a" / "b"
    with output_lock(out, what="--out"):
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
        with output_lock(out / "runs" / "plain_seed0"):  # compare's runs under the held compare directory
            pass
        with pytest.raises(OutputLockedError, match=r"pid \d+"), output_lock(out):
            pass  # a second holder in the same process is refused too (flock is per open file)
    assert not (tmp_path / "a").exists()  # the directories the lock created, removed again: still empty
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "user.txt").write_text("mine")
    with output_lock(keep):
        pass
    assert sorted(p.name for p in keep.iterdir()) == ["user.txt"]


@pytest.mark.slow
def test_train_holds_its_run_directory_for_its_whole_life(tmp_path, synth_root):
    # 30 epochs of 3 steps of >= 1 s: alive long after the second process has started (it is stopped below).
    slow = {"name": "fault_toys:slow_tiny_net", "options": {"width": 4, "delay": 1.0}}
    runtime = {"progress": "lines", "log_every": 1}
    config = write_config(tmp_path / "slow.yaml", synth_root, model=slow, optim={"epochs": 30}, runtime=runtime)
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "videotaf", "train", "--config", str(config), "--out", str(run)],
        env=subprocess_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stderr is not None
        for line in first.stderr:
            if " step 1/3 " in line:
                break
        second = subprocess.run(
            [sys.executable, "-m", "videotaf", "train", "--config", str(config), "--out", str(run), "--resume"],
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    assert second.returncode == EXIT_BAD_INPUT, second.stderr
    line = error_line(second.stderr)
    assert f"pid {first.pid}: " in line and "train --config" in line


# ============================================================================ 4. signals


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "status", "workers"),
    [
        (signal.SIGINT, 130, 0),
        (signal.SIGTERM, 143, 0),
        (signal.SIGINT, 130, 2),  # Ctrl-C in a terminal: the whole process group, DataLoader workers included
    ],
)
def test_sigint_exits_130_and_sigterm_143_after_the_same_checkpoint(tmp_path, synth_root, sig, status, workers):
    slow = {"name": "fault_toys:slow_tiny_net", "options": {"width": 4, "delay": 0.2}}
    runtime = {"progress": "lines", "log_every": 1}
    config = write_config(
        tmp_path / "slow.yaml", synth_root, model=slow, data={"num_workers": workers}, runtime=runtime
    )
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "videotaf", "train", "--config", str(config), "--out", str(run)],
        env=subprocess_env(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if " step 1/3 " in line:
            break
    if workers:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == status, err
    assert "interrupted at epoch 1 step" in err and "last.pt saved" in err
    state = finite_checkpoint(run / "checkpoints" / "last.pt")  # at the step boundary after the signal
    assert state["epoch"] == 0 and state["epoch_step"] == state["step"] in (1, 2, 3)
    assert not (run / LOCK_NAME).exists()  # released on the way out


@pytest.mark.slow
def test_compare_device_workers_run_under_the_compare_lock(tmp_path):
    """``compare --devices``: the parent holds OUT, each worker process (``videotaf train``) its own run."""
    from test_compare import TINY
    from videotaf.data.synth import synthesize

    data = synthesize(tmp_path / "data", num_classes=3, train_per_class=4, val_per_class=4, num_frames=8, size=16)
    cfg = tmp_path / "base.yaml"
    cfg.write_text(TINY.replace("DATA", str(data)))
    py = [sys.executable, "-m", "videotaf"]
    env = subprocess_env()
    subprocess.run([*py, "train", "--config", str(cfg), "--out", str(tmp_path / "base")], check=True, env=env)
    out = tmp_path / "cmp"
    args = [*py, "compare", "--checkpoint", str(tmp_path / "base" / "checkpoints" / "last.pt"), "--out", str(out)]
    args += ["--methods", "plain", "taf", "--seeds", "1", "--epochs", "2", "--decay-after", "1", "--n-boot", "100"]
    done = subprocess.run([*args, "--devices", "cpu", "cpu"], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "compare.json").read_text())["n_seeds"] == 1
    assert not list(out.rglob(LOCK_NAME))  # every lock released
