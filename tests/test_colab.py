"""The Colab path: launch buttons from one repository setting, an install cell that keeps Colab's torch."""
import re
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELL = ROOT / "tools" / "colab_install_cell.py"


def _run_cell(monkeypatch) -> list[list[str]]:
    commands: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: commands.append(command))
    path_before = list(sys.path)
    exec(compile(CELL.read_text(), str(CELL), "exec"), {"__name__": "__main__"})
    monkeypatch.setattr(sys, "path", path_before)
    return commands


def test_the_install_cell_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert _run_cell(monkeypatch) == []


def test_in_colab_the_install_cell_never_installs_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    commands = _run_cell(monkeypatch)
    assert commands[0][:2] == ["git", "clone"]
    installs = [c for c in commands if c[1:4] == ["-m", "pip", "install"]]
    assert installs and all("requirements.txt" not in " ".join(c) and "torch" not in " ".join(c) for c in installs)
    assert any("--no-deps" in c and "-e" in c for c in installs)  # tlcourse itself without its torch dependency
    requirements = [line.split("#")[0].strip() for line in (ROOT / "requirements-colab.txt").read_text().splitlines()]
    names = {re.split(r"[<>=!~ ]", line)[0].lower() for line in requirements if line}
    assert not names & {"torch", "torchvision", "jupyter-book", "nbval", "pytest", "jupytext"}, names


def test_one_repository_setting_drives_the_launch_buttons_and_the_cell():
    config = (ROOT / "_config.yml").read_text()
    url = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", config, re.MULTILINE).group(1)
    assert re.search(r"^launch_buttons:\s*\n(\s+.*\n)*?\s+colab_url:\s*\"?https://colab.research.google.com", config,
                     re.MULTILINE)
    assert f'REPOSITORY = "{url}"' in CELL.read_text()
    for chapter in (ROOT / "book").glob("*.md"):  # chapters that carry the cell carry this one
        text = chapter.read_text()
        if '"google.colab" in sys.modules' in text:
            assert CELL.read_text().strip() in text, chapter.name
