"""Experiments of the chapter *Concepts of transfer learning*: when transfer beats scratch, and when not.

Settings (:data:`SETTINGS`), a small CNN, MNIST digits 0-4 (source) and 5-9 (target), :func:`train_strategy` (shown
in the chapter), and three experiments: label budgets, an ImageNet backbone, negative transfer from an output layer."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from tlcourse.batchnorm import batchnorm_mode_accuracies
from tlcourse.checks import check_choice, check_instance, check_int, describe
from tlcourse.data import load_mnist_5k, make_loader, per_class_subset, split_indices
from tlcourse.images import mnist_as_rgb
from tlcourse.models import load_image_model
from tlcourse.profiles import Profile, settings_for
from tlcourse.runtime import seed_everything
from tlcourse.train import evaluate, fit
from tlcourse.transfer import extract_features, freeze, split_head, unfreeze

__all__ = ["STRATEGIES", "LEARNING_RATES", "VALIDATION_CHECKS", "ConceptsSettings", "SETTINGS", "settings",
           "SmallCNN", "TransferSplits", "load_transfer_splits", "budget_subset", "strategy_stages", "train_strategy",
           "held_out_accuracy", "accuracies", "pretrain_sources", "run_budget_comparison", "run_imagenet_comparison",
           "run_negative_transfer"]

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
            digits given to the ImageNet backbone. device: filled in from the profile by :func:`settings`.
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


def settings(profile: Profile) -> ConceptsSettings:
    """This chapter's sizes for ``profile`` (from :data:`SETTINGS`), on the profile's device.

    Args:
        profile: the run profile.

    Returns:
        A :class:`ConceptsSettings`.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> settings(get_profile("smoke")).budgets
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


def train_strategy(model: nn.Module, head: str | None, strategy: str, stages: Sequence[tuple[str, int]],
                   train_set: Dataset, validation_set: Dataset, config: ConceptsSettings, seed: int) -> float:
    """Train ``model`` stage by stage; per stage, pick the learning rate and the epoch on validation only.

    Every candidate learning rate of a stage (:data:`LEARNING_RATES`) starts from the best weights so far, on the
    same batches; the validation set is scored :data:`VALIDATION_CHECKS` times per stage at most. ``"probe"`` trains
    under ``head`` only (everything if None); ``"full"`` everything but a pretrained network's frozen BatchNorm.

    Args:
        model: the network, trained in place. head: parameter-name prefix of its head, e.g. ``"classifier"``.
        strategy: one of :data:`STRATEGIES`; picks the learning rates in :data:`LEARNING_RATES`.
        stages: from :func:`strategy_stages`. train_set, validation_set: labelled target examples, held-out ones.
        config: batch size, device and step cap. seed: the loader's shuffling.

    Returns:
        The best validation accuracy; ``model`` holds the weights that reached it.
    """
    check_choice("strategy", strategy, STRATEGIES)  # it picks the learning rates
    validation_loader = make_loader(validation_set, batch_size=256, shuffle=False)
    best_accuracy, best_state = -1.0, copy.deepcopy(model.state_dict())
    for stage, num_epochs in stages:
        start = best_state  # LP-FT's full stage starts from the probe's best head
        for lr in LEARNING_RATES[strategy][stage]:
            model.load_state_dict(start)
            seed_everything(seed)  # the same batches for every candidate
            loader = make_loader(train_set, batch_size=config.batch_size, shuffle=True, seed=seed)
            freeze(model)  # requires_grad = False everywhere, then switch on what this stage trains
            unfreeze(model, head if stage == "probe" else None)
            if stage == "full" and strategy != "scratch":
                for module in model.modules():  # pretrained BatchNorm keeps its statistics (see below)
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.requires_grad_(False)
            optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
            every = math.ceil(num_epochs / VALIDATION_CHECKS)  # epochs between two scorings of the validation set
            for done in range(0, num_epochs, every):
                fit(model, loader, optimizer, num_epochs=min(every, num_epochs - done), device=config.device,
                    max_steps_per_epoch=config.max_steps_per_epoch, progress=False)
                accuracy = float(evaluate(model, validation_loader, device=config.device)["accuracy"])
                if accuracy > best_accuracy:  # learning rate and stopping point, on validation only
                    best_accuracy, best_state = accuracy, copy.deepcopy(model.state_dict())
    unfreeze(model)
    model.load_state_dict(best_state)
    return best_accuracy


def _epochs(config: ConceptsSettings, train_set: Dataset) -> int:
    size = len(train_set)  # type: ignore[arg-type]
    steps_per_epoch = min(math.ceil(size / config.batch_size), config.max_steps_per_epoch or size)
    return max(2, math.ceil(config.target_steps / steps_per_epoch))


def held_out_accuracy(model: nn.Module, test_set: Dataset, device: str = "cpu") -> float:
    """Accuracy of ``model`` on ``test_set`` (the one look at the test data per run), in ``[0, 1]``."""
    check_int("len(test_set)", len(test_set))  # an empty test set has no accuracy
    return float(evaluate(model, make_loader(test_set, batch_size=256, shuffle=False), device=device)["accuracy"])


def _check_run(splits: TransferSplits, config: ConceptsSettings, sources: dict | None = None) -> None:
    check_instance("splits", splits, TransferSplits)
    check_instance("config", config, ConceptsSettings)
    if sources is not None and not (isinstance(sources, dict) and set(config.seeds) <= set(sources)):
        raise ValueError(f"sources must hold a source network for every seed {list(config.seeds)}, got {describe(sources)}")


def pretrain_sources(splits: TransferSplits, config: ConceptsSettings) -> dict[int, SmallCNN]:
    """One :class:`SmallCNN` per seed trained on the source task (digits 0-4).

    Args:
        splits: the data. config: seeds, epochs, batch size and device.

    Returns:
        ``{seed: trained network}``, in eval mode.
    """
    _check_run(splits, config)
    sources = {}
    for seed in config.seeds:
        seed_everything(seed)
        model = SmallCNN(5)
        loader = make_loader(splits.source, batch_size=config.batch_size, shuffle=True, seed=seed)
        fit(model, loader, torch.optim.Adam(model.parameters(), lr=1e-3), num_epochs=config.source_epochs,
            device=config.device, max_steps_per_epoch=config.max_steps_per_epoch, progress=False)
        sources[seed] = model.eval()
    return sources


def run_budget_comparison(splits: TransferSplits, sources: dict[int, SmallCNN],
                          config: ConceptsSettings) -> list[dict[str, object]]:
    """Every strategy at every budget and seed, from the seed's source network (scratch: random weights).

    Args:
        splits: the data. sources: from :func:`pretrain_sources`. config: budgets, seeds, steps.

    Returns:
        One row per run: ``{"budget", "strategy", "seed", "validation", "accuracy"}`` (accuracy on test).
    """
    _check_run(splits, config, sources)
    rows: list[dict[str, object]] = []
    for seed in config.seeds:
        for budget in config.budgets:
            train_set = budget_subset(splits.pool, budget, seed)
            for strategy in STRATEGIES:
                seed_everything(seed)  # the same fresh head for every strategy of this seed
                model = SmallCNN(5)
                if strategy != "scratch":
                    model.features.load_state_dict(sources[seed].features.state_dict())
                stages = strategy_stages(strategy, _epochs(config, train_set), config.probe_fraction)
                validation = train_strategy(model, "classifier", strategy, stages, train_set, splits.validation,
                                            config, seed)
                rows.append({"budget": budget, "strategy": strategy, "seed": seed, "validation": validation,
                             "accuracy": held_out_accuracy(model, splits.test, config.device)})
    return rows


def run_imagenet_comparison(profile: Profile, splits: TransferSplits,
                            config: ConceptsSettings) -> tuple[list[dict[str, object]], str]:
    """Linear probe and LP-FT of the ImageNet backbone at ``config.comparison_budget``, per seed.

    The probe trains on features computed once (a frozen backbone gives the same features every epoch); LP-FT
    continues from that probe's best head for the remaining epochs.

    Args:
        profile: picks the backbone (:func:`tlcourse.models.load_image_model`). splits: the data.
        config: sizes, seeds (``imagenet_seeds``) and device.

    Returns:
        ``(rows, asset)``: rows ``{"budget", "strategy", "seed", "validation", "accuracy"}``, LP-FT's also with
        ``"stored_statistics"`` and ``"batch_statistics"`` of the probed network on its training batch
        (:func:`tlcourse.batchnorm.batchnorm_mode_accuracies`); the asset name used.
    """
    _check_run(splits, config)  # a wrong profile is named by resolve
    loaded = load_image_model(profile, 5)

    def as_rgb(part: TensorDataset) -> TensorDataset:  # (N, 1, 28, 28) in [0, 1] -> (N, 3, S, S) normalised
        digits = part.tensors[0].squeeze(1).mul(255).round().to(torch.uint8)
        return TensorDataset(mnist_as_rgb(digits, config.image_size, loaded.mean, loaded.std), part.tensors[1])

    data = {seed: as_rgb(budget_subset(splits.pool, config.comparison_budget, seed)) for seed in config.imagenet_seeds}
    data.update(validation=as_rgb(splits.validation), test=as_rgb(splits.test))
    backbone, _ = split_head(copy.deepcopy(loaded.model), loaded.head)
    features = {key: extract_features(backbone, make_loader(part, 128, shuffle=False), config.device)
                for key, part in data.items()}
    del backbone  # one copy of the network fewer in memory while fine-tuning
    rows: list[dict[str, object]] = []
    for seed in config.imagenet_seeds:
        train_set, validation, test, train_features = data[seed], data["validation"], data["test"], features[seed]
        for strategy in ("linear_probe", "lp_ft"):
            seed_everything(seed)
            model = copy.deepcopy(loaded.model) if strategy == "lp_ft" else loaded.model  # a probe trains the head only
            head = model.get_submodule(loaded.head)
            head.reset_parameters()  # the same fresh head for both strategies of this seed
            (_, probe_epochs), *rest = strategy_stages(strategy, _epochs(config, train_set), config.probe_fraction)
            score = train_strategy(head, None, strategy, [("probe", probe_epochs)], train_features,
                                   features["validation"], config, seed)
            row = {"budget": config.comparison_budget, "strategy": f"{strategy} ({loaded.architecture})", "seed": seed}
            if rest:  # LP-FT: the probed network, then fine-tuning with BatchNorm kept as pretrained
                stored, batch = batchnorm_mode_accuracies(model, *train_set.tensors)
                row.update({"stored_statistics": stored, "batch_statistics": batch})
                score = train_strategy(model, loaded.head, strategy, rest, train_set, validation, config, seed)
                accuracy = held_out_accuracy(model, test, config.device)
            else:
                accuracy = held_out_accuracy(head, features["test"], config.device)
            rows.append({**row, "validation": score, "accuracy": accuracy})
    return rows, loaded.asset


def run_negative_transfer(splits: TransferSplits, sources: dict[int, SmallCNN],
                          config: ConceptsSettings) -> list[dict[str, object]]:
    """A linear probe on the source network's output layer (its 5 logits) at ``config.comparison_budget``.

    Args:
        splits: the data. sources: from :func:`pretrain_sources`. config: seeds, steps and device.

    Returns:
        Rows ``{"budget", "strategy", "seed", "validation", "accuracy"}``, as :func:`run_budget_comparison`.
    """
    _check_run(splits, config, sources)
    rows: list[dict[str, object]] = []
    for seed in config.seeds:
        train_set = budget_subset(splits.pool, config.comparison_budget, seed)
        seed_everything(seed)  # (B, 1, 28, 28) -> the frozen source's 5 logits -> a new linear head "1"
        model = nn.Sequential(copy.deepcopy(sources[seed]), nn.Linear(5, 5))
        stages = strategy_stages("linear_probe", _epochs(config, train_set))
        validation = train_strategy(model, "1", "linear_probe", stages, train_set, splits.validation, config, seed)
        rows.append({"budget": config.comparison_budget, "strategy": "linear_probe (source output layer)", "seed": seed,
                     "validation": validation, "accuracy": held_out_accuracy(model, splits.test, config.device)})
    return rows


def accuracies(rows: Sequence[dict[str, object]], strategy: str, budget: int,
               seeds: Sequence[int] | None = None) -> list[float]:
    """Test accuracies of one strategy at one budget, in seed order (to pair with another's).

    Args:
        rows: rows of the run functions. strategy: its name in the rows. budget: labels per class.
        seeds: keep only these seeds; default all.

    Returns:
        The accuracies, sorted by seed; ``ValueError`` if no row matches.

    Example:
        >>> accuracies([{"budget": 2, "strategy": "scratch", "seed": 1, "accuracy": 0.5}], "scratch", 2)
        [0.5]
    """
    chosen = [r for r in rows if r["strategy"] == strategy and r["budget"] == budget
              and (seeds is None or r["seed"] in seeds)]
    if not chosen:
        raise ValueError(f"no row for strategy {strategy!r} at budget {budget}")
    return [float(r["accuracy"]) for r in sorted(chosen, key=lambda r: r["seed"])]  # type: ignore[arg-type,misc]
