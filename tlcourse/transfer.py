"""Transfer helpers: freeze and unfreeze, find and replace a head, cache a frozen backbone's features.

After fastai's transfer API: ``freeze``/``unfreeze`` by module or by parameter-name prefix,
``freeze_first`` for the first ``k`` blocks of a backbone, ``replace_head`` that keeps everything
before the head, ``split_head`` into backbone and head, and ``extract_features`` that runs a frozen
backbone once so a head can train on the cache, and ``linear_probe_then_fine_tune``: LP-FT's schedule,
written once for every chapter. Learning rates per part of the network are in
:mod:`tlcourse.optimization`; BatchNorm's statistics in :mod:`tlcourse.batchnorm`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence, TypeVar

import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.checks import check_int, check_module, check_sequence
from tlcourse.train import predict

__all__ = [
    "freeze",
    "unfreeze",
    "freeze_first",
    "locate_submodule",
    "replace_head",
    "count_parameters",
    "trainable_parameter_names",
    "split_head",
    "extract_features",
    "freeze_batchnorm",
    "linear_probe_then_fine_tune",
]

Result = TypeVar("Result")


def _named_parameters(model: nn.Module, prefixes: Sequence[str] | None) -> list[tuple[str, nn.Parameter]]:
    check_module("model", model)
    named = list(model.named_parameters())
    if prefixes is None:
        return named
    if isinstance(prefixes, str):
        prefixes = [prefixes]
    if not all(isinstance(q, str) for q in check_sequence("prefixes", prefixes)):
        raise TypeError(f"prefixes must be parameter-name prefixes (strings), got {list(prefixes)[:5]}")
    chosen = [(n, p) for n, p in named if any(n == q or n.startswith(q.rstrip(".") + ".") for q in prefixes)]
    unmatched = [q for q in prefixes if not any(n == q or n.startswith(q.rstrip(".") + ".") for n, _ in named)]
    if unmatched:
        examples = sorted({n.split(".")[0] for n, _ in named})[:8]
        raise ValueError(f"prefixes: no parameter name starts with {unmatched}; top-level names are {examples}")
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
    blocks = check_sequence("blocks", blocks, non_empty=False)
    for index, block in enumerate(blocks):
        check_module(f"blocks[{index}]", block)
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
    check_module("model", model)
    if not isinstance(path, str) or not path:
        raise TypeError(f"path must be a dotted submodule name such as 'classifier.6', got {path!r}")
    parent_path, _, name = path.rpartition(".")
    try:
        parent = model.get_submodule(parent_path) if parent_path else model
        module = parent.get_submodule(name)
    except AttributeError:
        raise ValueError(f"model has no submodule {path!r}: path must name one, e.g. {[n for n, _ in model.named_children()][:5]}") from None
    return parent, name, module


def _locate_head(model: nn.Module, head: str) -> tuple[nn.Module, str, nn.Module]:
    """:func:`locate_submodule` for an argument called ``head``: its errors name ``head``, not ``path``."""
    try:
        return locate_submodule(model, head)
    except (TypeError, ValueError) as error:
        raise type(error)(f"head: {error}") from None


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
    check_int("num_classes", num_classes)
    parent, name, old = locate_submodule(model, path)
    if not isinstance(old, nn.Linear):
        raise ValueError(f"{path!r} is a {type(old).__name__}, expected nn.Linear")
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    setattr(parent, name, new)
    return new


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
    check_module("model", model)
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
    check_module("model", model)
    return [name for name, p in model.named_parameters() if p.requires_grad]


def split_head(model: nn.Module, head: str) -> tuple[nn.Module, nn.Module]:
    """Detach the head: ``model`` then outputs the features the head would have read.

    Args:
        model: the network, modified in place (the head is replaced by ``nn.Identity``).
        head: dotted path of the head, e.g. ``"classifier.6"`` (VGG16's fc8) or ``"_fc"``.

    Returns:
        ``(backbone, head_module)``; ``backbone`` is ``model`` itself.

    Raises:
        ValueError: if ``head`` does not name a submodule.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
        >>> backbone, fc = split_head(net, "1"); backbone(torch.zeros(1, 4)).shape
        torch.Size([1, 3])
    """
    parent, name, module = _locate_head(model, head)
    setattr(parent, name, nn.Identity())
    return model, module


@torch.inference_mode()
def extract_features(backbone: nn.Module, loader: Iterable, device: torch.device | str = "cpu") -> TensorDataset:
    """Run a frozen backbone over ``loader`` once and keep its outputs.

    The backbone runs in eval mode (no dropout, BatchNorm uses its running statistics), so the
    cached features are exactly what the frozen network computes at test time.

    Args:
        backbone: maps images to features (e.g. from :func:`split_head`).
        loader: yields ``(images, labels)``; should not shuffle or augment.
        device: where to compute.

    Returns:
        ``TensorDataset(features, labels)`` on the CPU, features ``(N, D)`` float32.

    Raises:
        ValueError: if the loader yields nothing.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> data = TensorDataset(torch.randn(5, 4), torch.zeros(5, dtype=torch.long))
        >>> extract_features(nn.Linear(4, 2), DataLoader(data, batch_size=2)).tensors[0].shape
        torch.Size([5, 2])
    """
    # (B, ...) backbone outputs flattened to (B, D) vectors
    features, labels = predict(backbone, loader, device, forward=lambda model, images: model(images).flatten(1))
    return TensorDataset(features, labels)


def freeze_batchnorm(model: nn.Module) -> int:
    """Freeze every BatchNorm layer's scale and shift, so ``fit`` keeps those layers in eval mode.

    A frozen BatchNorm layer normalises with its stored running statistics and keeps them
    (:func:`tlcourse.batchnorm.frozen_norms_to_eval`), as torchvision's ``FrozenBatchNorm2d`` does
    in its detection models.

    Args:
        model: the network.

    Returns:
        The number of parameter elements frozen (0 for a network without BatchNorm, such as VGG16).

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
        >>> freeze_batchnorm(net), net[0].weight.requires_grad
        (6, True)
    """
    check_module("model", model)
    names = [name for name, module in model.named_modules()
             if isinstance(module, nn.modules.batchnorm._BatchNorm) and list(module.parameters(recurse=False))]
    return freeze(model, names) if names else 0


def linear_probe_then_fine_tune(model: nn.Module, head: str, probe: Callable[[nn.Module], Any],
                                fine_tune: Callable[[nn.Module], Result]) -> Result:
    """LP-FT (Kumar et al., 2022): train the head alone, then everything from that trained head.

    A random head sends large, meaningless gradients into the pretrained body in the first steps
    of fine-tuning and distorts the features before the head has learned to read them; a probe
    first avoids that. The probe learned on features normalised with BatchNorm's stored
    statistics, so in the second stage BatchNorm layers stay frozen (:func:`freeze_batchnorm`):
    batch statistics would shift every feature under the trained head at the first step.

    Args:
        model: the pretrained network with a fresh head, trained in place.
        head: dotted path of the head, e.g. ``"classifier"`` or ``"_fc"``.
        probe: trains the head module it is given (on cached features, or through the frozen body:
            the body is frozen while it runs).
        fine_tune: trains the network it is given, whose trainable parameters are everything but
            BatchNorm's; builds its own optimiser from them.

    Returns:
        What ``fine_tune`` returns (for example a training history).

    Raises:
        ValueError: if ``head`` does not name a submodule of ``model``.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
        >>> seen = []
        >>> linear_probe_then_fine_tune(net, "2", lambda head: seen.append(trainable_parameter_names(net)),
        ...                             lambda body: trainable_parameter_names(body))
        ['0.weight', '0.bias', '2.weight', '2.bias']
        >>> seen
        [['2.weight', '2.bias']]
    """
    _, _, head_module = _locate_head(model, head)
    freeze(model)  # stage 1, the probe: the head alone
    unfreeze(head_module)
    probe(head_module)
    unfreeze(model)  # stage 2: everything from the trained head, BatchNorm as pretrained
    freeze_batchnorm(model)
    return fine_tune(model)
