import dataclasses

import pytest
import torch

from tlcourse.profiles import PROFILES, get_profile, settings_for


def test_names_and_environment(monkeypatch):
    monkeypatch.setenv("TLCOURSE_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    assert get_profile("cpu").name == "cpu"  # an explicit name wins over the environment


def test_default_follows_hardware(monkeypatch):
    monkeypatch.delenv("TLCOURSE_PROFILE", raising=False)
    assert get_profile().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_frozen_and_generic_only():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_profile("smoke").device = "cuda"
    smoke, cpu, gpu = PROFILES["smoke"], PROFILES["cpu"], PROFILES["gpu"]
    assert not smoke.allow_download and not gpu.use_standins and cpu.use_standins
    # sizes live in the chapters' settings tables, not in the profile
    assert not any(hasattr(smoke, name) for name in ("batch_size", "num_epochs", "image_size", "cap"))
    assert not smoke.check_claims and cpu.check_claims and gpu.check_claims


def test_settings_for_picks_the_profiles_row():
    table = {"smoke": 1, "cpu": 2, "gpu": 3}
    assert [settings_for(table, PROFILES[name]) for name in ("smoke", "cpu", "gpu")] == [1, 2, 3]
    with pytest.raises(ValueError, match=r"no entry for profile 'cpu': expected one of \['smoke'\]"):
        settings_for({"smoke": 1}, PROFILES["cpu"])


def test_every_chapter_table_covers_every_profile():
    # every chapter module found, not a list kept by hand: a new chapter's table is checked too
    import importlib
    import pkgutil

    import tlcourse.chapters

    modules = [importlib.import_module(f"tlcourse.chapters.{info.name}")
               for info in pkgutil.iter_modules(tlcourse.chapters.__path__)]
    tables = [module for module in modules if hasattr(module, "SETTINGS")]
    assert len(tables) >= 6
    for module in tables:
        assert set(module.SETTINGS) == {"smoke", "cpu", "gpu"}, module.__name__


def test_unknown_profile_is_named():
    with pytest.raises(ValueError, match=r"unknown profile 'fast'.*\['cpu', 'gpu', 'rehearsal', 'smoke'\]"):
        get_profile("fast")


def test_rehearsal_runs_the_canonical_path_at_smoke_sizes():
    from tlcourse.chapters import bert

    rehearsal = get_profile("rehearsal")
    assert rehearsal.device == "cpu" and not rehearsal.use_standins and not rehearsal.allow_download
    row = settings_for(bert.SETTINGS, rehearsal)
    smoke = bert.SETTINGS["smoke"]
    # the stand-ins of the smoke row are swapped for the canonical assets, the sizes are smoke's
    assert (row.text_model, row.dataset) == ("bert-base-uncased", "sst2")
    assert row.batch_size == smoke.batch_size and row.max_train_examples == smoke.max_train_examples


def test_settings_for_names_a_wrong_table_or_profile():
    from tlcourse.profiles import get_profile, settings_for

    with pytest.raises(TypeError, match="table must be a chapter's SETTINGS dict and profile a Profile, got NoneType and Profile"):
        settings_for(None, get_profile("cpu"))
    with pytest.raises(TypeError, match="got dict and str"):
        settings_for({"cpu": 1}, "cpu")
