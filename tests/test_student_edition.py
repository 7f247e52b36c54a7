"""tools/student_edition.py: each chapter as a notebook with its exercises and without their solutions.

The solutions are found twice, independently: the line scanner that removes them (strip_solutions),
and markdown-it's CommonMark parser (solution_passages), which the checks use.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import jupytext
import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from student_edition import (  # noqa: E402
    ANSWER_TAG, BUTTON_LABEL, add_download_entry, chapter_sources, edition_problems, exercise_passages,
    site_problems, solution_lines, solution_passages, strip_solutions, student_notebook, write_student_edition)

ROOT = Path(__file__).resolve().parent.parent
HEADER = ("---\njupytext:\n  text_representation:\n    format_name: myst\n"
          "kernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n")

# A tiny chapter with every form the book uses: a three-backtick solution, a four-backtick one that
# holds a code block (whose closing fence must not end it), and a gated solution with a code cell
# and a code block in its markdown; an admonition that says "solution" stays.
CHAPTER = HEADER + """
# Tiny

```{code-cell} ipython3
x = 1
```

:::{admonition} Not a solution
The word solution here is prose.
:::

```{exercise} First question
:label: tiny-exercise-first

What is one plus one?
```

```{solution} tiny-exercise-first
:class: dropdown

Two, since the successor of one is two.
```

```{exercise} Second question
:label: tiny-exercise-second

Print x.
```

````{solution} tiny-exercise-second
:class: dropdown

Run this:

```python
print(x)  # inside the solution
```

and it prints one.
````

```{exercise}
:label: tiny-exercise-third

Square x by code.
```

````{solution-start} tiny-exercise-third
:class: dropdown
````

The gated solution's own prose.

```{code-cell} ipython3
print(x * x)  # the gated solution's code
```

```text
a code block in the gated solution
```

````{solution-end}
````

```{code-cell} ipython3
:tags: [remove-cell]
after_the_exercises = True
```
"""


def tiny_student() -> tuple[nbformat.NotebookNode, list[str]]:
    return strip_solutions(jupytext.reads(CHAPTER, fmt="md:myst"), 7, name="tiny.md")


def test_tiny_chapter_keeps_exercises_and_loses_solutions():
    student, removed = tiny_student()
    assert removed == ["tiny-exercise-first", "tiny-exercise-second", "tiny-exercise-third"]
    kinds = [(cell.cell_type, cell.source.splitlines()[0] if cell.source else "") for cell in student.cells]
    assert kinds == [
        ("markdown", "# Tiny"),
        ("code", "x = 1"),
        ("markdown", ":::{admonition} Not a solution"),
        ("markdown", "### Exercise 7.1 (First question)"),
        ("markdown", "**Your answer to Exercise 7.1 here.** Write it in this cell (double-click to edit) and your "
                     "code in the cell below. Run the chapter's cells above first: the exercises use their objects."),
        ("code", ""),
        ("markdown", "### Exercise 7.2 (Second question)"),
        ("markdown", kinds[4][1].replace("7.1", "7.2")),
        ("code", ""),
        ("markdown", "### Exercise 7.3"),
        ("markdown", kinds[4][1].replace("7.1", "7.3")),
        ("code", ""),
        ("code", "after_the_exercises = True"),
    ]
    assert student.cells[3].source == "### Exercise 7.1 (First question)\n\nWhat is one plus one?"
    assert [cell.metadata for cell in student.cells if cell.metadata.get("tags") == [ANSWER_TAG]] == \
        [{"tags": [ANSWER_TAG]}] * 6
    assert student.cells[-1].metadata == {"tags": ["remove-cell"]}
    everything = "\n".join(cell.source for cell in student.cells)
    for gone in ("Two, since", "print(x)", "prints one", "gated solution", "x * x", "solution-end", "{solution"):
        assert gone not in everything
    nbformat.validate(student)
    code_cells = [cell for cell in student.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code_cells)


def test_markdown_it_finds_the_same_solutions():
    passages = solution_passages(CHAPTER)
    assert [passage.splitlines()[0] for passage in passages] == [
        "```{solution} tiny-exercise-first", "````{solution} tiny-exercise-second",
        "````{solution-start} tiny-exercise-third"]
    assert passages[2].splitlines()[-1] == "````" and "print(x * x)" in passages[2]
    assert exercise_passages(CHAPTER) == ["What is one plus one?", "Print x.", "Square x by code."]
    assert "Two, since the successor of one is two." in solution_lines(CHAPTER)
    student, _ = tiny_student()
    assert edition_problems(student, CHAPTER) == []
    # the check fails when a solution stays or an exercise goes
    unstripped = jupytext.reads(CHAPTER, fmt="md:myst")
    assert any("solution's line 'Two, since" in problem for problem in edition_problems(unstripped, CHAPTER))
    student.cells = [cell for cell in student.cells if "Second question" not in cell.source]
    assert edition_problems(student, CHAPTER) == ["lacks the exercise line 'Print x.'"]


@pytest.mark.parametrize("text, message", [
    ("````{solution-start} a\n````\n\ntext\n", "the gated solution 'a' has a solution-start but no solution-end"),
    ("````{solution-end}\n````\n", "a solution-end in markdown cell 0 without a solution-start"),
    ("```{solution} a\nnever closed\n", r"the fence '```\{solution\} a' in markdown cell 0 is never closed"),
    ("````{solution-start} a\n````\n\n```{solution} b\nx\n```\n\n````{solution-end}\n````\n",
     "opens inside the gated solution 'a'"),
])
def test_malformed_solutions_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        strip_solutions(jupytext.reads(text, fmt="md:myst"), 1, name="bad.md")


def test_a_plain_markdown_page_is_refused(tmp_path):
    (tmp_path / "plain.md").write_text("# Plain\n")
    with pytest.raises(ValueError, match="source must be a MyST notebook page with a kernelspec header"):
        student_notebook(tmp_path / "plain.md", 1)


@pytest.mark.parametrize("number, chapter_and_source", list(enumerate(chapter_sources(ROOT), start=1)),
                         ids=[chapter for chapter, _ in chapter_sources(ROOT)])
def test_every_chapter_has_no_solution_and_every_exercise(number, chapter_and_source):
    chapter, source = chapter_and_source
    text = source.read_text(encoding="utf-8")
    student = student_notebook(source, number)
    assert edition_problems(student, text) == []
    exercises, solutions = exercise_passages(text), solution_passages(text)
    assert len(exercises) >= 4 and len(solutions) == len(exercises)
    headings = [cell.source.splitlines()[0] for cell in student.cells if cell.source.startswith("### Exercise ")]
    assert [heading.split()[2] for heading in headings] == [f"{number}.{k}" for k in range(1, len(exercises) + 1)]
    assert sum(ANSWER_TAG in cell.metadata.get("tags", []) for cell in student.cells) == 2 * len(solutions)
    # every code cell outside the solutions stays, in order, the Colab install cell first
    page = jupytext.reads(text, fmt="md:myst")
    in_solutions = "\n".join(solutions)
    kept = [cell.source for cell in page.cells if cell.cell_type == "code" and cell.source not in in_solutions]
    assert [cell.source for cell in student.cells if cell.cell_type == "code" and cell.source] == kept
    assert '"google.colab" in sys.modules' in kept[0]


def test_command_line_writes_one_notebook_per_chapter_the_same_each_time(tmp_path):
    first = write_student_edition(tmp_path / "out")
    assert [path.name for path in first] == [f"{chapter}.ipynb" for chapter, _ in chapter_sources(ROOT)]
    contents = [path.read_bytes() for path in first]
    assert [path.read_bytes() for path in write_student_edition(tmp_path / "out")] == contents


def test_download_menu_gets_the_student_notebook_after_the_executed_one():
    chapter, source = chapter_sources(ROOT)[0]
    pagename = source.relative_to(ROOT).with_suffix("").as_posix()
    buttons = [{"label": "download-notebook-button"}, {"label": "download-source-button"}]
    context = {"header_buttons": [{"label": "download-buttons", "buttons": buttons}],
               "pathto": lambda name, resource: f"../{name}"}
    app = SimpleNamespace(srcdir=str(ROOT))
    add_download_entry(app, pagename, "page.html", context, None)
    assert [button["label"] for button in buttons] == ["download-notebook-button", BUTTON_LABEL,
                                                       "download-source-button"]
    assert buttons[1]["url"] == f"../student/{chapter}.ipynb"
    add_download_entry(app, "book/glossary", "page.html", context, None)  # not a chapter: nothing added
    assert len(buttons) == 3


def write_numbered_book(folder: Path) -> Path:
    """A book whose numbered part holds one chapter, book/tiny.md (the tiny chapter above)."""
    (folder / "book").mkdir(parents=True)
    (folder / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nparts:\n  - caption: Chapters\n"
                                     "    numbered: 1\n    chapters:\n      - file: book/tiny\n")
    (folder / "book" / "intro.md").write_text("# Intro\n")
    (folder / "book" / "tiny.md").write_text(CHAPTER)
    return folder


def chapter_html(numbers=("1.1", "1.2", "1.3"), link: str = "../student/tiny.ipynb") -> str:
    button = f'<a href="{link}" class="btn btn-sm btn-{BUTTON_LABEL} dropdown-item">student notebook</a>'
    return button + "".join(f'<p class="admonition-title"><span class="caption-number">Exercise {number} </span>'
                            for number in numbers)


def test_site_check_passes_a_sound_site_and_names_each_fault(tmp_path):
    book, site = write_numbered_book(tmp_path / "book"), tmp_path / "site"
    (site / "book").mkdir(parents=True)
    (site / "book" / "tiny.html").write_text(chapter_html())
    write_student_edition(site / "student", root=book)
    assert site_problems(site, book) == []

    (site / "book" / "tiny.html").write_text(chapter_html(numbers=("1.1", "1.2")))
    assert site_problems(site, book) == [
        "student/tiny.ipynb: its exercises are numbered ['1.1', '1.2', '1.3'], the page's ['1.1', '1.2']"]
    (site / "book" / "tiny.html").write_text(chapter_html(link="../_sources/book/tiny.ipynb"))
    assert site_problems(site, book) == [
        "book/tiny.html: the student notebook link ../_sources/book/tiny.ipynb does not point at student/tiny.ipynb"]
    (site / "book" / "tiny.html").write_text(chapter_html()[chapter_html().index("<p"):])  # no button
    assert site_problems(site, book) == [f"book/tiny.html: no link to its student notebook (class btn-{BUTTON_LABEL})"]

    (site / "book" / "tiny.html").write_text(chapter_html())
    jupytext.write(jupytext.reads(CHAPTER, fmt="md:myst"), site / "student" / "tiny.ipynb")  # solutions left in
    problems = site_problems(site, book)
    assert "student/tiny.ipynb: holds a solution's line 'Two, since the successor of one is two.'" in problems
    assert "student/tiny.ipynb: holds a {solution} directive" in problems
    (site / "student" / "tiny.ipynb").unlink()
    assert site_problems(site, book) == ["book/tiny.html: student/tiny.ipynb is missing from the site"]


def test_site_check_has_nothing_to_check_without_a_numbered_part(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    assert site_problems(tmp_path, tmp_path) == []
