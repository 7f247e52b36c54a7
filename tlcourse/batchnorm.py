"""BatchNorm during transfer: which layers keep their statistics, and how to re-estimate them.

A BatchNorm layer in train mode normalises with the batch's statistics and updates its running
averages, even when its own parameters get no gradient. Two consequences matter when fine-tuning:

* a frozen BatchNorm layer must stay in eval mode, or "frozen" layers still change
  (:func:`frozen_norms_to_eval`, which :func:`tlcourse.train.fit` calls after ``model.train()``);
* with a small momentum (EfficientNet uses 0.01) the running averages of trained layers lag far
  behind their weights after a short run, so :func:`recompute_batchnorm_statistics` re-estimates
  them with one pass over training data.
"""

from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import nn

from tlcourse.checks import check_module, check_tensor

__all__ = [
    "frozen_norms_to_eval",
    "recompute_batchnorm_statistics",
    "batchnorm_mode_accuracies",
]


def frozen_norms_to_eval(model: nn.Module) -> list[str]:
    """Put every BatchNorm layer whose parameters are all frozen into eval mode.

    In train mode a BatchNorm layer normalises with the batch's statistics and updates its running
    mean and variance, whether or not its weights get gradients; a "frozen" backbone would still
    drift. In eval mode it uses, and keeps, its stored statistics (Keras does the same for a
    BatchNormalization layer with ``trainable = False``). Layers without parameters
    (``affine=False``) are left alone: nothing says whether they are meant to be frozen.

    Args:
        model: a network, usually just after ``model.train()``.

    Returns:
        The names of the layers put in eval mode.

    Example:
        >>> from tlcourse.transfer import freeze
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        >>> _ = freeze(net, "1")
        >>> frozen_norms_to_eval(net.train()), net[1].training
        (['1'], False)
    """
    check_module("model", model)
    names = []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            parameters = list(module.parameters(recurse=False))
            if parameters and not any(p.requires_grad for p in parameters):
                module.eval()
                names.append(name)
    return names


def recompute_batchnorm_statistics(model: nn.Module, loader: Iterable, device: torch.device | str = "cpu") -> nn.Module:
    """Re-estimate BatchNorm running statistics from data, in place ("precise BN").

    Two cases in this book need it. After a short fine-tuning run the running averages still
    mostly hold the pretraining data's statistics when the layers' momentum is small (0.01 in
    EfficientNet, TensorFlow's decay of 0.99), so the network is evaluated with statistics it was
    not trained with. And after averaging weights (soups, interpolation) the averaged running
    statistics are not those of the averaged network. One pass over training data with a
    cumulative average (``momentum=None``) fixes both.

    Frozen BatchNorm layers (all parameters frozen) are left alone and stay in eval mode during
    the pass, as they did during training (:func:`frozen_norms_to_eval`): the layers after them
    were trained on inputs normalised with the stored statistics, so changing those would break
    what was learned.

    Args:
        model: a network, possibly with BatchNorm layers (without any, nothing changes).
        loader: yields ``(inputs, targets)`` batches; targets are ignored.
        device: where to run.

    Returns:
        ``model``, in eval mode.

    Example:
        >>> net = nn.Sequential(nn.BatchNorm1d(2))
        >>> _ = recompute_batchnorm_statistics(net, [(torch.ones(4, 2), None)])
        >>> net[0].running_mean
        tensor([1., 1.])
    """
    frozen = set(frozen_norms_to_eval(model))
    norms = [module for name, module in model.named_modules()
             if isinstance(module, nn.modules.batchnorm._BatchNorm) and name not in frozen]
    if not norms:
        return model.eval()
    momenta = [module.momentum for module in norms]
    saved = [{k: v.clone() for k, v in module.state_dict().items()} for module in norms]
    for module in norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative moving average over the whole pass
    model.to(device).train()
    frozen_norms_to_eval(model)
    seen = 0
    try:
        with torch.no_grad():  # statistics only: no graph, no gradients
            for batch in loader:
                if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                    raise TypeError(f"loader must yield (inputs, targets) pairs, got {type(batch).__name__}")
                model(batch[0].to(device))
                seen += 1
        if seen == 0:
            raise ValueError("loader yielded no batches: expected at least one to estimate BatchNorm "
                             "statistics from (the running statistics are left as they were)")
    except BaseException:
        for module, state in zip(norms, saved):  # never leave reset (0 and 1) statistics behind
            module.load_state_dict(state)
        raise
    finally:
        for module, momentum in zip(norms, momenta):
            module.momentum = momentum
    return model.eval()


def batchnorm_mode_accuracies(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Accuracy on one batch with BatchNorm's stored statistics (eval mode) and with the batch's own (train mode).

    The second is what a head trained on frozen features sees at the first step of fine-tuning if
    the BatchNorm layers switch to train mode. The model is copied, so its statistics stay as they are.

    Args:
        model: a classifier, usually with BatchNorm layers.
        images: one batch ``(B, ...)``.
        labels: ``(B,)`` class indices.

    Returns:
        ``(accuracy with stored statistics, accuracy with batch statistics)``.

    Example:
        >>> net = nn.Sequential(nn.BatchNorm1d(2))
        >>> _ = net[0].running_mean.copy_(torch.tensor([10.0, 0.0]))
        >>> batchnorm_mode_accuracies(net, torch.tensor([[3.0, 0.0], [0.0, 3.0]]), torch.tensor([0, 0]))
        (0.0, 0.5)
    """
    check_module("model", model)
    check_tensor("images", images)
    check_tensor("labels", labels, dim=1)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"labels must have one entry per image: {images.shape[0]} images, {labels.shape[0]} labels")
    copied = copy.deepcopy(model)
    with torch.no_grad():
        stored = (copied.eval()(images).argmax(1) == labels).float().mean().item()
        batch = (copied.train()(images).argmax(1) == labels).float().mean().item()
    return stored, batch
