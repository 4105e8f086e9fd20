"""TAF inside the Hugging Face ``Trainer`` (``videotaf.integrations.transformers``): the step is Objective.step in
pixel units, saved models load with plain ``from_pretrained``, a killed run resumes with its auxiliary path."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf
from safetensors.torch import load_file

from tiny_transformers import CLASSES, FRAMES, SIZE, hf_net
from videotaf.analysis.predictions import read_predictions
from videotaf.bn import convert_dual_norm, has_dual_norm
from videotaf.integrations.transformers import AUX_FILE, TAFSettings, TAFTrainer, write_trainer_predictions
from videotaf.models.hf import from_hf
from videotaf.objective import build_objective

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _pixel_values(clips: torch.Tensor) -> torch.Tensor:
    """What an image processor hands the model: ``(clips - mean) / std`` per channel."""
    return (clips - torch.tensor(MEAN).view(1, 1, 3, 1, 1)) / torch.tensor(STD).view(1, 1, 3, 1, 1)


class _Clips(torch.utils.data.Dataset):
    """``n`` random clips with labels ``k % CLASSES``, as processor-normalised ``pixel_values`` dicts."""

    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.pv = _pixel_values(torch.rand(n, FRAMES, 3, SIZE, SIZE, generator=g) * 0.8 + 0.1)

    def __len__(self) -> int:
        return len(self.pv)

    def __getitem__(self, i: int) -> dict:
        return {"pixel_values": self.pv[i], "labels": i % CLASSES}


def _args(out: Path, **kw) -> tf.TrainingArguments:
    base = dict(
        output_dir=str(out), per_device_train_batch_size=2, learning_rate=1e-3, use_cpu=True, report_to="none",
        seed=0, logging_steps=1, save_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
    )  # fmt: skip
    return tf.TrainingArguments(**{**base, **kw})


def _trainer(out: Path, net=None, method: str = "taf", **kw) -> TAFTrainer:
    torch.manual_seed(0)
    net = hf_net("videomae") if net is None else net
    return TAFTrainer(
        model=net, args=_args(out, **kw), train_dataset=_Clips(6), taf=TAFSettings(method=method),
        image_mean=MEAN, image_std=STD,
    )  # fmt: skip


def test_one_step_has_the_gradients_of_objective_step(tmp_path: Path):
    torch.manual_seed(0)
    net = hf_net("videomae")
    reference = convert_dual_norm(copy.deepcopy(net))
    trainer = _trainer(tmp_path, net)
    clips = torch.rand(3, FRAMES, 3, SIZE, SIZE) * 0.8 + 0.1
    labels = torch.tensor([0, 1, 4])

    torch.manual_seed(7)  # TA's random target labels (Sec. 3.2) come from the global RNG in both
    loss = trainer.training_step(trainer.model, {"pixel_values": _pixel_values(clips), "labels": labels})
    torch.manual_seed(7)
    out = build_objective("taf").step(from_hf(reference, mean=MEAN, std=STD).train(), clips, labels)

    assert float(loss) == pytest.approx(float(out.losses["total"]), rel=1e-5)
    grads = dict(reference.named_parameters())
    compared = 0
    for name, p in trainer.model.named_parameters():
        ref = grads[name].grad
        assert (p.grad is None) == (ref is None), name
        if ref is not None:
            torch.testing.assert_close(p.grad, ref, rtol=1e-4, atol=1e-6, msg=name)
            compared += 1
    assert compared == len(grads) and any("aux_bn" in n for n in grads)


def test_saved_model_loads_with_from_pretrained_and_predicts_as_the_clean_path(tmp_path: Path):
    trainer = _trainer(tmp_path / "run", max_steps=2)
    trainer.train()
    assert has_dual_norm(trainer.model)
    history = [e for e in trainer.state.log_history if "loss" in e]
    assert len(history) == 2 and all({"loss_clean", "loss_adv"} <= set(e) for e in history)
    # Eq. (7) with alpha 0.7: the logged total is the weighted sum of the logged parts.
    assert history[0]["loss"] == pytest.approx(0.7 * history[0]["loss_clean"] + 0.3 * history[0]["loss_adv"], abs=2e-4)
    trainer.save_model(str(tmp_path / "final"))

    keys = load_file(str(tmp_path / "final" / "model.safetensors")).keys()
    assert keys and not [k for k in keys if "aux_bn" in k]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = tf.AutoModelForVideoClassification.from_pretrained(str(tmp_path / "final")).eval()
    trained = trainer.model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in loaded.state_dict().items())
    pv = _Clips(6, seed=1).pv
    trainer.model.eval()
    with torch.no_grad():
        # The trained model still carries TA's token-fold hook (an identity on values, another memory layout):
        # the same predictions, logits equal up to float summation order.
        mine, theirs = trainer.model(pixel_values=pv).logits, loaded(pixel_values=pv).logits
    assert torch.equal(mine.argmax(1), theirs.argmax(1))
    torch.testing.assert_close(theirs, mine, rtol=0, atol=1e-6)


class _Kill(tf.TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt("killed")


@pytest.mark.slow
def test_killed_run_resumes_with_the_auxiliary_path(tmp_path: Path):
    kw = dict(max_steps=4, save_strategy="steps", save_steps=2)
    whole = _trainer(tmp_path / "whole", **kw)
    whole.train()

    killed = _trainer(tmp_path / "run", **kw)
    killed.add_callback(_Kill())
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / AUX_FILE).is_file()
    assert not [k for k in load_file(str(checkpoint / "model.safetensors")) if "aux_bn" in k]

    resumed = _trainer(tmp_path / "run", **kw)
    resumed.train(resume_from_checkpoint=True)
    final = dict(resumed.model.named_parameters())
    aux = [n for n in final if "aux_bn" in n]
    assert aux
    for name, p in whole.model.named_parameters():
        torch.testing.assert_close(final[name], p, rtol=1e-5, atol=1e-6, msg=name)
    # The auxiliary LayerNorms were trained apart from the clean ones (else the test above proves nothing).
    assert any(not torch.equal(final[n], final[n.replace(".aux_bn", "")]) for n in aux)


@pytest.mark.slow
def test_resume_without_the_auxiliary_file_is_refused(tmp_path: Path):
    kw = dict(max_steps=2, save_strategy="steps", save_steps=2)
    _trainer(tmp_path / "run", **kw).train()
    (tmp_path / "run" / "checkpoint-2" / AUX_FILE).unlink()
    with pytest.raises(Exception, match=AUX_FILE):
        _trainer(tmp_path / "run", max_steps=3, save_strategy="no").train(resume_from_checkpoint=True)


def test_gradient_accumulation_and_plain_method(tmp_path: Path):
    trainer = _trainer(tmp_path, method="plain", max_steps=1, gradient_accumulation_steps=3)
    trainer.train()
    assert not has_dual_norm(trainer.model)
    (entry,) = [e for e in trainer.state.log_history if "loss" in e]
    assert "loss_adv" not in entry and entry["loss"] == pytest.approx(entry["loss_clean"], abs=1e-4)


@pytest.mark.slow
def test_bf16_autocast_step(tmp_path: Path):
    trainer = _trainer(tmp_path, max_steps=1, bf16=True)
    trainer.train()
    (entry,) = [e for e in trainer.state.log_history if "loss" in e]
    assert np.isfinite(entry["loss"]) and np.isfinite(entry["loss_adv"])


def test_predict_writes_a_predictions_file(tmp_path: Path):
    trainer = _trainer(tmp_path)
    data = _Clips(5, seed=2)
    out = trainer.predict(data)
    path = write_trainer_predictions(
        out, tmp_path / "p.csv", method="taf", seed=1, clip_ids=[f"v{i}" for i in range(5)]
    )
    records = read_predictions(path)
    assert [r.clip_id for r in records] == ["v0", "v1", "v2", "v3", "v4"]
    assert [r.label for r in records] == [0, 1, 2, 3, 4]
    assert [r.prediction for r in records] == out.predictions.argmax(-1).tolist()
    assert {(r.method, r.seed) for r in records} == {("taf", 1)}
    json.dumps([r.__dict__ for r in records])


def test_bad_batches_are_refused_naming_the_field(tmp_path: Path):
    trainer = _trainer(tmp_path)
    with pytest.raises(ValueError, match="pixel_values must be"):
        trainer.training_step(
            trainer.model, {"pixel_values": torch.zeros(2, 3, SIZE, SIZE), "labels": torch.tensor([0, 1])}
        )
    with pytest.raises(ValueError, match="'labels'"):
        trainer.training_step(trainer.model, {"pixel_values": torch.zeros(2, FRAMES, 3, SIZE, SIZE)})
