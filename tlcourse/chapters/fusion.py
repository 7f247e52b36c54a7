"""The fusion chapter's experiment: WiSE-FT's setup (Wortsman et al., 2022) at laptop scale.

The pretrained model is a digit MLP trained on broad data (MNIST digits at random rotations and
resolutions, :func:`make_broad_digits`); its head already predicts the ten digits, so it
classifies any digit data set zero-shot, as CLIP does with a text head. The target task is another
digit data set (scikit-learn's optical digits, :func:`optical_digits_as_mnist`) with few upright
training examples and a rotated test set (:func:`load_target_task`). Every fine-tuning run starts
from the pretrained model (:func:`fine_tune_copy`). Sizes per profile: :data:`SETTINGS`, read with
:func:`tlcourse.profiles.settings_for`.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tlcourse.checks import check_int, check_tensor
from tlcourse.data import make_loader, split_indices
from tlcourse.fusion import StateDict
from tlcourse.runtime import seed_everything
from tlcourse.train import fit

__all__ = ["FusionSettings", "SETTINGS", "MNIST_MEAN", "MNIST_STD", "rotate_digits", "make_broad_digits",
           "optical_digits_as_mnist", "TargetTask", "load_target_task", "make_digit_mlp", "pretrain_digit_classifier",
           "fine_tune_copy", "permute_hidden_units"]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # MNIST's pixel mean and standard deviation: every input is standardised


@dataclass(frozen=True)
class FusionSettings:
    """Sizes of the fusion chapter's experiments for one profile.

    Attributes:
        hidden_size: width of the MLP's two hidden layers.
        max_pretrain_digits: MNIST digits used for pretraining (before augmented copies).
        pretrain_copies: randomly rotated and degraded copies of each pretraining digit.
        pretrain_rotation_degrees: pretraining rotations are uniform in ``[-d, d]``.
        pretrain_epochs: epochs of pretraining. pretrain_batch_size: examples per pretraining step.
        num_train_examples: labelled target training examples per seed (few: a narrow task).
        max_eval_examples: cap on target validation and test examples.
        shift_rotation_degrees: the shifted test set rotates each test digit by ``+d`` or ``-d``.
        learning_rates: one fine-tuning run per entry, each with its own seed (the soup's ingredients).
        finetune_epochs: epochs of each fine-tuning run.
        num_seeds: repetitions (target split, shift and fine-tuning seeds) of the comparisons.
        num_alphas: interpolation coefficients in ``[0, 1]`` for the WiSE-FT curve.
        batch_size: examples per step. max_steps_per_epoch: cap on steps per epoch (``None``: no cap).
        barrier_hidden_size: width of the narrow MLP of the loss-barrier experiment.
        barrier_epochs: epochs of each narrow MLP trained from a random initialisation.
        num_barrier_models: narrow MLPs from random initialisations, and random permutations.
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
    """Rotate each image about its centre (counter-clockwise), filling the corners with 0.

    Args:
        images: float ``(N, 1, H, W)``, background 0.
        degrees: one angle for all images, or a ``(N,)`` tensor of angles.

    Returns:
        The rotated images, same shape (bilinear resampling); ``ValueError`` for images not of shape
        ``(N, 1, H, W)``, angles of the wrong length or not finite (a NaN angle would blank every image).

    Example:
        >>> image = torch.zeros(1, 1, 5, 5); image[0, 0, 2, 4] = 1.0  # a dot right of the centre
        >>> rotate_digits(image, 90.0)[0, 0].argmax().item()  # now above it: row 0, column 2
        2
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
    """Broad pretraining data: each copy rotates every digit at random, and coarsens half of them.

    Angles are uniform in ``[-max_rotation_degrees, max_rotation_degrees]``; a random half of each
    copy is shrunk to 7-14 pixels and enlarged back (coarse digits as well as sharp ones).

    Args:
        images: float ``(N, 1, 28, 28)`` in ``[0, 1]``.
        copies: how many augmented copies of the whole set.
        max_rotation_degrees: largest rotation.
        generator: the random source (angles, which images are degraded).

    Returns:
        Float ``(copies * N, 1, 28, 28)``; copy ``k`` of image ``i`` is row ``k * N + i``.

    Raises:
        ValueError: for ``copies < 1`` or images of the wrong shape.

    Example:
        >>> make_broad_digits(torch.zeros(3, 1, 28, 28), 2, 30.0, torch.Generator().manual_seed(0)).shape
        torch.Size([6, 1, 28, 28])
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
    """scikit-learn's 8x8 digits framed like MNIST: enlarged to 20x20, centred in 28x28.

    Args:
        images: float ``(N, 8, 8)`` in ``[0, 1]`` (from :func:`tlcourse.data.load_digits_images`).

    Returns:
        Float ``(N, 1, 28, 28)`` in ``[0, 1]`` (MNIST digits fit a 20x20 box centred in 28x28).

    Example:
        >>> optical_digits_as_mnist(torch.ones(2, 8, 8)).shape
        torch.Size([2, 1, 28, 28])
    """
    if images.dim() != 3:
        raise ValueError(f"images must be of shape (N, H, W), got {tuple(images.shape)}")
    enlarged = F.interpolate(images.unsqueeze(1).float(), size=(20, 20), mode="bilinear", align_corners=False)
    return F.pad(enlarged, (4, 4, 4, 4)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class TargetTask:
    """One seed's target task: a few labelled training digits, validation and test sets, upright and shifted.

    Attributes:
        train_set: standardised training digits and labels (upright).
        val_loader: validation batches (upright): everything chosen is chosen on validation data.
        shifted_val_loader: every validation digit twice, rotated by plus and by minus the shift angle.
        test_loader: test batches (upright, in distribution).
        shifted_loader: every test digit twice, rotated by plus and by minus the shift angle.
    """

    train_set: TensorDataset
    val_loader: DataLoader
    shifted_val_loader: DataLoader
    test_loader: DataLoader
    shifted_loader: DataLoader


def load_target_task(images: torch.Tensor, labels: torch.Tensor, seed: int, num_train_examples: int,
                     max_eval_examples: int, shift_rotation_degrees: float) -> TargetTask:
    """Split the target digits 50/20/30 (one split per seed) and rotate validation and test digits (the shift).

    Args:
        images: float ``(N, 1, 28, 28)`` in ``[0, 1]`` (e.g. :func:`optical_digits_as_mnist`).
        labels: int64 ``(N,)``.
        seed: which split.
        num_train_examples: labelled training examples kept from the training part.
        max_eval_examples: cap on validation and test examples.
        shift_rotation_degrees: each shifted digit appears rotated by ``+d`` and by ``-d``.

    Returns:
        A :class:`TargetTask`.

    Raises:
        ValueError: for images not ``(N, 1, H, W)``, unequal lengths or a non-positive count.

    Example:
        >>> task = load_target_task(torch.rand(40, 1, 28, 28), torch.arange(40) % 10, 0, 8, 100, 45.0)
        >>> len(task.train_set), len(task.test_loader.dataset), len(task.shifted_loader.dataset)
        (8, 12, 24)
    """
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


def make_digit_mlp(num_classes: int, hidden_size: int = 256) -> nn.Sequential:
    """A small MLP for 28x28 digits with a ``body`` and a ``head`` (so the head can be swapped).

    Args:
        num_classes: outputs of the linear head.
        hidden_size: width of the two hidden layers.

    Returns:
        ``nn.Sequential`` with submodules ``body`` (flatten, two ReLU layers) and ``head``.

    Example:
        >>> make_digit_mlp(5, 16)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 5])
    """
    check_int("num_classes", num_classes)
    check_int("hidden_size", hidden_size)
    body = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden_size), nn.ReLU(),
                         nn.Linear(hidden_size, hidden_size), nn.ReLU())
    return nn.Sequential(OrderedDict(body=body, head=nn.Linear(hidden_size, num_classes)))


def pretrain_digit_classifier(hidden_size: int, loader: DataLoader, num_epochs: int, seed: int = 0,
                              max_steps_per_epoch: int | None = None, num_classes: int = 10,
                              device: torch.device | str = "cpu") -> nn.Sequential:
    """Train a :func:`make_digit_mlp` from scratch with Adam (learning rate 1e-3): the pretrained model.

    Args:
        hidden_size: width of the MLP.
        loader: pretraining batches (standardised digits, labels).
        num_epochs: epochs.
        seed: seeds the initialisation (one call of :func:`tlcourse.runtime.seed_everything`).
        max_steps_per_epoch: cap on steps per epoch.
        num_classes: outputs of the head (the ten digits: the model is a classifier out of the box).
        device: where to train.

    Returns:
        The trained network.

    Example:
        >>> # pretrained = pretrain_digit_classifier(256, broad_loader, num_epochs=8)
    """
    seed_everything(seed)
    model = make_digit_mlp(num_classes=num_classes, hidden_size=hidden_size)
    fit(model, loader, torch.optim.Adam(model.parameters(), 1e-3), num_epochs=num_epochs,
        max_steps_per_epoch=max_steps_per_epoch, device=device)
    return model


def fine_tune_copy(start: nn.Module, train_set: Dataset, learning_rate: float, seed: int, batch_size: int,
                   num_epochs: int, max_steps_per_epoch: int | None = None,
                   device: torch.device | str = "cpu") -> nn.Module:
    """Fine-tune every layer of a copy of ``start`` with Adam; ``start`` itself is not changed.

    Args:
        start: the shared starting point (the pretrained model).
        train_set: target training examples.
        learning_rate: Adam's learning rate.
        seed: seeds the run and the order of the batches.
        batch_size: examples per step.
        num_epochs: epochs.
        max_steps_per_epoch: cap on steps per epoch.
        device: where to train.

    Returns:
        The fine-tuned copy.

    Example:
        >>> # runs = [fine_tune_copy(pretrained, train_set, lr, seed, 32, 10) for seed, lr in enumerate([1e-3, 2e-3])]
    """
    seed_everything(seed)
    model = copy.deepcopy(start)
    fit(model, make_loader(train_set, batch_size=batch_size, shuffle=True, seed=seed),
        torch.optim.Adam(model.parameters(), learning_rate), num_epochs=num_epochs,
        max_steps_per_epoch=max_steps_per_epoch, device=device)
    return model


_MLP_KEYS = ("body.1.weight", "body.1.bias", "body.3.weight", "body.3.bias", "head.weight", "head.bias")


def _check_permutation(permutation: torch.Tensor, size: int, name: str) -> torch.Tensor:
    permutation = torch.as_tensor(permutation)
    if permutation.dtype not in (torch.int32, torch.int64) or permutation.shape != (size,):
        raise ValueError(f"{name} must be an integer tensor of shape ({size},), "
                         f"got {permutation.dtype} of shape {tuple(permutation.shape)}")
    if not torch.equal(permutation.sort().values, torch.arange(size, dtype=permutation.dtype)):
        raise ValueError(f"{name} must be a permutation of 0..{size - 1}, got {permutation.tolist()[:8]}...")
    return permutation.long()


def permute_hidden_units(model_or_state: nn.Module | StateDict,
                         permutations: tuple[torch.Tensor, torch.Tensor] | None = None,
                         generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    r"""Reorder the hidden units of a :func:`make_digit_mlp` network without changing its function.

    With :math:`h_1 = \mathrm{relu}(W_1 x + b_1)`, :math:`h_2 = \mathrm{relu}(W_2 h_1 + b_2)` and
    logits :math:`W_3 h_2 + b_3`, permutation matrices :math:`P, Q` give the same network as
    :math:`(P W_1, P b_1)`, :math:`(Q W_2 P^\top, Q b_2)`, :math:`(W_3 Q^\top, b_3)`: rows of
    layer 1 and columns of layer 2 are reordered together, rows of layer 2 and columns of the head
    together. The outputs are equal, but the weights are a different point in weight space.

    Args:
        model_or_state: a network built by :func:`make_digit_mlp`, or its state dict (keys
            ``body.1.*``, ``body.3.*``, ``head.*``).
        permutations: ``(first, second)``: int tensors, permutations of the units of the first
            and second hidden layer. Default: random ones drawn with ``generator``.
        generator: random source for the default permutations (``None``: the global one).

    Returns:
        A new state dict with the same keys and shapes.

    Raises:
        ValueError: if a key of the MLP is missing or an unexpected key is present, if the shapes
            do not chain, or if ``permutations`` are not permutations of the right size.

    Example:
        >>> net = make_digit_mlp(3, hidden_size=4)
        >>> permuted = make_digit_mlp(3, hidden_size=4)
        >>> _ = permuted.load_state_dict(permute_hidden_units(net, generator=torch.Generator().manual_seed(0)))
        >>> x = torch.randn(2, 1, 28, 28)
        >>> torch.allclose(net(x), permuted(x), atol=1e-6)
        True
    """
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    if not isinstance(state, Mapping):
        raise TypeError(f"expected an nn.Module or a state dict, got {type(model_or_state).__name__}")
    for key in _MLP_KEYS:
        if key not in state:
            raise ValueError(f"not a make_digit_mlp state dict: missing key {key!r} (expected {list(_MLP_KEYS)})")
    unexpected = sorted(set(state) - set(_MLP_KEYS))
    if unexpected:
        raise ValueError(f"not a make_digit_mlp state dict: unexpected keys {unexpected[:5]}")
    first_size, second_size = state["body.1.weight"].shape[0], state["body.3.weight"].shape[0]
    if (state["body.3.weight"].shape[1] != first_size or state["head.weight"].shape[1] != second_size
            or state["body.1.bias"].shape != (first_size,) or state["body.3.bias"].shape != (second_size,)):
        raise ValueError("hidden sizes do not chain: "
                         + ", ".join(f"{key} {tuple(state[key].shape)}" for key in _MLP_KEYS))
    if permutations is None:
        permutations = (torch.randperm(first_size, generator=generator),
                        torch.randperm(second_size, generator=generator))
    if len(permutations) != 2:
        raise ValueError(f"expected two permutations (one per hidden layer), got {len(permutations)}")
    first = _check_permutation(permutations[0], first_size, "permutations[0]")
    second = _check_permutation(permutations[1], second_size, "permutations[1]")
    return {
        "body.1.weight": state["body.1.weight"][first].clone(),
        "body.1.bias": state["body.1.bias"][first].clone(),
        "body.3.weight": state["body.3.weight"][second][:, first].clone(),
        "body.3.bias": state["body.3.bias"][second].clone(),
        "head.weight": state["head.weight"][:, second].clone(),
        "head.bias": state["head.bias"].clone(),
    }
