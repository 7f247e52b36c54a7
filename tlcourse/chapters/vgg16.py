"""The VGG16 chapter's settings table and helpers.

- :data:`SETTINGS`: the chapter's sizes per profile; :func:`settings` picks one.
- :func:`accuracy_after_batchnorm_reestimation`: test accuracy once BatchNorm statistics are
  re-estimated, to measure what stale running averages cost.

Generic pieces live in the library: transforms in :mod:`tlcourse.images`, VGG16's blocks in
:mod:`tlcourse.models`, cached features in :mod:`tlcourse.transfer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from tlcourse.batchnorm import recompute_batchnorm_statistics
from tlcourse.images import VGG16_MIN_IMAGE_SIZE
from tlcourse.profiles import Profile, settings_for
from tlcourse.train import evaluate

__all__ = [
    "VGG16Settings",
    "SETTINGS",
    "settings",
    "accuracy_after_batchnorm_reestimation",
]

@dataclass(frozen=True)
class VGG16Settings:
    """Sizes of the chapter's strategy comparison under one profile.

    Attributes:
        image_size: side of the square input images (at least ``VGG16_MIN_IMAGE_SIZE``).
        num_train: training examples (the same for every strategy).
        num_eval: test examples.
        batch_size: examples per step.
        num_epochs: epochs per strategy (LP-FT splits them between its two stages).
        max_steps_per_epoch: step cap per epoch (``None``: no cap).
        frozen_blocks: ``k`` for partial fine-tuning.
        head_lr: learning rate of the new head.
        backbone_lr: learning rate of the lowest block in full fine-tuning.
    """

    image_size: int
    num_train: int
    num_eval: int
    batch_size: int
    num_epochs: int
    max_steps_per_epoch: int | None
    frozen_blocks: int = 3
    head_lr: float = 1e-2
    backbone_lr: float = 1e-4

    def __post_init__(self) -> None:
        if self.image_size < VGG16_MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be at least {VGG16_MIN_IMAGE_SIZE} (VGG16 halves it five "
                             f"times), got {self.image_size}")


SETTINGS: dict[str, VGG16Settings] = {
    "smoke": VGG16Settings(image_size=32, num_train=32, num_eval=32, batch_size=16, num_epochs=1,
                           max_steps_per_epoch=2),
    # Four strategies share the cpu profile's 5-minute budget.
    "cpu": VGG16Settings(image_size=64, num_train=1000, num_eval=500, batch_size=32, num_epochs=2,
                         max_steps_per_epoch=None),
    "gpu": VGG16Settings(image_size=224, num_train=50_000, num_eval=10_000, batch_size=128, num_epochs=3,
                         max_steps_per_epoch=None),
}


def settings(profile: Profile) -> VGG16Settings:
    """The chapter's sizes for ``profile`` (from :data:`SETTINGS`).

    Args:
        profile: the run profile.

    Returns:
        A :class:`VGG16Settings`.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> settings(get_profile("smoke")).image_size
        32
    """
    return settings_for(SETTINGS, profile)


def accuracy_after_batchnorm_reestimation(model: nn.Module, statistics_loader: Iterable, test_loader: Iterable,
                                          device: torch.device | str = "cpu") -> float:
    """Test accuracy once the BatchNorm running statistics are re-estimated on training images.

    After a short fine-tuning run with a small BatchNorm momentum (0.01 in EfficientNet) the
    running averages still describe the pretraining data; comparing this number with the accuracy
    as trained measures what the stale averages cost. For a network without BatchNorm (VGG16) it
    is simply the test accuracy.

    Args:
        model: the trained network; its running statistics are replaced in place (frozen BatchNorm
            layers keep theirs, see :func:`tlcourse.batchnorm.recompute_batchnorm_statistics`).
        statistics_loader: training ``(images, labels)`` batches for the statistics.
        test_loader: evaluation batches.
        device: where to run.

    Returns:
        Accuracy in ``[0, 1]``.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> batches = [(torch.ones(3, 1, 2, 2), torch.zeros(3, dtype=torch.long))]
        >>> 0.0 <= accuracy_after_batchnorm_reestimation(net, batches, batches) <= 1.0
        True
    """

    recompute_batchnorm_statistics(model, statistics_loader, device)
    return float(evaluate(model, test_loader, device=device)["accuracy"])
