"""The student edition: every chapter as a notebook with its exercises and without their solutions.

Usage: python tools/student_edition.py OUT_DIR   ->   OUT_DIR/<chapter>.ipynb, one per chapter of the
numbered part ("Chapters") of ``_toc.yml`` (``course_chapters`` in tools/toc_notebooks.py).

Each notebook is made from the chapter's source, ``book/<chapter>.md``, by jupytext, like the notebooks
the tests run, so it cannot drift from the page. The chapters write solutions with sphinx-exercise's
directives, in two forms, and both are removed:

- a fenced ``{solution} <label>`` directive (three backticks, or four when it holds a code block),
  removed from its opening fence to its closing fence;
- a gated solution, ``{solution-start} <label>`` ... ``{solution-end}``, whose body may hold code
  cells: everything from the start fence to the end fence goes, markdown and code cells alike.

Fences are matched as CommonMark does (a closing fence has the opening's character, at least as many
of them, and nothing after), so a code block inside a solution does not end it. Everything else
stays, the cells tagged ``remove-cell`` included: the exercises need the chapter's objects in memory.
Each ``{exercise}`` directive becomes a plain Markdown heading with the book's number ("Exercise
1.2"), since Colab and Jupyter do not render MyST directives. In place of each solution come two
cells: a Markdown cell that says "Your answer here" and an empty code cell.

The notebooks are not executed, on purpose. A student runs every cell anyway, because the exercises
use the chapter's objects; outputs kept from the build would be those of one profile and one machine,
stale once the student runs the cells, and would make each notebook many times larger. The executed
chapter, with every output, is the page itself and its ``.ipynb`` download. Unexecuted, the command
line and the build write the same bytes.

As a Sphinx extension (``sphinx: local_extensions:`` in ``_config.yml``) this module writes
``student/<chapter>.ipynb`` into the built site and adds "student notebook (no solutions)" to each
chapter page's download menu, beside the theme's executed ``.ipynb``. tools/check_site.py checks the
link, the file, and that no solution text is in it (:func:`solution_passages`, a separate parser).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import jupytext
import nbformat
import yaml
from markdown_it import MarkdownIt
from mdit_py_plugins.colon_fence import colon_fence_plugin

from toc_notebooks import course_chapters, toc_files  # tools/ is on the path: a script, the build, the tests

__all__ = ["chapter_sources", "edition_problems", "exercise_passages", "solution_lines", "solution_passages",
           "site_problems", "student_notebook", "strip_solutions", "write_student_edition", "setup"]

ROOT = Path(__file__).resolve().parent.parent
FOLDER = "student"  # in the built site: student/<chapter>.ipynb
BUTTON_LABEL = "download-student-notebook-button"  # the theme renders it as class btn-<label>
BUTTON_TEXT = "student notebook (no solutions)"
ANSWER_TAG = "student-answer"  # on both placeholder cells, for tools that look for them
# An opening fence: up to three spaces, then three or more backticks, tildes or colons, then the
# info string (for a directive, "{name} argument").
FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\s*\{(?P<name>[\w:-]+)\}\s*(?P<argument>.*?)\s*$")
OPTION = re.compile(r"^:[\w-]+:")


def _block_end(lines: list[str], start: int, fence: str) -> int | None:
    """The index after the closing fence of the block opened at ``lines[start]``; None if unclosed."""
    closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    for index in range(start + 1, len(lines)):
        if closing.match(lines[index]):
            return index + 1
    return None


def _exercise_markdown(block: list[str], number: str) -> list[str]:
    """A fenced ``{exercise}`` directive as plain Markdown: a heading with its number, then its body."""
    title = DIRECTIVE.match(FENCE.match(block[0])["info"])["argument"]
    body = block[1:-1]
    while body and (OPTION.match(body[0]) or not body[0].strip()):  # :label:, :class:, then blank lines
        body = body[1:]
    heading = f"### Exercise {number}" + (f" ({title})" if title else "")
    return [heading, "", *body]


def _placeholder(number: str) -> list[nbformat.NotebookNode]:
    text = (f"**Your answer to Exercise {number} here.** Write it in this cell (double-click to edit) and "
            "your code in the cell below. Run the chapter's cells above first: the exercises use their objects.")
    return [nbformat.from_dict({"cell_type": "markdown", "metadata": {"tags": [ANSWER_TAG]}, "source": text}),
            nbformat.from_dict({"cell_type": "code", "metadata": {"tags": [ANSWER_TAG]}, "source": "",
                                "execution_count": None, "outputs": []})]


def strip_solutions(notebook: nbformat.NotebookNode, chapter_number: int | str,
                    name: str = "notebook") -> tuple[nbformat.NotebookNode, list[str]]:
    """Remove every sphinx-exercise solution from a notebook read from a MyST page.

    Args:
        notebook: the page as jupytext reads it (markdown cells hold the directives' fences).
        chapter_number: the chapter's number in the book, for the exercises' numbers ("1.2").
        name: what error messages call the notebook, e.g. ``book/concepts.md``.

    Returns:
        A new notebook, and the labels of the solutions removed, in order.

    Raises:
        ValueError: if a fence is never closed, a ``solution-start`` has no ``solution-end`` (or the
            reverse), or a solution opens inside a gated solution.

    Example:
        >>> page = jupytext.reads("```{exercise} Add\\n:label: e\\n\\n1 + 1?\\n```\\n\\n"
        ...                       "```{solution} e\\nTwo.\\n```\\n", fmt="md:myst")
        >>> student, removed = strip_solutions(page, 3)
        >>> removed, [(cell.cell_type, cell.source[:22]) for cell in student.cells]
        (['e'], [('markdown', '### Exercise 3.1 (Add)'), ('markdown', '**Your answer to Exerc'), ('code', '')])
    """
    cells: list[nbformat.NotebookNode] = []
    removed: list[str] = []
    gated: str | None = None  # the label of the open solution-start, if any
    exercises = 0
    number = f"{chapter_number}.0"
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            if gated is None:
                cells.append(nbformat.from_dict(cell))
            continue
        lines = cell.source.splitlines()
        kept: list[str] = []
        first_segment = True

        def flush() -> None:
            nonlocal kept, first_segment
            text = "\n".join(kept).strip("\n")
            if text:
                metadata = dict(cell.metadata) if first_segment else {}
                cells.append(nbformat.from_dict({"cell_type": "markdown", "metadata": metadata, "source": text}))
                first_segment = False
            kept = []

        position = 0
        while position < len(lines):
            line = lines[position]
            opening = FENCE.match(line)
            if opening is None:
                if gated is None:
                    kept.append(line)
                position += 1
                continue
            end = _block_end(lines, position, opening["fence"])
            if end is None:
                raise ValueError(f"{name}: the fence {line.strip()!r} in markdown cell {index} is never closed")
            directive = DIRECTIVE.match(opening["info"])
            directive_name = directive["name"] if directive else ""
            argument = directive["argument"] if directive else ""
            if gated is not None:
                if directive_name in ("solution", "solution-start"):
                    raise ValueError(f"{name}: {{{directive_name}}} {argument} opens inside the gated solution "
                                     f"{gated!r}, before its solution-end")
                if directive_name == "solution-end":
                    gated = None
                position = end  # inside a gated solution everything goes, its end fence too
                continue
            if directive_name == "solution-end":
                raise ValueError(f"{name}: a solution-end in markdown cell {index} without a solution-start")
            if directive_name in ("solution", "solution-start"):
                flush()
                cells.extend(_placeholder(number))
                removed.append(argument.split()[0] if argument else "")
                if directive_name == "solution-start":
                    gated = argument or "(no label)"
            elif directive_name == "exercise":
                flush()  # each exercise opens a cell of its own
                exercises += 1
                number = f"{chapter_number}.{exercises}"
                kept.extend(_exercise_markdown(lines[position:end], number))
            else:
                kept.extend(lines[position:end])
            position = end
        flush()
    if gated is not None:
        raise ValueError(f"{name}: the gated solution {gated!r} has a solution-start but no solution-end")
    for position, cell in enumerate(cells):
        cell["id"] = f"cell-{position}"  # nbformat 4.5 ids; numbered, so every run writes the same file
    student = nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "cells": cells,
                                  "metadata": {key: value for key, value in notebook.metadata.items()
                                               if key != "jupytext"}})
    return student, removed


def student_notebook(source: Path, chapter_number: int | str) -> nbformat.NotebookNode:
    """The student notebook of one chapter page (a MyST notebook), without solutions.

    Raises:
        ValueError: if ``source`` is not a MyST notebook page (no ``kernelspec`` in its front matter),
            or its solutions are malformed (:func:`strip_solutions`).
    """
    source = Path(source)
    text = source.read_text(encoding="utf-8")
    front_matter = text.split("---", 2)[1] if text.startswith("---") else ""
    if "kernelspec:" not in front_matter:
        raise ValueError(f"source must be a MyST notebook page with a kernelspec header, got {str(source)!r}")
    notebook, _ = strip_solutions(jupytext.reads(text, fmt="md:myst"), chapter_number, name=str(source))
    nbformat.validate(notebook)
    return notebook


def chapter_sources(root: Path = ROOT) -> list[tuple[str, Path]]:
    """``(chapter, source)`` for each chapter of ``_toc.yml``'s numbered part, e.g. ``("vgg16", .../book/vgg16.md)``."""
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text(encoding="utf-8"))
    files = {Path(entry).name: entry for entry in toc_files(toc)}
    return [(chapter, Path(root) / f"{files[chapter].removesuffix('.md')}.md") for chapter in course_chapters(toc)]


def write_student_edition(output: Path, root: Path = ROOT) -> list[Path]:
    """Write ``output/<chapter>.ipynb`` for every chapter; return the paths written.

    The chapters are numbered from 1 in ``_toc.yml``'s order, as the book numbers them.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for number, (chapter, source) in enumerate(chapter_sources(root), start=1):
        target = output / f"{chapter}.ipynb"
        text = nbformat.writes(student_notebook(source, number))
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


# --- an independent reading of the sources, for the checks ---------------------------------------------

def _fence_tokens(text: str) -> list[Any]:
    parser = MarkdownIt("commonmark").use(colon_fence_plugin)
    return [token for token in parser.parse(text) if token.type in ("fence", "colon_fence") and token.map]


def _directive_name(token: Any) -> str:
    match = DIRECTIVE.match(token.info)
    return match["name"] if match else ""


def solution_passages(text: str) -> list[str]:
    """The source text of every solution of a MyST page, read with markdown-it (not :func:`strip_solutions`).

    A ``{solution}`` fence gives its lines; a ``{solution-start}`` fence gives every line from it to
    the next ``{solution-end}`` fence, code cells included.

    Example:
        >>> solution_passages("```{exercise} A\\nQ?\\n```\\n\\n```{solution} a\\nAnswer.\\n```\\n")
        ['```{solution} a\\nAnswer.\\n```']
    """
    lines = text.splitlines()
    passages, start = [], None
    for token in _fence_tokens(text):
        name = _directive_name(token)
        if name == "solution" and start is None:
            passages.append("\n".join(lines[token.map[0]:token.map[1]]))
        elif name == "solution-start" and start is None:
            start = token.map[0]
        elif name == "solution-end" and start is not None:
            passages.append("\n".join(lines[start:token.map[1]]))
            start = None
    return passages


def solution_lines(text: str, shortest: int = 25) -> list[str]:
    """The lines that only a solution of a MyST page holds: what must not be in its student notebook.

    Each line of :func:`solution_passages`, stripped, at least ``shortest`` characters long, and found
    nowhere else in the page (a line such as ``import torch`` may also be in the chapter's own cells).
    """
    passages = solution_passages(text)
    rest = text
    for passage in passages:
        rest = rest.replace(passage, "")
    others = {line.strip() for line in rest.splitlines()}
    return [line.strip() for passage in passages for line in passage.splitlines()
            if len(line.strip()) >= shortest and line.strip() not in others]


def exercise_passages(text: str) -> list[str]:
    """The body of every ``{exercise}`` of a MyST page (its text without the fences and options)."""
    bodies = []
    for token in _fence_tokens(text):
        if _directive_name(token) == "exercise":
            bodies.append("\n".join(line for line in token.content.splitlines() if not OPTION.match(line)).strip())
    return bodies


def edition_problems(notebook: nbformat.NotebookNode, text: str) -> list[str]:
    """What is wrong with a student notebook made from the MyST page ``text``, one line each.

    A solution line (:func:`solution_lines`) that is a line of the notebook, a ``{solution`` directive
    left in it, or an exercise body line (:func:`exercise_passages`) that is not a line of it.
    """
    lines = {line.strip() for cell in notebook.cells for line in cell.source.splitlines()}
    problems = [f"holds a solution's line {line!r}" for line in solution_lines(text) if line in lines]
    if any("{solution" in cell.source for cell in notebook.cells):
        problems.append("holds a {solution} directive")
    for body in exercise_passages(text):
        missing = [line.strip() for line in body.splitlines() if line.strip() and line.strip() not in lines]
        if missing:
            problems.append(f"lacks the exercise line {missing[0]!r}")
    return problems


def site_problems(folder: Path, book: Path) -> list[str]:
    """Check a built site's student edition; one line per problem (tools/check_site.py calls it).

    For each chapter of ``book``'s numbered part, e.g. ``book/vgg16``: ``book/vgg16.html`` links
    ``student/vgg16.ipynb`` from its download menu, that file is in the site and is a valid notebook
    made from ``book/vgg16.md`` with no solution and every exercise (:func:`edition_problems`), and its
    exercises carry the numbers the page shows. A book without a numbered part has no chapters to check.
    """
    folder, book = Path(folder), Path(book)
    toc = yaml.safe_load((book / "_toc.yml").read_text(encoding="utf-8"))
    if not any(part.get("numbered") for part in toc.get("parts", [])):
        return []
    problems = []
    for chapter, source in chapter_sources(book):
        docname = source.relative_to(book).with_suffix("").as_posix()
        html, student = f"{docname}.html", f"{FOLDER}/{chapter}.ipynb"
        if not (folder / html).is_file():
            problems.append(f"{html}: the page is missing from the site")
            continue
        page = (folder / html).read_text(encoding="utf-8", errors="replace")
        links = [re.search(r'\bhref="([^"]*)"', tag)[1] for tag in re.findall(r"<a\b[^>]*>", page)
                 if f"btn-{BUTTON_LABEL}" in tag and 'href="' in tag]
        if not links:
            problems.append(f"{html}: no link to its student notebook (class btn-{BUTTON_LABEL})")
        for href in links:
            if urljoin(f"http://site/{html}", href) != f"http://site/{student}":
                problems.append(f"{html}: the student notebook link {href} does not point at {student}")
        if not (folder / student).is_file():
            problems.append(f"{html}: {student} is missing from the site")
            continue
        try:
            notebook = nbformat.read(str(folder / student), as_version=4)
            nbformat.validate(notebook)
        except (OSError, ValueError, nbformat.ValidationError) as error:
            problems.append(f"{student} is not a valid notebook ({error.__class__.__name__})")
            continue
        text = source.read_text(encoding="utf-8")
        problems += [f"{student}: {problem}" for problem in edition_problems(notebook, text)]
        numbers = [cell.source.split()[2] for cell in notebook.cells if cell.source.startswith("### Exercise ")]
        shown = re.findall(r'<span class="caption-number">Exercise ([\d.]+)\s*</span>', page)
        if numbers != shown:
            problems.append(f"{student}: its exercises are numbered {numbers}, the page's {shown}")
    return problems


# --- the Sphinx extension --------------------------------------------------------------------------------

def _chapters(app: Any) -> dict[str, str]:
    """docname (``book/vgg16``) -> chapter (``vgg16``) for the book being built."""
    return {source.relative_to(Path(app.srcdir)).with_suffix("").as_posix(): chapter
            for chapter, source in chapter_sources(Path(app.srcdir))}


def add_download_entry(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Add "student notebook (no solutions)" to a chapter page's download menu (``html-page-context``)."""
    chapter = _chapters(app).get(pagename)
    if chapter is None:
        return
    groups = [group for group in context.get("header_buttons", []) if group.get("label") == "download-buttons"]
    if not groups:
        from sphinx.util import logging

        logging.getLogger(__name__).warning(f"{pagename}: no download menu to offer the student notebook in",
                                            type="student_edition", location=pagename)
        return
    buttons = groups[0]["buttons"]
    entry = {"type": "link", "url": context["pathto"](f"{FOLDER}/{chapter}.ipynb", 1), "text": BUTTON_TEXT,
             "tooltip": "Download the chapter as a notebook with the exercises and without their solutions",
             "icon": "fas fa-user-graduate", "label": BUTTON_LABEL}
    after = next((place for place, button in enumerate(buttons) if button.get("label") == "download-notebook-button"),
                 len(buttons) - 1)
    buttons.insert(after + 1, entry)


def write_into_site(app: Any, exception: Exception | None) -> None:
    """Write ``student/<chapter>.ipynb`` into the built HTML site (``build-finished``)."""
    if exception is None and app.builder.format == "html":
        write_student_edition(Path(app.outdir) / FOLDER, Path(app.srcdir))


def setup(app: Any) -> dict[str, Any]:
    """Register the download entry (after the theme's buttons, priority 501) and the writer."""
    app.connect("html-page-context", add_download_entry, priority=503)
    app.connect("build-finished", write_into_site)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tools/student_edition.py OUT_DIR", file=sys.stderr)
        return 2
    for path in write_student_edition(Path(argv[0])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
