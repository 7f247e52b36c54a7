"""Fusing models: in weight space (interpolation, model soups) and in output space (ensembles).

Weight-space functions work on state dicts (``name -> tensor``), so they do not care which
architecture produced them, only that every input has the same keys and shapes.

Buffers are handled deliberately:

- floating-point tensors (weights, biases, BatchNorm ``running_mean`` / ``running_var``) are
  averaged or interpolated like any parameter. Averaged running statistics are only an
  approximation of the statistics of the averaged network; :func:`recompute_batchnorm_statistics`
  re-estimates them from data when that matters.
- integer and boolean tensors (BatchNorm ``num_batches_tracked``, index buffers) cannot be
  averaged meaningfully; they are copied from the first state dict (for :func:`interpolate`, from
  ``pretrained`` when ``alpha < 0.5`` and from ``finetuned`` otherwise, so both ends are exact).

Output-space functions take a list of logits tensors of shape ``(N, C)``, one per model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tlcourse.train import evaluate

__all__ = [
    "StateDict",
    "FusionConfig",
    "GreedySoupResult",
    "experiment_config",
    "check_compatible",
    "interpolate",
    "average_state_dicts",
    "uniform_soup",
    "greedy_soup",
    "average_probabilities",
    "average_logits",
    "weighted_ensemble",
    "fit_ensemble_weights",
    "recompute_batchnorm_statistics",
    "state_dict_accuracy",
    "make_digit_mlp",
    "permute_hidden_units",
]

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class FusionConfig:
    """Sizes of the fusion chapter's experiments for one profile.

    Attributes:
        pretrain_epochs: epochs of pretraining on digits 0-4.
        finetune_epochs: epochs of each fine-tuning run on digits 5-9.
        probe_epochs: epochs of the linear probe (head only).
        max_steps_per_epoch: cap on steps per epoch (``None``: no cap).
        num_soup_runs: fine-tuning runs (seeds and learning rates) that go into the soups.
        num_alphas: interpolation coefficients in the WiSE-FT sweep.
        hidden_size: width of the MLP's hidden layers.
        rotation_degrees: rotation of the shifted test set.
        barrier_hidden_size: width of the narrow MLP of the loss-barrier experiment (narrow
            networks show the barrier between basins most clearly).
        barrier_epochs: epochs of each narrow MLP trained from a random initialisation.
        num_barrier_models: narrow MLPs trained from random initialisations (every pair is
            interpolated), and random permutations of the fine-tuned one.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> experiment_config(get_profile("smoke")).num_alphas
        11
    """

    pretrain_epochs: int
    finetune_epochs: int
    probe_epochs: int
    max_steps_per_epoch: int | None
    num_soup_runs: int
    num_alphas: int
    hidden_size: int
    rotation_degrees: float
    barrier_hidden_size: int
    barrier_epochs: int
    num_barrier_models: int


def experiment_config(profile) -> FusionConfig:
    """Choose the chapter's sizes from a profile.

    Args:
        profile: a :class:`tlcourse.profiles.Profile`.

    Returns:
        The :class:`FusionConfig` for ``profile.name`` (``gpu`` and unknown names get the ``cpu``
        sizes scaled up a little; the experiment is small on purpose).

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> experiment_config(get_profile("cpu")).num_soup_runs
        5
    """
    if profile.name == "smoke":
        return FusionConfig(pretrain_epochs=1, finetune_epochs=1, probe_epochs=1,
                            max_steps_per_epoch=profile.max_steps_per_epoch, num_soup_runs=4, num_alphas=11,
                            hidden_size=64, rotation_degrees=35.0, barrier_hidden_size=16, barrier_epochs=1,
                            num_barrier_models=2)
    if profile.name == "cpu":
        return FusionConfig(pretrain_epochs=6, finetune_epochs=4, probe_epochs=3, max_steps_per_epoch=None,
                            num_soup_runs=5, num_alphas=11, hidden_size=256, rotation_degrees=35.0,
                            barrier_hidden_size=16, barrier_epochs=15, num_barrier_models=3)
    return FusionConfig(pretrain_epochs=10, finetune_epochs=6, probe_epochs=4, max_steps_per_epoch=None,
                        num_soup_runs=6, num_alphas=21, hidden_size=512, rotation_degrees=35.0,
                        barrier_hidden_size=16, barrier_epochs=20, num_barrier_models=4)


def _check_list(state_dicts: Sequence[StateDict]) -> list[StateDict]:
    state_dicts = list(state_dicts)
    if not state_dicts:
        raise ValueError("expected at least one state dict, got an empty list")
    for index, state in enumerate(state_dicts[1:], start=1):
        check_compatible(state_dicts[0], state, names=("state_dicts[0]", f"state_dicts[{index}]"))
    return state_dicts


def check_compatible(first: StateDict, second: StateDict, names: tuple[str, str] = ("first", "second")) -> None:
    """Raise if two state dicts do not have the same keys and shapes.

    Args:
        first: a state dict.
        second: another state dict.
        names: how to call them in the error message.

    Raises:
        ValueError: on different key sets (the message lists some missing keys) or a shape mismatch.

    Example:
        >>> check_compatible({"w": torch.zeros(2)}, {"w": torch.ones(2)})
    """
    if set(first) != set(second):
        only_first = sorted(set(first) - set(second))[:5]
        only_second = sorted(set(second) - set(first))[:5]
        raise ValueError(f"mismatched keys: only in {names[0]}: {only_first}, only in {names[1]}: {only_second}")
    for key in first:
        if first[key].shape != second[key].shape:
            raise ValueError(f"mismatched shapes for {key!r}: {tuple(first[key].shape)} in {names[0]} "
                             f"vs {tuple(second[key].shape)} in {names[1]}")


def interpolate(pretrained: StateDict, finetuned: StateDict, alpha: float) -> dict[str, torch.Tensor]:
    r"""WiSE-FT: :math:`\theta(\alpha) = (1-\alpha)\,\theta_{pre} + \alpha\,\theta_{ft}`, key by key.

    Args:
        pretrained: the ``alpha = 0`` end (e.g. pretrained body with a linear-probe head).
        finetuned: the ``alpha = 1`` end; same keys and shapes.
        alpha: in ``[0, 1]``.

    Returns:
        A new state dict. Integer/bool buffers are copied from the nearer end, so ``alpha=0`` and
        ``alpha=1`` give back the inputs exactly.

    Raises:
        ValueError: for ``alpha`` outside ``[0, 1]``, mismatched keys or shapes.

    Example:
        >>> interpolate({"w": torch.zeros(2)}, {"w": torch.ones(2)}, 0.25)["w"]
        tensor([0.2500, 0.2500])
    """
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
    """Weighted average of state dicts; integer/bool buffers are copied from the first one.

    Args:
        state_dicts: one or more compatible state dicts.
        weights: non-negative, one per state dict; normalised to sum to 1. Default: uniform.

    Returns:
        The averaged state dict (float tensors averaged in float64 then cast back).

    Raises:
        ValueError: for an empty list, mismatched keys/shapes, or bad weights.

    Example:
        >>> average_state_dicts([{"w": torch.zeros(1)}, {"w": torch.ones(1)}])["w"]
        tensor([0.5000])
    """
    state_dicts = _check_list(state_dicts)
    if weights is None:
        weight_tensor = torch.full((len(state_dicts),), 1.0 / len(state_dicts), dtype=torch.float64)
    else:
        weight_tensor = torch.as_tensor(list(weights), dtype=torch.float64)
        if weight_tensor.shape != (len(state_dicts),):
            raise ValueError(f"expected {len(state_dicts)} weights, got {tuple(weight_tensor.shape)}")
        if (weight_tensor < 0).any() or weight_tensor.sum() <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
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
    """The uniform model soup: the plain average of all ingredients (Wortsman et al., 2022).

    Args:
        state_dicts: fine-tuned from the same pretrained start.

    Returns:
        The averaged state dict.

    Raises:
        ValueError: for an empty list or mismatched keys/shapes.

    Example:
        >>> uniform_soup([{"w": torch.tensor([1.0])}, {"w": torch.tensor([3.0])}])["w"]
        tensor([2.])
    """
    return average_state_dicts(state_dicts)


@dataclass(frozen=True)
class GreedySoupResult:
    """What :func:`greedy_soup` chose.

    Attributes:
        state_dict: the greedy soup.
        chosen: indices (into the input list) of the ingredients kept, in the order added.
        individual_scores: validation score of each input model.
        score: validation score of the soup.
    """

    state_dict: dict[str, torch.Tensor]
    chosen: list[int]
    individual_scores: list[float]
    score: float


def greedy_soup(state_dicts: Sequence[StateDict], evaluate_fn: Callable[[StateDict], float]) -> GreedySoupResult:
    """Greedy soup: sort ingredients by validation score, add each one only if the soup does not get worse.

    Starting from the best single model, the soup's score on the validation set never drops
    below that model's score, because an ingredient is kept only if the score stays or improves.

    Args:
        state_dicts: compatible state dicts fine-tuned from the same start.
        evaluate_fn: maps a state dict to a validation score, higher is better (e.g. accuracy).
            Must be computed on held-out validation data, never on the test set.

    Returns:
        A :class:`GreedySoupResult`.

    Raises:
        ValueError: for an empty list or mismatched keys/shapes.

    Example:
        >>> result = greedy_soup([{"w": torch.ones(1)}, {"w": -torch.ones(1)}], lambda s: float(s["w"]))
        >>> result.chosen
        [0]
    """
    state_dicts = _check_list(state_dicts)
    scores = [float(evaluate_fn(state)) for state in state_dicts]
    order = sorted(range(len(state_dicts)), key=lambda index: -scores[index])
    chosen = [order[0]]
    best_score = scores[order[0]]
    soup = {key: value.clone() for key, value in state_dicts[order[0]].items()}
    for index in order[1:]:
        candidate = average_state_dicts([state_dicts[i] for i in chosen + [index]])
        candidate_score = float(evaluate_fn(candidate))
        if candidate_score >= best_score:
            chosen.append(index)
            best_score, soup = candidate_score, candidate
    return GreedySoupResult(state_dict=soup, chosen=chosen, individual_scores=scores, score=best_score)


def _stack_logits(logits_list: Sequence[torch.Tensor]) -> torch.Tensor:
    logits_list = list(logits_list)
    if not logits_list:
        raise ValueError("expected at least one logits tensor, got an empty list")
    shapes = {tuple(logits.shape) for logits in logits_list}
    if len(shapes) != 1:
        raise ValueError(f"mismatched shapes of logits: {sorted(shapes)}")
    if logits_list[0].dim() != 2:
        raise ValueError(f"expected logits of shape (N, C), got {tuple(logits_list[0].shape)}")
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
    if (weights < 0).any() or abs(float(weights.sum()) - 1.0) > 1e-4:
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
        raise ValueError(f"expected {stacked.shape[1]} targets, got {val_targets.numel()}")
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


@torch.no_grad()
def recompute_batchnorm_statistics(model: nn.Module, loader: Iterable, device: torch.device | str = "cpu") -> nn.Module:
    """Re-estimate BatchNorm running statistics of a fused model from data (in place).

    Averaged running means/variances are not the statistics of the averaged network; one pass
    over training data with cumulative averaging (``momentum=None``) fixes that.

    Args:
        model: a network, possibly with BatchNorm layers (without any, nothing changes).
        loader: yields ``(inputs, targets)`` batches; targets are ignored.
        device: where to run.

    Returns:
        ``model``, in eval mode.

    Example:
        >>> net = nn.Sequential(nn.BatchNorm1d(2))
        >>> _ = recompute_batchnorm_statistics(net, [(torch.ones(4, 2), None)])
        >>> net[0].running_mean
        tensor([1., 1.])
    """
    norms = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model.eval()
    momenta = [module.momentum for module in norms]
    for module in norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative moving average over the whole pass
    model.to(device).train()
    for inputs, _ in loader:
        model(inputs.to(device))
    for module, momentum in zip(norms, momenta):
        module.momentum = momentum
    return model.eval()


def state_dict_accuracy(model: nn.Module, state_dict: StateDict, loader: Iterable,
                        device: torch.device | str = "cpu") -> float:
    """Accuracy of ``model``'s architecture with the weights ``state_dict`` on ``loader``.

    Args:
        model: a template network; it is copied, not modified.
        state_dict: weights to load (strictly).
        loader: evaluation batches.
        device: where to evaluate.

    Returns:
        Accuracy in ``[0, 1]``.

    Example:
        >>> net = nn.Linear(2, 2)
        >>> 0 <= state_dict_accuracy(net, net.state_dict(), [(torch.ones(3, 2), torch.zeros(3, dtype=torch.long))]) <= 1
        True
    """
    network = copy.deepcopy(model)
    network.load_state_dict(dict(state_dict))
    return float(evaluate(network, loader, device=device)["accuracy"])


def make_digit_mlp(num_classes: int, hidden_size: int = 256) -> nn.Sequential:
    """A small MLP for 28x28 digits with a ``body`` and a ``head`` (so the head can be swapped).

    Args:
        num_classes: outputs of the linear head.
        hidden_size: width of the two hidden layers.

    Returns:
        ``nn.Sequential`` with submodules ``body`` (flatten, two ReLU layers) and ``head``.

    Example:
        >>> make_digit_mlp(5, 16)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 5])
    """
    from collections import OrderedDict

    body = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden_size), nn.ReLU(),
                         nn.Linear(hidden_size, hidden_size), nn.ReLU())
    return nn.Sequential(OrderedDict(body=body, head=nn.Linear(hidden_size, num_classes)))


_MLP_KEYS = ("body.1.weight", "body.1.bias", "body.3.weight", "body.3.bias", "head.weight", "head.bias")


def _check_permutation(permutation: torch.Tensor, size: int, name: str) -> torch.Tensor:
    permutation = torch.as_tensor(permutation)
    if permutation.dtype not in (torch.int32, torch.int64) or permutation.shape != (size,):
        raise ValueError(f"{name} must be an integer tensor of shape ({size},), "
                         f"got {permutation.dtype} of shape {tuple(permutation.shape)}")
    if not torch.equal(permutation.sort().values, torch.arange(size, dtype=permutation.dtype)):
        raise ValueError(f"{name} must be a permutation of 0..{size - 1}, got {permutation.tolist()[:8]}...")
    return permutation.long()


def permute_hidden_units(model_or_state: nn.Module | StateDict,
                         permutations: tuple[torch.Tensor, torch.Tensor] | None = None,
                         generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    r"""Reorder the hidden units of a :func:`make_digit_mlp` network without changing its function.

    With :math:`h_1 = \mathrm{relu}(W_1 x + b_1)`, :math:`h_2 = \mathrm{relu}(W_2 h_1 + b_2)` and
    logits :math:`W_3 h_2 + b_3`, permutation matrices :math:`P, Q` give the same network as
    :math:`(P W_1, P b_1)`, :math:`(Q W_2 P^\top, Q b_2)`, :math:`(W_3 Q^\top, b_3)`: rows of
    layer 1 and columns of layer 2 are reordered together, rows of layer 2 and columns of the head
    together. The outputs are equal, but the weights are a different point in weight space.

    Args:
        model_or_state: a network built by :func:`make_digit_mlp`, or its state dict (keys
            ``body.1.*``, ``body.3.*``, ``head.*``).
        permutations: ``(first, second)``: int tensors, permutations of the units of the first
            and second hidden layer. Default: random ones drawn with ``generator``.
        generator: random source for the default permutations (``None``: the global one).

    Returns:
        A new state dict with the same keys and shapes.

    Raises:
        ValueError: if a key of the MLP is missing or an unexpected key is present, if the shapes
            do not chain, or if ``permutations`` are not permutations of the right size.

    Example:
        >>> net = make_digit_mlp(3, hidden_size=4)
        >>> permuted = make_digit_mlp(3, hidden_size=4)
        >>> _ = permuted.load_state_dict(permute_hidden_units(net, generator=torch.Generator().manual_seed(0)))
        >>> x = torch.randn(2, 1, 28, 28)
        >>> torch.allclose(net(x), permuted(x), atol=1e-6)
        True
    """
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    if not isinstance(state, Mapping):
        raise TypeError(f"expected an nn.Module or a state dict, got {type(model_or_state).__name__}")
    for key in _MLP_KEYS:
        if key not in state:
            raise ValueError(f"not a make_digit_mlp state dict: missing key {key!r} (expected {list(_MLP_KEYS)})")
    unexpected = sorted(set(state) - set(_MLP_KEYS))
    if unexpected:
        raise ValueError(f"not a make_digit_mlp state dict: unexpected keys {unexpected[:5]}")
    first_size, second_size = state["body.1.weight"].shape[0], state["body.3.weight"].shape[0]
    if (state["body.3.weight"].shape[1] != first_size or state["head.weight"].shape[1] != second_size
            or state["body.1.bias"].shape != (first_size,) or state["body.3.bias"].shape != (second_size,)):
        raise ValueError("hidden sizes do not chain: "
                         + ", ".join(f"{key} {tuple(state[key].shape)}" for key in _MLP_KEYS))
    if permutations is None:
        permutations = (torch.randperm(first_size, generator=generator),
                        torch.randperm(second_size, generator=generator))
    if len(permutations) != 2:
        raise ValueError(f"expected two permutations (one per hidden layer), got {len(permutations)}")
    first = _check_permutation(permutations[0], first_size, "permutations[0]")
    second = _check_permutation(permutations[1], second_size, "permutations[1]")
    return {
        "body.1.weight": state["body.1.weight"][first].clone(),
        "body.1.bias": state["body.1.bias"][first].clone(),
        "body.3.weight": state["body.3.weight"][second][:, first].clone(),
        "body.3.bias": state["body.3.bias"][second].clone(),
        "head.weight": state["head.weight"][:, second].clone(),
        "head.bias": state["head.bias"].clone(),
    }
