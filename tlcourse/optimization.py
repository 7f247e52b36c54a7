"""Optimiser parameter groups and learning-rate schedules, in one dict shape.

Every function here returns groups shaped ``{"params", "names", "lr", "weight_decay"}``, ready for
``torch.optim.AdamW(groups)``:

* :func:`weight_decay_groups`: no weight decay on biases and normalisation weights (BERT's recipe);
* :func:`layerwise_lr_groups`: layer-wise learning-rate decay, lower layers learn more slowly;
* :func:`parameter_groups`: one learning rate per parameter-name prefix;
* :func:`discriminative_learning_rates`: geometric learning rates over blocks (fastai's ``slice``);
* :func:`linear_warmup_schedule`: linear warmup, then linear decay to 0 at the last step;
* :func:`adamw`: ``torch.optim.AdamW`` over such groups, fused where PyTorch has the kernel.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from tlcourse.checks import check_int, check_module, check_number, check_sequence

__all__ = [
    "weight_decay_groups",
    "linear_warmup_schedule",
    "layerwise_lr_groups",
    "parameter_groups",
    "discriminative_learning_rates",
    "adamw",
]


def _no_decay_names(model: nn.Module) -> set[str]:
    # Biases and every normalisation weight: decaying them toward 0 only hurts (a LayerNorm gain
    # of 0 erases its input), which is why BERT's recipe exempts them.
    names = set()
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if param_name == "bias" or isinstance(module, (nn.LayerNorm, nn.modules.batchnorm._BatchNorm)):
                names.add(full)
    return names


def _group(learning_rate: float, weight_decay: float) -> dict[str, Any]:
    # The one parameter-group shape of the package: torch optimisers read "params", "lr" and
    # "weight_decay" and ignore "names", which says which parameters the group holds.
    return {"params": [], "names": [], "lr": float(learning_rate), "weight_decay": float(weight_decay)}


def weight_decay_groups(model: nn.Module, weight_decay: float, learning_rate: float) -> list[dict]:
    """Two AdamW parameter groups: decayed weights, and biases plus LayerNorm weights without decay.

    Args:
        model: the network; only trainable parameters are included.
        weight_decay: decoupled weight decay of the first group.
        learning_rate: learning rate of both groups.

    Returns:
        ``[{"params", "names", "lr", "weight_decay"}, {... "weight_decay": 0.0}]``; ``"names"``
        lists parameter names (the optimiser ignores it).

    Raises:
        ValueError: negative ``weight_decay``.

    Example:
        >>> groups = weight_decay_groups(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), 0.01, 1e-3)
        >>> groups[0]["names"], groups[1]["names"]
        (['0.weight'], ['0.bias', '1.weight', '1.bias'])
    """
    check_module("model", model)
    check_number("weight_decay", weight_decay, low=0.0)
    check_number("learning_rate", learning_rate, low=0.0)
    exempt = _no_decay_names(model)
    decay, no_decay = _group(learning_rate, weight_decay), _group(learning_rate, 0.0)
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        group = no_decay if name in exempt else decay
        group["params"].append(parameter)
        group["names"].append(name)
    return [decay, no_decay]


def linear_warmup_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """Linear warmup from 0 to the peak learning rate, then linear decay to 0 at ``total_steps``.

    The factor at step ``s`` is ``s / warmup`` during warmup and ``(total - s) / (total - warmup)``
    afterwards, the same as ``transformers.get_linear_schedule_with_warmup``.

    Args:
        optimizer: its groups' ``lr`` are the peak values.
        warmup_steps: steps of warmup (0 for none).
        total_steps: all optimiser steps of the run.

    Returns:
        A ``LambdaLR`` to step after every optimiser step (``fit(scheduler=...)`` does).

    Raises:
        ValueError: if ``total_steps < 1`` or ``warmup_steps`` is outside ``[0, total_steps]``.

    Example:
        >>> opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> s = linear_warmup_schedule(opt, warmup_steps=2, total_steps=10); s.get_last_lr()
        [0.0]
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    check_int("total_steps", total_steps)
    check_int("warmup_steps", warmup_steps, minimum=0)
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return LambdaLR(optimizer, factor)


_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def layerwise_lr_groups(model: nn.Module, learning_rate: float, decay: float, weight_decay: float = 0.0) -> list[dict]:
    """Layer-wise learning-rate decay for a BERT-like model: lower layers learn more slowly.

    Depth 0 is the embeddings, depth ``i + 1`` is ``encoder.layer.i`` and everything else (pooler,
    classification head) sits on top at depth ``L + 1``; a parameter at depth ``d`` gets
    ``learning_rate * decay ** (L + 1 - d)``. Biases and LayerNorm weights get no weight decay.

    Args:
        model: a BERT-like model (parameter names contain ``embeddings`` and ``layer.<i>.``).
        learning_rate: learning rate of the head.
        decay: factor per layer, in ``(0, 1]``.
        weight_decay: for the decayed parameters.

    Returns:
        AdamW parameter groups with ``params``, ``names``, ``lr``, ``weight_decay``, deepest last.

    Raises:
        ValueError: ``decay`` outside ``(0, 1]`` or no ``layer.<i>`` parameters found.

    Example:
        >>> # groups = layerwise_lr_groups(model, 5e-5, decay=0.9); torch.optim.AdamW(groups)
    """
    check_module("model", model)
    check_number("learning_rate", learning_rate, low=0.0)
    check_number("weight_decay", weight_decay, low=0.0)
    check_number("decay", decay)
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    indices = [int(m.group(1)) for n, _ in named if (m := _LAYER.search(n))]
    if not indices:
        raise ValueError("no parameters named like 'layer.<i>.' found: not a BERT-like model")
    num_layers = max(indices) + 1
    exempt = _no_decay_names(model)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, parameter in named:
        match = _LAYER.search(name)
        if match:
            depth = int(match.group(1)) + 1
        elif "embeddings" in name:
            depth = 0
        else:
            depth = num_layers + 1
        key = (depth, name in exempt)
        group = groups.setdefault(key, _group(learning_rate * decay ** (num_layers + 1 - depth),
                                              0.0 if key[1] else weight_decay))
        group["params"].append(parameter)
        group["names"].append(name)
    return [groups[key] for key in sorted(groups)]


def parameter_groups(
    model: nn.Module,
    learning_rates: dict[str, float],
    weight_decay: float = 0.0,
) -> list[dict]:
    """Build optimizer parameter groups, one learning rate per name prefix.

    Only trainable parameters are included. Every trainable parameter must fall under exactly one
    prefix, so none is silently trained with a default learning rate; ``""`` matches everything not
    matched by another prefix.

    Args:
        model: the network.
        learning_rates: ``{prefix: lr}``, e.g. ``{"features": 1e-5, "classifier": 1e-3}``.
        weight_decay: put in every group.

    Returns:
        One ``{"params", "names", "lr", "weight_decay"}`` group per prefix that matched.

    Raises:
        ValueError: if a trainable parameter matches no prefix, or a learning rate is not positive.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        >>> [g["lr"] for g in parameter_groups(net, {"0": 1e-4, "1": 1e-2})]
        [0.0001, 0.01]
    """
    check_module("model", model)
    if not isinstance(learning_rates, dict) or not learning_rates:
        raise TypeError(f"learning_rates must be a non-empty dict of prefix -> lr, got {learning_rates!r:.60}")
    check_number("weight_decay", weight_decay, low=0.0)
    for prefix, lr in learning_rates.items():
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
            raise ValueError(f"learning_rates: learning rate for {prefix!r} must be positive, got {lr!r}")
    specific = sorted((p for p in learning_rates if p), key=len, reverse=True)  # longest prefix wins
    buckets = {prefix: _group(lr, weight_decay) for prefix, lr in learning_rates.items()}
    unmatched = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        match = next((p for p in specific if name == p or name.startswith(p.rstrip(".") + ".")), None)
        if match is None and "" in learning_rates:
            match = ""
        if match is None:
            unmatched.append(name)
        else:
            buckets[match]["params"].append(parameter)
            buckets[match]["names"].append(name)
    if unmatched:
        raise ValueError(f"trainable parameters {unmatched[:5]} match no prefix in learning_rates {sorted(learning_rates)}; "
                         "add a prefix (or '' for the rest) or freeze them")
    return [group for group in buckets.values() if group["params"]]


def discriminative_learning_rates(
    blocks: Sequence[nn.Module], lowest: float, highest: float
) -> list[dict]:
    """Parameter groups whose learning rates grow geometrically from ``lowest`` to ``highest``.

    As fastai's ``slice(lowest, highest)``: the first block (closest to the input, most general)
    gets ``lowest``, the last block (usually the new head) gets ``highest``.

    Args:
        blocks: blocks in input-to-output order.
        lowest: learning rate of the first block.
        highest: learning rate of the last block.

    Returns:
        One ``{"params", "names", "lr", "weight_decay"}`` group (no weight decay) per block with
        trainable parameters; names are ``"<block index>.<parameter name>"``.

    Raises:
        ValueError: if there are no blocks or the rates are not ``0 < lowest <= highest``.

    Example:
        >>> groups = discriminative_learning_rates([nn.Linear(1, 1)] * 3, 1e-4, 1e-2)
        >>> [round(g["lr"], 6) for g in groups]
        [0.0001, 0.001, 0.01]
    """
    blocks = check_sequence("blocks", blocks, non_empty=False)
    if not blocks:
        raise ValueError("blocks is empty: expected at least one block")
    for index, block in enumerate(blocks):
        check_module(f"blocks[{index}]", block)
    check_number("lowest", lowest)
    check_number("highest", highest)
    if not 0 < lowest <= highest:
        raise ValueError(f"expected 0 < lowest <= highest, got lowest={lowest}, highest={highest}")
    count = len(blocks)
    groups = []
    for index, block in enumerate(blocks):
        fraction = index / (count - 1) if count > 1 else 1.0
        lr = lowest * (highest / lowest) ** fraction
        group = _group(lr, 0.0)
        for name, parameter in block.named_parameters():
            if parameter.requires_grad:
                group["params"].append(parameter)
                group["names"].append(f"{index}.{name}")
        if group["params"]:
            groups.append(group)
    return groups


FUSED_DEVICE_TYPES = ("cpu", "cuda")  # where torch.optim.AdamW(fused=True) has a kernel for float32


def adamw(groups: Sequence[dict], device: torch.device | str = "cpu") -> torch.optim.AdamW:
    """``torch.optim.AdamW`` over the non-empty ``groups``, fused on CPUs and CUDA GPUs.

    The fused kernel updates every tensor in one pass instead of a Python loop over them: the same
    update up to rounding, in a fraction of the time (on a CPU, several times faster for MiniLM).
    Each group carries its own ``lr`` and ``weight_decay``; empty groups (a frozen part) are dropped.

    Args:
        groups: parameter groups in this module's shape.
        device: where the model will train (decides ``fused``; the parameters may still be elsewhere).

    Returns:
        The optimiser.

    Raises:
        TypeError: ``groups`` is not a list (or is a generator such as ``model.parameters()``).
        ValueError: a group is not a dict with ``params`` and ``lr``, or every group is empty.

    Example:
        >>> net = nn.Linear(2, 2)
        >>> optimizer = adamw(weight_decay_groups(net, 0.01, 1e-3))
        >>> [group["weight_decay"] for group in optimizer.param_groups], optimizer.defaults["fused"]
        ([0.01, 0.0], True)
    """
    for group in check_sequence("groups", groups):
        if not isinstance(group, dict) or "params" not in group or "lr" not in group:
            raise ValueError(f"groups must be dicts with 'params' and 'lr', got {group!r:.80}")
    given, groups = len(groups), [group for group in groups if group["params"]]
    if not groups:
        raise ValueError(f"groups: every parameter group is empty (all {given} have 'params': []), nothing to train")
    fused = torch.device(device).type in FUSED_DEVICE_TYPES or None  # None: PyTorch's default elsewhere
    return torch.optim.AdamW(groups, lr=groups[0]["lr"], fused=fused)
