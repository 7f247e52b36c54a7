"""Tests for tlcourse.chapters.concepts and concepts_experiments: stages, equal steps, selection on validation, BatchNorm, tables, bad inputs."""

from __future__ import annotations

from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.chapters.concepts import (
    LEARNING_RATES,
    SETTINGS,
    STRATEGIES,
    SmallCNN,
    TransferSplits,
    budget_subset,
    settings_on_device,
    strategy_stages,
    train_stage,
    train_strategy,
)
from tlcourse.chapters.concepts_experiments import (
    accuracies,
    held_out_accuracy,
    pretrain_sources,
    run_budget_comparison,
    run_negative_transfer,
)
from tlcourse.profiles import get_profile
from tlcourse.train import evaluate
from tlcourse.data import make_loader


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny networks: thread start-up costs more than it saves on a shared CPU.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def config():
    return replace(settings_on_device(get_profile("smoke")), budgets=(2,), seeds=(0,), target_steps=2,
                   source_epochs=1, max_steps_per_epoch=2, batch_size=8)


def _squares(count: int, seed: int = 0) -> TensorDataset:
    # Synthetic digits: class k is a bright square at row block k (learnable in a few steps).
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 5
    images = torch.rand(count, 1, 28, 28, generator=generator) * 0.1
    for index, label in enumerate(labels.tolist()):
        images[index, 0, 5 * label:5 * label + 5, 5:10] = 1.0
    return TensorDataset(images, labels)


@pytest.fixture
def splits():
    return TransferSplits(_squares(40, 1), _squares(40, 2), _squares(20, 3), _squares(20, 4))


def _norm_network() -> nn.Sequential:
    # A pretrained-looking network with a slow BatchNorm (momentum 0.01, like EfficientNet's).
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.BatchNorm1d(8, momentum=0.01), nn.ReLU(), nn.Linear(8, 5))


def test_small_cnn_shapes_and_bad_width():
    model = SmallCNN(5)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 5)
    assert model.features(torch.zeros(3, 1, 28, 28)).shape == (3, 32 * 7 * 7)
    with pytest.raises(ValueError, match="width must be a positive int, got 0"):
        SmallCNN(5, width=0)


@pytest.mark.parametrize("num_epochs", [2, 3, 7, 20])
def test_every_strategy_gets_the_same_number_of_epochs(num_epochs):
    totals = {s: sum(epochs for _, epochs in strategy_stages(s, num_epochs, 0.5)) for s in STRATEGIES}
    assert set(totals.values()) == {num_epochs}
    stages = strategy_stages("lp_ft", num_epochs, 0.5)
    assert [name for name, _ in stages] == ["probe", "full"] and min(e for _, e in stages) >= 1
    assert strategy_stages("linear_probe", num_epochs) == [("probe", num_epochs)]


def test_strategy_stages_bad_inputs():
    with pytest.raises(ValueError, match="unknown strategy 'freeze_everything'"):
        strategy_stages("freeze_everything", 4)
    with pytest.raises(ValueError, match="lp_ft needs num_epochs >= 2"):
        strategy_stages("lp_ft", 1)
    with pytest.raises(ValueError, match="0 < probe_fraction < 1"):
        strategy_stages("lp_ft", 4, probe_fraction=1.0)
    with pytest.raises(ValueError, match="num_epochs must be a positive int, got 0"):
        strategy_stages("scratch", 0)


def _count_training_steps(model: nn.Module) -> list[int]:
    # One training forward pass per optimiser step in fit; evaluation runs in eval mode.
    counter = [0]
    model.register_forward_hook(lambda module, inputs, output: counter.__setitem__(0, counter[0] + module.training))
    return counter


def test_strategies_take_equal_optimiser_steps(config, splits, monkeypatch):
    # One candidate learning rate per stage: the steps of the run that is kept, whichever candidate wins.
    for strategy, stages in LEARNING_RATES.items():
        monkeypatch.setitem(LEARNING_RATES, strategy, {stage: candidates[:1] for stage, candidates in stages.items()})
    counts = {}
    for strategy in ("linear_probe", "fine_tune", "lp_ft"):
        model = SmallCNN(5)
        counter = _count_training_steps(model)
        train_strategy(model, "classifier", strategy, strategy_stages(strategy, 4), splits.pool, splits.validation,
                       config, seed=0)
        counts[strategy] = counter[0]
    # 40 examples in batches of 8, capped at 2 steps per epoch, 4 epochs
    assert counts == {"linear_probe": 8, "fine_tune": 8, "lp_ft": 8}


def test_learning_rate_is_the_candidate_with_the_best_validation_accuracy(config, splits, monkeypatch):
    # Reference: each candidate alone, from the same initial weights; the selection must equal the best of them.
    initial = SmallCNN(5).state_dict()
    alone = {}
    for lr in LEARNING_RATES["scratch"]["full"]:
        monkeypatch.setitem(LEARNING_RATES, "scratch", {"full": (lr,)})
        model = SmallCNN(5)
        model.load_state_dict(initial)
        alone[lr] = (train_strategy(model, "classifier", "scratch", [("full", 3)], splits.pool, splits.validation,
                                    config, 0), model.state_dict())
    monkeypatch.undo()
    model = SmallCNN(5)
    model.load_state_dict(initial)
    chosen = train_strategy(model, "classifier", "scratch", [("full", 3)], splits.pool, splits.validation, config, 0)
    best_lr = max(alone, key=lambda lr: alone[lr][0])  # ties: the first candidate, as in train_strategy
    assert chosen == alone[best_lr][0]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, alone[best_lr][1][name], rtol=0, atol=0)


def test_comparison_budget_is_the_smallest_budget_and_cannot_be_set(config):
    assert replace(config, budgets=(10, 2, 50)).comparison_budget == 2
    assert all(s.comparison_budget == min(s.budgets) for s in SETTINGS.values())
    with pytest.raises(TypeError, match="comparison_budget"):
        replace(config, comparison_budget=10)


def test_probe_stage_trains_only_the_head(config, splits):
    model = SmallCNN(5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_strategy(model, "classifier", "linear_probe", [("probe", 3)], splits.pool, splits.validation, config, 0)
    for name, value in model.state_dict().items():
        if name.startswith("features"):
            torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    assert not torch.equal(model.classifier.weight, before["classifier.weight"])
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again afterwards


def test_full_stage_keeps_pretrained_batchnorm_but_scratch_trains_it(config, splits):
    pretrained = _norm_network()
    before = {k: v.clone() for k, v in pretrained.state_dict().items()}
    train_strategy(pretrained, "4", "fine_tune", [("full", 3)], splits.pool, splits.validation, config, 0)
    for name in ("2.weight", "2.bias", "2.running_mean", "2.running_var"):
        torch.testing.assert_close(pretrained.state_dict()[name], before[name], rtol=0, atol=0)
    assert not torch.equal(pretrained[1].weight, before["1.weight"])  # the layers around it do train
    scratch = _norm_network()
    mean_before = scratch[2].running_mean.clone()
    train_strategy(scratch, "4", "scratch", [("full", 3)], splits.pool, splits.validation, config, 0)
    assert not torch.equal(scratch[2].running_mean, mean_before)


def test_lp_ft_is_the_probe_then_fine_tuning_written_by_hand(config, splits):
    # Reference: the two stages by hand, one best-on-validation record through both; BatchNorm frozen in the second.
    start = _norm_network()
    model = _norm_network()
    model.load_state_dict(start.state_dict())
    returned = train_strategy(model, "4", "lp_ft", [("probe", 2), ("full", 2)], splits.pool, splits.validation,
                              config, 0)
    by_hand = _norm_network()
    by_hand.load_state_dict(start.state_dict())
    by_hand.requires_grad_(False)
    by_hand[4].requires_grad_(True)
    best = train_stage(by_hand, LEARNING_RATES["lp_ft"]["probe"], 2, splits.pool, splits.validation, config, 0)
    by_hand.requires_grad_(True)
    by_hand[2].requires_grad_(False)
    accuracy, state = train_stage(by_hand, LEARNING_RATES["lp_ft"]["full"], 2, splits.pool, splits.validation,
                                  config, 0, best)
    assert returned == accuracy
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)
    for name in ("2.weight", "2.bias", "2.running_mean", "2.running_var"):  # BatchNorm as pretrained
        torch.testing.assert_close(model.state_dict()[name], start.state_dict()[name], rtol=0, atol=0)


def test_train_stage_trains_only_what_requires_gradients(config, splits):
    model = SmallCNN(5)
    model.features.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    accuracy, state = train_stage(model, [1e-2], 2, splits.pool, splits.validation, config, 0)
    assert all(torch.equal(state[k], before[k]) for k in before if k.startswith("features"))
    assert not torch.equal(state["classifier.weight"], before["classifier.weight"])
    model.load_state_dict(state)
    assert accuracy == held_out_accuracy(model, splits.validation)  # the record is the validation accuracy
    with pytest.raises(ValueError, match="learning_rates is empty"):
        train_stage(model, [], 2, splits.pool, splits.validation, config, 0)


def test_returns_best_validation_accuracy_and_keeps_those_weights(config, splits):
    model = SmallCNN(5)
    returned = train_strategy(model, "classifier", "scratch", [("full", 5)], splits.pool, splits.validation, config, 0)
    loader = make_loader(splits.validation, batch_size=7, shuffle=False)
    assert returned == pytest.approx(evaluate(model, loader)["accuracy"])
    assert returned == pytest.approx(held_out_accuracy(model, splits.validation))


def test_learning_rates_cover_every_stage_of_every_strategy():
    for strategy in STRATEGIES:
        assert {stage for stage, _ in strategy_stages(strategy, 4)} == set(LEARNING_RATES[strategy])
    # LP-FT's fine-tuning starts from a trained head: its candidates are smaller (Kumar et al. 2022)
    assert max(LEARNING_RATES["lp_ft"]["full"]) < max(LEARNING_RATES["fine_tune"]["full"])
    assert all(len(candidates) >= 2 for stages in LEARNING_RATES.values() for candidates in stages.values())


def test_budget_subset_draws_per_class():
    pool = _squares(40)
    subset = budget_subset(pool, 3, seed=1)
    assert torch.bincount(subset.tensors[1]).tolist() == [3] * 5
    assert torch.equal(subset.tensors[0], budget_subset(pool, 3, seed=1).tensors[0])


def test_runs_are_deterministic_and_paired(config, splits):
    sources = pretrain_sources(splits, config)
    first = run_budget_comparison(splits, sources, config)
    second = run_budget_comparison(splits, pretrain_sources(splits, config), config)
    assert first == second
    assert {row["strategy"] for row in first} == set(STRATEGIES)
    source_weights = {k: v.clone() for k, v in sources[0].state_dict().items()}
    negative = run_negative_transfer(splits, sources, config)
    assert [row["strategy"] for row in negative] == ["linear_probe (source output layer)"]
    # the probe reads a copy of the source network: the source itself is left as it was
    assert all(torch.equal(v, source_weights[k]) for k, v in sources[0].state_dict().items())
    assert negative == run_negative_transfer(splits, sources, config)  # the same rows from the same seeds


def test_accuracies_pairs_by_seed():
    rows = [{"budget": 1, "strategy": "a", "seed": s, "accuracy": a} for s, a in ((2, 0.9), (0, 0.2), (1, 0.4))]
    assert accuracies(rows, "a", 1) == [0.2, 0.4, 0.9]  # seed order, for pairing
    assert accuracies(rows, "a", 1, seeds=(0, 2)) == [0.2, 0.9]
    with pytest.raises(ValueError, match="no row for strategy 'b' at budget 1"):
        accuracies(rows, "b", 1)
