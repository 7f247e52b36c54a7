"""Sphinx extension: reuse executed chapters while nothing that can change their numbers changed.

myst-nb's cache (jupyter-cache) keys a notebook on its code cells only. A chapter's numbers also
depend on the ``tlcourse`` package, the pinned requirements and the profile, so this extension
gives each combination of those its own cache folder, ``_build/jupyter-cache/<key>``:

- a prose edit changes no code cell: every chapter comes from the cache;
- an edited code cell changes that chapter's hash: only that chapter runs again;
- an edited ``tlcourse/`` file, requirement or profile changes the key: every chapter runs again.

The key hashes the files under ``tlcourse/``, ``requirements.txt``, ``pyproject.toml`` and the CSV the
settings page reads (``INPUTS``), the
version of every installed distribution, and the report of ``python -m tlcourse doctor`` (the
device, the resolved profile and which assets are cached), computed in the build's own environment,
the one its kernels inherit. Registered under ``sphinx: local_extensions:`` in ``_config.yml``, with
``execute_notebooks: cache``.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

__all__ = ["execution_key", "keep_newest", "restore_cached_outputs", "setup"]

LOGGER = logging.getLogger(__name__)
# benchmarks/results/bert_settings.csv: book/settings.md reads its table from it at run time
INPUTS = ("requirements.txt", "pyproject.toml", "benchmarks/results/bert_settings.csv")
KEPT_FOLDERS = 4  # the cache folders of the last few keys stay, so switching profiles back is free


def _doctor_report() -> str:
    # In a child process: importing torch here would slow down and change the Sphinx process.
    # -P: the installed tlcourse, not a folder of that name in the current directory.
    result = subprocess.run([sys.executable, "-P", "-m", "tlcourse", "doctor"], capture_output=True, text=True,
                            check=True)
    # every installed distribution's version, not only the few the doctor prints
    versions = sorted(f"{dist.metadata['Name']}=={dist.version}" for dist in metadata.distributions())
    return result.stdout + "\n".join(versions)


def execution_key(root: Path, report: str | None = None) -> str:
    """The hash of what a chapter's numbers depend on besides its own code cells.

    Args:
        root: the repository root (``tlcourse/`` and the requirements are read from it).
        report: the environment's description; ``python -m tlcourse doctor``'s when None.
    """
    digest = hashlib.sha256()
    files = sorted((root / "tlcourse").rglob("*.py")) + [root / name for name in INPUTS]
    for path in files:
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update((report if report is not None else _doctor_report()).encode())
    return digest.hexdigest()[:16]


def keep_newest(folder: Path, count: int) -> list[Path]:
    """Delete all but the ``count`` most recently used subfolders of ``folder``; return the deleted."""
    folders = sorted((path for path in folder.iterdir() if path.is_dir()), key=lambda path: path.stat().st_mtime,
                     reverse=True)
    for path in folders[count:]:
        shutil.rmtree(path, ignore_errors=True)
    return folders[count:]


def choose_cache(app: Sphinx, config: Config) -> None:
    """Point myst-nb's execution cache at the folder of this build's key."""
    if config.nb_execution_mode != "cache":
        return
    root = Path(app.srcdir)
    key = execution_key(root)
    cache = root / "_build" / "jupyter-cache" / key
    cache.mkdir(parents=True, exist_ok=True)
    os.utime(cache)  # used now: keep_newest keeps it
    keep_newest(cache.parent, KEPT_FOLDERS)
    config.nb_execution_cache_path = str(cache)
    LOGGER.info(f"execution cache key {key} (tlcourse/, requirements, profile, assets)")


def restore_cached_outputs(notebooks: list[Path], cache_path: str) -> list[Path]:
    """Put the cached outputs back into the written notebooks that have none; return those rewritten.

    On a cache hit myst-nb 1.4 renders the page from the cached outputs but writes the notebook it
    read, without them, to ``jupyter_execute/`` and ``_sources/``: the download, the Colab link, the
    slide decks and the release archive would then hold a notebook with no outputs.
    """
    import nbformat
    from jupyter_cache import get_cache

    cache, rewritten = get_cache(cache_path), []
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        if not code or any(cell.get("outputs") for cell in code):
            continue  # executed in this build, or nothing to restore
        try:
            _, merged = cache.merge_match_into_notebook(notebook)
        except KeyError:  # not in the cache: left as it is
            continue
        nbformat.write(merged, path)
        rewritten.append(path)
    return rewritten


def _restore_after_build(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.config.nb_execution_mode != "cache" or not app.config.nb_execution_cache_path:
        return
    outdir = Path(app.outdir)
    notebooks = sorted((outdir.parent / "jupyter_execute").rglob("*.ipynb")) + sorted(
        (outdir / "_sources").rglob("*.ipynb"))
    restore_cached_outputs(notebooks, app.config.nb_execution_cache_path)


def setup(app: Sphinx) -> dict[str, Any]:
    """Choose the cache folder before myst-nb reads its configuration (at builder-inited)."""
    app.connect("config-inited", choose_cache, priority=900)
    # before the other build-finished handlers (the slide decks, at 900, read jupyter_execute/)
    app.connect("build-finished", _restore_after_build, priority=100)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
