import random

import numpy as np
import pytest
import torch

from tlcourse.runtime import (
    capture_rng_state,
    choose_device,
    make_generator,
    restore_rng_state,
    seed_everything,
)


def test_seed_everything_repeats_every_generator():
    seed_everything(7)
    first = (random.random(), np.random.rand(), torch.rand(3))
    seed_everything(7)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1]
    torch.testing.assert_close(first[2], second[2])


def test_seed_rejects_bad_values():
    with pytest.raises(TypeError, match="seed must be an int, got float"):
        seed_everything(1.5)
    with pytest.raises(ValueError, match="non-negative, got -1"):
        seed_everything(-1)


def test_generator_is_independent_of_global_state():
    torch.manual_seed(0)
    a = torch.randperm(10, generator=make_generator(3))
    torch.manual_seed(99)
    b = torch.randperm(10, generator=make_generator(3))
    assert torch.equal(a, b)


def test_rng_state_round_trip():
    state = capture_rng_state()
    expected = (random.random(), float(np.random.rand()), torch.rand(2))
    restore_rng_state(state)
    assert random.random() == expected[0] and float(np.random.rand()) == expected[1]
    torch.testing.assert_close(torch.rand(2), expected[2])
    with pytest.raises(ValueError, match="missing"):
        restore_rng_state({"python": state["python"]})


def test_choose_device():
    assert choose_device("cpu").type == "cpu"
    assert choose_device().type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            choose_device("cuda")


@pytest.mark.parametrize("state", [None, [1, 2], "python"])
def test_restore_rng_state_names_a_non_dict(state):
    with pytest.raises(TypeError, match="state must be the dict returned by capture_rng_state"):
        restore_rng_state(state)


def test_network_check_is_bounded_with_a_stalled_resolver(monkeypatch):
    import socket
    import threading
    import time

    from tlcourse.runtime import network_reachable

    release = threading.Event()

    def stalled_getaddrinfo(*args, **kwargs):
        release.wait(30)  # a resolver that hangs far longer than the timeout
        raise socket.gaierror("name resolution timed out")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TLCOURSE_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", stalled_getaddrinfo)
    started = time.perf_counter()
    try:
        assert network_reachable("huggingface.co", timeout=0.5) is False
        assert time.perf_counter() - started < 2.0  # 0.5 s bound plus scheduling slack
    finally:
        release.set()
