"""Tests for tlcourse.chapters.math_losses against torch.nn.functional and autograd."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tlcourse.chapters.math_losses import (
    binary_cross_entropy_with_logits,
    l2_sp_penalty,
    log_softmax,
    softmax_cross_entropy,
    softmax_cross_entropy_gradient,
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


# Property-based comparisons with torch: shapes with empty and single-element batches, logits that
# are ordinary, extreme (+-1e30) or infinite, exactly 0, in float32 and float64, every option.
INF = math.inf
LOGIT_VALUES = st.one_of(st.floats(-30.0, 30.0), st.sampled_from([0.0, 1e30, -1e30, INF, -INF]))
DTYPES = st.sampled_from([torch.float32, torch.float64])
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def _tensor(data: st.DataObject, shape: tuple[int, ...], dtype: torch.dtype,
            values: st.SearchStrategy[float] = LOGIT_VALUES) -> torch.Tensor:
    """A tensor of ``shape`` whose entries Hypothesis draws from ``values``."""
    count = math.prod(shape)
    entries = data.draw(st.lists(values, min_size=count, max_size=count))
    return torch.tensor(entries, dtype=torch.float64).reshape(shape).to(dtype)


def _assert_same(ours: torch.Tensor, reference: torch.Tensor) -> None:
    """Equal values, NaN where torch has NaN, and the same dtype and shape."""
    torch.testing.assert_close(ours, reference, equal_nan=True)


@PROPERTY_SETTINGS
@given(data=st.data(), batch=st.integers(0, 5), classes=st.integers(1, 5), dtype=DTYPES,
       smoothing=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)),
       reduction=st.sampled_from(["mean", "sum", "none"]))
def test_softmax_cross_entropy_property_matches_torch(data: st.DataObject, batch: int, classes: int,
                                                      dtype: torch.dtype, smoothing: float,
                                                      reduction: str) -> None:
    logits = _tensor(data, (batch, classes), dtype)
    labels = torch.tensor(data.draw(st.lists(st.integers(0, classes - 1), min_size=batch,
                                             max_size=batch)), dtype=torch.long)
    ours_input = logits.clone().requires_grad_(True)
    torch_input = logits.clone().requires_grad_(True)
    ours = softmax_cross_entropy(ours_input, labels, smoothing, reduction)
    reference = F.cross_entropy(torch_input, labels, label_smoothing=smoothing, reduction=reduction)
    _assert_same(ours, reference)
    if batch and bool(torch.isfinite(reference).all()):
        ours.sum().backward()
        reference.sum().backward()
        _assert_same(ours_input.grad, torch_input.grad)


@PROPERTY_SETTINGS
@given(data=st.data(), shape=st.lists(st.integers(0, 4), max_size=3).map(tuple), dtype=DTYPES)
def test_log_softmax_property_matches_torch(data: st.DataObject, shape: tuple[int, ...],
                                            dtype: torch.dtype) -> None:
    logits = _tensor(data, shape, dtype)
    _assert_same(log_softmax(logits), F.log_softmax(logits, dim=-1))


@PROPERTY_SETTINGS
@given(data=st.data(), shape=st.lists(st.integers(0, 4), max_size=3).map(tuple), dtype=DTYPES,
       reduction=st.sampled_from(["mean", "sum", "none"]))
def test_binary_cross_entropy_property_matches_torch(data: st.DataObject, shape: tuple[int, ...],
                                                     dtype: torch.dtype, reduction: str) -> None:
    logits = _tensor(data, shape, dtype)
    targets = _tensor(data, shape, dtype, st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0, 1)))
    ours_input = logits.clone().requires_grad_(True)
    torch_input = logits.clone().requires_grad_(True)
    ours = binary_cross_entropy_with_logits(ours_input, targets, reduction)
    reference = F.binary_cross_entropy_with_logits(torch_input, targets, reduction=reduction)
    _assert_same(ours, reference)
    if logits.numel():
        ours.sum().backward()
        reference.sum().backward()
        # Where torch's own loss is NaN (a logit of -inf) its gradient is arbitrary: skip those.
        finite = torch.isfinite(F.binary_cross_entropy_with_logits(logits, targets, reduction="none"))
        _assert_same(ours_input.grad[finite], torch_input.grad[finite])


@PROPERTY_SETTINGS
@given(data=st.data(), batch=st.integers(1, 5), classes=st.integers(1, 5), dtype=DTYPES,
       smoothing=st.one_of(st.just(0.0), st.floats(0.0, 1.0)))
def test_closed_form_gradient_property_matches_autograd(data: st.DataObject, batch: int,
                                                        classes: int, dtype: torch.dtype,
                                                        smoothing: float) -> None:
    logits = _tensor(data, (batch, classes), dtype)
    labels = torch.tensor(data.draw(st.lists(st.integers(0, classes - 1), min_size=batch,
                                             max_size=batch)), dtype=torch.long)
    leaf = logits.clone().requires_grad_(True)
    F.cross_entropy(leaf, labels, label_smoothing=smoothing).backward()
    _assert_same(softmax_cross_entropy_gradient(logits, labels, smoothing), leaf.grad)


def test_binary_cross_entropy_gradient_at_logit_zero_is_half_minus_target() -> None:
    # A zero-initialised head starts exactly at s = 0, where max(s, 0) and |s| have their kinks.
    logits = torch.zeros(3, requires_grad=True)
    targets = torch.tensor([0.0, 0.3, 1.0])
    binary_cross_entropy_with_logits(logits, targets, reduction="sum").backward()
    torch.testing.assert_close(logits.grad, 0.5 - targets)


def test_softmax_cross_entropy_is_finite_with_a_minus_infinity_logit() -> None:
    logits = torch.tensor([[0.0, -INF, 1.0]])
    loss = softmax_cross_entropy(logits, torch.tensor([0]))
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.tensor([0])))


def test_log_softmax_of_an_empty_batch_is_empty() -> None:
    for shape in [(0,), (0, 3), (2, 0)]:
        assert log_softmax(torch.zeros(shape)).shape == shape


LOGITS, LABELS = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
# One row per bad input: (call, exception, message that names the argument and the value).
BAD_INPUTS = [
    (lambda: softmax_cross_entropy(LOGITS, torch.tensor([0, 1, 2, 3])), ValueError,
     r"labels out of range.*\[0, 2\].*max 3"),
    (lambda: softmax_cross_entropy(LOGITS, torch.tensor([0, -1, 2, 1])), ValueError,
     r"labels out of range.*min -1"),
    (lambda: softmax_cross_entropy(LOGITS, torch.tensor([0, 1])), ValueError,
     r"labels must have shape \(4,\).*got \(2,\)"),
    (lambda: softmax_cross_entropy(torch.randn(4), LABELS), ValueError,
     r"logits must have shape \(batch, classes >= 1\), got \(4,\)"),
    (lambda: softmax_cross_entropy(torch.randn(4, 0), LABELS), ValueError,
     r"logits must have shape \(batch, classes >= 1\), got \(4, 0\)"),
    (lambda: softmax_cross_entropy(LOGITS, torch.zeros(4)), TypeError,
     "labels must be integer class indices, got torch.float32"),
    (lambda: softmax_cross_entropy(LOGITS.long(), LABELS), TypeError,
     "logits must be floating point, got torch.int64"),
    (lambda: softmax_cross_entropy(LOGITS, LABELS, label_smoothing=1.5), ValueError,
     r"label_smoothing must be a finite number in \[0.0, 1.0\], got 1.5"),
    (lambda: softmax_cross_entropy(LOGITS, LABELS, label_smoothing=math.nan), ValueError,
     "label_smoothing must be a finite number in .*got nan"),
    (lambda: softmax_cross_entropy(LOGITS, LABELS, label_smoothing=None), TypeError,
     "label_smoothing must be a number, got NoneType"),
    (lambda: softmax_cross_entropy(LOGITS, LABELS, reduction="avg"), ValueError,
     "reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    (lambda: softmax_cross_entropy([[0.0, 1.0]], torch.tensor([0])), TypeError,
     "logits must be a torch.Tensor, got list"),
    (lambda: softmax_cross_entropy(LOGITS, None), TypeError,
     "labels must be a torch.Tensor, got NoneType"),
    (lambda: softmax_cross_entropy_gradient(LOGITS, LABELS, label_smoothing=-0.1), ValueError,
     "label_smoothing must be a finite number in"),
    (lambda: log_softmax(torch.tensor([1, 2])), TypeError,
     "logits must be a floating point torch.Tensor, got a torch.int64 tensor"),
    (lambda: log_softmax(None), TypeError, "logits must be a floating point.*NoneType"),
    (lambda: binary_cross_entropy_with_logits(torch.randn(3), torch.rand(4)), ValueError,
     r"logits \(3,\) and targets \(4,\) must have the same shape"),
    (lambda: binary_cross_entropy_with_logits(torch.randn(3), torch.tensor([0.0, 2.0, 1.0])),
     ValueError, r"targets must lie in \[0, 1\], got 2.0"),
    (lambda: binary_cross_entropy_with_logits(torch.randn(2), torch.tensor([0.0, math.nan])),
     ValueError, r"targets must lie in \[0, 1\], got nan"),
    (lambda: binary_cross_entropy_with_logits(torch.randn(2), torch.rand(2), "avg"), ValueError,
     "reduction must be"),
    (lambda: binary_cross_entropy_with_logits(torch.tensor([1, 2]), torch.rand(2)), TypeError,
     "logits must be floating point, got torch.int64"),
    (lambda: binary_cross_entropy_with_logits(torch.randn(2), [0.0, 1.0]), TypeError,
     "targets must be a torch.Tensor, got list"),
    (lambda: l2_sp_penalty({"a": torch.ones(2)}, {"b": torch.ones(2)}, 1.0), ValueError,
     "parameter 'b' from reference is missing in parameters"),
    (lambda: l2_sp_penalty({"a": torch.ones(2)}, {"a": torch.ones(3)}, 1.0), ValueError,
     r"shape mismatch for 'a': \(2,\) vs \(3,\)"),
    (lambda: l2_sp_penalty({"a": torch.ones(2)}, {"a": torch.ones(2)}, -1.0), ValueError,
     r"strength must be a finite number in \[0.0, inf\], got -1.0"),
    (lambda: l2_sp_penalty({"a": torch.ones(2)}, {"a": torch.ones(2)}, math.nan), ValueError,
     "strength must be a finite number .*got nan"),
    (lambda: l2_sp_penalty({"a": torch.ones(2)}, {"a": torch.ones(2)}, "1"), TypeError,
     "strength must be a number, got str"),
    (lambda: l2_sp_penalty({"a": torch.ones(2)}, {}, 1.0), ValueError, "reference is empty"),
    (lambda: l2_sp_penalty({"a": [1.0]}, {"a": torch.ones(1)}, 1.0), TypeError,
     r"parameters\['a'\] must be a torch.Tensor, got list"),
    (lambda: l2_sp_penalty(None, {"a": torch.ones(1)}, 1.0), TypeError,
     "parameters and reference must be mappings.*NoneType"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_inputs_raise_a_message_naming_the_argument(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


def test_penalised_loss_rejects_bad_arguments() -> None:
    from tlcourse.chapters.math_losses import PenalisedLoss

    model = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="names must be a non-empty list of parameter names, got 'weight'"):
        PenalisedLoss(model, "weight", 0.1)
    with pytest.raises(TypeError, match=r"names must be a non-empty list of parameter names, got \[\]"):
        PenalisedLoss(model, [], 0.1)
    with pytest.raises(ValueError, match="strength must be a finite number .*got inf"):
        PenalisedLoss(model, ["weight"], math.inf)
    with pytest.raises(TypeError, match="model must be an nn.Module, got NoneType"):
        PenalisedLoss(None, ["weight"], 0.1)
    with pytest.raises(ValueError, match=r"label_smoothing must be a finite number in \[0.0, 1.0\], got 2"):
        PenalisedLoss(model, ["weight"], 0.1, label_smoothing=2)


def test_cpu_penalty_is_strong_enough_to_show_within_the_run():
    # The chapter's L2-SP lesson needs the penalty's pull exp(-eta alpha T / (1 - mu)) far from 1
    # over the run's T steps (at alpha = 0.01 and 12 steps it was 0.99 and nothing could show).
    import math

    from tlcourse.chapters.math_losses import SETTINGS

    row = SETTINGS["cpu"]
    steps = row.num_epochs * math.ceil(row.num_train / row.batch_size)
    assert math.exp(-row.learning_rate * row.alpha * steps / (1 - 0.9)) < 0.9
    assert all(table.num_seeds >= 2 for table in SETTINGS.values())  # a paired interval needs two seeds


def test_sparse_loss_refuses_one_hot_shaped_labels():
    from tlcourse.chapters.math_losses import softmax_cross_entropy

    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        softmax_cross_entropy(torch.zeros(4, 10), torch.randint(0, 10, (4, 10)))
