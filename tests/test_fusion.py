"""Tests of tlcourse.fusion (weight-space fusion) against hand computations and torch references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlcourse.fusion import (
    average_state_dicts,
    greedy_soup,
    interpolate,
    interpolation_path,
    state_dict_accuracy,
    uniform_soup,
)


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def _trained_state(seed: int) -> dict[str, torch.Tensor]:
    net = _net(seed)
    net.train()
    net(torch.randn(8, 3))  # moves running stats and num_batches_tracked
    return {key: value.clone() for key, value in net.state_dict().items()}


def test_interpolate_ends_are_exact() -> None:
    first, second = _trained_state(0), _trained_state(1)
    second["1.num_batches_tracked"] = torch.tensor(7)
    at_zero, at_one = interpolate(first, second, 0.0), interpolate(first, second, 1.0)
    for key in first:
        assert torch.equal(at_zero[key], first[key])
        assert torch.equal(at_one[key], second[key])


def test_interpolate_midpoint_matches_hand_formula() -> None:
    first, second = _trained_state(0), _trained_state(1)
    mixed = interpolate(first, second, 0.3)
    for key in first:
        if first[key].is_floating_point():
            torch.testing.assert_close(mixed[key], 0.7 * first[key] + 0.3 * second[key])
        else:
            assert torch.equal(mixed[key], first[key])  # integer buffers from the nearer end


def test_soup_of_identical_models_is_the_model() -> None:
    state = _trained_state(0)
    soup = uniform_soup([state, state, state])
    for key in state:
        torch.testing.assert_close(soup[key], state[key], rtol=0, atol=1e-7)
        assert soup[key].dtype == state[key].dtype


def test_uniform_soup_matches_torch_mean() -> None:
    states = [_trained_state(seed) for seed in range(3)]
    soup = uniform_soup(states)
    for key in states[0]:
        if states[0][key].is_floating_point():
            torch.testing.assert_close(soup[key], torch.stack([s[key] for s in states]).mean(0))
        else:
            assert torch.equal(soup[key], states[0][key])


def test_weighted_average_state_dicts() -> None:
    states = [{"w": torch.tensor([0.0])}, {"w": torch.tensor([4.0])}]
    torch.testing.assert_close(average_state_dicts(states, [3.0, 1.0])["w"], torch.tensor([1.0]))


def test_greedy_soup_never_worse_than_best_single_on_validation() -> None:
    torch.manual_seed(0)
    inputs, targets = torch.randn(64, 3), torch.randint(0, 2, (64,))
    states = [_trained_state(seed) for seed in range(5)]
    template = _net(0).eval()

    def accuracy(state: dict[str, torch.Tensor]) -> float:
        template.load_state_dict(state)
        with torch.no_grad():
            return float((template(inputs).argmax(1) == targets).float().mean())

    result = greedy_soup(states, accuracy)
    best_single = max(accuracy(state) for state in states)
    assert result.score >= best_single
    assert accuracy(result.state_dict) == pytest.approx(result.score)
    assert result.individual_scores[result.chosen[0]] == best_single


def test_bad_inputs_raise() -> None:
    first = {"w": torch.zeros(2), "b": torch.zeros(1)}
    with pytest.raises(ValueError, match="mismatched keys"):
        interpolate(first, {"w": torch.zeros(2)}, 0.5)
    with pytest.raises(ValueError, match="mismatched shapes"):
        uniform_soup([first, {"w": torch.zeros(3), "b": torch.zeros(1)}])
    with pytest.raises(ValueError, match="state_dicts is empty: expected at least one element"):
        uniform_soup([])
    with pytest.raises(ValueError, match="state_dicts is empty"):
        greedy_soup([], lambda state: 0.0)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        interpolate(first, first, 1.5)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        interpolate(first, first, -0.1)


def test_interpolation_path_matches_loading_each_point_by_hand() -> None:
    start, end = _net(0).eval(), _net(1).eval()
    generator = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 3, generator=generator), torch.randint(2, (16,), generator=generator))]
    template = _net(2).eval()
    before = {k: v.clone() for k, v in template.state_dict().items()}
    rows = interpolation_path(template, start.state_dict(), end.state_dict(), [0.0, 0.3, 1.0], data)
    assert [row["alpha"] for row in rows] == [0.0, 0.3, 1.0]
    for row in rows:
        manual = _net(3).eval()
        manual.load_state_dict(interpolate(start.state_dict(), end.state_dict(), row["alpha"]))
        with torch.no_grad():
            logits = manual(data[0][0])
        assert row["loss"] == pytest.approx(F.cross_entropy(logits, data[0][1]).item(), rel=1e-6)
        assert row["accuracy"] == state_dict_accuracy(manual, manual.state_dict(), data)
    for key, value in template.state_dict().items():  # the template is not modified
        assert torch.equal(value, before[key])
    with pytest.raises(ValueError, match="alpha"):
        interpolation_path(template, start.state_dict(), end.state_dict(), [1.5], data)


def test_non_finite_weights_and_scores_are_refused() -> None:
    import math

    from tlcourse.fusion import average_state_dicts, greedy_soup

    states = [{"w": torch.zeros(2)}, {"w": torch.ones(2)}]
    with pytest.raises(ValueError, match=r"weights must be finite and non-negative with a positive sum, got \[nan, 1.0\]"):
        average_state_dicts(states, [math.nan, 1.0])
    with pytest.raises(ValueError, match="weights must be finite.*inf"):
        average_state_dicts(states, [math.inf, 1.0])
    with pytest.raises(ValueError, match=r"evaluate_fn returned nan for state_dicts\[1\]: expected a finite score"):
        greedy_soup(states, lambda state: math.nan if float(state["w"][0]) == 1.0 else 0.5)
    with pytest.raises(ValueError, match=r"evaluate_fn returned nan for the soup of \[1, 0\]"):
        greedy_soup(states, lambda state: {0.0: 0.5, 1.0: 0.7}.get(float(state["w"][0]), math.nan))


@pytest.mark.parametrize("call, error, message", [
    (lambda: uniform_soup(None), TypeError, "state_dicts must be a list, got NoneType"),
    (lambda: uniform_soup([]), ValueError, "state_dicts is empty"),
    (lambda: uniform_soup([{"w": torch.ones(1)}, [1.0]]), TypeError, r"state_dicts\[1\] must be a state dict"),
    (lambda: interpolate({"w": torch.ones(1)}, {"w": torch.ones(1)}, None), TypeError, "alpha must be a number, got NoneType"),
    (lambda: interpolate({"w": torch.ones(1)}, {"w": torch.ones(1)}, float("nan")), ValueError, "alpha must be a finite number.*got nan"),
    (lambda: interpolate(None, {"w": torch.ones(1)}, 0.5), TypeError, "pretrained must be a state dict"),
    (lambda: state_dict_accuracy(None, {}, []), TypeError, "model must be an nn.Module, got NoneType"),
])
def test_bad_arguments_are_named(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()
