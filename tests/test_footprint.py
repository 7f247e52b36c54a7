"""Training memory and checkpoint size, measured (tlcourse.footprint)."""

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tlcourse.checkpoint import save_state_dict
from tlcourse.footprint import checkpoint_bytes, estimate_training_seconds, forward_flops, training_memory


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def _batch(count: int = 5) -> dict[str, torch.Tensor]:
    return {"x": torch.randn(count, 6), "labels": torch.zeros(count, dtype=torch.long)}


def test_training_memory_counts_weights_gradients_and_adamw_state():
    net = Net()
    memory = training_memory(net, _batch())
    weights = 4 * (6 * 8 + 8 + 8 * 2 + 2)  # fp32
    assert memory["weights"] == weights and memory["gradients"] == weights
    assert memory["optimizer state"] == 2 * weights  # AdamW's two moments, the size of the weights
    assert memory["total"] == sum(value for key, value in memory.items() if key != "total")
    # the optimiser really holds that much after one step
    optimizer = torch.optim.AdamW(net.parameters())
    nn.functional.cross_entropy(net(_batch()["x"]), _batch()["labels"]).backward()
    optimizer.step()
    state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for k, t in s.items() if k != "step")
    assert state == memory["optimizer state"]


def test_training_memory_counts_saved_activations():
    net = Net()
    small, large = training_memory(net, _batch(5)), training_memory(net, _batch(50))
    # relu's output (8 floats) is saved for the head's weight gradient and relu's own backward
    assert small["activations"] >= 4 * 5 * 8
    assert large["activations"] > small["activations"]  # activations grow with the batch
    assert large["weights"] == small["weights"]
    net.body.requires_grad_(False)
    frozen = training_memory(net, _batch(50))
    assert frozen["gradients"] == 4 * (8 * 2 + 2)
    assert frozen["activations"] < large["activations"]  # nothing below the frozen body is kept
    net.requires_grad_(False)
    assert training_memory(net, _batch(50))["activations"] == 0


def test_training_memory_leaves_the_model_as_it_was():
    net = Net().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    training_memory(net, _batch())
    assert not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


def test_checkpoint_bytes_is_the_size_of_the_trainable_parameters_file(tmp_path):
    net = Net()
    net.body.requires_grad_(False)
    size = checkpoint_bytes(net)
    path = save_state_dict({k: v for k, v in net.named_parameters() if v.requires_grad}, tmp_path / "head.safetensors")
    assert size == path.stat().st_size
    assert sorted(load_file(path)) == ["head.bias", "head.weight"]  # read by the safetensors library itself
    net.body.requires_grad_(True)
    assert checkpoint_bytes(net) - size >= 4 * (6 * 8 + 8)


def test_training_memory_frees_the_activations_it_counted():
    import gc
    import weakref

    kept = []

    class Recording(Net):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            hidden = torch.relu(self.body(x))  # saved for the head's weight gradient
            kept.append(weakref.ref(hidden))
            return self.head(hidden)

    net = Recording()
    net.head.weight.grad = torch.ones_like(net.head.weight)
    training_memory(net, _batch())
    gc.collect()
    assert kept and kept[0]() is None  # a graph dropped under the hooks would keep it alive
    assert torch.equal(net.head.weight.grad, torch.ones_like(net.head.weight))  # gradients restored
    assert net.body.weight.grad is None


def test_forward_flops_of_linear_layers_is_the_hand_count():
    # a Linear layer does in x out multiply-adds per example: 2 x in x out operations
    net = Net()
    assert forward_flops(net, torch.randn(1, 6)) == 2 * (6 * 8 + 8 * 2)
    assert forward_flops(net, torch.randn(3, 6)) == 3 * 2 * (6 * 8 + 8 * 2)  # linear in the batch
    assert forward_flops(net, {"x": torch.randn(1, 6)}) == forward_flops(net, (torch.randn(1, 6),))


def test_forward_flops_of_a_convolution_is_the_hand_count():
    conv = nn.Conv2d(3, 5, kernel_size=3, padding=1)
    height, width = 7, 9  # padding 1 keeps the size: one 3 x 3 x 3 window per output position
    expected = 2 * (3 * 3 * 3) * 5 * height * width
    assert forward_flops(conv, torch.randn(1, 3, height, width)) == expected


def test_forward_flops_leaves_the_mode_and_gradients_alone():
    net = Net().train()
    forward_flops(net, torch.randn(2, 6))
    assert net.training and all(p.grad is None for p in net.parameters())


def test_estimate_training_seconds_is_three_forward_passes_over_the_epochs():
    # by hand: 2 GFLOPs forward, x 3 for a training step (forward, and backward at about twice it),
    # x 500 examples x 4 epochs = 1.2e13 FLOPs; at 1 TFLOP/s that is 12 seconds
    assert estimate_training_seconds(2e9, 500, 4, 1e12) == pytest.approx(12.0)
    assert estimate_training_seconds(2e9, 500, 4, 1e12, training_factor=1.0) == pytest.approx(4.0)


def test_forward_flops_on_the_meta_device_equals_the_count_on_real_weights():
    # the VGG16 chapter counts on the meta device (shapes only): the count must not change
    def build() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))

    real = forward_flops(build(), torch.randn(1, 3, 8, 8))
    with torch.device("meta"):
        shapes_only = build()
    assert forward_flops(shapes_only, torch.empty(1, 3, 8, 8, device="meta")) == real == 2 * (27 * 4 * 36 + 144 * 5)
