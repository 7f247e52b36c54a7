"""Bad input to tlcourse.images is refused with the argument named (the behaviour is tested with the VGG16 chapter)."""

import pytest
import torch

from tlcourse.images import image_transforms, mnist_as_rgb, validate_images


@pytest.mark.parametrize("call, error, message", [
    (lambda: validate_images(None), TypeError, "images must be a float tensor .*got NoneType"),
    (lambda: validate_images([[0.0]]), TypeError, "images must be a float tensor .*got list"),
    (lambda: validate_images(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)), TypeError,
     r"images must be a float tensor \(N, 3, H, W\), got torch.uint8"),
    (lambda: mnist_as_rgb(None, 32), TypeError, r"images must be a \(N, H, W\) tensor of grayscale digits, got NoneType"),
    (lambda: mnist_as_rgb([[1, 2]], 32), TypeError, "got list"),
    (lambda: image_transforms(torch.zeros(2, 3), train=True), ValueError, "image_size must be a positive int, got tensor"),
    (lambda: image_transforms(None, train=True), ValueError, "image_size must be a positive int, got None"),
])
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
