"""Run profiles: where and how the chapters run, chosen once and passed explicitly.

A profile is a frozen dataclass of what is generic: the device, the precision, the asset policy
(stand-ins or not, downloads or not) and whether lessons are checked. Chapters call
:func:`get_profile` once at the top and pass the result explicitly, so no function reads a global
setting behind the reader's back. Sizes are not here: each chapter module keeps one table of its
own sizes per profile (``SETTINGS``), read through :func:`settings_for`.

- ``smoke``: every chapter end to end in about a minute on 2 CPU cores; the numbers mean nothing.
  CI uses it. Never touches the network.
- ``cpu``: every chapter in at most 5 minutes on 2 cores and 4 GB, with real pretrained weights
  and real data (offline stand-ins when the canonical assets are missing), so numbers mean something.
- ``gpu``: the full recipes (VGG16 on all of CIFAR-10, bert-base-uncased on a full benchmark) with
  mixed precision. Missing canonical assets are an error, not a silent stand-in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import TypeVar

import torch

from tlcourse.checks import check_int, describe
from tlcourse.runtime import choose_device

__all__ = [
    "settings_for",
    "PROFILE_ENVIRONMENT_VARIABLE",
    "Profile",
    "PROFILES",
    "get_profile",
]

PROFILE_ENVIRONMENT_VARIABLE = "TLCOURSE_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Where and how the book runs: device, precision, asset policy, claim checking.

    Attributes:
        name: ``"smoke"``, ``"cpu"``, ``"gpu"`` or ``"rehearsal"``.
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``; where tensors and models go.
        use_standins: if True, a canonical asset that is not cached is replaced by its offline
            stand-in (announced in one printed line); if False, it is an error.
        allow_download: whether loaders may try the network for canonical assets.
        mixed_precision: whether ``fit`` runs the forward pass under CUDA autocast.
        num_workers: DataLoader worker processes (0 keeps runs deterministic and light).
        check_claims: whether a chapter's stated lessons are checked (:func:`tlcourse.claims.expect`);
            off in ``smoke``, whose numbers mean nothing.
        sizes_from: read the chapters' sizes from this profile's row of their settings tables
            (the ``rehearsal`` runs the ``gpu`` code path at ``smoke`` sizes); ``None``: its own row.

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
    num_workers: int
    check_claims: bool = True
    sizes_from: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {describe(self.name)}")
        check_int("num_workers", self.num_workers, minimum=0)


PROFILES: dict[str, Profile] = {profile.name: profile for profile in [
    Profile(name="smoke", device="cpu", use_standins=True, allow_download=False, mixed_precision=False, num_workers=0,
            check_claims=False),
    Profile(name="cpu", device="cpu", use_standins=True, allow_download=True, mixed_precision=False, num_workers=0),
    Profile(name="gpu", device="cuda", use_standins=False, allow_download=True, mixed_precision=True, num_workers=4),
    # The gpu profile's code path (canonical assets only, no downloads) at smoke sizes, on the CPU,
    # against synthetic canonical assets (tlcourse.rehearsal): make test runs every chapter in it.
    Profile(name="rehearsal", device="cpu", use_standins=False, allow_download=False, mixed_precision=False,
            num_workers=0, check_claims=False, sizes_from="smoke"),
]}


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
    if profile.device == "cuda" and not torch.cuda.is_available():
        profile = replace(profile, device=choose_device().type, mixed_precision=False)
    return profile


Settings = TypeVar("Settings")


def settings_for(table: Mapping[str, Settings], profile: Profile) -> Settings:
    """A chapter's sizes for ``profile``: the one place where a profile's name picks numbers.

    Each chapter module keeps one table ``SETTINGS = {"smoke": ..., "cpu": ..., "gpu": ...}`` of
    frozen dataclasses with named sizes; this looks the profile up in it. A profile with
    ``sizes_from`` (the ``rehearsal``) takes that row, with every field that names an offline
    stand-in asset replaced by the canonical asset it stands in for, so that the canonical code
    path runs at small sizes.

    Args:
        table: settings per profile name.
        profile: the run profile.

    Returns:
        ``table[profile.name]`` (or the adapted ``table[profile.sizes_from]``).

    Raises:
        ValueError: if the table has no entry for the profile.

    Example:
        >>> settings_for({"smoke": 2, "cpu": 3, "gpu": 4}, get_profile("smoke"))
        2
    """
    if not isinstance(table, Mapping) or not isinstance(profile, Profile):
        raise TypeError(f"table must be a chapter's SETTINGS dict and profile a Profile, got "
                        f"{type(table).__name__} and {describe(profile)}")
    key = profile.sizes_from or profile.name
    if key not in table:
        raise ValueError(f"the settings table has no entry for profile {key!r}: expected one of {sorted(table)}")
    row = table[key]
    if profile.sizes_from is None or not is_dataclass(row):
        return row
    from tlcourse.assets import ASSETS  # the registry says which asset stands in for which

    canonical_of = {asset.standin: asset.name for asset in ASSETS.values() if asset.standin}
    changes = {field.name: canonical_of[value] for field in fields(row)
               if isinstance(value := getattr(row, field.name), str) and value in canonical_of}
    return replace(row, **changes)
