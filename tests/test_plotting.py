import matplotlib.pyplot as plt
import pytest
import torch

from tlcourse.plotting import (
    plot_confusion_matrix,
    plot_image_grid,
    plot_transfer_story,
    plot_transfer_vocabulary,
)


def test_confusion_matrix_rows_are_normalised():
    figure = plot_confusion_matrix(torch.tensor([[3, 1], [0, 2]]), ["a", "b"])
    data = figure.axes[0].images[0].get_array()
    assert data[0].tolist() == [0.75, 0.25] and figure.axes[0].get_ylabel() == "true class"
    with pytest.raises(ValueError, match=r"expected a \(3, 3\) matrix"):
        plot_confusion_matrix(torch.eye(2), ["a", "b", "c"])
    plt.close("all")


def test_image_grid_undoes_normalisation():
    image = torch.zeros(1, 3, 2, 2)  # normalised zeros are the mean colour
    figure = plot_image_grid(image, titles=["x"], mean=(0.5, 0.25, 0.0), std=(1, 1, 1))
    shown = figure.axes[0].images[0].get_array()
    assert shown[0, 0].tolist() == [0.5, 0.25, 0.0]
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 1 or 3, H, W\)"):
        plot_image_grid(torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="got 2 titles for 1 images"):
        plot_image_grid(image, titles=["a", "b"])
    plt.close("all")


def test_transfer_vocabulary_names_every_concept_on_the_given_axes():
    figure, ax = plt.subplots()
    assert plot_transfer_vocabulary(ax=ax) is figure
    drawn = " ".join(text.get_text() for text in ax.texts).lower()
    for term in ("source", "target", "shared", "task-specific", "pretrain", "fine-tune", "negative transfer"):
        assert term in drawn, term
    plt.close("all")


def test_transfer_story_names_each_stage_and_the_chapters_that_teach_it():
    figure, ax = plt.subplots()
    assert plot_transfer_story(ax=ax) is figure
    drawn = " ".join(text.get_text() for text in ax.texts)
    for term in ("1  pretrain", "2  fine-tune", "3  fuse", "copy weights", "new head", "WiSE-FT", "soups"):
        assert term in drawn, term
    import re
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    from toc_notebooks import read_course_chapters

    chapters = read_course_chapters()
    named = set(re.findall(r"[a-z0-9]+", drawn)) & {"concepts", "math", "vgg16", "bert", "peft", "fusion"}
    assert named and named <= set(chapters), named - set(chapters)  # no chapter named that the book lacks
    plt.close("all")


def test_transfer_story_is_legible_at_its_own_size():
    # Each label lies inside the one box under its centre or clear of every box, and no two labels
    # overlap: measured in pixels after drawing, so a longer label or a moved box fails here.
    from matplotlib.patches import Rectangle

    figure = plot_transfer_story()
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    ax = figure.axes[0]
    boxes = [patch.get_window_extent(renderer) for patch in ax.patches if isinstance(patch, Rectangle)]
    labels = [text.get_window_extent(renderer) for text in ax.texts]
    assert len(boxes) >= 10 and len(labels) > len(boxes)
    canvas = figure.bbox
    for label in labels:
        assert canvas.x0 <= label.x0 and label.x1 <= canvas.x1, "label outside the figure"
        around = [box for box in boxes if box.contains((label.x0 + label.x1) / 2, (label.y0 + label.y1) / 2)]
        if around:
            (box,) = around
            assert box.x0 < label.x0 and label.x1 < box.x1 and box.y0 < label.y0 and label.y1 < box.y1
        else:
            assert not any(box.overlaps(label) for box in boxes)
    for index, label in enumerate(labels):
        assert not any(label.overlaps(other) for other in labels[index + 1:])
    plt.close("all")


@pytest.mark.parametrize("call, error, message", [
    (lambda: plot_confusion_matrix(None, ["a"]), TypeError, r"matrix must be a \(K, K\) tensor and class_names a list of K names, got NoneType"),
    (lambda: plot_confusion_matrix(torch.eye(2), "ab"), TypeError, "class_names a list of K names, got Tensor and str"),
    (lambda: plot_image_grid([[0.0]]), TypeError, r"images must be a \(N, C, H, W\) tensor, got list"),
])
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_plot_mean_and_spread_matches_torch_mean_and_std():
    from tlcourse.plotting import plot_mean_and_spread

    rows = [{"budget": b, "strategy": s, "seed": seed, "accuracy": a}
            for s, values in (("scratch", {2: (0.5, 0.7, 0.6), 50: (0.9, 0.8, 0.85)}), ("probe", {2: (0.7, 0.8, 0.9)}))
            for b, accuracies in values.items() for seed, a in enumerate(accuracies)]
    figure = plot_mean_and_spread(rows, "budget", "strategy", log_x=True)
    axes = figure.axes[0]
    lines = axes.get_lines()
    assert [line.get_label() for line in lines] == ["scratch", "probe"]
    assert list(lines[0].get_xdata()) == [2, 50]
    expected = [torch.tensor(v, dtype=torch.float64).mean().item() for v in ((0.5, 0.7, 0.6), (0.9, 0.8, 0.85))]
    assert list(lines[0].get_ydata()) == pytest.approx(expected)
    band = axes.collections[0].get_paths()[0].vertices[:, 1]  # the fill spans mean -+ sample std
    std = torch.tensor((0.5, 0.7, 0.6), dtype=torch.float64).std().item()
    assert min(band) == pytest.approx(expected[0] - std) and max(band) == pytest.approx(expected[1] + 0.05)
    assert axes.get_xscale() == "log" and axes.get_ylabel() == "accuracy"
    plt.close(figure)
    with pytest.raises(ValueError, match="rows is empty"):
        plot_mean_and_spread([], "budget", "strategy")
    with pytest.raises(ValueError, match=r"missing \['seed_count'\]"):
        plot_mean_and_spread(rows, "budget", "strategy", value="seed_count")
