"""Training engine: config -> model/data -> loop (``train``) -> evaluation, checkpoints, logs, DDP.

Modules: :mod:`~videotaf.engine.train` (``fit``, ``train_one_epoch``), :mod:`~videotaf.engine.optim`
(LR groups and schedules), :mod:`~videotaf.engine.evaluate` (1-clip centre-crop metrics),
:mod:`~videotaf.engine.checkpoint` (atomic, weights-only checkpoints; ``load_model``; ``export``),
:mod:`~videotaf.engine.distributed` (torchrun, samplers, BN statistics), :mod:`~videotaf.engine.logs`,
:mod:`~videotaf.engine.builders`, :mod:`~videotaf.engine.allocator` (CPU memory reuse). Its CLI subcommands
live in the app layer, :mod:`~videotaf.cli.engine`.
"""
