"""The README's Python examples run as written (with a tiny clip batch instead of a dataset and no weights file)."""

from __future__ import annotations

import re

import pytest
import torch

from conftest import ROOT


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


@pytest.mark.slow
def test_readme_training_loop_and_attack_examples_run():
    loop, attack = _python_blocks()[:2]
    # The example loads the user's own checkpoint; there is none here.
    loop = loop.replace('net.load_state_dict(torch.load("my_pretrained.pt", weights_only=True))', "")
    clips, labels = torch.rand(2, 16, 3, 32, 32), torch.tensor([1, 5])
    scope: dict = {"loader": [(clips, labels)]}
    exec(loop, scope)
    model = scope["model"]
    assert not any(".aux_bn." in k for k in model.state_dict())  # strip_dual_bn ran
    scope.update(clips=clips, labels=labels)
    exec(attack, scope)
    adv = scope["adv_clips"]
    assert adv.shape == clips.shape and (adv - clips).abs().max() <= 64 / 255 + 1e-6
