"""Argument checks for the package's doors: each message names the argument, the expectation and the value."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn


def describe(value: Any) -> str:
    """``value`` in a few words: dtype and shape for a tensor, else type and a short repr."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r:.60}"


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an int (not a bool) of at least ``minimum``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def check_module(name: str, value: Any) -> None:
    """Raise ``TypeError`` unless ``value`` is an ``nn.Module``."""
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be an nn.Module, got {describe(value)}")


def check_tensor(name: str, value: Any, dim: int | None = None) -> None:
    """Raise unless ``value`` is a tensor with ``dim`` dimensions (any number when ``dim`` is None)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {describe(value)}")
    if dim is not None and value.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimension(s), got shape {tuple(value.shape)}")


def check_sequence(name: str, value: Any, non_empty: bool = True) -> list:
    """Return ``list(value)`` for a non-string sequence (non-empty if asked); a mapping or tensor is refused."""
    if isinstance(value, (str, bytes, Mapping, torch.Tensor)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list, got {describe(value)}")
    if non_empty and len(value) == 0:
        raise ValueError(f"{name} is empty: expected at least one element")
    return list(value)


def check_number(name: str, value: Any, low: float = -math.inf, high: float = math.inf,
                 integer: bool = False) -> None:
    """Raise unless ``value`` is a finite number (an int if ``integer``; not a bool) in ``[low, high]``."""
    kind = numbers.Integral if integer else numbers.Real  # numpy scalars included
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {'an int' if integer else 'a number'}, got {describe(value)}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be a finite number in [{low}, {high}], got {value!r}")


def check_fractions(name: str, value: Any) -> list:
    """Return ``list(value)`` if it holds finite non-negative numbers summing to 1 (NaN is refused too)."""
    values = check_sequence(name, value)
    if not (all(isinstance(f, numbers.Real) and math.isfinite(f) and f >= 0 for f in values)
            and abs(sum(values) - 1.0) <= 1e-6):
        raise ValueError(f"{name} must be non-negative and sum to 1, got {values}")
    return values


def check_optimizer_covers(model: nn.Module, optimizer: Any) -> None:
    """Raise unless ``optimizer`` is an optimizer whose parameters all belong to ``model``.

    An optimizer built before the head was replaced holds the old head and never trains the new one.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {describe(optimizer)}")
    in_model = {id(p) for p in model.parameters()}
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if in_optimizer and not in_optimizer - in_model:
        return
    missing = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in in_optimizer]
    raise ValueError(
        f"optimizer holds {len(in_optimizer - in_model)} parameter(s) that are not in the model (was it "
        f"built before a layer such as the head was replaced?); trainable parameters it misses: "
        f"{missing[:5]}{' ...' if len(missing) > 5 else ''}. Build the optimizer after the last change "
        "to the model"
    )


def check_device(name: str, value: Any) -> torch.device:
    """Return ``value`` as a ``torch.device``, naming the argument when it is not one (torch's error does not)."""
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be a torch.device or a device name such as 'cpu' or 'cuda', got {describe(value)}")
    try:
        return torch.device(value)
    except RuntimeError:
        raise ValueError(f"{name} must be a device name such as 'cpu', 'cuda' or 'cuda:1', got {value!r}") from None


def check_path(name: str, value: Any) -> Path:
    """Return ``Path(value)`` for a non-empty ``str`` or ``os.PathLike``, else raise ``TypeError``."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise TypeError(f"{name} must be a file or folder path (a str or pathlib.Path), got {describe(value)}")
    return Path(value)


def check_instance(name: str, value: Any, kind: type) -> None:
    """Raise ``TypeError`` unless ``value`` is an instance of ``kind``."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__}, got {describe(value)}")
