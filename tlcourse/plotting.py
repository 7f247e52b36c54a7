"""Plot helpers. Each takes ``ax=None`` (a new figure when omitted), labels its axes, never changes
global rcParams, and returns the figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tlcourse.train import History

__all__ = ["plot_learning_curves", "plot_confusion_matrix", "plot_image_grid"]


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is None:
        figure, ax = plt.subplots(figsize=size)
        return figure, ax
    return ax.figure, ax


def plot_learning_curves(histories: History | Mapping[str, History], column: str = "val_accuracy",
                         ax: Axes | None = None) -> Figure:
    """One line per run of ``column`` against epoch.

    Args:
        histories: a :class:`History`, or ``{label: History}`` for several runs.
        column: e.g. ``"train_loss"``, ``"val_accuracy"``.
        ax: axes to draw on.

    Returns:
        The figure.

    Raises:
        KeyError: if a history lacks ``column``.

    Example:
        >>> fig = plot_learning_curves(History([{"epoch": 1, "val_accuracy": 0.5}]))
    """
    if isinstance(histories, History):
        histories = {column: histories}
    figure, ax = _axes(ax, (5, 3.5))
    for label, history in histories.items():
        ax.plot(history["epoch"], history[column], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(column.replace("_", " "))
    ax.legend()
    return figure


def plot_confusion_matrix(matrix: torch.Tensor, class_names: Sequence[str], ax: Axes | None = None,
                          normalize: bool = True) -> Figure:
    """Heat map of a confusion matrix, true class on rows, predicted class on columns.

    Args:
        matrix: ``(K, K)`` counts.
        class_names: ``K`` names.
        ax: axes to draw on.
        normalize: show each row as fractions of that class's examples.

    Returns:
        The figure.

    Raises:
        ValueError: if the names do not match the matrix size.

    Example:
        >>> fig = plot_confusion_matrix(torch.eye(2), ["a", "b"])
    """
    matrix = torch.as_tensor(matrix).double()
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(class_names):
        raise ValueError(f"expected a ({len(class_names)}, {len(class_names)}) matrix for {len(class_names)} "
                         f"class names, got {tuple(matrix.shape)}")
    if normalize:
        matrix = matrix / matrix.sum(dim=1, keepdim=True).clamp(min=1)
    size = max(3.5, 0.45 * len(class_names) + 1.5)
    figure, ax = _axes(ax, (size, size))
    image = ax.imshow(matrix.numpy(), cmap="Blues", vmin=0)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    return figure


def plot_image_grid(images: torch.Tensor, titles: Sequence[str] | None = None, num_columns: int = 8,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> Figure:
    """A grid of images, undoing normalisation so they look as a person would see them.

    Args:
        images: ``(N, C, H, W)`` with C = 1 or 3.
        titles: one short title per image.
        num_columns: images per row.
        mean: per-channel mean used in normalisation, to undo it.
        std: per-channel std used in normalisation, to undo it.

    Returns:
        The figure (a grid has many axes, so there is no ``ax`` argument).

    Raises:
        ValueError: on a wrong shape or a wrong number of titles.

    Example:
        >>> fig = plot_image_grid(torch.rand(4, 3, 8, 8), titles=list("abcd"), num_columns=2)
    """
    images = torch.as_tensor(images).detach().float().cpu()
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images")
    if len(images) == 0:
        raise ValueError("no images to plot: expected at least one")
    if mean is not None and std is not None:
        # (N, C, H, W) * (1, C, 1, 1) + (1, C, 1, 1): back to [0, 1] pixel values.
        images = images * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
    images = images.clamp(0, 1)
    num_columns = min(num_columns, len(images))
    num_rows = (len(images) + num_columns - 1) // num_columns
    figure, axes = plt.subplots(num_rows, num_columns, figsize=(1.6 * num_columns, 1.8 * num_rows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(images):
            picture = images[index].permute(1, 2, 0)  # (C, H, W) -> (H, W, C) for imshow
            ax.imshow(picture.squeeze(-1).numpy(), cmap="gray" if picture.shape[-1] == 1 else None)
            if titles is not None:
                ax.set_title(titles[index], fontsize=8)
    figure.tight_layout()
    return figure
