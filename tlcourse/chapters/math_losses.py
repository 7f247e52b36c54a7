"""The math chapter's losses, each the formula of one equation of ``book/math.md`` in a numerically stable
form (tested against :mod:`torch.nn.functional` and autograd), and the sizes of its L2-SP run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from tlcourse.checks import check_module, check_number, check_tensor, describe

__all__ = ["log_softmax", "softmax_cross_entropy", "binary_cross_entropy_with_logits",
           "softmax_cross_entropy_gradient", "l2_sp_penalty", "PenalisedLoss", "MathSettings", "SETTINGS"]


def _check_logits_and_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise ValueError unless ``logits`` is ``(N, K)`` float and ``labels`` is ``(N,)`` in ``[0, K)``."""
    check_tensor("logits", logits)
    check_tensor("labels", labels)
    if logits.dim() != 2 or logits.shape[1] == 0:
        raise ValueError(f"logits must have shape (batch, classes >= 1), got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},) to match logits "
                         f"{tuple(logits.shape)}, got {tuple(labels.shape)}")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"labels must be integer class indices, got {labels.dtype}")
    num_classes = logits.shape[1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels out of range: expected values in [0, {num_classes - 1}], "
                         f"got min {int(labels.min())} and max {int(labels.max())}")


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the last dimension via log-sum-exp: ``z - m - log(sum(exp(z - m)))``.

    Subtracting the row maximum ``m`` leaves the result unchanged and keeps every ``exp`` in
    ``(0, 1]``, so logits of +-1000 stay finite.
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating point torch.Tensor, got {describe(logits)}")
    if logits.numel() == 0:
        return logits.clone()  # an empty batch (or zero classes): nothing to normalise, like torch
    shift = logits.max(dim=-1, keepdim=True).values.detach()  # (..., 1), a constant for autograd
    shifted = logits - shift
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


def softmax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                          label_smoothing: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """Softmax cross-entropy ``-sum_k q_k log softmax(z)_k`` with smoothed targets ``q``.

    With smoothing ``eps``, ``q = (1 - eps) onehot(y) + eps / K`` (the convention of
    ``torch.nn.functional.cross_entropy``).
    """
    _check_logits_and_labels(logits, labels)
    check_number("label_smoothing", label_smoothing, 0.0, 1.0)
    log_probs = log_softmax(logits)  # (N, K)
    nll = -log_probs.gather(1, labels.long().unsqueeze(1)).squeeze(1)  # (N,)
    if label_smoothing == 0.0:  # no uniform term: 0 * inf would make NaN at a -inf logit
        return _reduce(nll, reduction)
    uniform = -log_probs.mean(dim=1)  # (N,): cross-entropy against the uniform distribution
    losses = (1.0 - label_smoothing) * nll + label_smoothing * uniform
    return _reduce(losses, reduction)


def _reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``"mean"`` (NaN for no examples, as in torch), ``"sum"`` or ``"none"``."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return losses.mean() if reduction == "mean" else losses.sum() if reduction == "sum" else losses


def binary_cross_entropy_with_logits(logits: torch.Tensor, targets: torch.Tensor,
                                     reduction: str = "mean") -> torch.Tensor:
    """Binary cross-entropy of a sigmoid output, ``(1 - t) s + log(1 + exp(-s))``.

    This is ``-t log sigmoid(s) - (1 - t) log(1 - sigmoid(s))``. The last term is the log-sum-exp
    of ``(0, -s)``, computed like :func:`log_softmax` with the shift ``m = max(0, -s)`` held
    constant: no ``exp`` overflows, and the gradient is ``sigmoid(s) - t`` everywhere, at ``s = 0``
    too (the form ``max(s, 0) + log(1 + exp(-|s|))`` has kinks there, where autograd picks ``-t``).
    """
    check_tensor("logits", logits)
    check_tensor("targets", targets)
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must have the same shape")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    targets = targets.to(logits.dtype)
    outside = (targets < 0) | (targets > 1) | targets.isnan()
    if bool(outside.any()):
        raise ValueError(f"targets must lie in [0, 1], got {float(targets[outside][0])}")
    shift = (-logits).clamp(min=0).detach()  # m = max(0, -s), a constant for autograd
    losses = (1.0 - targets) * logits + shift + torch.log(torch.exp(-shift) + torch.exp(-logits - shift))
    return _reduce(losses, reduction)


def softmax_cross_entropy_gradient(logits: torch.Tensor, labels: torch.Tensor,
                                   label_smoothing: float = 0.0) -> torch.Tensor:
    """Closed-form gradient of the mean softmax cross-entropy: ``(softmax(z) - q) / N``."""
    _check_logits_and_labels(logits, labels)
    check_number("label_smoothing", label_smoothing, 0.0, 1.0)
    num_examples, num_classes = logits.shape
    one_hot = torch.nn.functional.one_hot(labels.long(), num_classes).to(logits.dtype)  # (N, K)
    target = (1.0 - label_smoothing) * one_hot + label_smoothing / num_classes
    return (log_softmax(logits).exp() - target) / num_examples


def l2_sp_penalty(parameters: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor],
                  strength: float) -> torch.Tensor:
    """L2-SP penalty ``strength / 2 * sum ||w - w0||^2`` over the names in ``reference``.

    Li, Grandvalet and Davoine (2018) pull the fine-tuned backbone toward its pretrained weights
    ``w0`` instead of toward zero (the plain L2 penalty is the special case ``w0 = 0``).
    """
    check_number("strength", strength, low=0.0)
    if not isinstance(parameters, Mapping) or not isinstance(reference, Mapping):
        raise TypeError(f"parameters and reference must be mappings of names to tensors, got "
                        f"{describe(parameters)} and {describe(reference)}")
    if not reference:
        raise ValueError("reference is empty: pass at least one pretrained tensor")
    total: torch.Tensor | None = None
    for name, anchor in reference.items():
        if name not in parameters:
            raise ValueError(f"parameter {name!r} from reference is missing in parameters")
        current = parameters[name]
        check_tensor(f"parameters[{name!r}]", current)
        check_tensor(f"reference[{name!r}]", anchor)
        if current.shape != anchor.shape:
            raise ValueError(f"shape mismatch for {name!r}: {tuple(current.shape)} vs {tuple(anchor.shape)}")
        term = (current - anchor.detach().to(current.device, current.dtype)).pow(2).sum()
        total = term if total is None else total + term
    assert total is not None
    return 0.5 * strength * total


class PenalisedLoss:
    """``loss_fn(logits, targets)`` for :func:`tlcourse.train.fit`: cross-entropy plus L2-SP.

    The penalty pulls each named parameter of ``model`` toward a frozen copy of its value at
    construction time (L2-SP), or toward zero with ``toward_zero=True`` (the plain L2 penalty, a
    loss term, so that both variants differ only in the anchor).
    """

    def __init__(self, model: nn.Module, names: list[str], strength: float,
                 toward_zero: bool = False, label_smoothing: float = 0.0) -> None:
        check_module("model", model)
        if isinstance(names, str) or not names:
            raise TypeError(f"names must be a non-empty list of parameter names, got {names!r:.60}")
        parameters = dict(model.named_parameters())
        unknown = [name for name in names if name not in parameters]
        if unknown:
            raise ValueError(f"unknown parameter names: {unknown[:3]}; the model has {list(parameters)[:5]}")
        check_number("strength", strength, low=0.0)
        check_number("label_smoothing", label_smoothing, 0.0, 1.0)
        self.model = model
        self.strength = strength
        self.label_smoothing = label_smoothing
        # Detached copies: the anchor w0 is a constant, never trained.
        self.reference = {name: (torch.zeros_like(parameters[name]) if toward_zero
                                 else parameters[name].detach().clone()) for name in names}

    def penalty(self) -> torch.Tensor:
        """The current penalty ``alpha / 2 * sum ||w - w0||^2`` (a scalar tensor)."""
        return l2_sp_penalty(dict(self.model.named_parameters()), self.reference, self.strength)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of ``logits`` against ``targets`` plus :meth:`penalty`."""
        return softmax_cross_entropy(logits, targets, self.label_smoothing) + self.penalty()


@dataclass(frozen=True)
class MathSettings:
    """Sizes of the math chapter's L2-SP versus plain-L2 run (``alpha``: both penalties; SGD with momentum 0.9)."""

    batch_size: int
    num_train: int
    num_eval: int
    num_seeds: int
    num_epochs: int
    max_steps_per_epoch: int | None
    image_size: int
    alpha: float = 0.1
    learning_rate: float = 0.01


# alpha: eta * alpha * T / (1 - momentum) of order 1 over the cpu run's T = 64 steps (see the chapter)
SETTINGS: dict[str, MathSettings] = {
    "smoke": MathSettings(batch_size=8, num_train=64, num_eval=32, num_seeds=2, num_epochs=1,
                          max_steps_per_epoch=2, image_size=32),
    "cpu": MathSettings(batch_size=32, num_train=1000, num_eval=500, num_seeds=3, num_epochs=2,
                        max_steps_per_epoch=None, image_size=32),
    "gpu": MathSettings(batch_size=128, num_train=1000, num_eval=500, num_seeds=3, num_epochs=3,
                        max_steps_per_epoch=None, image_size=224),
}
