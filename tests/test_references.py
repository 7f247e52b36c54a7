"""The book's references have one source, ``references.bib``: every ``{cite}`` in a page, every
BibTeX key in the asset registry, and the asset table on the bibliography page must agree with it.

The BibTeX file is read with pybtex (the parser sphinxcontrib-bibtex itself uses), an independent
reference for what the book build will resolve.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pybtex.database import BibliographyData, parse_file

from tlcourse.assets import ASSETS

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
# {cite}`a`, {cite:p}`a,b`, {cite:t}`a`, {cite:ps}`a` ... : the roles sphinxcontrib-bibtex defines.
CITE_ROLE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
# A prose citation that was not turned into a role: "Kumar et al., 2022", "Pan & Yang (2010".
PROSE_CITATION = re.compile(r"[A-Z][A-Za-z\-]+ (?:et al\.|(?:&|and) [A-Z][A-Za-z\-]+),? \(?(?:19|20)\d\d")


def cited_keys(text: str) -> set[str]:
    """Every BibTeX key cited with a ``{cite...}`` role in MyST text.

    Args:
        text: the page's source.

    Returns:
        The keys, with multi-key citations (``{cite:p}`a,b```) split.
    """
    return {key.strip() for group in CITE_ROLE.findall(text) for key in group.split(",") if key.strip()}


def first_author_surname(entry) -> str:
    """The first author's surname, accents in LaTeX markup removed (``L{\\'e}on`` -> ``Leon``)."""
    person = entry.persons["author"][0]
    return re.sub(r"[{}\\'`^\"~]", "", " ".join(person.prelast_names + person.last_names))


@pytest.fixture(scope="module")
def bibliography() -> BibliographyData:
    return parse_file(str(ROOT / "references.bib"))


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(BOOK.glob("*.md"))}


def test_cited_keys_reads_every_role_form():
    text = "As {cite:t}`pan2010survey` and {cite:p}`kumar2022lpft, li2018l2sp` and {cite}`x1` say."
    assert cited_keys(text) == {"pan2010survey", "kumar2022lpft", "li2018l2sp", "x1"}
    assert cited_keys("no roles here, only `code`") == set()


def test_prose_citation_pattern_finds_unconverted_citations():
    assert PROSE_CITATION.search("LP-FT (Kumar et al., 2022) fine-tunes")
    assert PROSE_CITATION.search("Following Pan & Yang (2010, *A Survey*)")
    assert not PROSE_CITATION.search("LP-FT {cite:p}`kumar2022lpft` fine-tunes")


def test_every_entry_has_author_title_and_year(bibliography):
    for key, entry in bibliography.entries.items():
        assert entry.persons.get("author"), f"{key} has no author"
        for field in ("title", "year"):
            assert entry.fields.get(field), f"{key} has no {field}"
        assert re.fullmatch(r"(19|20)\d\d", entry.fields["year"]), f"{key}: year {entry.fields['year']!r}"


def test_every_citation_in_the_book_resolves(bibliography, pages):
    missing = {name: sorted(cited_keys(text) - set(bibliography.entries)) for name, text in pages.items()}
    assert not {name: keys for name, keys in missing.items() if keys}, "cited keys absent from references.bib"


def test_the_book_cites_the_core_works(bibliography, pages):
    cited = set().union(*(cited_keys(text) for text in pages.values()))
    core = {"pan2010survey", "yosinski2014transferable", "simonyan2015vgg", "devlin2019bert", "kumar2022lpft",
            "li2018l2sp", "wortsman2022wiseft", "wortsman2022soups"}
    assert core <= cited, f"never cited: {sorted(core - cited)}"


def test_every_asset_cites_entries_of_the_bibliography(bibliography):
    for asset in ASSETS.values():
        assert asset.references, f"asset {asset.name} names no BibTeX key"
        for key in asset.references:
            assert key in bibliography.entries, f"asset {asset.name}: {key!r} is not in references.bib"


def test_asset_citation_agrees_with_its_entries(bibliography):
    # The short citation shown by the registry names each referenced work's first author and year.
    for asset in ASSETS.values():
        for key in asset.references:
            entry = bibliography.entries[key]
            surname, year = first_author_surname(entry), entry.fields["year"]
            assert surname in asset.citation and year in asset.citation, (
                f"asset {asset.name}: citation {asset.citation!r} does not name {surname} ({year}) of {key}")


def test_bibliography_page_lists_every_asset_with_its_keys(pages):
    rows = {}
    for line in pages["bibliography.md"].splitlines():
        match = re.match(r"\| `([a-z0-9\-]+)` \|[^|]*\|(.*)\|$", line)
        if match:
            rows[match.group(1)] = tuple(sorted(cited_keys(match.group(2))))
    assert rows == {name: tuple(sorted(asset.references)) for name, asset in ASSETS.items()}
