"""Update rules written out as pure functions ``(parameters, gradients, state) -> (new parameters, new state)``,
so the math chapter can print one step; matched to :mod:`torch.optim` in the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from tlcourse.checks import check_number, check_sequence, check_tensor

__all__ = [
    "Tensors",
    "gradient_descent_step",
    "sgd_momentum_step",
    "AdamWState",
    "init_adamw_state",
    "adamw_step",
    "gradient_norms",
]

Tensors = Sequence[torch.Tensor]


def _check_pairs(parameters: Tensors, gradients: Tensors, learning_rate: float) -> None:
    """Raise unless parameters and gradients are lists of tensors that pair up by shape and lr is positive."""
    # a single tensor would be read row by row as if it were a list of parameters
    parameters, gradients = check_sequence("parameters", parameters), check_sequence("gradients", gradients)
    if len(parameters) != len(gradients):
        raise ValueError(f"got {len(parameters)} parameters but {len(gradients)} gradients")
    for index, (weight, grad) in enumerate(zip(parameters, gradients)):
        check_tensor(f"parameters[{index}]", weight)
        check_tensor(f"gradients[{index}]", grad)
        if weight.shape != grad.shape:
            raise ValueError(f"shape mismatch at position {index}: parameter "
                             f"{tuple(weight.shape)} vs gradient {tuple(grad.shape)}")
    check_number("learning_rate", learning_rate)  # a finite number: NaN and inf are refused
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")


def gradient_descent_step(parameters: Tensors, gradients: Tensors,
                          learning_rate: float) -> list[torch.Tensor]:
    """One step of plain gradient descent, ``w_{t+1} = w_t - lr * g_t``."""
    _check_pairs(parameters, gradients, learning_rate)
    return [weight.detach() - learning_rate * grad for weight, grad in zip(parameters, gradients)]


def sgd_momentum_step(parameters: Tensors, gradients: Tensors, buffers: Tensors | None,
                      learning_rate: float, momentum: float = 0.9, weight_decay: float = 0.0
                      ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One step of SGD with (heavy-ball) momentum, in PyTorch's convention.

    ``d = g + lambda w``; ``b = d`` on the first step, else ``b = mu b + d``; ``w = w - lr b``.
    """
    _check_pairs(parameters, gradients, learning_rate)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be non-negative, got {weight_decay}")
    if buffers is not None and len(buffers) != len(parameters):
        raise ValueError(f"got {len(buffers)} momentum buffers for {len(parameters)} parameters")
    new_parameters, new_buffers = [], []
    for index, (weight, grad) in enumerate(zip(parameters, gradients)):
        weight = weight.detach()
        direction = grad + weight_decay * weight
        buffer = direction.clone() if buffers is None else momentum * buffers[index] + direction
        new_parameters.append(weight - learning_rate * buffer)
        new_buffers.append(buffer)
    return new_parameters, new_buffers


@dataclass(frozen=True)
class AdamWState:
    """State of :func:`adamw_step`: the step count ``t`` and the moments ``m`` and ``v``, one tensor per parameter."""

    step: int
    first_moments: list[torch.Tensor]
    second_moments: list[torch.Tensor]


def init_adamw_state(parameters: Tensors) -> AdamWState:
    """Zero moments for ``parameters`` at step 0."""
    parameters = check_sequence("parameters", parameters)
    for index, weight in enumerate(parameters):
        check_tensor(f"parameters[{index}]", weight)
    return AdamWState(0, [torch.zeros_like(w) for w in parameters],
                      [torch.zeros_like(w) for w in parameters])


def adamw_step(parameters: Tensors, gradients: Tensors, state: AdamWState, learning_rate: float,
               betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               weight_decay: float = 0.01) -> tuple[list[torch.Tensor], AdamWState]:
    """One AdamW step (PyTorch's ``torch.optim.AdamW`` arithmetic).

    ``w <- w (1 - lr lambda)`` (decoupled decay, not seen by the moments), then
    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``w <- w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.
    """
    _check_pairs(parameters, gradients, learning_rate)
    beta1, beta2 = betas
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise ValueError(f"betas must be in [0, 1), got {betas}")
    if eps <= 0 or weight_decay < 0:
        raise ValueError(f"need eps > 0 and weight_decay >= 0, got {eps} and {weight_decay}")
    if len(state.first_moments) != len(parameters):
        raise ValueError(f"state holds {len(state.first_moments)} moments for "
                         f"{len(parameters)} parameters")
    step = state.step + 1
    correction1 = 1.0 - beta1 ** step  # bias corrections for the zero-initialised moments
    correction2 = 1.0 - beta2 ** step
    new_parameters, firsts, seconds = [], [], []
    for weight, grad, first, second in zip(parameters, gradients, state.first_moments,
                                           state.second_moments):
        weight = weight.detach() * (1.0 - learning_rate * weight_decay)
        first = beta1 * first + (1.0 - beta1) * grad
        second = beta2 * second + (1.0 - beta2) * grad * grad
        denominator = (second / correction2).sqrt() + eps
        new_parameters.append(weight - learning_rate * (first / correction1) / denominator)
        firsts.append(first)
        seconds.append(second)
    return new_parameters, AdamWState(step, firsts, seconds)


def gradient_norms(model: nn.Module, depth: int = 1, group: Callable[[str], str] | None = None,
                   relative: bool = False) -> dict[str, float]:
    """L2 norm of the gradient per group of parameters, after ``loss.backward()``.

    By default parameters are grouped by the first ``depth`` components of their dotted name
    (``depth=2`` turns ``_blocks.3.conv.weight`` into ``_blocks.3``), in the model's order;
    parameters without a gradient are skipped. ``relative=True`` divides by each group's weight
    norm: the relative change one plain gradient step of learning rate 1 would make.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    squares: dict[str, float] = {}
    weight_squares: dict[str, float] = {}
    for name, parameter in model.named_parameters():
        if parameter.grad is None:
            continue
        key = group(name) if group is not None else ".".join(name.split(".")[:depth])
        squares[key] = squares.get(key, 0.0) + float(parameter.grad.detach().pow(2).sum())
        weight_squares[key] = weight_squares.get(key, 0.0) + float(parameter.detach().pow(2).sum())
    if not squares:
        raise ValueError("no parameter has a gradient: call loss.backward() first")
    if relative:
        # a group whose weights are all zero (a zero-initialised head) has no finite ratio
        return {key: (value ** 0.5 / weight_squares[key] ** 0.5 if weight_squares[key] > 0
                      else float("inf")) for key, value in squares.items()}
    return {key: value ** 0.5 for key, value in squares.items()}
