import torch
from torch import nn

from tlcourse.batchnorm import frozen_norms_to_eval, recompute_batchnorm_statistics
from tlcourse.transfer import freeze


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


def test_recompute_batchnorm_statistics_with_no_batches_keeps_the_statistics() -> None:
    import pytest

    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    net.train()
    net(torch.randn(8, 2) * 5 + 3)  # running statistics far from the reset values 0 and 1
    before = {k: v.clone() for k, v in net[1].state_dict().items()}
    with pytest.raises(ValueError, match="loader yielded no batches.*left as they were"):
        recompute_batchnorm_statistics(net, [])
    for key, value in net[1].state_dict().items():
        assert torch.equal(value, before[key]), key
    assert net[1].momentum == 0.1


def test_recompute_batchnorm_statistics_equals_torch_update_bn_without_frozen_layers() -> None:
    import copy

    from torch.optim.swa_utils import update_bn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 4), nn.BatchNorm1d(4))
    reference = copy.deepcopy(net)
    batches = [(torch.randn(8, 3) * 2 + 1, torch.zeros(8, dtype=torch.long)) for _ in range(3)]
    recompute_batchnorm_statistics(net, batches)
    update_bn(batches, reference)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(net.state_dict()[key], value)
