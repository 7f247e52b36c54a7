"""Argument checks shared by the package, with messages that name the argument, the expectation
and the value given."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["check_int", "describe", "check_module", "check_tensor", "check_sequence", "check_number",
           "check_fractions", "check_optimizer_covers", "check_device", "check_path", "check_instance", "check_choice"]


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """Check that ``value`` is an int (not a bool) of at least ``minimum``.

    Args:
        name: the argument's name, for the message.
        value: what the caller passed.
        minimum: the smallest allowed value.

    Returns:
        ``value``, unchanged.

    Raises:
        ValueError: if ``value`` is not an int, is a bool, or is below ``minimum``.

    Example:
        >>> check_int("batch_size", 32)
        32
        >>> check_int("num_labels", 1, minimum=2)
        Traceback (most recent call last):
        ...
        ValueError: num_labels must be an int >= 2, got 1
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def describe(value: Any) -> str:
    """``value`` in a few words for an error message.

    Args:
        value: anything.

    Returns:
        The type, plus dtype and shape for a tensor or a short ``repr`` otherwise.

    Example:
        >>> describe(torch.zeros(2, 3))
        'a torch.float32 tensor of shape (2, 3)'
        >>> describe(None)
        'NoneType None'
    """
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r:.60}"


def check_module(name: str, value: Any) -> None:
    """Raise ``TypeError`` unless ``value`` is an ``nn.Module``.

    Args:
        name: the argument's name, for the message.
        value: the argument.

    Example:
        >>> check_module("model", nn.Linear(1, 1))
    """
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be an nn.Module, got {describe(value)}")


def check_tensor(name: str, value: Any, dim: int | None = None) -> None:
    """Raise unless ``value`` is a tensor (with ``dim`` dimensions when given).

    Args:
        name: the argument's name.
        value: the argument.
        dim: the number of dimensions required, or ``None``.

    Example:
        >>> check_tensor("logits", torch.zeros(2, 3), dim=2)
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {describe(value)}")
    if dim is not None and value.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimension(s), got shape {tuple(value.shape)}")


def check_sequence(name: str, value: Any, non_empty: bool = True) -> list:
    """Return ``value`` as a list, or raise unless it is a non-string sequence (non-empty if asked).

    Args:
        name: the argument's name.
        value: the argument (a list, tuple or other sequence; a mapping or a string is refused).
        non_empty: also refuse an empty sequence.

    Returns:
        ``list(value)``.

    Example:
        >>> check_sequence("state_dicts", ({"w": 1},))
        [{'w': 1}]
    """
    if isinstance(value, (str, bytes, Mapping, torch.Tensor)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list, got {describe(value)}")
    if non_empty and len(value) == 0:
        raise ValueError(f"{name} is empty: expected at least one element")
    return list(value)


def check_number(name: str, value: Any, low: float = -math.inf, high: float = math.inf,
                 integer: bool = False) -> None:
    """Raise unless ``value`` is a finite number (an int if ``integer``) in ``[low, high]``.

    Args:
        name: the argument's name.
        value: the argument; ``bool`` and NaN are refused.
        low: smallest allowed value.
        high: largest allowed value.
        integer: require an ``int``.

    Example:
        >>> check_number("alpha", 0.5, 0.0, 1.0)
    """
    kind = numbers.Integral if integer else numbers.Real  # numpy scalars included
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {'an int' if integer else 'a number'}, got {describe(value)}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{name} must be a finite number in [{low}, {high}], got {value!r}")


def check_fractions(name: str, value: Any) -> list:
    """Return ``value`` as a list, or raise unless it holds finite non-negative numbers summing to 1.

    NaN compares false with everything, so it would slip past ``f < 0`` and ``sum != 1`` tests.

    Args:
        name: the argument's name.
        value: e.g. ``[0.8, 0.2]``.

    Returns:
        ``list(value)``.

    Example:
        >>> check_fractions("fractions", (0.8, 0.2))
        [0.8, 0.2]
    """
    values = check_sequence(name, value)
    if not (all(isinstance(f, numbers.Real) and math.isfinite(f) and f >= 0 for f in values)
            and abs(sum(values) - 1.0) <= 1e-6):
        raise ValueError(f"{name} must be non-negative and sum to 1, got {values}")
    return values


def check_optimizer_covers(model: nn.Module, optimizer: Any) -> None:
    """Raise unless ``optimizer`` is an optimizer whose parameters all belong to ``model``.

    An optimizer built before a head was replaced still holds the old head's parameters and would
    silently never train the new head.

    Args:
        model: the network about to be trained.
        optimizer: the optimizer meant to train it.

    Raises:
        TypeError: if ``optimizer`` is not a ``torch.optim.Optimizer``.
        ValueError: naming how many parameters are foreign and which trainable ones it misses.

    Example:
        >>> net = nn.Linear(2, 2)
        >>> check_optimizer_covers(net, torch.optim.SGD(net.parameters(), lr=0.1))
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
    """Return ``value`` as a ``torch.device``, or raise naming the argument (torch's own message names none).

    Args:
        name: the argument's name.
        value: a ``torch.device`` or a name such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``.

    Returns:
        The device.

    Example:
        >>> check_device("device", "cpu")
        device(type='cpu')
    """
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be a torch.device or a device name such as 'cpu' or 'cuda', got {describe(value)}")
    try:
        return torch.device(value)
    except RuntimeError:
        raise ValueError(f"{name} must be a device name such as 'cpu', 'cuda' or 'cuda:1', got {value!r}") from None


def check_path(name: str, value: Any) -> Path:
    """Return ``value`` as a ``Path``, or raise ``TypeError`` unless it is a non-empty string or path.

    Args:
        name: the argument's name.
        value: a ``str`` or ``os.PathLike``.

    Returns:
        ``Path(value)``.

    Example:
        >>> check_path("root", "/tmp").name
        'tmp'
    """
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise TypeError(f"{name} must be a file or folder path (a str or pathlib.Path), got {describe(value)}")
    return Path(value)


def check_instance(name: str, value: Any, kind: type) -> None:
    """Raise ``TypeError`` unless ``value`` is an instance of ``kind`` (a settings row, a profile, a result record).

    Args:
        name: the argument's name.
        value: the argument.
        kind: the class expected.

    Example:
        >>> check_instance("seed", 3, int)
    """
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__}, got {describe(value)}")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices`` (a lookup with it would raise a bare ``KeyError``).

    Args:
        name: the argument's name.
        value: the argument.
        choices: the allowed values.

    Example:
        >>> check_choice("reduction", "mean", ("mean", "sum"))
    """
    choices = check_sequence("choices", choices)
    if isinstance(value, (list, dict, set)) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
