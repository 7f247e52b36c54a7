"""LoRA written out (tlcourse.lora) against the peft library, the reference implementation."""

import copy

import pytest
import torch
from torch import nn

from tlcourse.lora import LoRALinear, add_lora, lora_parameter_count, merge_lora

peft = pytest.importorskip("peft")


class TwoLayers(nn.Module):
    """A small network with two named linear layers, like an attention block's projections."""

    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(6, 5)
        self.value = nn.Linear(5, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.value(torch.tanh(self.query(x)))))


def _pair(rank: int = 2, alpha: float = 6.0) -> tuple[nn.Module, nn.Module]:
    """The same pretrained network adapted by tlcourse.lora and by peft, with equal adapter weights."""
    torch.manual_seed(0)
    base = TwoLayers()
    ours = copy.deepcopy(base)
    add_lora(ours, ["query", "value"], rank=rank, alpha=alpha, trainable=["head"])
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=["query", "value"],
                             modules_to_save=["head"])
    theirs = peft.get_peft_model(copy.deepcopy(base), config)
    generator = torch.Generator().manual_seed(1)
    for name in ("query", "value"):
        layer = getattr(ours, name)
        # B random too (not zero as at initialisation), so that the update is visible in the outputs
        layer.lora_A.data = torch.randn(layer.lora_A.shape, generator=generator)
        layer.lora_B.data = torch.randn(layer.lora_B.shape, generator=generator)
        reference = getattr(theirs.base_model.model, name)
        reference.lora_A["default"].weight.data.copy_(layer.lora_A.data)
        reference.lora_B["default"].weight.data.copy_(layer.lora_B.data)
    return ours, theirs


def test_outputs_and_gradients_match_peft():
    ours, theirs = _pair()
    inputs = torch.randn(7, 6, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    ours_inputs, theirs_inputs = inputs.clone().requires_grad_(True), inputs.clone().requires_grad_(True)
    ours_out, theirs_out = ours(ours_inputs), theirs(theirs_inputs)
    torch.testing.assert_close(ours_out, theirs_out)
    nn.functional.cross_entropy(ours_out, targets).backward()
    nn.functional.cross_entropy(theirs_out, targets).backward()
    for name in ("query", "value"):
        mine, reference = getattr(ours, name), getattr(theirs.base_model.model, name)
        torch.testing.assert_close(mine.lora_A.grad, reference.lora_A["default"].weight.grad)
        torch.testing.assert_close(mine.lora_B.grad, reference.lora_B["default"].weight.grad)
    torch.testing.assert_close(ours_inputs.grad, theirs_inputs.grad)


def test_same_trainable_parameter_count_as_peft():
    ours, theirs = _pair(rank=3)
    count = sum(p.numel() for p in ours.parameters() if p.requires_grad)
    trainable, _ = theirs.get_nb_trainable_parameters()
    assert count == trainable
    head = sum(p.numel() for p in ours.head.parameters())
    assert count == head + lora_parameter_count(6, 5, 3) + lora_parameter_count(5, 4, 3)


def test_initial_adapter_is_zero_and_b_gets_a_gradient():
    torch.manual_seed(0)
    base = nn.Linear(4, 3)
    layer = LoRALinear(copy.deepcopy(base), rank=2, alpha=4)
    inputs = torch.randn(5, 4)
    assert torch.equal(layer(inputs), base(inputs))  # B = 0: exactly the pretrained layer
    layer(inputs).pow(2).sum().backward()
    assert layer.lora_B.grad.abs().sum() > 0  # A x is not zero, so B learns from step 1
    assert torch.count_nonzero(layer.lora_A.grad) == 0  # and A waits for B to move
    assert base.weight.grad is None and layer.base.weight.grad is None  # the pretrained weight stays frozen


def test_merge_matches_peft_merge_and_unload():
    ours, theirs = _pair(rank=2, alpha=3.0)
    inputs = torch.randn(4, 6)
    before = ours(inputs)
    assert merge_lora(ours) == 2
    assert type(ours.query) is nn.Linear and type(ours.value) is nn.Linear
    torch.testing.assert_close(ours(inputs), before)
    merged_reference = theirs.merge_and_unload()
    torch.testing.assert_close(ours.query.weight, merged_reference.query.weight)
    torch.testing.assert_close(ours.value.weight, merged_reference.value.weight)


def test_delta_weight_is_scaled_low_rank_product():
    layer = LoRALinear(nn.Linear(5, 4), rank=2, alpha=8)
    layer.lora_B.data.normal_()
    delta = layer.delta_weight()
    torch.testing.assert_close(delta, 4.0 * layer.lora_B @ layer.lora_A)
    assert torch.linalg.matrix_rank(delta) <= 2


def test_add_lora_on_a_tiny_bert_matches_peft(tiny):
    _, model = tiny
    ours = copy.deepcopy(model)
    adapted = add_lora(ours, ["query", "value"], rank=2, alpha=4, trainable=["classifier"])
    assert len(adapted) == 2 * ours.config.num_hidden_layers
    config = peft.LoraConfig(task_type="SEQ_CLS", r=2, lora_alpha=4, lora_dropout=0.0,
                             target_modules=["query", "value"])
    theirs = peft.get_peft_model(copy.deepcopy(model), config)
    assert sum(p.numel() for p in ours.parameters() if p.requires_grad) == theirs.get_nb_trainable_parameters()[0]


@pytest.mark.parametrize("kwargs, match", [
    ({"rank": 0, "alpha": 1.0}, "rank must be a positive int"),
    ({"rank": 2, "alpha": 0.0}, "alpha must be a positive number"),
    ({"rank": 2, "alpha": 1.0, "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
])
def test_lora_linear_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LoRALinear(nn.Linear(3, 3), **kwargs)


def test_lora_linear_rejects_other_layers():
    with pytest.raises(TypeError, match="base must be an nn.Linear, got Conv1d"):
        LoRALinear(nn.Conv1d(3, 3, 1), rank=1, alpha=1)


def test_add_lora_rejects_bad_targets():
    with pytest.raises(ValueError, match="no module of the model matches"):
        add_lora(TwoLayers(), ["key"], rank=1, alpha=1)
    with pytest.raises(ValueError, match="target_modules is empty"):
        add_lora(TwoLayers(), [], rank=1, alpha=1)
    with pytest.raises(ValueError, match="adapts nn.Linear layers only"):
        add_lora(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), ["1"], rank=1, alpha=1)


def test_merge_lora_without_adapters_and_parameter_count_errors():
    with pytest.raises(ValueError, match="no LoRALinear layer"):
        merge_lora(TwoLayers())
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        lora_parameter_count(0, 3, 1)
    assert lora_parameter_count(384, 384, 8) == 8 * 768
