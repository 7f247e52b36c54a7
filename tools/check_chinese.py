"""Check the built Chinese edition: its pages are in Chinese and use the glossary's Chinese terms.

Usage: python tools/check_chinese.py [SITE] [--pages book/intro ...] [--translated-only] [--min-share S]

SITE is the English site with the Chinese edition in its ``zh/`` folder (default: _build/html).
For each page of ``_toc.yml`` (or those named), the prose of ``zh/<page>.html`` is read: the
text of the page's article without code, math, notebook inputs, printed outputs, data frames and
the bibliography's entries. Two checks:

- **Chinese.** The share of CJK ideographs among the prose's CJK ideographs and Latin letters
  must be at least ``--min-share`` (default 0.4). A Chinese sentence keeps English names (PyTorch,
  LoRA, file names), so the share of a translated page is below 1; an English page's is near 0.
- **Claims, exercises, glued phrases.** Every claim's box (``tl-claim-lesson``), every exercise's
  title and every phrase a code cell glued into a paragraph holds Chinese: they are outputs,
  directive arguments and pasted values, which ``tools/translatable_outputs.py`` sends through the
  catalogue, and a page could be Chinese overall with them left English.
- **Terms.** Every glossary term (``book/glossary.md``: each entry's English term, then its
  Chinese one) whose English appears in the English page's prose must appear, in Chinese, in the
  Chinese page's prose. Plurals count (``adapters``); case matters for names written with capitals
  (``LoRA``), not for the others.

``--translated-only`` checks only the pages whose catalogue is complete
(``tools/check_translation.py``): the pages a translator has finished. Exit status 0 when nothing
is wrong, 1 otherwise, one line per problem.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_translation import CATALOGUES, check_catalogue  # noqa: E402
from toc_notebooks import toc_files  # noqa: E402

__all__ = ["cjk_share", "glossary_terms", "prose_text", "terms_used", "untranslated_boxes", "check_page", "check_edition", "main"]

ROOT = Path(__file__).resolve().parent.parent
FOLDER = "zh"
MIN_SHARE = 0.4  # translated pages measured 0.54-0.82 (smoke build, 2026-12-07), English ones 0.00-0.02
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z]")
# Subtrees that are not prose: code, math, notebook inputs, printed outputs, tables of numbers,
# the bibliography's entries (titles stay in their language), the switch and the pilcrows.
SKIP_TAGS = {"script", "style", "pre", "code", "math", "svg", "button"}
SKIP_CLASSES = {"math", "cell_input", "output", "dataframe", "citation", "citation-list", "language-switch",
                "headerlink", "highlight", "toggle-details__summary"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Prose(HTMLParser):
    """Collect the text inside ``<article class="bd-article">``, minus the skipped subtrees."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.depth = 0  # open elements (void ones excluded)
        self.article: int | None = None  # depth at which the article opened
        self.skip: int | None = None  # depth at which a skipped subtree opened

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID_TAGS:
            return
        self.depth += 1
        classes = set((dict(attrs).get("class") or "").split())
        if self.article is None and tag == "article" and "bd-article" in classes:
            self.article = self.depth
        elif self.article is not None and self.skip is None and (tag in SKIP_TAGS or classes & SKIP_CLASSES):
            self.skip = self.depth

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # <br/>, <img/>: no text, no depth

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS:
            return
        if self.skip == self.depth:
            self.skip = None
        if self.article == self.depth:
            self.article = -1  # closed: nothing more is collected
        self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.article is not None and self.article > 0 and self.skip is None:
            self.parts.append(data)


def prose_text(html: str) -> str:
    """The prose of a built page: its article's text without code, math, outputs or citations.

    Example:
        >>> prose_text('<nav>menu</nav><article class="bd-article"><p>迁移 <code>fit</code> '
        ...            '<span class="math">x</span>learning</p></article><p>footer</p>')
        '迁移 learning'
    """
    if not isinstance(html, str):
        raise TypeError(f"html must be a str, got {type(html).__name__}")
    parser = _Prose()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split())


def cjk_share(text: str) -> float:
    """CJK ideographs / (CJK ideographs + Latin letters) in ``text``; 0.0 when it has neither.

    Example:
        >>> cjk_share("迁移学习 LoRA")
        0.5
    """
    cjk, latin = len(CJK.findall(text)), len(LATIN.findall(text))
    return cjk / (cjk + latin) if cjk + latin else 0.0


def glossary_terms(glossary: Path) -> list[tuple[str, str]]:
    """The (English, Chinese) term pairs of the book's glossary page, in its order.

    Each entry of its ``{glossary}`` directive starts with two unindented lines, the English term
    and the Chinese term, followed by the indented definition.

    Raises:
        ValueError: if the file has no glossary directive, or an entry lacks a Chinese term line.
    """
    text = Path(glossary).read_text(encoding="utf-8")
    block = re.search(r"^```\{glossary\}[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    if block is None:
        raise ValueError(f"{glossary} has no ```{{glossary}} directive")
    pairs = []
    for entry in re.split(r"\n\s*\n", block.group(1)):
        lines = [line for line in entry.splitlines() if line.strip() and not line.startswith(":")]
        names = [line.strip() for line in lines if not line[0].isspace()]
        if not names:
            continue
        if len(names) < 2 or not CJK.search(names[1]):
            raise ValueError(f"{glossary}: the entry {names[0]!r} needs its Chinese term on the line after it")
        pairs.append((names[0], names[1]))
    return pairs


def terms_used(text: str, terms: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs whose English term appears in ``text`` (whole words; plural -s or -es allowed).

    Example:
        >>> terms_used("Two adapters and a LoRA; lora is not the name.",
        ...            [("adapter", "适配器"), ("LoRA", "低秩适配"), ("head", "输出头")])
        [('adapter', '适配器'), ('LoRA', '低秩适配')]
    """
    used = []
    for english, chinese in terms:
        flags = 0 if english != english.lower() else re.IGNORECASE  # names with capitals keep them
        if re.search(rf"(?<![\w-]){re.escape(english)}(?:s|es)?(?![\w-])", text, flags):
            used.append((english, chinese))
    return used


CLAIM_LESSON = re.compile(r'<span class="tl-claim-lesson">(.*?)</span>', re.DOTALL)
# sphinx-exercise's title: <p class="admonition-title"><span class="caption-number">练习 4.2 </span> (TITLE)</p>
EXERCISE_TITLE = re.compile(r'<p class="admonition-title">(?:<span class="caption-number">[^<]*</span>)?\s*'
                            r'\((.*?)\)</p>', re.DOTALL)


PASTED_TEXT = re.compile(r'<span class="pasted-text">([^<]*)</span>')


def untranslated_boxes(chinese_html: str) -> list[str]:
    """The claims' lessons, exercises' titles and glued phrases of a Chinese page that hold no Chinese character."""
    from translatable_outputs import PHRASE  # the pasted values that are messages: phrases, not numbers or names

    found = (CLAIM_LESSON.findall(chinese_html) + EXERCISE_TITLE.findall(chinese_html)
             + [text for text in PASTED_TEXT.findall(chinese_html) if PHRASE.search(text)])
    return [re.sub(r"<[^>]+>", "", text).strip() for text in found if not CJK.search(text)]


def check_page(english_html: str, chinese_html: str, terms: list[tuple[str, str]], page: str,
               min_share: float = MIN_SHARE) -> list[str]:
    """The problems of one page pair: too little Chinese, a claim or exercise title left English, a term missing."""
    english, chinese = prose_text(english_html), prose_text(chinese_html)
    problems = [f"{FOLDER}/{page}.html: a claim, an exercise title or a glued phrase is not translated: {text[:70]!r}"
                for text in untranslated_boxes(chinese_html)]
    share = cjk_share(chinese)
    if share < min_share:
        problems.append(f"{FOLDER}/{page}.html: {share:.2f} of its prose letters are Chinese, "
                        f"below {min_share:.2f} (is the page translated?)")
    squashed = chinese.replace(" ", "")
    for english_term, chinese_term in terms_used(english, terms):
        if chinese_term.replace(" ", "") not in squashed:
            problems.append(f"{FOLDER}/{page}.html: the English page uses {english_term!r}, "
                            f"the Chinese page lacks its term {chinese_term!r}")
    return problems


def complete_pages(catalogues: Path = CATALOGUES) -> list[str]:
    """The pages whose catalogue has every entry translated and none fuzzy (e.g. ``book/glossary``)."""
    return [report.page for report in (check_catalogue(path, catalogues) for path in sorted(catalogues.rglob("*.po")))
            if not report.problems]


def search_problems(index_js: str, terms: list[tuple[str, str]]) -> list[str]:
    """Whether the Chinese edition's search index holds Chinese words: Sphinx splits them only with jieba."""
    body = index_js[index_js.index("(") + 1:index_js.rindex(")")]  # Search.setIndex({...})
    words = set(json.loads(body)["terms"])
    chinese = [word for word in words if any("\u4e00" <= character <= "\u9fff" for character in word)]
    if not chinese:
        return [f"{FOLDER}/searchindex.js: no Chinese word is indexed, so searching in Chinese finds nothing "
                "(is jieba installed? pip install -r requirements.txt)"]
    found = [chinese_term for _, chinese_term in terms if chinese_term in words]
    return [] if found else [f"{FOLDER}/searchindex.js: none of the glossary's Chinese terms is indexed"]


def check_edition(site: Path, book: Path = ROOT, pages: list[str] | None = None,
                  min_share: float = MIN_SHARE) -> list[str]:
    """Check the Chinese edition ``site/zh`` page by page against the English ``site``.

    Args:
        site: the English site holding the Chinese one in ``zh/``, e.g. ``_build/html``.
        book: the book's sources (``_toc.yml``, ``book/glossary.md``).
        pages: the docnames to check, e.g. ``["book/intro"]``; every page of ``_toc.yml`` when None.
        min_share: the least share of CJK ideographs a Chinese page's prose must have.

    Raises:
        ValueError: if ``site`` has no ``zh/`` folder, or ``min_share`` is not in [0, 1].
    """
    site, book = Path(site), Path(book)
    if not (site / FOLDER).is_dir():
        raise ValueError(f"site must be the English site with the Chinese edition in {FOLDER}/, got {str(site)!r}")
    if not isinstance(min_share, (int, float)) or not 0 <= min_share <= 1:
        raise ValueError(f"min_share must be a number in [0, 1], got {min_share!r}")
    terms = glossary_terms(book / "book" / "glossary.md")
    if pages is None:
        pages = [name.removesuffix(".md") for name in
                 toc_files(yaml.safe_load((book / "_toc.yml").read_text(encoding="utf-8")))]
    index = site / FOLDER / "searchindex.js"
    problems = search_problems(index.read_text(encoding="utf-8"), terms) if index.is_file() else [
        f"{FOLDER}/searchindex.js: missing from the site"]
    for page in pages:
        english, chinese = site / f"{page}.html", site / FOLDER / f"{page}.html"
        missing = [path for path in (english, chinese) if not path.is_file()]
        if missing:
            problems += [f"{path.relative_to(site)}: missing from the site" for path in missing]
            continue
        problems += check_page(english.read_text(encoding="utf-8"), chinese.read_text(encoding="utf-8"), terms,
                               page, min_share)
    return problems


def main(argv: list[str] | None = None) -> int:
    """Check the site named on the command line; print the problems; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("site", nargs="?", default="_build/html",
                        help="the English site, with zh/ (default: _build/html)")
    parser.add_argument("--book", default=str(ROOT), help="the book's sources (default: this repository)")
    parser.add_argument("--pages", nargs="+", help="docnames to check, e.g. book/intro (default: every page)")
    parser.add_argument("--translated-only", action="store_true", help="only the pages whose catalogue is complete")
    parser.add_argument("--min-share", type=float, default=MIN_SHARE, help=f"least CJK share (default {MIN_SHARE})")
    arguments = parser.parse_args(argv)
    pages = arguments.pages
    if arguments.translated_only:
        complete = complete_pages(Path(arguments.book) / "locales" / "zh_CN" / "LC_MESSAGES")
        pages = [page for page in (pages or complete) if page in complete]
    problems = check_edition(Path(arguments.site), Path(arguments.book), pages, arguments.min_share)
    for problem in problems:
        print(problem)
    checked = "every page" if pages is None else f"{len(pages)} pages ({', '.join(pages)})"
    print(f"{arguments.site}/{FOLDER}: {checked} checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
