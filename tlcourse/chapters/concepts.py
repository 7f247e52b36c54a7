"""The chapter *Concepts of transfer learning*: its settings, data, network and how every strategy is trained.

Settings (:data:`SETTINGS`), a small CNN, MNIST digits 0-4 (source) and 5-9 (target), and the training procedure
shown in the chapter (:func:`train_strategy`, :func:`train_stage`). The chapter's three experiments (label budgets,
an ImageNet backbone, negative transfer from an output layer) are in :mod:`tlcourse.chapters.concepts_experiments`."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from tlcourse.checks import check_choice, check_instance, check_int, check_sequence
from tlcourse.data import load_mnist_5k, make_loader, per_class_subset, split_indices
from tlcourse.profiles import Profile, settings_for
from tlcourse.runtime import seed_everything
from tlcourse.train import evaluate, fit
from tlcourse.transfer import freeze, freeze_batchnorm, linear_probe_then_fine_tune, unfreeze

__all__ = ["STRATEGIES", "LEARNING_RATES", "VALIDATION_CHECKS", "ConceptsSettings", "SETTINGS", "settings_on_device",
           "SmallCNN", "TransferSplits", "load_transfer_splits", "budget_subset", "strategy_stages", "train_stage",
           "train_strategy"]

STRATEGIES: tuple[str, ...] = ("scratch", "linear_probe", "fine_tune", "lp_ft")
# Two candidates per stage, one picked per run on validation (train_strategy): a head alone takes large steps,
# a pretrained network smaller ones, smaller still after LP-FT's probe (Kumar et al. 2022).
LEARNING_RATES: dict[str, dict[str, tuple[float, ...]]] = {
    "scratch": {"full": (1e-3, 3e-3)}, "linear_probe": {"probe": (1e-3, 1e-2)}, "fine_tune": {"full": (3e-4, 1e-3)},
    "lp_ft": {"probe": (1e-3, 1e-2), "full": (1e-4, 3e-4)}}
VALIDATION_CHECKS = 10  # scorings of the validation set per stage, at most (at 2 labels per class an epoch is 1 step)


@dataclass(frozen=True)
class ConceptsSettings:
    """Sizes of this chapter's experiments under one profile.

    Attributes:
        batch_size: examples per optimiser step. budgets: labelled target examples per class in the
            budget experiment; every claim is made at the smallest (:attr:`comparison_budget`).
        seeds: every cell is repeated over these (a new source network, label draw and head each).
        imagenet_seeds: the seeds of the ImageNet experiment (a subset of ``seeds``, to pair with scratch).
        source_epochs: pretraining epochs on the source task. target_steps: optimiser steps of every
            strategy at a budget (rounded up to whole epochs). probe_fraction: LP-FT's share of epochs for the head.
        validation_examples: target examples for early stopping (disjoint from pool and test).
            test_examples: target examples touched once, for the reported accuracy.
        max_steps_per_epoch: cap passed to ``fit`` (``None``: no cap). image_size: side in pixels of the
            digits given to the ImageNet backbone. device: filled in from the profile by :func:`settings_on_device`.
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
    """This chapter's sizes for ``profile`` (``settings_for(SETTINGS, profile)``) with ``device`` set to the profile's.

    The one function of this kind in the chapters: the experiments read the device from their settings.

    Args:
        profile: the run profile.

    Returns:
        A :class:`ConceptsSettings`.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> settings_on_device(get_profile("smoke")).budgets
        (2, 5)
    """
    return replace(settings_for(SETTINGS, profile), device=profile.device)


class SmallCNN(nn.Module):
    """A two-convolution CNN for 28x28 grey digits: ``features`` (shared) then a linear ``classifier`` (head).

    Args:
        num_classes: outputs of the head. width: channels of the first convolution (the second has twice as many).

    Example:
        >>> SmallCNN(5)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 5])
    """

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
    """Split MNIST-5k into source (digits 0-4) and target (digits 5-9) pool, validation and test.

    Args:
        config: the validation and test sizes. seed: which random split of the target digits.

    Returns:
        A :class:`TransferSplits`.
    """
    check_instance("config", config, ConceptsSettings)
    images, labels = load_mnist_5k()
    images = images.float().unsqueeze(1) / 255.0  # (5000, 1, 28, 28) in [0, 1]
    source, target = torch.nonzero(labels < 5).flatten(), torch.nonzero(labels >= 5).flatten()
    test, validation, pool = (target[torch.tensor(part)] for part in split_indices(len(target), [0.4, 0.1, 0.5], seed))
    validation, test = validation[: config.validation_examples], test[: config.test_examples]
    return TransferSplits(*(TensorDataset(images[index], labels[index] - offset) for index, offset
                            in ((source, 0), (pool, 5), (validation, 5), (test, 5))))


def budget_subset(pool: TensorDataset, budget: int, seed: int) -> TensorDataset:
    """``budget`` random examples per class of ``pool`` (the same draw for every strategy of a seed).

    Args:
        pool: ``TensorDataset(images, labels)``. budget: examples per class. seed: which draw.

    Returns:
        The subset as a ``TensorDataset``.

    Example:
        >>> pool = TensorDataset(torch.zeros(6, 1), torch.tensor([0, 0, 0, 1, 1, 1]))
        >>> len(budget_subset(pool, 2, seed=0))
        4
    """
    check_int("budget", budget)
    images, labels = pool.tensors
    chosen = torch.tensor(per_class_subset(labels, budget, seed))
    return TensorDataset(images[chosen], labels[chosen])


def strategy_stages(strategy: str, num_epochs: int, probe_fraction: float = 0.5) -> list[tuple[str, int]]:
    """The stages of a strategy with their epochs: ``"probe"`` (head only) or ``"full"``.

    Every strategy gets ``num_epochs`` epochs in all, so strategies compared on one data set take
    the same number of optimiser steps; LP-FT splits them between its probe and its fine-tuning.

    Args:
        strategy: one of :data:`STRATEGIES`. num_epochs: epochs in all.
        probe_fraction: LP-FT's share of epochs for the probe, in ``(0, 1)``.

    Returns:
        ``[(stage, epochs), ...]`` in order; ``ValueError`` for an unknown strategy, ``num_epochs < 2``
        with LP-FT, or a bad fraction.

    Example:
        >>> strategy_stages("lp_ft", 10)
        [('probe', 5), ('full', 5)]
    """
    check_int("num_epochs", num_epochs)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if strategy != "lp_ft":
        return [("probe" if strategy == "linear_probe" else "full", num_epochs)]
    if not 0 < probe_fraction < 1 or num_epochs < 2:
        raise ValueError(f"lp_ft needs num_epochs >= 2 and 0 < probe_fraction < 1, got {num_epochs}, {probe_fraction}")
    probe = min(num_epochs - 1, max(1, round(num_epochs * probe_fraction)))
    return [("probe", probe), ("full", num_epochs - probe)]


def train_stage(model: nn.Module, learning_rates: Sequence[float], num_epochs: int, train_set: Dataset,
                validation_set: Dataset, config: ConceptsSettings, seed: int,
                best: tuple[float, dict] | None = None) -> tuple[float, dict]:
    """Train the parameters of ``model`` that require gradients; pick learning rate and epoch on validation only.

    Every candidate learning rate starts from the best weights so far (``best``, else ``model``'s), on the same
    batches; the validation set is scored :data:`VALIDATION_CHECKS` times at most.

    Args:
        model: the network, trained in place. learning_rates: the candidates. num_epochs: epochs per candidate.
        train_set, validation_set: labelled target examples, held-out ones. config: batch size, device, step cap.
        seed: the loader's shuffling. best: ``(validation accuracy, state dict)`` of an earlier stage, to beat.

    Returns:
        The new ``(best validation accuracy, its state dict)``; ``model`` holds the last candidate's weights.
    """
    check_sequence("learning_rates", learning_rates)  # no candidate would train nothing, silently
    check_int("num_epochs", num_epochs)
    best_accuracy, best_state = best if best is not None else (-1.0, copy.deepcopy(model.state_dict()))
    start = best_state  # LP-FT's full stage starts from the probe's best head
    validation_loader = make_loader(validation_set, batch_size=256, shuffle=False)
    for lr in learning_rates:
        model.load_state_dict(start)
        seed_everything(seed)  # the same batches for every candidate
        loader = make_loader(train_set, batch_size=config.batch_size, shuffle=True, seed=seed)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
        every = math.ceil(num_epochs / VALIDATION_CHECKS)  # epochs between two scorings of the validation set
        for done in range(0, num_epochs, every):
            fit(model, loader, optimizer, num_epochs=min(every, num_epochs - done), device=config.device,
                max_steps_per_epoch=config.max_steps_per_epoch, progress=False)
            accuracy = float(evaluate(model, validation_loader, device=config.device)["accuracy"])
            if accuracy > best_accuracy:  # learning rate and stopping point, on validation only
                best_accuracy, best_state = accuracy, copy.deepcopy(model.state_dict())
    return best_accuracy, best_state


def train_strategy(model: nn.Module, head: str, strategy: str, stages: Sequence[tuple[str, int]],
                   train_set: Dataset, validation_set: Dataset, config: ConceptsSettings, seed: int) -> float:
    """Train ``model`` with one strategy: choose what each stage trains, then :func:`train_stage` trains it.

    A probe trains the parameters under ``head`` only; a full stage everything, but a pretrained network's
    BatchNorm stays frozen (:func:`tlcourse.transfer.freeze_batchnorm`); LP-FT is the library's
    :func:`tlcourse.transfer.linear_probe_then_fine_tune`, with one best-on-validation record through both stages.

    Args:
        model: the network, trained in place. head: parameter-name prefix of its head, e.g. ``"classifier"``.
        strategy: one of :data:`STRATEGIES`; picks the learning rates in :data:`LEARNING_RATES`.
        stages: from :func:`strategy_stages`. train_set, validation_set: labelled target examples, held-out ones.
        config: batch size, device and step cap. seed: the loader's shuffling.

    Returns:
        The best validation accuracy; ``model`` holds the weights that reached it.
    """
    check_choice("strategy", strategy, STRATEGIES)  # it picks the learning rates
    best = None

    def train(stage: str, num_epochs: int) -> None:
        nonlocal best
        best = train_stage(model, LEARNING_RATES[strategy][stage], num_epochs, train_set, validation_set,
                           config, seed, best)

    if strategy == "lp_ft":  # the head alone, then everything but BatchNorm from the probe's best head
        (_, probe_epochs), (_, full_epochs) = stages
        linear_probe_then_fine_tune(model, head, probe=lambda _: train("probe", probe_epochs),
                                    fine_tune=lambda _: train("full", full_epochs))
    else:
        (stage, num_epochs), = stages
        freeze(model)  # requires_grad = False everywhere, then switch on what this strategy trains
        unfreeze(model, head if stage == "probe" else None)
        if strategy == "fine_tune":
            freeze_batchnorm(model)  # pretrained BatchNorm keeps its statistics (see below)
        train(stage, num_epochs)
    unfreeze(model)
    model.load_state_dict(best[1])
    return best[0]
