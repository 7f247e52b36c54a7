"""tlcourse.versions: the first cell's version line and its one-line fixes."""

from importlib import metadata

import pytest

from tlcourse import versions
from tlcourse.versions import supported_versions, version_report


def test_supported_versions_are_pyproject_s_bounds():
    bounds = supported_versions()
    assert bounds["torch"][0] is not None and bounds["transformers"] == ("5", "6")


def test_the_report_names_each_version_installed():
    report = version_report(["torch", "transformers"])
    assert report == f"versions: torch {metadata.version('torch')}, transformers {metadata.version('transformers')}"


@pytest.mark.parametrize("installed, message", [
    ("4.57.1", "transformers 4.57.1 is older than this book supports: pip install 'transformers>=5,<6'"),
    ("6.0.0", "transformers 6.0.0 is newer than this book was tested with: pip install 'transformers>=5,<6'"),
])
def test_a_version_outside_the_bounds_gets_one_line_saying_what_to_install(monkeypatch, installed, message):
    real = metadata.version
    monkeypatch.setattr(versions.metadata, "version", lambda name: installed if name == "transformers" else real(name))
    assert version_report(["torch", "transformers"]).splitlines()[1:] == [message]


def test_a_missing_package_says_what_to_install(monkeypatch):
    def version(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(versions.metadata, "version", version)
    assert version_report(["peft"]).splitlines() == ["versions: peft missing", "peft is not installed: pip install 'peft'"]


def test_packages_must_be_a_list_of_names():
    with pytest.raises(TypeError, match="packages must be a list of distribution names, got 'torch'"):
        version_report("torch")
