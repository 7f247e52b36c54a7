"""Several processes through PyTorch's own launcher: ``torchrun --nproc_per_node=N script.py``.

``torchrun`` starts N copies of the script and tells each its place through environment variables
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). :func:`tlcourse.train.fit`
calls :func:`init_from_environment` itself, so a script that trains with ``fit`` runs unchanged under
``torchrun``: the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` (gradients
averaged across processes after every ``backward``), each process reads its own share of the training
data through a :class:`~torch.utils.data.DistributedSampler` (:func:`shard_loader`), and metrics are
summed or gathered across processes so that every process records the same history. Only process 0
prints, shows progress bars and writes checkpoints.

The batch size of the loader is the batch size of one process: with N processes an optimiser step
sees N times as many examples (the *global* batch).
"""

from __future__ import annotations

import atexit
import os
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

from tlcourse.checks import check_device, check_sequence, check_tensor

__all__ = [
    "init_from_environment",
    "is_distributed",
    "rank",
    "world_size",
    "is_main_process",
    "process_device",
    "shard_loader",
    "split_for_evaluation",
    "sum_across_processes",
    "gather_across_processes",
]


def is_distributed() -> bool:
    """Whether a process group with more than one process is running.

    Returns:
        True under ``torchrun`` with N > 1 once the group is initialised.

    Example:
        >>> is_distributed()
        False
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's index, 0 to N-1 (0 without a process group).

    Returns:
        The global rank.

    Example:
        >>> rank()
        0
    """
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 without a process group).

    Returns:
        N.

    Example:
        >>> world_size()
        1
    """
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this process prints and writes files (rank 0).

    Returns:
        True on rank 0 and in a single process.

    Example:
        >>> is_main_process()
        True
    """
    return rank() == 0


def init_from_environment(device: torch.device | str) -> bool:
    """Join the process group ``torchrun`` set up, if the script was launched by it with N > 1.

    The backend is NCCL for CUDA and gloo otherwise (gloo runs on any CPU, which is how the tests
    exercise this path). An existing process group is reused; one created here is destroyed at exit.

    Args:
        device: where this process trains; on CUDA, the process's GPU is selected from ``LOCAL_RANK``.

    Returns:
        Whether training is distributed (more than one process).

    Example:
        >>> init_from_environment("cpu")  # not launched by torchrun
        False
    """
    device = check_device("device", device)
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return True


def process_device(device: torch.device | str) -> torch.device:
    """This process's device: ``cuda`` becomes ``cuda:LOCAL_RANK`` under ``torchrun``.

    Args:
        device: the device asked for.

    Returns:
        The device this process should use.

    Example:
        >>> process_device("cpu")
        device(type='cpu')
    """
    device = check_device("device", device)
    if device.type == "cuda" and device.index is None and is_distributed():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def shard_loader(loader: DataLoader) -> DataLoader:
    """The same loader reading only this process's share of the data, through a DistributedSampler.

    A shuffling loader shuffles with the seed of its generator (the same on every process, as
    ``DistributedSampler`` requires); ``fit`` calls ``set_epoch`` so each epoch has its own order.
    A loader that already has a ``DistributedSampler`` is returned as it is.

    Args:
        loader: a DataLoader with a plain sequential or random sampler.

    Returns:
        A DataLoader with the same batch size, collate function and workers.

    Raises:
        TypeError: if ``loader`` is not a DataLoader or uses a custom sampler or batch sampler
            (shard those yourself: give them a ``DistributedSampler``).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> loader = DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=2)
        >>> shard_loader(loader) is loader  # a single process reads everything
        True
    """
    if not isinstance(loader, DataLoader):
        raise TypeError(f"loader must be a DataLoader (fit under torchrun shards it), got {type(loader).__name__}")
    if isinstance(loader.sampler, DistributedSampler) or not is_distributed():
        return loader
    if loader.batch_size is None or type(loader.batch_sampler).__name__ != "BatchSampler":
        raise TypeError("fit under torchrun cannot shard a loader with a custom batch sampler: give it a "
                        "DistributedSampler (or a batch sampler that reads only this rank's share)")
    shuffle = isinstance(loader.sampler, RandomSampler)
    seed = loader.generator.initial_seed() if loader.generator is not None else 0
    sampler = DistributedSampler(loader.dataset, shuffle=shuffle, seed=seed, drop_last=loader.drop_last)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      persistent_workers=loader.persistent_workers, worker_init_fn=loader.worker_init_fn)


def split_for_evaluation(loader: Any) -> Any:
    """This process's share of an evaluation loader: every N-th example, no padding, no repeats.

    (A ``DistributedSampler`` would pad the last share with repeated examples, which biases metrics.)

    Args:
        loader: a DataLoader; anything else is evaluated whole on every process.

    Returns:
        The loader of this process's share, or ``loader`` itself in a single process.

    Example:
        >>> split_for_evaluation([1, 2])
        [1, 2]
    """
    if loader is None or not hasattr(loader, "__iter__"):
        raise TypeError(f"loader must be an iterable of batches (a DataLoader or a list), got {type(loader).__name__}")
    if not is_distributed() or not isinstance(loader, DataLoader) or loader.batch_size is None:
        return loader
    share = Subset(loader.dataset, range(rank(), len(loader.dataset), world_size()))  # type: ignore[arg-type]
    return DataLoader(share, batch_size=loader.batch_size, shuffle=False, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory)


def sum_across_processes(values: list[float], device: torch.device | str) -> list[float]:
    """Element-wise sums of ``values`` over all processes (the values themselves in one process).

    Args:
        values: this process's numbers (e.g. summed loss, correct predictions, examples seen).
        device: where the reduction runs (the GPU for NCCL, the CPU for gloo).

    Returns:
        The sums, the same on every process.

    Example:
        >>> sum_across_processes([1.0, 2.0], "cpu")
        [1.0, 2.0]
    """
    values = check_sequence("values", values, non_empty=False)
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        raise TypeError(f"values must be a list of numbers (a NaN stays NaN in the sum), got {values!r:.60}")
    device = check_device("device", device)
    if not is_distributed():
        return list(values)
    device = torch.device(device) if dist.get_backend() == "nccl" else torch.device("cpu")
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)  # sum
    return total.tolist()


def gather_across_processes(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Concatenate each CPU tensor over all processes, in rank order (the tensors themselves in one process).

    Args:
        tensors: this process's tensors, e.g. ``(logits, targets)`` of its share of a validation set.

    Returns:
        The concatenations, the same on every process.

    Example:
        >>> gather_across_processes(torch.ones(2))[0].shape
        torch.Size([2])
    """
    for index, tensor in enumerate(tensors):
        check_tensor(f"tensors[{index}]", tensor)
    if not is_distributed():
        return tensors
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, [tensor.cpu() for tensor in tensors])  # shares may differ in length
    return tuple(torch.cat([share[i] for share in gathered]) for i in range(len(tensors)))
