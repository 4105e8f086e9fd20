"""The low-memory TAF step under DistributedDataParallel (2 gloo processes on the CPU).

The step runs two backwards (the clean loss's, then the adversarial loss's); the first runs in ``no_sync()``, so
DDP still reduces every gradient once per step, in the second. A counting comm hook shows the reducer ran once
per step; the gradients equal the single-process ones on the global batch (no BatchNorm) and, with dual
BatchNorm, those of the one-backward fused step under DDP, with ``find_unused_parameters`` off (the engine's
setting) and on.
"""

from __future__ import annotations

import copy
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel as DDP

from videotaf.attack import TAOptions
from videotaf.objective import build_objective

from toy_models import ddp_batch, dual_bn_toy2d

pytestmark = pytest.mark.slow

# name: (BatchNorm in the model, low_memory, find_unused_parameters)
CASES = {
    "fused": (False, False, False),
    "low": (False, True, False),
    "fused_bn": (True, False, False),
    "low_bn": (True, True, False),
    "low_bn_unused": (True, True, True),
}
STEPS = 2


def _objective(low_memory: bool):
    return build_objective("taf", ta=TAOptions(target_rule="true"), low_memory=low_memory)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        clips, labels = ddp_batch()
        half = slice(rank * 2, rank * 2 + 2)
        results = {}
        for name, (bn, low_memory, unused) in CASES.items():
            model = dual_bn_toy2d(bn)
            ddp = DDP(model, broadcast_buffers=False, find_unused_parameters=unused)
            calls: list[tuple[int, int]] = []  # (step, bucket index) per comm hook call
            step = [0]

            def counting_allreduce(state, bucket, calls=calls, step=step):
                calls.append((step[0], bucket.index()))
                return default_hooks.allreduce_hook(None, bucket)

            ddp.register_comm_hook(None, counting_allreduce)
            objective = _objective(low_memory)
            for k in range(STEPS):  # two steps: the second checks the reducer finished the first
                step[0] = k
                ddp.zero_grad()
                objective.step(ddp, clips[half], labels[half])
            results[name] = {
                "grads": {k: p.grad.clone() for k, p in model.named_parameters()},
                "calls": calls,
            }
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks():
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(2, os.path.join(tmp, "init"), tmp), nprocs=2, join=True)
        return [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=True) for r in range(2)]


def test_the_reducer_runs_once_per_step(ranks):
    for results in ranks:
        for name, res in results.items():
            buckets = sorted({b for _, b in res["calls"]})
            # Every bucket reduced exactly once in each step, low_memory's two backwards or not.
            assert sorted(res["calls"]) == [(k, b) for k in range(STEPS) for b in buckets], name


def test_low_memory_ddp_gradients_equal_single_process_on_the_global_batch(ranks):
    g0, g1 = ranks[0]["low"]["grads"], ranks[1]["low"]["grads"]
    model = dual_bn_toy2d(False)
    clips, labels = ddp_batch()
    for low_memory in (True, False):
        ref = copy.deepcopy(model)
        objective = _objective(low_memory)
        for _ in range(STEPS):
            ref.zero_grad()
            objective.step(ref, clips, labels)
        for name, p in ref.named_parameters():
            assert torch.allclose(g0[name], g1[name]), name
            assert torch.allclose(g0[name], p.grad, rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("case", ["low_bn", "low_bn_unused"])
def test_low_memory_ddp_with_dual_batchnorm_equals_the_fused_ddp_step(ranks, case):
    # Each rank normalises its own half on the CPU, so the reference is the fused step under DDP.
    for results in ranks:
        low, fused = results[case]["grads"], results["fused_bn"]["grads"]
        assert low.keys() == fused.keys() and any(".aux_bn." in k for k in low)
        for name in low:
            assert torch.isfinite(low[name]).all(), name
            assert torch.allclose(low[name], fused[name], rtol=1e-4, atol=1e-6), name
    for name in ranks[0][case]["grads"]:
        assert torch.allclose(ranks[0][case]["grads"][name], ranks[1][case]["grads"][name]), name
