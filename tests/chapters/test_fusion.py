"""Tests of tlcourse.fusion_experiment: the digit MLP, its training recipe and its permutations."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.chapters.fusion import (
    fine_tune_copy,
    make_digit_mlp,
    permute_hidden_units,
    pretrain_and_probe,
    settings,
)
from tlcourse.data import make_loader
from tlcourse.profiles import get_profile
from tlcourse.runtime import seed_everything
from tlcourse.train import fit


def _digits(count: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(count, 1, 28, 28, generator=generator), torch.randint(5, (count,), generator=generator))


def test_pretrain_and_probe_keeps_the_pretrained_body_and_trains_a_new_head() -> None:
    config = settings(get_profile("smoke"))
    source, target = _digits(32, 0), _digits(32, 1)
    probe = pretrain_and_probe(8, make_loader(source, 8, shuffle=True, seed=0),
                               make_loader(target, 8, shuffle=True, seed=0), config, seed=3)
    # independent reference: the same pretraining written out, without the probe stage
    seed_everything(3)
    reference = make_digit_mlp(5, 8)
    fit(reference, make_loader(source, 8, shuffle=True, seed=0), torch.optim.Adam(reference.parameters(), 1e-3),
        num_epochs=config.pretrain_epochs, max_steps_per_epoch=config.max_steps_per_epoch, progress=False)
    for name, value in reference.body.state_dict().items():
        assert torch.equal(probe.body.state_dict()[name], value), name  # the probe stage left the body alone
    assert not torch.equal(probe.head.weight, reference.head.weight)  # a new, trained head
    assert all(parameter.requires_grad for parameter in probe.parameters())  # unfrozen for fine-tuning


def test_fine_tune_copy_leaves_the_probe_alone_and_is_reproducible() -> None:
    seed_everything(0)
    probe = make_digit_mlp(5, 8)
    before = {k: v.clone() for k, v in probe.state_dict().items()}
    data = _digits(32, 2)
    first = fine_tune_copy(probe, data, 1e-2, seed=4, batch_size=8, num_epochs=1)
    second = fine_tune_copy(probe, data, 1e-2, seed=4, batch_size=8, num_epochs=1)
    for key, value in probe.state_dict().items():
        assert torch.equal(value, before[key]), key
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    assert not torch.equal(first.head.weight, probe.head.weight)


def test_permute_hidden_units_preserves_the_function_and_changes_the_weights() -> None:
    torch.manual_seed(0)
    net = make_digit_mlp(num_classes=3, hidden_size=8).eval()
    permuted_state = permute_hidden_units(net, generator=torch.Generator().manual_seed(1))
    permuted = make_digit_mlp(num_classes=3, hidden_size=8).eval()
    permuted.load_state_dict(permuted_state)  # strict: same keys and shapes
    inputs = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(permuted(inputs), net(inputs))
    original = net.state_dict()
    for key in ("body.1.weight", "body.1.bias", "body.3.weight", "body.3.bias", "head.weight"):
        assert not torch.equal(permuted_state[key], original[key]), key
    assert torch.equal(permuted_state["head.bias"], original["head.bias"])  # outputs are not permuted
    # the same units are still there, only reordered
    torch.testing.assert_close(permuted_state["body.1.bias"].sort().values, original["body.1.bias"].sort().values)


def test_permute_hidden_units_with_explicit_permutations_matches_hand_indexing() -> None:
    torch.manual_seed(0)
    state = make_digit_mlp(num_classes=2, hidden_size=3).state_dict()
    first, second = torch.tensor([2, 0, 1]), torch.tensor([1, 2, 0])
    permuted = permute_hidden_units(state, permutations=(first, second))
    torch.testing.assert_close(permuted["body.1.weight"][0], state["body.1.weight"][2])
    torch.testing.assert_close(permuted["body.3.weight"][0, 1], state["body.3.weight"][1, 0])
    torch.testing.assert_close(permuted["head.weight"][:, 2], state["head.weight"][:, 0])
    identity = permute_hidden_units(state, permutations=(torch.arange(3), torch.arange(3)))
    for key in state:
        assert torch.equal(identity[key], state[key])


def test_permute_hidden_units_bad_inputs_raise() -> None:
    state = make_digit_mlp(num_classes=2, hidden_size=3).state_dict()
    missing = {key: value for key, value in state.items() if key != "body.3.weight"}
    with pytest.raises(ValueError, match="missing key 'body.3.weight'"):
        permute_hidden_units(missing)
    with pytest.raises(ValueError, match="unexpected keys"):
        permute_hidden_units({**state, "extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="missing key 'body.1.weight'"):
        permute_hidden_units(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="do not chain"):
        permute_hidden_units({**state, "head.weight": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match=r"permutation of 0\.\.2"):
        permute_hidden_units(state, permutations=(torch.tensor([0, 0, 1]), torch.arange(3)))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        permute_hidden_units(state, permutations=(torch.arange(3), torch.arange(4)))
    with pytest.raises(TypeError, match="nn.Module or a state dict"):
        permute_hidden_units([1, 2, 3])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu"])
def test_experiment_config_has_a_narrow_barrier_network(name: str) -> None:
    config = settings(get_profile(name))
    assert 0 < config.barrier_hidden_size < config.hidden_size
    assert config.num_barrier_models >= 2 and config.barrier_epochs >= 1
