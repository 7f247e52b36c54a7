"""The versions a chapter depends on, printed in its first cell, with a one-line fix for a known-bad one."""

from __future__ import annotations

import re
from importlib import metadata

__all__ = ["supported_versions", "version_report"]


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def supported_versions() -> dict[str, tuple[str | None, str | None]]:
    """The bounds ``pyproject.toml`` declares for tlcourse's dependencies: name to (``>=``, ``<``)."""
    bounds = {}
    for requirement in metadata.requires("tlcourse") or []:
        match = re.match(r"([A-Za-z0-9_.-]+)\s*(?:\[[^\]]*\])?\s*([^;]*)", requirement)
        if not match or "extra ==" in requirement:
            continue
        lower, upper = re.search(r">=\s*([\w.]+)", match[2]), re.search(r"<\s*([\w.]+)", match[2])
        if lower or upper:
            bounds[match[1].lower()] = (lower[1] if lower else None, upper[1] if upper else None)
    return bounds


def version_report(packages: list[str] | tuple[str, ...]) -> str:
    """One line of ``name version`` pairs, then one line per package below the supported minimum.

    Args:
        packages: distribution names, e.g. ``["torch", "transformers"]``.
    """
    if isinstance(packages, str) or not all(isinstance(name, str) for name in packages):
        raise TypeError(f"packages must be a list of distribution names, got {packages!r}")
    bounds = supported_versions()
    found, problems = [], []
    for name in packages:
        lower, upper = bounds.get(name.lower(), (None, None))
        wanted = ",".join(part for part in (lower and f">={lower}", upper and f"<{upper}") if part)
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            found.append(f"{name} missing")
            problems.append(f"{name} is not installed: pip install '{name}{wanted}'")
            continue
        found.append(f"{name} {version}")
        if lower and _release(version) < _release(lower):
            problems.append(f"{name} {version} is older than this book supports: pip install '{name}{wanted}'")
        if upper and _release(version) >= _release(upper):
            problems.append(f"{name} {version} is newer than this book was tested with: pip install '{name}{wanted}'")
    return "\n".join(["versions: " + ", ".join(found)] + problems)
