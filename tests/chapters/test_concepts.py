"""Tests for tlcourse.experiments: strategies, stage order, determinism, bad inputs."""

from __future__ import annotations

from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch.utils.data import TensorDataset

from tlcourse.chapters.concepts import (
    MnistTransferData,
    SmallCNN,
    beats_scratch,
    run_imagenet_comparison,
    run_transfer_comparison,
    settings,
    strategy_stages,
    summarize,
    train_strategy,
)
from tlcourse.profiles import get_profile


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny networks: thread start-up costs more than it saves on a shared CPU.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def config():
    return replace(settings(get_profile("smoke")), budgets=(2,), seeds=(0,), target_steps=2,
                   source_epochs=1, max_steps_per_epoch=2, batch_size=8)


@pytest.fixture
def data():
    # Synthetic stand-in for MNIST: class k is a bright square at position k (learnable, fast).
    generator = torch.Generator().manual_seed(0)

    def make(count: int) -> TensorDataset:
        labels = torch.arange(count) % 5
        images = torch.rand(count, 1, 28, 28, generator=generator) * 0.1
        for i, label in enumerate(labels.tolist()):
            images[i, 0, 5 * label:5 * label + 5, 5:10] = 1.0
        return TensorDataset(images, labels)

    return MnistTransferData(make(40), make(40), make(20))


def _dataset(count: int = 20) -> TensorDataset:
    return TensorDataset(torch.rand(count, 1, 28, 28), torch.arange(count) % 5)


def test_small_cnn_shapes():
    model = SmallCNN(5)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 5)
    assert model.features(torch.zeros(3, 1, 28, 28)).shape == (3, 32 * 7 * 7)


def test_linear_probe_leaves_backbone_unchanged(config):
    model = SmallCNN(5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_strategy(model, "classifier", "linear_probe", _dataset(), _dataset(10), config, seed=0)
    after = model.state_dict()
    for name in before:
        if name.startswith("features"):
            torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)
    assert not torch.equal(after["classifier.weight"], before["classifier.weight"])


def test_linear_probe_keeps_frozen_batchnorm_statistics(config):
    # A frozen BatchNorm must not update its running statistics either.
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 8), torch.nn.BatchNorm1d(8),
                                torch.nn.Linear(8, 5))
    mean_before = model[2].running_mean.clone()
    train_strategy(model, "3", "linear_probe", _dataset(), _dataset(10), config, seed=0)
    torch.testing.assert_close(model[2].running_mean, mean_before, rtol=0, atol=0)


def test_fine_tune_changes_backbone(config):
    model = SmallCNN(5)
    before = model.features[0].weight.clone()
    train_strategy(model, "classifier", "fine_tune", _dataset(), _dataset(10), config, seed=0)
    assert not torch.equal(model.features[0].weight, before)


def test_lp_ft_stage_order(config):
    seen: list[tuple[str, set[str]]] = []

    def record(stage: str, model: torch.nn.Module) -> None:
        seen.append((stage, {n for n, p in model.named_parameters() if p.requires_grad}))

    train_strategy(SmallCNN(5), "classifier", "lp_ft", _dataset(), _dataset(10), config, seed=0, on_stage=record)
    assert [stage for stage, _ in seen] == ["probe", "full"]
    assert seen[0][1] == {"classifier.weight", "classifier.bias"}
    assert seen[1][1] == {n for n, _ in SmallCNN(5).named_parameters()}
    assert strategy_stages("lp_ft") == ("probe", "full")


def test_results_deterministic_given_seed(config, data):
    first = run_transfer_comparison(config, data=data)
    second = run_transfer_comparison(config, data=data)
    assert first == second
    assert {row["strategy"] for row in first} == {"scratch", "linear_probe", "fine_tune", "lp_ft"}


def test_summarize_matches_hand_computation():
    rows = [{"budget": 1, "strategy": "a", "seed": s, "accuracy": a} for s, a in enumerate([0.2, 0.4, 0.9])]
    (row,) = summarize(rows)
    values = torch.tensor([0.2, 0.4, 0.9], dtype=torch.float64)
    assert row["mean"] == pytest.approx(values.mean().item())
    assert row["std"] == pytest.approx(values.std(unbiased=True).item())
    assert row["seeds"] == 3


def test_beats_scratch():
    table = [{"budget": 5, "strategy": "scratch", "mean": 0.5}, {"budget": 5, "strategy": "fine_tune", "mean": 0.4}]
    assert beats_scratch(table, 5, "fine_tune") is False
    with pytest.raises(ValueError, match="no row"):
        beats_scratch(table, 7, "fine_tune")


def test_bad_inputs_raise(config, data):
    with pytest.raises(ValueError, match="budgets is empty"):
        run_transfer_comparison(config, budgets=(), data=data)
    with pytest.raises(ValueError, match="unknown strategy"):
        run_transfer_comparison(config, strategies=("magic",), data=data)
    with pytest.raises(ValueError, match="positive ints"):
        run_transfer_comparison(config, budgets=(0,), data=data)
    with pytest.raises(ValueError, match="seeds is empty"):
        run_transfer_comparison(config, seeds=(), data=data)
    with pytest.raises(ValueError, match="unknown strategy"):
        strategy_stages("freeze_everything")
    with pytest.raises(ValueError, match="scratch"):
        run_imagenet_comparison(get_profile("smoke"), config, strategies=("scratch",), data=data)
    with pytest.raises(ValueError, match="rows is empty"):
        summarize([])
    with pytest.raises(ValueError, match="steps must be positive"):
        train_strategy(SmallCNN(5), "classifier", "fine_tune", _dataset(), _dataset(), config, 0, steps=0)



def test_fine_tune_re_estimates_batchnorm_statistics_on_the_training_set(config):
    # a slow BatchNorm (momentum 0.01, like EfficientNet's) would keep stale running averages
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 8), torch.nn.BatchNorm1d(8, momentum=0.01),
                                torch.nn.Linear(8, 5))
    train_set = _dataset()
    train_strategy(model, "3", "fine_tune", train_set, _dataset(10), config, seed=0)
    assert model[2].momentum == 0.01
    inputs = train_set.tensors[0]
    with torch.no_grad():
        hidden = model[1](model[0](inputs))  # the trained linear layer's outputs: what BatchNorm normalises
    batches = torch.split(hidden, config.batch_size)  # the same batches, in order
    expected = sum(batch.mean(0) for batch in batches) / len(batches)
    torch.testing.assert_close(model[2].running_mean, expected, rtol=1e-4, atol=1e-5)
