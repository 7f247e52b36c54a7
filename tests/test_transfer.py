import math

import pytest
import torch
from torch import nn

from torch.utils.data import TensorDataset

from tlcourse.data import make_loader
from tlcourse.train import fit
from tlcourse.transfer import (
    count_parameters,
    freeze,
    freeze_batchnorm,
    linear_probe_then_fine_tune,
    replace_head,
    trainable_parameter_names,
    unfreeze,
)


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


def test_replace_head_keeps_everything_before_it():
    net = network()
    before = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("4.")}
    head = replace_head(net, "4", 10)
    assert head.in_features == 8 and head.out_features == 10 and net[4] is head
    for key, value in before.items():
        assert torch.equal(net.state_dict()[key], value)
    with pytest.raises(ValueError, match="path: model has no submodule 'classifier.6'"):
        replace_head(net, "classifier.6", 10)
    with pytest.raises(ValueError, match="path: '1' is a ReLU, expected nn.Linear"):
        replace_head(net, "1", 10)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        replace_head(net, "4", 0)


def test_freeze_batchnorm_keeps_running_statistics_through_fit():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    assert freeze_batchnorm(net) == 6
    assert [n for n, p in net.named_parameters() if not p.requires_grad] == ["2.weight", "2.bias"]
    data = TensorDataset(torch.randn(16, 4) * 5 + 3, torch.randint(0, 2, (16,)))
    before = net[2].running_mean.clone()
    fit(net, make_loader(data, 8, shuffle=True), torch.optim.SGD([p for p in net.parameters() if p.requires_grad],
                                                                lr=0.1), num_epochs=1, progress=False)
    assert torch.equal(net[2].running_mean, before)  # eval mode: the stored statistics were used and kept
    assert freeze_batchnorm(nn.Linear(2, 2)) == 0


def test_linear_probe_then_fine_tune_matches_the_two_stages_written_out():
    """LP-FT through the library equals the schedule written by hand: head alone, then all but BatchNorm."""
    def make() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))

    data = TensorDataset(torch.randn(32, 4) * 2 + 1, torch.randint(0, 3, (32,)))

    def train(net: nn.Module, parameters: list, seed: int) -> None:
        fit(net, make_loader(data, 8, shuffle=True, seed=seed), torch.optim.SGD(parameters, lr=0.1),
            num_epochs=2, progress=False)

    by_hand = make()
    for name, parameter in by_hand.named_parameters():
        parameter.requires_grad_(name.startswith("3."))
    train(by_hand, list(by_hand[3].parameters()), seed=1)
    for name, parameter in by_hand.named_parameters():
        parameter.requires_grad_(not name.startswith("1."))
    statistics = by_hand[1].running_mean.clone()
    train(by_hand, [p for p in by_hand.parameters() if p.requires_grad], seed=2)
    assert torch.equal(by_hand[1].running_mean, statistics)  # frozen BatchNorm: eval mode, statistics kept

    library, trainable = make(), []
    result = linear_probe_then_fine_tune(
        library, "3",
        probe=lambda head: (trainable.append(trainable_parameter_names(library)),
                            train(library, list(head.parameters()), seed=1)),
        fine_tune=lambda body: (trainable.append(trainable_parameter_names(body)),
                                train(body, [p for p in body.parameters() if p.requires_grad], seed=2), "done")[-1])
    assert result == "done"
    assert trainable == [["3.weight", "3.bias"], ["0.weight", "0.bias", "3.weight", "3.bias"]]
    for expected, got in zip(by_hand.state_dict().values(), library.state_dict().values()):
        torch.testing.assert_close(got, expected)


def test_a_prefix_or_head_that_names_nothing_is_refused() -> None:
    # a typo would otherwise freeze nothing, or probe the wrong layer, silently
    with pytest.raises(ValueError, match=r"prefixes: no parameter name starts with \['bert'\]; top-level names are \['0', '2', '4'\]"):
        freeze(network(), ["0", "bert"])
    with pytest.raises(ValueError, match="head: model has no submodule 'head'"):
        linear_probe_then_fine_tune(nn.Linear(1, 1), "head", print, print)


def test_penalised_loss_is_cross_entropy_plus_l2_sp_and_toward_zero_is_plain_l2() -> None:
    from tlcourse.transfer import PenalisedLoss

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    anchor = model.weight.detach().clone()
    l2_sp = PenalisedLoss(model, ["weight"], strength=0.5)
    plain = PenalisedLoss(model, ["weight"], strength=0.5, toward_zero=True)
    with torch.no_grad():
        model.weight.add_(0.1)
    logits, labels = torch.randn(6, 3), torch.randint(0, 3, (6,))
    cross_entropy = torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(l2_sp(logits, labels), cross_entropy + 0.25 * ((model.weight - anchor) ** 2).sum())
    torch.testing.assert_close(plain(logits, labels), cross_entropy + 0.25 * (model.weight ** 2).sum())
    plain(logits, labels).backward()
    torch.testing.assert_close(model.weight.grad, 0.5 * model.weight.detach())  # alpha w: SGD's weight decay
    assert model.bias.grad is None  # not named: not penalised


@pytest.mark.parametrize("arguments, error, message", [
    ((None, ["weight"], 0.1), TypeError, "model must be an nn.Module, got NoneType"),
    (("model", "weight", 0.1), TypeError, "names must be a non-empty list of parameter names, got 'weight'"),
    (("model", [], 0.1), TypeError, r"names must be a non-empty list of parameter names, got \[\]"),
    (("model", ["nope"], 0.1), ValueError, r"unknown parameter names: \['nope'\]"),
    (("model", ["weight"], math.inf), ValueError, "strength must be a finite number .*got inf"),
])
def test_penalised_loss_names_a_bad_argument(arguments, error, message) -> None:
    from tlcourse.transfer import PenalisedLoss

    model = torch.nn.Linear(2, 2)
    with pytest.raises(error, match=message):
        PenalisedLoss(*(model if a == "model" else a for a in arguments))
