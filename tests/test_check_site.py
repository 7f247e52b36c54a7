"""tools/check_site.py: a static server on 127.0.0.1 fetches every page and local link of a site; each chapter
opens its generated notebook from the download menu and in Colab."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from check_site import (  # noqa: E402
    LinkCollector, chapter_pages, check_chapter_notebooks, check_site, expected_colab_link)


def write_site(folder: Path) -> None:
    (folder / "book").mkdir()
    (folder / "_static").mkdir()
    (folder / "_static" / "style.css").write_text("p {}")
    # a theme snippet under _static is a template, not a page: its unrendered link must be ignored
    (folder / "_static" / "macros.html").write_text('<link href="{{ pathto(\'x\', 1) }}">')
    (folder / "index.html").write_text('<a href="book/a.html">a</a><a href="https://example.org/">out</a>')
    (folder / "book" / "a.html").write_text(
        '<h1 id="top">A</h1><link href="../_static/style.css?v=1"><a href="b.html#part">b</a><a href="#top">up</a>')
    (folder / "book" / "b.html").write_text('<h2 id="part">B</h2><a href="a.html">a</a>')


def test_sound_site_has_no_problems(tmp_path):
    write_site(tmp_path)
    assert check_site(tmp_path) == []


def test_every_kind_of_broken_link_is_reported(tmp_path):
    write_site(tmp_path)
    (tmp_path / "book" / "c.html").write_text(
        '<a href="gone.html">x</a>'                 # missing page
        '<img src="../_static/missing.png">'        # missing resource
        '<a href="b.html#nowhere">y</a>'            # missing fragment
        '<a href="/book/a.html">z</a>'              # rooted at / : breaks when opened from disk
        '<a href="file:///tmp/a.html">w</a>')       # a local path
    assert sorted(check_site(tmp_path)) == sorted([
        "book/c.html: gone.html answers 404",
        "book/c.html: ../_static/missing.png answers 404",
        "book/c.html: b.html#nowhere names #nowhere, absent from its page",
        "book/c.html: /book/a.html is not relative (breaks when opened from disk)",
        "book/c.html: file:///tmp/a.html is not relative (breaks when opened from disk)",
    ])


def test_collector_ignores_external_links_and_same_page_fragments():
    collector = LinkCollector()
    collector.feed('<a href="mailto:a@b.c">m</a><a href="#x">x</a><script src="s.js"></script><a name="old">o</a>')
    assert collector.links == ["s.js"]
    assert collector.ids == {"old"}


def test_rejects_a_folder_without_pages(tmp_path):
    with pytest.raises(ValueError, match=r"folder must be a built site with \.html pages, got"):
        check_site(tmp_path)
    with pytest.raises(ValueError, match="folder must be a built site"):
        check_site(tmp_path / "absent")


# --- the chapters' generated notebooks and their download and Colab links ---------------------------

COLAB = "https://colab.research.google.com"
INSTALL_CELL = (Path(__file__).resolve().parent.parent / "tools" / "colab_install_cell.py").read_text()
CONFIG = f"""repository:
  url: https://github.com/org/book
  branch: main
launch_buttons:
  colab_url: "{COLAB}"
sphinx:
  config:
    colab_published_branch: gh-pages
"""
NOTEBOOK_HEADER = "---\njupytext:\n  text_representation:\n    format_name: myst\nkernelspec:\n  name: python3\n---\n"


def write_book(folder: Path) -> Path:
    """A book with a plain root page and one notebook chapter, book/run.md."""
    (folder / "book").mkdir(parents=True)
    (folder / "_config.yml").write_text(CONFIG)
    (folder / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/run\n")
    (folder / "book" / "intro.md").write_text("# Intro\n")
    (folder / "book" / "run.md").write_text(NOTEBOOK_HEADER + "# Run\n")
    return folder


def chapter_page(download: str = "../_sources/book/run.ipynb",
                 colab: str = f"{COLAB}/github/org/book/blob/gh-pages/_sources/book/run.ipynb") -> str:
    """The header buttons as sphinx-book-theme renders them (download menu, then launch menu)."""
    return (f'<a href="{download}" class="btn btn-sm btn-download-notebook-button dropdown-item">.ipynb</a>'
            '<a href="../_sources/book/run.md" class="btn btn-sm btn-download-source-button dropdown-item">.md</a>'
            f'<a href="{colab}" target="_blank" class="btn btn-sm dropdown-item">Colab</a>')


def write_notebook(path: Path, first_source: str = INSTALL_CELL, executed: bool = True) -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Run"),
        nbformat.v4.new_code_cell(first_source, execution_count=1 if executed else None),
        nbformat.v4.new_code_cell("print(2 + 2)", execution_count=2 if executed else None,
                                  outputs=[nbformat.v4.new_output("stream", text="4\n")] if executed else []),
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))


def write_chapter_site(folder: Path, page: str | None = None) -> Path:
    folder.mkdir()
    write_site(folder)
    (folder / "book" / "intro.html").write_text("<h1>Intro</h1>")  # a plain page: no notebook, no buttons
    (folder / "book" / "run.html").write_text(chapter_page() if page is None else page)
    (folder / "_sources" / "book").mkdir(parents=True)
    (folder / "_sources" / "book" / "run.md").write_text(NOTEBOOK_HEADER + "# Run\n")
    write_notebook(folder / "_sources" / "book" / "run.ipynb")
    return folder


def test_chapter_pages_are_the_notebooks_of_the_toc(tmp_path):
    book = write_book(tmp_path)
    assert chapter_pages(book) == ["book/run"]
    (book / "_toc.yml").write_text("root: book/intro\nchapters:\n  - file: book/gone\n")
    with pytest.raises(ValueError, match=r"_toc.yml lists 'book/gone', but .*gone.md' does not exist"):
        chapter_pages(book)
    with pytest.raises(ValueError, match="book must be the folder holding _toc.yml, got"):
        chapter_pages(tmp_path / "book")


def test_expected_colab_link_reads_the_three_settings():
    config = {"repository": {"url": "https://github.com/org/book.git"}, "launch_buttons": {"colab_url": COLAB + "/"},
              "sphinx": {"config": {"colab_published_branch": "pages"}}}
    assert expected_colab_link(config, "book/x") == f"{COLAB}/github/org/book/blob/pages/_sources/book/x.ipynb"
    with pytest.raises(ValueError, match=r"repository: url: must be https://github.com/<owner>/<repo>, got 'https://gitl"):
        expected_colab_link({**config, "repository": {"url": "https://gitlab.com/org/book"}}, "book/x")
    with pytest.raises(ValueError, match="must set launch_buttons: colab_url: and sphinx: config: colab_published_b"):
        expected_colab_link({**config, "sphinx": {}}, "book/x")


def test_sound_chapters_have_no_problems(tmp_path):
    book, site = write_book(tmp_path / "source"), write_chapter_site(tmp_path / "site")
    assert check_chapter_notebooks(site, book) == []
    assert check_site(site, book) == []  # the download link is also served (a local link)


def test_the_theme_s_own_colab_link_to_the_md_source_is_reported(tmp_path):
    book = write_book(tmp_path / "source")
    source_link = f"{COLAB}/github/org/book/blob/main/book/run.md"  # the theme's own link: Colab cannot open it
    site = write_chapter_site(tmp_path / "site", chapter_page(colab=source_link))
    assert check_chapter_notebooks(site, book) == [
        f"book/run.html: the Colab link {source_link} is not "
        f"{COLAB}/github/org/book/blob/gh-pages/_sources/book/run.ipynb"]


def test_missing_links_are_reported(tmp_path):
    book = write_book(tmp_path / "source")
    source_only = '<a href="../_sources/book/run.md" class="btn-download-source-button">md</a>'
    site = write_chapter_site(tmp_path / "site", source_only)
    assert check_chapter_notebooks(site, book) == [
        "book/run.html: no .ipynb download link (btn-download-notebook-button)",
        f"book/run.html: no Colab link (expected {COLAB}/github/org/book/blob/gh-pages/_sources/book/run.ipynb)"]
    (site / "book" / "run.html").write_text(chapter_page(download="../_sources/book/run.md"))
    assert check_chapter_notebooks(site, book) == [
        "book/run.html: the .ipynb download link ../_sources/book/run.md does not point at _sources/book/run.ipynb"]


def test_a_missing_or_broken_notebook_is_reported(tmp_path):
    book, site = write_book(tmp_path / "source"), write_chapter_site(tmp_path / "site")
    notebook = site / "_sources" / "book" / "run.ipynb"
    notebook.unlink()
    assert check_chapter_notebooks(site, book) == [
        "book/run.html: _sources/book/run.ipynb, the notebook generated from book/run.md, is missing from the site"]
    assert "book/run.html: ../_sources/book/run.ipynb answers 404" in check_site(site, book)
    notebook.write_text("not json")
    assert check_chapter_notebooks(site, book) == [
        "_sources/book/run.ipynb is not a valid notebook "
        "(NotJSONError: Notebook does not appear to be JSON: 'not json')"]
    notebook.write_text('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}')
    [problem] = check_chapter_notebooks(site, book)
    assert problem.startswith("_sources/book/run.ipynb is not a valid notebook (ValidationError:")
    assert "cells" in problem


def test_a_notebook_without_the_install_cell_first_or_unexecuted_is_reported(tmp_path):
    book, site = write_book(tmp_path / "source"), write_chapter_site(tmp_path / "site")
    notebook = site / "_sources" / "book" / "run.ipynb"
    write_notebook(notebook, first_source="import tlcourse")
    assert check_chapter_notebooks(site, book) == [
        "_sources/book/run.ipynb: its first code cell is not the Colab install cell (tools/colab_install_cell.py)"]
    write_notebook(notebook, executed=False)
    assert check_chapter_notebooks(site, book) == [
        "_sources/book/run.ipynb was not executed (no code cell has an execution count)"]


def test_a_missing_chapter_page_and_a_book_without_config_are_reported(tmp_path):
    book, site = write_book(tmp_path / "source"), write_chapter_site(tmp_path / "site")
    (site / "book" / "run.html").unlink()
    assert check_chapter_notebooks(site, book) == ["book/run.html: the page is missing from the site"]
    (book / "_config.yml").unlink()
    with pytest.raises(ValueError, match="book must be the folder holding _config.yml, got"):
        check_chapter_notebooks(site, book)
