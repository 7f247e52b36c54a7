"""Images for ImageNet backbones: normalisation constants, transforms, checks, MNIST as RGB.

- :func:`image_transforms` builds the preprocessing the ImageNet weights expect (resize, ImageNet
  mean/std), with light augmentation for training.
- :func:`mnist_as_rgb` turns grayscale MNIST digits into normalised 3-channel tensors of a given
  size: the offline stand-in for CIFAR-10, used by the concepts, VGG16 and fusion chapters.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from tlcourse.checks import check_int, check_number, check_sequence

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VGG16_MIN_IMAGE_SIZE",
    "image_transforms",
    "validate_images",
    "mnist_as_rgb",
]


# The statistics the ImageNet weights were trained with; inputs must be normalised the same way.
IMAGENET_MEAN = (0.485, 0.456, 0.406)


IMAGENET_STD = (0.229, 0.224, 0.225)


# VGG16 halves the resolution five times (one MaxPool per block): 32 pixels is the smallest side
# that still leaves one pixel after the last block.
VGG16_MIN_IMAGE_SIZE = 32


def _check_normalisation(mean: Sequence[float], std: Sequence[float]) -> None:
    # one finite mean and one positive std per RGB channel; a NaN would blank every image silently
    for name, values, low in (("mean", mean, -math.inf), ("std", std, 0.0)):
        if len(check_sequence(name, values)) != 3:
            raise ValueError(f"{name} must hold 3 numbers (one per RGB channel), got {list(values)}")
        for index, value in enumerate(values):
            check_number(f"{name}[{index}]", value, low=low)
            if name == "std" and value == 0:
                raise ValueError(f"std[{index}] must be positive (it divides the pixels), got 0")


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

    _check_normalisation(mean, std)
    check_int("image_size", image_size)
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
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a float tensor (N, 3, H, W), got {getattr(images, 'dtype', type(images).__name__)}")
    if images.numel() == 0 or images.shape[0] == 0:
        raise ValueError("the data set is empty: expected at least one image")
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
    if images.shape[1] != 3:
        raise ValueError(f"images must have 3 channels (RGB) for an ImageNet backbone, got {images.shape[1]}; "
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
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a (N, H, W) tensor of grayscale digits, got {type(images).__name__}")
    if images.dim() != 3:
        raise ValueError(f"expected grayscale images of shape (N, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("the data set is empty: expected at least one image")
    if images.dtype != torch.uint8:  # float pixels in [0, 1] would be divided by 255 once more, silently
        raise TypeError(f"images must be uint8 pixels in [0, 255], got dtype {images.dtype}")
    _check_normalisation(mean, std)
    if check_int("image_size", image_size) < VGG16_MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be at least {VGG16_MIN_IMAGE_SIZE}, got {image_size}")
    pixels = images.float().div(255.0).unsqueeze(1)  # (N, 1, H, W) in [0, 1]
    pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False)
    pixels = pixels.expand(-1, 3, -1, -1)  # (N, 3, S, S): the same gray in R, G and B
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    return ((pixels - mean_t) / std_t).contiguous()
