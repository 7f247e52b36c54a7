"""Sphinx extension: a link on every page to the same page in the book's other language.

The English edition is the site's root, ``_build/html/``; the Chinese edition is its folder
``zh/`` (``tools/zh_edition.py`` builds it with ``language: zh_CN``). Every page of the English
edition links to ``zh/<page>.html`` and every page of the Chinese edition to ``../<page>.html``.
The links are relative, so the switch works from a static server and from disk.
``tools/check_site.py`` checks both directions. Registered under ``sphinx: local_extensions:`` in
``_config.yml``.
"""

from __future__ import annotations

from html import escape
from typing import Any

from sphinx.application import Sphinx

__all__ = ["CLASS", "switch_href", "switch_html", "setup"]

CLASS = "language-switch"  # tools/check_site.py finds the switch by this class
TRANSLATION_FOLDER = "zh"  # the Chinese edition's folder inside the English site
TRANSLATION_LANGUAGE = "zh_CN"
# (the language the link leads to as an HTML lang code, the link's text)
TO_TRANSLATION = ("zh-CN", "中文")
TO_ORIGINAL = ("en", "English")


def is_translation(language: str | None) -> bool:
    """Whether a build with this ``language`` setting is the Chinese edition."""
    return (language or "en").replace("-", "_").lower().startswith("zh")


def switch_href(target_uri: str, translation: bool, folder: str = TRANSLATION_FOLDER) -> str:
    """The link from a page to the same page in the other edition, relative to the page itself.

    Args:
        target_uri: the page's file in its own edition, e.g. ``book/concepts.html``.
        translation: True on a page of the Chinese edition (it links back to the English root).
        folder: the Chinese edition's folder inside the English site.

    Example:
        >>> switch_href("book/concepts.html", translation=False)
        '../zh/book/concepts.html'
        >>> switch_href("book/concepts.html", translation=True)
        '../../book/concepts.html'
    """
    if not isinstance(target_uri, str) or not target_uri or target_uri.startswith("/") or "://" in target_uri:
        raise ValueError(f"target_uri must be a page's relative file name such as 'book/a.html', got {target_uri!r}")
    if not isinstance(folder, str) or not folder.strip("/") or "/" in folder.strip("/"):
        raise ValueError(f"folder must be one folder name such as 'zh', got {folder!r}")
    up = "../" * target_uri.count("/")  # from the page's folder to its edition's root
    if translation:
        return f"{up}../{target_uri}"  # the Chinese root is one folder below the English root
    return f"{up}{folder.strip('/')}/{target_uri}"


def switch_html(target_uri: str, translation: bool) -> str:
    """The switch's HTML: a ``<div>`` holding one ``<a class="language-switch">``."""
    lang, text = TO_ORIGINAL if translation else TO_TRANSLATION
    return (f'<div class="{CLASS}"><a class="{CLASS} reference external" '
            f'href="{escape(switch_href(target_uri, translation))}" hreflang="{lang}" lang="{lang}">{text}</a></div>\n')


def add_switch(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Put the switch at the top of a book page's body (an ``html-page-context`` handler)."""
    if doctree is None or "body" not in context or pagename not in app.env.found_docs:
        return  # genindex, search and other generated pages have no counterpart to switch to
    target_uri = app.builder.get_target_uri(pagename)
    context["body"] = switch_html(target_uri, is_translation(app.config.language)) + context["body"]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the handler."""
    app.connect("html-page-context", add_switch)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
