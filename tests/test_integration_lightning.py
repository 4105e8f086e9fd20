"""TAF in PyTorch Lightning (``videotaf.integrations.lightning``): the step is Objective.step under Lightning's own
backward, inference weights load into the plain model, a killed run resumes with its auxiliary path."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from videotaf.analysis.predictions import read_predictions
from videotaf.bn import convert_dual_norm, has_dual_norm
from videotaf.integrations.lightning import TAFMixin, TAFSettings, write_lightning_predictions
from videotaf.objective import build_objective

from toy_models import Toy2D

FRAMES, SIZE = 4, 16


class Module(TAFMixin, L.LightningModule):
    """A user's LightningModule: their model, optimiser and steps, plus ``configure_taf`` and ``taf_step``."""

    def __init__(self, method: str = "taf", lr: float = 0.05, seed_each_step: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = Toy2D(num_frames=FRAMES)
        self.lr, self.seed_each_step = lr, seed_each_step
        self.configure_taf(TAFSettings(method=method))

    def training_step(self, batch, batch_idx):
        if self.seed_each_step is not None:
            torch.manual_seed(self.seed_each_step)  # TA's random target labels, for the comparison below
        clips, labels = batch
        return self.taf_step(clips, labels)

    def predict_step(self, batch, batch_idx):
        clips, labels = batch
        return self.taf_predict_step(clips, labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def _data(n: int = 8, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, FRAMES, 3, SIZE, SIZE, generator=g), torch.arange(n) % 5)


def _trainer(root: Path, **kw) -> L.Trainer:
    base = dict(
        accelerator="cpu", devices=1, default_root_dir=str(root), logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, deterministic=True,
    )  # fmt: skip
    return L.Trainer(**{**base, **kw})


def test_one_step_has_the_gradients_of_objective_step(tmp_path: Path):
    module = Module(lr=0.0, seed_each_step=7)
    reference = convert_dual_norm(copy.deepcopy(Toy2D(num_frames=FRAMES)))
    reference.load_state_dict(module.model.state_dict())
    clips, labels = _data(3).tensors
    _trainer(tmp_path, max_steps=1, enable_checkpointing=False).fit(
        module, DataLoader(TensorDataset(clips, labels), batch_size=3)
    )

    torch.manual_seed(7)
    build_objective("taf").step(reference.train(), clips, labels)
    grads = dict(reference.named_parameters())
    assert any("aux_bn" in n for n in grads)
    for name, p in module.model.named_parameters():
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.slow
def test_inference_weights_load_into_the_plain_model_and_predict_as_the_clean_path(tmp_path: Path):
    module = Module()
    loader = DataLoader(_data(), batch_size=4)
    trainer = _trainer(tmp_path, max_steps=2, enable_checkpointing=False)
    trainer.fit(module, loader)
    assert has_dual_norm(module.model)
    path = module.save_inference_weights(tmp_path / "model.pt")

    plain = Toy2D(num_frames=FRAMES)
    plain.load_state_dict(torch.load(path, weights_only=True))  # strict: no auxiliary keys, none missing
    clips = _data(6, seed=3).tensors[0]
    module.model.eval()
    with torch.no_grad():
        assert torch.equal(plain.eval()(clips), module.model(clips))
    # The .ckpt keeps the auxiliary path; a plain-method module loads it for inference.
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    assert any("aux_bn" in k for k in torch.load(tmp_path / "last.ckpt", weights_only=False)["state_dict"])
    inference = Module.load_from_checkpoint(tmp_path / "last.ckpt", method="plain")
    assert not has_dual_norm(inference.model)
    with torch.no_grad():
        assert torch.equal(inference.model.eval()(clips), module.model(clips))


class Killed(Exception):
    """The run's death at step 3 (Lightning turns KeyboardInterrupt into a graceful exit, not a kill)."""


class _Kill(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 3:
            raise Killed


@pytest.mark.slow
def test_killed_run_resumes_with_the_auxiliary_path(tmp_path: Path):
    # Two batches an epoch: the step-2 checkpoint ends an epoch (Lightning replays a plain DataLoader's epoch
    # from its start when resumed mid-epoch).
    loader = DataLoader(_data(), batch_size=4)
    every2 = dict(every_n_train_steps=2, save_top_k=-1, filename="{step}")
    whole = Module(seed_each_step=1)
    _trainer(tmp_path / "whole", max_steps=4).fit(whole, loader)

    killed = Module(seed_each_step=1)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", **every2)
    with pytest.raises(Killed):
        _trainer(tmp_path / "run", max_steps=4, callbacks=[ckpt, _Kill()]).fit(killed, loader)
    saved = tmp_path / "ck" / "step=2.ckpt"
    assert any("aux_bn" in k for k in torch.load(saved, weights_only=False)["state_dict"])

    resumed = Module(seed_each_step=1)
    _trainer(tmp_path / "run2", max_steps=4).fit(resumed, loader, ckpt_path=saved)
    final = dict(resumed.model.named_parameters())
    for name, p in whole.model.named_parameters():
        torch.testing.assert_close(final[name], p, rtol=1e-5, atol=1e-7, msg=name)
    aux = [n for n in final if "aux_bn" in n]
    assert any(not torch.equal(final[n], final[n.replace(".aux_bn", "")]) for n in aux)


def test_a_plain_checkpoint_starts_a_taf_module_with_aux_copied_from_clean(tmp_path: Path):
    plain = Module(method="plain")
    trainer = _trainer(tmp_path, max_steps=1, enable_checkpointing=False)
    trainer.fit(plain, DataLoader(_data(), batch_size=4))
    trainer.save_checkpoint(tmp_path / "plain.ckpt")
    taf = Module.load_from_checkpoint(tmp_path / "plain.ckpt", method="taf")
    state = taf.model.state_dict()
    assert torch.equal(state["stem.1.aux_bn.weight"], plain.model.state_dict()["stem.1.weight"])
    assert torch.equal(state["stem.1.aux_bn.running_mean"], plain.model.state_dict()["stem.1.running_mean"])


def test_predict_step_writes_a_predictions_file(tmp_path: Path):
    module = Module()
    outputs = _trainer(tmp_path).predict(module, DataLoader(_data(7), batch_size=3))
    path = write_lightning_predictions(outputs, tmp_path / "p.json", method="taf", seed=2)
    records = read_predictions(path)
    assert [r.clip_id for r in records] == [str(i) for i in range(7)]
    assert [r.label for r in records] == (torch.arange(7) % 5).tolist()
    module.model.eval()
    with torch.no_grad():
        expected = module.model(_data(7).tensors[0]).argmax(1).tolist()
    assert [r.prediction for r in records] == expected and {r.seed for r in records} == {2}
