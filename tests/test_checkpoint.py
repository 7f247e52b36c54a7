import json

import pytest
import torch
from torch import nn

from tlcourse.checkpoint import (
    CheckpointError,
    check_state_dict_matches,
    load_checkpoint,
    load_state_dict,
    save_checkpoint,
    save_state_dict,
)


def test_state_dict_round_trip_is_exact(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    path = save_state_dict(model.state_dict(), tmp_path / "w.safetensors", metadata={"asset": "x"})
    loaded = load_state_dict(path)
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
    path = save_state_dict({"w": torch.ones(100)}, tmp_path / "w.safetensors")
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match=r"w\.safetensors is truncated or corrupted.*delete it"):
        load_state_dict(path)
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
