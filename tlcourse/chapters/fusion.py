"""The fusion chapter's experiment: a small digit MLP, pretrained, probed and fine-tuned.

Everything ``book/fusion.md`` trains comes from here, so that the main experiment and the narrow
loss-barrier experiment run the same recipe:

- :class:`FusionSettings` and :func:`settings`: the sizes for each profile;
- :func:`make_digit_mlp`: an MLP with a swappable ``head``;
- :func:`pretrain_and_probe`: pretrain on the source digits, then fit a new head on the frozen body
  (a linear probe, the shared start of every fine-tuning run);
- :func:`fine_tune_copy`: one full fine-tuning run from a copy of the probe;
- :func:`permute_hidden_units`: the same function at another point of weight space.

The fusion operations themselves (interpolation, soups, ensembles) are in :mod:`tlcourse.fusion`.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tlcourse.data import make_loader
from tlcourse.fusion import StateDict
from tlcourse.profiles import Profile, settings_for
from tlcourse.runtime import seed_everything
from tlcourse.train import fit
from tlcourse.transfer import freeze, unfreeze

__all__ = [
    "FusionSettings",
    "SETTINGS",
    "settings",
    "make_digit_mlp",
    "pretrain_and_probe",
    "fine_tune_copy",
    "permute_hidden_units",
]


@dataclass(frozen=True)
class FusionSettings:
    """Sizes of the fusion chapter's experiments for one profile.

    Attributes:
        pretrain_epochs: epochs of pretraining on digits 0-4.
        finetune_epochs: epochs of each fine-tuning run on digits 5-9.
        probe_epochs: epochs of the linear probe (head only).
        max_steps_per_epoch: cap on steps per epoch (``None``: no cap).
        num_soup_runs: fine-tuning runs (seeds and learning rates) that go into the soups.
        num_alphas: interpolation coefficients in the WiSE-FT sweep.
        hidden_size: width of the MLP's hidden layers.
        rotation_degrees: rotation of the shifted test set.
        barrier_hidden_size: width of the narrow MLP of the loss-barrier experiment (narrow
            networks show the barrier between basins most clearly).
        barrier_epochs: epochs of each narrow MLP trained from a random initialisation.
        num_barrier_models: narrow MLPs trained from random initialisations (every pair is
            interpolated), and random permutations of the fine-tuned one.

        batch_size: examples per step.
        max_train_examples: cap on source and target training examples.
        max_eval_examples: cap on validation and test examples.
    """

    pretrain_epochs: int
    finetune_epochs: int
    probe_epochs: int
    max_steps_per_epoch: int | None
    num_soup_runs: int
    num_alphas: int
    hidden_size: int
    rotation_degrees: float
    barrier_hidden_size: int
    barrier_epochs: int
    num_barrier_models: int
    batch_size: int
    max_train_examples: int
    max_eval_examples: int


SETTINGS: dict[str, FusionSettings] = {
    "smoke": FusionSettings(pretrain_epochs=1, finetune_epochs=1, probe_epochs=1, max_steps_per_epoch=3,
                            num_soup_runs=4, num_alphas=11, hidden_size=64, rotation_degrees=35.0,
                            barrier_hidden_size=16, barrier_epochs=1, num_barrier_models=2, batch_size=16,
                            max_train_examples=64, max_eval_examples=64),
    "cpu": FusionSettings(pretrain_epochs=6, finetune_epochs=4, probe_epochs=3, max_steps_per_epoch=None,
                          num_soup_runs=5, num_alphas=11, hidden_size=256, rotation_degrees=35.0,
                          barrier_hidden_size=16, barrier_epochs=15, num_barrier_models=4, batch_size=32,
                          max_train_examples=2000, max_eval_examples=1000),
    "gpu": FusionSettings(pretrain_epochs=10, finetune_epochs=6, probe_epochs=4, max_steps_per_epoch=None,
                          num_soup_runs=6, num_alphas=21, hidden_size=512, rotation_degrees=35.0,
                          barrier_hidden_size=16, barrier_epochs=20, num_barrier_models=4, batch_size=128,
                          max_train_examples=10**9, max_eval_examples=10**9),
}


def settings(profile: Profile) -> FusionSettings:
    """The chapter's sizes for ``profile`` (from :data:`SETTINGS`).

    Args:
        profile: a :class:`tlcourse.profiles.Profile`.

    Returns:
        The :class:`FusionSettings`.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> settings(get_profile("cpu")).num_soup_runs
        5
    """
    return settings_for(SETTINGS, profile)


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
    body = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden_size), nn.ReLU(),
                         nn.Linear(hidden_size, hidden_size), nn.ReLU())
    return nn.Sequential(OrderedDict(body=body, head=nn.Linear(hidden_size, num_classes)))


def pretrain_and_probe(hidden_size: int, source_loader: DataLoader, target_loader: DataLoader,
                       config: FusionSettings, num_target_classes: int = 5, seed: int = 0,
                       device: torch.device | str = "cpu") -> nn.Sequential:
    """Pretrain a digit MLP on the source task, then fit a new head on its frozen body.

    The result is the linear probe: the pretrained body with a head for the target classes. Every
    fine-tuning run of the chapter starts from it, so they share the pretrained body *and* the
    head's starting point (the LP-FT recipe).

    Args:
        hidden_size: width of the MLP.
        source_loader: source batches (images, labels); the source head has as many outputs as
            ``num_target_classes`` (digits 0-4 and 5-9 are both five classes).
        target_loader: target training batches for the probe.
        config: epochs and step caps (``pretrain_epochs``, ``probe_epochs``, ``max_steps_per_epoch``).
        num_target_classes: outputs of the new head.
        seed: seeds the initialisation (one call of :func:`tlcourse.runtime.seed_everything`).
        device: where to train.

    Returns:
        The probe, every parameter trainable again.

    Example:
        >>> # probe = pretrain_and_probe(256, source_loader, train_loader, config)
    """
    seed_everything(seed)
    pretrained = make_digit_mlp(num_classes=num_target_classes, hidden_size=hidden_size)
    fit(pretrained, source_loader, torch.optim.Adam(pretrained.parameters(), 1e-3), num_epochs=config.pretrain_epochs,
        max_steps_per_epoch=config.max_steps_per_epoch, device=device)
    probe = copy.deepcopy(pretrained)
    probe.head = nn.Linear(hidden_size, num_target_classes)  # a fresh head for the target task
    freeze(probe, "body")
    fit(probe, target_loader, torch.optim.Adam(probe.head.parameters(), 1e-2), num_epochs=config.probe_epochs,
        max_steps_per_epoch=config.max_steps_per_epoch, device=device)
    unfreeze(probe)
    return probe


def fine_tune_copy(probe: nn.Module, train_set: Dataset, learning_rate: float, seed: int, batch_size: int,
                   num_epochs: int, max_steps_per_epoch: int | None = None,
                   device: torch.device | str = "cpu") -> nn.Module:
    """Fine-tune every layer of a copy of ``probe`` with Adam; ``probe`` itself is not changed.

    Args:
        probe: the starting point (for example from :func:`pretrain_and_probe`).
        train_set: target training examples.
        learning_rate: Adam's learning rate.
        seed: seeds the run (dropout, if any) and the order of the batches.
        batch_size: examples per step.
        num_epochs: epochs.
        max_steps_per_epoch: cap on steps per epoch.
        device: where to train.

    Returns:
        The fine-tuned copy.

    Example:
        >>> # runs = [fine_tune_copy(probe, train_set, lr, seed, 64, 4) for seed, lr in enumerate([1e-3, 5e-4])]
    """
    seed_everything(seed)
    model = copy.deepcopy(probe)
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
