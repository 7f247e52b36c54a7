"""BERT's fine-tuning recipe: AdamW parameter groups, warmup then linear decay, one ``fine_tune`` call.

The optimiser set-up of Devlin et al. (2019) and of Hugging Face's ``run_glue_no_trainer.py``,
written out so that each choice can be read and tested:

* :func:`weight_decay_groups`: no weight decay on biases and normalisation weights;
* :func:`layerwise_lr_groups`: layer-wise learning-rate decay, lower layers learn more slowly;
* :func:`linear_warmup_schedule`: linear warmup, then linear decay to 0 at the last step;
* :func:`fine_tune`: all of the above around :func:`tlcourse.train.fit`, with gradient clipping.
"""
from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

__all__ = [
    "weight_decay_groups",
    "linear_warmup_schedule",
    "layerwise_lr_groups",
    "fine_tune",
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


def weight_decay_groups(model: nn.Module, weight_decay: float, learning_rate: float | None = None) -> list[dict]:
    """Two AdamW parameter groups: decayed weights, and biases plus LayerNorm weights without decay.

    Args:
        model: the network; only trainable parameters are included.
        weight_decay: decoupled weight decay of the first group.
        learning_rate: put in both groups when given (else the optimiser's default applies).

    Returns:
        ``[{"params", "names", "weight_decay"}, {... "weight_decay": 0.0}]``; the ``"names"`` entry
        lists parameter names (AdamW ignores it).

    Raises:
        ValueError: negative ``weight_decay``.

    Example:
        >>> groups = weight_decay_groups(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), 0.01)
        >>> groups[0]["names"], groups[1]["names"]
        (['0.weight'], ['0.bias', '1.weight', '1.bias'])
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    exempt = _no_decay_names(model)
    decay: dict[str, Any] = {"params": [], "names": [], "weight_decay": float(weight_decay)}
    no_decay: dict[str, Any] = {"params": [], "names": [], "weight_decay": 0.0}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        group = no_decay if name in exempt else decay
        group["params"].append(parameter)
        group["names"].append(name)
    groups = [decay, no_decay]
    if learning_rate is not None:
        for group in groups:
            group["lr"] = learning_rate
    return groups


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
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
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
        AdamW parameter groups with ``params``, ``names``, ``lr``, ``weight_decay``, ``depth``.

    Raises:
        ValueError: ``decay`` outside ``(0, 1]`` or no ``layer.<i>`` parameters found.

    Example:
        >>> # groups = layerwise_lr_groups(model, 5e-5, decay=0.9); torch.optim.AdamW(groups)
    """
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
        group = groups.setdefault(key, {
            "params": [], "names": [], "depth": depth,
            "lr": learning_rate * decay ** (num_layers + 1 - depth),
            "weight_decay": 0.0 if key[1] else float(weight_decay)})
        group["params"].append(parameter)
        group["names"].append(name)
    return [groups[key] for key in sorted(groups)]


def fine_tune(model: nn.Module, train_loader: Any, val_loader: Any, *, learning_rate: float, num_epochs: int,
              weight_decay: float = 0.01, warmup_fraction: float = 0.1, max_grad_norm: float | None = 1.0,
              max_steps_per_epoch: int | None = None, device: str = "cpu", mixed_precision: bool = False,
              metrics: dict[str, Any] | None = None, layerwise_decay: float | None = None) -> Any:
    """BERT's optimisation recipe around :func:`tlcourse.train.fit`.

    AdamW over :func:`weight_decay_groups` (only trainable parameters, so a frozen encoder makes
    this a linear probe), :func:`linear_warmup_schedule` over the run's real number of steps, and
    gradient clipping.

    Args:
        model: returns logits (or an object with ``.logits``) for a dict batch.
        train_loader: yields padded dict batches with ``"labels"``.
        val_loader: evaluated after every epoch.
        learning_rate: peak learning rate.
        num_epochs: epochs.
        weight_decay: decoupled decay of the non-exempt weights.
        warmup_fraction: share of all steps spent warming up, in ``[0, 1]``.
        max_grad_norm: clip the global gradient norm (``None``: no clipping).
        max_steps_per_epoch: cap on steps per epoch.
        device: where to train.
        mixed_precision: bf16/fp16 autocast in ``fit`` (CUDA only).
        metrics: extra validation metrics for ``fit``.
        layerwise_decay: when given, use :func:`layerwise_lr_groups` with this factor per layer
            (``learning_rate`` is then the head's rate); default: one rate for all.

    Returns:
        The :class:`tlcourse.train.History`.

    Raises:
        ValueError: ``warmup_fraction`` outside ``[0, 1]``, or whatever ``fit`` refuses.

    Example:
        >>> # history = fine_tune(model, train_loader, val_loader, learning_rate=5e-5, num_epochs=2)
    """
    from tlcourse.train import fit

    if not 0 <= warmup_fraction <= 1:
        raise ValueError(f"warmup_fraction must be in [0, 1], got {warmup_fraction}")
    steps_per_epoch = len(train_loader)
    if max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, max_steps_per_epoch)
    total_steps = max(1, steps_per_epoch * num_epochs)
    if layerwise_decay is None:
        groups = weight_decay_groups(model, weight_decay)
    else:
        groups = layerwise_lr_groups(model, learning_rate, layerwise_decay, weight_decay)
    # AdamW only takes its own keys; "names" and "depth" are for reading, not for the optimiser
    groups = [{k: v for k, v in g.items() if k not in ("names", "depth")} for g in groups]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=learning_rate)
    scheduler = linear_warmup_schedule(optimizer, int(warmup_fraction * total_steps), total_steps)
    return fit(model, train_loader, optimizer, num_epochs=num_epochs, val_loader=val_loader, scheduler=scheduler,
               device=device, mixed_precision=mixed_precision, max_grad_norm=max_grad_norm,
               max_steps_per_epoch=max_steps_per_epoch, metrics=metrics)
