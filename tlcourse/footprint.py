"""What training and storing a model cost: memory of one training step, size of a checkpoint.

* :func:`training_memory`: bytes of weights, gradients, AdamW state and saved activations;
* :func:`checkpoint_bytes`: the size of the file holding a model's trainable parameters;
* :func:`forward_flops`: the floating-point operations of one forward pass, counted as it runs;
* :func:`estimate_training_seconds`: a training time from those FLOPs and an assumed throughput.

The first three are measured, not estimated from formulas: the activations are the tensors autograd
really keeps for the backward pass, the checkpoint is a real safetensors file, and the FLOPs are
counted by ``torch.utils.flop_counter.FlopCounterMode`` on the operations the model dispatches.
"""
from __future__ import annotations

import numbers
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tlcourse.checkpoint import save_state_dict
from tlcourse.checks import check_module

__all__ = ["training_memory", "checkpoint_bytes", "forward_flops", "estimate_training_seconds",
           "T4_PEAK_FP16_FLOPS", "ASSUMED_UTILIZATION"]

# NVIDIA's T4 datasheet: 65 TFLOP/s in fp16 on tensor cores (fp32 accumulation), the GPU of Colab's
# free tier and the smallest "modern GPU" the book's gpu profile is planned for.
T4_PEAK_FP16_FLOPS = 65e12
# The share of that peak a training run sustains, assumed, not measured: a range, since data
# loading, element-wise layers and small matrices keep real runs well below the peak.
ASSUMED_UTILIZATION = (0.30, 0.40)


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
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: the model has no trainable parameter.

    Example:
        >>> checkpoint_bytes(nn.Linear(10, 2)) > 22 * 4
        True
    """
    check_module("model", model)
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not trained:
        raise ValueError("the model has no trainable parameter to save")
    with tempfile.TemporaryDirectory() as folder:
        return save_state_dict(trained, Path(folder) / "trained.safetensors").stat().st_size


def forward_flops(model: nn.Module, example_inputs: Any) -> int:
    """Floating-point operations of one forward pass of ``model`` on ``example_inputs``, counted.

    ``torch.utils.flop_counter.FlopCounterMode`` counts every matrix product, convolution and
    attention product the forward pass dispatches (a multiply-add counts as two operations); the
    element-wise work (activations, normalisation, softmax) is not counted, a few percent in
    convolutional networks and transformers. The count depends only on the shapes, so a randomly
    initialised model gives the same number as a trained one. Pass one example to get FLOPs per
    example. The model runs under ``torch.no_grad()`` in eval mode and is left in its mode.

    Args:
        model: the network.
        example_inputs: a tensor (``model(x)``), a tuple or list (``model(*inputs)``) or a mapping
            (``model(**inputs)``).

    Returns:
        The number of floating-point operations.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``example_inputs`` of another type.
        ValueError: the forward pass dispatched no counted operation.

    Example:
        >>> forward_flops(nn.Linear(4, 2), torch.ones(1, 4))  # 2 x 4 inputs x 2 outputs
        16
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(example_inputs, torch.Tensor):
        args, kwargs = (example_inputs,), {}
    elif isinstance(example_inputs, (tuple, list)):
        args, kwargs = tuple(example_inputs), {}
    elif isinstance(example_inputs, Mapping):
        args, kwargs = (), dict(example_inputs)
    else:
        raise TypeError("example_inputs must be a tensor, a tuple or list, or a mapping, "
                        f"got {type(example_inputs).__name__}")
    was_training = model.training
    model.eval()  # dropout off: the count is that of the pass, not of a random mask
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*args, **kwargs)
    finally:
        model.train(was_training)
    flops = int(counter.get_total_flops())
    if flops == 0:
        raise ValueError("the forward pass dispatched no matrix product or convolution to count")
    return flops


def estimate_training_seconds(flops_per_example: float, examples: int, epochs: float, sustained_flops: float,
                              training_factor: float = 3.0) -> float:
    """Seconds of training estimated from forward FLOPs and an assumed sustained throughput.

    A training step costs about three forward passes: the backward pass multiplies by each weight
    matrix twice, once for the gradient of the activations and once for that of the weights. So
    the time is ``training_factor * flops_per_example * examples * epochs / sustained_flops``.
    It is an estimate: data loading, element-wise work and evaluation are not in it, and the
    sustained throughput is the assumption that matters (a fraction of the GPU's peak).

    Args:
        flops_per_example: forward FLOPs of one example (:func:`forward_flops`).
        examples: training examples per epoch.
        epochs: epochs.
        sustained_flops: floating-point operations per second the hardware sustains.
        training_factor: training FLOPs per forward FLOP (3 for a full backward pass).

    Returns:
        The estimated seconds.

    Raises:
        TypeError: an argument that is not a real number.
        ValueError: a non-positive (or NaN) argument, or ``training_factor`` below 1.

    Example:
        >>> estimate_training_seconds(1e9, examples=1000, epochs=2, sustained_flops=1e12)
        6.0
    """
    for name, value in {"flops_per_example": flops_per_example, "examples": examples, "epochs": epochs,
                        "sustained_flops": sustained_flops, "training_factor": training_factor}.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        if not value > 0:  # NaN fails this too
            raise ValueError(f"{name} must be positive, got {value}")
    if not training_factor >= 1:
        raise ValueError(f"training_factor must be at least 1 (the forward pass itself), got {training_factor}")
    return training_factor * flops_per_example * examples * epochs / sustained_flops
