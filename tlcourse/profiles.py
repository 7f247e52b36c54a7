"""Run profiles: how big every chapter's experiments are, chosen once and passed explicitly.

A profile is a frozen dataclass. Chapters call :func:`get_profile` once at the top and pass the
result to every function that needs a size, a device or a precision, so no function reads a
global setting behind the reader's back.

- ``smoke``: every chapter end to end in about a minute on 2 CPU cores; the numbers mean nothing.
  CI uses it. Never touches the network.
- ``cpu``: every chapter in at most 5 minutes on 2 cores and 4 GB, with real pretrained weights
  and real data (offline stand-ins when the canonical assets are missing), so numbers mean something.
- ``gpu``: the full recipes (VGG16 on all of CIFAR-10, bert-base-uncased on a full benchmark) with
  mixed precision. Missing canonical assets are an error, not a silent stand-in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

__all__ = ["Profile", "PROFILES", "get_profile", "PROFILE_ENVIRONMENT_VARIABLE"]

PROFILE_ENVIRONMENT_VARIABLE = "TLCOURSE_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Sizes and switches for one way of running the book.

    Attributes:
        name: ``"smoke"``, ``"cpu"`` or ``"gpu"``.
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``; where tensors and models go.
        use_standins: if True, a canonical asset that is not cached is replaced by its offline
            stand-in (announced in one printed line); if False, it is an error.
        allow_download: whether loaders may try the network for canonical assets.
        mixed_precision: whether ``fit`` runs the forward pass under CUDA autocast.
        max_train_examples: cap on training examples per experiment (``None`` means all).
        max_eval_examples: cap on evaluation examples per experiment (``None`` means all).
        num_epochs: default number of epochs for one fine-tuning run.
        batch_size: default batch size for training.
        image_size: side in pixels that images are resized to for ImageNet backbones.
        max_length: maximum number of tokens per text.
        num_seeds: how many seeds an experiment repeats over to report a spread.
        max_steps_per_epoch: cap on optimiser steps per epoch (``None`` means no cap).
        num_workers: DataLoader worker processes (0 keeps runs deterministic and light).

    Example:
        >>> profile = get_profile("smoke")
        >>> profile.device
        'cpu'
    """

    name: str
    device: str
    use_standins: bool
    allow_download: bool
    mixed_precision: bool
    max_train_examples: int | None
    max_eval_examples: int | None
    num_epochs: int
    batch_size: int
    image_size: int
    max_length: int
    num_seeds: int
    max_steps_per_epoch: int | None
    num_workers: int

    def cap(self, count: int, split: str = "train") -> int:
        """Return ``count`` limited by this profile's cap for ``split``.

        Args:
            count: the number of examples available.
            split: ``"train"`` or ``"eval"``.

        Returns:
            ``min(count, cap)``, or ``count`` when the profile has no cap.

        Example:
            >>> get_profile("smoke").cap(10_000) <= 10_000
            True
        """
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        limit = self.max_train_examples if split == "train" else self.max_eval_examples
        return count if limit is None else min(count, limit)


def _best_device() -> str:
    # CUDA first (the gpu profile's target), then Apple's MPS, else the CPU.
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        device="cpu",
        use_standins=True,
        allow_download=False,
        mixed_precision=False,
        max_train_examples=64,
        max_eval_examples=64,
        num_epochs=1,
        batch_size=16,
        image_size=32,
        max_length=32,
        num_seeds=2,
        max_steps_per_epoch=3,
        num_workers=0,
    ),
    "cpu": Profile(
        name="cpu",
        device="cpu",
        use_standins=True,
        allow_download=True,
        mixed_precision=False,
        max_train_examples=2000,
        max_eval_examples=1000,
        num_epochs=2,
        batch_size=32,
        image_size=64,
        max_length=64,
        num_seeds=3,
        max_steps_per_epoch=None,
        num_workers=0,
    ),
    "gpu": Profile(
        name="gpu",
        device="cuda",
        use_standins=False,
        allow_download=True,
        mixed_precision=True,
        max_train_examples=None,
        max_eval_examples=None,
        num_epochs=3,
        batch_size=128,
        image_size=224,
        max_length=128,
        num_seeds=3,
        max_steps_per_epoch=None,
        num_workers=4,
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """Choose the profile once: by argument, else ``$TLCOURSE_PROFILE``, else by hardware.

    Without a name and without the environment variable, the profile is ``gpu`` when CUDA is
    available and ``cpu`` otherwise. On a machine without CUDA, ``gpu`` runs on MPS or the CPU
    (slowly) rather than failing, since the recipe is still correct there.

    Args:
        name: ``"smoke"``, ``"cpu"``, ``"gpu"`` or ``None``.

    Returns:
        The frozen :class:`Profile`.

    Raises:
        ValueError: if the name is not one of the known profiles.

    Example:
        >>> get_profile("cpu").name
        'cpu'
    """
    if name is None:
        name = os.environ.get(PROFILE_ENVIRONMENT_VARIABLE) or None
    if name is None:
        name = "gpu" if torch.cuda.is_available() else "cpu"
    if not isinstance(name, str) or name.strip().lower() not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}: expected one of {sorted(PROFILES)} "
            f"(set {PROFILE_ENVIRONMENT_VARIABLE} or pass the name)"
        )
    profile = PROFILES[name.strip().lower()]
    if profile.name == "gpu" and profile.device == "cuda" and not torch.cuda.is_available():
        profile = replace(profile, device=_best_device(), mixed_precision=False)
    return profile
