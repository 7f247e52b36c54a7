"""Benchmark: train heads on cached backbone features vs recomputing the frozen backbone.

At the VGG16 chapter's sizes in the ``cpu`` profile (read from its settings table, so the
benchmark follows the chapter): the stand-in backbone (EfficientNet-Lite0 from its wheel, offline,
frozen, BatchNorm in eval mode), the same MNIST-5k training digits as 3-channel images, the same
seeded head initialisations and shuffling. The chapter trains a head on the frozen backbone's
outputs ``num_seeds`` times for feature extraction (``num_epochs`` each) and ``num_seeds`` times
for LP-FT's probe (``probe_epochs`` each); it computes the features once. Way (a) recomputes the
backbone on every batch of every one of those runs; way (b) runs it once and trains every head on
the cache. Both compute the same thing, so the heads' accuracies must agree; only the time differs.
The speed-up of a single run (one seed of feature extraction) is reported too.
Writes benchmarks/results/cached_features.json.

Usage: python benchmarks/cached_features.py
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.chapters.vgg16 import SETTINGS
from tlcourse.data import load_mnist_5k, make_loader
from tlcourse.images import mnist_as_rgb
from tlcourse.models import load_efficientnet_lite0
from tlcourse.profiles import get_profile, settings_for
from tlcourse.runtime import seed_everything
from tlcourse.train import evaluate, fit
from tlcourse.transfer import extract_features, split_head


class FrozenBackboneClassifier(nn.Module):
    """Backbone kept in eval mode and without gradients, followed by a trainable head."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def train(self, mode: bool = True) -> "FrozenBackboneClassifier":
        super().train(mode)
        self.backbone.eval()  # frozen: BatchNorm statistics and dropout as at test time
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.backbone(images)  # (B, 1280)
        return self.head(features)


def main() -> dict:
    config = settings_for(SETTINGS, get_profile("cpu"))
    images, labels = load_mnist_5k()
    num_test = 500
    x = mnist_as_rgb(images[: config.num_train + num_test], config.image_size)  # (N, 3, S, S)
    y = labels[: config.num_train + num_test]
    train = TensorDataset(x[: config.num_train], y[: config.num_train])
    test = TensorDataset(x[config.num_train:], y[config.num_train:])
    backbone, _ = split_head(load_efficientnet_lite0(10), "_fc")
    backbone.eval()
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    # the chapter's head runs: feature extraction and LP-FT's probe, once per seed
    runs = [(seed, config.num_epochs) for seed in range(config.num_seeds)]
    runs += [(seed, config.probe_epochs) for seed in range(config.num_seeds)]

    def train_head(seed: int, num_epochs: int, model: nn.Module, head: nn.Module, data: TensorDataset) -> None:
        fit(model, make_loader(data, config.batch_size, shuffle=True, seed=seed),
            torch.optim.SGD(head.parameters(), lr=config.head_lr, momentum=0.9), num_epochs=num_epochs,
            progress=False)

    def fresh_head(seed: int) -> nn.Linear:
        seed_everything(seed)
        return nn.Linear(1280, 10)

    # (a) recompute the frozen backbone on every batch of every run (evaluation is not timed)
    recompute_seconds, recompute_run_seconds, recompute_accuracies = 0.0, [], []
    for seed, num_epochs in runs:
        head = fresh_head(seed)
        model = FrozenBackboneClassifier(backbone, head)
        started = time.perf_counter()
        train_head(seed, num_epochs, model, head, train)
        recompute_run_seconds.append(time.perf_counter() - started)
        recompute_accuracies.append(evaluate(model, make_loader(test, 250, shuffle=False))["accuracy"])
    recompute_seconds = sum(recompute_run_seconds)

    # (b) run the backbone once, then train every head on the cache
    started = time.perf_counter()
    train_cache = extract_features(backbone, make_loader(train, config.batch_size, shuffle=False))
    extract_seconds = time.perf_counter() - started
    test_cache = extract_features(backbone, make_loader(test, 250, shuffle=False))
    cached_run_seconds, cached_accuracies = [], []
    for seed, num_epochs in runs:
        head = fresh_head(seed)
        started = time.perf_counter()
        train_head(seed, num_epochs, head, head, train_cache)
        cached_run_seconds.append(time.perf_counter() - started)
        cached_accuracies.append(evaluate(head, make_loader(test_cache, 250, shuffle=False))["accuracy"])
    cached_seconds = extract_seconds + sum(cached_run_seconds)
    first_run_seconds = recompute_run_seconds[0]
    cached_first_run_seconds = extract_seconds + cached_run_seconds[0]

    result = {
        "backbone": "efficientnet-lite0 (ImageNet weights, frozen)",
        "data": f"mnist-5k as 3x{config.image_size}x{config.image_size}",
        "sizes": "the VGG16 chapter's cpu settings", "num_train": config.num_train, "num_test": num_test,
        "batch_size": config.batch_size, "head_runs": [list(run) for run in runs],
        "head_epochs_in_all": sum(epochs for _, epochs in runs),
        "recompute_seconds": round(recompute_seconds, 2), "cached_seconds": round(cached_seconds, 2),
        "of_which_feature_extraction_seconds": round(extract_seconds, 2),
        "speedup": round(recompute_seconds / cached_seconds, 2),
        "single_run_speedup": round(first_run_seconds / cached_first_run_seconds, 2),
        "same_accuracies": recompute_accuracies == cached_accuracies,
        "largest_accuracy_difference": max(abs(a - b) for a, b in zip(recompute_accuracies, cached_accuracies)),
        "recompute_accuracies": recompute_accuracies, "cached_accuracies": cached_accuracies,
        "threads": torch.get_num_threads(), "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).resolve().parent / "results" / "cached_features.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
