"""Tests of tlcourse.chapters.math_backprop: the chain rule by hand against autograd."""

from __future__ import annotations

import pytest
import torch

from tlcourse.chapters.math_backprop import two_layer_backward, two_layer_forward


@pytest.mark.parametrize("sizes", [(1, 2, 3, 2), (8, 5, 7, 4), (32, 20, 16, 10)])
def test_two_layer_backward_matches_autograd(sizes: tuple[int, int, int, int]) -> None:
    count, dim, hidden, classes = sizes
    generator = torch.Generator().manual_seed(1)
    weights = {
        "W1": torch.randn(hidden, dim, generator=generator, dtype=torch.float64),
        "b1": torch.randn(hidden, generator=generator, dtype=torch.float64),
        "W2": torch.randn(classes, hidden, generator=generator, dtype=torch.float64),
        "b2": torch.randn(classes, generator=generator, dtype=torch.float64),
    }
    inputs = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (count,), generator=generator)
    leaves = {name: w.clone().requires_grad_(True) for name, w in weights.items()}
    x = inputs.clone().requires_grad_(True)
    loss, cache = two_layer_forward(x, labels, leaves)
    cache.pre_activation.retain_grad()
    cache.hidden.retain_grad()
    cache.logits.retain_grad()
    loss.backward()
    manual = two_layer_backward(
        two_layer_forward(inputs, labels, weights)[1], weights)
    for name in weights:
        torch.testing.assert_close(manual[name], leaves[name].grad)
    torch.testing.assert_close(manual["inputs"], x.grad)
    torch.testing.assert_close(manual["logits"], cache.logits.grad)
    torch.testing.assert_close(manual["hidden"], cache.hidden.grad)
    torch.testing.assert_close(manual["pre_activation"], cache.pre_activation.grad)


def _weights() -> dict[str, torch.Tensor]:
    return {"W1": torch.ones(4, 3), "b1": torch.ones(4), "W2": torch.ones(2, 4), "b2": torch.ones(2)}


BAD_INPUTS = [
    (lambda: two_layer_forward(torch.ones(2, 3), torch.zeros(2, dtype=torch.long),
                               {**_weights(), "W1": torch.ones(4, 5)}), ValueError,
     r"inconsistent shapes: inputs \(2, 3\), W1 \(4, 5\)"),
    (lambda: two_layer_forward(torch.ones(2, 3), torch.zeros(2, dtype=torch.long), {"W1": 1}),
     ValueError, r"weights must map 'W1', 'b1', 'W2', 'b2' to tensors; missing \['W2', 'b1', 'b2'\]"),
    (lambda: two_layer_forward([[1.0]], torch.zeros(1, dtype=torch.long), _weights()), TypeError,
     "inputs must be a torch.Tensor, got list"),
    (lambda: two_layer_forward(torch.ones(2, 3), torch.zeros(2, dtype=torch.long),
                               {**_weights(), "b2": None}), TypeError,
     r"weights\['b2'\] must be a torch.Tensor, got NoneType"),
    (lambda: two_layer_backward(None, _weights()), TypeError,
     "cache must be the TwoLayerCache from two_layer_forward, got NoneType"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_bad_inputs_raise_a_message_naming_the_argument(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()
