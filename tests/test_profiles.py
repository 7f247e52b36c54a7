import dataclasses

import pytest
import torch

from tlcourse.profiles import PROFILES, get_profile


def test_names_and_environment(monkeypatch):
    monkeypatch.setenv("TLCOURSE_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    assert get_profile("cpu").name == "cpu"  # an explicit name wins over the environment


def test_default_follows_hardware(monkeypatch):
    monkeypatch.delenv("TLCOURSE_PROFILE", raising=False)
    assert get_profile().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_frozen_and_sizes_grow():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_profile("smoke").batch_size = 3
    smoke, cpu = PROFILES["smoke"], PROFILES["cpu"]
    assert smoke.max_train_examples < cpu.max_train_examples
    assert not smoke.allow_download and not PROFILES["gpu"].use_standins


def test_cap():
    assert get_profile("smoke").cap(10_000) == get_profile("smoke").max_train_examples
    assert get_profile("smoke").cap(5) == 5
    with pytest.raises(ValueError, match="split must be"):
        get_profile("smoke").cap(5, split="test")


def test_unknown_profile_is_named():
    with pytest.raises(ValueError, match=r"unknown profile 'fast'.*\['cpu', 'gpu', 'smoke'\]"):
        get_profile("fast")
