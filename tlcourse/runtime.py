"""Where code runs and how randomness is controlled: device choice, the one seeding function, the network.

Every chapter seeds through :func:`seed_everything`; every shuffled DataLoader gets its own
generator from :func:`make_generator`, so the order of batches does not depend on what ran before.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from tlcourse.checks import check_device

__all__ = [
    "choose_device",
    "move_to_device",
    "seed_everything",
    "make_generator",
    "capture_rng_state",
    "restore_rng_state",
    "network_reachable",
]

_KNOWN_DEVICES = ("cpu", "cuda", "mps")


def choose_device(preferred: str | None = None) -> torch.device:
    """Return the device to compute on.

    Args:
        preferred: ``"cuda"``, ``"mps"``, ``"cpu"``, or ``None`` for the best available one
            (CUDA, then MPS, then CPU).

    Returns:
        A :class:`torch.device`.

    Raises:
        ValueError: if ``preferred`` is not a known device type, or names an accelerator this
            machine does not have.

    Example:
        >>> choose_device("cpu")
        device(type='cpu')
    """
    if preferred is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = str(preferred).split(":")[0]
    if kind not in _KNOWN_DEVICES:
        raise ValueError(f"unknown device {preferred!r}: preferred must be one of {list(_KNOWN_DEVICES)} or None")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {preferred!r} requested but CUDA is not available on this machine")
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {preferred!r} requested but MPS is not available on this machine")
    return torch.device(preferred)


def move_to_device(batch: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """Move tensors in a tensor, tuple, list or dict batch to ``device``.

    Args:
        batch: the batch as a DataLoader yields it.
        device: target device.
        non_blocking: overlap the copy with compute (useful with pinned memory on CUDA).

    Returns:
        The same structure with tensors on ``device``.

    Example:
        >>> move_to_device({"x": torch.ones(1)}, "cpu")["x"].device.type
        'cpu'
    """
    device = check_device("device", device)  # torch's own error names no argument
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device, non_blocking) for v in batch)
    return batch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (all devices) from one integer.

    Args:
        seed: a non-negative integer.
        deterministic: also ask cuDNN for deterministic kernels and turn off its autotuner
            (autotuning picks kernels by timing, which differs between runs).

    Returns:
        None.

    Raises:
        TypeError: if ``seed`` is not an integer.
        ValueError: if ``seed`` is negative.

    Example:
        >>> seed_everything(0)
        >>> a = torch.rand(1); seed_everything(0); bool(torch.equal(a, torch.rand(1)))
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # NumPy's legacy seed accepts only 32 bits
    torch.manual_seed(seed)  # seeds the CPU and every CUDA device
    if deterministic:
        # Needed by cuBLAS for deterministic matrix products on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def make_generator(seed: int) -> torch.Generator:
    """Return a CPU :class:`torch.Generator` seeded with ``seed``, for a DataLoader's shuffling.

    Args:
        seed: a non-negative integer.

    Returns:
        The seeded generator.

    Example:
        >>> g = make_generator(3); torch.randperm(4, generator=g).tolist() == \\
        ...     torch.randperm(4, generator=make_generator(3)).tolist()
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


def capture_rng_state() -> dict[str, Any]:
    """Snapshot every random number generator ``fit`` depends on, to resume a run exactly.

    Returns:
        A dict with ``"python"``, ``"numpy"``, ``"torch"`` and ``"cuda"`` entries; tensors for
        torch, plain lists for Python and NumPy so that they can be stored as JSON.

    Example:
        >>> state = capture_rng_state(); a = torch.rand(1)
        >>> restore_rng_state(state); bool(torch.equal(a, torch.rand(1)))
        True
    """
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot made by :func:`capture_rng_state`.

    Args:
        state: the dict returned by :func:`capture_rng_state` (possibly after a JSON round trip).

    Returns:
        None.

    Raises:
        ValueError: if an entry is missing.

    Example:
        >>> restore_rng_state(capture_rng_state())
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be the dict returned by capture_rng_state(), got {type(state).__name__}")
    missing = {"python", "numpy", "torch"} - set(state)
    if missing:
        raise ValueError(f"RNG state is missing {sorted(missing)}; expected the output of capture_rng_state()")
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)


def network_reachable(host: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host:443`` opens within ``timeout`` seconds in all.

    One attempt, no retries, and the bound covers name resolution too: the lookup and the
    connection run in a daemon thread that is abandoned after ``timeout`` seconds, because
    ``getaddrinfo`` ignores socket timeouts and a stalled resolver can take far longer.

    Args:
        host: a host name.
        timeout: seconds to wait.

    Returns:
        True if the connection opened.

    Example:
        >>> isinstance(network_reachable("localhost", timeout=0.1), bool)
        True
    """
    if not isinstance(host, str) or not host:
        raise TypeError(f"host must be a non-empty host name, got {host!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TLCOURSE_OFFLINE") == "1":
        return False
    outcome: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    worker = threading.Thread(target=attempt, name=f"network_reachable({host})", daemon=True)
    worker.start()
    worker.join(timeout)  # the total bound; a thread stuck in the resolver is left to finish alone
    return bool(outcome) and outcome[0]
