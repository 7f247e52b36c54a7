import time

import pytest

from tlcourse.assets import ASSETS, AssetUnavailableError, get_asset, is_cached, resolve
from tlcourse.profiles import get_profile


def test_every_asset_documents_itself():
    for asset in ASSETS.values():
        for field in ("loads_with", "cache", "size", "license", "citation"):
            assert getattr(asset, field), f"{asset.name} lacks {field}"
        if asset.canonical:
            assert asset.standin in ASSETS and not ASSETS[asset.standin].canonical
            assert asset.host


def test_offline_standins_are_installed():
    for name in ("efficientnet-lite0-imagenet", "mnist-5k", "digits", "minilm-l6", "rotten-tomatoes-snippets"):
        assert is_cached(name), name


def test_unknown_asset():
    with pytest.raises(ValueError, match=r"unknown asset 'vgg19'.*expected one of"):
        get_asset("vgg19")
    with pytest.raises(ValueError, match="unknown asset"):
        is_cached("vgg19")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    # An empty cache and no network, whatever machine the tests run on.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "tlcourse"))
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")
    monkeypatch.setattr("tlcourse.assets.is_cached", lambda name: not get_asset(name).canonical)


def test_standin_is_announced(offline, capsys):
    assert resolve("vgg16-imagenet", get_profile("cpu")).name == "efficientnet-lite0-imagenet"
    out = capsys.readouterr().out
    assert "vgg16-imagenet" in out and "efficientnet-lite0-imagenet" in out and "tlcourse fetch" in out


def test_gpu_profile_fails_fast_with_fetch_command(offline):
    started = time.perf_counter()
    with pytest.raises(AssetUnavailableError, match="python -m tlcourse fetch bert-base-uncased"):
        resolve("bert-base-uncased", get_profile("gpu"))
    assert time.perf_counter() - started < 5


def test_cached_canonical_asset_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth").write_bytes(b"x")
    assert resolve("vgg16-imagenet", get_profile("gpu")).name == "vgg16-imagenet"


def test_network_check_is_bounded_with_a_stalled_resolver(monkeypatch):
    import socket
    import threading
    import time

    from tlcourse.assets import network_reachable

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


@pytest.mark.parametrize("host, timeout, error, message", [
    ("", 1.0, TypeError, "host must be a non-empty host name, got ''"),
    (None, 1.0, TypeError, "host must be a non-empty host name, got None"),
    ("example.org", 0, ValueError, "timeout must be a positive number of seconds, got 0"),
    ("example.org", float("nan"), ValueError, "timeout must be a positive number of seconds, got nan"),
])
def test_network_check_rejects_bad_arguments(host, timeout, error, message):
    from tlcourse.assets import network_reachable

    with pytest.raises(error, match=message):
        network_reachable(host, timeout=timeout)


@pytest.mark.parametrize("package", [None, "", 3.5])
def test_package_path_names_a_non_string(package):
    from tlcourse.assets import package_path

    with pytest.raises(TypeError, match="package must be an importable package name"):
        package_path(package)
