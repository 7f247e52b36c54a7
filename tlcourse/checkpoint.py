"""Checkpoints as safetensors plus plain JSON: no pickle, atomic writes, clear errors.

A checkpoint is one ``.safetensors`` file. Its tensors hold the numbers (model weights,
optimizer moments, RNG states); its header metadata holds one JSON document with everything else
(epoch, history, hyperparameters), where each tensor appears as ``{"__tensor__": "<key>"}``.
Loading such a file can never run code, unlike ``torch.load`` on a pickle.

Writes go to a temporary file in the same folder, then :func:`os.replace` renames it over the
target. A crash in the middle of a write therefore leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

__all__ = [
    "CheckpointError",
    "save_state_dict",
    "load_state_dict",
    "check_state_dict_matches",
    "save_checkpoint",
    "load_checkpoint",
]

_METADATA_KEY = "tlcourse"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted, or does not fit the model."""


def _pack(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    # Replace every tensor by a reference and collect it; keep the rest JSON-shaped.
    if isinstance(obj, torch.Tensor):
        key = prefix or "tensor"
        # clone(): safetensors refuses tensors that share memory (tied weights, views).
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {k: _pack(v, f"{prefix}.{k}" if prefix else k, tensors) for k, v in obj.items()}
        # Optimizer state is keyed by ints; JSON keys must be strings, so keep pairs.
        return {"__items__": [[k, _pack(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint: expected tensors, "
                    "numbers, strings, lists or dicts")


def _unpack(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {k: _unpack(v, tensors) for k, v in obj["__items__"]}
        return {k: _unpack(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    return obj


def _atomic_save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata=metadata)
        os.replace(temporary, path)  # atomic on POSIX and Windows when on one file system
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _read(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist; check the path or train first")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint file {path} is truncated or corrupted ({error}); delete it and save or "
            "train again, or restore it from a good copy"
        ) from None
    return tensors, metadata


def save_state_dict(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike,
                    metadata: Mapping[str, Any] | None = None) -> Path:
    """Save a model's ``state_dict`` as a safetensors file, atomically.

    Args:
        state_dict: names to tensors, e.g. ``model.state_dict()``.
        path: the ``.safetensors`` file to write.
        metadata: optional JSON-serialisable facts stored in the header (e.g. the asset name).

    Returns:
        The path written.

    Raises:
        TypeError: if a value is not a tensor.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> _ = save_state_dict(torch.nn.Linear(2, 1).state_dict(), p); sorted(load_state_dict(p))
        ['bias', 'weight']
    """
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}] is a {type(value).__name__}, expected a tensor")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    path = Path(path)
    _atomic_save(tensors, {_METADATA_KEY: json.dumps(dict(metadata or {}))}, path)
    return path


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict written by :func:`save_state_dict` (or any safetensors file).

    Args:
        path: the ``.safetensors`` file.

    Returns:
        A dict of names to CPU tensors.

    Raises:
        CheckpointError: if the file is missing, truncated or corrupted; the message names it.

    Example:
        >>> # see save_state_dict
    """
    tensors, _ = _read(path)
    return tensors


def check_state_dict_matches(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise unless ``state_dict`` has exactly the model's keys and shapes.

    Args:
        model: the module the weights are meant for.
        state_dict: the weights.

    Returns:
        None.

    Raises:
        CheckpointError: listing missing keys, unexpected keys, or the first shape mismatches.

    Example:
        >>> check_state_dict_matches(torch.nn.Linear(2, 1), torch.nn.Linear(2, 1).state_dict())
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint keys do not match the model: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    wrong = [
        f"{k}: model {tuple(expected[k].shape)} vs checkpoint {tuple(state_dict[k].shape)}"
        for k in expected
        if tuple(expected[k].shape) != tuple(state_dict[k].shape)
    ]
    if wrong:
        raise CheckpointError(f"checkpoint shapes do not match the model: {'; '.join(wrong[:5])}")


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Save a training state (nested dicts and lists of tensors and plain values), atomically.

    Args:
        path: the ``.safetensors`` file to write.
        state: e.g. ``{"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "epoch": 3, "history": {...}}``.

    Returns:
        The path written.

    Raises:
        TypeError: if the state holds an object that is not a tensor or a plain value.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.safetensors"
        >>> _ = save_checkpoint(p, {"epoch": 1, "w": torch.ones(2)}); load_checkpoint(p)["epoch"]
        1
    """
    tensors: dict[str, torch.Tensor] = {}
    document = _pack(dict(state), "", tensors)
    path = Path(path)
    _atomic_save(tensors, {_METADATA_KEY: json.dumps(document)}, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a training state written by :func:`save_checkpoint`.

    Args:
        path: the ``.safetensors`` file.

    Returns:
        The nested state with tensors restored.

    Raises:
        CheckpointError: if the file is missing, truncated, corrupted, or not a tlcourse checkpoint.

    Example:
        >>> # see save_checkpoint
    """
    tensors, metadata = _read(path)
    if _METADATA_KEY not in metadata:
        raise CheckpointError(f"{path} is a safetensors file but not a tlcourse checkpoint (no "
                              f"'{_METADATA_KEY}' metadata); load it with load_state_dict instead")
    try:
        document = json.loads(metadata[_METADATA_KEY])
        return _unpack(document, tensors)
    except (json.JSONDecodeError, KeyError) as error:
        raise CheckpointError(f"checkpoint file {path} has a corrupted header ({error}); "
                              "delete it and train again") from None
