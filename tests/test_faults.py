"""Fault injection for issue 12: nothing a user does loses a run, and every bad input is caught before training.

Each case runs the real command line (``videotaf.cli.main`` in-process, or ``python -m videotaf`` where a real
SIGKILL is needed) on a tiny synthetic Something-Something V2 (16 px, 4 frames, TinyNet) and asserts that

* what existed before is still there, byte for byte, and still loads;
* an expected failure is ONE line on stderr, ``error: ...``, naming its file (or flag / field), with the documented
  exit status (2 bad input or refused, 3 cannot write) and no traceback unless ``--debug``;
* an interrupted run resumed with ``--resume`` ends with the weights, metrics and LRs of an uninterrupted one.

The subprocess tests (real SIGKILL at random points of training and inside a checkpoint write, the traceback of
a real process) are marked ``slow``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

import videotaf.cli.analysis as analysis_commands
import videotaf.cli.engine as engine_commands
import videotaf.io as vio
from fault_toys import (
    DAMAGES,
    CheckpointWriteFault,
    Killed,
    damaged_checkpoint,
    enospc,
    kill_at_save,
    zip_writer_error,
)
from videotaf.cli import main
from videotaf.engine.checkpoint import load_checkpoint
from videotaf.errors import VideotafError
from videotaf.io import DiskFullError, atomic_torch_save

TESTS = Path(__file__).resolve().parent
EXIT_BAD_INPUT, EXIT_CANNOT_WRITE = 2, 3
TIMING = ("clips_per_s", "epoch_time_s")  # the only fields of metrics.jsonl allowed to differ between runs


# ============================================================================================ fixtures, helpers


def run_config(root: Path, **sections: dict) -> dict:
    """2 epochs of 3 steps (12 clips, batch 4), LR 0.01 decayed x0.1 after epoch 1, last.pt after every step."""
    cfg = {
        "model": {"name": "engine_toys:TinyNet", "num_classes": 3, "num_frames": 4, "options": {"width": 4}},
        "data": {
            "kind": "somethingv2",
            "root": str(root),
            "num_frames": 4,
            "crop_size": 16,
            "scale_size": 16,
            "num_workers": 0,
            "seed": 0,
        },
        "optim": {"lr": 0.01, "epochs": 2, "milestones": [1], "gamma": 0.1, "batch_size": 4},
        "adversarial": {"eps": 16 / 255, "step_size": 8 / 255},
        "runtime": {"device": "cpu", "deterministic": True, "progress": "none", "checkpoint_every_steps": 1},
    }
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    return cfg


def write_config(path: Path, root: Path, **sections: dict) -> Path:
    path.write_text(yaml.safe_dump(run_config(root, **sections)))
    return path


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, synth_root) -> Path:
    return write_config(tmp_path_factory.mktemp("cfg") / "tiny.yaml", synth_root)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, config_file) -> Path:
    """One uninterrupted run of ``config_file``: the reference. Tests that change a run work on a copy."""
    run = tmp_path_factory.mktemp("base") / "run"
    assert main(["train", "--config", str(config_file), "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def base_finetune(tmp_path_factory, base_run, config_file) -> Path:
    """An uninterrupted TAF fine-tune of the base run (2 epochs, LR x0.1 after 1)."""
    run = tmp_path_factory.mktemp("ft") / "taf"
    assert main(finetune_args(base_run, config_file, run)) == 0
    return run


def finetune_args(base: Path, config: Path | None, out: Path, *extra: str) -> list[str]:
    args = ["finetune", "--checkpoint", str(base / "checkpoints" / "last.pt"), "--method", "taf"]
    args += ["--epochs", "2", "--decay-after", "1", "--out", str(out)]
    return args + (["--config", str(config)] if config is not None else []) + list(extra)


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: its bytes and mtime."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()
    }


def cli(capsys, *args: object) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def error_line(err: str, *, after_training: bool = False) -> str:
    """The one line a failed command prints: ``error: ...``, nothing else, no traceback. ``after_training``: a
    failure during training follows the run's own log lines (``epoch ...``, ``resuming from ...``)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if after_training:
        lines = [ln for ln in lines if not ln.startswith(("epoch ", "resuming from "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def stale_temporaries(run: Path) -> list[Path]:
    return sorted(run.rglob(".*.tmp"))


def assert_same_weights(a: Path, b: Path) -> None:
    """Every tensor of the two checkpoints' model and optimizer states is equal (bit for bit)."""
    x, y = load_checkpoint(a), load_checkpoint(b)
    assert x["model"].keys() == y["model"].keys()
    for k in x["model"]:
        assert torch.equal(x["model"][k], y["model"][k]), k
    assert (x["epoch"], x["step"]) == (y["epoch"], y["step"])
    for s, t in zip(x["optimizer"]["state"].values(), y["optimizer"]["state"].values(), strict=True):
        for k in s:
            assert torch.equal(s[k], t[k]), k


def metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_metrics(a: Path, b: Path) -> None:
    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in metrics(a)]
    assert strip == [{k: v for k, v in r.items() if k not in TIMING} for r in metrics(b)]


@pytest.fixture
def one_thread():
    """Subprocesses run with one thread; in-process parts compared with them bit for bit must too."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(TESTS.parent / "src"), env.get("PYTHONPATH", "")])
    env.pop("VIDEOTAF_DEBUG", None)
    return env


# ============================================================================================ 1. overwrite refusal


def test_train_twice_is_refused_and_overwrite_leaves_nothing_of_the_old_run(
    tmp_path, base_run, config_file, synth_root, capsys
):
    run = copy_run(base_run, tmp_path / "R")
    (run / "notes.txt").write_text("the user's own file\n")
    before = snapshot(run)
    assert len(metrics(run)) == 2

    t0 = time.perf_counter()
    rc, _, err = cli(capsys, "train", "--config", config_file, "--out", run)
    assert rc == EXIT_BAD_INPUT and time.perf_counter() - t0 < 2.0
    line = error_line(err)
    assert str(run) in line and "--resume" in line and "--overwrite" in line
    assert snapshot(run) == before  # best.pt, last.pt, metrics.jsonl, eval.json, config.yaml: bytes and mtimes

    # What only the old run wrote: a temporary of a killed write and its TensorBoard log (MetricsLogger's tb/).
    (run / "checkpoints" / ".last.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    (run / "tb").mkdir()
    (run / "tb" / "events.out.tfevents.old").write_bytes(b"old curves")
    one_epoch = write_config(tmp_path / "one.yaml", synth_root, optim={"epochs": 1, "milestones": []})
    rc, _, err = cli(capsys, "train", "--config", one_epoch, "--out", run, "--overwrite")
    assert rc == 0, err
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()) == [
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "config.yaml",
        "eval.json",
        "metrics.jsonl",
        "notes.txt",
    ]
    assert (run / "notes.txt").read_text() == "the user's own file\n"
    assert [r["epoch"] for r in metrics(run)] == [1]
    for name in ("best.pt", "last.pt"):
        state = load_checkpoint(run / "checkpoints" / name)
        assert state["epoch"] == 1 and state["config"]["optim"]["epochs"] == 1
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["epochs"] == 1


def test_finetune_twice_is_refused_and_overwrite_replaces_it(tmp_path, base_run, base_finetune, config_file, capsys):
    ft = copy_run(base_finetune, tmp_path / "F")
    before = snapshot(ft)
    t0 = time.perf_counter()
    rc, _, err = cli(capsys, *finetune_args(base_run, config_file, ft))
    assert rc == EXIT_BAD_INPUT and time.perf_counter() - t0 < 2.0
    line = error_line(err)
    assert str(ft) in line and "--resume" in line and "--overwrite" in line
    assert snapshot(ft) == before
    rc, _, err = cli(capsys, *finetune_args(base_run, config_file, ft, "--epochs", "1", "--overwrite"))
    assert rc == 0, err
    assert [r["epoch"] for r in metrics(ft)] == [1]
    assert load_checkpoint(ft / "checkpoints" / "last.pt")["epoch"] == 1 and not stale_temporaries(ft)


def _output_commands(run: Path, tmp: Path) -> dict[str, tuple[list[str], Path]]:
    """Each command with an ``--out``: its arguments and the file that must not be touched."""
    ckpt = str(run / "checkpoints" / "best.pt")
    common = ["--workers", "0", "--device", "cpu"]
    return {
        "eval": (["eval", "--checkpoint", ckpt, "--out", str(tmp / "eval.json")], tmp / "eval.json"),
        "export": (["export", "--checkpoint", ckpt, "--out", str(tmp / "w.pt")], tmp / "w.pt"),
        "analyze": (
            ["analyze", "--checkpoint", ckpt, "--max-clips", "2", "--out", str(tmp / "att.json"), *common],
            tmp / "att.json",
        ),
        "cam": (
            ["cam", "--checkpoint", ckpt, "--video", "dataset:0", "--out", str(tmp / "cam.png"), "--device", "cpu"],
            tmp / "cam.png",
        ),
        "robustness": (
            ["robustness", "--checkpoint", ckpt, "--corruptions", "gaussian_noise", "--severities", "1"]
            + ["--max-clips", "2", "--batch-size", "2", "--out", str(tmp / "rob"), *common],
            tmp / "rob" / "robustness.json",
        ),
        "report": (["report", str(run), "--out", str(tmp / "rep")], tmp / "rep" / "index.html"),
    }


@pytest.mark.parametrize("command", ["eval", "export", "analyze", "cam", "robustness", "report"])
def test_existing_output_is_refused_before_any_work(tmp_path, base_run, command, capsys, monkeypatch):
    args, output = _output_commands(base_run, tmp_path)[command]
    rc, _, err = cli(capsys, *args)
    assert rc == 0 and output.is_file(), err
    os.utime(output, ns=(1_000_000_000, 1_000_000_000))  # an old file: any write would change its mtime
    before = snapshot(output.parent)

    def work(*a, **k):
        raise AssertionError(f"{command}: started working on an output it should refuse")

    with monkeypatch.context() as m:
        for module, name in (
            (engine_commands, "load_model"),
            (engine_commands, "export"),
            (analysis_commands, "load_model"),
            (analysis_commands, "build_report"),
        ):
            m.setattr(module, name, work)
        t0 = time.perf_counter()
        rc, _, err = cli(capsys, *args)
        elapsed = time.perf_counter() - t0
    assert rc == EXIT_BAD_INPUT and elapsed < 2.0
    line = error_line(err)
    assert str(output) in line and "--overwrite" in line
    assert snapshot(output.parent) == before

    rc, _, err = cli(capsys, *args, "--overwrite")
    assert rc == 0, err
    assert output.stat().st_mtime_ns != 1_000_000_000


# ============================================================================================ 2. labels out of range


def test_labels_beyond_the_class_count_stop_train_before_the_first_step(
    tmp_path, synth_root, base_run, capsys, monkeypatch
):
    videos = sorted(p.relative_to(synth_root) for p in (synth_root / "20bn-something-something-v2").glob("*.webm"))
    train_list, val_list = tmp_path / "train.txt", tmp_path / "val.txt"
    lines = [f"{v} {i % 3}" for i, v in enumerate(videos)]
    train_list.write_text("\n".join([lines[0], f"{videos[1]} 99", *lines[2:12]]) + "\n")
    val_list.write_text("\n".join(lines[12:18]) + "\n")
    data = {
        "kind": "filelist",
        "list_files": {"train": str(train_list), "validation": str(val_list)},
        "list_format": "video",
    }
    config = write_config(tmp_path / "list.yaml", synth_root, data=data)

    def step(*a, **k):
        raise AssertionError("a training step ran")

    monkeypatch.setattr("videotaf.engine.train.train_one_epoch", step)
    run = tmp_path / "R"
    rc, _, err = cli(capsys, "train", "--config", config, "--out", run)
    assert rc == EXIT_BAD_INPUT
    line = error_line(err)
    assert f"{train_list}:2: label 99 out of range [0, 3)" in line and "model.num_classes" in line
    assert not run.exists()  # nothing written: the same command runs once the list is fixed

    # Over an existing run with --overwrite: the bad input is caught before the old run is removed.
    old = copy_run(base_run, tmp_path / "old")
    before = snapshot(old)
    rc, _, err = cli(capsys, "train", "--config", config, "--out", old, "--overwrite")
    assert rc == EXIT_BAD_INPUT and f"{train_list}:2: label 99" in error_line(err)
    assert snapshot(old) == before

    monkeypatch.undo()
    train_list.write_text("\n".join(lines[:12]) + "\n")
    rc, _, err = cli(capsys, "train", "--config", config, "--out", run)
    assert rc == 0, err
    assert [r["epoch"] for r in metrics(run)] == [1, 2]


# ============================================================================================ 3. damaged checkpoints

CHECKPOINT_COMMANDS = (
    "finetune",
    "finetune_with_config",
    "eval",
    "export",
    "train_resume",
    "robustness",
    "cam",
    "analyze",
)


def _damaged_command(command: str, bad: Path, tmp: Path, base_run: Path, config: Path) -> tuple[list[str], Path]:
    """The arguments running ``command`` on the damaged checkpoint ``bad`` and the output that must not appear."""
    common = ["--workers", "0", "--device", "cpu"]
    out = tmp / "out"
    if command == "finetune":
        return ["finetune", "--checkpoint", str(bad), "--method", "taf", "--out", str(out)], out
    if command == "finetune_with_config":
        return [
            "finetune",
            "--checkpoint",
            str(bad),
            "--method",
            "taf",
            "--config",
            str(config),
            "--out",
            str(out),
        ], out
    if command == "eval":
        return ["eval", "--checkpoint", str(bad), "--out", str(out)], out
    if command == "export":
        return ["export", "--checkpoint", str(bad), "--out", str(out)], out
    if command == "train_resume":
        return ["train", "--out", str(bad.parent.parent), "--resume"], out
    if command == "robustness":
        return [
            "robustness",
            "--checkpoint",
            str(bad),
            "--corruptions",
            "gaussian_noise",
            "--out",
            str(out),
            *common,
        ], out
    if command == "cam":
        return ["cam", "--checkpoint", str(bad), "--video", "dataset:0", "--out", str(out), "--device", "cpu"], out
    if command == "analyze":
        return ["analyze", "--checkpoint", str(bad), "--out", str(out), *common], out
    raise ValueError(command)


def _damaged_setup(command: str, damage: str, tmp: Path, base_run: Path) -> Path:
    good = base_run / "checkpoints" / "last.pt"
    if command == "train_resume":  # the run's own last.pt is the damaged one
        run = copy_run(base_run, tmp / "R")
        return damaged_checkpoint(damage, good, run / "checkpoints" / "last.pt")
    return damaged_checkpoint(damage, good, tmp / "bad.pt")


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("command", CHECKPOINT_COMMANDS)
def test_damaged_checkpoint_is_one_line_naming_the_file(tmp_path, base_run, config_file, command, damage, capsys):
    bad = _damaged_setup(command, damage, tmp_path, base_run)
    args, out = _damaged_command(command, bad, tmp_path, base_run, config_file)
    run = bad.parent.parent
    before = snapshot(run if command == "train_resume" else bad.parent)
    rc, _, err = cli(capsys, *args)
    assert rc == EXIT_BAD_INPUT, err
    assert str(bad) in error_line(err)
    assert not out.exists()  # nothing half-written
    assert snapshot(run if command == "train_resume" else bad.parent) == before
    if command == "train_resume":  # the run's other checkpoint still loads
        assert load_checkpoint(run / "checkpoints" / "best.pt")["epoch"] >= 1


@pytest.mark.parametrize("command", CHECKPOINT_COMMANDS)
def test_debug_shows_the_traceback(tmp_path, base_run, config_file, command, capsys, monkeypatch):
    bad = _damaged_setup(command, "truncated", tmp_path, base_run)
    args, _ = _damaged_command(command, bad, tmp_path, base_run, config_file)
    with pytest.raises((VideotafError, ValueError)) as info:  # the expected failure, with its traceback
        main(["--debug", *args])
    assert info.traceback and str(bad) in " ".join(str(info.value).split())
    monkeypatch.setenv("VIDEOTAF_DEBUG", "1")
    with pytest.raises(type(info.value)):
        main(args)


# ============================================================================================ 4. disk full


@pytest.mark.parametrize("fault", [enospc, zip_writer_error], ids=["ENOSPC", "zip_writer"])
def test_disk_full_part_way_through_a_checkpoint_write(tmp_path, fault, monkeypatch):
    last = tmp_path / "checkpoints" / "last.pt"
    atomic_torch_save({"epoch": 1, "w": torch.arange(10.0)}, last)
    before = last.read_bytes()
    monkeypatch.setattr(vio, "_free_bytes", lambda directory: 4096)  # the probe: a nearly full disk
    fault_ = CheckpointWriteFault("last.pt", after=0, fail=fault).install(monkeypatch.setattr)
    with pytest.raises(DiskFullError) as info:
        atomic_torch_save({"epoch": 2, "w": torch.zeros(100_000)}, last)
    assert fault_.failed == [last]
    assert str(last) in str(info.value) and "disk is full" in str(info.value) and "\n" not in str(info.value)
    assert last.read_bytes() == before and load_checkpoint(last)["epoch"] == 1
    assert stale_temporaries(tmp_path) == []


def test_zip_writer_error_with_free_space_is_not_called_disk_full(tmp_path, monkeypatch):
    last = tmp_path / "last.pt"
    atomic_torch_save({"epoch": 1}, last)
    monkeypatch.setattr(vio, "_free_bytes", lambda directory: 50 << 30)
    CheckpointWriteFault("last.pt", after=0, fail=zip_writer_error).install(monkeypatch.setattr)
    with pytest.raises(RuntimeError, match="unexpected pos") as info:
        atomic_torch_save({"epoch": 2}, last)
    assert not isinstance(info.value, DiskFullError)
    assert load_checkpoint(last)["epoch"] == 1 and stale_temporaries(tmp_path) == []


def _mount_small_tmpfs(where: Path) -> bool:
    """Capability check: root with a working ``mount -t tmpfs`` (a container without CAP_SYS_ADMIN has none)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)], capture_output=True)
    return r.returncode == 0


def test_disk_full_on_a_really_full_file_system(tmp_path, monkeypatch):
    """A real ENOSPC under the real torch.save: a full 512 KiB tmpfs where it can be mounted, else writes to
    /dev/full (always ENOSPC), else the part-way writer. Never skipped."""
    small = tmp_path / "small"
    mounted = _mount_small_tmpfs(small)
    try:
        if not mounted:
            small.mkdir(exist_ok=True)
        last = small / "last.pt"
        atomic_torch_save({"epoch": 1, "w": torch.arange(10.0)}, last)
        before = last.read_bytes()
        if mounted:
            fd = os.open(small / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                with pytest.raises(OSError):
                    while True:
                        os.write(fd, b"\0" * 65536)
            finally:
                os.close(fd)
        elif Path("/dev/full").exists():
            real_mkstemp = vio.tempfile.mkstemp

            def mkstemp(*args, **kwargs):
                fd, name = real_mkstemp(*args, **kwargs)  # the temporary exists (and is removed) as usual
                os.close(fd)
                return os.open("/dev/full", os.O_WRONLY), name

            monkeypatch.setattr(vio.tempfile, "mkstemp", mkstemp)
        else:
            monkeypatch.setattr(vio, "_free_bytes", lambda directory: 0)
            CheckpointWriteFault("last.pt", after=0, fail=enospc).install(monkeypatch.setattr)
        with pytest.raises(DiskFullError) as info:
            atomic_torch_save({"epoch": 2, "w": torch.zeros(1 << 20)}, last)
        assert str(last) in str(info.value) and isinstance(info.value.__cause__, OSError)
        assert last.read_bytes() == before and load_checkpoint(last)["epoch"] == 1
        assert stale_temporaries(small) == []
    finally:
        if mounted:
            subprocess.run(["umount", str(small)], check=True)


@pytest.mark.parametrize("fault", [enospc, zip_writer_error], ids=["ENOSPC", "zip_writer"])
def test_train_disk_full_at_last_pt_exits_3_and_resume_finishes(
    tmp_path, base_run, config_file, fault, capsys, monkeypatch
):
    run = tmp_path / "R"
    with monkeypatch.context() as m:
        m.setattr(vio, "_free_bytes", lambda directory: 4096)
        # last.pt writes: steps 1-3, end of epoch 1 (4th), step 1 of epoch 2 (5th) -> the disk fills up there
        CheckpointWriteFault("last.pt", after=4, fail=fault).install(m.setattr)
        rc, _, err = cli(capsys, "train", "--config", config_file, "--out", run)
    assert rc == EXIT_CANNOT_WRITE
    line = error_line(err, after_training=True)
    assert str(run / "checkpoints" / "last.pt") in line and "disk is full" in line
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert (state["epoch"], state["epoch_step"], state["step"]) == (1, 0, 3)
    assert stale_temporaries(run) == [] and [r["epoch"] for r in metrics(run)] == [1]

    rc, _, err = cli(capsys, "train", "--out", run, "--resume")
    assert rc == 0, err
    assert_same_weights(base_run / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")
    assert_same_metrics(base_run, run)
    assert json.loads((run / "eval.json").read_text()) == json.loads((base_run / "eval.json").read_text())


# ============================================================================================ 6. attack settings


@pytest.mark.parametrize(
    "extra, names",
    [
        (["--eps", "1.5"], "--eps"),
        (["--step-size", "2"], "--step-size"),
        (["--num-nonkey", "9"], "adversarial.num_nonkey"),
        (["--num-nonkey", "0"], "adversarial.num_nonkey"),
        (["--set", "adversarial.eps=2"], "adversarial.eps"),
        (["--alpha", "1.5"], "adversarial.alpha"),
    ],
)
def test_out_of_range_attack_settings_exit_2_naming_the_flag(tmp_path, base_run, config_file, extra, names, capsys):
    out = tmp_path / "F"
    args = finetune_args(base_run, config_file, out, *extra)
    try:
        rc, _, err = cli(capsys, *args)
    except SystemExit as exc:  # argparse's own checks exit from parse_args
        rc, err = exc.code, capsys.readouterr().err
    assert rc == EXIT_BAD_INPUT
    line = error_line(err)
    assert names in line and (extra[-1] in line or extra[-1].split("=")[-1] in line)
    assert not out.exists()


def test_out_of_range_attack_settings_in_train_exit_2(tmp_path, config_file, capsys):
    rc, _, err = cli(capsys, "train", "--config", config_file, "--out", tmp_path / "R", "--set", "adversarial.eps=2")
    assert rc == EXIT_BAD_INPUT and "adversarial.eps" in error_line(err) and not (tmp_path / "R").exists()


# ============================================================================================ 7. fine-tune resume


def test_finetune_resume_reads_the_run_back_and_gives_the_uninterrupted_weights(
    tmp_path, base_run, base_finetune, config_file, capsys, monkeypatch
):
    ft = tmp_path / "F"
    with monkeypatch.context() as m:
        kill_at_save(m.setattr, epoch=1, epoch_step=2, after=False)  # killed in epoch 2, after the LR decay
        with pytest.raises(Killed):
            main(finetune_args(base_run, config_file, ft))
    state = load_checkpoint(ft / "checkpoints" / "last.pt")
    assert (state["epoch"], state["epoch_step"]) == (1, 1)

    before = snapshot(ft)
    for extra, flag in ((["--method", "plain"], "--method"), (["--checkpoint", str(config_file)], "--checkpoint")):
        rc, _, err = cli(capsys, "finetune", "--resume", "--out", ft, *extra)
        assert rc == EXIT_BAD_INPUT
        line = error_line(err)
        assert flag in line and str(ft / "config.yaml") in line and "omit it" in line
        assert snapshot(ft) == before

    rc, _, err = cli(capsys, "finetune", "--resume", "--out", ft)  # no --checkpoint, --method, --config
    assert rc == 0, err
    assert_same_weights(base_finetune / "checkpoints" / "last.pt", ft / "checkpoints" / "last.pt")
    assert_same_metrics(base_finetune, ft)
    # The fine-tune continues at the LR the base run was saved with (--lr-from auto), then decays x0.1.
    assert [r["lr"] for r in metrics(ft)] == pytest.approx([0.001, 0.0001])
    assert all(r["train_loss_adv"] is not None for r in metrics(ft))


# ============================================================================================ 8. bookkeeping

EPOCH_LINE = re.compile(
    r"^epoch (\d)/2 loss \d+\.\d{4} train_top1 \d{1,3}\.\d{2} val_top1 \d{1,3}\.\d{2} lr (0\.01|0\.001)$"
)


@pytest.mark.parametrize(
    "epoch, epoch_step, after",
    [(1, 0, True), (1, 0, False), (0, 3, False), (1, 2, False)],
    ids=["after-epoch-1-checkpoint", "before-epoch-1-checkpoint", "before-last-step-checkpoint", "mid-epoch-2"],
)
def test_metrics_and_lr_across_a_resume(tmp_path, base_run, config_file, epoch, epoch_step, after, capsys, monkeypatch):
    run = tmp_path / "R"
    with monkeypatch.context() as m:
        kill_at_save(m.setattr, epoch=epoch, epoch_step=epoch_step, after=after)
        with pytest.raises(Killed):
            main(["train", "--config", str(config_file), "--out", str(run)])
    first = capsys.readouterr()
    rc, out, err = cli(capsys, "train", "--out", run, "--resume")
    assert rc == 0, err
    records = metrics(run)
    assert [r["epoch"] for r in records] == [1, 2]  # each epoch once, none lost
    assert [r["lr"] for r in records] == pytest.approx([0.01, 0.001])
    assert_same_metrics(base_run, run)
    assert_same_weights(base_run / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")

    # The epoch lines go to stderr (stdout is for results), accuracies with 2 decimals, the schedule's LR.
    lines = [ln for ln in (first.err + err).splitlines() if ln.startswith("epoch ")]
    assert lines and all(EPOCH_LINE.match(ln) for ln in lines), lines
    assert {int(EPOCH_LINE.match(ln).group(1)): EPOCH_LINE.match(ln).group(2) for ln in lines} == {
        1: "0.01",
        2: "0.001",
    }
    assert "epoch " not in first.out + out
    assert any(ln.startswith("resuming from ") for ln in err.splitlines())


# ============================================================================================ 5. kill -9 (slow)


def _read_until(proc: subprocess.Popen, pattern: str, seen: list[str]) -> bool:
    """Read ``proc``'s stderr until a line holds ``pattern``; False when it ended first."""
    for line in proc.stderr:  # type: ignore[union-attr]
        seen.append(line)
        if pattern in line:
            return True
    return False


def _kill_during(args: list[str], pattern: str, delay: float) -> tuple[int, str]:
    """Start ``python -m videotaf ARGS``, wait for a stderr line holding ``pattern``, then ``delay`` seconds,
    then SIGKILL it. Returns its exit status and what it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "videotaf", *args],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    seen: list[str] = []
    try:
        if _read_until(proc, pattern, seen):
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)  # no handler runs: only what is on disk survives
    finally:
        watchdog.cancel()
        proc.wait(timeout=60)
        if proc.stderr is not None:
            proc.stderr.close()
    return proc.returncode, "".join(seen)


@pytest.mark.slow
def test_sigkill_at_random_points_of_training_then_resume(tmp_path, synth_root, one_thread, capsys):
    slow = {"name": "fault_toys:slow_tiny_net", "options": {"width": 4, "delay": 0.08}}
    # 3 epochs of 6 steps (batch 2), each step >= 0.08 s: the kills below stay well inside the 18 steps.
    config = write_config(
        tmp_path / "slow.yaml",
        synth_root,
        model=slow,
        optim={"epochs": 3, "batch_size": 2},
        runtime={"progress": "lines", "log_every": 1},
    )
    ref = tmp_path / "ref"
    rc, _, err = cli(capsys, "train", "--config", config, "--out", ref, "--set", "model.options.delay=0")
    assert rc == 0, err

    run = tmp_path / "run"
    rng = random.Random(1207)  # the kill points: seeded, so a failure replays
    segments = [
        (["train", "--config", str(config), "--out", str(run)], " step 1/6 ", rng.uniform(0.0, 0.5)),
        (["train", "--out", str(run), "--resume"], " step 3/6 ", rng.uniform(0.0, 0.05)),  # mid-epoch
        (["train", "--out", str(run), "--resume"], " step ", rng.uniform(0.0, 0.3)),
    ]
    steps = []
    for args, pattern, delay in segments:
        rc, printed = _kill_during(args, pattern, delay)
        assert rc == -signal.SIGKILL, f"not killed (exit {rc}) after {delay:.2f}s:\n{printed}"
        state = load_checkpoint(run / "checkpoints" / "last.pt")  # the last good checkpoint always loads
        if (run / "checkpoints" / "best.pt").exists():
            load_checkpoint(run / "checkpoints" / "best.pt")
        steps.append(state["step"])
    assert steps == sorted(steps) and steps[-1] < 18, steps

    rc, _, err = cli(capsys, "train", "--out", run, "--resume")
    assert rc == 0, err
    assert stale_temporaries(run) == []
    assert_same_weights(ref / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")
    assert_same_metrics(ref, run)
    assert [r["lr"] for r in metrics(run)] == pytest.approx([0.01, 0.001, 0.001])


RUNNER = textwrap.dedent(
    """
    import sys
    from fault_toys import CheckpointWriteFault, hang
    # The (after+1)-th write of last.pt writes half its bytes, says so on stderr, and waits to be killed.
    CheckpointWriteFault("last.pt", after=int(sys.argv[1]), fail=hang()).install(setattr)
    from videotaf.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.slow
def test_sigkill_inside_a_checkpoint_write_then_resume(tmp_path, config_file, one_thread, capsys):
    ref = tmp_path / "ref"
    rc, _, err = cli(capsys, "train", "--config", config_file, "--out", ref)
    assert rc == 0, err

    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"
    proc = subprocess.Popen(
        [sys.executable, str(runner), "4", "train", "--config", str(config_file), "--out", str(run)],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    seen: list[str] = []
    try:
        inside = _read_until(proc, "INSIDE-CHECKPOINT-WRITE", seen)
        before = last.read_bytes() if inside else b""
        proc.send_signal(signal.SIGKILL)
    finally:
        watchdog.cancel()
        proc.wait(timeout=60)
        proc.stderr.close()  # type: ignore[union-attr]
    assert inside and proc.returncode == -signal.SIGKILL, "".join(seen)

    tmp = stale_temporaries(run)
    assert len(tmp) == 1 and tmp[0].name.startswith(".last.pt.") and tmp[0].stat().st_size > 0
    assert last.read_bytes() == before  # the write in progress never touched it
    state = load_checkpoint(last)
    assert (state["epoch"], state["epoch_step"], state["step"]) == (1, 0, 3)

    rc, _, err = cli(capsys, "train", "--out", run, "--resume")
    assert rc == 0, err
    assert stale_temporaries(run) == []
    assert_same_weights(ref / "checkpoints" / "last.pt", last)
    assert_same_metrics(ref, run)


@pytest.mark.slow
def test_debug_traceback_of_a_real_process(tmp_path, base_run):
    # A foreign pickle: torch also warns while refusing it, which must not reach stderr beside the error line.
    bad = damaged_checkpoint("foreign_pickle", base_run / "checkpoints" / "last.pt", tmp_path / "bad.pt")
    args = [sys.executable, "-m", "videotaf", "eval", "--checkpoint", str(bad), "--out", str(tmp_path / "e.json")]
    plain = subprocess.run(args, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert plain.returncode == EXIT_BAD_INPUT and str(bad) in error_line(plain.stderr)
    debug = subprocess.run(
        [*args[:3], "--debug", *args[3:]], env=subprocess_env(), capture_output=True, text=True, timeout=120
    )
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "CheckpointError" in debug.stderr and str(bad) in debug.stderr
