"""Tests of tlcourse.chapters.fusion: the digit data, its shift and the settings."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import ndimage

from tlcourse.chapters.fusion import (MNIST_MEAN, MNIST_STD, SETTINGS, load_target_task, make_broad_digits,
                                      optical_digits_as_mnist, rotate_digits)
from tlcourse.profiles import get_profile, settings_for


def _blob(size: int = 28) -> torch.Tensor:
    # an off-centre, asymmetric smooth blob: (1, 1, size, size)
    rows, columns = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                                   indexing="ij")
    return torch.exp(-((rows - 9.0) ** 2 / 8.0 + (columns - 17.0) ** 2 / 18.0))[None, None]


def test_rotate_digits_matches_scipy_and_inverts() -> None:
    image = _blob()
    for degrees in (30.0, -45.0, 90.0):
        rotated = rotate_digits(image, degrees)[0, 0]
        # independent reference: scipy rotates counter-clockwise about the centre for positive angles
        reference = torch.from_numpy(ndimage.rotate(image[0, 0].numpy(), degrees, reshape=False, order=1,
                                                    mode="constant")).float()
        assert (rotated - reference).abs().max() < 0.05, degrees
        back = rotate_digits(rotate_digits(image, degrees), -degrees)[0, 0]
        assert (back - image[0, 0]).abs().max() < 0.1  # a round trip loses only interpolation blur
    torch.testing.assert_close(rotate_digits(image, 0.0), image)
    per_image = rotate_digits(torch.cat([image, image]), torch.tensor([0.0, 90.0]))
    torch.testing.assert_close(per_image[1:], rotate_digits(image, 90.0))


def test_rotate_digits_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match=r"shape \(N, 1, H, W\), got \(28, 28\)"):
        rotate_digits(torch.zeros(28, 28), 10.0)
    with pytest.raises(ValueError, match="one finite angle or one per image"):
        rotate_digits(torch.zeros(3, 1, 28, 28), torch.zeros(2))


def test_make_broad_digits_rotates_and_coarsens_copies() -> None:
    images = _blob().repeat(10, 1, 1, 1)
    broad = make_broad_digits(images, copies=3, max_rotation_degrees=60.0, generator=torch.Generator().manual_seed(0))
    assert broad.shape == (30, 1, 28, 28)
    assert not torch.allclose(broad[0], broad[10])  # two copies of one image differ
    again = make_broad_digits(images, copies=3, max_rotation_degrees=60.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(broad, again)  # the generator decides everything
    unrotated = make_broad_digits(images, copies=1, max_rotation_degrees=0.0, generator=torch.Generator().manual_seed(0))
    unchanged = [(unrotated[i] - images[i]).abs().max() < 1e-5 for i in range(10)]
    assert sum(unchanged) == 5  # half of the images stay sharp, the other half is coarsened
    with pytest.raises(ValueError, match="copies must be a positive int, got 0"):
        make_broad_digits(images, copies=0, max_rotation_degrees=10.0, generator=torch.Generator())


def test_optical_digits_as_mnist_centres_a_20_pixel_digit() -> None:
    images = torch.ones(2, 8, 8)
    framed = optical_digits_as_mnist(images)
    assert framed.shape == (2, 1, 28, 28)
    expected = torch.zeros(2, 1, 28, 28)
    expected[:, :, 4:24, 4:24] = 1.0  # a 20x20 box with a 4-pixel border, as MNIST frames its digits
    torch.testing.assert_close(framed, expected)
    with pytest.raises(ValueError, match=r"shape \(N, H, W\)"):
        optical_digits_as_mnist(torch.ones(2, 1, 8, 8))


def test_load_target_task_splits_once_and_rotates_the_test_digits() -> None:
    images, labels = torch.rand(100, 1, 28, 28), torch.arange(100) % 10
    task = load_target_task(images, labels, seed=0, num_train_examples=20, max_eval_examples=25,
                            shift_rotation_degrees=45.0)
    train_x, _ = task.train_set.tensors
    val_x, _ = task.val_loader.dataset.tensors
    test_x, test_y = task.test_loader.dataset.tensors
    shifted_x, shifted_y = task.shifted_loader.dataset.tensors
    assert (len(train_x), len(val_x), len(test_x), len(shifted_x)) == (20, 20, 25, 50)
    # the three parts are disjoint: no standardised image appears in two of them
    keys = [{tuple(row.flatten()[:5].tolist()) for row in part} for part in (train_x, val_x, test_x)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    raw_test = test_x * MNIST_STD + MNIST_MEAN
    torch.testing.assert_close(shifted_x[:25] * MNIST_STD + MNIST_MEAN, rotate_digits(raw_test, 45.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(shifted_x[25:] * MNIST_STD + MNIST_MEAN, rotate_digits(raw_test, -45.0), atol=1e-5, rtol=0)
    assert torch.equal(shifted_y, test_y.repeat(2))
    other = load_target_task(images, labels, seed=1, num_train_examples=20, max_eval_examples=25,
                             shift_rotation_degrees=45.0)
    assert not torch.equal(other.train_set.tensors[0], train_x)  # another seed, another split
    with pytest.raises(ValueError, match="same length"):
        load_target_task(images, labels[:50], 0, 20, 25, 45.0)
    with pytest.raises(ValueError, match="num_train_examples must be a positive int, got 0"):
        load_target_task(images, labels, 0, 0, 25, 45.0)


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu"])
def test_settings_fit_the_chapter(name: str) -> None:
    config = settings_for(SETTINGS, get_profile(name))
    assert 0 < config.barrier_hidden_size < config.hidden_size
    assert config.num_barrier_models >= 2 and config.barrier_epochs >= 1
    assert config.num_alphas % 2 == 1  # the alphas i / (n - 1) include the WiSE-FT default 0.5
    assert config.num_seeds >= 2 and len(config.learning_rates) >= 2  # paired intervals, soups of several runs
    if name != "smoke":
        assert config.num_seeds >= 3  # comparisons over at least three seeds
    assert math.isclose(config.shift_rotation_degrees, 45.0) and config.pretrain_rotation_degrees > 45.0
