"""Sphinx extension: each chapter's "open in Colab" button opens the notebook published with the site.

sphinx-book-theme builds the Colab link from the page's source in the repository
(``.../blob/main/book/vgg16.md``), which Colab cannot open: Colab opens ``.ipynb`` only, and the
chapters are MyST Markdown (no notebook is committed). The theme already copies each chapter's
executed notebook, generated at build time, to ``_sources/<page>.ipynb`` in the built site (the
download menu's ``.ipynb``), and ``.github/workflows/book.yml`` pushes the built site to the
published branch. This extension points the Colab button at that notebook:
``<colab_url>/github/<owner>/<repo>/blob/<published branch>/_sources/<page>.ipynb``.

Settings, all in ``_config.yml``: ``repository: url:`` (the one repository setting),
``launch_buttons: colab_url:``, and ``sphinx: config: colab_published_branch:`` (the branch the
workflow publishes the site to). Registered under ``sphinx: local_extensions:``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sphinx.application import Sphinx
from sphinx.util import logging

__all__ = ["colab_notebook_url", "retarget_colab_button", "setup"]

LOGGER = logging.getLogger(__name__)
# sphinx-book-theme adds its launch buttons at priority 501; rewrite them after it has.
PRIORITY = 502


def colab_notebook_url(colab_url: str, repository_url: str, branch: str, notebook: str) -> str:
    """The Colab address that opens ``notebook`` from ``branch`` of a GitHub repository.

    Args:
        colab_url: Colab's address, e.g. ``https://colab.research.google.com``.
        repository_url: the GitHub repository, ``https://github.com/<owner>/<repo>``.
        branch: the branch that holds the notebook (the published site's branch).
        notebook: the notebook's path in that branch, ending in ``.ipynb``.

    Returns:
        ``<colab_url>/github/<owner>/<repo>/blob/<branch>/<notebook>``.

    Raises:
        ValueError: if ``repository_url`` is not a GitHub repository, ``branch`` is empty, or
            ``notebook`` is not an ``.ipynb`` path (Colab opens nothing else).

    Example:
        >>> colab_notebook_url("https://colab.research.google.com/", "https://github.com/org/book.git",
        ...                    "gh-pages", "_sources/book/vgg16.ipynb")
        'https://colab.research.google.com/github/org/book/blob/gh-pages/_sources/book/vgg16.ipynb'
    """
    parts = urlsplit(repository_url)
    owner_and_repo = [part for part in parts.path.split("/") if part]
    if parts.netloc.lower() not in ("github.com", "www.github.com") or len(owner_and_repo) != 2:
        raise ValueError(
            f"repository_url must be https://github.com/<owner>/<repo> (Colab opens GitHub only), "
            f"got {repository_url!r}")
    if not branch or not isinstance(branch, str):
        raise ValueError(f"branch must be a non-empty branch name, got {branch!r}")
    if not notebook.endswith(".ipynb"):
        raise ValueError(f"notebook must be a path ending in .ipynb (Colab opens only notebooks), got {notebook!r}")
    owner, repo = owner_and_repo
    repo = repo.removesuffix(".git")
    return f"{colab_url.rstrip('/')}/github/{owner}/{repo}/blob/{branch}/{notebook.lstrip('/')}"


def retarget_colab_button(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                          doctree: object) -> None:
    """Point the page's Colab button at the notebook the theme copied to ``_sources``.

    An ``html-page-context`` handler.

    Args:
        app: the Sphinx application (its ``html_theme_options`` carry ``repository_url`` and
            ``launch_buttons``; its config ``colab_published_branch``).
        pagename: the page's docname, e.g. ``book/vgg16``.
        templatename: unused (the event's signature).
        context: the page's template context; ``ipynb_source`` (set by sphinx-book-theme when it
            copied the executed notebook) and ``header_buttons`` are read, the Colab button's
            ``url`` is replaced.
        doctree: unused (the event's signature).

    Returns:
        None. Pages without a generated notebook or without a Colab button are left as they are;
        a notebook page without a Colab button, when Colab is configured, is logged as a warning
        (an error in ``-W`` builds).

    Example:
        >>> from types import SimpleNamespace
        >>> app = SimpleNamespace(config=SimpleNamespace(colab_published_branch="gh-pages", html_theme_options={
        ...     "repository_url": "https://github.com/org/book",
        ...     "launch_buttons": {"colab_url": "https://colab.research.google.com"}}))
        >>> colab = {"type": "link", "text": "Colab",
        ...          "url": "https://colab.research.google.com/github/org/book/blob/main/book/a.md"}
        >>> context = {"ipynb_source": "book/a.ipynb",
        ...            "header_buttons": [{"type": "group", "label": "launch-buttons", "buttons": [colab]}]}
        >>> retarget_colab_button(app, "book/a", "page.html", context, None)
        >>> colab["url"]
        'https://colab.research.google.com/github/org/book/blob/gh-pages/_sources/book/a.ipynb'
    """
    notebook = context.get("ipynb_source")
    theme_options = app.config.html_theme_options
    colab_url = theme_options.get("launch_buttons", {}).get("colab_url", "")
    if not notebook or not colab_url:
        return  # a plain Markdown page, or Colab not configured
    url = colab_notebook_url(colab_url, theme_options.get("repository_url", ""),
                             app.config.colab_published_branch, f"_sources/{notebook}")
    buttons = [button for group in context.get("header_buttons", []) if group.get("label") == "launch-buttons"
               for button in group.get("buttons", []) if button.get("text") == "Colab"]
    if not buttons:
        LOGGER.warning(f"{pagename}: a notebook page without the theme's Colab button; its link was not set",
                       type="colab_links", location=pagename)
    for button in buttons:
        button["url"] = url


def setup(app: Sphinx) -> dict[str, Any]:
    """Register ``colab_published_branch`` and the handler (after sphinx-book-theme's launch buttons)."""
    app.add_config_value("colab_published_branch", "gh-pages", "html", types=[str])
    app.connect("html-page-context", retarget_colab_button, priority=PRIORITY)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
