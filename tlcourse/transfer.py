"""Transfer helpers after fastai's vocabulary: freeze and unfreeze, replace or split off a head, cache a
frozen backbone's features, LP-FT's two stages, and the L2-SP loss."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence, TypeVar

import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.checks import check_int, check_module, check_number
from tlcourse.train import predict

__all__ = ["freeze", "unfreeze", "replace_head", "count_parameters", "trainable_parameter_names",
           "split_head", "extract_features", "freeze_batchnorm", "linear_probe_then_fine_tune", "PenalisedLoss"]

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


class PenalisedLoss:
    """``loss_fn(logits, targets)`` for :func:`tlcourse.train.fit`: cross-entropy plus ``strength / 2 * sum ||w - w0||^2``.

    L2-SP (Li et al., 2018) pulls each named parameter toward its value at construction, ``w0``;
    ``toward_zero=True`` pulls it toward zero instead (the plain L2 penalty, as a loss term).
    """

    def __init__(self, model: nn.Module, names: list[str], strength: float,
                 toward_zero: bool = False, label_smoothing: float = 0.0) -> None:
        check_module("model", model)
        if isinstance(names, str) or not names:
            raise TypeError(f"names must be a non-empty list of parameter names, got {names!r:.60}")
        parameters = dict(model.named_parameters())
        unknown = [name for name in names if name not in parameters]
        if unknown:
            raise ValueError(f"unknown parameter names: {unknown[:3]}; the model has {list(parameters)[:5]}")
        check_number("strength", strength, low=0.0)
        check_number("label_smoothing", label_smoothing, 0.0, 1.0)
        self.model, self.strength, self.label_smoothing = model, strength, label_smoothing
        # detached copies: the anchor w0 is a constant, never trained
        self.reference = {name: (torch.zeros_like(parameters[name]) if toward_zero
                                 else parameters[name].detach().clone()) for name in names}

    def penalty(self) -> torch.Tensor:
        """The current penalty (a scalar tensor)."""
        parameters = dict(self.model.named_parameters())
        # the anchor follows the model to its device (fit may move it after construction)
        total = sum((parameters[name] - anchor.to(parameters[name].device)).pow(2).sum()
                    for name, anchor in self.reference.items())
        return 0.5 * self.strength * total

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, targets, label_smoothing=self.label_smoothing) + self.penalty()
