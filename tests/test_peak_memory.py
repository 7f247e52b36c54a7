"""benchmarks/peak_memory.py: the reference workload and machine name that come with each chapter's times."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from peak_memory import processor_name, reference_gflops  # noqa: E402


def test_reference_throughput_is_positive():
    # a product of 2 * n**3 operations: any working machine does a small one at well over 0.01 GFLOPS
    assert reference_gflops(size=64, repeats=4) > 0.01


@pytest.mark.parametrize("size, repeats", [(0, 4), (64, 0), (-1, 1)])
def test_reference_throughput_rejects_empty_work(size, repeats):
    with pytest.raises(ValueError, match=rf"size and repeats must be at least 1, got size={size}, repeats={repeats}"):
        reference_gflops(size=size, repeats=repeats)


def test_processor_name_is_a_non_empty_line():
    name = processor_name()
    assert isinstance(name, str) and name.strip() and "\n" not in name
