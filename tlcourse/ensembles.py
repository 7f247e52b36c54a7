"""Fusing models in output space: ensembles of the models' predictions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from tlcourse.checks import check_sequence, check_tensor


def _stack_logits(logits_list: Sequence[torch.Tensor]) -> torch.Tensor:
    logits_list = check_sequence("logits_list", logits_list)
    for index, logits in enumerate(logits_list):
        check_tensor(f"logits_list[{index}]", logits)
    shapes = {tuple(logits.shape) for logits in logits_list}
    if len(shapes) != 1:
        raise ValueError(f"logits_list holds mismatched shapes of logits: {sorted(shapes)}")
    if logits_list[0].dim() != 2:
        raise ValueError(f"logits_list must hold logits of shape (N, C), got {tuple(logits_list[0].shape)}")
    return torch.stack([logits.float() for logits in logits_list])  # (M, N, C)


def average_probabilities(logits_list: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean of the models' softmax probabilities (the usual "average fusion" of classifiers)."""
    return _stack_logits(logits_list).softmax(dim=-1).mean(dim=0)


def average_logits(logits_list: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean of the models' logits (a geometric mean of probabilities after softmax)."""
    return _stack_logits(logits_list).mean(dim=0)


def weighted_ensemble(logits_list: Sequence[torch.Tensor], weights: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Weighted mean of the models' probabilities ("weighted fusion")."""
    stacked = _stack_logits(logits_list)
    weights = torch.as_tensor(weights, dtype=torch.float32).flatten()
    if weights.numel() != stacked.shape[0]:
        raise ValueError(f"expected {stacked.shape[0]} weights, got {weights.numel()}")
    if not bool(torch.isfinite(weights).all()) or (weights < 0).any() or abs(float(weights.sum()) - 1.0) > 1e-4:
        raise ValueError(f"weights must be non-negative and sum to 1, got {weights.tolist()}")
    return torch.einsum("m,mnc->nc", weights, stacked.softmax(dim=-1))


def fit_ensemble_weights(val_logits_list: Sequence[torch.Tensor], val_targets: torch.Tensor,
                         num_steps: int = 300, learning_rate: float = 0.1) -> torch.Tensor:
    """Fit ensemble weights on a validation split by minimising the NLL of the weighted mean of probabilities."""
    # clone: logits from ``predict`` are inference-mode tensors, which autograd cannot save
    stacked = _stack_logits(val_logits_list).detach().clone()
    val_targets = torch.as_tensor(val_targets).long().flatten().clone()
    if val_targets.numel() != stacked.shape[1]:
        raise ValueError(f"val_targets must hold {stacked.shape[1]} targets, one per example, got {val_targets.numel()}")
    log_probabilities = stacked.log_softmax(dim=-1)  # (M, N, C)
    raw = torch.zeros(stacked.shape[0], requires_grad=True)
    optimizer = torch.optim.Adam([raw], lr=learning_rate)
    for _ in range(num_steps):
        optimizer.zero_grad()
        # log sum_m w_m p_m, computed stably in log space: (N, C)
        mixed = torch.logsumexp(raw.log_softmax(dim=0)[:, None, None] + log_probabilities, dim=0)
        loss = F.nll_loss(mixed, val_targets)
        loss.backward()
        optimizer.step()
    return raw.detach().softmax(dim=0)
