"""Transfer-versus-scratch experiments for the chapter *Concepts of transfer learning*.

The module holds the pieces the chapter calls: a small CNN (:class:`SmallCNN`), the chapter's
sizes per profile (:func:`settings`), the four target-training strategies (scratch,
linear probe, full fine-tuning, LP-FT after Kumar et al. 2022) in :func:`train_strategy`, the
MNIST source->target comparison over label budgets (:func:`run_transfer_comparison`), the same
comparison with an ImageNet backbone (:func:`run_imagenet_comparison`), negative transfer from a
source with shuffled labels (:func:`run_negative_transfer`). Its two figures are
:func:`tlcourse.plotting.plot_transfer_vocabulary` and :func:`tlcourse.plotting.plot_budget_curves`.

All training goes through :func:`tlcourse.train.fit`; all seeds through
:func:`tlcourse.runtime.seed_everything` and :func:`tlcourse.data.make_loader`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from tlcourse.batchnorm import recompute_batchnorm_statistics
from tlcourse.data import load_mnist_5k, make_loader, per_class_subset, split_indices
from tlcourse.images import mnist_as_rgb
from tlcourse.metrics import mean_and_std
from tlcourse.models import load_image_model
from tlcourse.plotting import new_axes
from tlcourse.profiles import Profile, settings_for
from tlcourse.runtime import seed_everything
from tlcourse.train import evaluate, fit
from tlcourse.transfer import freeze, unfreeze

__all__ = [
    "STRATEGIES",
    "SOURCE_CLASSES",
    "TARGET_CLASSES",
    "ConceptsSettings",
    "SETTINGS",
    "settings",
    "SmallCNN",
    "strategy_stages",
    "train_strategy",
    "MnistTransferData",
    "load_mnist_transfer_data",
    "pretrain_source",
    "run_transfer_comparison",
    "run_negative_transfer",
    "run_imagenet_comparison",
    "summarize",
    "beats_scratch",
    "plot_budget_curves",
]

STRATEGIES: tuple[str, ...] = ("scratch", "linear_probe", "fine_tune", "lp_ft")
SOURCE_CLASSES: tuple[int, ...] = (0, 1, 2, 3, 4)
TARGET_CLASSES: tuple[int, ...] = (5, 6, 7, 8, 9)


@dataclass(frozen=True)
class ConceptsSettings:
    """Sizes of this chapter's experiments under one profile.

    Attributes:
        batch_size: examples per batch.
        budgets: labelled target examples per class to compare.
        seeds: the seeds every cell of the table is repeated over.
        source_examples: source (digits 0-4) training examples for pretraining.
        source_epochs: pretraining epochs.
        target_steps: optimiser steps per target training stage (about; whole epochs).
        test_examples: held-out target test examples (disjoint from every budget).
        max_steps_per_epoch: cap passed to ``fit`` (``None``: no cap).
        imagenet_steps: optimiser steps per stage in the ImageNet experiment.
        imagenet_test_examples: test examples in the ImageNet experiment.
        imagenet_seeds: seeds of the ImageNet experiment.
        image_size: side in pixels of the digits given to the ImageNet backbone.
        imagenet_strategies: strategies of the ImageNet experiment (smoke: the cheapest only).
        device: where to train; filled in from the profile by :func:`settings`.
    """

    batch_size: int
    budgets: tuple[int, ...]
    seeds: tuple[int, ...]
    source_examples: int
    source_epochs: int
    target_steps: int
    test_examples: int
    max_steps_per_epoch: int | None
    imagenet_steps: int
    imagenet_test_examples: int
    imagenet_seeds: tuple[int, ...]
    image_size: int
    imagenet_strategies: tuple[str, ...] = ("linear_probe", "fine_tune", "lp_ft")
    device: str = "cpu"


SETTINGS: dict[str, ConceptsSettings] = {
    # Numbers mean nothing in smoke: it executes every code path in a few seconds.
    "smoke": ConceptsSettings(batch_size=16, budgets=(2, 5), seeds=(0, 1), source_examples=64, source_epochs=1,
                              target_steps=3, test_examples=64, max_steps_per_epoch=3, imagenet_steps=1,
                              imagenet_test_examples=16, imagenet_seeds=(0,), image_size=32,
                              imagenet_strategies=("linear_probe",)),
    "cpu": ConceptsSettings(batch_size=32, budgets=(10, 50, 200), seeds=(0, 1, 2), source_examples=2000,
                            source_epochs=2, target_steps=40, test_examples=1000, max_steps_per_epoch=None,
                            imagenet_steps=15, imagenet_test_examples=200, imagenet_seeds=(0, 1, 2), image_size=64),
    "gpu": ConceptsSettings(batch_size=128, budgets=(10, 50, 200), seeds=(0, 1, 2), source_examples=2500,
                            source_epochs=3, target_steps=40, test_examples=1200, max_steps_per_epoch=None,
                            imagenet_steps=200, imagenet_test_examples=1200, imagenet_seeds=(0, 1, 2),
                            image_size=224),
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
        num_classes: outputs of the task-specific head.
        width: channels of the first convolution (the second has twice as many).

    Example:
        >>> SmallCNN(5)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 5])
    """

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        if num_classes < 1 or width < 1:
            raise ValueError(f"num_classes and width must be positive, got {num_classes}, {width}")
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, 14, 14)
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2w, 7, 7)
            nn.Flatten(),  # (B, 2w * 49): the transferred representation
        )
        # Task-specific head, straight on the convolutional features: the convolutions are the
        # general part worth transferring (Yosinski et al. 2014), the head is replaced per task.
        self.classifier = nn.Linear(2 * width * 49, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for images ``(B, 1, 28, 28)``."""
        return self.classifier(self.features(images))


def strategy_stages(strategy: str) -> tuple[str, ...]:
    """The training stages of a strategy, in order: ``"probe"`` (head only) or ``"full"``.

    Args:
        strategy: one of :data:`STRATEGIES`.

    Returns:
        E.g. ``("probe", "full")`` for LP-FT.

    Raises:
        ValueError: for an unknown strategy.

    Example:
        >>> strategy_stages("lp_ft")
        ('probe', 'full')
    """
    stages = {"scratch": ("full",), "linear_probe": ("probe",), "fine_tune": ("full",),
              "lp_ft": ("probe", "full")}
    if strategy not in stages:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    return stages[strategy]


# Learning rates per stage: the head alone tolerates a large step; a full network from a
# pretrained start gets a smaller one in LP-FT so the good head is not wrecked (Kumar et al. 2022).
_LEARNING_RATES = {"probe": 1e-2, "full": 1e-3, "full_after_probe": 3e-4}


def train_strategy(model: nn.Module, head: str, strategy: str, train_set: Dataset, test_set: Dataset,
                   config: ConceptsSettings, seed: int, steps: int | None = None,
                   on_stage: Callable[[str, nn.Module], None] | None = None) -> float:
    """Train ``model`` on the target data with ``strategy`` and return its test accuracy.

    ``model`` arrives initialised: a random network for ``"scratch"``, a pretrained backbone with a
    fresh head otherwise. ``"probe"`` stages train only parameters under ``head`` (frozen
    BatchNorm layers stay in eval mode, see :func:`tlcourse.train.fit`); ``"full"`` stages train
    all, and after a final ``"full"`` stage the BatchNorm running statistics are re-estimated on
    ``train_set`` (:func:`tlcourse.batchnorm.recompute_batchnorm_statistics`).

    Args:
        model: the network; modified in place.
        head: parameter-name prefix of the task-specific head, e.g. ``"classifier"``.
        strategy: one of :data:`STRATEGIES`.
        train_set: labelled target examples.
        test_set: held-out target examples.
        config: sizes and device.
        seed: seeds the weights' noise and the loader order.
        steps: optimiser steps per stage (about; rounded up to whole epochs); default
            ``config.target_steps``.
        on_stage: called as ``on_stage(stage_name, model)`` just before each stage trains.

    Returns:
        Test accuracy in ``[0, 1]``.

    Raises:
        ValueError: for an unknown strategy or non-positive ``steps``.

    Example:
        >>> # accuracy = train_strategy(SmallCNN(5), "classifier", "scratch", train, test, config, 0)
    """
    stages = strategy_stages(strategy)
    steps = config.target_steps if steps is None else steps
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    for index, stage in enumerate(stages):
        seed_everything(seed + index)
        freeze(model)
        unfreeze(model, head if stage == "probe" else None)
        rate = _LEARNING_RATES["full_after_probe" if (stage == "full" and index > 0) else stage]
        if on_stage is not None:
            on_stage(stage, model)
        loader = make_loader(train_set, batch_size=config.batch_size, shuffle=True, seed=seed + index)
        per_epoch = len(loader) if config.max_steps_per_epoch is None else min(len(loader), config.max_steps_per_epoch)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=rate)
        fit(model, loader, optimizer, num_epochs=math.ceil(steps / per_epoch),
            device=config.device, max_steps_per_epoch=config.max_steps_per_epoch, progress=False)
    if stages[-1] == "full":
        # BatchNorm layers trained here: their running averages lag behind (EfficientNet's momentum
        # is 0.01), so re-estimate them on the training images before testing
        recompute_batchnorm_statistics(model, make_loader(train_set, batch_size=config.batch_size, shuffle=False),
                                       config.device)
    unfreeze(model)
    test_loader = make_loader(test_set, batch_size=256, shuffle=False)
    return float(evaluate(model, test_loader, device=config.device)["accuracy"])


@dataclass(frozen=True)
class MnistTransferData:
    """MNIST-5k split into a source task and a target task with a disjoint target test set.

    Attributes:
        source: digits 0-4, labels 0-4, images ``(N, 1, 28, 28)`` in ``[0, 1]``.
        target_pool: digits 5-9 (labels 0-4 = digit - 5) that label budgets are drawn from.
        target_test: digits 5-9 never used for training.
    """

    source: TensorDataset
    target_pool: TensorDataset
    target_test: TensorDataset


def load_mnist_transfer_data(config: ConceptsSettings, seed: int = 0) -> MnistTransferData:
    """Split MNIST-5k into source (digits 0-4) and target (digits 5-9) pool and test parts.

    Args:
        config: gives the source size and test size.
        seed: which random split of the target digits.

    Returns:
        A :class:`MnistTransferData`.

    Example:
        >>> # data = load_mnist_transfer_data(settings(get_profile("smoke")))
    """
    images, labels = load_mnist_5k()
    images = images.float().unsqueeze(1) / 255.0  # (5000, 1, 28, 28) in [0, 1]
    source_index = torch.nonzero(labels < 5).flatten()[: config.source_examples]
    target_index = torch.nonzero(labels >= 5).flatten()
    # Half of the target digits form the test set, half the pool: disjoint by construction.
    test_part, pool_part = split_indices(len(target_index), [0.5, 0.5], seed)
    test_index = target_index[torch.tensor(test_part)][: config.test_examples]
    pool_index = target_index[torch.tensor(pool_part)]
    return MnistTransferData(
        TensorDataset(images[source_index], labels[source_index]),
        TensorDataset(images[pool_index], labels[pool_index] - 5),
        TensorDataset(images[test_index], labels[test_index] - 5),
    )


def pretrain_source(data: MnistTransferData, config: ConceptsSettings, seed: int,
                    shuffle_labels: bool = False) -> dict[str, torch.Tensor]:
    """Pretrain a :class:`SmallCNN` on the source task and return its backbone weights.

    Args:
        data: the split data.
        config: sizes and device.
        seed: seeds initialisation, loader order and the label shuffle.
        shuffle_labels: permute the source labels at random, destroying the image-label relation
            (a source that can only teach noise: the negative-transfer control).

    Returns:
        The ``features.*`` state dict (copied tensors).

    Example:
        >>> # backbone = pretrain_source(data, config, seed=0)
    """
    seed_everything(seed)
    images, labels = data.source.tensors
    if shuffle_labels:
        generator = torch.Generator().manual_seed(seed)
        labels = labels[torch.randperm(len(labels), generator=generator)]
    model = SmallCNN(len(SOURCE_CLASSES))
    loader = make_loader(TensorDataset(images, labels), batch_size=config.batch_size, shuffle=True, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    fit(model, loader, optimizer, num_epochs=config.source_epochs, device=config.device,
        max_steps_per_epoch=config.max_steps_per_epoch, progress=False)
    return {name: tensor.detach().clone() for name, tensor in model.features.state_dict().items()}


def _target_model(backbone: dict[str, torch.Tensor] | None, seed: int) -> SmallCNN:
    # Same seed -> same fresh head for every strategy, so strategies differ only in training.
    seed_everything(seed)
    model = SmallCNN(len(TARGET_CLASSES))
    if backbone is not None:
        model.features.load_state_dict(backbone)
    return model


def _budget_subset(pool: TensorDataset, budget: int, seed: int) -> TensorDataset:
    images, labels = pool.tensors
    chosen = torch.tensor(per_class_subset(labels, budget, seed))
    return TensorDataset(images[chosen], labels[chosen])


def _check_inputs(budgets: Sequence[int], strategies: Sequence[str], seeds: Sequence[int]) -> None:
    if len(budgets) == 0:
        raise ValueError("budgets is empty: give at least one number of labels per class")
    if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in budgets):
        raise ValueError(f"budgets must be positive ints, got {list(budgets)}")
    if len(strategies) == 0:
        raise ValueError("strategies is empty: give at least one of " + ", ".join(STRATEGIES))
    for strategy in strategies:
        strategy_stages(strategy)  # raises ValueError for an unknown one
    if len(seeds) == 0:
        raise ValueError("seeds is empty: give at least one seed")


def run_transfer_comparison(config: ConceptsSettings, budgets: Sequence[int] | None = None,
                            strategies: Sequence[str] = STRATEGIES, seeds: Sequence[int] | None = None,
                            data: MnistTransferData | None = None) -> list[dict[str, object]]:
    """Experiment 1: MNIST digits 0-4 -> 5-9, every strategy at every budget and seed.

    For each seed the source network is pretrained once; each (budget, strategy) then starts from
    a copy of it (``"scratch"`` from random weights) and trains on ``budget`` labels per class.

    Args:
        config: sizes and device.
        budgets: labels per target class; default ``config.budgets``.
        strategies: subset of :data:`STRATEGIES`.
        seeds: default ``config.seeds``.
        data: the split; default :func:`load_mnist_transfer_data`.

    Returns:
        One row per run: ``{"budget", "strategy", "seed", "accuracy"}``.

    Raises:
        ValueError: for empty budgets, strategies or seeds, or an unknown strategy.

    Example:
        >>> # rows = run_transfer_comparison(settings(get_profile("smoke")))
    """
    budgets = tuple(config.budgets if budgets is None else budgets)
    seeds = tuple(config.seeds if seeds is None else seeds)
    _check_inputs(budgets, strategies, seeds)
    data = load_mnist_transfer_data(config) if data is None else data
    rows: list[dict[str, object]] = []
    for seed in seeds:
        backbone = pretrain_source(data, config, seed) if any(s != "scratch" for s in strategies) else None
        for budget in budgets:
            train_set = _budget_subset(data.target_pool, budget, seed)
            for strategy in strategies:
                model = _target_model(None if strategy == "scratch" else backbone, seed)
                accuracy = train_strategy(model, "classifier", strategy, train_set, data.target_test, config, seed)
                rows.append({"budget": budget, "strategy": strategy, "seed": seed, "accuracy": accuracy})
    return rows


def run_negative_transfer(config: ConceptsSettings, budget: int | None = None, seeds: Sequence[int] | None = None,
                          data: MnistTransferData | None = None) -> list[dict[str, object]]:
    """Negative-transfer check: fine-tune from a shuffled-label source versus scratch.

    Args:
        config: sizes and device.
        budget: labels per class; default the smallest of ``config.budgets``.
        seeds: default ``config.seeds``.
        data: the split; default :func:`load_mnist_transfer_data`.

    Returns:
        Rows ``{"budget", "strategy", "seed", "accuracy"}`` with strategies ``"scratch"``,
        ``"fine_tune (real source)"`` and ``"fine_tune (shuffled-label source)"``.

    Raises:
        ValueError: for an empty seed list or a non-positive budget.

    Example:
        >>> # rows = run_negative_transfer(settings(get_profile("smoke")))
    """
    budget = min(config.budgets) if budget is None else budget
    seeds = tuple(config.seeds if seeds is None else seeds)
    _check_inputs((budget,), ("fine_tune",), seeds)
    data = load_mnist_transfer_data(config) if data is None else data
    rows: list[dict[str, object]] = []
    for seed in seeds:
        train_set = _budget_subset(data.target_pool, budget, seed)
        sources = {"scratch": None,
                   "fine_tune (real source)": pretrain_source(data, config, seed),
                   "fine_tune (shuffled-label source)": pretrain_source(data, config, seed, shuffle_labels=True)}
        for name, backbone in sources.items():
            model = _target_model(backbone, seed)
            accuracy = train_strategy(model, "classifier", "fine_tune", train_set, data.target_test, config, seed)
            rows.append({"budget": budget, "strategy": name, "seed": seed, "accuracy": accuracy})
    return rows


def run_imagenet_comparison(profile: Profile, config: ConceptsSettings, budget: int | None = None,
                            strategies: Sequence[str] | None = None,
                            seeds: Sequence[int] | None = None,
                            data: MnistTransferData | None = None) -> tuple[list[dict[str, object]], str]:
    """Experiment 2: the target task from an ImageNet backbone (:func:`tlcourse.models.load_image_model`).

    Args:
        profile: picks the backbone (random VGG16 in smoke, EfficientNet-Lite0 offline in cpu).
        config: sizes and device.
        budget: labels per class; default the smallest of ``config.budgets``.
        strategies: default ``config.imagenet_strategies``; strategies other than ``"scratch"`` (an ImageNet network from scratch on a few
            dozen images is not a meaningful baseline; compare with the small CNN's scratch row).
        seeds: default ``config.imagenet_seeds``.
        data: the split; default :func:`load_mnist_transfer_data`.

    Returns:
        ``(rows, asset)``: rows as in :func:`run_transfer_comparison` and the asset name used.

    Raises:
        ValueError: for empty inputs, an unknown strategy, or ``"scratch"``.

    Example:
        >>> # rows, asset = run_imagenet_comparison(profile, config)
    """

    budget = min(config.budgets) if budget is None else budget
    seeds = tuple(config.imagenet_seeds if seeds is None else seeds)
    strategies = tuple(config.imagenet_strategies if strategies is None else strategies)
    _check_inputs((budget,), strategies, seeds)
    if "scratch" in strategies:
        raise ValueError("run_imagenet_comparison does not train 'scratch'; use run_transfer_comparison")
    data = load_mnist_transfer_data(config) if data is None else data
    rows: list[dict[str, object]] = []
    test_images, test_labels = data.target_test.tensors
    count = min(config.imagenet_test_examples, len(test_labels))
    # Load once (one announcement, one read of the weights); every run trains a deep copy.
    seed_everything(seeds[0])
    loaded = load_image_model(profile, len(TARGET_CLASSES))
    asset = loaded.asset

    def convert(images: torch.Tensor) -> torch.Tensor:
        # (N, 1, 28, 28) in [0, 1] -> uint8 (N, 28, 28), exact since the digits were uint8 / 255,
        # then -> (N, 3, S, S) normalised with the backbone's mean and std
        digits = images.squeeze(1).mul(255).round().to(torch.uint8)
        return mnist_as_rgb(digits, config.image_size, loaded.mean, loaded.std)

    test_set = TensorDataset(convert(test_images[:count]), test_labels[:count])
    for seed in seeds:
        train_images, train_labels = _budget_subset(data.target_pool, budget, seed).tensors
        train_set = TensorDataset(convert(train_images), train_labels)
        for strategy in strategies:
            seed_everything(seed)
            model = copy.deepcopy(loaded.model)
            head = model.get_submodule(loaded.head)
            head.reset_parameters()  # a fresh random head per seed, the same for every strategy
            accuracy = train_strategy(model, loaded.head, strategy, train_set, test_set, config, seed,
                                      steps=config.imagenet_steps)
            rows.append({"budget": budget, "strategy": f"{strategy} ({loaded.architecture})", "seed": seed,
                         "accuracy": accuracy})
    return rows, asset


def summarize(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Mean and standard deviation of accuracy over seeds, per (budget, strategy).

    Args:
        rows: from :func:`run_transfer_comparison` and friends.

    Returns:
        Rows ``{"budget", "strategy", "mean", "std", "seeds"}`` in first-seen order.

    Raises:
        ValueError: if ``rows`` is empty.

    Example:
        >>> summarize([{"budget": 1, "strategy": "scratch", "seed": 0, "accuracy": 0.5}])[0]["mean"]
        0.5
    """
    if len(rows) == 0:
        raise ValueError("rows is empty: nothing to summarise")
    groups: dict[tuple[object, object], list[float]] = {}
    for row in rows:
        groups.setdefault((row["budget"], row["strategy"]), []).append(float(row["accuracy"]))  # type: ignore[arg-type]
    table = []
    for (budget, strategy), values in groups.items():
        mean, std = mean_and_std(values)
        table.append({"budget": budget, "strategy": strategy, "mean": mean, "std": std, "seeds": len(values)})
    return table


def beats_scratch(table: Sequence[dict[str, object]], budget: int, strategy: str) -> bool:
    """Whether ``strategy``'s mean accuracy exceeds scratch's at ``budget`` in a summary table.

    Args:
        table: from :func:`summarize`.
        budget: the label budget.
        strategy: the strategy to compare with ``"scratch"``.

    Returns:
        ``mean(strategy) > mean(scratch)``.

    Raises:
        ValueError: if either row is missing.

    Example:
        >>> t = [{"budget": 1, "strategy": "scratch", "mean": 0.4}, {"budget": 1, "strategy": "lp_ft", "mean": 0.6}]
        >>> beats_scratch(t, 1, "lp_ft")
        True
    """
    means = {row["strategy"]: float(row["mean"]) for row in table if row["budget"] == budget}  # type: ignore[arg-type]
    for name in ("scratch", strategy):
        if name not in means:
            raise ValueError(f"no row for strategy {name!r} at budget {budget}")
    return means[strategy] > means["scratch"]


def plot_budget_curves(table: Sequence[dict[str, object]], ax: Axes | None = None) -> Figure:
    """Test accuracy against labels per class, one line (mean +- std band) per strategy.

    Args:
        table: from :func:`tlcourse.experiments.summarize`.
        ax: axes to draw on; default a new figure.

    Returns:
        The matplotlib Figure.

    Raises:
        ValueError: if ``table`` is empty.

    Example:
        >>> figure = plot_budget_curves([{"budget": 1, "strategy": "scratch", "mean": 0.5, "std": 0.1}])
    """
    if len(table) == 0:
        raise ValueError("table is empty: nothing to plot")
    figure, ax = new_axes(ax, (6, 4))
    strategies = list(dict.fromkeys(row["strategy"] for row in table))
    for strategy in strategies:
        rows = sorted((r for r in table if r["strategy"] == strategy), key=lambda r: r["budget"])  # type: ignore[arg-type,return-value]
        x = [r["budget"] for r in rows]
        mean = torch.tensor([float(r["mean"]) for r in rows])  # type: ignore[arg-type]
        std = torch.tensor([float(r["std"]) for r in rows])  # type: ignore[arg-type]
        ax.plot(x, mean, marker="o", label=str(strategy))
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("labelled target examples per class")
    ax.set_ylabel("target test accuracy")
    ax.set_title("Transfer versus scratch by label budget")
    ax.legend()
    return figure
