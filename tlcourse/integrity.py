"""Whether a cached file is complete: its publisher's digest where one exists, its format's own
structure otherwise.

A file that exists is not yet a cache entry: a killed download or copy leaves a truncated file with
the right name. :func:`tlcourse.assets.is_cached` calls these checks so that an asset counts as
cached only when every file is whole. Digests are computed once per file version (path, size and
modification time) per process, because VGG16's 528 MB take about a second to hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import struct
import zipfile
from pathlib import Path

from tlcourse.checks import check_path

__all__ = ["file_digest", "digest_matches", "write_sidecar", "sidecar_matches", "safetensors_complete",
           "zip_complete", "hub_file_complete", "cifar10_batches_complete", "unverified_cifar10_class"]

_DIGESTS: dict[tuple[str, str, int, int], str] = {}  # (algorithm, path, size, mtime_ns) -> hex digest


def file_digest(path: str | Path, algorithm: str = "sha256", prefix: bytes = b"") -> str:
    """The hex digest of ``prefix`` followed by the file's bytes, read in 1 MiB chunks.

    Args:
        path: an existing file.
        algorithm: a :mod:`hashlib` name (``"sha256"``, ``"md5"``, ``"sha1"``).
        prefix: bytes hashed before the file (git hashes ``b"blob SIZE\\0"`` first).

    Returns:
        The lowercase hex digest.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as handle:
        ...     file_digest(handle.name, "md5")
        'd41d8cd98f00b204e9800998ecf8427e'
    """
    path = check_path("path", path)
    if not path.is_file():
        raise ValueError(f"path must be an existing file, got {str(path)!r}")
    if algorithm not in hashlib.algorithms_available:
        raise ValueError(f"algorithm must be a hashlib name such as 'sha256' or 'md5', got {algorithm!r}")
    status = path.stat()
    key = (algorithm + prefix.hex(), str(path.resolve()), status.st_size, status.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.new(algorithm, prefix)
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def digest_matches(path: str | Path, expected: str, algorithm: str = "sha256") -> bool:
    """Whether ``path`` is a file whose digest starts with ``expected`` (torch hub names carry 8 hex digits).

    Args:
        path: the file.
        expected: the published digest, or its first characters (at least 8).
        algorithm: a :mod:`hashlib` name.

    Returns:
        False for a missing file or a mismatch.

    Example:
        >>> digest_matches("/no/such/file", "d41d8cd9", "md5")
        False
    """
    path = check_path("path", path)
    if len(expected) < 8:
        raise ValueError(f"expected must hold at least 8 hex digits, got {expected!r}")
    return Path(path).is_file() and file_digest(path, algorithm).startswith(expected.lower())


def write_sidecar(path: str | Path, digest: str) -> Path:
    """Write ``PATH.sha256`` holding ``digest`` (of ``path``'s content), atomically.

    Args:
        path: the file the digest belongs to.
        digest: its SHA-256, e.g. from :func:`file_digest` before the file took its name.

    Returns:
        The sidecar's path.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     file = Path(folder) / "a.txt"
        ...     _ = file.write_text("abc")
        ...     _ = write_sidecar(file, file_digest(file))
        ...     sidecar_matches(file)
        True
    """
    path = check_path("path", path)
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"digest must be 64 lowercase hex digits (a SHA-256), got {digest!r}")
    sidecar = Path(f"{path}.sha256")
    temporary = sidecar.with_name(f".{sidecar.name}.tmp")
    temporary.write_text(digest + "\n")
    os.replace(temporary, sidecar)  # atomic: the old sidecar or the new one
    return sidecar


def sidecar_matches(path: str | Path) -> bool:
    """Whether ``path`` and its ``PATH.sha256`` (from :func:`write_sidecar`) both exist and agree.

    Args:
        path: the file.

    Returns:
        False for a missing file or sidecar, or a digest that differs (a truncated or changed file).

    Example:
        >>> sidecar_matches("/no/such/train.jsonl")
        False
    """
    path = check_path("path", path)
    try:
        expected = Path(f"{path}.sha256").read_text().strip()
    except OSError:
        return False
    return Path(path).is_file() and file_digest(path) == expected


def safetensors_complete(path: str | Path) -> bool:
    """Whether a ``.safetensors`` file holds its whole header and every tensor its header announces.

    Args:
        path: the file.

    Returns:
        True if the 8-byte header length, the JSON header and the data's end offset match the size.

    Example:
        >>> safetensors_complete("/no/such/file.safetensors")
        False
    """
    path = check_path("path", path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length)) if 8 + length <= size else None
    except (OSError, struct.error, ValueError):
        return False
    if not isinstance(header, dict):
        return False
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    return 8 + length + max(ends, default=0) == size


def zip_complete(path: str | Path) -> bool:
    """Whether a zip file (``torch.save``'s format) is whole: its central directory and CRCs check out.

    Args:
        path: the file.

    Returns:
        True if every member reads back with its CRC.

    Example:
        >>> zip_complete("/no/such/file.pth")
        False
    """
    path = check_path("path", path)
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None  # reads every member: the directory sits at the end
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


def hub_file_complete(path: str | Path) -> bool:
    """Whether a file in the Hugging Face hub cache is whole.

    The hub stores a snapshot's files as links to blobs named by their digest: the SHA-256 of the
    content for large (LFS) files, git's SHA-1 of ``b"blob SIZE\\0" + content`` for the others. A
    file that is not such a blob (written in place, as the rehearsal does) is checked by its format.

    Args:
        path: a file in a snapshot folder.

    Returns:
        True if its digest matches its blob name, or its format is whole.

    Example:
        >>> hub_file_complete("/no/such/config.json")
        False
    """
    path = check_path("path", path)
    if not path.is_file():
        return False
    blob = path.resolve().name
    if re.fullmatch(r"[0-9a-f]{64}", blob):
        return file_digest(path, "sha256") == blob
    if re.fullmatch(r"[0-9a-f]{40}", blob):
        return file_digest(path, "sha1", f"blob {path.stat().st_size}\0".encode()) == blob
    if path.suffix == ".safetensors":
        return safetensors_complete(path)
    if path.suffix in (".bin", ".pth", ".pt"):
        return zip_complete(path)
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
            return True
        except (OSError, ValueError):
            return False
    return path.stat().st_size > 0


def cifar10_batches_complete(folder: str | Path, verify_md5: bool = True) -> bool:
    """Whether ``cifar-10-batches-py`` holds all seven files, whole.

    Args:
        folder: the ``cifar-10-batches-py`` folder.
        verify_md5: compare each file with the md5 torchvision's ``CIFAR10`` class publishes; the
            rehearsal's synthetic batches cannot match it, so it passes False and each file is
            checked by unpickling it instead (a truncated pickle fails to load).

    Returns:
        True if every batch file and ``batches.meta`` is present and whole.

    Example:
        >>> cifar10_batches_complete("/no/such/folder")
        False
    """
    from torchvision.datasets import CIFAR10

    folder = check_path("folder", folder)
    files = CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
    if verify_md5:
        return all(digest_matches(folder / name, md5, "md5") for name, md5 in files)
    for name, _ in files:
        try:
            with open(folder / name, "rb") as handle:
                content = pickle.load(handle, encoding="latin1")  # noqa: S301 - the rehearsal's own files
        except (OSError, EOFError, pickle.UnpicklingError, ValueError):
            return False
        if not isinstance(content, dict) or not ({"data", "labels"} <= set(content) or "label_names" in content):
            return False
    return True


def unverified_cifar10_class() -> type:
    """``torchvision.datasets.CIFAR10`` with its md5 checks replaced by whole-pickle checks.

    For the rehearsal's synthetic batches only (:mod:`tlcourse.rehearsal`), which cannot match the
    published md5s; :func:`tlcourse.data.load_cifar10` uses it only while ``TLCOURSE_REHEARSAL`` is
    set, and prints that the md5 check is skipped.

    Returns:
        A subclass of ``CIFAR10``.

    Example:
        >>> unverified_cifar10_class().__name__
        'UnverifiedCIFAR10'
    """
    from torchvision.datasets import CIFAR10

    class UnverifiedCIFAR10(CIFAR10):
        """CIFAR-10 without the md5 checks, for the rehearsal's synthetic files only."""

        def _check_integrity(self) -> bool:  # whole pickles, not the published md5s
            return cifar10_batches_complete(Path(self.root) / self.base_folder, verify_md5=False)

        def _load_meta(self) -> None:  # torchvision's version checks the meta file's md5
            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as handle:
                self.classes = pickle.load(handle, encoding="latin1")[self.meta["key"]]  # noqa: S301
            self.class_to_idx = {name: index for index, name in enumerate(self.classes)}

    return UnverifiedCIFAR10
