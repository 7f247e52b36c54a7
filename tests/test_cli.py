import pytest

from tlcourse.cli import doctor, main


def test_doctor_lists_versions_profile_and_assets(monkeypatch):
    monkeypatch.setenv("TLCOURSE_PROFILE", "smoke")
    report = doctor()
    assert "torch" in report and "profile      smoke" in report
    assert "minilm-l6" in report and "available" in report


def test_fetch_needs_a_name(capsys):
    with pytest.raises(SystemExit):
        main(["fetch"])
    assert "fetch needs an asset NAME or --all" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fetch", "vgg19"])


def test_fetching_a_standin_is_a_no_op(capsys):
    assert main(["fetch", "digits"]) == 0
    assert "nothing to fetch" in capsys.readouterr().out
