"""Images for ImageNet backbones: normalisation constants, transforms, a batch check, MNIST as RGB."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "VGG16_MIN_IMAGE_SIZE", "image_transforms", "validate_images",
           "mnist_as_rgb"]

# The statistics the ImageNet weights were trained with; inputs must be normalised the same way.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# VGG16 halves the resolution five times: 32 pixels is the smallest side that survives the last pool.
VGG16_MIN_IMAGE_SIZE = 32


def image_transforms(image_size: int, train: bool, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD):
    """torchvision ``v2`` preprocessing of PIL images to normalised ``(3, image_size, image_size)``; ``train`` adds a padded random crop and a flip."""
    from torchvision.transforms import v2

    steps = [v2.ToImage(), v2.Resize((image_size, image_size), antialias=True)]
    if train:
        steps += [v2.RandomCrop(image_size, padding=image_size // 8), v2.RandomHorizontalFlip()]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def validate_images(images: torch.Tensor, labels: torch.Tensor | None = None, num_classes: int | None = None,
                    min_size: int = VGG16_MIN_IMAGE_SIZE) -> None:
    """Raise unless ``images`` is a non-empty float ``(N, 3, H, W)`` batch of sides >= ``min_size``, with labels in ``[0, num_classes)``."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a float tensor (N, 3, H, W), got {getattr(images, 'dtype', type(images).__name__)}")
    if images.numel() == 0:
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
    """uint8 grayscale digits ``(N, H, W)`` as normalised float ``(N, 3, image_size, image_size)``: the same gray in R, G and B."""
    if images.dtype != torch.uint8:  # float pixels in [0, 1] would be divided by 255 once more, silently
        raise TypeError(f"images must be uint8 pixels in [0, 255], got dtype {images.dtype}")
    if images.dim() != 3 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (N, H, W) batch of digits, got {tuple(images.shape)}")
    if image_size < VGG16_MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be at least {VGG16_MIN_IMAGE_SIZE} for VGG16's five pools, got {image_size}")
    pixels = images.float().div(255.0).unsqueeze(1)  # (N, 1, H, W) in [0, 1]
    pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False)
    pixels = pixels.expand(-1, 3, -1, -1)  # (N, 3, S, S)
    return ((pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)).contiguous()
