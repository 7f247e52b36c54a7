"""Argument checks shared by the package, with messages that name the argument, the expectation
and the value given."""

from __future__ import annotations

from typing import Any

__all__ = ["check_int"]


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
