"""LoRA written out: a frozen linear layer plus a trainable low-rank update, and merging it away.

Hu et al. (2021) fine-tune a weight matrix ``W`` (``out x in``) by learning only a low-rank
update: the layer computes ``W x + (alpha / r) B A x`` with ``A`` of shape ``(r, in)`` and ``B`` of
shape ``(out, r)``. ``B`` starts at zero, so the adapted model is exactly the pretrained one at
step 0; ``A`` starts random, so the gradient of ``B`` is not zero. For inference the update folds
into the weight, ``W' = W + (alpha / r) B A``, and the layer costs what it cost before.

* :class:`LoRALinear`: the adapted layer (the same arithmetic and initialisation as ``peft``);
* :func:`add_lora`: replace the named linear layers of a model and freeze everything else;
* :func:`merge_lora`: fold every adapter into its weight, giving back plain ``nn.Linear`` layers;
* :func:`lora_parameter_count`: ``r (in + out)`` trainable numbers per adapted matrix.

The ``peft`` library does the same with more options (dropout, several adapters, other layer
types); ``tests/test_lora.py`` checks that both give the same outputs and gradients.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from tlcourse.checks import check_int

__all__ = ["LoRALinear", "add_lora", "merge_lora", "lora_parameter_count"]


def _check_rank_and_alpha(rank: int, alpha: float) -> None:
    check_int("rank", rank)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")


def lora_parameter_count(in_features: int, out_features: int, rank: int) -> int:
    """Trainable numbers of one LoRA adapter: ``A`` holds ``rank * in``, ``B`` holds ``out * rank``.

    Args:
        in_features: columns of the adapted weight.
        out_features: rows of the adapted weight.
        rank: the adapter's rank ``r``.

    Returns:
        ``rank * (in_features + out_features)``, against ``in_features * out_features`` for the
        full matrix.

    Raises:
        ValueError: a non-positive size or rank.

    Example:
        >>> lora_parameter_count(384, 384, rank=8)  # against 147,456 for the full matrix
        6144
    """
    check_int("in_features", in_features)
    check_int("out_features", out_features)
    check_int("rank", rank)
    return rank * (in_features + out_features)


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus the trainable low-rank update ``(alpha / r) B A``.

    ``A`` is initialised like an ``nn.Linear`` weight (Kaiming-uniform), ``B`` with zeros, as in
    the LoRA paper and ``peft``: the product ``B A`` is zero at the start, so training starts from
    the pretrained function, and ``B`` still gets a gradient because ``A x`` is not zero. Scaling
    by ``alpha / r`` keeps the size of the update comparable when ``r`` changes, so a learning rate
    found for one rank roughly carries over to another.

    Args:
        base: the pretrained layer; its parameters are frozen (``requires_grad=False``).
        rank: ``r``, the rank of the update (``>= 1``).
        alpha: the scale numerator (``peft``'s ``lora_alpha``); the update is multiplied by
            ``alpha / rank``.
        dropout: dropout on the adapter's input only (the frozen path sees ``x`` unchanged).

    Raises:
        TypeError: ``base`` is not an ``nn.Linear``.
        ValueError: ``rank`` or ``alpha`` not positive, or ``dropout`` outside ``[0, 1)``.

    Example:
        >>> layer = LoRALinear(nn.Linear(4, 3), rank=2, alpha=4)
        >>> x = torch.randn(5, 4)
        >>> torch.equal(layer(x), layer.base(x))  # B = 0: the pretrained function at step 0
        True
        >>> [name for name, p in layer.named_parameters() if p.requires_grad]
        ['lora_A', 'lora_B']
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        _check_rank_and_alpha(rank, alpha)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.base = base
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        self.rank = rank
        self.alpha = float(alpha)
        self.scaling = self.alpha / rank
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, dtype=weight.dtype, device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, dtype=weight.dtype, device=weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own initialisation
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / r) B A`` as a full ``(out, in)`` matrix.

        Returns:
            A tensor shaped like ``base.weight``.
        """
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``W x + b + (alpha / r) B (A x)``, computed without forming ``B A``.

        Args:
            inputs: ``(..., in_features)``.

        Returns:
            ``(..., out_features)``.
        """
        # (..., in) -> (..., r) -> (..., out): r (in + out) multiply-adds per input, not in * out
        update = self.dropout(inputs) @ self.lora_A.T @ self.lora_B.T
        return self.base(inputs) + self.scaling * update

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with weight ``W + (alpha / r) B A``: the same function, no extra cost.

        Returns:
            A new layer (the base layer is left unchanged); its parameters do not require grad.
        """
        layer = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                          device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                layer.bias.copy_(self.base.bias)
        layer.requires_grad_(False)
        return layer

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}"


def _matches(name: str, targets: Sequence[str]) -> bool:
    # peft's rule for a list of names: the module's full name is the target or ends in ".target"
    return any(name == target or name.endswith("." + target) for target in targets)


def add_lora(model: nn.Module, target_modules: Sequence[str], rank: int, alpha: float, dropout: float = 0.0,
             trainable: Sequence[str] = ()) -> list[str]:
    """Replace the named linear layers by :class:`LoRALinear` and freeze every other parameter.

    Args:
        model: changed in place.
        target_modules: last components of the layers to adapt, e.g. ``["query", "value"]`` for
            BERT's attention projections (LoRA's paper adapts those two).
        rank: ``r`` of every adapter.
        alpha: the scale numerator of every adapter.
        dropout: adapter input dropout.
        trainable: name prefixes of modules that stay fully trainable (the new head, e.g.
            ``["classifier"]``), like ``peft``'s ``modules_to_save``.

    Returns:
        The full names of the adapted layers, in model order.

    Raises:
        ValueError: empty ``target_modules``, no layer matches, or a match is not an ``nn.Linear``.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> add_lora(net, ["0"], rank=2, alpha=2, trainable=["2"])
        ['0']
        >>> sorted(name for name, p in net.named_parameters() if p.requires_grad)
        ['0.lora_A', '0.lora_B', '2.bias', '2.weight']
    """
    targets = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    if not targets:
        raise ValueError("target_modules is empty: name at least one linear layer to adapt, e.g. ['query', 'value']")
    _check_rank_and_alpha(rank, alpha)
    found = [(name, module) for name, module in model.named_modules() if name and _matches(name, targets)]
    if not found:
        raise ValueError(f"no module of the model matches target_modules={targets}")
    wrong = [(name, type(module).__name__) for name, module in found if not isinstance(module, nn.Linear)]
    if wrong:
        raise ValueError(f"LoRALinear adapts nn.Linear layers only; {wrong[0][0]!r} is a {wrong[0][1]}")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for name, module in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(module, rank, alpha, dropout))
    for name, parameter in model.named_parameters():
        if any(name == prefix or name.startswith(prefix + ".") for prefix in trainable):
            parameter.requires_grad_(True)
    return [name for name, _ in found]


def merge_lora(model: nn.Module) -> int:
    """Fold every :class:`LoRALinear` of ``model`` into a plain ``nn.Linear`` (in place).

    After merging, the model computes the same function with the original architecture: no
    extra matrix products at inference, and the adapters are gone (keep a copy of them, or of the
    base weights, to undo it).

    Args:
        model: a model with LoRA layers (see :func:`add_lora`).

    Returns:
        How many layers were merged.

    Raises:
        ValueError: the model has no :class:`LoRALinear` layer.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 2)); _ = add_lora(net, ["0"], rank=1, alpha=1)
        >>> merge_lora(net), type(net[0]).__name__
        (1, 'Linear')
    """
    adapted = [name for name, module in model.named_modules() if isinstance(module, LoRALinear)]
    if not adapted:
        raise ValueError("the model has no LoRALinear layer to merge")
    for name in adapted:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, getattr(parent, child).merged())
    return len(adapted)
