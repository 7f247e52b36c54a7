"""Whether a cached file is whole: its publisher's digest where one exists, its format's structure otherwise.

A killed download leaves a truncated file with the right name, so :func:`tlcourse.assets.is_cached`
counts a file only when these checks pass. Digests are remembered per file version (path, size,
modification time) per process: VGG16's 528 MB take about a second to hash.
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

__all__ = ["file_digest", "digest_matches", "write_sidecar", "sidecar_matches", "safetensors_complete",
           "zip_complete", "hub_file_complete", "cifar10_batches_complete", "unverified_cifar10_class"]

_DIGESTS: dict[tuple[str, str, int, int], str] = {}  # (algorithm + prefix, path, size, mtime_ns) -> hex digest


def file_digest(path: str | Path, algorithm: str = "sha256", prefix: bytes = b"") -> str:
    """The hex digest of ``prefix`` followed by the file's bytes (git hashes ``b"blob SIZE\\0"`` first)."""
    path = Path(path)
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
    """Whether ``path`` is a file whose digest starts with ``expected`` (torch hub names carry 8 hex digits)."""
    return Path(path).is_file() and file_digest(path, algorithm).startswith(expected.lower())


def write_sidecar(path: str | Path, digest: str) -> Path:
    """Write ``PATH.sha256`` holding ``digest`` of ``path``'s content, atomically; return its path."""
    sidecar = Path(f"{path}.sha256")
    temporary = sidecar.with_name(f".{sidecar.name}.tmp")
    temporary.write_text(digest + "\n")
    os.replace(temporary, sidecar)
    return sidecar


def sidecar_matches(path: str | Path) -> bool:
    """Whether ``path`` and its ``PATH.sha256`` both exist and agree."""
    try:
        expected = Path(f"{path}.sha256").read_text().strip()
    except OSError:
        return False
    return Path(path).is_file() and file_digest(path) == expected


def safetensors_complete(path: str | Path) -> bool:
    """Whether a ``.safetensors`` file holds its whole header and exactly the bytes its header announces."""
    try:
        size = Path(path).stat().st_size
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
    """Whether a zip file (``torch.save``'s format) reads back whole, every member with its CRC."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


def hub_file_complete(path: str | Path) -> bool:
    """Whether a file of the Hugging Face hub cache is whole: its digest matches its blob's name, else its format checks out.

    Large (LFS) blobs are named by the SHA-256 of their content, others by git's SHA-1.
    """
    path = Path(path)
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
    """Whether ``cifar-10-batches-py`` holds its seven files whole: by torchvision's md5s, or (the rehearsal's synthetic files) by unpickling."""
    from torchvision.datasets import CIFAR10

    folder = Path(folder)
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
    """``torchvision.datasets.CIFAR10`` with whole-pickle checks instead of md5s, for the rehearsal's synthetic batches only."""
    from torchvision.datasets import CIFAR10

    class UnverifiedCIFAR10(CIFAR10):
        """CIFAR-10 without the md5 checks, for the rehearsal's synthetic files only."""

        def _check_integrity(self) -> bool:
            return cifar10_batches_complete(Path(self.root) / self.base_folder, verify_md5=False)

        def _load_meta(self) -> None:  # torchvision's version checks the meta file's md5
            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as handle:
                self.classes = pickle.load(handle, encoding="latin1")[self.meta["key"]]  # noqa: S301
            self.class_to_idx = {name: index for index, name in enumerate(self.classes)}

    return UnverifiedCIFAR10
