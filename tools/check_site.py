"""Serve a built site on 127.0.0.1 and fetch every page and every local link in it.

Usage: python tools/check_site.py [FOLDER]   (default: _build/html)

The published book must work from any static server and when opened from disk, so every local link
must be relative (no ``/``-rooted paths, no ``file://``), must answer 200 from a plain static
server, and, when it names a fragment (``page.html#section``), the target page must have that id.
External links (``https:``, ``mailto:``) are not fetched: the check runs offline.

With the book's sources (``--book ROOT``, default: this repository), every chapter page of
``_toc.yml`` that is a notebook is checked too: the notebook generated from it at build time,
``_sources/<page>.ipynb``, is in the site, is a valid executed notebook whose first code cell is the
Colab install cell, the page's download menu links to it, and the page's Colab button opens that same
file on the published branch (``sphinx: config: colab_published_branch`` in ``_config.yml``), and
every page of both editions has a language switch leading to the same page in the other one (the
Chinese edition in ``zh/``, tools/zh_edition.py). Exit status 0 when nothing is wrong, 1 otherwise,
with one line per problem.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import http.server
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import nbformat
import yaml
import slides
import student_edition
from toc_notebooks import toc_files  # tools/ is on the path: run as a script, or as the tests import it

__all__ = ["LinkCollector", "chapter_pages", "check_chapter_notebooks", "check_language_switch", "check_site",
           "expected_colab_link"]

ROOT = Path(__file__).resolve().parent.parent
# The guard of tools/colab_install_cell.py: the generated notebook's first code cell carries it.
COLAB_GUARD = '"google.colab" in sys.modules'
DOWNLOAD_NOTEBOOK_CLASS = "btn-download-notebook-button"  # sphinx-book-theme's .ipynb download link

# Attributes that load or link a resource, by tag.
LINK_ATTRIBUTES = {"a": "href", "link": "href", "script": "src", "img": "src", "iframe": "src", "source": "src"}
EXTERNAL_SCHEMES = ("http:", "https:", "mailto:", "data:", "javascript:", "tel:")


class LinkCollector(HTMLParser):
    """Collect the local links and the element ids of one HTML page.

    Example:
        >>> collector = LinkCollector()
        >>> collector.feed('<p id="top"><a href="b.html#x">b</a><img src="https://e.org/i.png"></p>')
        >>> collector.links, sorted(collector.ids)
        (['b.html#x'], ['top'])
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.anchors: list[tuple[str, set[str]]] = []  # (href, class names) of every <a href>, external too

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href"):
            self.anchors.append((attributes["href"], set((attributes.get("class") or "").split())))
        for name in ("id", "name"):  # old-style <a name="..."> anchors count as targets too
            if attributes.get(name) and (name == "id" or tag == "a"):
                self.ids.add(attributes[name])
        value = attributes.get(LINK_ATTRIBUTES.get(tag, ""))
        if value and not value.lower().startswith(EXTERNAL_SCHEMES) and not value.startswith("#"):
            self.links.append(value)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass  # one line per request would bury the problems


def _fetch(url: str) -> tuple[int | str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except (ValueError, http.client.HTTPException) as error:  # e.g. control characters in the URL
        return f"an invalid URL ({error.__class__.__name__})", b""


def check_site(folder: Path, book: Path | None = None) -> list[str]:
    """Serve ``folder`` on an ephemeral port of 127.0.0.1 and check every page's local links.

    Args:
        folder: the built site, e.g. ``_build/html``.
        book: the book's sources (the folder with ``_config.yml`` and ``_toc.yml``); when given, the
            chapters' generated notebooks and their download and Colab links are checked too
            (:func:`check_chapter_notebooks`).

    Returns:
        One message per problem (empty when the site is sound): a page or link that does not answer
        200, a link rooted at ``/`` or using ``file://``, a fragment the target page lacks, and
        with ``book`` the problems :func:`check_chapter_notebooks` reports, and those of each chapter's
        student notebook and slide deck (``site_problems`` in tools/student_edition.py and tools/slides.py).

    Raises:
        ValueError: if ``folder`` is not a folder with at least one ``.html`` page.

    Example:
        >>> import tempfile
        >>> site = Path(tempfile.mkdtemp())
        >>> _ = (site / "index.html").write_text('<a href="missing.html">x</a>')
        >>> check_site(site)
        ['index.html: missing.html answers 404']
    """
    folder = Path(folder)
    # _static holds the theme's Jinja snippets (webpack-macros.html), not pages.
    pages = sorted(page for page in folder.rglob("*.html") if "_static" not in page.relative_to(folder).parts) \
        if folder.is_dir() else []
    if not pages:
        raise ValueError(f"folder must be a built site with .html pages, got {str(folder)!r}")
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []
    ids: dict[str, set[str]] = {}  # page URL without fragment -> ids found in it

    def page_ids(url: str) -> set[str] | None:
        if url not in ids:
            status, body = _fetch(url)
            if status != 200:
                return None
            collector = LinkCollector()
            collector.feed(body.decode("utf-8", errors="replace"))
            ids[url] = collector.ids
        return ids[url]

    try:
        for page in pages:
            name = page.relative_to(folder).as_posix()
            page_url = urljoin(base, name)
            status, body = _fetch(page_url)
            if status != 200:
                problems.append(f"{name}: the page itself answers {status}")
                continue
            collector = LinkCollector()
            collector.feed(body.decode("utf-8", errors="replace"))
            for link in collector.links:
                if link.startswith("/") or link.lower().startswith("file:"):
                    problems.append(f"{name}: {link} is not relative (breaks when opened from disk)")
                    continue
                target = urljoin(page_url, link)
                path, fragment = target.split("#", 1) if "#" in target else (target, "")
                path = urlsplit(path)._replace(query="").geturl()
                if path.endswith("/"):
                    path += "index.html"
                if path.endswith(".html"):
                    found = page_ids(path)
                    if found is None:
                        problems.append(f"{name}: {link} answers {_fetch(path)[0]}")
                    elif fragment and unquote(fragment) not in found:
                        problems.append(f"{name}: {link} names #{fragment}, absent from its page")
                else:
                    status = _fetch(path)[0]
                    if status != 200:
                        problems.append(f"{name}: {link} answers {status}")
    finally:
        server.shutdown()
        server.server_close()
    if book is not None:
        problems += check_chapter_notebooks(folder, book)
        # each chapter's student notebook (linked, present, no solution) and its slide deck
        problems += student_edition.site_problems(folder, book) + slides.site_problems(folder, book)
    return problems


def chapter_pages(book: Path) -> list[str]:
    """The pages of the book's ``_toc.yml`` that are notebooks (MyST files with a ``kernelspec`` header).

    Args:
        book: the folder with ``_toc.yml`` and the pages' ``.md`` sources.

    Returns:
        Their docnames in reading order, e.g. ``["book/concepts", "book/vgg16"]``; plain Markdown
        pages (no code, hence no notebook and no launch button) are left out.

    Raises:
        ValueError: if ``book`` has no ``_toc.yml``, or a page it lists has no ``.md`` source.

    Example:
        >>> import tempfile
        >>> book = Path(tempfile.mkdtemp())
        >>> _ = (book / "_toc.yml").write_text("root: intro\\nchapters:\\n  - file: run\\n")
        >>> _ = (book / "intro.md").write_text("# Intro")
        >>> _ = (book / "run.md").write_text("---\\nkernelspec:\\n  name: python3\\n---\\n# Run")
        >>> chapter_pages(book)
        ['run']
    """
    toc_path = Path(book) / "_toc.yml"
    if not toc_path.is_file():
        raise ValueError(f"book must be the folder holding _toc.yml, got {str(book)!r}")
    names = toc_files(yaml.safe_load(toc_path.read_text(encoding="utf-8")))
    pages = []
    for name in names:
        name = name.removesuffix(".md")
        source = Path(book) / f"{name}.md"
        if not source.is_file():
            raise ValueError(f"_toc.yml lists {name!r}, but {str(source)!r} does not exist")
        text = source.read_text(encoding="utf-8")
        front_matter = text.split("---", 2)[1] if text.startswith("---") else ""
        if "kernelspec:" in front_matter:
            pages.append(name)
    return pages


def expected_colab_link(config: dict, page: str) -> str:
    """The Colab address that must open ``page``'s generated notebook, from the book's ``_config.yml``.

    Args:
        config: the parsed ``_config.yml``: ``repository: url:`` (a GitHub repository),
            ``launch_buttons: colab_url:`` and ``sphinx: config: colab_published_branch:``.
        page: the page's docname, e.g. ``book/vgg16``.

    Returns:
        ``<colab_url>/github/<owner>/<repo>/blob/<published branch>/_sources/<page>.ipynb``.

    Raises:
        ValueError: if one of the three settings is missing or the repository is not on GitHub.

    Example:
        >>> config = {"repository": {"url": "https://github.com/org/book"},
        ...           "launch_buttons": {"colab_url": "https://colab.research.google.com"},
        ...           "sphinx": {"config": {"colab_published_branch": "gh-pages"}}}
        >>> expected_colab_link(config, "book/vgg16")
        'https://colab.research.google.com/github/org/book/blob/gh-pages/_sources/book/vgg16.ipynb'
    """
    repository = (config.get("repository") or {}).get("url", "")
    colab_url = (config.get("launch_buttons") or {}).get("colab_url", "")
    branch = ((config.get("sphinx") or {}).get("config") or {}).get("colab_published_branch", "")
    owner_and_repo = urlsplit(repository).path.strip("/").removesuffix(".git").split("/")
    if not repository.startswith("https://github.com/") or len(owner_and_repo) != 2:
        raise ValueError(
            f"_config.yml's repository: url: must be https://github.com/<owner>/<repo>, got {repository!r}")
    if not colab_url or not branch:
        raise ValueError("_config.yml must set launch_buttons: colab_url: and sphinx: config: colab_published_branch:, "
                         f"got {colab_url!r} and {branch!r}")
    return f"{colab_url.rstrip('/')}/github/{'/'.join(owner_and_repo)}/blob/{branch}/_sources/{page}.ipynb"


def _notebook_problems(path: Path, label: str) -> list[str]:
    """Problems of one generated notebook: unreadable, invalid, no install cell first, not executed."""
    try:
        notebook = nbformat.read(str(path), as_version=4)
        nbformat.validate(notebook)
    except (OSError, ValueError, nbformat.ValidationError) as error:  # ValueError: e.g. not JSON
        first_line = (str(error).strip().splitlines() or [""])[0]
        return [f"{label} is not a valid notebook ({error.__class__.__name__}: {first_line})"]
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    problems = []
    if not code_cells or COLAB_GUARD not in code_cells[0].source:
        problems.append(f"{label}: its first code cell is not the Colab install cell (tools/colab_install_cell.py)")
    if not any(cell.get("execution_count") for cell in code_cells):
        problems.append(f"{label} was not executed (no code cell has an execution count)")
    return problems


def check_chapter_notebooks(folder: Path, book: Path) -> list[str]:
    """Check that every chapter page opens its generated notebook from the download menu and in Colab.

    For each notebook page of ``book``'s ``_toc.yml`` (:func:`chapter_pages`), e.g. ``book/vgg16``:
    ``_sources/book/vgg16.ipynb`` exists in the site, is a valid notebook (nbformat) that was
    executed and whose first code cell is the Colab install cell; ``book/vgg16.html`` has the
    theme's ``.ipynb`` download link and it points at that file; the page has a Colab link and every
    Colab link is :func:`expected_colab_link` (the same file on the published branch).

    Args:
        folder: the built site, e.g. ``_build/html``.
        book: the folder with the book's ``_config.yml``, ``_toc.yml`` and page sources.

    Returns:
        One message per problem, prefixed with the page's HTML path; empty when all is sound.

    Raises:
        ValueError: if ``book`` lacks ``_toc.yml`` or ``_config.yml`` or its Colab settings.
    """
    folder, book = Path(folder), Path(book)
    config_path = book / "_config.yml"
    if not config_path.is_file():
        raise ValueError(f"book must be the folder holding _config.yml, got {str(book)!r}")
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    colab_url = (config.get("launch_buttons") or {}).get("colab_url", "").rstrip("/")
    problems = []
    for page in chapter_pages(book):
        html = f"{page}.html"
        notebook = f"_sources/{page}.ipynb"
        if not (folder / notebook).is_file():
            problems.append(f"{html}: {notebook}, the notebook generated from {page}.md, is missing from the site")
        else:
            problems += _notebook_problems(folder / notebook, notebook)
        if not (folder / html).is_file():
            problems.append(f"{html}: the page is missing from the site")
            continue
        collector = LinkCollector()
        collector.feed((folder / html).read_text(encoding="utf-8", errors="replace"))
        page_url = f"http://site/{html}"  # only to resolve the page's relative links
        downloads = [href for href, classes in collector.anchors if DOWNLOAD_NOTEBOOK_CLASS in classes]
        if not downloads:
            problems.append(f"{html}: no .ipynb download link ({DOWNLOAD_NOTEBOOK_CLASS})")
        for href in downloads:
            if urljoin(page_url, href) != f"http://site/{notebook}":
                problems.append(f"{html}: the .ipynb download link {href} does not point at {notebook}")
        colab_links = [href for href, _ in collector.anchors if colab_url and href.startswith(colab_url)]
        expected = expected_colab_link(config, page)
        if not colab_links:
            problems.append(f"{html}: no Colab link (expected {expected})")
        for href in colab_links:
            if href != expected:
                problems.append(f"{html}: the Colab link {href} is not {expected}")
    return problems


LANGUAGE_SWITCH_CLASS = "language-switch"  # tools/language_switch.py's link to the other edition
TRANSLATION_FOLDER = "zh"  # the Chinese edition inside the English site (tools/zh_edition.py)


def check_language_switch(folder: Path, book: Path) -> list[str]:
    """Check that every page of both editions links to the same page in the other one.

    For each page of ``book``'s ``_toc.yml``, e.g. ``book/vgg16``: ``book/vgg16.html`` has one
    ``<a class="language-switch">`` leading to ``zh/book/vgg16.html``, and that page's switch leads
    back to ``book/vgg16.html`` (tools/language_switch.py; the links themselves are fetched by
    :func:`check_site`).

    Args:
        folder: the English site, with the Chinese edition in ``zh/``.
        book: the folder with the book's ``_toc.yml``.

    Returns:
        One message per problem: a page missing from an edition, a page without a switch, or a
        switch that leads elsewhere.

    Example:
        >>> import tempfile
        >>> site, book = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
        >>> _ = (book / "_toc.yml").write_text("root: intro\\n")
        >>> _ = (site / "zh").mkdir()
        >>> _ = (site / "intro.html").write_text('<a class="language-switch" href="zh/intro.html">中文</a>')
        >>> _ = (site / "zh" / "intro.html").write_text('<a class="language-switch" href="index.html">EN</a>')
        >>> check_language_switch(site, book)
        ['zh/intro.html: its language switch leads to zh/index.html, not intro.html']
    """
    folder, book = Path(folder), Path(book)
    toc_path = book / "_toc.yml"
    if not toc_path.is_file():
        raise ValueError(f"book must be the folder holding _toc.yml, got {str(book)!r}")
    problems = []
    for name in toc_files(yaml.safe_load(toc_path.read_text(encoding="utf-8"))):
        page = f"{name.removesuffix('.md')}.html"
        for here, there in ((page, f"{TRANSLATION_FOLDER}/{page}"), (f"{TRANSLATION_FOLDER}/{page}", page)):
            if not (folder / here).is_file():
                problems.append(f"{here}: the page is missing from the site")
                continue
            collector = LinkCollector()
            collector.feed((folder / here).read_text(encoding="utf-8", errors="replace"))
            switches = [href for href, classes in collector.anchors if LANGUAGE_SWITCH_CLASS in classes]
            if not switches:
                problems.append(f"{here}: no language switch (<a class=\"{LANGUAGE_SWITCH_CLASS}\">)")
            for href in switches:
                target = urljoin(f"http://site/{here}", href).removeprefix("http://site/")
                if target != there:
                    problems.append(f"{here}: its language switch leads to {target}, not {there}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Check the site named on the command line; print the problems; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("folder", nargs="?", default="_build/html", help="the built site (default: _build/html)")
    parser.add_argument("--book", default=str(ROOT),
                        help="the book's sources, with _config.yml and _toc.yml (default: this repository)")
    parser.add_argument("--links-only", action="store_true", help="skip the chapters' notebooks and launch links")
    arguments = parser.parse_args(argv)
    folder = Path(arguments.folder)
    problems = check_site(folder, None if arguments.links_only else Path(arguments.book))
    if not arguments.links_only:
        problems += check_language_switch(folder, Path(arguments.book))
    for problem in problems:
        print(problem)
    print(f"{folder}: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
