"""Tests of the math chapter: the formulas its cells write out, against torch.nn.functional, torch.optim
and autograd, and its settings table."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.chapters.page_code import page_functions

PAGE = page_functions("math")
log_softmax = PAGE["log_softmax"]
softmax_cross_entropy = PAGE["softmax_cross_entropy"]
binary_cross_entropy_with_logits = PAGE["binary_cross_entropy_with_logits"]
softmax_cross_entropy_gradient = PAGE["softmax_cross_entropy_gradient"]
two_layer_forward, two_layer_backward = PAGE["two_layer_forward"], PAGE["two_layer_backward"]
gradient_descent_step, sgd_momentum_step, adamw_step = (PAGE["gradient_descent_step"], PAGE["sgd_momentum_step"],
                                                        PAGE["adamw_step"])
relative_gradient_norms = PAGE["relative_gradient_norms"]

# Property-based comparisons with torch: empty and single-element batches, logits that are ordinary,
# extreme (+-1e30) or infinite, exactly 0, in float32 and float64.
INF = math.inf
LOGIT_VALUES = st.one_of(st.floats(-30.0, 30.0), st.sampled_from([0.0, 1e30, -1e30, INF, -INF]))
DTYPES = st.sampled_from([torch.float32, torch.float64])
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def _tensor(data: st.DataObject, shape: tuple[int, ...], dtype: torch.dtype,
            values: st.SearchStrategy[float] = LOGIT_VALUES) -> torch.Tensor:
    """A tensor of ``shape`` whose entries Hypothesis draws from ``values``."""
    entries = data.draw(st.lists(values, min_size=math.prod(shape), max_size=math.prod(shape)))
    return torch.tensor(entries, dtype=torch.float64).reshape(shape).to(dtype)


def _labels(data: st.DataObject, batch: int, classes: int) -> torch.Tensor:
    return torch.tensor(data.draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch)),
                        dtype=torch.long)


@PROPERTY_SETTINGS
@given(data=st.data(), batch=st.integers(0, 5), classes=st.integers(1, 5), dtype=DTYPES,
       reduction=st.sampled_from(["mean", "none"]))
def test_softmax_cross_entropy_matches_torch(data, batch, classes, dtype, reduction) -> None:
    logits, labels = _tensor(data, (batch, classes), dtype), _labels(data, batch, classes)
    ours_input, torch_input = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours = softmax_cross_entropy(ours_input, labels, reduction)
    reference = F.cross_entropy(torch_input, labels, reduction=reduction)
    torch.testing.assert_close(ours, reference, equal_nan=True)
    if batch and bool(torch.isfinite(reference).all()):
        ours.sum().backward()
        reference.sum().backward()
        torch.testing.assert_close(ours_input.grad, torch_input.grad, equal_nan=True)


@PROPERTY_SETTINGS
@given(data=st.data(), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), dtype=DTYPES)
def test_log_softmax_matches_torch(data, shape, dtype) -> None:
    logits = _tensor(data, shape, dtype)
    torch.testing.assert_close(log_softmax(logits), F.log_softmax(logits, dim=-1), equal_nan=True)


@PROPERTY_SETTINGS
@given(data=st.data(), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), dtype=DTYPES,
       reduction=st.sampled_from(["mean", "none"]))
def test_binary_cross_entropy_matches_torch(data, shape, dtype, reduction) -> None:
    logits = _tensor(data, shape, dtype)
    targets = _tensor(data, shape, dtype, st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0, 1)))
    ours_input, torch_input = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours = binary_cross_entropy_with_logits(ours_input, targets, reduction)
    reference = F.binary_cross_entropy_with_logits(torch_input, targets, reduction=reduction)
    torch.testing.assert_close(ours, reference, equal_nan=True)
    ours.sum().backward()
    reference.sum().backward()
    # where torch's own loss is NaN (a logit of -inf) its gradient is arbitrary: skip those
    finite = torch.isfinite(F.binary_cross_entropy_with_logits(logits, targets, reduction="none"))
    torch.testing.assert_close(ours_input.grad[finite], torch_input.grad[finite])


def test_binary_cross_entropy_gradient_at_logit_zero_is_half_minus_target() -> None:
    # a zero-initialised head starts exactly at s = 0, where max(s, 0) and |s| have their kinks
    logits, targets = torch.zeros(3, requires_grad=True), torch.tensor([0.0, 0.3, 1.0])
    binary_cross_entropy_with_logits(logits, targets, "none").sum().backward()
    torch.testing.assert_close(logits.grad, 0.5 - targets)


@PROPERTY_SETTINGS
@given(data=st.data(), batch=st.integers(1, 5), classes=st.integers(1, 5), dtype=DTYPES)
def test_closed_form_gradient_matches_autograd(data, batch, classes, dtype) -> None:
    logits, labels = _tensor(data, (batch, classes), dtype), _labels(data, batch, classes)
    leaf = logits.clone().requires_grad_(True)
    F.cross_entropy(leaf, labels).backward()
    torch.testing.assert_close(softmax_cross_entropy_gradient(logits, labels), leaf.grad, equal_nan=True)


def test_sparse_loss_refuses_one_hot_shaped_labels() -> None:
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\), one class per example, got \(4, 10\)"):
        softmax_cross_entropy(torch.zeros(4, 10), torch.randint(0, 10, (4, 10)))


@pytest.mark.parametrize("sizes", [(1, 2, 3, 2), (8, 5, 7, 4), (32, 20, 16, 10)])
def test_two_layer_backward_matches_autograd(sizes: tuple[int, int, int, int]) -> None:
    count, dim, hidden, classes = sizes
    generator = torch.Generator().manual_seed(1)
    shapes = {"W1": (hidden, dim), "b1": (hidden,), "W2": (classes, hidden), "b2": (classes,)}
    weights = {name: torch.randn(shape, generator=generator, dtype=torch.float64) for name, shape in shapes.items()}
    inputs = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (count,), generator=generator)
    leaves = {name: w.clone().requires_grad_(True) for name, w in weights.items()}
    x = inputs.clone().requires_grad_(True)
    loss, cache = two_layer_forward(x, labels, leaves)
    for name in ("pre_activation", "hidden", "logits"):
        cache[name].retain_grad()
    loss.backward()
    by_hand = two_layer_backward(two_layer_forward(inputs, labels, weights)[1], weights)
    expected = {**{name: leaves[name].grad for name in weights}, "inputs": x.grad,
                **{name: cache[name].grad for name in ("pre_activation", "hidden", "logits")}}
    assert set(by_hand) == set(expected)
    for name, gradient in expected.items():
        torch.testing.assert_close(by_hand[name], gradient)


SHAPES = [[(3,)], [(4, 5), (5,)], [(2, 3, 4), (1,), (7, 2)]]
STEPS = 6


def _problem(shapes):
    """Starting weights and targets of a quadratic-plus-quartic loss, float64."""
    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
    return start, [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]


def _loss(weights, targets):
    return sum(((w - t) ** 2).sum() + 0.1 * (w ** 4).sum() for w, t in zip(weights, targets))


def _gradients(weights, targets):
    leaves = [w.detach().clone().requires_grad_(True) for w in weights]
    return list(torch.autograd.grad(_loss(leaves, targets), leaves))


def _matches_torch(shapes, make_optimizer, step, state) -> None:
    """``step(weights, gradients, state) -> (weights, state)`` follows ``make_optimizer``'s weights for STEPS steps."""
    ours, targets = _problem(shapes)
    leaves = [w.clone().requires_grad_(True) for w in ours]
    optimizer = make_optimizer(leaves)
    for _ in range(STEPS):
        ours, state = step(ours, _gradients(ours, targets), state)
        optimizer.zero_grad()
        _loss(leaves, targets).backward()
        optimizer.step()
        for mine, theirs in zip(ours, leaves):
            torch.testing.assert_close(mine, theirs.detach())


@pytest.mark.parametrize("shapes", SHAPES)
def test_gradient_descent_matches_torch_sgd(shapes) -> None:
    _matches_torch(shapes, lambda p: torch.optim.SGD(p, lr=0.05),
                   lambda w, g, s: (gradient_descent_step(w, g, 0.05), None), None)


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_momentum_matches_torch_sgd(shapes, weight_decay: float) -> None:
    _matches_torch(shapes, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=weight_decay),
                   lambda w, g, s: sgd_momentum_step(w, g, s, 0.05, 0.9, weight_decay), None)


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01, 0.5])
def test_adamw_matches_torch_adamw(shapes, weight_decay: float) -> None:
    zeros = [torch.zeros(s, dtype=torch.float64) for s in shapes]
    _matches_torch(shapes, lambda p: torch.optim.AdamW(p, lr=0.03, betas=(0.8, 0.99), weight_decay=weight_decay),
                   lambda w, g, s: adamw_step(w, g, s, 0.03, (0.8, 0.99), 1e-8, weight_decay), (0, zeros, zeros))


def test_update_rules_leave_their_inputs_alone() -> None:
    weight = torch.ones(3)
    gradient_descent_step([weight], [torch.ones(3)], 0.1)
    sgd_momentum_step([weight], [torch.ones(3)], None, 0.1, weight_decay=0.1)
    adamw_step([weight], [torch.ones(3)], (0, [torch.zeros(3)], [torch.zeros(3)]), 0.1)
    torch.testing.assert_close(weight, torch.ones(3))


def test_relative_gradient_norms_match_a_hand_computation() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        model[2].weight.zero_()
        model[2].bias.zero_()
    F.cross_entropy(model(torch.randn(5, 3)), torch.tensor([0, 1, 0, 1, 1])).backward()
    norms = relative_gradient_norms(model, lambda name: name.split(".")[0])
    assert list(norms) == ["0", "2"]
    first = model[0]
    expected = (torch.cat([first.weight.grad.flatten(), first.bias.grad]).norm()
                / torch.cat([first.weight.flatten(), first.bias]).norm())
    assert norms["0"] == pytest.approx(expected.item())
    assert norms["2"] == math.inf  # the zero head's weights have norm 0


def test_cpu_penalty_is_strong_enough_to_show_within_the_run() -> None:
    # The L2-SP lesson needs the penalty's pull exp(-eta alpha T / (1 - mu)) far from 1 over the
    # run's T steps (at alpha = 0.01 and 12 steps it was 0.99 and nothing could show).
    from tlcourse.chapters.math import SETTINGS

    row = SETTINGS["cpu"]
    steps = row.num_epochs * math.ceil(row.num_train / row.batch_size)
    assert math.exp(-row.learning_rate * row.alpha * steps / (1 - 0.9)) < 0.9
    assert all(table.num_seeds >= 2 for table in SETTINGS.values())  # a paired interval needs two seeds
