"""Slide decks: one reveal.js deck per chapter, made from the chapter's own tagged cells (issue 36).

Usage:
    python tools/slides.py [SITE]           write SITE/slides/<chapter>.html (default SITE: _build/html)
    python tools/slides.py --check [SITE]   open each deck from disk in headless Chromium, offline

A chapter chooses its slides by tagging cells of its page, ``book/<chapter>.md``: a markdown cell
with ``+++ {"tags": ["slide"]}`` before it, a code cell with ``:tags: [slide]`` in its options. A
``slide`` cell is shown as on the page (a code cell with its code and outputs); a ``slide-output``
code cell shows its outputs only: its figures and tables, or its printed text when it has neither. Each tagged cell is one slide, in the page's
order: the objectives, the key figure, the recipe's code, the lessons.

The cells come from the executed notebooks of the build (``SITE/_sources/<page>.ipynb``, the notebook
the page offers for download), so a deck's numbers are the build's: each ``{glue:text}`` role is
replaced by the value the page shows, formatted by myst-nb's own function. The other MyST roles
become their text, admonitions become boxes, and citations read "Author (year)" from references.bib.
nbconvert's slides exporter writes the deck with the template in ``tools/slides_template``, which
loads nothing from a CDN: reveal.js is copied beside the decks (``slides/reveal.js/``) from the
``sphinx-revealjs`` wheel, a requirement of the book, and MathJax is the site's own
(``_static/mathjax``, from sphinx-mathjax-offline). The decks open from disk with no network.

As a Sphinx extension (``sphinx: local_extensions:`` in ``_config.yml``), this module writes the
decks at the end of every HTML build; ``make slides`` builds the book and checks its decks.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import nbformat
import yaml

from student_edition import DIRECTIVE, FENCE, OPTION, _block_end, chapter_sources  # tools/ is on the path

__all__ = ["REVEAL_FILES", "check_decks", "deck_notebook", "glued_values", "myst_to_markdown", "page_titles",
           "read_bibliography", "reveal_folder", "site_problems", "slide_cells", "write_deck", "write_decks", "setup"]

ROOT = Path(__file__).resolve().parent.parent
SLIDE_TAG, OUTPUT_TAG = "slide", "slide-output"
FOLDER = "slides"  # in the built site: slides/<chapter>.html, slides/reveal.js/
MATHJAX = "_static/mathjax/tex-chtml.js"  # sphinx-mathjax-offline's copy in the site
# The parts of reveal.js a deck loads (its white theme imports the Source Sans Pro font beside it).
REVEAL_FILES = ("LICENSE", "dist/reveal.css", "dist/reset.css", "dist/reveal.js", "dist/theme/white.css",
                "dist/theme/fonts/source-sans-pro")
ADMONITIONS = ("admonition", "note", "tip", "important", "warning", "caution", "attention", "hint", "seealso")
GLUE_ROLE = re.compile(r"\{glue(?::text)?\}`(?P<content>[^`]+)`")
ROLE = re.compile(r"\{(?P<name>[a-z]+(?::[a-z]+)?)\}`(?P<content>[^`]+)`")
# nbconvert opens each slide as <section><section> (a column of one subslide); after reveal.js starts,
# the sections carry attributes, hence [^>]*.
SLIDE_START = re.compile(r"<section\b[^>]*>\s*<section\b")
SUBSTITUTION = re.compile(r"\{\{\s*(?P<name>[\w-]+)\s*\}\}")
EQUATION_LABEL = re.compile(r"^(\s*\$\$)\s*\([\w-]+\)\s*$")  # "$$ (math-ce-gradient)": dollarmath's label
TARGET = re.compile(r"^\([\w-]+\)=\s*$")  # "(vgg16-exercises)=": a MyST target line


def reveal_folder() -> Path:
    """The reveal.js folder inside the installed ``sphinx_revealjs`` package."""
    try:
        folder = Path(str(resources.files("sphinx_revealjs") / "_static" / "revealjs"))
    except ModuleNotFoundError as error:
        raise RuntimeError("the slides need reveal.js from the sphinx-revealjs package: "
                           "pip install -r requirements.txt") from error
    if not (folder / "dist" / "reveal.js").is_file():
        raise RuntimeError(f"sphinx_revealjs has no dist/reveal.js in {folder}")
    return folder


def slide_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The cells tagged ``slide`` or ``slide-output``, in order (``slide-output`` on a markdown cell is an error).

    Raises:
        ValueError: if a markdown cell is tagged ``slide-output`` (a markdown cell has no outputs).
    """
    cells = []
    for index, cell in enumerate(notebook.cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if OUTPUT_TAG in tags and cell.cell_type != "code":
            raise ValueError(f"cell {index} is a {cell.cell_type} cell tagged {OUTPUT_TAG!r}; "
                             "only code cells have outputs")
        if tags & {SLIDE_TAG, OUTPUT_TAG}:
            cells.append(cell)
    return cells


def glued_values(notebook: nbformat.NotebookNode) -> dict[str, Any]:
    """Every value the executed notebook glued (myst-nb's ``glue``), by key, as myst-nb reads them."""
    from myst_nb.ext.glue import extract_glue_data_cell

    values = {}
    for cell in copy.deepcopy(notebook).cells:
        if cell.cell_type == "code":
            values.update(dict(extract_glue_data_cell(cell)))
    return values


def _glued_text(glued: dict[str, Any], content: str, where: str) -> str:
    from myst_nb.core.variables import format_plain_text

    key, _, fmt_spec = content.rpartition(":") if ":" in content else (content, "", "")  # as myst-nb splits it
    if key not in glued or "text/plain" not in glued[key]["data"]:
        raise ValueError(f"{where}: {{glue:text}}`{content}` names no value the executed notebook glued")
    return format_plain_text(glued[key]["data"]["text/plain"], fmt_spec or "s")


def _citation(keys: str, textual: bool, bibliography: dict[str, str]) -> str:
    authors = [bibliography.get(key.strip(), key.strip()) for key in keys.split(",")]
    if textual:  # {cite:t}: "Pan and Yang (2010)"
        return "; ".join(authors)
    return "(" + "; ".join(author.replace(" (", ", ").rstrip(")") for author in authors) + ")"


def read_bibliography(path: Path) -> dict[str, str]:
    """``key -> "Author (year)"`` (or "Author et al. (year)") for each entry of a BibTeX file."""
    from pybtex.database import parse_file

    names = {}
    for key, entry in parse_file(str(path)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        last = [" ".join(person.last_names) for person in people]
        who = (last[0] if len(last) == 1 else f"{last[0]} and {last[1]}" if len(last) == 2
               else f"{last[0]} et al." if last else key)
        names[key] = f"{who} ({entry.fields.get('year', 'n.d.')})"
    return names


def _inline(text: str, glued: dict[str, Any], substitutions: dict[str, str], bibliography: dict[str, str],
            where: str, titles: dict[str, str]) -> str:
    """One line of MyST with its roles and substitutions replaced by plain text."""
    text = GLUE_ROLE.sub(lambda match: _glued_text(glued, match["content"], where), text)
    text = SUBSTITUTION.sub(lambda match: str(substitutions.get(match["name"], match[0])), text)

    def role(match: re.Match) -> str:
        name, content = match["name"], match["content"]
        if name.startswith("cite"):
            return _citation(content, name == "cite:t", bibliography)
        label = re.match(r"^(?P<text>.*?)\s*<(?P<target>[^>]+)>$", content)  # {doc}`the text <target>`
        if label:
            return label["text"]
        return titles.get(Path(content).name, content) if name == "doc" else content

    return ROLE.sub(role, text)


def myst_to_markdown(source: str, glued: dict[str, Any], substitutions: dict[str, str] | None = None,
                     bibliography: dict[str, str] | None = None, where: str = "cell",
                     titles: dict[str, str] | None = None) -> str:
    """A markdown cell's MyST as the Markdown nbconvert renders: numbers glued in, admonitions as boxes.

    Args:
        source: the cell's MyST Markdown.
        glued: :func:`glued_values` of the executed notebook.
        substitutions: ``myst_substitutions`` of ``_config.yml`` (``{{ name }}``).
        bibliography: :func:`read_bibliography` of the book's references.
        where: what error messages call the cell.
        titles: page name -> title, for ``{doc}`` roles (otherwise they show the page's name).

    Raises:
        ValueError: if a ``{glue:text}`` role names a value that was not glued.

    Example:
        >>> glued = {"gain": {"data": {"text/plain": "0.12345"}}}
        >>> print(myst_to_markdown("```{admonition} Lesson\\n:class: tip\\n\\nA gain of {glue:text}`gain:.2f`,"
        ...                        " see {doc}`the recipe <vgg16>`.\\n```", glued))
        <div class="admonition">
        <p class="admonition-title">Lesson</p>
        <BLANKLINE>
        A gain of 0.12, see the recipe.
        <BLANKLINE>
        </div>
    """
    substitutions, bibliography, titles = substitutions or {}, bibliography or {}, titles or {}
    lines, output, position = source.splitlines(), [], 0
    while position < len(lines):
        line = lines[position]
        opening = FENCE.match(line)
        directive = DIRECTIVE.match(opening["info"]) if opening else None
        if opening and directive and directive["name"] in ADMONITIONS + ("math",):
            end = _block_end(lines, position, opening["fence"]) or len(lines)
            body = lines[position + 1:end - 1]
            while body and OPTION.match(body[0]):
                body = body[1:]
            inner = myst_to_markdown("\n".join(body), glued, substitutions, bibliography, where, titles)
            if directive["name"] == "math":
                output += ["$$", inner, "$$"]
            else:
                title = directive["argument"] or directive["name"].capitalize()
                title = _inline(title, glued, substitutions, bibliography, where, titles)
                output += ['<div class="admonition">', f'<p class="admonition-title">{title}</p>', "", inner, "",
                           "</div>"]
            position = end
            continue
        if opening:  # a code block, or a directive shown as it is: copied untouched
            end = _block_end(lines, position, opening["fence"]) or len(lines)
            output += lines[position:end]
            position = end
            continue
        if not TARGET.match(line):
            label = EQUATION_LABEL.match(line)
            output.append(label[1] if label else _inline(line, glued, substitutions, bibliography, where, titles))
        position += 1
    return "\n".join(output).strip("\n")


def deck_notebook(executed: nbformat.NotebookNode, chapter: str, substitutions: dict[str, str] | None = None,
                  bibliography: dict[str, str] | None = None,
                  glued: dict[str, Any] | None = None, titles: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The notebook nbconvert turns into a deck: each tagged cell one slide, its MyST made Markdown.

    Args:
        executed: the chapter's executed notebook.
        chapter: its name, for messages.
        substitutions, bibliography, titles: as for :func:`myst_to_markdown`.
        glued: values glued by the notebook besides those still in its outputs: myst-nb moves them
            out of the notebook it saves, into ``jupyter_execute/<page>.glue.json``.

    Raises:
        ValueError: if the notebook has no tagged cell (:func:`slide_cells`), or a role names a value
            that was not glued.
    """
    cells = slide_cells(executed)
    if not cells:
        raise ValueError(f"{chapter}: no cell is tagged {SLIDE_TAG!r} or {OUTPUT_TAG!r}, so there is no deck")
    glued = {**(glued or {}), **glued_values(executed)}
    slides = []
    for index, cell in enumerate(copy.deepcopy(cells)):
        tags = set(cell.metadata.get("tags", []))
        if cell.cell_type == "markdown":
            cell.source = myst_to_markdown(cell.source, glued, substitutions, bibliography,
                                           where=f"{chapter}, slide {index + 1}", titles=titles)
        else:
            cell.outputs = [output for output in cell.outputs  # glue(..., display=False) outputs are not shown
                            if "scrapbook" not in output.get("metadata", {})]
            rich = [output for output in cell.outputs if output.output_type in ("display_data", "execute_result")]
            if OUTPUT_TAG in tags and rich:
                cell.outputs = rich  # a figure or a table: the printed lines around it stay on the page
            if OUTPUT_TAG in tags or tags & {"remove-input", "hide-input"}:
                cell.metadata["transient"] = {"remove_source": True}  # the lab template then shows outputs only
        cell.metadata["slideshow"] = {"slide_type": "slide"}
        slides.append(cell)
    metadata = {key: value for key, value in executed.metadata.items() if key in ("kernelspec", "language_info")}
    return nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": slides})


def write_deck(deck: nbformat.NotebookNode, target: Path, reveal_prefix: str, mathjax_url: str, title: str) -> Path:
    """Write one deck with nbconvert's slides exporter and the offline template; return ``target``."""
    from nbconvert.exporters import SlidesExporter
    from traitlets.config import Config

    config = Config()
    config.SlidesExporter.reveal_url_prefix = reveal_prefix
    config.SlidesExporter.reveal_theme = "white"  # its font is in REVEAL_FILES; some themes load Google's fonts
    config.SlidesExporter.reveal_transition = "none"
    config.SlidesExporter.mathjax_url = mathjax_url
    config.SlidesExporter.exclude_input_prompt = True
    config.SlidesExporter.exclude_output_prompt = True
    exporter = SlidesExporter(config=config, extra_template_basedirs=[str(Path(__file__).resolve().parent)],
                              template_name="slides_template")
    deck = copy.deepcopy(deck)
    deck.metadata["title"] = title
    body, _ = exporter.from_notebook_node(deck, resources={"metadata": {"name": title}})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    return target


def page_titles(root: Path) -> dict[str, str]:
    """Page name (``how_to_use``) -> its first ``# `` heading, for every page of ``_toc.yml``."""
    from toc_notebooks import toc_files

    titles = {}
    for name in toc_files(yaml.safe_load((Path(root) / "_toc.yml").read_text(encoding="utf-8"))):
        source = Path(root) / f"{name.removesuffix('.md')}.md"
        heading = re.search(r"^# (.+)$", source.read_text(encoding="utf-8"), flags=re.MULTILINE) \
            if source.is_file() else None
        if heading:
            titles[Path(name).name] = heading[1].strip()
    return titles


def write_decks(site: Path, root: Path = ROOT) -> list[Path]:
    """Write ``site/slides/<chapter>.html`` for every chapter, and reveal.js beside them; return the decks.

    Args:
        site: a built HTML site with the executed notebooks in ``_sources/`` and MathJax in ``_static/``.
        root: the book's sources (``_toc.yml``, ``_config.yml``, ``references.bib``).

    Raises:
        ValueError: if ``site`` lacks a chapter's executed notebook, or a chapter has no tagged cell.
    """
    site, root = Path(site), Path(root)
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    substitutions = ((config.get("parse") or {}).get("myst_substitutions") or {})
    bibliography = read_bibliography(root / "references.bib") if (root / "references.bib").is_file() else {}
    titles = page_titles(root)
    folder = site / FOLDER
    source = reveal_folder()
    for name in REVEAL_FILES:
        target = folder / "reveal.js" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (source / name).is_dir():
            shutil.copytree(source / name, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source / name, target)
    decks = []
    for number, (chapter, page) in enumerate(chapter_sources(root), start=1):
        docname = page.relative_to(root).with_suffix("").as_posix()
        executed_path = site / "_sources" / f"{docname}.ipynb"
        if not executed_path.is_file():
            raise ValueError(f"site has no executed notebook {executed_path.relative_to(site)} for {chapter}'s deck")
        executed = nbformat.read(str(executed_path), as_version=4)
        glue_path = site.parent / "jupyter_execute" / f"{docname}.glue.json"  # beside the site, where myst-nb puts it
        glued = json.loads(glue_path.read_text(encoding="utf-8")) if glue_path.is_file() else {}
        deck = deck_notebook(executed, chapter, substitutions, bibliography, glued, titles)
        title = f"{number}. {titles.get(chapter, chapter)}"
        decks.append(write_deck(deck, folder / f"{chapter}.html", "reveal.js", f"../{MATHJAX}", title))
    return decks


def site_problems(folder: Path, book: Path = ROOT) -> list[str]:
    """Check that a built site has every chapter's deck, whole; one line per problem (tools/check_site.py).

    For each chapter of ``book``'s numbered part: ``slides/<chapter>.html`` exists, loads reveal.js
    from ``slides/reveal.js/`` (present), has one slide per cell the page tags, and shows no MyST role
    left unresolved. A book without a numbered part has no chapters to check. Opening the decks in a
    browser is :func:`check_decks`'s part.
    """
    import jupytext

    folder, book = Path(folder), Path(book)
    toc = yaml.safe_load((book / "_toc.yml").read_text(encoding="utf-8"))
    if not any(part.get("numbered") for part in toc.get("parts", [])):
        return []
    problems = []
    if not (folder / FOLDER / "reveal.js" / "dist" / "reveal.js").is_file():
        problems.append(f"{FOLDER}/reveal.js/dist/reveal.js is missing: the decks cannot start")
    for chapter, source in chapter_sources(book):
        deck = f"{FOLDER}/{chapter}.html"
        if not (folder / deck).is_file():
            problems.append(f"{deck}: the deck of {chapter} is missing")
            continue
        html = (folder / deck).read_text(encoding="utf-8")
        expected = len(slide_cells(jupytext.read(source)))
        found = len(SLIDE_START.findall(html))
        if found != expected:
            problems.append(f"{deck}: {found} slides, but {source.name} tags {expected} cells")
        if 'src="reveal.js/dist/reveal.js"' not in html:
            problems.append(f"{deck}: does not load reveal.js from reveal.js/dist/reveal.js")
        left = ROLE.search(re.sub(r"<pre\b.*?</pre>", "", html, flags=re.DOTALL))
        if left:
            problems.append(f"{deck}: a MyST role is left unresolved: {left[0]}")
    return problems


# --- the check ---------------------------------------------------------------------------------------------

def check_decks(site: Path, root: Path = ROOT, browser: str | None = None) -> tuple[int, list[str]]:
    """Open every chapter's deck from disk in headless Chromium with every host name unresolvable.

    A deck passes when reveal.js started (its ``.reveal`` element has the class ``ready``), it has
    one slide per tagged cell, every formula was typeset by MathJax (no ``$`` left in a slide's text
    outside code), and it requested nothing over http(s). tools/check_offline.py's flags and net-log
    reading are reused.

    Returns:
        The number of decks opened, and one line per problem.

    Raises:
        RuntimeError: if no Chromium is found (callers decide whether that skips or fails).
    """
    import check_offline

    browser = browser or check_offline.find_browser()
    if browser is None:
        raise RuntimeError("no Chromium found (Debian: apt-get install chromium)")
    problems, opened = [], 0
    for chapter, _ in chapter_sources(Path(root)):
        deck = Path(site) / FOLDER / f"{chapter}.html"
        if not deck.is_file():
            problems.append(f"{deck}: the deck is missing")
            continue
        problems += check_deck(browser, deck)
        opened += 1
    return opened, problems


def check_deck(browser: str, deck: Path) -> list[str]:
    """Problems of one deck opened from disk, offline (see :func:`check_decks`)."""
    import check_offline

    expected = len(SLIDE_START.findall(deck.read_text(encoding="utf-8")))
    with tempfile.TemporaryDirectory() as profile:
        log = Path(profile) / "net-log.json"
        result = subprocess.run([browser, *check_offline.FLAGS, f"--user-data-dir={profile}/user",
                                 f"--log-net-log={log}", "--dump-dom", deck.resolve().as_uri()],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0 or not result.stdout:
            return [f"{deck}: the browser could not open it (exit {result.returncode})"]
        dom = result.stdout
        try:
            net_log = json.loads(log.read_text())
        except json.JSONDecodeError:  # Chromium may leave the closing brackets off when it stops
            net_log = json.loads(log.read_text().rstrip().rstrip(",") + "]}")
    problems = [f"{deck}: requests a resource outside the site: {url}"
                for url in check_offline.outside_requests(net_log)]
    reveal = re.search(r'<div class="(?P<classes>[^"]*\breveal\b[^"]*)"', dom)
    if reveal is None or "ready" not in reveal["classes"].split():
        problems.append(f"{deck}: reveal.js did not start (no .reveal.ready element)")
    slides = len(SLIDE_START.findall(dom))
    if expected == 0 or slides < expected:
        problems.append(f"{deck}: {slides} slides in the page, {expected} in the file")
    text = re.sub(r"<(pre|code|script|style|mjx-container)\b.*?</\1>", "", dom, flags=re.DOTALL)
    text = re.sub(r"<[^>]+>", "", text)
    if re.search(r"\$[^$\s][^$]*\$", text):
        problems.append(f"{deck}: a formula was not typeset (a $...$ is left in the text)")
    return problems


# --- the Sphinx extension and the command line ----------------------------------------------------------

def write_into_site(app: Any, exception: Exception | None) -> None:
    """Write the decks into the built HTML site (``build-finished``, after the executed notebooks are copied)."""
    if exception is None and app.builder.format == "html":
        write_decks(Path(app.outdir), Path(app.srcdir))


def setup(app: Any) -> dict[str, Any]:
    """Write the decks at the end of every HTML build."""
    app.connect("build-finished", write_into_site, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", default="_build/html", type=Path, help="the built site")
    parser.add_argument("--check", action="store_true", help="open each deck offline in headless Chromium")
    parser.add_argument("--require-browser", action="store_true", help="with --check: fail, not skip, without Chromium")
    arguments = parser.parse_args(argv)
    if not arguments.check:
        for deck in write_decks(arguments.site):
            print(f"{deck} ({deck.stat().st_size / 1e6:.1f} MB)")
        return 0
    try:
        opened, problems = check_decks(arguments.site)
    except RuntimeError as error:
        print(f"SKIPPED the decks' offline check: {error}; the decks were NOT opened")
        return 1 if arguments.require_browser else 0
    for problem in problems:
        print(problem)
    print(f"slides check: {opened} decks opened from disk, offline, in headless Chromium, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
