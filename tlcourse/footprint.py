"""What training and storing a model cost, measured: memory of a training step, checkpoint size, FLOPs.

Activations are the tensors autograd really saves, the checkpoint is a real safetensors file, and
FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` as the forward pass runs.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tlcourse.checkpoint import save_state_dict

__all__ = ["training_memory", "checkpoint_bytes", "forward_flops", "estimate_training_seconds",
           "T4_PEAK_FP16_FLOPS", "ASSUMED_UTILIZATION"]

# NVIDIA's T4 datasheet: 65 TFLOP/s fp16 on tensor cores; the GPU of Colab's free tier.
T4_PEAK_FP16_FLOPS = 65e12
# The share of that peak a training run sustains: assumed, not measured (data loading, element-wise
# layers and small matrices keep real runs well below the peak).
ASSUMED_UTILIZATION = (0.30, 0.40)


def training_memory(model: nn.Module, batch: Mapping[str, torch.Tensor],
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> dict[str, int]:
    """Bytes of one AdamW step on a dict ``batch`` with ``"labels"``: ``{"weights", "gradients", "optimizer state", "activations", "total"}``.

    Activations are the storages autograd saves in a real forward pass and loss (parameters
    excluded); the backward pass runs and its gradients are discarded, so the model is left as it
    was. Freed temporaries are not counted: a GPU allocator's peak is somewhat higher.
    """
    loss_fn = loss_fn or F.cross_entropy
    parameters = list(model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in parameters if p.requires_grad)
    parameter_storages = {p.untyped_storage().data_ptr() for p in parameters}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameter_storages:  # a weight saved for backward is not new memory
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    was_training = model.training
    model.train()
    gradients = {parameter: parameter.grad for parameter in parameters}
    for parameter in parameters:
        parameter.grad = None  # backward must not add into the caller's gradients
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            output = model(**{k: v for k, v in batch.items() if k != "labels"})
            loss = loss_fn(getattr(output, "logits", output), batch["labels"])
        if loss.requires_grad:
            # backward frees the saved tensors; a hooked graph dropped without it keeps them alive
            loss.backward()
        del loss, output
    finally:
        model.train(was_training)
        for parameter, gradient in gradients.items():
            parameter.grad = gradient
    memory = {"weights": sum(p.numel() * p.element_size() for p in parameters), "gradients": trainable,
              "optimizer state": 2 * trainable, "activations": sum(saved.values())}
    memory["total"] = sum(memory.values())
    return memory


def checkpoint_bytes(model: nn.Module) -> int:
    """Size in bytes of the safetensors file of the parameters ``model`` trains: what to store per task."""
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    with tempfile.TemporaryDirectory() as folder:
        return save_state_dict(trained, Path(folder) / "trained.safetensors").stat().st_size


def forward_flops(model: nn.Module, example_inputs: Any) -> int:
    """Floating-point operations of one eval-mode forward pass on a tensor, a tuple or a mapping of inputs (a multiply-add is two).

    Matrix products, convolutions and attention are counted; element-wise work is not (a few percent).
    """
    if isinstance(example_inputs, Mapping):
        args, kwargs = (), dict(example_inputs)
    else:
        args, kwargs = (tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)), {}
    was_training = model.training
    model.eval()  # dropout off: the count is that of the pass
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*args, **kwargs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def estimate_training_seconds(flops_per_example: float, examples: int, epochs: float, sustained_flops: float,
                              training_factor: float = 3.0) -> float:
    """``training_factor * flops_per_example * examples * epochs / sustained_flops``: an estimate, not a measurement.

    A training step costs about three forward passes: the backward pass multiplies by each weight
    matrix twice, for the gradients of the activations and of the weights.
    """
    return training_factor * flops_per_example * examples * epochs / sustained_flops
