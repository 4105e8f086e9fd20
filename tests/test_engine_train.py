from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader

import videotaf.objective as objective_mod
from engine_toys import TinyNet, ToyClips, toy_config, toy_datasets
from videotaf.bn import convert_dual_bn, has_dual_bn
from videotaf.config import OptimConfig, load_config
from videotaf.engine import checkpoint as ck
from videotaf.engine import train as train_mod
from videotaf.engine.builders import load_model
from videotaf.engine.checkpoint import CheckpointError
from videotaf.engine.logs import EPOCH_KEYS
from videotaf.engine.optim import build_optimizer
from videotaf.engine.train import fit, train_one_epoch
from videotaf.objective import build_objective


def batch_loss(model, clips, labels):
    model.eval()
    with torch.no_grad():
        loss = F.cross_entropy(model(clips), labels).item()
    model.train()
    return loss


@pytest.mark.slow
@pytest.mark.parametrize("method", ["plain", "ce_adv", "advprop", "taf"])
def test_each_method_lowers_the_loss(method):
    torch.manual_seed(0)
    data = ToyClips(24, 4, 16, 3, seed=1)
    model = TinyNet()
    objective = build_objective(method, eps=8 / 255, step_size=4 / 255)
    if objective.needs_dual_bn:
        convert_dual_bn(model)
    assert has_dual_bn(model) == (method in ("advprop", "taf"))
    opt = build_optimizer(model, OptimConfig(lr=0.05, weight_decay=0.0))
    loader = DataLoader(data, batch_size=8, shuffle=False)
    before = batch_loss(model, data.clips, data.labels)
    for _ in range(4):
        sums = train_one_epoch(model, objective, loader, opt, device=torch.device("cpu"), clip_grad_norm=20.0)
    after = batch_loss(model, data.clips, data.labels)
    assert after < before - 0.05, (method, before, after)
    assert sums.clips == 24  # clips seen in the last epoch
    if method == "plain":
        assert set(sums.losses) == {"total", "clean"} and sums.counts["attacked"] == 0
    else:
        assert sums.losses["adv"] > 0.0  # adversarial loss accumulated
        assert sums.counts["attacked"] == 24


def test_taf_uses_the_attack_and_the_adversarial_path(monkeypatch):
    torch.manual_seed(0)
    data = ToyClips(12, 4, 16, 3, seed=1)
    model = convert_dual_bn(TinyNet())
    calls = {"adv_path": 0, "attack": 0}
    real_path = objective_mod.adversarial_path

    def spy_path(m):
        calls["adv_path"] += 1
        return real_path(m)

    monkeypatch.setattr(objective_mod, "adversarial_path", spy_path)
    objective = build_objective("taf", eps=8 / 255, step_size=4 / 255)
    attack = objective.attack
    assert attack is not None
    real_input_gradient = attack.input_gradient

    def counted(*a, **k):
        calls["attack"] += 1
        return real_input_gradient(*a, **k)

    monkeypatch.setattr(attack, "input_gradient", counted)
    aux = model.stem[1].aux_bn
    aux_mean0, main_mean0 = aux.running_mean.clone(), model.stem[1].running_mean.clone()
    opt = build_optimizer(model, OptimConfig(lr=0.01))
    train_one_epoch(model, objective, DataLoader(data, batch_size=6), opt, device=torch.device("cpu"))
    assert calls == {"adv_path": 2, "attack": 2}
    assert not torch.equal(aux.running_mean, aux_mean0)  # adversarial clips went through the aux BN
    assert not torch.equal(aux.running_mean, model.stem[1].running_mean)
    assert not torch.equal(model.stem[1].running_mean, main_mean0)


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_fit_writes_the_run_directory(tmp_path):
    run = tmp_path / "run"
    cfg = toy_config(str(run), "taf")
    result = fit(cfg, datasets_fn=toy_datasets, subset_classes=["class_1"])
    assert load_config(run / "config.yaml").adversarial.method == "taf"
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == 0.05
    records = read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert set(EPOCH_KEYS) <= set(r)
        assert r["train_loss_adv"] is not None and r["val_top1"] is not None
    assert records[0]["lr"] == pytest.approx(0.05) and records[1]["lr"] == pytest.approx(0.005)
    assert result["epoch"] == 2
    ev = json.loads((run / "eval.json").read_text())
    assert set(ev) >= {"top1", "top5", "loss", "per_class", "classes", "num_clips", "subset"}
    assert ev["num_clips"] == 12 and ev["subset"]["classes"] == ["class_1"]
    assert ev["top1"] == pytest.approx(records[-1]["val_top1"])
    last = ck.load_checkpoint(run / "checkpoints" / "last.pt")
    best = ck.load_checkpoint(run / "checkpoints" / "best.pt")
    assert last["epoch"] == 2 and last["step"] == 8 and last["dual_bn"]
    assert best["best_metric"] == max(r["val_top1"] for r in records)
    model, cfg_dict = load_model(run / "checkpoints" / "last.pt")
    assert not has_dual_bn(model) and cfg_dict["adversarial"]["method"] == "taf"


def final_weights(run):
    return ck.load_checkpoint(run / "checkpoints" / "last.pt")["model"]


def as_legacy_checkpoint(path):
    """Rewrite ``path`` as the release before named loss terms wrote it: ``epoch_sums`` a positional float64
    tensor ``[loss, loss_clean, loss_adv, correct, clips, seconds]`` (git show 61dd47e:src/videotaf/engine/train.py)."""
    state = ck.load_checkpoint(path)
    sums = state["epoch_sums"]
    losses, counts = sums["losses"], sums["counts"]
    positional = [losses["total"], losses["clean"], losses.get("adv", 0.0), counts["correct"], counts["clips"]]
    state["epoch_sums"] = torch.tensor([*positional, sums["seconds"]], dtype=torch.float64)
    ck.save_checkpoint(state, path)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop_after", "legacy"),
    [(3, False), (4, False), (3, True)],  # mid-epoch, exactly at the epoch boundary, mid-epoch from an old release
)
def test_interrupt_and_resume_matches_uninterrupted(tmp_path, monkeypatch, stop_after, legacy):
    ref = tmp_path / "ref"
    fit(toy_config(str(ref), "taf"), datasets_fn=toy_datasets)

    run = tmp_path / "run"
    steps = {"n": 0}
    real_call = train_mod._StopFlag.__call__

    def stop_after_k(self):
        # called once per step, after the step's on_step hook: acts like a SIGTERM arriving during step k
        steps["n"] += 1
        if steps["n"] == stop_after - 1:
            self.set = True
            return False
        return real_call(self)

    monkeypatch.setattr(train_mod._StopFlag, "__call__", stop_after_k)
    with pytest.raises(train_mod.TrainingInterrupted):
        fit(toy_config(str(run), "taf"), datasets_fn=toy_datasets)
    monkeypatch.undo()
    state = ck.load_checkpoint(run / "checkpoints" / "last.pt")
    assert (state["epoch"], state["epoch_step"], state["step"]) == (0, stop_after, stop_after)
    if legacy:
        as_legacy_checkpoint(run / "checkpoints" / "last.pt")

    fit(toy_config(str(run), "taf"), datasets_fn=toy_datasets, resume=True)
    a, b = final_weights(ref), final_weights(run)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ra, rb = read_metrics(ref), read_metrics(run)
    assert [r["epoch"] for r in rb] == [1, 2]
    for x, y in zip(ra, rb):
        for key in ("train_loss", "train_loss_clean", "train_loss_adv", "train_top1", "val_loss", "val_top1"):
            assert x[key] == pytest.approx(y[key], rel=1e-9), key


def test_resume_without_checkpoint_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="last.pt"):
        fit(toy_config(str(tmp_path / "none")), datasets_fn=toy_datasets, resume=True)


def test_batch_larger_than_dataset_is_an_error(tmp_path):
    cfg = toy_config(str(tmp_path / "r"))
    cfg.optim.batch_size = 100
    with pytest.raises(ValueError, match="fewer than one batch"):
        fit(cfg, datasets_fn=toy_datasets)


def test_resume_into_a_different_run_is_a_clear_error(tmp_path):
    run = tmp_path / "r"
    cfg = toy_config(str(run), "plain")
    cfg.optim.epochs = 1
    fit(cfg, datasets_fn=toy_datasets)
    with pytest.raises(ck.CheckpointError, match=r"last.pt does not match the configured run"):
        fit(toy_config(str(run), "taf"), datasets_fn=toy_datasets, resume=True)  # dual BN keys differ


def test_epoch_sums_add_terms_by_name_and_read_the_old_positional_layout():
    sums = train_mod.EpochSums()
    sums.add_step({"total": 1.0, "clean": 0.5, "adv": 2.0}, {"clips": 4, "attacked": 2, "correct": 3}, 0.25)
    sums.add_step({"total": 3.0, "clean": 1.5, "aux": 0.5}, {"clips": 2, "attacked": 0, "correct": 1}, 0.5)
    assert sums.losses == {"total": 10.0, "clean": 5.0, "adv": 8.0, "aux": 1.0}  # each mean times its step's B
    assert sums.counts == {"clips": 6.0, "attacked": 2.0, "correct": 4.0} and sums.seconds == 0.75
    again = train_mod.EpochSums.from_state(sums.to_state(), adversarial=True)
    assert again == sums and train_mod.reduce_sums(sums) == sums  # one process: the sums themselves

    old = torch.tensor([10.0, 5.0, 0.0, 4.0, 6.0, 0.75], dtype=torch.float64)  # [loss, clean, adv, correct, clips, s]
    plain = train_mod.EpochSums.from_state(old, adversarial=False)
    assert plain == train_mod.EpochSums({"total": 10.0, "clean": 5.0}, {"clips": 6.0, "correct": 4.0}, 0.75)
    assert train_mod.EpochSums.from_state(old, adversarial=True).losses["adv"] == 0.0
    record = train_mod.epoch_record(toy_config("unused"), 0, plain, plain, None)
    assert record["train_loss"] == pytest.approx(10 / 6) and record["train_loss_adv"] is None
    assert record["train_top1"] == pytest.approx(100 * 4 / 6) and set(EPOCH_KEYS) <= set(record)
