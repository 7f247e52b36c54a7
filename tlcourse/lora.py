"""LoRA written out: a frozen linear layer plus a trainable low-rank update, and merging it away."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from tlcourse.checks import check_int



def _check_rank_and_alpha(rank: int, alpha: float) -> None:
    check_int("rank", rank)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")


def lora_parameter_count(in_features: int, out_features: int, rank: int) -> int:
    """Trainable numbers of one LoRA adapter: ``A`` holds ``rank * in``, ``B`` holds ``out * rank``."""
    check_int("in_features", in_features)
    check_int("out_features", out_features)
    check_int("rank", rank)
    return rank * (in_features + out_features)


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus the trainable low-rank update ``(alpha / r) B A``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        _check_rank_and_alpha(rank, alpha)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.base = base
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        self.rank = rank
        self.alpha = float(alpha)
        self.scaling = self.alpha / rank
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, dtype=weight.dtype, device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, dtype=weight.dtype, device=weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own initialisation
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / r) B A`` as a full ``(out, in)`` matrix."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``W x + b + (alpha / r) B (A x)``, computed without forming ``B A``."""
        # (..., in) -> (..., r) -> (..., out): r (in + out) multiply-adds per input, not in * out
        update = self.dropout(inputs) @ self.lora_A.T @ self.lora_B.T
        return self.base(inputs) + self.scaling * update

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with weight ``W + (alpha / r) B A``: the same function, no extra cost."""
        layer = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                          device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                layer.bias.copy_(self.base.bias)
        layer.requires_grad_(False)
        return layer

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}"


def _matches(name: str, targets: Sequence[str]) -> bool:
    # peft's rule for a list of names: the module's full name is the target or ends in ".target"
    return any(name == target or name.endswith("." + target) for target in targets)


def add_lora(model: nn.Module, target_modules: Sequence[str], rank: int, alpha: float, dropout: float = 0.0,
             trainable: Sequence[str] = ()) -> list[str]:
    """Replace the named linear layers by :class:`LoRALinear` and freeze every other parameter."""
    targets = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    if not targets:
        raise ValueError("target_modules is empty: name at least one linear layer to adapt, e.g. ['query', 'value']")
    _check_rank_and_alpha(rank, alpha)
    found = [(name, module) for name, module in model.named_modules() if name and _matches(name, targets)]
    if not found:
        raise ValueError(f"no module of the model matches target_modules={targets}")
    wrong = [(name, type(module).__name__) for name, module in found if not isinstance(module, nn.Linear)]
    if wrong:
        raise ValueError(f"LoRALinear adapts nn.Linear layers only; {wrong[0][0]!r} is a {wrong[0][1]}")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for name, module in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(module, rank, alpha, dropout))
    for name, parameter in model.named_parameters():
        if any(name == prefix or name.startswith(prefix + ".") for prefix in trainable):
            parameter.requires_grad_(True)
    return [name for name, _ in found]


def merge_lora(model: nn.Module) -> int:
    """Fold every :class:`LoRALinear` of ``model`` into a plain ``nn.Linear`` (in place)."""
    adapted = [name for name, module in model.named_modules() if isinstance(module, LoRALinear)]
    if not adapted:
        raise ValueError("the model has no LoRALinear layer to merge")
    for name in adapted:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, getattr(parent, child).merged())
    return len(adapted)
