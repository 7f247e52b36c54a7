"""Checkpoints as safetensors plus plain JSON: no pickle, atomic writes, clear errors.

A checkpoint is one ``.safetensors`` file. Its tensors hold the numbers (model weights,
optimizer moments, RNG states); its header metadata holds one JSON document with everything else
(epoch, history, hyperparameters), where each tensor appears as ``{"__tensor__": "<key>"}``.
Loading such a file can never run code, unlike ``torch.load`` on a pickle.

Writes go to a temporary file in the same folder, then :func:`os.replace` renames it over the
target. A crash in the middle of a write therefore leaves the previous checkpoint intact, and the
next save removes the temporary files that killed writers left behind. The header also stores a
SHA-256 checksum of every tensor (name, dtype, shape, bytes) and of the metadata, verified on
load, so a flipped bit anywhere in the file raises :class:`CheckpointError`. A state with NaN or
infinite values is never written: the last file on disk is always a good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from tlcourse.checks import check_module
from tlcourse.history import History
from tlcourse.runtime import capture_rng_state, restore_rng_state

__all__ = [
    "CheckpointError",
    "save_state_dict",
    "check_state_dict_matches",
    "save_checkpoint",
    "load_checkpoint",
    "save_training_state",
    "restore_training_state",
]

_METADATA_KEY = "tlcourse"
_CHECKSUM_KEY = "tlcourse_sha256"
_ORPHAN_AGE_SECONDS = 3600.0  # a temporary file without a writer's pid counts as orphaned after this


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted, does not fit the model, or (on save)
    the state to write holds NaN or infinite values."""


def _checksum(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    # SHA-256 over the metadata (but the checksum itself) and each tensor's name, dtype, shape
    # and raw bytes, in name order: any change to the file's content changes it.
    digest = hashlib.sha256()
    digest.update(json.dumps({k: v for k, v in metadata.items() if k != _CHECKSUM_KEY},
                             sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the bytes, whatever the dtype
    return digest.hexdigest()


def _check_finite(tensors: Mapping[str, torch.Tensor], path: Path, argument: str = "state") -> None:
    bad = [name for name, tensor in tensors.items()
           if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise CheckpointError(
            f"refusing to write {path}: {len(bad)} tensor(s) hold NaN or infinite values, e.g. "
            f"{bad[:3]} in {argument}; the file on disk (if any) is left as it was"
        )


def _remove_orphaned_temporaries(path: Path) -> None:
    # Temporary names are ".<target>.<pid>.<random>.tmp"; a write killed before its cleanup leaves
    # one behind. Remove those whose writer is gone (never a live writer's file).
    for temporary in path.parent.glob(f".{path.name}.*.tmp"):
        writer = temporary.name[len(path.name) + 2:].split(".")[0]
        try:
            if writer.isdigit():
                if int(writer) == os.getpid():
                    continue  # this process's own writes clean up after themselves
                try:
                    os.kill(int(writer), 0)
                    continue  # the writer is alive
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue  # alive, owned by someone else
            elif time.time() - temporary.stat().st_mtime < _ORPHAN_AGE_SECONDS:
                continue
            temporary.unlink()
        except OSError:
            pass  # removed meanwhile, or not ours to remove: the save itself does not depend on it


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


def _atomic_save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path, argument: str = "state") -> None:
    _check_finite(tensors, path, argument)
    metadata = {**metadata, _CHECKSUM_KEY: _checksum(tensors, metadata)}
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphaned_temporaries(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
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
    advice = "delete it and save or train again, or restore it from a good copy"
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError, UnicodeError, OverflowError) as error:
        raise CheckpointError(f"checkpoint file {path} is truncated or corrupted ({error}); {advice}") from None
    if _CHECKSUM_KEY in metadata:
        if metadata[_CHECKSUM_KEY] != _checksum(tensors, metadata):
            raise CheckpointError(f"checkpoint file {path} is corrupted (its checksum does not match "
                                  f"its content); {advice}")
    elif _METADATA_KEY in metadata:
        raise CheckpointError(f"checkpoint file {path} has no checksum (corrupted, or written by an "
                              f"older tlcourse); {advice}")
    return tensors, metadata


def save_state_dict(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike,
                    metadata: Mapping[str, Any] | None = None) -> Path:
    """Save a model's ``state_dict`` as a safetensors file, atomically.

    The file any safetensors reader opens; :func:`tlcourse.footprint.checkpoint_bytes` measures its size.

    Args:
        state_dict: names to tensors, e.g. ``model.state_dict()``.
        path: the ``.safetensors`` file to write.
        metadata: optional JSON-serialisable facts stored in the header (e.g. the asset name).

    Returns:
        The path written.

    Raises:
        TypeError: if a value is not a tensor.
        CheckpointError: if a tensor holds NaN or infinite values (nothing is written).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> from safetensors.torch import load_file  # any safetensors reader opens it
        >>> _ = save_state_dict(torch.nn.Linear(2, 1).state_dict(), p); sorted(load_file(p))
        ['bias', 'weight']
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}] is a {type(value).__name__}, expected a tensor")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    path = Path(path)
    _atomic_save(tensors, {_METADATA_KEY: json.dumps(dict(metadata or {}))}, path, "state_dict")
    return path


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
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint keys do not match the model: state_dict is missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    wrong = [
        f"{k}: model {tuple(expected[k].shape)} vs checkpoint {tuple(getattr(state_dict[k], 'shape', ()))}"
        for k in expected
        if tuple(expected[k].shape) != tuple(getattr(state_dict[k], "shape", ()))
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
        CheckpointError: if a tensor holds NaN or infinite values (nothing is written).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.safetensors"
        >>> _ = save_checkpoint(p, {"epoch": 1, "w": torch.ones(2)}); load_checkpoint(p)["epoch"]
        1
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping (e.g. {{'model': ..., 'epoch': 1}}), got {type(state).__name__}")
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
                              f"'{_METADATA_KEY}' metadata); load it with safetensors.torch.load_file instead")
    try:
        document = json.loads(metadata[_METADATA_KEY])
        return _unpack(document, tensors)
    except (json.JSONDecodeError, KeyError) as error:
        raise CheckpointError(f"checkpoint file {path} has a corrupted header ({error}); "
                              "delete it and train again") from None


def save_training_state(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                        epoch: int, history: History, scheduler: Any | None = None, scaler: Any | None = None,
                        loader: Any | None = None) -> Path:
    """Save everything :func:`tlcourse.train.fit` needs to continue exactly: the end of one epoch.

    Args:
        path: the ``.safetensors`` file to write (atomically, see :func:`save_checkpoint`).
        model: its weights and buffers. optimizer: its state (moments, step counts).
        epoch: epochs done. history: the records so far.
        scheduler: its state, if any. scaler: an fp16 gradient scaler's loss scale, if any.
        loader: a DataLoader whose ``generator`` decides the next epoch's shuffle, if any.

    Returns:
        The path written; the random number generators' states are saved too.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.
        CheckpointError: if a tensor holds NaN or infinite values (nothing is written).

    Example:
        >>> import tempfile, pathlib
        >>> net = torch.nn.Linear(2, 1); sgd = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> p = save_training_state(pathlib.Path(tempfile.mkdtemp()) / "c.safetensors", net, sgd, epoch=1,
        ...                         history=History())
        >>> restore_training_state(p, net, sgd)[1]
        1
    """
    check_module("model", model)
    generator = getattr(loader, "generator", None)
    return save_checkpoint(path, {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": capture_rng_state(),
        "loader_generator": generator.get_state() if generator is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch,
        "history": history.to_dict(),
    })


def restore_training_state(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                           scheduler: Any | None = None, scaler: Any | None = None,
                           loader: Any | None = None) -> tuple[History, int]:
    """Load a state written by :func:`save_training_state` into the objects of a new session.

    Args:
        path: the ``.safetensors`` file.
        model, optimizer, scheduler, scaler, loader: as for :func:`save_training_state`; each
            gets its saved state back, and so do the random number generators.

    Returns:
        ``(history, epoch)``: the records so far and the number of epochs done.

    Raises:
        CheckpointError: if the file is missing or corrupted, if its weights do not fit ``model``
            (naming keys and shapes) or its optimizer state does not fit ``optimizer``.

    Example:
        >>> # see save_training_state
    """
    check_module("model", model)
    state = load_checkpoint(path)
    check_state_dict_matches(model, state["model"])  # CheckpointError naming keys and shapes
    model.load_state_dict(state["model"])
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"the optimizer state in {path} does not fit this optimizer "
                              f"({error}); resume with the optimizer that wrote it") from None
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])  # the loss scale found so far
    restore_rng_state(state["rng"])
    generator = getattr(loader, "generator", None)
    if generator is not None and state.get("loader_generator") is not None:
        generator.set_state(state["loader_generator"])
    return History([dict(r) for r in state["history"]["records"]]), int(state["epoch"])
