"""tools/check_site.py: a static server on 127.0.0.1 fetches every page and local link of a site."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from check_site import LinkCollector, check_site  # noqa: E402


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
