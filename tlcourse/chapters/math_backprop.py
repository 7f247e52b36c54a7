"""Backpropagation by hand through ``linear -> tanh -> linear`` for the math chapter (tested against autograd)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from tlcourse.chapters.math_losses import softmax_cross_entropy, softmax_cross_entropy_gradient
from tlcourse.checks import check_tensor, describe

__all__ = ["TwoLayerCache", "two_layer_forward", "two_layer_backward"]


@dataclass(frozen=True)
class TwoLayerCache:
    """What :func:`two_layer_forward` keeps for the backward pass: ``x``, ``a = x W1^T + b1``, ``h = tanh(a)``, ``z``, ``y``."""

    inputs: torch.Tensor
    pre_activation: torch.Tensor
    hidden: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor


def two_layer_forward(inputs: torch.Tensor, labels: torch.Tensor,
                      weights: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, TwoLayerCache]:
    """``(loss, cache)``: the mean softmax cross-entropy of ``linear -> tanh -> linear``.

    ``weights`` maps ``"W1"`` ``(H, D)``, ``"b1"`` ``(H,)``, ``"W2"`` ``(K, H)``, ``"b2"`` ``(K,)``.
    """
    check_tensor("inputs", inputs)
    missing = {"W1", "b1", "W2", "b2"} - set(weights if isinstance(weights, Mapping) else ())
    if missing:
        raise ValueError(f"weights must map 'W1', 'b1', 'W2', 'b2' to tensors; missing {sorted(missing)}")
    for key in ("W1", "b1", "W2", "b2"):
        check_tensor(f"weights[{key!r}]", weights[key])
    w1, b1, w2, b2 = weights["W1"], weights["b1"], weights["W2"], weights["b2"]
    if inputs.dim() != 2 or w1.dim() != 2 or w2.dim() != 2:
        raise ValueError("inputs, W1 and W2 must be matrices")
    if w1.shape[1] != inputs.shape[1] or b1.shape != (w1.shape[0],) or w2.shape[1] != w1.shape[0] \
            or b2.shape != (w2.shape[0],):
        raise ValueError(
            f"inconsistent shapes: inputs {tuple(inputs.shape)}, W1 {tuple(w1.shape)}, "
            f"b1 {tuple(b1.shape)}, W2 {tuple(w2.shape)}, b2 {tuple(b2.shape)}"
        )
    pre_activation = inputs @ w1.T + b1  # (N, H)
    hidden = torch.tanh(pre_activation)  # (N, H)
    logits = hidden @ w2.T + b2  # (N, K)
    loss = softmax_cross_entropy(logits, labels)
    return loss, TwoLayerCache(inputs, pre_activation, hidden, logits, labels)


def two_layer_backward(cache: TwoLayerCache,
                       weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every gradient of the mean loss of :func:`two_layer_forward`, by the chain rule."""
    if not isinstance(cache, TwoLayerCache):
        raise TypeError(f"cache must be the TwoLayerCache from two_layer_forward, got {describe(cache)}")
    grad_logits = softmax_cross_entropy_gradient(cache.logits, cache.labels)  # (N, K), has 1/N
    grad_w2 = grad_logits.T @ cache.hidden  # (K, H)
    grad_b2 = grad_logits.sum(dim=0)  # (K,)
    grad_hidden = grad_logits @ weights["W2"]  # (N, H)
    grad_pre = grad_hidden * (1.0 - cache.hidden.pow(2))  # tanh'(a) = 1 - tanh(a)^2
    grad_w1 = grad_pre.T @ cache.inputs  # (H, D)
    grad_b1 = grad_pre.sum(dim=0)  # (H,)
    grad_inputs = grad_pre @ weights["W1"]  # (N, D)
    return {"logits": grad_logits, "W2": grad_w2, "b2": grad_b2, "hidden": grad_hidden,
            "pre_activation": grad_pre, "W1": grad_w1, "b1": grad_b1, "inputs": grad_inputs}
