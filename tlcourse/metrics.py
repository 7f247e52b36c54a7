"""Classification metrics on tensors: accuracy, F1, confusion matrix, per-class accuracy, spread."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from sklearn import metrics as sklearn_metrics

from tlcourse.checks import check_int


def _labels(predictions: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if predictions is None or targets is None:
        raise TypeError(f"predictions and targets must be tensors, got {type(predictions).__name__} "
                        f"and {type(targets).__name__}")
    predictions = torch.as_tensor(predictions)
    targets = torch.as_tensor(targets)
    # Float labels would be truncated silently by .long() (0.9 -> 0): refuse them.
    if targets.is_floating_point() or targets.is_complex():
        raise TypeError(f"targets must be integer class labels, got dtype {targets.dtype}")
    if predictions.is_floating_point() and bool(predictions.isnan().any()):  # argmax would pick a NaN's class
        raise ValueError(f"predictions hold {int(predictions.isnan().sum())} NaN logit(s): expected finite logits")
    if predictions.dim() == 2:
        predictions = predictions.argmax(dim=1)  # logits (N, K) -> labels (N,)
    elif predictions.is_floating_point():
        raise TypeError(f"predictions must be logits (N, K) or integer labels (N,), got a "
                        f"{predictions.dtype} tensor of shape {tuple(predictions.shape)}")
    if predictions.dim() != 1 or targets.dim() != 1 or predictions.shape != targets.shape:
        raise ValueError(f"expected predictions (N,) or logits (N, K) and targets (N,) with the same N; "
                         f"got {tuple(predictions.shape)} and {tuple(targets.shape)}")
    if predictions.numel() == 0:
        raise ValueError("no examples: predictions is empty, expected at least one prediction")
    return predictions.long(), targets.long()


def accuracy(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of correct predictions."""
    predictions, targets = _labels(predictions, targets)
    return float((predictions == targets).double().mean())


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``C[i, j]`` of examples of true class ``i`` predicted as ``j``: scikit-learn's, as an int64 tensor."""
    check_int("num_classes", num_classes)
    predictions, targets = _labels(predictions, targets)
    for name, values in (("predictions", predictions), ("targets", targets)):
        if int(values.min()) < 0 or int(values.max()) >= num_classes:
            raise ValueError(f"{name} must be in [0, {num_classes - 1}], got {int(values.min())}..{int(values.max())}")
    return torch.from_numpy(sklearn_metrics.confusion_matrix(targets, predictions, labels=range(num_classes))).long()


def per_class_accuracy(matrix: torch.Tensor) -> torch.Tensor:
    """Recall of each class from a confusion matrix (NaN for a class with no examples)."""
    if not isinstance(matrix, torch.Tensor):
        raise TypeError(f"matrix must be a (K, K) tensor of counts, got {type(matrix).__name__}")
    matrix = matrix.double()
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"expected a square (K, K) matrix, got {tuple(matrix.shape)}")
    totals = matrix.sum(dim=1)
    return torch.where(totals > 0, matrix.diagonal() / totals.clamp(min=1), torch.full_like(totals, math.nan))


def f1_score(predictions: torch.Tensor, targets: torch.Tensor, average: str = "binary",
             positive: int = 1) -> float:
    """scikit-learn's F1: of class ``positive`` (``"binary"``, any number of classes) or the ``"macro"`` mean."""
    predictions, targets = _labels(predictions, targets)
    if average not in ("binary", "macro"):
        raise ValueError(f"average must be 'binary' or 'macro', got {average!r}")
    labels = [positive] if average == "binary" else None  # one label's F1, 0 when it is neither predicted nor present
    return float(sklearn_metrics.f1_score(targets, predictions, labels=labels, average="macro", zero_division=0))


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"values must be a list of numbers, got {type(values).__name__}")
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values is empty: expected at least one number")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"values must be finite numbers, got {values}")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def most_confident_mistakes(logits: torch.Tensor, targets: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the wrong predictions made with the highest softmax confidence."""
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError(f"logits and targets must be tensors, got {type(logits).__name__} and {type(targets).__name__}")
    if logits.dim() != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(f"expected logits (N, K) and targets (N,), got {tuple(logits.shape)} and {tuple(targets.shape)}")
    check_int("count", count)
    confidence, predicted = logits.float().softmax(dim=1).max(dim=1)
    wrong = torch.nonzero(predicted != targets).flatten()
    order = confidence[wrong].argsort(descending=True)
    return wrong[order][:count]


def accuracy_standard_error(accuracy: float, count: int) -> float:
    """Binomial standard error of an accuracy measured on ``count`` independent examples."""
    if isinstance(accuracy, bool) or not isinstance(accuracy, numbers.Real) or not 0 <= accuracy <= 1:
        raise ValueError(f"accuracy must be in [0, 1], got {accuracy!r}")
    check_int("count", count)
    return math.sqrt(accuracy * (1 - accuracy) / count)


@dataclass(frozen=True)
class PairedDifference:
    """Mean of paired differences ``first - second`` with a two-sided t interval."""

    mean: float
    low: float
    high: float
    count: int
    confidence: float

    def __str__(self) -> str:
        return (f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}] "
                f"({self.confidence:.0%} interval, {self.count} pairs)")


def paired_difference(first: Sequence[float], second: Sequence[float],
                      confidence: float = 0.95) -> PairedDifference:
    """Paired differences ``first[i] - second[i]`` (same seed, same data) with a t interval."""
    from scipy import (
        stats,  # scikit-learn depends on scipy; imported here to keep import light
    )

    for name, values in (("first", first), ("second", second)):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"{name} must be a list of one measurement per seed, got {type(values).__name__}")
    first = [float(v) for v in first]
    second = [float(v) for v in second]
    if not first or len(first) != len(second):
        raise ValueError(f"first and second must be non-empty and of equal length, got "
                         f"{len(first)} and {len(second)}")
    if any(math.isnan(v) for v in first + second):
        raise ValueError(f"first and second must not contain NaN, got {first} and {second}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    differences = [a - b for a, b in zip(first, second)]
    mean, std = mean_and_std(differences)
    if len(differences) == 1:
        return PairedDifference(mean, -math.inf, math.inf, 1, confidence)
    half_width = float(stats.t.ppf(0.5 + confidence / 2, len(differences) - 1)) * std / math.sqrt(len(differences))
    return PairedDifference(mean, mean - half_width, mean + half_width, len(differences), confidence)


@torch.inference_mode()
def nearest_neighbour_accuracy(embeddings: torch.Tensor, groups: Sequence[int],
                               within: Sequence[int] | None = None) -> float:
    """Share of items whose nearest other item (cosine similarity) belongs to the same group."""
    if not isinstance(embeddings, torch.Tensor) or isinstance(groups, str) or not hasattr(groups, "__len__"):
        raise TypeError(f"embeddings must be a (N, dim) tensor and groups a list of N labels, got "
                        f"{type(embeddings).__name__} and {type(groups).__name__}")
    if embeddings.dim() != 2 or embeddings.shape[0] != len(groups):
        raise ValueError(f"expected embeddings of shape ({len(groups)}, dim), got {tuple(embeddings.shape)}")
    if len(groups) < 2:
        raise ValueError(f"need at least two items, got {len(groups)}")
    unit = torch.nn.functional.normalize(embeddings.float(), dim=1)
    similarity = unit @ unit.T  # (N, N) cosine similarities
    similarity.fill_diagonal_(-math.inf)  # leave one out: an item is not its own neighbour
    if within is not None:
        if len(within) != len(groups):
            raise ValueError(f"within must have one entry per item ({len(groups)}), got {len(within)}")
        values = torch.as_tensor(list(within))
        similarity[values[:, None] != values[None, :]] = -math.inf  # (N, N): other values excluded
        if torch.isinf(similarity.max(dim=1).values).any():
            raise ValueError("an item has no other item with its `within` value to be compared with")
    group_tensor = torch.as_tensor(list(groups))
    return float((group_tensor[similarity.argmax(dim=1)] == group_tensor).float().mean())
