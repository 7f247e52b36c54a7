"""tools/slides.py: a reveal.js deck per chapter from its tagged cells, with the build's numbers, offline."""

from __future__ import annotations

import base64
import re
import shutil
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import check_offline  # noqa: E402
from slides import (  # noqa: E402
    REVEAL_FILES, check_deck, deck_notebook, myst_to_markdown, read_bibliography, reveal_folder, slide_cells,
    write_deck)
from student_edition import chapter_sources  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# a 1x1 PNG
PIXEL = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cf"
    "c0f01f0005fe02fea1e3c8b20000000049454e44ae426082")).decode()


def glued(value: str) -> dict:
    return {"data": {"text/plain": value}}


def test_roles_become_text_with_the_glued_numbers_formatted_as_python_would():
    values = {"gain": glued("0.123456"), "change": glued("-0.0417"), "model": glued("'MiniLM-L6'"),
              "runs": glued("12")}
    text = ("A gain of {glue:text}`gain:.3f` ({glue:text}`change:+.3f`) with {glue:text}`model:s`, "
            "{glue:text}`runs` runs in {{ runtime }}; see {doc}`how_to_use`, {doc}`the recipe <vgg16>`, "
            "{term}`LP-FT` and {term}`heads <head>`.")
    assert myst_to_markdown(text, values, {"runtime": "62 s"}, titles={"how_to_use": "How to use this book"}) == (
        f"A gain of {0.123456:.3f} ({-0.0417:+.3f}) with MiniLM-L6, 12 runs in 62 s; see How to use this book, "
        "the recipe, LP-FT and heads.")


def test_citations_read_author_and_year():
    bibliography = {"pan2010survey": "Pan and Yang (2010)", "kumar2022lpft": "Kumar et al. (2022)"}
    assert myst_to_markdown("in {cite:t}`pan2010survey`, LP-FT {cite:p}`kumar2022lpft`", {}, {}, bibliography) == \
        "in Pan and Yang (2010), LP-FT (Kumar et al., 2022)"


def test_read_bibliography(tmp_path):
    (tmp_path / "refs.bib").write_text(
        "@article{one, author = {Ada Lovelace}, title = {A}, year = {1843}}\n"
        "@article{two, author = {Sinno Jialin Pan and Qiang Yang}, title = {B}, year = {2010}}\n"
        "@article{three, author = {A. Kumar and B. Raghunathan and C. Jones}, title = {C}, year = {2022}}\n")
    assert read_bibliography(tmp_path / "refs.bib") == {
        "one": "Lovelace (1843)", "two": "Pan and Yang (2010)", "three": "Kumar et al. (2022)"}


def test_admonitions_math_and_targets():
    source = ("(a-target)=\n:::{admonition} Lesson {glue:text}`n`\n:class: tip\n\nBody $x^2$.\n:::\n\n"
              "```{math}\na = b\n```\n\n$$\nc = d\n$$ (eq-label)\n\n```python\n{glue:text}`n` stays code\n```")
    assert myst_to_markdown(source, {"n": glued("3")}).splitlines() == [
        '<div class="admonition">', '<p class="admonition-title">Lesson 3</p>', "", "Body $x^2$.", "", "</div>", "",
        "$$", "a = b", "$$", "", "$$", "c = d", "$$", "", "```python", "{glue:text}`n` stays code", "```"]


def test_a_value_never_glued_is_an_error():
    with pytest.raises(ValueError, match=r"vgg16, slide 2: \{glue:text\}`missing:.3f` names no value"):
        myst_to_markdown("{glue:text}`missing:.3f`", {}, where="vgg16, slide 2")


def executed_notebook() -> nbformat.NotebookNode:
    """An executed chapter: an untagged cell, a tagged title, a figure cell, a recipe cell, a lesson."""
    glue_output = nbformat.v4.new_output("display_data", data={"text/plain": "0.25"},
                                         metadata={"scrapbook": {"name": "gain", "mime_prefix": ""}})
    return nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}, cells=[
        nbformat.v4.new_markdown_cell("Not on a slide."),
        nbformat.v4.new_markdown_cell("# Tiny chapter\n\nThe plan, $x^2$.", metadata={"tags": ["slide"]}),
        nbformat.v4.new_code_cell("figure = plot()", metadata={"tags": ["slide-output"]}, execution_count=1, outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="printed beside the figure\n"),
            nbformat.v4.new_output("display_data", data={"image/png": PIXEL, "text/plain": "<Figure>"}),
            glue_output]),
        nbformat.v4.new_code_cell("def recipe():\n    return 1", metadata={"tags": ["slide"]}, execution_count=2),
        nbformat.v4.new_code_cell("hidden = 2", execution_count=3),
        nbformat.v4.new_markdown_cell("The gain is {glue:text}`gain:.2f`.", metadata={"tags": ["slide"]}),
    ])


def test_deck_notebook_has_one_slide_per_tagged_cell():
    deck = deck_notebook(executed_notebook(), "tiny")
    assert [cell.source for cell in deck.cells] == [
        "# Tiny chapter\n\nThe plan, $x^2$.", "figure = plot()", "def recipe():\n    return 1", "The gain is 0.25."]
    assert all(cell.metadata["slideshow"] == {"slide_type": "slide"} for cell in deck.cells)
    assert deck.cells[1].metadata["transient"] == {"remove_source": True}  # slide-output: the figure alone
    assert "transient" not in deck.cells[2].metadata
    # the glued value and the printed line go, the figure stays
    assert [list(output["data"]) for output in deck.cells[1].outputs] == [["image/png", "text/plain"]]
    printed = nbformat.v4.new_output("stream", name="stdout", text="a table printed as text\n")
    notebook = executed_notebook()
    notebook.cells[2].outputs = [printed, notebook.cells[2].outputs[-1]]  # the text, then the glued value
    assert deck_notebook(notebook, "tiny").cells[1].outputs == [printed]  # nothing else to show: the text stays


def test_untagged_and_mistagged_notebooks_are_refused():
    notebook = executed_notebook()
    for cell in notebook.cells:
        cell.metadata.pop("tags", None)
    with pytest.raises(ValueError, match="tiny: no cell is tagged 'slide' or 'slide-output'"):
        deck_notebook(notebook, "tiny")
    notebook.cells[0].metadata["tags"] = ["slide-output"]
    with pytest.raises(ValueError, match="cell 0 is a markdown cell tagged 'slide-output'"):
        slide_cells(notebook)


def write_synthetic_site(folder: Path, reveal_prefix: str = "reveal.js") -> Path:
    """A site with MathJax in _static (sphinx-mathjax-offline's copy) and one deck in slides/."""
    from importlib import metadata

    # the site's MathJax comes from sphinx-mathjax-offline (a folder with a dash: not importable by name)
    mathjax = Path(metadata.distribution("sphinx-mathjax-offline").locate_file("sphinx-mathjax-offline/static/mathjax"))
    (folder / "_static").mkdir(parents=True)
    (folder / "_static" / "mathjax").symlink_to(mathjax, target_is_directory=True)
    for name in REVEAL_FILES:
        target = folder / "slides" / "reveal.js" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        source = reveal_folder() / name
        shutil.copytree(source, target) if source.is_dir() else shutil.copyfile(source, target)
    return write_deck(deck_notebook(executed_notebook(), "tiny"), folder / "slides" / "tiny.html", reveal_prefix,
                      "../_static/mathjax/tex-chtml.js", "1. Tiny chapter")


def test_deck_file_loads_only_local_files(tmp_path):
    deck = write_synthetic_site(tmp_path / "site").read_text(encoding="utf-8")
    loaded = re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="([^"]+)"', deck)
    assert loaded and not [url for url in loaded if url.startswith(("http:", "https:", "//"))]
    assert 'src="reveal.js/dist/reveal.js"' in deck and len(re.findall(r"<section>\s*<section>", deck)) == 4


@pytest.mark.skipif(check_offline.find_browser() is None, reason="no Chromium (Debian: apt-get install chromium)")
def test_deck_opens_from_disk_offline_and_a_cdn_deck_does_not(tmp_path):
    browser = check_offline.find_browser()
    assert check_deck(browser, write_synthetic_site(tmp_path / "local")) == []
    problems = check_deck(browser, write_synthetic_site(tmp_path / "cdn", "https://unpkg.com/reveal.js@5.2.0"))
    assert any("requests a resource outside the site: https://unpkg.com/reveal.js@5.2.0/dist/reveal" in problem
               for problem in problems)
    assert any("reveal.js did not start" in problem for problem in problems)


GLUE_CALL = re.compile(r'glue\(\s*(f?)"([^"]+)"')


@pytest.mark.parametrize("chapter, source", chapter_sources(ROOT), ids=[name for name, _ in chapter_sources(ROOT)])
def test_every_chapter_tags_objectives_code_and_summary_and_glues_what_they_show(chapter, source):
    page = jupytext.read(source)
    cells = slide_cells(page)
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    assert "In this chapter" in cells[0].source  # the objectives
    assert any(cell.cell_type == "code" and "slide" in cell.metadata["tags"] for cell in cells)  # code shown
    assert any(cell.cell_type == "code" and "slide-output" in cell.metadata["tags"] for cell in cells)
    assert cells[-1].source.startswith("## Summary") and "本章要点" not in cells[-1].source
    # every value a slide shows is glued by the page's code: a glue("key", ...) call, an f-string key such as
    # f"gain_{name}" (which matches gain_.+), or a key written as a string the code passes on
    code = "\n".join(cell.source for cell in page.cells if cell.cell_type == "code")
    patterns = [re.escape(key) if not f else re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(key))
                for f, key in GLUE_CALL.findall(code)]
    shown = {match.split(":")[0] for cell in cells if cell.cell_type == "markdown"
             for match in re.findall(r"\{glue:text\}`([^`]+)`", cell.source)}
    assert [key for key in shown if not any(re.fullmatch(pattern, key) for pattern in patterns)
            and f'"{key}"' not in code] == []


def test_instructor_page_links_every_deck_and_student_notebook():
    page = (ROOT / "book" / "instructor.md").read_text(encoding="utf-8")
    for chapter, _ in chapter_sources(ROOT):
        assert f'<a href="../slides/{chapter}.html">' in page and f'<a href="../student/{chapter}.ipynb">' in page
