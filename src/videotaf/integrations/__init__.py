"""TAF inside trainers people already use: Hugging Face ``Trainer`` and PyTorch Lightning.

- :mod:`videotaf.integrations.transformers`: :class:`~videotaf.integrations.transformers.TAFTrainer` (extra ``hf``);
- :mod:`videotaf.integrations.lightning`: :class:`~videotaf.integrations.lightning.TAFMixin` (extra ``lightning``);
- :mod:`videotaf.integrations.common`: what both share (:class:`~videotaf.integrations.common.TAFSettings`).

Neither re-implements the method: each step is :meth:`videotaf.objective.Objective.step` (Eq. 2-7) with the
trainer's own backward, and the adversarial path is :func:`videotaf.bn.convert_dual_norm`. The optional
dependencies are imported only by the module that needs them.
"""
