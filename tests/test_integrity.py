"""A cached file counts as whole only when its digest or its format's own structure says so."""
import hashlib
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from tlcourse.integrity import (digest_matches, file_digest, hub_file_complete, safetensors_complete,
                                sidecar_matches, write_sidecar, zip_complete)


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
def test_file_digest_matches_hashlib_and_sees_a_rewrite(tmp_path, algorithm):
    file = tmp_path / "data.bin"
    file.write_bytes(bytes(range(256)) * 5000)  # more than one 1 MiB chunk
    assert file_digest(file, algorithm) == hashlib.new(algorithm, file.read_bytes()).hexdigest()
    file.write_bytes(b"other")  # a new size: the remembered digest must not be reused
    assert file_digest(file, algorithm) == hashlib.new(algorithm, b"other").hexdigest()


def test_digest_matches_a_prefix(tmp_path):
    file = tmp_path / "a"
    file.write_bytes(b"abc")
    full = hashlib.sha256(b"abc").hexdigest()
    assert digest_matches(file, full[:8]) and digest_matches(file, full.upper())
    assert not digest_matches(file, "0" * 8) and not digest_matches(tmp_path / "missing", full)


def test_safetensors_truncated_anywhere_is_not_complete(tmp_path):
    file = tmp_path / "w.safetensors"
    save_file({"a": torch.arange(10.0), "b": torch.ones(2, 3)}, file)
    data = file.read_bytes()
    assert safetensors_complete(file)
    for cut in range(0, len(data), 7):
        file.write_bytes(data[:cut])
        assert not safetensors_complete(file), cut
    file.write_bytes(data + b"\0")  # bytes the header does not announce
    assert not safetensors_complete(file)


def test_torch_save_file_truncated_or_flipped_is_not_complete(tmp_path):
    file = tmp_path / "w.pth"
    torch.save({"a": torch.arange(100.0)}, file)
    data = file.read_bytes()
    assert zip_complete(file)
    for cut in (10, len(data) // 2, len(data) - 1):
        file.write_bytes(data[:cut])
        assert not zip_complete(file), cut
    with zipfile.ZipFile(tmp_path / "w.pth", "w") as archive:  # a whole zip, then one flipped data byte
        archive.writestr("data", bytes(1000))
    flipped = bytearray((tmp_path / "w.pth").read_bytes())
    flipped[100] ^= 1
    file.write_bytes(bytes(flipped))
    assert not zip_complete(file)


def test_hub_blob_is_checked_against_its_name(tmp_path):
    data = b'{"a": 1}'
    git_blob = tmp_path / hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    git_blob.write_bytes(data)
    (tmp_path / "config.json").symlink_to(git_blob)
    assert hub_file_complete(tmp_path / "config.json")
    git_blob.write_bytes(b'{"a": 2}')  # same size, other content
    assert not hub_file_complete(tmp_path / "config.json")
    plain = tmp_path / "plain.json"  # not a blob: its format decides
    plain.write_text('{"a": ')
    assert not hub_file_complete(plain)
    plain.write_text('{"a": 1}')
    assert hub_file_complete(plain) and not hub_file_complete(tmp_path / "missing.json")


def test_sidecar_round_trip_and_mismatch(tmp_path):
    file = tmp_path / "train.jsonl"
    file.write_text("line\n")
    assert not sidecar_matches(file)
    write_sidecar(file, file_digest(file))
    assert sidecar_matches(file)
    file.write_text("line\nmore\n")
    assert not sidecar_matches(file)
