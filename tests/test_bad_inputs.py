"""Every public function of the library, given garbage, fails with a named error.

A table-driven sweep: each public callable (``__all__``) of each library module is called with the
same bad value in every required argument: ``None``, a string, an empty list, NaN, a negative
number, a tensor. It may accept the value or raise ``TypeError``/``ValueError`` (or a subclass such
as ``CheckpointError``), but never a raw ``AttributeError``, ``IndexError`` or torch
``RuntimeError``, nor a ``TypeError`` whose message is Python's own ("'NoneType' object is not
iterable") instead of one that names the argument. The behaviour for each function's specific bad
inputs (wrong shapes, out-of-range numbers) is tested in its module's own table.
"""

from __future__ import annotations

import importlib
import inspect
import math

import pytest
import torch

MODULES = ["checks", "checkpoint", "metrics", "fusion", "transfer", "batchnorm", "train", "text", "runtime",
           "profiles", "optimization", "data", "images", "plotting", "history", "claims", "assets"]
BAD_VALUES = {"None": None, "a string": "abc", "an empty list": [], "NaN": math.nan, "-1": -1,
              "a matrix": torch.zeros(2, 3)}
# Python's and torch's own wording: it names no argument of ours.
RAW_MESSAGES = ("object has no attribute", "Boolean value of Tensor", "not subscriptable", "is not iterable",
                "unsupported operand", "object of type", "Could not infer dtype", "argument must be")
# Functions left out of the sweep, with the reason.
LEFT_OUT = {
    "data.load_cifar10": "reads the disk first: garbage arguments meet AssetUnavailableError (a named error)",
}


def _public_callables() -> list[str]:
    names = []
    for module_name in MODULES:
        module = importlib.import_module(f"tlcourse.{module_name}")
        for name in getattr(module, "__all__", []):
            target = getattr(module, name)
            if not callable(target) or (inspect.isclass(target) and issubclass(target, BaseException)):
                continue
            try:
                parameters = inspect.signature(target).parameters.values()
            except (TypeError, ValueError):
                continue
            if any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                   for p in parameters):
                names.append(f"{module_name}.{name}")
    return names


@pytest.mark.parametrize("qualified_name", [n for n in _public_callables() if n not in LEFT_OUT])
def test_garbage_in_gives_a_named_error(qualified_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")  # nothing may reach the network
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module_name, name = qualified_name.split(".")
    target = getattr(importlib.import_module(f"tlcourse.{module_name}"), name)
    required = [p for p in inspect.signature(target).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for label, value in BAD_VALUES.items():
        try:
            target(*[value] * len(required))
        except (TypeError, ValueError) as error:
            raw = [pattern for pattern in RAW_MESSAGES if pattern in str(error)]
            assert not raw, f"{qualified_name} given {label}: Python's own message {str(error)!r}"
        except Exception as error:  # noqa: BLE001 - the point is to catch what should not escape
            pytest.fail(f"{qualified_name} given {label} raised {type(error).__name__}: {error}")


def test_every_left_out_function_exists() -> None:
    public = set(_public_callables())
    assert set(LEFT_OUT) <= public, sorted(set(LEFT_OUT) - public)
