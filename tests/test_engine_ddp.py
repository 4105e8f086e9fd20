"""DDP on the CPU: 2 gloo processes started with torch.multiprocessing.spawn."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from engine_toys import ToyClips, tiny_net_no_bn, toy_config, toy_datasets
from videotaf.engine.distributed import ResumableSampler


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, out: str, port: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    import torch.distributed as dist

    from videotaf.engine.distributed import cleanup, init_distributed, sync_bn_buffers, wrap_ddp
    from videotaf.engine.train import fit
    from videotaf.objective import build_objective

    info = init_distributed("cpu")
    assert info.distributed and info.rank == rank and dist.get_backend() == "gloo"

    # 1. One step on this rank's half of a global batch of 8: DDP must average to the full-batch gradient.
    torch.manual_seed(0)
    model = tiny_net_no_bn()
    ddp = wrap_ddp(model, info)
    assert ddp.broadcast_buffers is False
    data = ToyClips(8, 4, 16, 3, seed=3)
    half = slice(rank * 4, rank * 4 + 4)
    build_objective("plain").step(ddp, data.clips[half], data.labels[half])
    if rank == 0:
        torch.save({k: p.grad for k, p in model.named_parameters()}, os.path.join(out, "grads.pt"))

    # 2. BN running statistics (aux included) are averaged across ranks.
    from engine_toys import TinyNet
    from videotaf.bn import bn_buffers, convert_dual_bn

    bn_model = convert_dual_bn(TinyNet())
    for b in bn_buffers(bn_model):
        b.fill_(float(rank))
    sync_bn_buffers(bn_model)
    torch.save([b.clone() for b in bn_buffers(bn_model)], os.path.join(out, f"bn{rank}.pt"))

    # 3. A whole TAF epoch under DDP (several forwards per backward, dual BN), eval gathered over ranks.
    cfg = toy_config(os.path.join(out, "run"), "taf")
    cfg.optim.epochs = 1
    fit(cfg, datasets_fn=toy_datasets)
    cleanup()


@pytest.mark.slow
def test_two_gloo_processes_match_a_single_process(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path), free_port()), nprocs=2, join=True)

    torch.manual_seed(0)
    model = tiny_net_no_bn()
    data = ToyClips(8, 4, 16, 3, seed=3)
    from videotaf.objective import build_objective

    build_objective("plain").step(model, data.clips, data.labels)
    ddp_grads = torch.load(tmp_path / "grads.pt", weights_only=True)
    for k, p in model.named_parameters():
        torch.testing.assert_close(ddp_grads[k], p.grad, rtol=1e-5, atol=1e-6)

    bn0, bn1 = (torch.load(tmp_path / f"bn{r}.pt", weights_only=True) for r in (0, 1))
    assert len(bn0) == 8  # 2 BN x (mean, var) x (main, aux)
    for a, b in zip(bn0, bn1):
        assert torch.equal(a, b) and torch.allclose(a, torch.full_like(a, 0.5))

    run = tmp_path / "run"
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["train_loss_adv"] is not None  # rank 0 writes, once
    ev = json.loads((run / "eval.json").read_text())
    assert ev["num_clips"] == 12  # each validation clip counted once across the 2 ranks


def test_sampler_shards_cover_the_epoch_and_depend_only_on_seed_and_epoch():
    shards = []
    for rank in range(2):
        s = ResumableSampler(10, seed=3, num_replicas=2, rank=rank)
        s.set_epoch(4)
        shards.append(list(s))
    assert sorted(shards[0] + shards[1]) == list(range(10))
    again = ResumableSampler(10, seed=3, num_replicas=2, rank=1)
    again.set_epoch(4)
    again.set_start(2)
    assert list(again) == shards[1][2:] and len(again) == 3
    other = ResumableSampler(10, seed=3, num_replicas=2, rank=1)
    other.set_epoch(5)
    assert list(other) != shards[1]
    padded = ResumableSampler(5, seed=0, num_replicas=2, rank=1)
    assert len(list(padded)) == 3  # padded by repetition, as DistributedSampler
