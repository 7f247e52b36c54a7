"""tlcourse.images against direct computations (the transforms are also exercised by the VGG16 chapter's tests)."""

import pytest
import torch
import torch.nn.functional as F

from tlcourse.images import IMAGENET_MEAN, IMAGENET_STD, mnist_as_rgb, validate_images


def test_mnist_as_rgb_is_the_normalised_gray_in_three_channels():
    digits = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    images = mnist_as_rgb(digits, 32)
    gray = F.interpolate(digits.float().unsqueeze(1) / 255, size=(32, 32), mode="bilinear", align_corners=False)
    for channel in range(3):
        expected = (gray[:, 0] - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        torch.testing.assert_close(images[:, channel], expected)
    with pytest.raises(TypeError, match=r"images must be uint8 pixels in \[0, 255\], got dtype torch.float32"):
        mnist_as_rgb(digits.float() / 255, 32)  # pixels already in [0, 1] would be divided again


@pytest.mark.parametrize("images, error, message", [
    (None, TypeError, "images must be a float tensor .*got NoneType"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), TypeError, r"images must be a float tensor \(N, 3, H, W\), got torch.uint8"),
    (torch.zeros(2, 1, 32, 32), ValueError, "3 channels .* got 1"),
    (torch.zeros(2, 3, 16, 16), ValueError, "too small"),
])
def test_validate_images_names_what_is_wrong(images, error, message):
    with pytest.raises(error, match=message):
        validate_images(images)
    validate_images(torch.zeros(2, 3, 32, 32), torch.tensor([0, 1]), num_classes=2)
