"""Convert every chapter listed in _toc.yml from MyST Markdown to .ipynb (for nbval).

Usage: python tools/toc_notebooks.py OUTPUT_FOLDER
Only pages that are notebooks (with a jupytext/kernelspec header) are converted; plain Markdown
pages have no code to run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import yaml

ROOT = Path(__file__).resolve().parent.parent


def toc_files(toc: dict) -> list[str]:
    """Every ``file`` entry of a jupyter-book ``_toc.yml``, in reading order."""
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            for key in ("chapters", "sections"):
                walk(entry.get(key, []))
            for part in entry.get("parts", []):
                walk(part.get("chapters", []))

    walk(toc.get("chapters", []))
    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    return files


def course_chapters(toc: dict) -> list[str]:
    """The chapter names (``concepts``, ``vgg16``, ...) of the numbered part of ``_toc.yml``, in order.

    This one list is what the tests, the benchmarks and the tools read: a new chapter joins them by
    being listed in that part.
    """
    numbered = [part for part in toc.get("parts", []) if part.get("numbered")]
    if len(numbered) != 1:
        raise ValueError(f"_toc.yml needs exactly one part with numbered: set, got {len(numbered)}")
    return [Path(entry["file"]).name for entry in numbered[0].get("chapters", [])]


def read_course_chapters(root: Path = ROOT) -> list[str]:
    """:func:`course_chapters` of the book's own ``_toc.yml``."""
    return course_chapters(yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8")))


def main(output: str) -> None:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    for name in toc_files(toc):
        source = ROOT / (name if name.endswith(".md") else f"{name}.md")
        text = source.read_text(encoding="utf-8")
        if "kernelspec:" not in text.split("---", 2)[1] if text.startswith("---") else True:
            continue  # a plain Markdown page
        notebook = jupytext.reads(text, fmt="md:myst")
        target = folder / f"{Path(name).name}.ipynb"
        jupytext.write(notebook, target)
        print(f"{source.relative_to(ROOT)} -> {target}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/toc_notebooks.py OUTPUT_FOLDER")
    main(sys.argv[1])
