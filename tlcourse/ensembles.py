"""Fusing models in output space: ensembles of the models' predictions.

Every function takes a list of ``M`` logits tensors of shape ``(N, C)``, one per model, on the same
``N`` examples: :func:`average_probabilities` and :func:`average_logits` fuse them with equal
weights, :func:`weighted_ensemble` with weights that :func:`fit_ensemble_weights` fits on a
validation split. Weight-space fusion (interpolation, model soups) is in :mod:`tlcourse.fusion`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from tlcourse.checks import check_sequence, check_tensor

__all__ = ["average_probabilities", "average_logits", "weighted_ensemble", "fit_ensemble_weights"]

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
    """Mean of the models' softmax probabilities (the usual "average fusion" of classifiers).

    Args:
        logits_list: ``M`` tensors of shape ``(N, C)``.

    Returns:
        Probabilities of shape ``(N, C)``; rows sum to 1.

    Raises:
        ValueError: for an empty list or mismatched shapes.

    Example:
        >>> average_probabilities([torch.zeros(1, 2)])
        tensor([[0.5000, 0.5000]])
    """
    return _stack_logits(logits_list).softmax(dim=-1).mean(dim=0)


def average_logits(logits_list: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean of the models' logits (a geometric mean of probabilities after softmax).

    Args:
        logits_list: ``M`` tensors of shape ``(N, C)``.

    Returns:
        Logits of shape ``(N, C)``.

    Raises:
        ValueError: for an empty list or mismatched shapes.

    Example:
        >>> average_logits([torch.zeros(1, 2), 2 * torch.ones(1, 2)])
        tensor([[1., 1.]])
    """
    return _stack_logits(logits_list).mean(dim=0)


def weighted_ensemble(logits_list: Sequence[torch.Tensor], weights: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Weighted mean of the models' probabilities ("weighted fusion").

    Args:
        logits_list: ``M`` tensors of shape ``(N, C)``.
        weights: ``M`` non-negative weights summing to 1 (e.g. from :func:`fit_ensemble_weights`).

    Returns:
        Probabilities of shape ``(N, C)``.

    Raises:
        ValueError: for an empty list, mismatched shapes, or weights that are negative, of the
            wrong length or do not sum to 1.

    Example:
        >>> weighted_ensemble([torch.zeros(1, 2), torch.tensor([[0.0, 100.0]])], [0.5, 0.5])
        tensor([[0.2500, 0.7500]])
    """
    stacked = _stack_logits(logits_list)
    weights = torch.as_tensor(weights, dtype=torch.float32).flatten()
    if weights.numel() != stacked.shape[0]:
        raise ValueError(f"expected {stacked.shape[0]} weights, got {weights.numel()}")
    if not bool(torch.isfinite(weights).all()) or (weights < 0).any() or abs(float(weights.sum()) - 1.0) > 1e-4:
        raise ValueError(f"weights must be non-negative and sum to 1, got {weights.tolist()}")
    return torch.einsum("m,mnc->nc", weights, stacked.softmax(dim=-1))


def fit_ensemble_weights(val_logits_list: Sequence[torch.Tensor], val_targets: torch.Tensor,
                         num_steps: int = 300, learning_rate: float = 0.1) -> torch.Tensor:
    """Fit ensemble weights on a validation split by minimising the NLL of the weighted mean of probabilities.

    The weights are ``softmax(w)`` of free parameters ``w`` (initialised to zero, i.e. uniform),
    so they are non-negative and sum to 1 by construction. Fit them on validation data only; the
    test set must never see this step.

    Args:
        val_logits_list: ``M`` validation logits tensors of shape ``(N, C)``.
        val_targets: int64 labels of shape ``(N,)``.
        num_steps: Adam steps.
        learning_rate: Adam step size.

    Returns:
        A float tensor of ``M`` weights, non-negative, summing to 1.

    Raises:
        ValueError: for an empty list, mismatched shapes, or targets of the wrong length.

    Example:
        >>> good = torch.tensor([[5.0, 0.0]] * 4); bad = -good
        >>> fit_ensemble_weights([good, bad], torch.zeros(4, dtype=torch.long))[0] > 0.9
        tensor(True)
    """
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
