"""Mixed precision that is right on every GPU: bf16 where the GPU has it, fp16 with loss scaling elsewhere.

bf16 keeps fp32's 8-bit exponent, so gradients do not underflow and no loss scaling is needed; but
only GPUs of compute capability 8.0 or higher (Ampere, Hopper, ...) compute in bf16 natively. Older
GPUs (Colab's free T4 is 7.5) must use fp16, whose 5-bit exponent flushes small gradients to zero
unless the loss is multiplied by a large factor before ``backward`` and the gradients divided by it
afterwards: :class:`torch.amp.GradScaler`. ``torch.cuda.is_bf16_supported()`` is not the test to
use: it answers True on a T4, where bf16 is emulated and slow.

On the CPU (and MPS) nothing is autocast unless a precision is forced by name.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager, Literal

import torch

from tlcourse.checks import check_device

__all__ = [
    "Precision",
    "PRECISIONS",
    "choose_precision",
    "resolve_precision",
    "autocast",
    "make_grad_scaler",
    "describe_precision",
    "announce_precision",
]

Precision = Literal["bf16", "fp16", "fp32"]
PRECISIONS: tuple[str, ...] = ("bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_NATIVE_BF16 = (8, 0)  # Ampere (sm_80) and later have bf16 tensor cores
_ANNOUNCED: set[str] = set()  # lines already printed by this process


def choose_precision(device_type: str, capability: tuple[int, int] | None) -> Precision:
    """The autocast precision for a device: a pure function of the device type and GPU capability.

    Args:
        device_type: ``"cuda"``, ``"cpu"`` or ``"mps"``.
        capability: the CUDA compute capability ``(major, minor)``, as
            ``torch.cuda.get_device_capability()`` returns it; ignored off CUDA.

    Returns:
        ``"bf16"`` on CUDA with capability 8.0 or higher, ``"fp16"`` (to be used with a gradient
        scaler) on older CUDA GPUs, ``"fp32"`` (no autocast) elsewhere.

    Raises:
        ValueError: if ``device_type`` is ``"cuda"`` and ``capability`` is not a ``(major, minor)`` pair.

    Example:
        >>> choose_precision("cuda", (7, 5)), choose_precision("cuda", (8, 0)), choose_precision("cpu", None)
        ('fp16', 'bf16', 'fp32')
    """
    if device_type != "cuda":
        return "fp32"
    if (not isinstance(capability, tuple) or len(capability) != 2
            or not all(isinstance(part, int) and not isinstance(part, bool) for part in capability)):
        raise ValueError(f"capability must be a (major, minor) pair of ints on CUDA, got {capability!r}")
    return "bf16" if capability >= _NATIVE_BF16 else "fp16"


def resolve_precision(device: torch.device | str, mixed_precision: bool | str) -> Precision:
    """Turn ``fit``'s ``mixed_precision`` argument into a precision for ``device``.

    Args:
        device: where the model runs.
        mixed_precision: ``False`` for fp32, ``True`` to let :func:`choose_precision` decide from the
            hardware, or a precision name (``"bf16"``, ``"fp16"``, ``"fp32"``) to force it (tests
            force ``"fp16"`` on the CPU to exercise the gradient scaler).

    Returns:
        ``"bf16"``, ``"fp16"`` or ``"fp32"``.

    Raises:
        ValueError: if ``mixed_precision`` is a string that is not a known precision.

    Example:
        >>> resolve_precision("cpu", True), resolve_precision("cpu", "fp16")
        ('fp32', 'fp16')
    """
    if isinstance(mixed_precision, str):
        if mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision must be a bool or one of {list(PRECISIONS)}, got {mixed_precision!r}")
        return mixed_precision  # type: ignore[return-value]
    if not mixed_precision:
        return "fp32"
    device = torch.device(device)
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return choose_precision(device.type, capability)


def _check_precision(precision: object) -> None:
    # a typo such as "fp61" would otherwise silently run in full precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)} (see resolve_precision), got {precision!r}")


def autocast(device: torch.device | str, precision: Precision) -> ContextManager:
    """The autocast context for ``precision`` on ``device`` (a no-op context for fp32).

    Args:
        device: where the forward pass runs.
        precision: from :func:`resolve_precision`.

    Returns:
        A context manager.

    Example:
        >>> with autocast("cpu", "bf16"):
        ...     torch.ones(2, 2) @ torch.ones(2, 2)
        tensor([[2., 2.],
                [2., 2.]], dtype=torch.bfloat16)
    """
    _check_precision(precision)
    device = check_device("device", device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision])


def make_grad_scaler(device: torch.device | str, precision: Precision) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16, ``None`` otherwise (bf16 and fp32 need none).

    Args:
        device: where the gradients live.
        precision: from :func:`resolve_precision`.

    Returns:
        A :class:`torch.amp.GradScaler` or ``None``.

    Example:
        >>> make_grad_scaler("cpu", "bf16") is None, type(make_grad_scaler("cpu", "fp16")).__name__
        (True, 'GradScaler')
    """
    _check_precision(precision)
    device = check_device("device", device)
    return torch.amp.GradScaler(torch.device(device).type) if precision == "fp16" else None


def describe_precision(device: torch.device | str, precision: Precision) -> str:
    """One line saying which precision runs and why, for ``fit`` to print once.

    Args:
        device: where the model runs.
        precision: from :func:`resolve_precision`.

    Returns:
        The line.

    Example:
        >>> describe_precision("cpu", "fp32")
        'mixed precision: off on cpu (fp32)'
    """
    _check_precision(precision)
    device = check_device("device", device)
    if precision == "fp32":
        return f"mixed precision: off on {device.type} (fp32)"
    where = device.type
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        where = f"{torch.cuda.get_device_name(device)}, compute capability {major}.{minor}"
    if precision == "bf16":
        return f"mixed precision: bf16 autocast, no loss scaling needed ({where})"
    return f"mixed precision: fp16 autocast with gradient scaling (torch.amp.GradScaler) ({where})"


def announce_precision(device: torch.device | str, precision: Precision) -> None:
    """Print :func:`describe_precision`'s line, once per process (``fit`` calls it when asked for mixed precision).

    Args:
        device: where the model runs.
        precision: from :func:`resolve_precision`.

    Returns:
        None.

    Example:
        >>> announce_precision("cpu", "bf16")
        mixed precision: bf16 autocast, no loss scaling needed (cpu)
        >>> announce_precision("cpu", "bf16")  # already said
    """
    line = describe_precision(device, precision)
    if line not in _ANNOUNCED:
        _ANNOUNCED.add(line)
        print(line)
