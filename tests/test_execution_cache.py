"""The execution cache (tools/execution_cache.py): a page runs again exactly when its inputs changed."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from execution_cache import execution_key, keep_newest, restore_cached_outputs  # noqa: E402

JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")


def _project(root: Path) -> Path:
    (root / "tlcourse").mkdir(parents=True)
    (root / "tlcourse" / "train.py").write_text("def fit():\n    return 1\n")
    (root / "requirements.txt").write_text("torch==2.14.1\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return root


def test_key_changes_with_the_package_the_requirements_and_the_environment(tmp_path):
    root = _project(tmp_path)
    key = execution_key(root, report="profile cpu")
    assert key == execution_key(root, report="profile cpu")  # nothing changed: the same folder
    (root / "tlcourse" / "train.py").write_text("def fit():\n    return 2\n")
    after_code = execution_key(root, report="profile cpu")
    (root / "tlcourse" / "new.py").write_text("x = 1\n")
    after_module = execution_key(root, report="profile cpu")
    (root / "requirements.txt").write_text("torch==2.15.0\n")
    after_pins = execution_key(root, report="profile cpu")
    after_profile = execution_key(root, report="profile smoke")
    keys = [key, after_code, after_module, after_pins, after_profile]
    assert len(set(keys)) == len(keys)


def test_key_ignores_what_cannot_change_a_number(tmp_path):
    root = _project(tmp_path)
    key = execution_key(root, report="profile cpu")
    (root / "book").mkdir()
    (root / "book" / "page.md").write_text("prose\n")
    (root / "tlcourse" / "notes.txt").write_text("not code\n")
    assert execution_key(root, report="profile cpu") == key


def test_keep_newest_deletes_the_least_recently_used_folders(tmp_path):
    for age, name in enumerate(["newest", "middle", "oldest"]):
        (tmp_path / name).mkdir()
        stamp = time.time() - 100 * age
        os.utime(tmp_path / name, (stamp, stamp))
    deleted = keep_newest(tmp_path, 2)
    assert [path.name for path in deleted] == ["oldest"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["middle", "newest"]


PAGE = """---
jupytext:
  text_representation:
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A page

{prose}

```{{code-cell}} ipython3
with open({runs!r}, "a") as runs:
    runs.write("run\\n")
print({value})
```
"""

CONFIG = """title: cache test
only_build_toc_files: true
exclude_patterns: [_build, tlcourse]
execute:
  execute_notebooks: cache
  show_tb: true
sphinx:
  local_extensions:
    execution_cache: {tools}
"""


@pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="jupyter-book is not installed in this environment")
def test_a_book_reruns_a_page_only_when_its_code_or_the_package_changed(tmp_path):
    root = _project(tmp_path / "book")
    runs = tmp_path / "runs.txt"
    shutil.copy(ROOT / "tools" / "execution_cache.py", tmp_path / "execution_cache.py")
    (root / "_config.yml").write_text(CONFIG.format(tools=str(tmp_path)))
    (root / "_toc.yml").write_text("format: jb-book\nroot: page\n")

    def build(prose: str, value: int) -> int:
        (root / "page.md").write_text(PAGE.format(prose=prose, runs=str(runs), value=value))
        result = subprocess.run([str(JUPYTER_BOOK), "build", str(root), "-W", "-q"], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"<span class=\"mi\">{value}</span>" in (root / "_build/html/page.html").read_text() or \
            f"\n{value}\n" in (root / "_build/html/page.html").read_text()
        return len(runs.read_text().splitlines()) if runs.exists() else 0

    assert build("First words.", 1) == 1          # a fresh cache runs the page
    assert build("Edited words.", 1) == 1         # a prose edit runs nothing
    assert build("Edited words.", 2) == 2         # a code cell edit runs the page again
    (root / "tlcourse" / "train.py").write_text("def fit():\n    return 3\n")
    assert build("Edited words.", 2) == 3         # so does a change in the package
    assert len(list((root / "_build" / "jupyter-cache").iterdir())) == 2  # one folder per key


@pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="jupyter-book is not installed in this environment")
def test_a_failed_cell_is_reported_and_not_cached(tmp_path):
    root = _project(tmp_path / "book")
    shutil.copy(ROOT / "tools" / "execution_cache.py", tmp_path / "execution_cache.py")
    (root / "_config.yml").write_text(CONFIG.format(tools=str(tmp_path)))
    (root / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    (root / "page.md").write_text(PAGE.format(prose="Words.", runs=str(tmp_path / "runs.txt"), value="1 / 0"))
    for _ in range(2):  # the second build finds no cached result: it runs, and fails, again
        result = subprocess.run([str(JUPYTER_BOOK), "build", str(root), "-W", "-q"], capture_output=True, text=True)
        assert result.returncode != 0
        assert "ZeroDivisionError" in result.stdout + result.stderr  # the traceback is in the log
        assert "ZeroDivisionError" in (root / "_build/html/reports/page.err.log").read_text()
    assert len((tmp_path / "runs.txt").read_text().splitlines()) == 2


def test_cached_outputs_are_put_back_into_notebooks_written_without_them(tmp_path):
    # myst-nb 1.4 writes the notebook it read, not the one merged with the cache, on a cache hit
    import nbformat
    from jupyter_cache import get_cache

    def notebook(executed: bool):
        cell = nbformat.v4.new_code_cell("1 + 1", execution_count=1 if executed else None,
                                         outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"},
                                                                         execution_count=1)] if executed else [])
        return nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})

    executed = tmp_path / "page.ipynb"
    nbformat.write(notebook(True), executed)
    get_cache(tmp_path / "cache").cache_notebook_file(str(executed), check_validity=False)
    written, other = tmp_path / "written.ipynb", tmp_path / "other.ipynb"
    nbformat.write(notebook(False), written)
    stranger = notebook(False)
    stranger.cells[0].source = "2 + 2"  # no cached match
    nbformat.write(stranger, other)
    assert restore_cached_outputs([written, other], str(tmp_path / "cache")) == [written]
    restored = nbformat.read(written, as_version=4).cells[0]
    assert restored.outputs[0]["data"]["text/plain"] == "2" and restored.execution_count == 1
    assert nbformat.read(other, as_version=4).cells[0].outputs == []
    assert restore_cached_outputs([written], str(tmp_path / "cache")) == []  # has outputs now: untouched
