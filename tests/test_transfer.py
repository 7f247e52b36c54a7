import pytest
import torch
from torch import nn

from tlcourse.transfer import (count_parameters, discriminative_learning_rates, freeze, freeze_first,
                               frozen_norms_to_eval, recompute_batchnorm_statistics,
                               parameter_groups, replace_head, trainable_parameter_names, unfreeze)


def network() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1000))


def test_freeze_by_prefix_and_unfreeze():
    net = network()
    assert freeze(net, ["0", "2"]) == 4 * 8 + 8 + 8 * 8 + 8
    assert trainable_parameter_names(net) == ["4.weight", "4.bias"]
    assert count_parameters(net) == 8 * 1000 + 1000
    assert count_parameters(net, trainable_only=False) == sum(p.numel() for p in net.parameters())
    unfreeze(net)
    assert len(trainable_parameter_names(net)) == 6
    with pytest.raises(ValueError, match=r"no parameter name starts with \['encoder'\]"):
        freeze(net, "encoder")


def test_frozen_parameters_do_not_change_in_training():
    net = network()
    freeze(net, "0")
    before = net[0].weight.detach().clone()
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1.0)
    net(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    assert torch.equal(net[0].weight, before) and net[0].weight.grad is None


def test_freeze_first_blocks():
    blocks = [nn.Linear(2, 2) for _ in range(4)]
    assert freeze_first(blocks, 3) == 3 * 6
    assert [b.weight.requires_grad for b in blocks] == [False, False, False, True]
    freeze_first(blocks, 0)
    assert all(b.weight.requires_grad for b in blocks)
    with pytest.raises(ValueError, match=r"count must be an int in \[0, 4\].*got 5"):
        freeze_first(blocks, 5)


def test_replace_head_keeps_everything_before_it():
    net = network()
    before = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("4.")}
    head = replace_head(net, "4", 10)
    assert head.in_features == 8 and head.out_features == 10 and net[4] is head
    for key, value in before.items():
        assert torch.equal(net.state_dict()[key], value)
    with pytest.raises(ValueError, match="has no submodule 'classifier.6'"):
        replace_head(net, "classifier.6", 10)
    with pytest.raises(ValueError, match="is a ReLU, expected nn.Linear"):
        replace_head(net, "1", 10)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        replace_head(net, "4", 0)


def test_parameter_groups_cover_every_trainable_parameter_once():
    net = network()
    groups = parameter_groups(net, {"0": 1e-5, "4": 1e-3, "": 1e-4}, weight_decay=0.01)
    names = {g["name"]: g for g in groups}
    assert names["0"]["lr"] == 1e-5 and len(names["0"]["params"]) == 2
    assert len(names[""]["params"]) == 2  # layer 2 falls to the catch-all
    assert sum(len(g["params"]) for g in groups) == 6
    torch.optim.AdamW(groups)  # torch accepts them
    with pytest.raises(ValueError, match=r"match no prefix"):
        parameter_groups(net, {"0": 1e-5})
    with pytest.raises(ValueError, match="must be positive"):
        parameter_groups(net, {"": 0.0})


def test_discriminative_rates_are_geometric():
    groups = discriminative_learning_rates([nn.Linear(1, 1) for _ in range(5)], 1e-5, 1e-1)
    rates = [g["lr"] for g in groups]
    ratios = [b / a for a, b in zip(rates, rates[1:])]
    assert rates[0] == pytest.approx(1e-5) and rates[-1] == pytest.approx(1e-1)
    assert all(r == pytest.approx(10.0) for r in ratios)
    with pytest.raises(ValueError, match="lowest <= highest"):
        discriminative_learning_rates([nn.Linear(1, 1)], 1e-2, 1e-3)
    with pytest.raises(ValueError, match="blocks is empty"):
        discriminative_learning_rates([], 1e-3, 1e-2)


def test_frozen_norms_to_eval_only_touches_fully_frozen_batchnorm():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.BatchNorm2d(2), nn.BatchNorm2d(2, affine=False))
    freeze(model, "1")
    model[2].weight.requires_grad_(False)  # half frozen: bias still trains, so it stays in train mode
    assert frozen_norms_to_eval(model.train()) == ["1"]
    assert [m.training for m in model] == [True, False, True, True]


def test_recompute_batchnorm_statistics_matches_data_moments() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    momentum = net[1].momentum
    data = torch.randn(32, 3)
    recompute_batchnorm_statistics(net, [(data[:16], None), (data[16:], None)])
    hidden = net[0](data)
    torch.testing.assert_close(net[1].running_mean, hidden.mean(0), rtol=1e-4, atol=1e-5)
    # the cumulative average of each batch's unbiased variance (what BatchNorm stores per batch)
    expected_var = (hidden[:16].var(0) + hidden[16:].var(0)) / 2
    torch.testing.assert_close(net[1].running_var, expected_var, rtol=1e-4, atol=1e-5)
    assert not net.training and net[1].momentum == momentum  # momentum restored
    assert net[0].weight.grad is None  # no gradients computed


def test_recompute_batchnorm_statistics_leaves_frozen_layers_alone() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 4), nn.BatchNorm1d(4))
    freeze(net, ["0", "1"])  # a frozen first block, as partial fine-tuning leaves it
    frozen_stats = net[1].running_mean.clone(), net[1].running_var.clone()
    data = torch.randn(16, 3) * 2 + 3
    recompute_batchnorm_statistics(net, [(data, None)])
    assert torch.equal(net[1].running_mean, frozen_stats[0]) and torch.equal(net[1].running_var, frozen_stats[1])
    with torch.no_grad():  # the trainable layer sees inputs normalised with the frozen layer's stored statistics
        hidden = net[2](net[1].eval()(net[0](data)))
    torch.testing.assert_close(net[3].running_mean, hidden.mean(0), rtol=1e-4, atol=1e-5)
