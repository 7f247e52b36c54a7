"""Image helpers for the VGG16 chapter: transforms, the MNIST stand-in, VGG16 blocks, cached features.

- :func:`image_transforms` builds the preprocessing the ImageNet weights expect (resize, ImageNet
  mean/std), with light augmentation for training.
- :func:`mnist_as_rgb` turns the 5,000 grayscale MNIST digits into normalised 3-channel tensors of
  the profile's image size: the offline stand-in for CIFAR-10.
- :func:`vgg16_blocks` splits VGG16's ``features`` into its five conv blocks (at the MaxPool layers)
  so that :func:`tlcourse.transfer.freeze_first` can freeze the first ``k``.
- :func:`extract_features` runs a frozen backbone once and caches its outputs, so a head can be
  trained for many epochs on the cache instead of recomputing the backbone every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.models import IMAGENET_MEAN, IMAGENET_STD
from tlcourse.profiles import Profile
from tlcourse.transfer import locate_submodule, recompute_batchnorm_statistics

__all__ = [
    "VGG16_MIN_IMAGE_SIZE",
    "ExperimentConfig",
    "experiment_config",
    "image_transforms",
    "validate_images",
    "mnist_as_rgb",
    "vgg16_blocks",
    "backbone_blocks",
    "split_head",
    "extract_features",
    "accuracy_after_batchnorm_reestimation",
]

# VGG16 halves the resolution five times (one MaxPool per block): 32 pixels is the smallest side
# that still leaves one pixel after the last block.
VGG16_MIN_IMAGE_SIZE = 32


@dataclass(frozen=True)
class ExperimentConfig:
    """Sizes of the chapter's strategy comparison for one profile.

    Attributes:
        image_size: side of the square input images.
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
    frozen_blocks: int
    head_lr: float
    backbone_lr: float


def experiment_config(profile: Profile) -> ExperimentConfig:
    """The chapter's sizes for ``profile``.

    Args:
        profile: the run profile.

    Returns:
        An :class:`ExperimentConfig`.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> experiment_config(get_profile("smoke")).image_size
        32
    """
    # The cpu profile is kept below its global caps: four strategies share its 5-minute budget.
    num_train = {"smoke": 32, "cpu": 1000}.get(profile.name, profile.cap(50_000))
    num_eval = {"smoke": 32, "cpu": 500}.get(profile.name, profile.cap(10_000, "eval"))
    return ExperimentConfig(
        image_size=max(profile.image_size, VGG16_MIN_IMAGE_SIZE),
        num_train=profile.cap(num_train),
        num_eval=profile.cap(num_eval, "eval"),
        batch_size=profile.batch_size,
        num_epochs=max(profile.num_epochs, 2) if profile.name != "smoke" else 1,
        max_steps_per_epoch=2 if profile.name == "smoke" else profile.max_steps_per_epoch,
        frozen_blocks=3,
        head_lr=1e-2,
        backbone_lr=1e-4,
    )


def image_transforms(image_size: int, train: bool, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD):
    """Preprocessing for PIL images (e.g. CIFAR-10) fed to an ImageNet backbone.

    Training adds a random crop after padding and a horizontal flip: label-preserving changes that
    show the network more variety than the raw images. Evaluation is deterministic.

    Args:
        image_size: output side in pixels.
        train: add augmentation.
        mean: per-channel mean of the pretrained weights.
        std: per-channel std of the pretrained weights.

    Returns:
        A ``torchvision.transforms.v2.Compose`` producing float ``(3, image_size, image_size)``.

    Raises:
        ValueError: if ``image_size`` is smaller than :data:`VGG16_MIN_IMAGE_SIZE`.

    Example:
        >>> from PIL import Image
        >>> image_transforms(32, train=False)(Image.new("RGB", (40, 40))).shape
        torch.Size([3, 32, 32])
    """
    from torchvision.transforms import v2

    if image_size < VGG16_MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be at least {VGG16_MIN_IMAGE_SIZE} for VGG16's five pools, "
                         f"got {image_size}")
    steps = [v2.ToImage(), v2.Resize((image_size, image_size), antialias=True)]
    if train:
        steps += [v2.RandomCrop(image_size, padding=image_size // 8), v2.RandomHorizontalFlip()]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def validate_images(images: torch.Tensor, labels: torch.Tensor | None = None, num_classes: int | None = None,
                    min_size: int = VGG16_MIN_IMAGE_SIZE) -> None:
    """Check a batch of images (and labels) before it reaches an ImageNet backbone.

    Args:
        images: ``(N, 3, H, W)``.
        labels: ``(N,)`` class indices, optional.
        num_classes: labels must lie in ``[0, num_classes)``.
        min_size: smallest allowed ``H`` and ``W``.

    Raises:
        ValueError: empty data, wrong shape or channel count, images too small, labels out of range.

    Example:
        >>> validate_images(torch.zeros(2, 3, 32, 32), torch.tensor([0, 1]), num_classes=2)
    """
    if images.numel() == 0 or images.shape[0] == 0:
        raise ValueError("the data set is empty: expected at least one image")
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
    if images.shape[1] != 3:
        raise ValueError(f"expected 3 channels (RGB) for an ImageNet backbone, got {images.shape[1]}; "
                         "convert grayscale with mnist_as_rgb or repeat the channel")
    if min(images.shape[2:]) < min_size:
        raise ValueError(f"images of {tuple(images.shape[2:])} pixels are too small for the backbone: "
                         f"need at least {min_size}x{min_size}")
    if labels is not None:
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"got {labels.shape[0]} labels for {images.shape[0]} images")
        if num_classes is not None and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f"labels must be in [0, {num_classes - 1}], got {int(labels.min())}..{int(labels.max())}")


def mnist_as_rgb(images: torch.Tensor, image_size: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Grayscale digits as normalised 3-channel images of ``image_size`` pixels.

    Args:
        images: uint8 ``(N, H, W)`` in ``[0, 255]`` (as :func:`tlcourse.data.load_mnist_5k` gives).
        image_size: output side in pixels.
        mean: per-channel normalisation mean.
        std: per-channel normalisation std.

    Returns:
        float32 ``(N, 3, image_size, image_size)``.

    Raises:
        ValueError: if ``images`` is empty, not ``(N, H, W)``, or ``image_size`` is too small.

    Example:
        >>> mnist_as_rgb(torch.zeros(2, 28, 28, dtype=torch.uint8), 32).shape
        torch.Size([2, 3, 32, 32])
    """
    if images.dim() != 3:
        raise ValueError(f"expected grayscale images of shape (N, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("the data set is empty: expected at least one image")
    if image_size < VGG16_MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be at least {VGG16_MIN_IMAGE_SIZE}, got {image_size}")
    pixels = images.float().div(255.0).unsqueeze(1)  # (N, 1, H, W) in [0, 1]
    pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False)
    pixels = pixels.expand(-1, 3, -1, -1)  # (N, 3, S, S): the same gray in R, G and B
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    return ((pixels - mean_t) / std_t).contiguous()


def vgg16_blocks(model: nn.Module) -> list[nn.Sequential]:
    """VGG16's five conv blocks, each ending with its MaxPool layer.

    The blocks share modules with ``model`` (no copies), so freezing a block freezes the model.

    Args:
        model: a torchvision VGG16 (anything with a ``features`` Sequential holding 5 MaxPools).

    Returns:
        Five ``nn.Sequential`` blocks in input-to-output order.

    Raises:
        ValueError: if the model has no ``features`` or not exactly five MaxPool layers.

    Example:
        >>> from tlcourse.models import build_vgg16
        >>> [len(b) for b in vgg16_blocks(build_vgg16(10, pretrained=False))]
        [5, 5, 7, 7, 7]
    """
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential):
        raise ValueError(f"expected a VGG model with a `features` nn.Sequential, got {type(model).__name__}")
    blocks, current = [], []
    for layer in features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):  # a pool closes a block
            blocks.append(nn.Sequential(*current))
            current = []
    if len(blocks) != 5 or current:
        raise ValueError(f"expected 5 MaxPool-terminated blocks as in VGG16, found {len(blocks)}")
    return blocks


def backbone_blocks(model: nn.Module, architecture: str) -> list[nn.Module]:
    """Five input-to-output blocks of the book's image backbone, for ``freeze_first``.

    Args:
        model: the network from :func:`tlcourse.models.load_image_model`.
        architecture: ``"vgg16"`` or ``"efficientnet-lite0"``.

    Returns:
        VGG16's conv blocks; for EfficientNet-Lite0, the stem, its MBConv blocks in three
        groups, and the head convolution.

    Raises:
        ValueError: for another architecture.

    Example:
        >>> from tlcourse.models import build_vgg16
        >>> len(backbone_blocks(build_vgg16(10, pretrained=False), "vgg16"))
        5
    """
    if architecture == "vgg16":
        return list(vgg16_blocks(model))
    if architecture == "efficientnet-lite0":
        mbconv = list(model._blocks)
        third = -(-len(mbconv) // 3)  # ceil: three nearly equal groups
        groups = [nn.ModuleList(mbconv[i:i + third]) for i in range(0, len(mbconv), third)]
        return [nn.ModuleList([model._conv_stem, model._bn0]), *groups,
                nn.ModuleList([model._conv_head, model._bn1])]
    raise ValueError(f"architecture must be 'vgg16' or 'efficientnet-lite0', got {architecture!r}")


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
    parent, name, module = locate_submodule(model, head)
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
    was_training = backbone.training
    backbone.to(device).eval()
    features, labels = [], []
    try:
        for images, targets in loader:
            output = backbone(images.to(device))
            features.append(output.float().flatten(1).cpu())  # (B, D)
            labels.append(targets.cpu())
    finally:
        backbone.train(was_training)
    if not features:
        raise ValueError("the loader is empty: expected at least one batch to extract features from")
    return TensorDataset(torch.cat(features), torch.cat(labels))


def accuracy_after_batchnorm_reestimation(model: nn.Module, statistics_loader: Iterable, test_loader: Iterable,
                                          device: torch.device | str = "cpu") -> float:
    """Test accuracy once the BatchNorm running statistics are re-estimated on training images.

    After a short fine-tuning run with a small BatchNorm momentum (0.01 in EfficientNet) the
    running averages still describe the pretraining data; comparing this number with the accuracy
    as trained measures what the stale averages cost. For a network without BatchNorm (VGG16) it
    is simply the test accuracy.

    Args:
        model: the trained network; its running statistics are replaced in place (frozen BatchNorm
            layers keep theirs, see :func:`tlcourse.transfer.recompute_batchnorm_statistics`).
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
    from tlcourse.train import evaluate

    recompute_batchnorm_statistics(model, statistics_loader, device)
    return float(evaluate(model, test_loader, device=device)["accuracy"])
