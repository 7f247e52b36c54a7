"""Tests for tlcourse.chapters.math_optim: each rule matched step by step to torch.optim."""

from __future__ import annotations

import pytest
import torch

from tlcourse.chapters.math_optim import (
    adamw_step,
    gradient_descent_step,
    init_adamw_state,
    sgd_momentum_step,
)

SHAPES = [[(3,)], [(4, 5), (5,)], [(2, 3, 4), (1,), (7, 2)]]
STEPS = 6


def _problem(shapes: list[tuple[int, ...]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Starting parameters and a quadratic-plus-quartic loss's targets, float64."""
    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
    targets = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
    return start, targets


def _gradients(parameters: list[torch.Tensor], targets: list[torch.Tensor]) -> list[torch.Tensor]:
    leaves = [w.detach().clone().requires_grad_(True) for w in parameters]
    loss = sum(((w - t) ** 2).sum() + 0.1 * (w ** 4).sum() for w, t in zip(leaves, targets))
    return list(torch.autograd.grad(loss, leaves))


def _torch_trajectory(shapes, make_optimizer) -> list[list[torch.Tensor]]:
    start, targets = _problem(shapes)
    leaves = [w.clone().requires_grad_(True) for w in start]
    optimizer = make_optimizer(leaves)
    trajectory = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = sum(((w - t) ** 2).sum() + 0.1 * (w ** 4).sum() for w, t in zip(leaves, targets))
        loss.backward()
        optimizer.step()
        trajectory.append([w.detach().clone() for w in leaves])
    return trajectory


@pytest.mark.parametrize("shapes", SHAPES)
def test_gradient_descent_matches_torch_sgd(shapes) -> None:
    expected = _torch_trajectory(shapes, lambda p: torch.optim.SGD(p, lr=0.05))
    parameters, targets = _problem(shapes)
    for step in range(STEPS):
        parameters = gradient_descent_step(parameters, _gradients(parameters, targets), 0.05)
        for mine, theirs in zip(parameters, expected[step]):
            torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_momentum_matches_torch_sgd(shapes, weight_decay: float) -> None:
    expected = _torch_trajectory(
        shapes, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=weight_decay))
    parameters, targets = _problem(shapes)
    buffers = None
    for step in range(STEPS):
        parameters, buffers = sgd_momentum_step(parameters, _gradients(parameters, targets),
                                                buffers, 0.05, 0.9, weight_decay)
        for mine, theirs in zip(parameters, expected[step]):
            torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01, 0.5])
def test_adamw_matches_torch_adamw(shapes, weight_decay: float) -> None:
    expected = _torch_trajectory(
        shapes, lambda p: torch.optim.AdamW(p, lr=0.03, betas=(0.8, 0.99), eps=1e-8,
                                            weight_decay=weight_decay))
    parameters, targets = _problem(shapes)
    state = init_adamw_state(parameters)
    for step in range(STEPS):
        parameters, state = adamw_step(parameters, _gradients(parameters, targets), state, 0.03,
                                       (0.8, 0.99), 1e-8, weight_decay)
        for mine, theirs in zip(parameters, expected[step]):
            torch.testing.assert_close(mine, theirs)
    assert state.step == STEPS


def test_inputs_are_not_modified() -> None:
    weight = torch.ones(3)
    gradient_descent_step([weight], [torch.ones(3)], 0.1)
    adamw_step([weight], [torch.ones(3)], init_adamw_state([weight]), 0.1)
    torch.testing.assert_close(weight, torch.ones(3))


def test_bad_inputs_raise() -> None:
    w, g = [torch.ones(3)], [torch.ones(3)]
    with pytest.raises(ValueError, match="shape mismatch at position 0"):
        gradient_descent_step(w, [torch.ones(4)], 0.1)
    with pytest.raises(ValueError, match="1 parameters but 2 gradients"):
        gradient_descent_step(w, g + g, 0.1)
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        gradient_descent_step(w, g, 0.0)
    with pytest.raises(ValueError, match="momentum must be in"):
        sgd_momentum_step(w, g, None, 0.1, momentum=1.0)
    with pytest.raises(ValueError, match="momentum buffers"):
        sgd_momentum_step(w, g, [], 0.1)
    with pytest.raises(ValueError, match="betas must be in"):
        adamw_step(w, g, init_adamw_state(w), 0.1, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="state holds 1 moments"):
        adamw_step(w + w, g + g, init_adamw_state(w), 0.1)
    with pytest.raises(ValueError, match="parameters is empty"):  # as torch.optim: nothing to optimise
        init_adamw_state([])
    with pytest.raises(TypeError, match="parameters must be a list, got a torch.float32 tensor"):
        gradient_descent_step(torch.ones(3), torch.ones(3), 0.1)  # not read row by row


def test_gradient_norms_match_hand_computation() -> None:
    from tlcourse.chapters.math_optim import gradient_norms

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model(torch.randn(5, 3)).pow(2).sum().backward()
    norms = gradient_norms(model)
    expected0 = (model[0].weight.grad.pow(2).sum() + model[0].bias.grad.pow(2).sum()).sqrt()
    assert list(norms) == ["0", "2"]
    assert abs(norms["0"] - float(expected0)) < 1e-5
    assert set(gradient_norms(model, depth=2)) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    with pytest.raises(ValueError, match="depth must be at least 1"):
        gradient_norms(model, depth=0)
    with pytest.raises(ValueError, match="no parameter has a gradient"):
        gradient_norms(torch.nn.Linear(2, 2))


def test_gradient_norms_group_and_relative() -> None:
    from tlcourse.chapters.math_optim import gradient_norms

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model(torch.randn(5, 3)).sum().backward()
    merged = gradient_norms(model, group=lambda name: "all")
    every = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert abs(merged["all"] - float(every.norm())) < 1e-5
    relative = gradient_norms(model, relative=True)
    weight1 = torch.cat([model[1].weight.flatten(), model[1].bias.flatten()]).detach()
    grad1 = torch.cat([model[1].weight.grad.flatten(), model[1].bias.grad.flatten()])
    assert abs(relative["1"] - float(grad1.norm() / weight1.norm())) < 1e-5
