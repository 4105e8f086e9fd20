"""The fused TAF step under DistributedDataParallel (2 gloo processes on the CPU).

Several forwards before one backward is the known DDP pitfall (pytorch issues 22095, 110363): the objective does
one backward per step, so each parameter is reduced once, and the attack's own forwards bypass the wrapper.
"""

from __future__ import annotations

import copy
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from videotaf.attack import TAOptions
from videotaf.objective import build_objective

from toy_models import ddp_batch, dual_bn_toy2d

pytestmark = pytest.mark.slow


def _worker(rank: int, world: int, init_file: str, out_dir: str, bn: bool) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        model = dual_bn_toy2d(bn)
        ddp = DDP(model, broadcast_buffers=False)
        clips, labels = ddp_batch()
        half = slice(rank * 2, rank * 2 + 2)
        objective = build_objective("taf", ta=TAOptions(target_rule="true"))
        for _ in range(2):  # two steps: the second checks the reducer finished the first
            ddp.zero_grad()
            objective.step(ddp, clips[half], labels[half])
        torch.save({k: p.grad for k, p in model.named_parameters()}, os.path.join(out_dir, f"grads{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_taf_step_matches_single_process_on_global_batch():
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(2, os.path.join(tmp, "init"), tmp, False), nprocs=2, join=True)
        g0 = torch.load(os.path.join(tmp, "grads0.pt"), weights_only=True)
        g1 = torch.load(os.path.join(tmp, "grads1.pt"), weights_only=True)

    model = dual_bn_toy2d(False)
    ref = copy.deepcopy(model)
    clips, labels = ddp_batch()
    objective = build_objective("taf", ta=TAOptions(target_rule="true"))
    # The DDP ranks stepped twice; replay the first step's update-free second step the same way.
    for _ in range(2):
        ref.zero_grad()
        objective.step(ref, clips, labels)
    for name, p in ref.named_parameters():
        assert torch.allclose(g0[name], g1[name]), name
        assert torch.allclose(g0[name], p.grad, rtol=1e-4, atol=1e-6), name


def test_ddp_taf_step_runs_with_dual_batchnorm():
    # SyncBatchNorm needs CUDA; on the CPU each rank normalises its own half, so only agreement across ranks
    # (DDP's averaged gradients) and finiteness can be checked here.
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(2, os.path.join(tmp, "init"), tmp, True), nprocs=2, join=True)
        g0 = torch.load(os.path.join(tmp, "grads0.pt"), weights_only=True)
        g1 = torch.load(os.path.join(tmp, "grads1.pt"), weights_only=True)
    for name in g0:
        assert torch.allclose(g0[name], g1[name]), name
        assert torch.isfinite(g0[name]).all(), name
