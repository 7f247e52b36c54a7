"""Fusing models in weight space: interpolation (WiSE-FT), model soups, the path between two networks."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from tlcourse.checks import check_module, check_number, check_sequence
from tlcourse.checkpoint import check_state_dict_matches
from tlcourse.train import evaluate


StateDict = Mapping[str, torch.Tensor]


def _check_list(state_dicts: Sequence[StateDict]) -> list[StateDict]:
    state_dicts = check_sequence("state_dicts", state_dicts)
    for index, state in enumerate(state_dicts):
        if not isinstance(state, Mapping):
            raise TypeError(f"state_dicts[{index}] must be a state dict (names -> tensors), got {type(state).__name__}")
    for index, state in enumerate(state_dicts[1:], start=1):
        check_compatible(state_dicts[0], state, names=("state_dicts[0]", f"state_dicts[{index}]"))
    return state_dicts


def check_compatible(first: StateDict, second: StateDict, names: tuple[str, str] = ("first", "second")) -> None:
    """Raise if two state dicts do not have the same keys and shapes."""
    for label, state in zip(names, (first, second)):
        if not isinstance(state, Mapping):
            raise TypeError(f"{label} must be a state dict (names -> tensors), got {type(state).__name__}")
    if set(first) != set(second):
        only_first = sorted(set(first) - set(second))[:5]
        only_second = sorted(set(second) - set(first))[:5]
        raise ValueError(f"mismatched keys: only in {names[0]}: {only_first}, only in {names[1]}: {only_second}")
    for key in first:
        if first[key].shape != second[key].shape:
            raise ValueError(f"mismatched shapes for {key!r}: {tuple(first[key].shape)} in {names[0]} "
                             f"vs {tuple(second[key].shape)} in {names[1]}")


def interpolate(pretrained: StateDict, finetuned: StateDict, alpha: float) -> dict[str, torch.Tensor]:
    r"""WiSE-FT: :math:`\theta(\alpha) = (1-\alpha)\,\theta_{pre} + \alpha\,\theta_{ft}`, key by key."""
    check_number("alpha", alpha)
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    check_compatible(pretrained, finetuned, names=("pretrained", "finetuned"))
    result: dict[str, torch.Tensor] = {}
    for key, start in pretrained.items():
        end = finetuned[key]
        if not start.is_floating_point():
            result[key] = (start if alpha < 0.5 else end).clone()
        elif alpha == 0.0 or alpha == 1.0:
            # exact copies at the ends: (1 - 1) * x + 1 * y may differ from y in the last bit
            result[key] = (start if alpha == 0.0 else end).clone()
        else:
            result[key] = torch.lerp(start, end.to(start.dtype), alpha)
    return result


def average_state_dicts(state_dicts: Sequence[StateDict], weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """Weighted average of state dicts; integer/bool buffers are copied from the first one."""
    state_dicts = _check_list(state_dicts)
    if weights is None:
        weight_tensor = torch.full((len(state_dicts),), 1.0 / len(state_dicts), dtype=torch.float64)
    else:
        weight_tensor = torch.as_tensor(list(weights), dtype=torch.float64)
        if weight_tensor.shape != (len(state_dicts),):
            raise ValueError(f"expected {len(state_dicts)} weights, got {tuple(weight_tensor.shape)}")
        if not bool(torch.isfinite(weight_tensor).all()) or (weight_tensor < 0).any() or weight_tensor.sum() <= 0:
            raise ValueError(f"weights must be finite and non-negative with a positive sum, got {weight_tensor.tolist()}")
        weight_tensor = weight_tensor / weight_tensor.sum()
    result: dict[str, torch.Tensor] = {}
    for key, first in state_dicts[0].items():
        if not first.is_floating_point():
            result[key] = first.clone()  # e.g. num_batches_tracked: no meaningful average
            continue
        total = torch.zeros_like(first, dtype=torch.float64)
        for weight, state in zip(weight_tensor, state_dicts):
            total += weight * state[key].to(torch.float64)
        result[key] = total.to(first.dtype)
    return result


def uniform_soup(state_dicts: Sequence[StateDict]) -> dict[str, torch.Tensor]:
    """The uniform model soup: the plain average of all ingredients (Wortsman et al., 2022)."""
    return average_state_dicts(state_dicts)


@dataclass(frozen=True)
class GreedySoupResult:
    """What :func:`greedy_soup` chose."""

    state_dict: dict[str, torch.Tensor]
    chosen: list[int]
    individual_scores: list[float]
    score: float


def greedy_soup(state_dicts: Sequence[StateDict], evaluate_fn: Callable[[StateDict], float]) -> GreedySoupResult:
    """Greedy soup: sort ingredients by validation score, add each one only if the soup does not get worse."""
    state_dicts = _check_list(state_dicts)
    scores = [_finite_score(evaluate_fn(state), f"state_dicts[{index}]") for index, state in enumerate(state_dicts)]
    order = sorted(range(len(state_dicts)), key=lambda index: -scores[index])
    chosen = [order[0]]
    best_score = scores[order[0]]
    soup = {key: value.clone() for key, value in state_dicts[order[0]].items()}
    for index in order[1:]:
        candidate = average_state_dicts([state_dicts[i] for i in chosen + [index]])
        candidate_score = _finite_score(evaluate_fn(candidate), f"the soup of {chosen + [index]}")
        if candidate_score >= best_score:
            chosen.append(index)
            best_score, soup = candidate_score, candidate
    return GreedySoupResult(state_dict=soup, chosen=chosen, individual_scores=scores, score=best_score)


def _finite_score(score: float, what: str) -> float:
    # A NaN score would compare False with everything and silently steer the greedy choice.
    value = float(score)
    if not math.isfinite(value):
        raise ValueError(f"evaluate_fn returned {value} for {what}: expected a finite score")
    return value


@torch.no_grad()
def state_dict_accuracy(model: nn.Module, state_dict: StateDict, loader: Iterable,
                        device: torch.device | str = "cpu") -> float:
    """Accuracy of ``model``'s architecture with the weights ``state_dict`` on ``loader``."""
    check_module("model", model)
    check_state_dict_matches(model, state_dict)  # CheckpointError naming keys and shapes, not torch's RuntimeError
    network = copy.deepcopy(model)
    network.load_state_dict(dict(state_dict))
    return float(evaluate(network, loader, device=device)["accuracy"])


def interpolation_path(model: nn.Module, start: StateDict, end: StateDict, alphas: Sequence[float],
                       loader: Iterable, device: torch.device | str = "cpu") -> list[dict[str, float]]:
    """Accuracy and loss of the single network ``(1 - alpha) * start + alpha * end`` for each alpha."""
    check_module("model", model)
    for index, alpha in enumerate(check_sequence("alphas", alphas)):
        check_number(f"alphas[{index}]", alpha, 0.0, 1.0)
    network = copy.deepcopy(model)
    rows = []
    for alpha in alphas:
        network.load_state_dict(interpolate(start, end, alpha))
        result = evaluate(network, loader, device=device)
        rows.append({"alpha": float(alpha), "accuracy": float(result["accuracy"]), "loss": float(result["loss"])})
    return rows
