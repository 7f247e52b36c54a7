"""Optimiser parameter groups ``{"params", "names", "lr", "weight_decay"}`` and the warmup schedule.

torch optimisers read ``params``, ``lr`` and ``weight_decay`` and keep ``names`` (which parameters
the group holds) untouched.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

__all__ = ["weight_decay_groups", "linear_warmup_schedule", "parameter_groups",
           "discriminative_learning_rates", "adamw"]

_NORMS = (nn.LayerNorm, nn.modules.batchnorm._BatchNorm)


def _group(learning_rate: float, weight_decay: float, named: list[tuple[str, nn.Parameter]]) -> dict[str, Any]:
    return {"params": [p for _, p in named], "names": [n for n, _ in named], "lr": float(learning_rate),
            "weight_decay": float(weight_decay)}


def _no_decay(model: nn.Module) -> set[str]:
    # biases and normalisation weights: decaying a LayerNorm gain toward 0 erases its input
    norms = {f"{m}.{p}".lstrip(".") for m, module in model.named_modules() if isinstance(module, _NORMS)
             for p, _ in module.named_parameters(recurse=False)}
    return norms | {n for n, _ in model.named_parameters() if n.split(".")[-1] == "bias"}


def weight_decay_groups(model: nn.Module, weight_decay: float, learning_rate: float) -> list[dict]:
    """Two AdamW groups of the trainable parameters: weights with ``weight_decay``; biases and normalisation weights without."""
    exempt = _no_decay(model)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [_group(learning_rate, weight_decay, [(n, p) for n, p in trainable if n not in exempt]),
            _group(learning_rate, 0.0, [(n, p) for n, p in trainable if n in exempt])]


def linear_warmup_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warmup to the groups' ``lr``, then linear decay to 0 at ``total_steps``: transformers' ``get_linear_schedule_with_warmup``."""
    from transformers import get_linear_schedule_with_warmup  # imported here: transformers loads slowly

    return get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)


def parameter_groups(model: nn.Module, learning_rates: dict[str, float], weight_decay: float = 0.0) -> list[dict]:
    """One group per parameter-name prefix of ``learning_rates`` (longest prefix wins, ``""`` catches the rest); every trainable parameter must match one."""
    specific = sorted((p for p in learning_rates if p), key=len, reverse=True)
    buckets: dict[str, list] = {prefix: [] for prefix in learning_rates}
    unmatched = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            match = next((p for p in specific if name == p or name.startswith(p.rstrip(".") + ".")),
                         "" if "" in learning_rates else None)
            if match is None:
                unmatched.append(name)
            else:
                buckets[match].append((name, parameter))
    if unmatched:  # none may silently train with a default rate
        raise ValueError(f"learning_rates: trainable parameters {unmatched[:5]} match no prefix in "
                         f"{sorted(learning_rates)}; add a prefix (or '' for the rest) or freeze them")
    return [_group(learning_rates[prefix], weight_decay, named) for prefix, named in buckets.items() if named]


def discriminative_learning_rates(blocks: Sequence[nn.Module], lowest: float, highest: float) -> list[dict]:
    """One group per block, learning rates growing geometrically from ``lowest`` (first block) to ``highest`` (last): fastai's ``slice``.

    Names are ``"<block index>.<parameter name>"``; blocks without trainable parameters get no group.
    """
    groups = []
    for index, block in enumerate(blocks):
        fraction = index / (len(blocks) - 1) if len(blocks) > 1 else 1.0
        named = [(f"{index}.{n}", p) for n, p in block.named_parameters() if p.requires_grad]
        if named:
            groups.append(_group(lowest * (highest / lowest) ** fraction, 0.0, named))
    return groups


def adamw(groups: Sequence[dict], device: torch.device | str = "cpu") -> torch.optim.AdamW:
    """``torch.optim.AdamW`` over the non-empty ``groups``, fused on CPUs and CUDA GPUs (the same update up to rounding)."""
    groups = [group for group in groups if group["params"]]
    if not groups:
        raise ValueError("groups: every parameter group is empty (is everything frozen?), nothing to train")
    fused = torch.device(device).type in ("cpu", "cuda") or None  # None: PyTorch's default elsewhere
    return torch.optim.AdamW(groups, lr=groups[0]["lr"], fused=fused)
