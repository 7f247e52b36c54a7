"""Where code runs and how randomness is controlled: device choice, the one seeding function, the network."""

from __future__ import annotations

import os
import random
import socket
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def choose_device(preferred: str | None = None) -> torch.device:
    """``preferred`` as a device, or the best available one (CUDA, then MPS, then CPU) when it is None.

    Raises:
        ValueError: an unknown device type, or an accelerator this machine does not have.
    """
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if preferred is None:
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    kind = str(preferred).split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {preferred!r}: preferred must be one of ['cpu', 'cuda', 'mps'] or None")
    if (kind == "cuda" and not torch.cuda.is_available()) or (kind == "mps" and not has_mps):
        raise ValueError(f"device {preferred!r} requested but {kind.upper()} is not available on this machine")
    return torch.device(preferred)


def move_to_device(batch: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """The tensors of a tensor, tuple, list or dict batch moved to ``device``, in the same structure."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device, non_blocking) for v in batch)
    return batch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (all devices) from one non-negative int.

    Args:
        deterministic: also ask cuDNN for deterministic kernels and turn off its timing-based autotuner.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)  # NumPy's legacy seed accepts only 32 bits
    torch.manual_seed(int(seed))  # the CPU and every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS products
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``: a DataLoader's own shuffling stream."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch and CUDA generator states, Python's and NumPy's as plain lists (JSON-safe)."""
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot made by :func:`capture_rng_state` (possibly after a JSON round trip)."""
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
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def network_reachable(host: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host:443`` opens within ``timeout`` seconds in all, with one attempt.

    The lookup runs in a daemon thread abandoned after ``timeout``: ``getaddrinfo`` ignores socket timeouts.
    """
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
