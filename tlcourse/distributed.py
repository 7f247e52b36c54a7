"""``fit`` under ``torchrun --nproc_per_node=N``: the process group, each process's share, metrics over all.

``torchrun`` tells each process its place through ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``. The
loader's batch size is that of one process: an optimiser step sees N times as many examples.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

__all__ = ["init_from_environment", "rank", "world_size", "is_main_process", "process_device", "shard_loader",
           "split_for_evaluation", "sum_across_processes", "gather_across_processes"]


def _running() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's index, 0 to N-1 (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this process prints and writes files (rank 0)."""
    return rank() == 0


def init_from_environment(device: torch.device | str) -> bool:
    """Join the process group ``torchrun`` set up (NCCL on CUDA, gloo otherwise); return whether N > 1."""
    if not dist.is_available():
        return False
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return False
        cuda = torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return dist.get_world_size() > 1


def process_device(device: torch.device | str) -> torch.device:
    """This process's device: ``cuda`` becomes ``cuda:LOCAL_RANK`` under ``torchrun``."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and _running():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def shard_loader(loader: DataLoader) -> DataLoader:
    """The same loader reading only this process's share, through a DistributedSampler seeded like the loader."""
    if not isinstance(loader, DataLoader) or isinstance(loader.sampler, DistributedSampler) or not _running():
        return loader
    if loader.batch_size is None or type(loader.batch_sampler).__name__ != "BatchSampler":
        raise TypeError("fit under torchrun cannot shard a loader with a custom batch sampler: give it a "
                        "DistributedSampler (or a batch sampler that reads only this rank's share)")
    seed = loader.generator.initial_seed() if loader.generator is not None else 0  # the same on every rank
    sampler = DistributedSampler(loader.dataset, shuffle=isinstance(loader.sampler, RandomSampler), seed=seed,
                                 drop_last=loader.drop_last)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      persistent_workers=loader.persistent_workers, worker_init_fn=loader.worker_init_fn)


def split_for_evaluation(loader: Any) -> Any:
    """This process's share of an evaluation loader: every N-th example, without the padding a DistributedSampler adds."""
    if not _running() or not isinstance(loader, DataLoader) or loader.batch_size is None:
        return loader
    share = Subset(loader.dataset, range(rank(), len(loader.dataset), world_size()))  # type: ignore[arg-type]
    return DataLoader(share, batch_size=loader.batch_size, shuffle=False, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory)


def sum_across_processes(values: list[float], device: torch.device | str) -> list[float]:
    """Element-wise sums of ``values`` over all processes (the values themselves in one process)."""
    if not _running():
        return list(values)
    total = torch.tensor(values, dtype=torch.float64,
                         device=torch.device(device) if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(total)
    return total.tolist()


def gather_across_processes(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each CPU tensor concatenated over all processes, in rank order (the tensors themselves in one process)."""
    if not _running():
        return tensors
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, [tensor.cpu() for tensor in tensors])  # shares may differ in length
    return tuple(torch.cat([share[i] for share in gathered]) for i in range(len(tensors)))
