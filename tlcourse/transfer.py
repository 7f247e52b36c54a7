"""Transfer helpers after fastai's vocabulary: freeze and unfreeze, replace or split off a head, cache a
frozen backbone's features, and LP-FT's two stages."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence, TypeVar

import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.checks import check_int
from tlcourse.train import predict

__all__ = ["freeze", "unfreeze", "replace_head", "count_parameters", "trainable_parameter_names",
           "split_head", "extract_features", "freeze_batchnorm", "linear_probe_then_fine_tune"]

Result = TypeVar("Result")


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix.rstrip(".") + ".")


def _set_trainable(model: nn.Module, prefixes: Sequence[str] | str | None, trainable: bool) -> int:
    named = list(model.named_parameters())
    if prefixes is not None:
        prefixes = [prefixes] if isinstance(prefixes, str) else list(prefixes)
        unmatched = [q for q in prefixes if not any(_under(n, q) for n, _ in named)]
        if unmatched:  # a typo would otherwise freeze nothing, silently
            top = sorted({n.split(".")[0] for n, _ in named})[:8]
            raise ValueError(f"prefixes: no parameter name starts with {unmatched}; top-level names are {top}")
        named = [(n, p) for n, p in named if any(_under(n, q) for q in prefixes)]
    for _, parameter in named:
        parameter.requires_grad_(trainable)
    return sum(p.numel() for _, p in named)


def freeze(model: nn.Module, prefixes: Sequence[str] | str | None = None) -> int:
    """Stop gradients for all parameters, or those under the name ``prefixes``; return how many numbers were frozen."""
    return _set_trainable(model, prefixes, False)


def unfreeze(model: nn.Module, prefixes: Sequence[str] | str | None = None) -> int:
    """Let gradients flow again, for all parameters or those under ``prefixes``; return how many numbers."""
    return _set_trainable(model, prefixes, True)


def _locate(model: nn.Module, path: str, argument: str) -> tuple[nn.Module, str, nn.Module]:
    parent_path, _, name = path.rpartition(".")
    try:
        parent = model.get_submodule(parent_path) if parent_path else model
        return parent, name, parent.get_submodule(name)
    except AttributeError:
        children = [n for n, _ in model.named_children()][:5]
        raise ValueError(f"{argument}: model has no submodule {path!r}; its children are {children}") from None


def replace_head(model: nn.Module, path: str, num_classes: int) -> nn.Linear:
    """Replace the linear layer at ``path`` (e.g. ``"classifier.6"``) by a fresh one with ``num_classes`` outputs, same ``in_features``."""
    check_int("num_classes", num_classes)
    parent, name, old = _locate(model, path, "path")
    if not isinstance(old, nn.Linear):
        raise ValueError(f"path: {path!r} is a {type(old).__name__}, expected nn.Linear")
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    setattr(parent, name, new.to(device=old.weight.device, dtype=old.weight.dtype))
    return new


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """The number of parameter scalars (by default only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def trainable_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters that will receive gradients, in registration order."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def split_head(model: nn.Module, head: str) -> tuple[nn.Module, nn.Module]:
    """Replace the head at ``head`` by ``nn.Identity``; return ``(model, head module)``: the model now outputs features."""
    parent, name, module = _locate(model, head, "head")
    setattr(parent, name, nn.Identity())
    return model, module


@torch.inference_mode()
def extract_features(backbone: nn.Module, loader: Iterable, device: torch.device | str = "cpu") -> TensorDataset:
    """Run a frozen backbone (eval mode) over ``(images, labels)`` once; return ``TensorDataset(features (N, D), labels)``."""
    # (B, ...) backbone outputs flattened to (B, D) vectors
    features, labels = predict(backbone, loader, device, forward=lambda model, images: model(images).flatten(1))
    return TensorDataset(features, labels)


def freeze_batchnorm(model: nn.Module) -> int:
    """Freeze every BatchNorm layer's scale and shift, so ``fit`` keeps those layers in eval mode; return how many numbers."""
    names = [name for name, module in model.named_modules()
             if isinstance(module, nn.modules.batchnorm._BatchNorm) and list(module.parameters(recurse=False))]
    return freeze(model, names) if names else 0


def linear_probe_then_fine_tune(model: nn.Module, head: str, probe: Callable[[nn.Module], Any],
                                fine_tune: Callable[[nn.Module], Result]) -> Result:
    """LP-FT (Kumar et al., 2022): ``probe(head module)`` with the body frozen, then ``fine_tune(model)`` with all but BatchNorm trainable.

    Returns:
        What ``fine_tune`` returns.
    """
    _, _, head_module = _locate(model, head, "head")
    freeze(model)  # stage 1, the probe: the head alone
    unfreeze(head_module)
    probe(head_module)
    unfreeze(model)  # stage 2: everything from the trained head; BatchNorm keeps its pretrained statistics
    freeze_batchnorm(model)
    return fine_tune(model)
