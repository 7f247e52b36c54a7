"""What training and storing a model cost: memory of one training step, size of a checkpoint.

* :func:`training_memory`: bytes of weights, gradients, AdamW state and saved activations;
* :func:`checkpoint_bytes`: the size of the file holding a model's trainable parameters.

Both are measured, not estimated from formulas: the activations are the tensors autograd really
keeps for the backward pass, and the checkpoint is a real safetensors file.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from tlcourse.checkpoint import save_state_dict

__all__ = ["training_memory", "checkpoint_bytes"]


def training_memory(model: nn.Module, batch: Mapping[str, torch.Tensor],
                    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> dict[str, int]:
    """Bytes one AdamW training step holds at its peak, by kind, measured on ``batch``.

    The weights (all of them), one gradient per trainable number, AdamW's two moments per trainable
    number, and the activations autograd saves for the backward pass, counted with
    ``torch.autograd.graph.saved_tensors_hooks`` during a real forward pass and loss (each storage
    once, parameters excluded); the backward pass is run and its gradients discarded, so the model
    is left as it was. Temporaries freed during the step are not counted, so a GPU
    allocator's peak is somewhat higher; the split by kind is what changes between methods.

    Args:
        model: the model in its training configuration (frozen parameters have
            ``requires_grad=False``); it is called as ``model(**inputs)``.
        batch: a padded dict batch with ``"labels"``.
        loss_fn: ``loss_fn(logits, labels)``; defaults to softmax cross-entropy. A loss with a
            penalty on the weights (L2-SP) saves what its backward pass needs too.

    Returns:
        ``{"weights", "gradients", "optimizer state", "activations", "total"}`` in bytes.

    Raises:
        ValueError: ``batch`` without ``"labels"``.

    Example:
        >>> class Net(nn.Module):
        ...     def __init__(self): super().__init__(); self.layer = nn.Linear(4, 2)
        ...     def forward(self, x): return self.layer(x)
        >>> memory = training_memory(Net(), {"x": torch.ones(3, 4), "labels": torch.zeros(3, dtype=torch.long)})
        >>> memory["weights"], memory["gradients"], memory["optimizer state"]
        (40, 40, 80)
    """
    if "labels" not in batch:
        raise ValueError(f"batch needs a 'labels' entry, got keys {sorted(batch)}")
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
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    gradients = {parameter: parameter.grad for parameter in parameters}
    for parameter in parameters:
        parameter.grad = None  # backward below must not add into the caller's gradients
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            output = model(**inputs)
            logits = getattr(output, "logits", output)
            loss = loss_fn(logits, batch["labels"])
        if loss.requires_grad:
            # the backward pass frees the saved tensors: a graph whose saved tensors went through
            # hooks and is dropped without it keeps them alive (a reference cycle through C++)
            loss.backward()
        del loss, logits, output
    finally:
        model.train(was_training)
        for parameter, gradient in gradients.items():  # nothing is left changed
            parameter.grad = gradient
    memory = {"weights": sum(p.numel() * p.element_size() for p in parameters), "gradients": trainable,
              "optimizer state": 2 * trainable, "activations": sum(saved.values())}
    memory["total"] = sum(memory.values())
    return memory


def checkpoint_bytes(model: nn.Module) -> int:
    """Size of the safetensors file holding what ``model`` trains: the part to store per task.

    A copy of everything for full fine-tuning; the head and the biases for BitFit; the head and
    the adapters for LoRA. The shared pretrained weights are stored once for all tasks.

    Args:
        model: the trained model (its parameters with ``requires_grad`` are saved).

    Returns:
        The file's size in bytes.

    Raises:
        ValueError: the model has no trainable parameter.

    Example:
        >>> checkpoint_bytes(nn.Linear(10, 2)) > 22 * 4
        True
    """
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not trained:
        raise ValueError("the model has no trainable parameter to save")
    with tempfile.TemporaryDirectory() as folder:
        return save_state_dict(trained, Path(folder) / "trained.safetensors").stat().st_size
