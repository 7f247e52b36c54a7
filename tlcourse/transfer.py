"""Transfer helpers: freeze and unfreeze, replace a head, discriminative learning rates.

Frozen BatchNorm layers are kept in eval mode by :func:`frozen_norms_to_eval`, which
:func:`tlcourse.train.fit` calls after ``model.train()``: a frozen layer must not change, and a
BatchNorm layer in train mode changes its running statistics even when it gets no gradient.

After fastai's transfer API: ``freeze``/``unfreeze`` by module or by parameter-name prefix,
``freeze_first`` for the first ``k`` blocks of a backbone, ``replace_head`` that keeps everything
before the head, and ``parameter_groups`` that gives each part of the network its own learning rate.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

__all__ = [
    "freeze",
    "unfreeze",
    "freeze_first",
    "locate_submodule",
    "replace_head",
    "parameter_groups",
    "discriminative_learning_rates",
    "count_parameters",
    "trainable_parameter_names",
    "frozen_norms_to_eval",
    "recompute_batchnorm_statistics",
]


def _named_parameters(model: nn.Module, prefixes: Sequence[str] | None) -> list[tuple[str, nn.Parameter]]:
    named = list(model.named_parameters())
    if prefixes is None:
        return named
    if isinstance(prefixes, str):
        prefixes = [prefixes]
    chosen = [(n, p) for n, p in named if any(n == q or n.startswith(q.rstrip(".") + ".") for q in prefixes)]
    unmatched = [q for q in prefixes if not any(n == q or n.startswith(q.rstrip(".") + ".") for n, _ in named)]
    if unmatched:
        examples = sorted({n.split(".")[0] for n, _ in named})[:8]
        raise ValueError(f"no parameter name starts with {unmatched}; top-level names are {examples}")
    return chosen


def freeze(model: nn.Module, prefixes: Sequence[str] | str | None = None) -> int:
    """Stop gradients for all parameters of ``model``, or those under the name ``prefixes``.

    Freezing also means BatchNorm layers should run in eval mode when training a frozen backbone;
    that is the caller's choice (``module.eval()``), since it depends on the recipe.

    Args:
        model: the network.
        prefixes: parameter-name prefixes such as ``"features"`` or ``["bert.embeddings"]``;
            ``None`` freezes everything.

    Returns:
        The number of parameter elements frozen.

    Raises:
        ValueError: if a prefix matches no parameter.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        >>> freeze(net, "0")
        6
    """
    chosen = _named_parameters(model, prefixes)
    for _, parameter in chosen:
        parameter.requires_grad_(False)
    return sum(p.numel() for _, p in chosen)


def unfreeze(model: nn.Module, prefixes: Sequence[str] | str | None = None) -> int:
    """Let gradients flow again, for all parameters or those under ``prefixes``.

    Args:
        model: the network.
        prefixes: as for :func:`freeze`.

    Returns:
        The number of parameter elements unfrozen.

    Raises:
        ValueError: if a prefix matches no parameter.

    Example:
        >>> net = nn.Linear(2, 2); _ = freeze(net); unfreeze(net)
        6
    """
    chosen = _named_parameters(model, prefixes)
    for _, parameter in chosen:
        parameter.requires_grad_(True)
    return sum(p.numel() for _, p in chosen)


def freeze_first(blocks: Sequence[nn.Module], count: int) -> int:
    """Freeze the first ``count`` blocks of a backbone and unfreeze the rest.

    Args:
        blocks: the backbone's blocks in input-to-output order (e.g. VGG16's five conv blocks,
            or BERT's embeddings followed by its encoder layers).
        count: how many blocks, from the input side, to freeze; ``0`` unfreezes all.

    Returns:
        The number of parameter elements frozen.

    Raises:
        ValueError: if ``count`` is negative or larger than the number of blocks.

    Example:
        >>> blocks = [nn.Linear(2, 2), nn.Linear(2, 2)]
        >>> freeze_first(blocks, 1), blocks[1].weight.requires_grad
        (6, True)
    """
    blocks = list(blocks)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= len(blocks):
        raise ValueError(f"count must be an int in [0, {len(blocks)}] (the number of blocks), got {count!r}")
    frozen = 0
    for index, block in enumerate(blocks):
        for parameter in block.parameters():
            parameter.requires_grad_(index >= count)
            frozen += parameter.numel() if index < count else 0
    return frozen


def locate_submodule(model: nn.Module, path: str) -> tuple[nn.Module, str, nn.Module]:
    """Find the module at a dotted ``path`` and the parent that holds it, to swap it in place.

    Args:
        model: the network.
        path: dotted path, e.g. ``"classifier.6"``.

    Returns:
        ``(parent, name, module)`` with ``getattr(parent, name) is module``.

    Raises:
        ValueError: if the path does not name a submodule.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        >>> locate_submodule(net, "1")[1:]
        ('1', ReLU())
    """
    parent_path, _, name = path.rpartition(".")
    try:
        parent = model.get_submodule(parent_path) if parent_path else model
        module = parent.get_submodule(name)
    except AttributeError:
        raise ValueError(f"model has no submodule {path!r}") from None
    return parent, name, module


def replace_head(model: nn.Module, path: str, num_classes: int) -> nn.Linear:
    """Replace the linear layer at ``path`` by a fresh one with ``num_classes`` outputs.

    The new layer keeps the old ``in_features`` (read from the layer, not assumed), so every
    pretrained layer before it, such as VGG16's fc6 and fc7, is kept unchanged.

    Args:
        model: the network, modified in place.
        path: dotted path of the layer, e.g. ``"classifier.6"`` for VGG16 or ``"classifier"``.
        num_classes: number of target classes.

    Returns:
        The new head.

    Raises:
        ValueError: if the path does not exist, is not an ``nn.Linear``, or ``num_classes < 1``.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1000))
        >>> replace_head(net, "2", 10)
        Linear(in_features=3, out_features=10, bias=True)
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    parent, name, old = locate_submodule(model, path)
    if not isinstance(old, nn.Linear):
        raise ValueError(f"{path!r} is a {type(old).__name__}, expected nn.Linear")
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    setattr(parent, name, new)
    return new


def parameter_groups(
    model: nn.Module,
    learning_rates: dict[str, float],
    weight_decay: float = 0.0,
) -> list[dict]:
    """Build optimizer parameter groups, one learning rate per name prefix.

    Only trainable parameters are included. Every trainable parameter must fall under exactly one
    prefix, so none is silently trained with a default learning rate; ``""`` matches everything not
    matched by another prefix.

    Args:
        model: the network.
        learning_rates: ``{prefix: lr}``, e.g. ``{"features": 1e-5, "classifier": 1e-3}``.
        weight_decay: put in every group.

    Returns:
        A list of ``{"params": [...], "lr": lr, "weight_decay": wd, "name": prefix}`` dicts.

    Raises:
        ValueError: if a trainable parameter matches no prefix, or a learning rate is not positive.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        >>> [g["lr"] for g in parameter_groups(net, {"0": 1e-4, "1": 1e-2})]
        [0.0001, 0.01]
    """
    for prefix, lr in learning_rates.items():
        if not lr > 0:
            raise ValueError(f"learning rate for {prefix!r} must be positive, got {lr!r}")
    specific = sorted((p for p in learning_rates if p), key=len, reverse=True)  # longest prefix wins
    buckets: dict[str, list[nn.Parameter]] = {prefix: [] for prefix in learning_rates}
    unmatched = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        match = next((p for p in specific if name == p or name.startswith(p.rstrip(".") + ".")), None)
        if match is None and "" in learning_rates:
            match = ""
        if match is None:
            unmatched.append(name)
        else:
            buckets[match].append(parameter)
    if unmatched:
        raise ValueError(f"trainable parameters {unmatched[:5]} match no prefix in {sorted(learning_rates)}; "
                         "add a prefix (or '' for the rest) or freeze them")
    return [
        {"params": params, "lr": learning_rates[prefix], "weight_decay": weight_decay, "name": prefix}
        for prefix, params in buckets.items()
        if params
    ]


def discriminative_learning_rates(
    blocks: Sequence[nn.Module], lowest: float, highest: float
) -> list[dict]:
    """Parameter groups whose learning rates grow geometrically from ``lowest`` to ``highest``.

    As fastai's ``slice(lowest, highest)``: the first block (closest to the input, most general)
    gets ``lowest``, the last block (usually the new head) gets ``highest``.

    Args:
        blocks: blocks in input-to-output order.
        lowest: learning rate of the first block.
        highest: learning rate of the last block.

    Returns:
        One parameter group per block with trainable parameters.

    Raises:
        ValueError: if there are no blocks or the rates are not ``0 < lowest <= highest``.

    Example:
        >>> groups = discriminative_learning_rates([nn.Linear(1, 1)] * 3, 1e-4, 1e-2)
        >>> [round(g["lr"], 6) for g in groups]
        [0.0001, 0.001, 0.01]
    """
    blocks = list(blocks)
    if not blocks:
        raise ValueError("blocks is empty: expected at least one block")
    if not 0 < lowest <= highest:
        raise ValueError(f"expected 0 < lowest <= highest, got lowest={lowest}, highest={highest}")
    count = len(blocks)
    groups = []
    for index, block in enumerate(blocks):
        fraction = index / (count - 1) if count > 1 else 1.0
        lr = lowest * (highest / lowest) ** fraction
        params = [p for p in block.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": lr})
    return groups


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Count parameter elements.

    Args:
        model: the network.
        trainable_only: count only parameters with ``requires_grad``.

    Returns:
        The number of scalars.

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def trainable_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters that will receive gradients.

    Args:
        model: the network.

    Returns:
        Parameter names with ``requires_grad`` set, in registration order.

    Example:
        >>> net = nn.Linear(2, 2); _ = freeze(net, "bias"); trainable_parameter_names(net)
        ['weight']
    """
    return [name for name, p in model.named_parameters() if p.requires_grad]


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
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        >>> _ = freeze(net, "1")
        >>> frozen_norms_to_eval(net.train()), net[1].training
        (['1'], False)
    """
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
    for module in norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative moving average over the whole pass
    model.to(device).train()
    frozen_norms_to_eval(model)
    with torch.no_grad():  # statistics only: no graph, no gradients
        for inputs, _ in loader:
            model(inputs.to(device))
    for module, momentum in zip(norms, momenta):
        module.momentum = momentum
    return model.eval()
