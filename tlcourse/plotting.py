"""Plot helpers. Each takes ``ax=None`` (a new figure when omitted), labels its axes, never changes
global rcParams, and returns the figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tlcourse.checks import check_sequence, describe



def new_axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure of ``size`` inches with one axes when ``ax`` is None."""
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be matplotlib Axes or None, got {describe(ax)}")
    if ax is None:
        figure, ax = plt.subplots(figsize=size)
        return figure, ax
    return ax.figure, ax


def plot_confusion_matrix(matrix: torch.Tensor, class_names: Sequence[str], ax: Axes | None = None,
                          normalize: bool = True) -> Figure:
    """Heat map of a confusion matrix, true class on rows, predicted class on columns."""
    if matrix is None or isinstance(class_names, str) or not hasattr(class_names, "__len__"):
        raise TypeError(f"matrix must be a (K, K) tensor and class_names a list of K names, got "
                        f"{type(matrix).__name__} and {type(class_names).__name__}")
    matrix = torch.as_tensor(matrix).double()
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(class_names):
        raise ValueError(f"expected a ({len(class_names)}, {len(class_names)}) matrix for {len(class_names)} "
                         f"class names, got {tuple(matrix.shape)}")
    if normalize:
        matrix = matrix / matrix.sum(dim=1, keepdim=True).clamp(min=1)
    size = max(3.5, 0.45 * len(class_names) + 1.5)
    figure, ax = new_axes(ax, (size, size))
    image = ax.imshow(matrix.numpy(), cmap="Blues", vmin=0)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    return figure


def plot_image_grid(images: torch.Tensor, titles: Sequence[str] | None = None, num_columns: int = 8,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> Figure:
    """A grid of images, undoing normalisation so they look as a person would see them."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a (N, C, H, W) tensor, got {type(images).__name__}")
    images = images.detach().float().cpu()
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


def _diagram(ax: Axes, width: float) -> tuple[Callable[..., None], Callable[..., None]]:
    # A blank drawing area of width x 6 units and its two shapes: a labelled box (x, y, w, h, text, colour)
    # and an arrow (x0, y0, x1, y1, optional label written just above the arrow's higher end).
    from matplotlib.patches import FancyArrowPatch, Rectangle

    ax.set_xlim(0, width)
    ax.set_ylim(0, 6)
    ax.axis("off")

    def box(x: float, y: float, w: float, h: float, text: str, color: str) -> None:
        ax.add_patch(Rectangle((x, y), w, h, facecolor=color, edgecolor="black"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8)

    def arrow(x0: float, y0: float, x1: float, y1: float, text: str = "") -> None:
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="->", mutation_scale=12))
        if text:
            ax.text((x0 + x1) / 2, max(y0, y1) + 0.12, text, ha="center", va="bottom", fontsize=8)

    return box, arrow


def plot_transfer_vocabulary(ax: Axes | None = None) -> Figure:
    """Draw the vocabulary: source/target domain and task, shared vs task-specific layers, stages."""
    figure, ax = new_axes(ax, (10, 5))
    box, arrow = _diagram(ax, width=10)

    # Source row (top) and target row (bottom): domain -> shared layers -> task head.
    for y, role, domain, task in ((4.0, "source", "D_S = (X_S, P(X_S))\ndigits 0-4", "T_S = (Y_S, f_S)\nhead: 5 classes"),
                                  (1.0, "target", "D_T = (X_T, P(X_T))\ndigits 5-9", "T_T = (Y_T, f_T)\nnew head")):
        box(0.2, y, 2.0, 1.2, f"{role} domain\n{domain}", "#dbe9f6")
        box(3.0, y, 1.2, 1.2, "early\nlayers\n(general)", "#c7e9c0")
        box(4.4, y, 1.2, 1.2, "late\nlayers\n(specific)", "#fdd0a2")
        box(6.4, y, 2.6, 1.2, f"{role} task\n{task}", "#fcbba1")
        arrow(2.2, y + 0.6, 3.0, y + 0.6)
        arrow(5.6, y + 0.6, 6.4, y + 0.6)
    arrow(3.6, 4.0, 3.6, 2.2)
    ax.text(3.6, 3.25, "transfer", ha="center", fontsize=8)  # beside the arrow's middle, between the rows
    arrow(5.0, 4.0, 5.0, 2.2)
    ax.text(4.3, 3.1, "shared (transferred)\nlayers", ha="center", fontsize=8)
    ax.text(7.7, 3.1, "task-specific\nlayer: replaced", ha="center", fontsize=8)
    ax.text(5.0, 5.6, "1 pretrain on source  ->  2 fine-tune (or freeze = feature extraction) on target  "
            "->  3 fuse (combine models/features)", ha="center", fontsize=8)
    ax.text(5.0, 0.4, "negative transfer: target accuracy with transfer < accuracy from scratch",
            ha="center", fontsize=8, style="italic")
    ax.set_title("Vocabulary of transfer learning (Pan & Yang 2010; Yosinski et al. 2014)")
    return figure


def plot_transfer_story(ax: Axes | None = None) -> Figure:
    """Draw the book's story in three panels: pretrain on a source, fine-tune copies, fuse the results."""
    figure, ax = new_axes(ax, (11, 4.6))
    box, arrow = _diagram(ax, width=12)

    data, shared, head, fused = "#dbe9f6", "#c7e9c0", "#fcbba1", "#fdd0a2"
    # Panel 1: a large source data set trains the shared layers and a source head.
    box(0.2, 4.2, 3.4, 1.0, "large source data\n(ImageNet images, English text)", data)
    box(0.6, 2.2, 2.6, 1.0, "shared layers\n(general features)", shared)
    box(0.6, 1.4, 2.6, 0.6, "source head", head)
    arrow(1.9, 4.2, 1.9, 3.2)
    # Panel 2: the shared layers are copied, the head replaced, and both trained on little target data.
    box(4.3, 4.2, 3.4, 1.0, "small target data\n(CIFAR-10, SST-2, digits, reviews)", data)
    box(4.7, 2.2, 2.6, 1.0, "shared layers (copied)\nfrozen, tuned or LoRA", shared)
    box(4.7, 1.4, 2.6, 0.6, "new head", head)
    arrow(6.0, 4.2, 6.0, 3.2)
    arrow(3.2, 2.7, 4.7, 2.7, "copy weights")
    # Panel 3: several fine-tuned models become one, by averaging outputs or weights.
    for column, name in enumerate(("model A", "model B", "model C")):
        box(8.3 + 1.15 * column, 4.2, 1.0, 1.0, name, shared)
        arrow(8.8 + 1.15 * column, 4.2, 8.8 + 1.15 * column, 3.2)
    box(8.3, 2.2, 3.3, 1.0, "average predictions (ensemble)\nor weights (WiSE-FT, soups)", fused)
    box(8.3, 1.4, 3.3, 0.6, "one fused model", head)
    arrow(7.3, 2.7, 8.3, 4.4)
    ax.text(7.75, 3.75, "several\nruns", ha="right", va="center", fontsize=8)
    for x, title, chapters in ((1.9, "1  pretrain", "concepts pretrains on digits;\nvgg16 and bert load ImageNet or text\npretrained weights (stand-ins on CPU)"),
                               (6.0, "2  fine-tune", "concepts, vgg16, bert, peft"),
                               (9.95, "3  fuse", "fusion")):
        ax.text(x, 5.55, title, ha="center", fontsize=10, weight="bold")
        ax.text(x, 0.75, chapters, ha="center", va="center", fontsize=8, style="italic")
    ax.text(6.0, 0.1, "math: the losses, gradients and updates behind every stage, checked against PyTorch",
            ha="center", fontsize=8)
    return figure


def plot_mean_and_spread(rows: Sequence[Mapping[str, object]], x: str, group: str, value: str = "accuracy",
                         ax: Axes | None = None, log_x: bool = False) -> Figure:
    """One line per ``group``: the mean of ``value`` over repeated runs at each ``x``, with a +-1 std band."""
    rows = check_sequence("rows", rows)
    if any(not isinstance(row, Mapping) for row in rows):
        raise TypeError(f"rows must be dicts, got {describe(rows[0])}")
    missing = [key for key in (x, group, value) if any(key not in row for row in rows)]
    if missing:
        raise ValueError(f"every row needs the keys {[x, group, value]}; missing {missing}")
    figure, ax = new_axes(ax, (6, 4))
    for name in dict.fromkeys(row[group] for row in rows):  # first-seen order
        values: dict[object, list[float]] = {}
        for row in rows:
            if row[group] == name:
                values.setdefault(row[x], []).append(float(row[value]))  # type: ignore[arg-type]
        xs = sorted(values)  # type: ignore[type-var]
        stacked = [torch.tensor(values[point], dtype=torch.float64) for point in xs]
        mean = torch.stack([v.mean() for v in stacked])
        spread = torch.stack([v.std() if len(v) > 1 else torch.tensor(0.0, dtype=torch.float64) for v in stacked])
        ax.plot(xs, mean, marker="o", label=str(name))
        ax.fill_between(xs, mean - spread, mean + spread, alpha=0.2)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(value)
    ax.legend()
    return figure
