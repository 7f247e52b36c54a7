"""Benchmark: train a linear head on cached backbone features vs recomputing the frozen backbone.

Both runs use the same frozen pretrained backbone (EfficientNet-Lite0 from its wheel, offline), the
same MNIST-5k images as 3-channel 64x64 inputs, the same head initialisation and the same shuffling
seed, so they compute the same thing and should reach the same accuracy; only the time differs.
Writes benchmarks/results/cached_features.json.

Usage: python benchmarks/cached_features.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.data import load_mnist_5k, make_loader
from tlcourse.models import load_efficientnet_lite0
from tlcourse.runtime import seed_everything
from tlcourse.train import evaluate, fit
from tlcourse.transfer import extract_features, split_head
from tlcourse.images import mnist_as_rgb

NUM_TRAIN, NUM_TEST, IMAGE_SIZE, EPOCHS, BATCH = 512, 256, 64, 3, 64


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
    seed_everything(0)
    images, labels = load_mnist_5k()
    x = mnist_as_rgb(images[: NUM_TRAIN + NUM_TEST], IMAGE_SIZE)
    y = labels[: NUM_TRAIN + NUM_TEST]
    train, test = TensorDataset(x[:NUM_TRAIN], y[:NUM_TRAIN]), TensorDataset(x[NUM_TRAIN:], y[NUM_TRAIN:])
    backbone, _ = split_head(load_efficientnet_lite0(10), "_fc")
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    torch.manual_seed(1)
    initial_head = nn.Linear(1280, 10)

    # (a) recompute the frozen backbone on every batch of every epoch
    head = nn.Linear(1280, 10); head.load_state_dict(initial_head.state_dict())
    model = FrozenBackboneClassifier(backbone, head)
    started = time.perf_counter()
    fit(model, make_loader(train, BATCH, shuffle=True, seed=0), torch.optim.SGD(head.parameters(), lr=0.05),
        num_epochs=EPOCHS, progress=False)
    recompute_seconds = time.perf_counter() - started
    recompute_accuracy = evaluate(model, make_loader(test, BATCH, shuffle=False))["accuracy"]

    # (b) run the backbone once, then train the head on the cache
    head = nn.Linear(1280, 10); head.load_state_dict(initial_head.state_dict())
    started = time.perf_counter()
    train_cache = extract_features(backbone, make_loader(train, BATCH, shuffle=False))
    fit(head, make_loader(train_cache, BATCH, shuffle=True, seed=0), torch.optim.SGD(head.parameters(), lr=0.05),
        num_epochs=EPOCHS, progress=False)
    cached_seconds = time.perf_counter() - started
    test_cache = extract_features(backbone, make_loader(test, BATCH, shuffle=False))
    cached_accuracy = evaluate(head, make_loader(test_cache, BATCH, shuffle=False))["accuracy"]

    result = {
        "backbone": "efficientnet-lite0 (ImageNet weights, frozen)", "data": "mnist-5k as 3x64x64",
        "num_train": NUM_TRAIN, "num_test": NUM_TEST, "epochs": EPOCHS, "batch_size": BATCH,
        "recompute_seconds": round(recompute_seconds, 3), "cached_seconds": round(cached_seconds, 3),
        "speedup": round(recompute_seconds / cached_seconds, 2),
        "recompute_accuracy": recompute_accuracy, "cached_accuracy": cached_accuracy,
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).resolve().parent / "results" / "cached_features.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
