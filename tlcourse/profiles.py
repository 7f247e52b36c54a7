"""Run profiles: where and how the chapters run (device, precision, asset policy, claim checking).

Chapters call :func:`get_profile` once and pass the result on. Sizes live in each chapter module's
``SETTINGS`` table, read with :func:`settings_for`. ``smoke``: every chapter in about a minute, numbers
meaningless (CI). ``cpu``: at most 5 minutes a chapter on 2 cores, real weights and data (offline
stand-ins when the canonical assets are missing). ``gpu``: the full recipes; a missing canonical asset is an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import TypeVar

import torch

from tlcourse.checks import check_int, describe
from tlcourse.runtime import choose_device


@dataclass(frozen=True)
class Profile:
    """Where and how the book runs; ``sizes_from`` takes the chapters' sizes from another row (``rehearsal``: ``smoke``)."""

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
    """The profile named, else ``$TLCOURSE_PROFILE``, else ``gpu`` with CUDA and ``cpu`` without.

    ``gpu`` on a machine without CUDA runs on MPS or the CPU, without mixed precision.
    """
    if name is None:
        name = os.environ.get("TLCOURSE_PROFILE") or ("gpu" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, str) or name.strip().lower() not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: expected one of {sorted(PROFILES)} "
                         "(set TLCOURSE_PROFILE or pass the name)")
    profile = PROFILES[name.strip().lower()]
    if profile.device == "cuda" and not torch.cuda.is_available():
        profile = replace(profile, device=choose_device().type, mixed_precision=False)
    return profile


Settings = TypeVar("Settings")


def settings_for(table: Mapping[str, Settings], profile: Profile) -> Settings:
    """``table[profile.name]``: a chapter's sizes, the one place where a profile's name picks numbers.

    A profile with ``sizes_from`` (the rehearsal) takes that row, with every field naming an offline
    stand-in replaced by the canonical asset it stands in for, so the canonical path runs at small sizes.
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
