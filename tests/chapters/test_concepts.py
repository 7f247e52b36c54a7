"""Tests for tlcourse.chapters.concepts: settings, the data split, the small CNN, equal epochs and the table helper."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.chapters.concepts import (
    LEARNING_RATES,
    SETTINGS,
    STRATEGIES,
    SmallCNN,
    accuracies,
    budget_subset,
    epochs_for,
    load_transfer_splits,
    settings_on_device,
    strategy_stages,
)
from tlcourse.profiles import get_profile


@pytest.fixture
def config():
    return settings_on_device(get_profile("smoke"))


def test_small_cnn_matches_the_same_layers_written_in_torch():
    model = SmallCNN(5)
    reference = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(32 * 7 * 7, 5))
    reference.load_state_dict({key.replace("features.", "").replace("classifier.", "7."): value
                               for key, value in model.state_dict().items()})
    images = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model(images), reference(images))
    assert model.features(images).shape == (3, 32 * 7 * 7)
    with pytest.raises(ValueError, match="width must be a positive int, got 0"):
        SmallCNN(5, width=0)


@pytest.mark.parametrize("num_epochs", [2, 3, 7, 20])
def test_every_strategy_gets_the_same_number_of_epochs(num_epochs):
    totals = {s: sum(epochs for _, epochs in strategy_stages(s, num_epochs, 0.5)) for s in STRATEGIES}
    assert set(totals.values()) == {num_epochs}
    stages = strategy_stages("lp_ft", num_epochs, 0.5)
    assert [name for name, _ in stages] == ["probe", "full"] and min(e for _, e in stages) >= 1
    assert strategy_stages("linear_probe", num_epochs) == [("probe", num_epochs)]
    assert strategy_stages("scratch", num_epochs) == strategy_stages("fine_tune", num_epochs) == [("full", num_epochs)]


@pytest.mark.parametrize("num_examples", [10, 50, 250, 1000])
def test_epochs_for_is_the_fewest_whole_epochs_that_reach_the_step_budget(num_examples):
    config = SETTINGS["cpu"]
    epochs = epochs_for(config, num_examples)
    steps_per_epoch = len(torch.utils.data.DataLoader(range(num_examples), batch_size=config.batch_size))
    assert epochs * steps_per_epoch >= config.target_steps or epochs == 2
    assert epochs == 2 or (epochs - 1) * steps_per_epoch < config.target_steps
    capped = replace(config, max_steps_per_epoch=1)
    assert epochs_for(capped, num_examples) == max(2, config.target_steps)


def test_comparison_budget_is_the_smallest_budget_and_cannot_be_set(config):
    assert replace(config, budgets=(10, 2, 50)).comparison_budget == 2
    assert all(s.comparison_budget == min(s.budgets) for s in SETTINGS.values())
    with pytest.raises(TypeError, match="comparison_budget"):
        replace(config, comparison_budget=10)


def test_settings_take_the_profile_device_and_imagenet_seeds_pair_with_scratch():
    assert settings_on_device(get_profile("smoke")).device == get_profile("smoke").device
    assert all(set(s.imagenet_seeds) <= set(s.seeds) for s in SETTINGS.values())


def test_learning_rates_cover_every_stage_of_every_strategy():
    for strategy in STRATEGIES:
        assert {stage for stage, _ in strategy_stages(strategy, 4)} == set(LEARNING_RATES[strategy])
    # LP-FT's fine-tuning starts from a trained head: its candidates are smaller (Kumar et al. 2022)
    assert max(LEARNING_RATES["lp_ft"]["full"]) < max(LEARNING_RATES["fine_tune"]["full"])
    assert all(len(candidates) >= 2 for stages in LEARNING_RATES.values() for candidates in stages.values())


def test_budget_subset_draws_per_class_from_the_pool():
    labels = torch.arange(40) % 5
    pool = TensorDataset(torch.arange(40).float().unsqueeze(1), labels)
    subset = budget_subset(pool, 3, seed=1)
    assert torch.bincount(subset.tensors[1]).tolist() == [3] * 5
    # each drawn example is the pool's own (image, label) pair, drawn once
    drawn = subset.tensors[0].flatten().long()
    assert len(set(drawn.tolist())) == 15 and torch.equal(labels[drawn], subset.tensors[1])
    assert torch.equal(subset.tensors[0], budget_subset(pool, 3, seed=1).tensors[0])


def test_transfer_splits_are_disjoint_and_relabelled(config):
    splits = load_transfer_splits(config)
    assert set(splits.source.tensors[1].tolist()) <= set(range(5))
    rows = {}
    for name in ("pool", "validation", "test"):
        images, labels = getattr(splits, name).tensors
        assert set(labels.tolist()) <= set(range(5)) and images.shape[1:] == (1, 28, 28)
        assert 0 <= float(images.min()) and float(images.max()) <= 1
        rows[name] = {bytes(image.numpy().tobytes()) for image in images}
    assert len(splits.validation) == config.validation_examples and len(splits.test) == config.test_examples
    assert not rows["pool"] & rows["validation"] and not rows["pool"] & rows["test"]
    assert not rows["validation"] & rows["test"]


def test_accuracies_pairs_by_seed():
    rows = [{"budget": 1, "strategy": "a", "seed": s, "accuracy": a} for s, a in ((2, 0.9), (0, 0.2), (1, 0.4))]
    assert accuracies(rows, "a", 1) == [0.2, 0.4, 0.9]  # seed order, for pairing
    assert accuracies(rows, "a", 1, seeds=(0, 2)) == [0.2, 0.9]
    with pytest.raises(ValueError, match="no row for strategy 'b' at budget 1"):
        accuracies(rows, "b", 1)
