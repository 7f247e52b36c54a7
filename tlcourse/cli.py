"""Command line: ``python -m tlcourse doctor`` and ``python -m tlcourse fetch NAME|--all``."""

from __future__ import annotations

import argparse
import platform
import sys
from importlib import metadata

from tlcourse.assets import (
    ASSETS,
    AssetUnavailableError,
    cache_dir,
    get_asset,
    is_cached,
)
from tlcourse.data import download_asset



def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def doctor() -> str:
    """Describe this machine for the book: versions, device, profile, assets."""
    import torch

    from tlcourse.profiles import get_profile

    lines = [f"python       {platform.python_version()} ({platform.machine()})"]
    for package in ("torch", "torchvision", "transformers", "safetensors", "jupyter-book"):
        lines.append(f"{package:<12} {_version(package)}")
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    lines.append(f"device       {cuda}")
    try:
        profile = get_profile()
        lines.append(f"profile      {profile.name} (device {profile.device}; set TLCOURSE_PROFILE to change)")
    except ValueError as error:
        lines.append(f"profile      ERROR: {error}")
    lines.append(f"cache        {cache_dir()}")
    lines.append("assets:")
    for asset in ASSETS.values():
        state = "available" if is_cached(asset.name) else "missing"
        role = f"canonical, stand-in {asset.standin}" if asset.canonical else "offline stand-in"
        lines.append(f"  {asset.name:<28} {state:<10} {asset.size:>8}  ({role})")
    return "\n".join(lines)


def fetch(name: str) -> None:
    """Download one canonical asset into its cache (stand-ins are installed by pip)."""
    asset = get_asset(name)
    if not asset.canonical:
        print(f"{name} is an offline stand-in installed with pip; nothing to fetch")
        return
    print(f"fetching {name} ({asset.size}) into {asset.cache} ...")
    download_asset(name)
    print(f"{name}: done")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tlcourse``."""
    parser = argparse.ArgumentParser(prog="python -m tlcourse", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="versions, device, profile and which assets are available")
    fetch_parser = commands.add_parser("fetch", help="pre-download canonical assets into the cache")
    fetch_parser.add_argument("name", nargs="?", choices=sorted(ASSETS), help="asset to fetch")
    fetch_parser.add_argument("--all", action="store_true", help="fetch every canonical asset")
    arguments = parser.parse_args(argv)
    if arguments.command == "doctor":
        print(doctor())
        return 0
    if not arguments.all and arguments.name is None:
        parser.error("fetch needs an asset NAME or --all")
    names = [a.name for a in ASSETS.values() if a.canonical] if arguments.all else [arguments.name]
    failed = []
    for name in names:
        try:
            fetch(name)
        except (OSError, RuntimeError, AssetUnavailableError) as error:  # no network, disk full, bad checksum
            print(f"{name}: FAILED ({error})", file=sys.stderr)
            failed.append(name)
    return 1 if failed else 0
