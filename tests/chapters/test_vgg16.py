"""Tests for tlcourse.chapters.vgg16, plus the on-disk formats the VGG16 chapter reads (offline)."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tlcourse.data import load_cifar10
from tlcourse.images import IMAGENET_MEAN, IMAGENET_STD, mnist_as_rgb, validate_images
from tlcourse.models import build_vgg16
from tlcourse.train import evaluate
from tlcourse.transfer import (
    extract_features,
    split_head,
)


@pytest.fixture(scope="module")
def vgg() -> nn.Module:
    torch.manual_seed(0)
    return build_vgg16(10, pretrained=False)


def test_imagenet_weights_load_from_torch_hub_cache(tmp_path, monkeypatch):
    # The file torchvision would download, written in the cache with its official name. A cached
    # file is loaded as is: torch.hub only checks the hash prefix when it downloads.
    from torchvision.models import VGG16_Weights, vgg16

    torch.manual_seed(1)
    reference = vgg16(weights=None).state_dict()
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(reference, checkpoints / "vgg16-397923af.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # forget any set_dir, so TORCH_HOME is read
    model = build_vgg16(10, pretrained=True)
    loaded = model.state_dict()
    for name in ("features.0.weight", "classifier.0.weight", "classifier.3.bias"):
        assert torch.equal(loaded[name], reference[name])
    assert model.classifier[6].out_features == 10
    assert VGG16_Weights.IMAGENET1K_V1.url.endswith("vgg16-397923af.pth")


def _write_cifar(root, per_batch: int) -> dict[str, str]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {"batch_label": name, "labels": rng.integers(0, 10, per_batch).tolist(),
                 "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "filenames": [f"{i}.png" for i in range(per_batch)]}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    meta = {"label_names": [n for n in ["airplane", "automobile", "bird", "cat", "deer",
                                                  "dog", "frog", "horse", "ship", "truck"]]}
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle)
    return {n: hashlib.md5((folder / n).read_bytes()).hexdigest() for n in names + ["batches.meta"]}


def test_cifar10_reads_official_pickle_layout(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    md5 = _write_cifar(tmp_path, per_batch=4)
    # torchvision checks every file's md5 against CIFAR-10's; point it at the tiny files' md5s.
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5["batches.meta"]})
    train = load_cifar10(train=True, root=tmp_path)
    test = load_cifar10(train=False, root=tmp_path)
    assert len(train) == 20 and len(test) == 4
    assert train.classes[0] == "airplane"
    image, label = test[0]
    assert image.size == (32, 32) and 0 <= label < 10


def test_head_replacement_keeps_fc6_fc7(vgg):
    torch.manual_seed(0)
    from torchvision.models import vgg16

    original = vgg16(weights=None)
    fc6, fc7 = original.classifier[0].weight.clone(), original.classifier[3].weight.clone()
    from tlcourse.transfer import replace_head

    replace_head(original, "classifier.6", 10)
    assert torch.equal(original.classifier[0].weight, fc6)
    assert torch.equal(original.classifier[3].weight, fc7)
    assert original.classifier[6].in_features == 4096 and original.classifier[6].out_features == 10


def test_cached_features_equal_backbone_output(vgg):
    torch.manual_seed(0)
    images = torch.randn(5, 3, 32, 32)
    labels = torch.tensor([0, 1, 2, 3, 4])
    backbone, head = split_head(vgg, "classifier.6")
    try:
        cache = extract_features(backbone, DataLoader(TensorDataset(images, labels), batch_size=2))
        backbone.eval()
        with torch.no_grad():
            direct = backbone(images)  # (5, 4096): fc7 activations
        assert cache.tensors[0].shape == (5, 4096)
        torch.testing.assert_close(cache.tensors[0], direct)
        assert torch.equal(cache.tensors[1], labels)
        # The head on cached features reproduces the full model's logits.
        vgg.classifier[6] = head
        with torch.no_grad():
            torch.testing.assert_close(head(cache.tensors[0]), vgg(images))
    finally:
        vgg.classifier[6] = head


def test_extract_features_empty_loader():
    with pytest.raises(ValueError, match="empty"):
        extract_features(nn.Linear(2, 2), [])


def test_mnist_as_rgb_matches_hand_computation():
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    out = mnist_as_rgb(images, 32)
    assert out.shape == (3, 3, 32, 32)
    gray = torch.nn.functional.interpolate(images.float().unsqueeze(1) / 255, size=32, mode="bilinear")
    for c in range(3):
        torch.testing.assert_close(out[:, c], (gray[:, 0] - IMAGENET_MEAN[c]) / IMAGENET_STD[c])


def test_bad_input_raises():
    with pytest.raises(ValueError, match="3 channels"):
        validate_images(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="too small"):
        validate_images(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="labels must be in"):
        validate_images(torch.zeros(2, 3, 32, 32), torch.tensor([0, 10]), num_classes=10)
    with pytest.raises(ValueError, match="empty"):
        validate_images(torch.zeros(0, 3, 32, 32))
    with pytest.raises(ValueError, match="empty"):
        mnist_as_rgb(torch.zeros(0, 28, 28, dtype=torch.uint8), 32)
    with pytest.raises(ValueError, match="at least 32"):
        mnist_as_rgb(torch.zeros(1, 28, 28, dtype=torch.uint8), 16)
    with pytest.raises(ValueError, match="no submodule"):
        split_head(nn.Linear(2, 2), "classifier.6")


# --- the chapter's settings and its table of paired differences -------------------------------

import dataclasses  # noqa: E402

from tlcourse.chapters.vgg16 import REESTIMATES_BATCHNORM, SETTINGS, STRATEGIES, paired_table  # noqa: E402


def test_settings_reject_rows_that_break_the_comparison():
    config = SETTINGS["smoke"]
    with pytest.raises(ValueError, match="probe_epochs"):
        dataclasses.replace(config, num_epochs=2, probe_epochs=2)
    with pytest.raises(ValueError, match="lowest_lr"):
        dataclasses.replace(config, lowest_lr=1.0)
    with pytest.raises(ValueError, match="image_size"):
        dataclasses.replace(config, image_size=16)


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu", "rehearsal"])
def test_every_profile_has_a_settings_row(name):
    from tlcourse.profiles import get_profile, settings_for

    profile = get_profile(name)
    config = settings_for(SETTINGS, profile)
    assert config == SETTINGS[profile.sizes_from or name]  # the page reads its row through settings_for
    assert config.num_seeds >= (2 if name in ("smoke", "rehearsal") else 3)


def test_strategies_that_train_batchnorm_are_the_ones_reestimated():
    assert set(REESTIMATES_BATCHNORM) < set(STRATEGIES)
    assert "feature extraction" not in REESTIMATES_BATCHNORM and "LP-FT" not in REESTIMATES_BATCHNORM


def test_paired_table_matches_scipy_paired_t_interval():
    from scipy import stats

    accuracies = {"a": [0.90, 0.92, 0.95], "b": [0.85, 0.90, 0.91], "c": [0.91, 0.93, 0.94]}
    table = paired_table(accuracies)
    assert list(table.index) == [("a", "b"), ("a", "c"), ("b", "c")]
    for (first, second), row in table.iterrows():
        differences = np.subtract(accuracies[first], accuracies[second])
        low, high = stats.t.interval(0.95, len(differences) - 1, loc=differences.mean(), scale=stats.sem(differences))
        assert row["mean"] == pytest.approx(differences.mean())
        assert (row["low"], row["high"]) == (pytest.approx(low), pytest.approx(high))
