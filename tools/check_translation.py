"""Check the Chinese edition's catalogues: every entry translated, none fuzzy, markup kept.

Usage: python tools/check_translation.py [CATALOGUE_OR_FOLDER ...]   (default: locales/zh_CN/LC_MESSAGES)

For each catalogue (one ``.po`` per page, e.g. ``locales/zh_CN/LC_MESSAGES/book/glossary.po``) it
prints the counts ``msgfmt --statistics`` prints (translated, fuzzy, untranslated), then one line
per problem, naming the page and the paragraph by the start of its English text:

- an entry with an empty ``msgstr`` (a new English paragraph, never translated);
- an entry marked ``fuzzy`` (its English changed since it was translated: ``make po`` kept the
  old translation as a guess);
- a translation that lost or changed the MyST markup a reader's page depends on: a role other than
  ``{term}`` (``{doc}``, ``{glue:text}``, ``{cite:p}``, ``{numref}``, ...) with its target, inline
  code, inline math, or a link target must appear in the translation as in the English; a
  ``{term}`` role may name the Chinese term instead (the glossary defines both), but the number
  of ``{term}`` roles must stay the same (Sphinx warns otherwise).

Exit status 0 when nothing is wrong, 1 otherwise. Obsolete entries (``#~``) are ignored, as
msgfmt ignores them.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.pofile import read_po

__all__ = ["CatalogueReport", "check_catalogue", "check_catalogues", "markup", "main"]

ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
EXCERPT = 60  # characters of the English text that name a paragraph

# {role}`content`; inline code `...`; inline math $...$; the target of a Markdown link [text](target)
ROLE = re.compile(r"\{([\w:.+-]+)\}`([^`]*)`")
TITLED = re.compile(r"[^<>]*<([^<>]+)>", re.DOTALL)
CODE = re.compile(r"(?<![`}])`([^`]+)`")
MATH = re.compile(r"(?<![\\$])\$([^$\n]+)\$")
LINK_TARGET = re.compile(r"\]\(([^)\s]+)\)")


def markup(text: str) -> tuple[Counter, int]:
    """The markup a translation must keep: (the protected pieces, the number of ``{term}`` roles).

    Example:
        >>> pieces, terms = markup("See {doc}`math` and {term}`fine-tuning`, with `cpu` and $x^2$.")
        >>> sorted(pieces), terms
        (['$x^2$', '`cpu`', '{doc}`math`'], 1)
        >>> markup("the {doc}`course plan <course>`") == markup("{doc}`课程计划 <course>`")
        True
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    pieces: Counter = Counter()
    terms = 0
    for role, content in ROLE.findall(text):
        if role == "term":
            terms += 1
        else:  # with an explicit title, {doc}`the plan <course>`, only the target must stay
            titled = TITLED.fullmatch(content)
            pieces[f"{{{role}}}`{'<' + titled.group(1) + '>' if titled else content}`"] += 1
    without_roles = ROLE.sub(" ", text)
    pieces.update(f"`{code}`" for code in CODE.findall(without_roles))
    pieces.update(f"${math}$" for math in MATH.findall(CODE.sub(" ", without_roles)))
    pieces.update(f"]({target})" for target in LINK_TARGET.findall(without_roles))
    return pieces, terms


@dataclass
class CatalogueReport:
    """The counts and problems of one catalogue."""

    page: str
    translated: int = 0
    fuzzy: int = 0
    untranslated: int = 0
    problems: list[str] = field(default_factory=list)

    def statistics(self) -> str:
        """The counts in msgfmt --statistics' words."""
        return (f"{self.page}: {self.translated} translated messages, {self.fuzzy} fuzzy translations, "
                f"{self.untranslated} untranslated messages.")


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[:EXCERPT - 3] + "..."


def _page_name(path: Path, base: Path | None) -> str:
    try:
        return path.relative_to(base).with_suffix("").as_posix() if base else path.stem
    except ValueError:
        return path.with_suffix("").name


def check_catalogue(path: Path, base: Path | None = None) -> CatalogueReport:
    """Count and check one ``.po`` file.

    Args:
        path: the catalogue, e.g. ``locales/zh_CN/LC_MESSAGES/book/glossary.po``.
        base: the ``LC_MESSAGES`` folder, to name the page ``book/glossary``; without it, the
            file's stem.

    Returns:
        Its :class:`CatalogueReport`. Each problem reads
        ``<page>: <kind> "<start of the English>" (<source file:line>)``.

    Raises:
        ValueError: if ``path`` is not a readable ``.po`` file.
    """
    path = Path(path)
    if path.suffix != ".po" or not path.is_file():
        raise ValueError(f"path must be an existing .po catalogue, got {str(path)!r}")
    try:
        with path.open("rb") as handle:
            catalog = read_po(handle, abort_invalid=True)
    except Exception as error:  # babel raises its PoFileError, and others on broken files
        raise ValueError(f"{path} is not a valid catalogue: {error}") from error
    report = CatalogueReport(_page_name(path, base))
    for message in catalog:
        if not message.id:
            continue  # the header
        english = message.id if isinstance(message.id, str) else message.id[0]
        chinese = message.string if isinstance(message.string, str) else (message.string or [""])[0]
        where = ", ".join(f"{Path(file).name}:{line}" for file, line in message.locations[:1]) or "no location"
        named = f'"{_excerpt(english)}" ({where})'
        if message.fuzzy:
            report.fuzzy += 1
            report.problems.append(f"{report.page}: fuzzy (the English changed; check and unmark) {named}")
        elif not chinese:
            report.untranslated += 1
            report.problems.append(f"{report.page}: untranslated {named}")
        else:
            report.translated += 1
            expected, expected_terms = markup(english)
            found, found_terms = markup(chinese)
            lost = sorted((expected - found).elements())
            added = sorted((found - expected).elements())
            if lost or added:
                report.problems.append(f"{report.page}: markup changed in the translation of {named}: "
                                       f"lost {lost}, added {added}")
            if expected_terms != found_terms:
                report.problems.append(f"{report.page}: {expected_terms} {{term}} roles in the English, "
                                       f"{found_terms} in the translation of {named}")
    return report


def check_catalogues(paths: list[Path]) -> list[CatalogueReport]:
    """Check every ``.po`` file named, or found under a folder named, in a stable order.

    Raises:
        ValueError: if a path does not exist, or no catalogue is found.
    """
    reports = []
    for path in map(Path, paths):
        if path.is_dir():
            reports += [check_catalogue(file, path) for file in sorted(path.rglob("*.po"))]
        elif path.is_file():
            base = next((parent for parent in path.parents if parent.name == "LC_MESSAGES"), None)
            reports.append(check_catalogue(path, base))
        else:
            raise ValueError(f"no catalogue or folder at {str(path)!r}")
    if not reports:
        raise ValueError(f"no .po catalogue found in {[str(path) for path in paths]}")
    return reports


def main(argv: list[str] | None = None) -> int:
    """Check the catalogues named on the command line; print counts and problems; return the status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("paths", nargs="*", default=[str(CATALOGUES)],
                        help=f"catalogues or folders of them (default: {CATALOGUES.relative_to(ROOT)})")
    arguments = parser.parse_args(argv)
    reports = check_catalogues(arguments.paths)
    problems = [problem for report in reports for problem in report.problems]
    for report in reports:
        print(report.statistics())
    for problem in problems:
        print(problem)
    complete = sum(1 for report in reports if not report.problems)
    print(f"{complete} of {len(reports)} catalogues complete; {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
