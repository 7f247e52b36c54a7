"""Serve a built site on 127.0.0.1 and fetch every page and every local link in it.

Usage: python tools/check_site.py [FOLDER]   (default: _build/html)

The published book must work from any static server and when opened from disk, so every local link
must be relative (no ``/``-rooted paths, no ``file://``), must answer 200 from a plain static
server, and, when it names a fragment (``page.html#section``), the target page must have that id.
External links (``https:``, ``mailto:``) are not fetched: the check runs offline.
Exit status 0 when nothing is wrong, 1 otherwise, with one line per problem.
"""

from __future__ import annotations

import functools
import http.client
import http.server
import sys
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

__all__ = ["LinkCollector", "check_site"]

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

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
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


def check_site(folder: Path) -> list[str]:
    """Serve ``folder`` on an ephemeral port of 127.0.0.1 and check every page's local links.

    Args:
        folder: the built site, e.g. ``_build/html``.

    Returns:
        One message per problem (empty when the site is sound): a page or link that does not answer
        200, a link rooted at ``/`` or using ``file://``, or a fragment the target page lacks.

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
    return problems


def main(argv: list[str] | None = None) -> int:
    """Check the site named on the command line; print the problems; return the exit status."""
    arguments = sys.argv[1:] if argv is None else argv
    folder = Path(arguments[0] if arguments else "_build/html")
    problems = check_site(folder)
    for problem in problems:
        print(problem)
    print(f"{folder}: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
