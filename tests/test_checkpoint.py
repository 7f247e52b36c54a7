import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tlcourse.checkpoint import (
    CheckpointError,
    check_state_dict_matches,
    load_checkpoint,
    save_checkpoint,
    save_state_dict,
)


def test_state_dict_round_trip_is_exact(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    path = save_state_dict(model.state_dict(), tmp_path / "w.safetensors", metadata={"asset": "x"})
    loaded = load_file(path)  # the safetensors library's own reader, not ours
    for key, value in model.state_dict().items():
        assert torch.equal(loaded[key], value) and loaded[key].dtype == value.dtype


def test_checkpoint_keeps_nested_state_and_int_keys(tmp_path):
    model = nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "c.safetensors", {"optimizer": optimizer.state_dict(), "epoch": 2,
                                                        "history": {"records": [{"loss": 0.5}]}})
    state = load_checkpoint(path)
    assert state["epoch"] == 2 and state["history"]["records"][0]["loss"] == 0.5
    fresh = torch.optim.AdamW(model.parameters(), lr=0.1)
    fresh.load_state_dict(state["optimizer"])  # int keys and betas survive the JSON round trip
    torch.testing.assert_close(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])


def test_file_is_safetensors_with_plain_json(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", {"epoch": 1, "w": torch.ones(2)})
    raw = path.read_bytes()
    header_size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_size])  # the safetensors header is JSON
    assert json.loads(header["__metadata__"]["tlcourse"])["epoch"] == 1


def test_truncated_file_names_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "w.safetensors", {"w": torch.ones(100)})
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match=r"w\.safetensors is truncated or corrupted.*delete it"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_crash_during_write_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.safetensors", {"epoch": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("tlcourse.checkpoint.save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2})
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temporary left behind


def test_mismatched_state_dicts_are_explained():
    model = nn.Linear(3, 2)
    check_state_dict_matches(model, nn.Linear(3, 2).state_dict())
    with pytest.raises(CheckpointError, match=r"missing \['bias'\]"):
        check_state_dict_matches(model, {"weight": torch.zeros(2, 3)})
    with pytest.raises(CheckpointError, match=r"weight: model \(2, 3\) vs checkpoint \(4, 3\)"):
        check_state_dict_matches(model, nn.Linear(3, 4).state_dict())
    with pytest.raises(TypeError, match="expected a tensor"):
        save_state_dict({"w": 1.0}, "unused.safetensors")


def _small_training_state() -> dict:
    model = nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 1,
            "history": {"records": [{"loss": 0.5}]}}


def test_one_flipped_bit_anywhere_fails_to_load(tmp_path):
    # Every bit of a small checkpoint (length prefix, JSON header, metadata, checksum, tensor bytes).
    path = save_checkpoint(tmp_path / "c.safetensors", {"model": {"w": torch.tensor([0.5, -2.0])},
                                                        "epoch": 3})
    original = path.read_bytes()
    corrupted = tmp_path / "flipped.safetensors"
    loaded = 0
    for position in range(len(original)):
        for bit in range(8):
            data = bytearray(original)
            data[position] ^= 1 << bit
            corrupted.write_bytes(bytes(data))
            try:
                load_checkpoint(corrupted)
                loaded += 1
            except CheckpointError as error:
                assert "flipped.safetensors" in str(error)
    assert loaded == 0, f"{loaded} of {8 * len(original)} single-bit corruptions loaded silently"


def test_checkpoint_without_checksum_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "old.safetensors"
    save_file({"w": torch.ones(2)}, str(path), metadata={"tlcourse": json.dumps({"w": {"__tensor__": "w"}})})
    with pytest.raises(CheckpointError, match=r"old\.safetensors has no checksum"):
        load_checkpoint(path)
    plain = tmp_path / "plain.safetensors"  # a safetensors file from elsewhere is named as not ours
    save_file({"w": torch.ones(2)}, str(plain))
    with pytest.raises(CheckpointError, match=r"plain\.safetensors is a safetensors file but not a tlcourse checkpoint"):
        load_checkpoint(plain)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_state_is_never_written(tmp_path, value):
    path = save_checkpoint(tmp_path / "c.safetensors", {"epoch": 1, "w": torch.ones(3)})
    bad = torch.ones(3)
    bad[1] = value
    with pytest.raises(CheckpointError, match=r"refusing to write .*c\.safetensors.*NaN or infinite.*\['model\.w'\]"):
        save_checkpoint(path, {"epoch": 2, "model": {"w": bad}})
    with pytest.raises(CheckpointError, match="NaN or infinite values"):
        save_state_dict({"w": bad}, tmp_path / "w.safetensors")
    assert load_checkpoint(path)["epoch"] == 1 and not (tmp_path / "w.safetensors").exists()


def test_temporary_files_of_killed_writes_are_removed_on_next_save(tmp_path):
    import os
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)  # a process that has exited: its pid names no live writer
    orphan = tmp_path / f".c.safetensors.{dead_pid}.abc123.tmp"
    orphan.write_bytes(b"half a checkpoint")
    live = tmp_path / f".c.safetensors.{os.getppid()}.def456.tmp"  # a live writer's file stays
    live.write_bytes(b"being written")
    other = tmp_path / f".other.safetensors.{dead_pid}.x.tmp"  # another target's: not touched
    other.write_bytes(b"x")
    save_checkpoint(tmp_path / "c.safetensors", {"epoch": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.safetensors", live.name, other.name])


@pytest.mark.parametrize("call, error, message", [
    (lambda: save_checkpoint("x.safetensors", [1, 2]), TypeError, "state must be a mapping.*got list"),
    (lambda: save_checkpoint("x.safetensors", {"f": object()}), TypeError, "cannot store object at 'f'"),
    (lambda: save_state_dict(None, "x.safetensors"), TypeError, "state_dict must be a mapping.*NoneType"),
    (lambda: save_state_dict({"w": 1.0}, "x.safetensors"), TypeError, r"state_dict\['w'\] is a float, expected a tensor"),
    (lambda: check_state_dict_matches(None, {}), TypeError, "model must be an nn.Module, got NoneType"),
    (lambda: check_state_dict_matches(nn.Linear(1, 1), None), TypeError, "state_dict must be a mapping"),
    (lambda: load_checkpoint("no/such/file.safetensors"), CheckpointError, r"no/such/file\.safetensors does not exist"),
    (lambda: load_checkpoint(None), TypeError, "path must be a file path .*got NoneType"),
    (lambda: save_checkpoint(3, {}), TypeError, "path must be a file path .*got int"),
])
def test_bad_inputs_raise_a_message_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_key_stored_twice_is_refused_not_lost(tmp_path):
    # {"a.b": t1} and {"a": {"b": t2}} would both be stored as the tensor "a.b": one would vanish
    with pytest.raises(ValueError, match="state: two entries are both stored under the key 'a.b'"):
        save_checkpoint(tmp_path / "c.safetensors", {"a.b": torch.ones(1), "a": {"b": torch.zeros(1)}})
    assert not (tmp_path / "c.safetensors").exists()


def test_a_weights_only_file_is_named_as_such(tmp_path):
    path = save_state_dict(nn.Linear(2, 2).state_dict(), tmp_path / "w.safetensors", metadata={"asset": "x"})
    with pytest.raises(CheckpointError, match=r"w\.safetensors is a weights-only file \(written by save_state_dict\)"):
        load_checkpoint(path)


def test_training_state_round_trip_restores_weights_optimizer_generators_and_history(tmp_path):
    from torch.utils.data import DataLoader

    from tlcourse.checkpoint import restore_training_state, save_training_state
    from tlcourse.history import History

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()  # Adam now holds moments and a step count
    loader = DataLoader(list(range(10)), batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(3))
    next(iter(loader))  # the loader's generator has moved
    history = History([{"epoch": 1, "train_loss": 0.5}])
    path = save_training_state(tmp_path / "c.safetensors", model, optimizer, epoch=1, history=history, loader=loader)
    expected_draw, expected_order = torch.rand(3), list(loader)  # what comes next after the save

    torch.manual_seed(123)  # a new session: other weights, other generator states
    fresh = torch.nn.Linear(3, 2)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.1)
    fresh_loader = DataLoader(list(range(10)), batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(9))
    restored, epoch = restore_training_state(path, fresh, fresh_optimizer, loader=fresh_loader)
    assert epoch == 1 and restored.records == history.records
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    moments = optimizer.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(fresh_optimizer.state_dict()["state"][0]["exp_avg"], moments)
    assert torch.equal(torch.rand(3), expected_draw)
    assert [batch.tolist() for batch in fresh_loader] == [batch.tolist() for batch in expected_order]
    with pytest.raises(CheckpointError, match="optimizer of type Adam, this optimizer is of type SGD"):
        restore_training_state(path, fresh, torch.optim.SGD([torch.nn.Parameter(torch.zeros(5))], lr=0.1))
    with pytest.raises(CheckpointError, match="does not fit this optimizer"):
        restore_training_state(path, fresh, torch.optim.Adam([torch.nn.Parameter(torch.zeros(5))], lr=0.1))
