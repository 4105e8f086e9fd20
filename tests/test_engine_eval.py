from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from videotaf.engine.evaluate import compute_metrics, evaluate, read_class_subset, write_results

NAMES = ["a", "b", "c", "d", "e", "f"]


def hand_logits():
    # 6 clips, 6 classes. Rankings are chosen by hand so every metric below is known.
    logits = torch.tensor(
        [
            [9, 8, 7, 6, 5, 4],  # label 0: top-1 hit
            [9, 8, 7, 6, 5, 4],  # label 1: rank 2 -> top-5 hit only
            [4, 5, 6, 7, 8, 9],  # label 0: rank 6 -> miss in top-5
            [0, 0, 9, 0, 0, 1],  # label 2: hit
            [1, 2, 3, 9, 4, 5],  # label 3: hit
            [1, 9, 3, 2, 4, 5],  # label 5: rank 2 -> top-5 hit only
        ],
        dtype=torch.float32,
    )
    labels = torch.tensor([0, 1, 0, 2, 3, 5])
    return logits, labels


def test_metrics_against_hand_computed_values():
    logits, labels = hand_logits()
    r = compute_metrics(logits, labels, NAMES, subset=["a", "f"])
    assert r["top1"] == pytest.approx(100 * 3 / 6)
    assert r["top5"] == pytest.approx(100 * 5 / 6)
    assert r["num_clips"] == 6 and r["classes"] == NAMES
    assert r["per_class"] == {"a": 50.0, "b": 0.0, "c": 100.0, "d": 100.0, "e": None, "f": 0.0}
    # subset {a, f}: clips 0, 2, 5 -> one hit
    assert r["subset"] == {"top1": pytest.approx(100 / 3), "classes": ["a", "f"], "num_clips": 3}
    expected_loss = sum(-torch.log_softmax(logits[i], 0)[labels[i]].item() for i in range(6)) / 6
    assert r["loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert compute_metrics(logits, labels, NAMES)["subset"] is None


def test_shape_errors():
    logits, labels = hand_logits()
    with pytest.raises(ValueError, match="class names"):
        compute_metrics(logits, labels, NAMES[:3])
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        compute_metrics(logits[:, None], labels, NAMES)


class FixedLogits(torch.nn.Module):
    """Returns the stored logits row for each clip (clip pixel [0,0,0,0] holds the row index)."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, clips):
        return self.table[clips[:, 0, 0, 0, 0].long()]


def test_evaluate_runs_the_model_over_a_loader(tmp_path):
    logits, labels = hand_logits()
    clips = torch.zeros(6, 2, 3, 4, 4)
    clips[:, 0, 0, 0, 0] = torch.arange(6).float()
    loader = DataLoader(TensorDataset(clips, labels), batch_size=4)
    model = FixedLogits(logits).train()
    r = evaluate(model, loader, NAMES)
    assert model.training  # mode restored
    assert r["top1"] == pytest.approx(50.0) and r["top5"] == pytest.approx(100 * 5 / 6)
    path = write_results(r, tmp_path / "eval.json")
    on_disk = json.loads(path.read_text())
    assert on_disk["per_class"]["e"] is None and on_disk["top1"] == pytest.approx(50.0)


def test_subset_file(tmp_path):
    f = tmp_path / "long.txt"
    f.write_text("# long-term motions\nb\n\n4  # by id\nb\n")
    assert read_class_subset(f, NAMES) == ["b", "e"]
    f.write_text("b\nzebra\n")
    with pytest.raises(ValueError, match=r"long.txt:2: 'zebra'"):
        read_class_subset(f, NAMES)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_class_subset(tmp_path / "nope.txt", NAMES)
