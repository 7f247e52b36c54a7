"""Tests for tlcourse.losses against torch.nn.functional and autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tlcourse.chapters.math_losses import (
    binary_cross_entropy_with_logits,
    l2_sp_penalty,
    log_softmax,
    softmax_cross_entropy,
    softmax_cross_entropy_gradient,
    two_layer_backward,
    two_layer_forward,
)

SHAPES = [(1, 2), (4, 3), (16, 10), (7, 1000)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_softmax_cross_entropy_matches_torch(shape: tuple[int, int], smoothing: float) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=generator, dtype=torch.float64) * 3
    labels = torch.randint(0, shape[1], (shape[0],), generator=generator)
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(
            softmax_cross_entropy(logits, labels, smoothing, reduction),
            F.cross_entropy(logits, labels, label_smoothing=smoothing, reduction=reduction))


def test_log_softmax_matches_torch() -> None:
    logits = torch.randn(3, 5, 7)
    torch.testing.assert_close(log_softmax(logits), F.log_softmax(logits, dim=-1))


def test_extreme_logits_stay_finite() -> None:
    logits = torch.tensor([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]], requires_grad=True)
    labels = torch.tensor([1, 2])
    loss = softmax_cross_entropy(logits, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels))
    s = torch.tensor([1000.0, -1000.0, 1000.0, -1000.0])
    t = torch.tensor([0.0, 1.0, 1.0, 0.0])
    bce = binary_cross_entropy_with_logits(s, t, reduction="none")
    assert torch.isfinite(bce).all()
    torch.testing.assert_close(bce, F.binary_cross_entropy_with_logits(s, t, reduction="none"))


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)])
def test_binary_cross_entropy_matches_torch(shape: tuple[int, ...]) -> None:
    logits = torch.randn(shape, dtype=torch.float64) * 5
    targets = torch.rand(shape, dtype=torch.float64)
    torch.testing.assert_close(binary_cross_entropy_with_logits(logits, targets),
                               F.binary_cross_entropy_with_logits(logits, targets))


def test_two_class_softmax_equals_binary_on_logit_difference() -> None:
    logits = torch.randn(20, 2, dtype=torch.float64)
    labels = torch.randint(0, 2, (20,))
    difference = logits[:, 1] - logits[:, 0]
    torch.testing.assert_close(softmax_cross_entropy(logits, labels),
                               binary_cross_entropy_with_logits(difference, labels.double()))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_gradient_matches_autograd(shape: tuple[int, int], smoothing: float) -> None:
    logits = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, shape[1], (shape[0],))
    F.cross_entropy(logits, labels, label_smoothing=smoothing).backward()
    torch.testing.assert_close(softmax_cross_entropy_gradient(logits.detach(), labels, smoothing),
                               logits.grad)


def test_l2_sp_penalty_value_and_gradient() -> None:
    current = {"a": torch.randn(3, 4, requires_grad=True), "b": torch.randn(5, requires_grad=True)}
    anchor = {"a": torch.randn(3, 4)}
    penalty = l2_sp_penalty(current, anchor, strength=0.3)
    expected = 0.15 * ((current["a"] - anchor["a"]) ** 2).sum()
    torch.testing.assert_close(penalty, expected)
    penalty.backward()
    torch.testing.assert_close(current["a"].grad, 0.3 * (current["a"] - anchor["a"]).detach())
    assert current["b"].grad is None  # not in the reference: not penalised


@pytest.mark.parametrize("sizes", [(1, 2, 3, 2), (8, 5, 7, 4), (32, 20, 16, 10)])
def test_two_layer_backward_matches_autograd(sizes: tuple[int, int, int, int]) -> None:
    count, dim, hidden, classes = sizes
    generator = torch.Generator().manual_seed(1)
    weights = {
        "W1": torch.randn(hidden, dim, generator=generator, dtype=torch.float64),
        "b1": torch.randn(hidden, generator=generator, dtype=torch.float64),
        "W2": torch.randn(classes, hidden, generator=generator, dtype=torch.float64),
        "b2": torch.randn(classes, generator=generator, dtype=torch.float64),
    }
    inputs = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (count,), generator=generator)
    leaves = {name: w.clone().requires_grad_(True) for name, w in weights.items()}
    x = inputs.clone().requires_grad_(True)
    loss, cache = two_layer_forward(x, labels, leaves)
    cache.pre_activation.retain_grad()
    cache.hidden.retain_grad()
    cache.logits.retain_grad()
    loss.backward()
    manual = two_layer_backward(
        two_layer_forward(inputs, labels, weights)[1], weights)
    for name in weights:
        torch.testing.assert_close(manual[name], leaves[name].grad)
    torch.testing.assert_close(manual["inputs"], x.grad)
    torch.testing.assert_close(manual["logits"], cache.logits.grad)
    torch.testing.assert_close(manual["hidden"], cache.hidden.grad)
    torch.testing.assert_close(manual["pre_activation"], cache.pre_activation.grad)


def test_bad_inputs_raise() -> None:
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match="labels out of range"):
        softmax_cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="labels out of range"):
        softmax_cross_entropy(logits, torch.tensor([0, -1, 2, 1]))
    with pytest.raises(ValueError, match="labels must have shape"):
        softmax_cross_entropy(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"logits must have shape \(batch, classes\)"):
        softmax_cross_entropy(torch.randn(4), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="integer class indices"):
        softmax_cross_entropy(logits, torch.zeros(4))
    with pytest.raises(ValueError, match="label_smoothing"):
        softmax_cross_entropy(logits, torch.tensor([0, 1, 2, 0]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        softmax_cross_entropy(logits, torch.tensor([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(ValueError, match="same shape"):
        binary_cross_entropy_with_logits(torch.randn(3), torch.rand(4))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
        binary_cross_entropy_with_logits(torch.randn(3), torch.tensor([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="missing in parameters"):
        l2_sp_penalty({"a": torch.ones(2)}, {"b": torch.ones(2)}, 1.0)
    with pytest.raises(ValueError, match="shape mismatch"):
        l2_sp_penalty({"a": torch.ones(2)}, {"a": torch.ones(3)}, 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        l2_sp_penalty({"a": torch.ones(2)}, {"a": torch.ones(2)}, -1.0)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        two_layer_forward(torch.ones(2, 3), torch.zeros(2, dtype=torch.long),
                          {"W1": torch.ones(4, 5), "b1": torch.ones(4), "W2": torch.ones(2, 4),
                           "b2": torch.ones(2)})
    with pytest.raises(TypeError, match="torch.Tensor"):
        softmax_cross_entropy([[0.0, 1.0]], torch.tensor([0]))  # type: ignore[arg-type]


def test_penalised_loss_matches_hand_formula_and_toward_zero_is_weight_decay() -> None:
    from tlcourse.chapters.math_losses import PenalisedLoss

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    anchor = model.weight.detach().clone()
    loss_fn = PenalisedLoss(model, ["weight"], strength=0.5)
    decay_fn = PenalisedLoss(model, ["weight"], strength=0.5, toward_zero=True)
    with torch.no_grad():
        model.weight.add_(0.1)
    logits, labels = torch.randn(6, 3), torch.randint(0, 3, (6,))
    ce = F.cross_entropy(logits, labels)
    torch.testing.assert_close(loss_fn(logits, labels),
                               ce + 0.25 * ((model.weight - anchor) ** 2).sum())
    torch.testing.assert_close(decay_fn(logits, labels), ce + 0.25 * (model.weight ** 2).sum())
    decay_fn(logits, labels).backward()
    torch.testing.assert_close(model.weight.grad, 0.5 * model.weight.detach())
    with pytest.raises(ValueError, match="unknown parameter names"):
        PenalisedLoss(model, ["nope"], 0.1)
