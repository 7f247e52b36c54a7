"""Tests for tlcourse.optimization (parameter groups, warmup schedules) on the tiny BERT of conftest.py (no network)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tlcourse.optimization import (
    adamw,
    discriminative_learning_rates,
    linear_warmup_schedule,
    parameter_groups,
    weight_decay_groups,
)


def test_weight_decay_grouping_is_exactly_bias_and_layernorm(tiny):
    _, model = tiny
    decay, no_decay = weight_decay_groups(model, 0.01, learning_rate=1e-4)
    names = [n for n, _ in model.named_parameters()]
    expected = {n for n in names if n.endswith(".bias") or "LayerNorm" in n}
    assert set(no_decay["names"]) == expected
    assert set(decay["names"]) == set(names) - expected
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in (decay, no_decay)])


def test_schedule_matches_transformers():
    from transformers import get_linear_schedule_with_warmup

    def run(make):
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        scheduler = make(optimizer)
        values = []
        for _ in range(11):
            values.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
        return values

    ours = run(lambda o: linear_warmup_schedule(o, warmup_steps=3, total_steps=10))
    theirs = run(lambda o: get_linear_schedule_with_warmup(o, 3, 10))
    assert ours == pytest.approx(theirs)
    assert ours[0] == 0.0 and ours[3] == pytest.approx(0.1) and ours[10] == pytest.approx(0.0)
    # by hand: 0.1 * s / 3 while warming up, then 0.1 * (10 - s) / 7
    assert ours == pytest.approx([0.1 * s / 3 for s in range(3)] + [0.1 * (10 - s) / 7 for s in range(3, 11)])


def network() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1000))


def test_parameter_groups_cover_every_trainable_parameter_once():
    net = network()
    groups = parameter_groups(net, {"0": 1e-5, "4": 1e-3, "": 1e-4}, weight_decay=0.01)
    by_first = {g["names"][0]: g for g in groups}
    assert by_first["0.weight"]["lr"] == 1e-5 and by_first["0.weight"]["names"] == ["0.weight", "0.bias"]
    assert by_first["2.weight"]["lr"] == 1e-4  # layer 2 falls to the catch-all
    assert all(set(g) == {"params", "names", "lr", "weight_decay"} for g in groups)  # the one shape
    assert sum(len(g["params"]) for g in groups) == 6
    torch.optim.AdamW(groups)  # torch accepts them
    with pytest.raises(ValueError, match=r"match no prefix"):
        parameter_groups(net, {"0": 1e-5})


def test_discriminative_rates_are_geometric():
    groups = discriminative_learning_rates([nn.Linear(1, 1) for _ in range(5)], 1e-5, 1e-1)
    rates = [g["lr"] for g in groups]
    ratios = [b / a for a, b in zip(rates, rates[1:])]
    assert rates[0] == pytest.approx(1e-5) and rates[-1] == pytest.approx(1e-1)
    assert all(r == pytest.approx(10.0) for r in ratios)


def test_adamw_matches_the_unfused_torch_adamw_group_by_group(tiny_folder):
    # the reference: torch's own AdamW with its default (single-tensor) loop, on the same groups
    from tlcourse.models import load_text_classifier

    _, model = load_text_classifier(tiny_folder, 2)  # a model of its own: this test freezes a part
    reference = [p.detach().clone() for p in model.parameters()]
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)  # a frozen part: its group entry is not trained
    results = []
    for build in (lambda groups: adamw(groups, "cpu"),
                  lambda groups: torch.optim.AdamW([g for g in groups if g["params"]], foreach=False, fused=False)):
        with torch.no_grad():
            for parameter, value in zip(model.parameters(), reference):
                parameter.copy_(value)
        groups = weight_decay_groups(model, 0.01, learning_rate=1e-3)
        groups.append({"params": [], "names": [], "lr": 5.0, "weight_decay": 0.0})  # empty: dropped
        optimizer = build(groups)
        assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 1e-3]
        generator = torch.Generator().manual_seed(0)
        for _ in range(3):
            optimizer.zero_grad()
            for parameter in model.parameters():
                if parameter.requires_grad:
                    parameter.grad = torch.randn(parameter.shape, generator=generator)
            optimizer.step()
        results.append([p.detach().clone() for p in model.parameters()])
    assert adamw(weight_decay_groups(model, 0.01, 1e-3), "cpu").defaults["fused"] is True
    for fused, looped, before in zip(*results, reference):
        torch.testing.assert_close(fused, looped, rtol=1e-5, atol=1e-6)
    assert torch.equal(results[0][0], reference[0])  # the frozen word embeddings did not move
    assert not torch.equal(results[0][-1], reference[-1])


def test_adamw_refuses_groups_that_train_nothing():
    with pytest.raises(ValueError, match="every parameter group is empty"):
        adamw([{"params": [], "lr": 1e-3}])
