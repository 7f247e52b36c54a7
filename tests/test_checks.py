import math

import numpy as np
import pytest
import torch
from torch import nn

from tlcourse.checks import (check_device, check_instance, check_int, check_module, check_number,
                             check_optimizer_covers, check_path, check_sequence, check_tensor, describe)


@pytest.mark.parametrize("value", [1, 7, 10**9])
def test_accepts_ints_at_or_above_the_minimum(value):
    assert check_int("batch_size", value) == value


@pytest.mark.parametrize("value", [0, -3, 2.0, True, "4", None])
def test_rejects_with_the_argument_expectation_and_value(value):
    with pytest.raises(ValueError, match=rf"batch_size must be a positive int, got {value!r}"):
        check_int("batch_size", value)


def test_minimum_is_in_the_message():
    with pytest.raises(ValueError, match=r"num_labels must be an int >= 2, got 1"):
        check_int("num_labels", 1, minimum=2)


def test_good_input_passes() -> None:
    check_module("model", nn.Linear(1, 1))
    check_tensor("x", torch.zeros(2, 3), dim=2)
    assert check_sequence("items", (1, 2)) == [1, 2]
    assert check_sequence("items", [], non_empty=False) == []
    check_number("alpha", 0.5, 0.0, 1.0)
    check_number("count", np.int64(3), low=1, integer=True)  # numpy scalars are numbers too


@pytest.mark.parametrize("call, error, message", [
    (lambda: check_module("model", None), TypeError, "model must be an nn.Module, got NoneType None"),
    (lambda: check_tensor("logits", [1.0]), TypeError, r"logits must be a torch.Tensor, got list \[1.0\]"),
    (lambda: check_tensor("logits", torch.zeros(3), dim=2), ValueError, r"logits must have 2 dimension\(s\), got shape \(3,\)"),
    (lambda: check_sequence("texts", "abc"), TypeError, "texts must be a list, got str 'abc'"),
    (lambda: check_sequence("texts", {"a": 1}), TypeError, "texts must be a list, got dict"),
    (lambda: check_sequence("texts", torch.zeros(2)), TypeError, "texts must be a list, got a torch.float32 tensor"),
    (lambda: check_sequence("texts", []), ValueError, "texts is empty: expected at least one element"),
    (lambda: check_number("alpha", math.nan), ValueError, "alpha must be a finite number .*got nan"),
    (lambda: check_number("alpha", math.inf), ValueError, "alpha must be a finite number .*got inf"),
    (lambda: check_number("alpha", 2.0, 0.0, 1.0), ValueError, r"alpha must be a finite number in \[0.0, 1.0\], got 2.0"),
    (lambda: check_number("alpha", True), TypeError, "alpha must be a number, got bool True"),
    (lambda: check_number("alpha", "0.5"), TypeError, "alpha must be a number, got str '0.5'"),
    (lambda: check_number("count", 1.5, integer=True), TypeError, "count must be an int, got float 1.5"),
    (lambda: check_number("count", None, integer=True), TypeError, "count must be an int, got NoneType"),
])
def test_bad_input_names_argument_expectation_and_value(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


def test_describe_is_short_for_long_values() -> None:
    assert len(describe("x" * 1000)) < 80
    assert describe(torch.zeros(2, dtype=torch.int64)) == "a torch.int64 tensor of shape (2,)"


def test_optimizer_built_before_a_head_swap_is_named() -> None:
    model = nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    check_optimizer_covers(model, optimizer)
    model[1] = nn.Linear(4, 3)  # the head replaced after the optimizer was built
    with pytest.raises(ValueError, match=r"optimizer holds 2 parameter\(s\) that are not in the model.*"
                                         r"misses: \['1.weight', '1.bias'\]"):
        check_optimizer_covers(model, optimizer)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer, got list"):
        check_optimizer_covers(model, [model[1].weight])


@pytest.mark.parametrize("value, error, message", [
    ([0.5, math.nan], ValueError, r"fractions must be non-negative and sum to 1, got \[0.5, nan\]"),
    ([0.5, 0.6], ValueError, "fractions must be non-negative and sum to 1"),
    ([1.5, -0.5], ValueError, "fractions must be non-negative"),
    ([math.inf], ValueError, "fractions must be non-negative"),
    (None, TypeError, "fractions must be a list, got NoneType"),
    ([], ValueError, "fractions is empty"),
])
def test_check_fractions_refuses_nan_negative_and_wrong_sums(value, error, message) -> None:
    from tlcourse.checks import check_fractions

    assert check_fractions("fractions", (0.25, 0.75)) == [0.25, 0.75]
    with pytest.raises(error, match=message):
        check_fractions("fractions", value)


def test_device_path_instance_and_choice_accept_good_values() -> None:
    from pathlib import Path

    assert check_device("device", "cpu") == torch.device("cpu")
    assert check_device("device", torch.device("cpu", 0)) == torch.device("cpu", 0)
    assert check_path("root", "a/b") == Path("a/b") and check_path("root", Path("c")) == Path("c")
    check_instance("model", nn.Linear(1, 1), nn.Module)


@pytest.mark.parametrize("call, error, message", [
    (lambda: check_device("device", 0), TypeError, "device must be a torch.device .* got int 0"),
    (lambda: check_device("device", "gpu"), ValueError, "device must be a device name .* got 'gpu'"),
    (lambda: check_path("root", ""), TypeError, "root must be a file or folder path .* got str ''"),
    (lambda: check_instance("config", None, dict), TypeError, "config must be a dict, got NoneType None"),
])
def test_device_path_instance_and_choice_name_the_argument(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()
