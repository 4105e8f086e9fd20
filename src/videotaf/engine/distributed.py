"""Multi-process training: torchrun environment, samplers, DDP, BatchNorm statistics, metric reduction.

Under ``torchrun --nproc_per_node N -m videotaf train ...`` every process reads ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; the backend is NCCL on CUDA and gloo on the CPU. Only rank 0 writes files and logs.

DDP is built with ``broadcast_buffers=False``: TAF runs several forwards (clean, attack, adversarial path) before
its single backward, and the default buffer broadcast at every forward raises version errors on BN buffers
(pytorch issues 22095, 110363). Running statistics of every BatchNorm, auxiliary ones included, are instead
averaged across processes with an explicit all-reduce at the end of each epoch (:func:`sync_bn_buffers`).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from videotaf.bn import bn_buffers


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``world_size`` 1 means no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else CPU; ``cuda`` -> ``cuda:<local_rank>``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"runtime.device={name!r} but CUDA is not available on this machine")
    return device


def init_distributed(device: str = "auto") -> DistInfo:
    """Initialise the default process group from torchrun's environment variables (if any).

    Returns the :class:`DistInfo` of this process. Without ``WORLD_SIZE`` (or with 1) nothing is initialised.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def cleanup() -> None:
    """Destroy the process group when one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over processes (identity without a process group); returns a new tensor."""
    out = values.clone()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true on any process (``flag`` itself without a process group): every rank gets the
    same answer, so all of them take the same branch (stop, skip a step, refuse)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    return bool(all_reduce_sum(torch.tensor([float(flag)], device=device)).item() > 0)


@torch.no_grad()
def sync_bn_buffers(model: nn.Module) -> None:
    """Average the running mean/variance of every BatchNorm (aux included, ``videotaf.bn.bn_buffers``)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return

    world = dist.get_world_size()
    buffers = bn_buffers(model)
    if not buffers:
        return
    flat = torch.cat([b.detach().reshape(-1).to(torch.float64) for b in buffers])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world
    offset = 0
    for b in buffers:
        n = b.numel()
        b.copy_(flat[offset : offset + n].view_as(b).to(b.dtype))
        offset += n


def wrap_ddp(model: nn.Module, info: DistInfo) -> nn.Module:
    """Wrap in DistributedDataParallel (``broadcast_buffers=False``) when running distributed."""
    if not info.distributed:
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)


class ResumableSampler(Sampler[int]):
    """Epoch-seeded shuffling and sharding that can start mid-epoch.

    The order of epoch ``e`` is a function of ``(seed, e)`` only (``torch.randperm`` with a generator seeded
    ``seed + e``), so a resumed run sees exactly the batches the interrupted one would have. Sharding follows
    :class:`~torch.utils.data.DistributedSampler` (pad by repetition to a multiple of ``num_replicas``, rank
    ``r`` takes positions ``r, r + R, ...``). ``set_start(k)`` skips this rank's first ``k`` indices (i.e. ``k =
    batches_done * per_rank_batch``) for the current epoch only.
    """

    def __init__(
        self,
        length: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ) -> None:
        if length < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, drop_last
        self.epoch = 0
        self.start = 0
        if drop_last:
            self.per_rank = length // num_replicas
        else:
            self.per_rank = -(-length // num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = int(start)

    def order(self) -> list[int]:
        """This rank's full index list for the current epoch (ignoring ``start``)."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(self.length, generator=g).tolist()
        else:
            indices = list(range(self.length))
        total = self.per_rank * self.num_replicas
        if total > len(indices):
            reps = -(-total // len(indices))
            indices = (indices * reps)[:total]
        else:
            indices = indices[:total]
        return indices[self.rank : total : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :])

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)


class ShardSampler(Sampler[int]):
    """Evaluation sharding without padding: rank ``r`` gets indices ``r, r + R, ...`` (each clip counted once)."""

    def __init__(self, length: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.indices = list(range(rank, length, num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def gather_tensors(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` (first axis may differ per rank) from every process, in rank order, on the CPU."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t.cpu()
    parts: list[torch.Tensor | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, t.cpu())
    return torch.cat([p for p in parts if p is not None], dim=0)


def gather_objects(obj: object) -> list[object]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (``[obj]`` without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
