import pytest
import torch
from torch import nn

from tlcourse.transfer import (
    count_parameters,
    freeze,
    freeze_first,
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


@pytest.mark.parametrize("call, error, message", [
    (lambda: freeze(None), TypeError, "model must be an nn.Module, got NoneType"),
    (lambda: unfreeze("model"), TypeError, "model must be an nn.Module, got str"),
    (lambda: freeze(nn.Linear(1, 1), [1]), TypeError, r"prefixes must be parameter-name prefixes \(strings\), got \[1\]"),
    (lambda: freeze(nn.Linear(1, 1), []), ValueError, "prefixes is empty"),
    (lambda: freeze_first(None, 0), TypeError, "blocks must be a list, got NoneType"),
    (lambda: freeze_first([nn.Linear(1, 1), "x"], 1), TypeError, r"blocks\[1\] must be an nn.Module, got str"),
    (lambda: replace_head(nn.Sequential(nn.Linear(1, 1)), None, 2), TypeError, "path must be a dotted submodule name"),
    (lambda: replace_head([], "0", 2), TypeError, "model must be an nn.Module, got list"),
    (lambda: count_parameters("model"), TypeError, "model must be an nn.Module, got str"),
    (lambda: trainable_parameter_names(None), TypeError, "model must be an nn.Module"),
])
def test_bad_arguments_are_named(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()
