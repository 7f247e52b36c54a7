"""Checkpoints as one safetensors file: tensors, plus one JSON document in the header. No pickle.

Each tensor of the state appears in the JSON as ``{"__tensor__": "<key>"}``. Writes go to a
temporary file that :func:`os.replace` renames over the target, so a crash keeps the last good
file. The header holds a SHA-256 of every tensor and of the metadata, checked on load. A state with
NaN or infinite values is never written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from tlcourse.checks import check_module, describe
from tlcourse.history import History
from tlcourse.runtime import capture_rng_state, restore_rng_state

__all__ = ["CheckpointError", "save_state_dict", "check_state_dict_matches", "save_checkpoint", "load_checkpoint",
           "save_training_state", "restore_training_state"]

_METADATA_KEY = "tlcourse"
_CHECKSUM_KEY = "tlcourse_sha256"
_ADVICE = "delete it and save or train again, or restore it from a good copy"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted or does not fit; or a state to save holds NaN or infinite values."""


def _checksum(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    # over the metadata (less the checksum) and each tensor's name, dtype, shape and bytes
    digest = hashlib.sha256(json.dumps({k: v for k, v in metadata.items() if k != _CHECKSUM_KEY},
                                       sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _remove_orphaned_temporaries(path: Path) -> None:
    # temporaries are ".<target>.<pid>.<random>.tmp": remove those whose writer has exited
    for temporary in path.parent.glob(f".{path.name}.*.tmp"):
        writer = temporary.name[len(path.name) + 2:].split(".")[0]
        if not writer.isdigit() or int(writer) == os.getpid():
            continue
        try:
            os.kill(int(writer), 0)  # raises ProcessLookupError if the writer is gone
        except ProcessLookupError:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass  # alive, owned by someone else


def _pack(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    # every tensor becomes a reference {"__tensor__": key}; the rest stays JSON-shaped
    if isinstance(obj, torch.Tensor):
        key = prefix or "tensor"
        if key in tensors:
            raise ValueError(f"state: two entries are both stored under the key {key!r} (a key with a dot and "
                             "nested keys, e.g. {'a.b': ...} and {'a': {'b': ...}}); rename one")
        tensors[key] = obj.detach().to("cpu").contiguous().clone()  # clone: tied weights share memory
        return {"__tensor__": key}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {k: _pack(v, f"{prefix}.{k}" if prefix else k, tensors) for k, v in obj.items()}
        return {"__items__": [[k, _pack(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}  # int keys
    if isinstance(obj, (list, tuple)):
        return [_pack(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"state: cannot store {type(obj).__name__} at {prefix!r} in a checkpoint; expected tensors, "
                    "numbers, strings, lists or dicts")


def _unpack(obj: Any, tensors: Mapping[str, torch.Tensor], used: set[str]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            used.add(obj["__tensor__"])
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {k: _unpack(v, tensors, used) for k, v in obj["__items__"]}
        return {k: _unpack(v, tensors, used) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, tensors, used) for v in obj]
    return obj


def _atomic_save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path, argument: str) -> None:
    bad = [name for name, tensor in tensors.items()
           if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise CheckpointError(f"refusing to write {path}: {len(bad)} tensor(s) hold NaN or infinite values, e.g. "
                              f"{bad[:3]} in {argument}; the file on disk (if any) is left as it was")
    metadata = {**metadata, _CHECKSUM_KEY: _checksum(tensors, metadata)}
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphaned_temporaries(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata=metadata)
        os.replace(temporary, path)  # atomic on one file system
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _check_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"path must be a file path (a str or pathlib.Path), got {describe(path)}")
    return Path(path)


def save_state_dict(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike,
                    metadata: Mapping[str, Any] | None = None) -> Path:
    """Save model weights as a plain safetensors file (any safetensors reader opens it), atomically; return the path.

    Args:
        metadata: JSON-serialisable facts stored in the header.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {describe(state_dict)}")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}] is a {type(value).__name__}, expected a tensor")
    path = _check_path(path)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    _atomic_save(tensors, {_METADATA_KEY: json.dumps(dict(metadata or {}))}, path, "state_dict")
    return path


def check_state_dict_matches(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` has exactly the model's keys and shapes."""
    check_module("model", model)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {describe(state_dict)}")
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint keys do not match the model: state_dict is missing {missing[:5]}"
                              f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                              f"{' ...' if len(unexpected) > 5 else ''}")
    shape = {k: tuple(getattr(state_dict[k], "shape", ())) for k in expected}
    wrong = [f"{k}: model {tuple(v.shape)} vs checkpoint {shape[k]}" for k, v in expected.items()
             if tuple(v.shape) != shape[k]]
    if wrong:
        raise CheckpointError(f"checkpoint shapes do not match the model: {'; '.join(wrong[:5])}")


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Save a training state (nested dicts and lists of tensors and plain values) atomically; return the path."""
    path = _check_path(path)
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping (e.g. {{'model': ..., 'epoch': 1}}), got {describe(state)}")
    tensors: dict[str, torch.Tensor] = {}
    document = _pack(dict(state), "", tensors)
    _atomic_save(tensors, {_METADATA_KEY: json.dumps(document)}, path, "state")
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a state written by :func:`save_checkpoint`, checksum checked."""
    path = _check_path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist; check the path or train first")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError, UnicodeError, OverflowError) as error:
        raise CheckpointError(f"checkpoint file {path} is truncated or corrupted ({error}); {_ADVICE}") from None
    if _METADATA_KEY not in metadata:
        raise CheckpointError(f"{path} is a safetensors file but not a tlcourse checkpoint (no '{_METADATA_KEY}' "
                              "metadata); load it with safetensors.torch.load_file instead")
    if _CHECKSUM_KEY not in metadata:
        raise CheckpointError(f"checkpoint file {path} has no checksum (corrupted, or written by an older "
                              f"tlcourse); {_ADVICE}")
    if metadata[_CHECKSUM_KEY] != _checksum(tensors, metadata):
        raise CheckpointError(f"checkpoint file {path} is corrupted (its checksum does not match its content); {_ADVICE}")
    used: set[str] = set()
    try:
        state = _unpack(json.loads(metadata[_METADATA_KEY]), tensors, used)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint file {path} has a corrupted header ({error}); {_ADVICE}") from None
    if used != set(tensors):  # save_state_dict's tensors are not referenced by its metadata
        raise CheckpointError(f"{path} is a weights-only file (written by save_state_dict), not a training state: "
                              "load its weights with safetensors.torch.load_file; resume needs a checkpoint "
                              "written by fit(checkpoint_path=...)")
    return state


def save_training_state(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                        epoch: int, history: History, scheduler: Any | None = None, scaler: Any | None = None,
                        loader: Any | None = None) -> Path:
    """Save what ``fit`` needs to continue exactly: weights, optimiser, scheduler, scaler, every RNG, the loader's generator."""
    generator = getattr(loader, "generator", None)
    return save_checkpoint(path, {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "optimizer_type": type(optimizer).__name__,
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
    """Load a state written by :func:`save_training_state` into new objects; return ``(history, epochs done)``."""
    check_module("model", model)
    state = load_checkpoint(path)
    check_state_dict_matches(model, state["model"])
    saved_type, saved_groups = state.get("optimizer_type"), state["optimizer"]["param_groups"]
    # torch's load_state_dict takes the saved hyperparameters as they are: an SGD state in AdamW
    # loads, then fails at the first step with KeyError: 'betas'
    if saved_type != type(optimizer).__name__ if saved_type else any(  # no type saved: compare hyperparameter names
            set(saved) != set(group) for saved, group in zip(saved_groups, optimizer.param_groups)):
        raise CheckpointError(f"optimizer: the checkpoint {path} holds the state of an optimizer of type "
                              f"{saved_type or '(another)'}, this optimizer is of type {type(optimizer).__name__}; "
                              "resume with the type that wrote it, or start a new run without resume")
    model.load_state_dict(state["model"])
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"the optimizer state in {path} does not fit this optimizer "
                              f"({error}); resume with the optimizer that wrote it") from None
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])
    generator = getattr(loader, "generator", None)
    if generator is not None and state.get("loader_generator") is not None:
        generator.set_state(state["loader_generator"])
    return History([dict(r) for r in state["history"]["records"]]), int(state["epoch"])
