"""The fusion chapter's settings and data: WiSE-FT's setup (Wortsman et al., 2022) at laptop scale.

Broad pretraining digits (MNIST at random rotations and resolutions), a narrow target task
(scikit-learn's optical digits, few upright training examples) and its shift (the test digits
rotated). The models, their training, the soups and the permutations are written in the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from tlcourse.checks import check_int, check_tensor
from tlcourse.data import make_loader, split_indices

__all__ = ["FusionSettings", "SETTINGS", "MNIST_MEAN", "MNIST_STD", "rotate_digits", "make_broad_digits",
           "optical_digits_as_mnist", "TargetTask", "load_target_task"]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # MNIST's pixel mean and standard deviation: every input is standardised


@dataclass(frozen=True)
class FusionSettings:
    """Sizes of the fusion chapter's experiments for one profile.

    ``learning_rates`` holds one fine-tuning run per entry (the soup's ingredients); the
    ``barrier_*`` fields size the narrow MLPs of the loss-barrier experiment.
    """

    hidden_size: int
    max_pretrain_digits: int
    pretrain_copies: int
    pretrain_rotation_degrees: float
    pretrain_epochs: int
    pretrain_batch_size: int
    num_train_examples: int
    max_eval_examples: int
    shift_rotation_degrees: float
    learning_rates: tuple[float, ...]
    finetune_epochs: int
    num_seeds: int
    num_alphas: int
    batch_size: int
    max_steps_per_epoch: int | None
    barrier_hidden_size: int
    barrier_epochs: int
    num_barrier_models: int


SETTINGS: dict[str, FusionSettings] = {
    "smoke": FusionSettings(hidden_size=32, max_pretrain_digits=64, pretrain_copies=1, pretrain_rotation_degrees=60.0,
                            pretrain_epochs=1, pretrain_batch_size=16, num_train_examples=32, max_eval_examples=64,
                            shift_rotation_degrees=45.0, learning_rates=(1e-3, 3e-3, 1e-3), finetune_epochs=1,
                            num_seeds=2, num_alphas=5, batch_size=16, max_steps_per_epoch=3, barrier_hidden_size=8,
                            barrier_epochs=1, num_barrier_models=2),
    "cpu": FusionSettings(hidden_size=256, max_pretrain_digits=5000, pretrain_copies=4, pretrain_rotation_degrees=60.0,
                          pretrain_epochs=8, pretrain_batch_size=64, num_train_examples=100, max_eval_examples=1000,
                          shift_rotation_degrees=45.0, learning_rates=(1e-3, 2e-3, 3e-3, 1e-3, 2e-3, 3e-3),
                          finetune_epochs=10, num_seeds=10, num_alphas=11, batch_size=32, max_steps_per_epoch=None,
                          barrier_hidden_size=16, barrier_epochs=15, num_barrier_models=4),
}
# gpu: the same experiment with more seeds (narrower intervals) and a finer alpha grid
SETTINGS["gpu"] = replace(SETTINGS["cpu"], num_seeds=20, num_alphas=21, barrier_epochs=20, num_barrier_models=6)


def _check_digits(images: torch.Tensor) -> None:
    check_tensor("images", images)
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be a float tensor of shape (N, 1, H, W), got {tuple(images.shape)}")


def rotate_digits(images: torch.Tensor, degrees: torch.Tensor | float) -> torch.Tensor:
    """Rotate each ``(N, 1, H, W)`` image counter-clockwise about its centre, corners filled with 0.

    ``degrees`` is one angle for all images or a ``(N,)`` tensor of angles.
    """
    _check_digits(images)
    angles = torch.as_tensor(degrees, dtype=images.dtype).flatten()
    if angles.numel() not in (1, len(images)) or not bool(torch.isfinite(angles).all()):
        raise ValueError(f"degrees must be one finite angle or one per image ({len(images)}), got {angles.tolist()[:6]}")
    angles = angles.expand(len(images)) * (math.pi / 180)
    cos, sin, zero = angles.cos(), angles.sin(), torch.zeros_like(angles)
    # affine_grid maps output to input coordinates, y pointing down: counter-clockwise on screen
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False)


def make_broad_digits(images: torch.Tensor, copies: int, max_rotation_degrees: float,
                      generator: torch.Generator) -> torch.Tensor:
    """Broad pretraining data: ``copies`` randomly rotated copies of ``(N, 1, 28, 28)`` digits, half of each coarsened.

    Angles are uniform in ``[-max_rotation_degrees, max_rotation_degrees]``; the coarsened half is
    shrunk to 7-14 pixels and enlarged back. Copy ``k`` of image ``i`` is row ``k * N + i``.
    """
    _check_digits(images)
    check_int("copies", copies)
    augmented = []
    for _ in range(copies):
        angles = (torch.rand(len(images), generator=generator) * 2 - 1) * max_rotation_degrees
        copy_ = rotate_digits(images, angles)
        degraded = torch.randperm(len(images), generator=generator)[: len(images) // 2]
        for size, part in zip((7, 8, 10, 12, 14), torch.tensor_split(degraded, 5)):
            small = F.interpolate(copy_[part], size=(size, size), mode="area")
            copy_[part] = F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)
        augmented.append(copy_)
    return torch.cat(augmented)


def optical_digits_as_mnist(images: torch.Tensor) -> torch.Tensor:
    """scikit-learn's ``(N, 8, 8)`` digits framed like MNIST: enlarged to 20x20, centred in ``(N, 1, 28, 28)``."""
    if images.dim() != 3:
        raise ValueError(f"images must be of shape (N, H, W), got {tuple(images.shape)}")
    enlarged = F.interpolate(images.unsqueeze(1).float(), size=(20, 20), mode="bilinear", align_corners=False)
    return F.pad(enlarged, (4, 4, 4, 4)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class TargetTask:
    """One seed's target task, standardised; the ``shifted`` loaders hold each digit rotated by +d and by -d."""

    train_set: TensorDataset
    val_loader: DataLoader
    shifted_val_loader: DataLoader
    test_loader: DataLoader
    shifted_loader: DataLoader


def load_target_task(images: torch.Tensor, labels: torch.Tensor, seed: int, num_train_examples: int,
                     max_eval_examples: int, shift_rotation_degrees: float) -> TargetTask:
    """Split ``(N, 1, 28, 28)`` target digits 50/20/30 (one split per seed); rotate validation and test copies."""
    _check_digits(images)
    if len(images) != len(labels):
        raise ValueError(f"images and labels must have the same length, got {len(images)} and {len(labels)}")
    check_int("num_train_examples", num_train_examples)
    check_int("max_eval_examples", max_eval_examples)
    train, val, test = split_indices(len(labels), [0.5, 0.2, 0.3], seed=seed)
    train, val, test = train[:num_train_examples], val[:max_eval_examples], test[:max_eval_examples]

    def loader(part: list[int], shifted: bool = False) -> DataLoader:
        inputs, targets = images[part], labels[part]
        if shifted:  # (2 * N, 1, H, W): every digit turned both ways
            inputs = torch.cat([rotate_digits(inputs, sign * shift_rotation_degrees) for sign in (1, -1)])
            targets = targets.repeat(2)
        return make_loader(TensorDataset((inputs - MNIST_MEAN) / MNIST_STD, targets), 256, shuffle=False)

    return TargetTask(train_set=TensorDataset((images[train] - MNIST_MEAN) / MNIST_STD, labels[train]),
                      val_loader=loader(val), shifted_val_loader=loader(val, shifted=True), test_loader=loader(test),
                      shifted_loader=loader(test, shifted=True))
