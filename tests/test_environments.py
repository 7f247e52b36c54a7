"""tools/environments.py (make test-latest, make test-colab) and the one list the Colab path reads."""

import re
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from environments import (BUILD_TOOLS_MARKER, latest_requirements, oldest_torch_pair,  # noqa: E402
                          requirement_name, suspects)


def test_requirement_name_strips_specifiers_extras_markers_and_comments():
    assert requirement_name("torch==2.14.1") == "torch"
    assert requirement_name("transformers>=5,<6  # the API the chapters use") == "transformers"
    assert requirement_name("datasets[audio]; python_version>'3'") == "datasets"
    assert requirement_name("# a comment") == "" and requirement_name("   ") == ""


def test_latest_unpins_the_runtime_and_keeps_the_build_tools_pinned():
    text = f"torch==2.14.1\ntransformers>=5,<6\n{BUILD_TOOLS_MARKER}\njupyter-book<2\npytest\n"
    assert latest_requirements(text) == ["torch", "transformers", "jupyter-book<2", "pytest"]
    real = latest_requirements((ROOT / "requirements.txt").read_text())
    assert "torch" in real and "torchvision" in real and "jupyter-book<2" in real  # v2 needs Node


def test_oldest_pair_is_pyproject_s_lower_bounds():
    pyproject = '[project]\ndependencies = ["torch>=2.4", "torchvision >= 0.19.1", "numpy"]\n'
    assert oldest_torch_pair(pyproject) == ["torch==2.4.*", "torchvision==0.19.*"]
    assert len(oldest_torch_pair((ROOT / "pyproject.toml").read_text())) == 2


def test_suspects_name_the_library_a_failure_was_raised_in(tmp_path):
    report = tmp_path / "report.xml"
    report.write_text(
        '<testsuites><testsuite><testcase classname="bert.ipynb" name="Cell 4"><failure>'
        "File /v/lib/python3.11/site-packages/_pytest/runner.py\n"
        "File /v/lib/python3.11/site-packages/transformers/trainer.py, in train\nTypeError: x"
        '</failure></testcase><testcase classname="fusion.ipynb" name="Cell 1"><failure>'
        "#x1B[31mModuleNotFoundError#x1B[39m: No module named 'myst_nb'</failure></testcase>"
        '<testcase classname="fusion.ipynb" name="Cell 2"><failure>NameError: name \'glue\' is not defined'
        '</failure></testcase><testcase name="ok"/></testsuite></testsuites>')
    lines = suspects(report, Path(sys.executable))
    assert lines[0].startswith("bert.ipynb::Cell 4: raised in transformers ")
    assert lines[1] == "fusion.ipynb::Cell 1: myst_nb is not installed in this environment"
    assert not any("Cell 2" in line for line in lines)  # a consequence of Cell 1, not a cause


def _colab_installs(monkeypatch) -> list[list[str]]:
    commands: list[list[str]] = []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: commands.append(command))
    monkeypatch.setattr(sys, "path", list(sys.path))
    cell = ROOT / "tools" / "colab_install_cell.py"
    exec(compile(cell.read_text(), str(cell), "exec"), {"__name__": "__main__"})
    return [command for command in commands if command[1:4] == ["-m", "pip", "install"]]


def test_the_colab_cell_installs_requirements_colab_and_what_make_install_adds_without_deps(monkeypatch):
    installs = _colab_installs(monkeypatch)
    assert any(command[-1].endswith("/requirements-colab.txt") and "-r" in command for command in installs)
    cell_no_deps = {part for command in installs if "--no-deps" in command for part in command
                    if re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", part)}
    makefile = (ROOT / "Makefile").read_text()
    make_no_deps = set(re.findall(r"--no-deps ([A-Za-z0-9_.-]+==[\w.]+)", makefile))
    assert cell_no_deps == make_no_deps, (cell_no_deps, make_no_deps)


def test_requirements_colab_is_the_runtime_of_requirements_txt_without_torch():
    def names(path: Path, stop: str | None = None) -> set[str]:
        text = path.read_text()
        if stop:
            text = text.split(stop)[0]
        return {requirement_name(line).lower() for line in text.splitlines()} - {""}

    runtime = names(ROOT / "requirements.txt", BUILD_TOOLS_MARKER)
    colab = names(ROOT / "requirements-colab.txt")
    assert runtime - {"torch", "torchvision", "ipywidgets"} <= colab  # Colab has its own torch and widgets
    assert colab - runtime <= {"datasets", "myst-nb"}, colab - runtime  # SST-2's loader; glue in every chapter
