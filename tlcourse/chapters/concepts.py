"""The chapter *Concepts of transfer learning*: its settings, its data split, its small CNN and its table helper.

The training itself (the loop, freezing, LP-FT, the experiments) is written out in the chapter's cells."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.checks import check_int
from tlcourse.data import load_mnist_5k, per_class_subset, split_indices
from tlcourse.profiles import Profile, settings_for

__all__ = ["STRATEGIES", "LEARNING_RATES", "VALIDATION_CHECKS", "ConceptsSettings", "SETTINGS", "settings_on_device",
           "SmallCNN", "TransferSplits", "load_transfer_splits", "budget_subset", "strategy_stages", "epochs_for",
           "accuracies"]

STRATEGIES: tuple[str, ...] = ("scratch", "linear_probe", "fine_tune", "lp_ft")
# Two candidates per stage, one picked per run on validation: a head alone takes large steps,
# a pretrained network smaller ones, smaller still after LP-FT's probe (Kumar et al. 2022).
LEARNING_RATES: dict[str, dict[str, tuple[float, ...]]] = {
    "scratch": {"full": (1e-3, 3e-3)}, "linear_probe": {"probe": (1e-3, 1e-2)}, "fine_tune": {"full": (3e-4, 1e-3)},
    "lp_ft": {"probe": (1e-3, 1e-2), "full": (1e-4, 3e-4)}}
VALIDATION_CHECKS = 10  # scorings of the validation set per stage, at most (at 2 labels per class an epoch is 1 step)


@dataclass(frozen=True)
class ConceptsSettings:
    """Sizes of this chapter's experiments under one profile.

    ``budgets`` are labelled examples per class (every claim at the smallest); ``target_steps`` are the
    optimiser steps of every strategy at a budget; ``imagenet_seeds`` pair the ImageNet run with scratch.
    """

    batch_size: int
    budgets: tuple[int, ...]
    seeds: tuple[int, ...]
    imagenet_seeds: tuple[int, ...]
    source_epochs: int
    target_steps: int
    probe_fraction: float
    validation_examples: int
    test_examples: int
    max_steps_per_epoch: int | None
    image_size: int
    device: str = "cpu"

    @property
    def comparison_budget(self) -> int:
        """Labels per class of every claim: the smallest budget, by a rule fixed before any run."""
        return min(self.budgets)


SETTINGS: dict[str, ConceptsSettings] = {
    # Numbers mean nothing in smoke: it executes every code path in a few seconds.
    "smoke": ConceptsSettings(batch_size=16, budgets=(2, 5), seeds=(0, 1), imagenet_seeds=(0,),
                              source_epochs=1, target_steps=2, probe_fraction=0.5, validation_examples=20,
                              test_examples=20, max_steps_per_epoch=2, image_size=32),
    "cpu": ConceptsSettings(batch_size=32, budgets=(2, 10, 50), seeds=(0, 1, 2, 3, 4),
                            imagenet_seeds=(0, 1, 2, 3, 4), source_epochs=6, target_steps=40, probe_fraction=0.5,
                            validation_examples=150, test_examples=1000, max_steps_per_epoch=None, image_size=64),
    "gpu": ConceptsSettings(batch_size=32, budgets=(2, 10, 50), seeds=(0, 1, 2, 3, 4),
                            imagenet_seeds=(0, 1, 2, 3, 4), source_epochs=6, target_steps=60, probe_fraction=0.5,
                            validation_examples=250, test_examples=1200, max_steps_per_epoch=None, image_size=224),
}


def settings_on_device(profile: Profile) -> ConceptsSettings:
    """This chapter's sizes for ``profile`` with ``device`` set to the profile's."""
    return replace(settings_for(SETTINGS, profile), device=profile.device)


class SmallCNN(nn.Module):
    """A two-convolution CNN for 28x28 grey digits: ``features`` (shared) then a linear ``classifier`` (head)."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        check_int("num_classes", num_classes)
        check_int("width", width)
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, 14, 14)
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2w, 7, 7)
            nn.Flatten())  # (B, 2w * 49): the transferred representation
        self.classifier = nn.Linear(2 * width * 49, num_classes)  # the head, replaced per task

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for images ``(B, 1, 28, 28)``."""
        return self.classifier(self.features(images))


@dataclass(frozen=True)
class TransferSplits:
    """MNIST-5k: ``source`` digits 0-4; target digits 5-9 (labels ``digit - 5``) in a ``pool`` for budgets,
    a ``validation`` part for early stopping and a ``test`` part. Images ``(N, 1, 28, 28)`` in ``[0, 1]``."""

    source: TensorDataset
    pool: TensorDataset
    validation: TensorDataset
    test: TensorDataset


def load_transfer_splits(config: ConceptsSettings, seed: int = 0) -> TransferSplits:
    """Split MNIST-5k into source (digits 0-4) and target (digits 5-9) pool, validation and test parts."""
    images, labels = load_mnist_5k()
    images = images.float().unsqueeze(1) / 255.0  # (5000, 1, 28, 28) in [0, 1]
    source, target = torch.nonzero(labels < 5).flatten(), torch.nonzero(labels >= 5).flatten()
    test, validation, pool = (target[torch.tensor(part)] for part in split_indices(len(target), [0.4, 0.1, 0.5], seed))
    validation, test = validation[: config.validation_examples], test[: config.test_examples]
    return TransferSplits(*(TensorDataset(images[index], labels[index] - offset) for index, offset
                            in ((source, 0), (pool, 5), (validation, 5), (test, 5))))


def budget_subset(pool: TensorDataset, budget: int, seed: int) -> TensorDataset:
    """``budget`` random examples per class of ``pool`` (the same draw for every strategy of a seed)."""
    images, labels = pool.tensors
    chosen = torch.tensor(per_class_subset(labels, budget, seed))
    return TensorDataset(images[chosen], labels[chosen])


def epochs_for(config: ConceptsSettings, num_examples: int) -> int:
    """Whole epochs that reach ``config.target_steps`` optimiser steps on ``num_examples`` (at least 2, for LP-FT)."""
    steps_per_epoch = min(math.ceil(num_examples / config.batch_size), config.max_steps_per_epoch or num_examples)
    return max(2, math.ceil(config.target_steps / steps_per_epoch))


def strategy_stages(strategy: str, num_epochs: int, probe_fraction: float = 0.5) -> list[tuple[str, int]]:
    """The stages of a strategy with their epochs, ``"probe"`` (head only) or ``"full"``, ``num_epochs`` in all.
    """
    if strategy != "lp_ft":
        return [("probe" if strategy == "linear_probe" else "full", num_epochs)]
    probe = min(num_epochs - 1, max(1, round(num_epochs * probe_fraction)))
    return [("probe", probe), ("full", num_epochs - probe)]


def accuracies(rows: Sequence[dict[str, object]], strategy: str, budget: int,
               seeds: Sequence[int] | None = None) -> list[float]:
    """Test accuracies of one strategy at one budget, in seed order (to pair with another's); optionally only ``seeds``."""
    chosen = [r for r in rows if r["strategy"] == strategy and r["budget"] == budget
              and (seeds is None or r["seed"] in seeds)]
    if not chosen:
        raise ValueError(f"no row for strategy {strategy!r} at budget {budget}")
    return [float(r["accuracy"]) for r in sorted(chosen, key=lambda r: r["seed"])]  # type: ignore[arg-type,misc]
