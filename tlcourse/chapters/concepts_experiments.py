"""The three experiments of the chapter *Concepts of transfer learning*, and the tables they fill.

Label budgets (:func:`run_budget_comparison`, from :func:`pretrain_sources`), an ImageNet backbone
(:func:`run_imagenet_comparison`) and negative transfer from an output layer (:func:`run_negative_transfer`);
every strategy is trained by :func:`tlcourse.chapters.concepts.train_strategy`, every run is scored once on the
test set (:func:`held_out_accuracy`), and :func:`accuracies` pairs the runs by seed.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from tlcourse.batchnorm import batchnorm_mode_accuracies
from tlcourse.chapters.concepts import (LEARNING_RATES, STRATEGIES, ConceptsSettings, SmallCNN, TransferSplits,
                                        budget_subset, strategy_stages, train_stage, train_strategy)
from tlcourse.checks import check_instance, check_int, describe
from tlcourse.data import make_loader
from tlcourse.images import mnist_as_rgb
from tlcourse.models import load_image_model
from tlcourse.profiles import Profile
from tlcourse.runtime import seed_everything
from tlcourse.train import evaluate, fit
from tlcourse.transfer import extract_features, linear_probe_then_fine_tune, split_head

__all__ = ["held_out_accuracy", "pretrain_sources", "run_budget_comparison", "run_imagenet_comparison",
           "run_negative_transfer", "accuracies"]


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
            row = {"budget": config.comparison_budget, "strategy": f"{strategy} ({loaded.architecture})", "seed": seed}
            if not rest:
                score = train_strategy(head, None, strategy, [("probe", probe_epochs)], train_features,
                                       features["validation"], config, seed)
                rows.append({**row, "validation": score, "accuracy": held_out_accuracy(head, features["test"], config.device)})
                continue

            def probe(head: nn.Module) -> None:  # on the cached features; the head keeps its best weights
                head.load_state_dict(train_stage(head, LEARNING_RATES[strategy]["probe"], probe_epochs, train_features,
                                                 features["validation"], config, seed)[1])

            def fine_tune(network: nn.Module) -> dict[str, float]:  # the probed network, BatchNorm as pretrained
                stored, batch = batchnorm_mode_accuracies(network, *train_set.tensors)
                score, state = train_stage(network, LEARNING_RATES[strategy]["full"], rest[0][1], train_set,
                                           validation, config, seed)
                network.load_state_dict(state)
                return {"stored_statistics": stored, "batch_statistics": batch, "validation": score}

            row.update(linear_probe_then_fine_tune(model, loaded.head, probe, fine_tune))
            rows.append({**row, "accuracy": held_out_accuracy(model, test, config.device)})
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
