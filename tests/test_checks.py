import pytest

from tlcourse.checks import check_int


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
