"""Build the book's Chinese edition, and refresh its gettext catalogues after English edits.

Usage (from the repository root; `make book`, `make pot` and `make po` run these):

    python tools/zh_edition.py build [--path-output DIR] [-W] [--keep-going]
    python tools/zh_edition.py pdf [--path-output DIR]   # the Chinese PDF: DIR/_build/zh/latex/book.pdf
    python tools/zh_edition.py pot                  # English messages -> _build/gettext/book/<page>.pot
    python tools/zh_edition.py po [--pages book/concepts ...]   # pot, then sphinx-intl update:
                                                    # locales/zh_CN/LC_MESSAGES/book/<page>.po

``build`` runs the same Jupyter Book configuration as ``jupyter-book build .`` with
``language: zh_CN``: Sphinx reads each page's catalogue (``locale_dirs: [locales/]``,
``gettext_compact: false`` in ``_config.yml``) and puts the translated paragraphs in place of the
English ones; an entry left untranslated or fuzzy stays English. It builds into
``DIR/_build/zh/html`` (with its own doctrees), then copies that site into the English one as
``DIR/_build/html/zh/``, where the language switch (``tools/language_switch.py``) expects it.

The notebooks are not executed again: ``tools/execution_cache.py`` picks the jupyter-cache folder
by a key that does not depend on the language, and the build takes the very folder the English
build used (from its Sphinx environment), so every chapter comes from the English build's run.
After the build, the records the cache gained during it are counted: each one is a chapter that
was executed, named, and the build fails. (Another build writing to the same cache folder at the
same time would be counted too.)

``pdf`` runs Sphinx's LaTeX builder the same way (language ``zh_CN``, the English build's
execution cache, nothing executed), then the Makefile Sphinx writes beside the LaTeX (``make
all-pdf``: latexmk with xelatex and xeCJK, as ``_config.yml`` sets), as ``jupyter-book build
--builder pdflatex`` does for the English PDF.

``pot`` runs Sphinx's gettext builder with the notebooks' outputs taken from the execution cache
and never executed (a notebook the cache lacks is read without outputs), so extracting the
English messages executes nothing.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANGUAGE = "zh_CN"
LOCALES = ROOT / "locales"
FOLDER = "zh"  # the Chinese edition's folder inside the English site (tools/language_switch.py)
TITLE = "迁移学习：可执行的教程"  # the site's title in the Chinese edition (html_title)
POT_FOLDER = ROOT / "_build" / "gettext"

__all__ = ["build_edition", "build_pdf", "english_cache_folder", "executed_since", "extract_messages", "update_catalogues",
           "main"]


def _sphinx(output: Path, doctrees: Path, builder: str, overrides: dict, strict: bool, keep_going: bool) -> int:
    """Run Sphinx with the book's Jupyter Book configuration plus ``overrides``; return its status."""
    from jupyter_book.sphinx import build_sphinx  # heavy: imported only when a build runs

    config = {"external_toc_path": (ROOT / "_toc.yml").as_posix(), "latex_individualpages": False, **overrides}
    result = build_sphinx(ROOT, output, noconfig=True, path_config=str(ROOT / "_config.yml"), confoverrides=config,
                          doctreedir=doctrees, builder=builder, warningiserror=strict, keep_going=keep_going)
    if isinstance(result, Exception):
        return 1
    return int(result or 0)


def executed_since(cache_root: Path, start: float) -> list[str]:
    """The notebooks the execution caches under ``cache_root`` recorded after ``start`` (a time.time()).

    Each record is one notebook that myst-nb executed (a cache hit adds no record), so after a
    build that should reuse the English edition's executions this list is empty.

    Args:
        cache_root: the folder of the cache folders, ``_build/jupyter-cache``.
        start: the moment the build started, in seconds since the epoch.

    Returns:
        The executed notebooks' paths, sorted; empty when nothing ran or no cache exists.
    """
    if not isinstance(start, (int, float)):
        raise TypeError(f"start must be a time.time() value, got {type(start).__name__}")
    from jupyter_cache import get_cache

    moment = datetime.fromtimestamp(start, tz=timezone.utc)
    executed = []
    for folder in sorted(Path(cache_root).glob("*/")) if Path(cache_root).is_dir() else []:
        if not (folder / "global.db").is_file():
            continue  # not a cache yet: get_cache would create one
        for record in get_cache(str(folder)).list_cache_records():
            created = record.created if record.created.tzinfo else record.created.replace(tzinfo=timezone.utc)
            if created >= moment:
                executed.append(record.uri)
    return sorted(executed)


def english_cache_folder(path_output: Path) -> Path | None:
    """The execution cache folder the English build under ``path_output`` used, or None.

    Read from that build's Sphinx environment (``_build/.doctrees/environment.pickle``, written by
    the build itself), where ``tools/execution_cache.py`` set ``nb_execution_cache_path``.
    """
    environment = Path(path_output) / "_build" / ".doctrees" / "environment.pickle"
    if not environment.is_file():
        return None
    with environment.open("rb") as handle:
        config = getattr(pickle.load(handle), "config", None)
    folder = getattr(config, "nb_execution_cache_path", "") or ""
    return Path(folder) if folder and Path(folder).is_dir() else None


def _reuse_folder(folder: Path) -> None:
    """Make tools/execution_cache.py hand myst-nb ``folder`` instead of the current key's folder."""
    import execution_cache  # tools/ is on the path; Sphinx loads this same module as a local extension

    def choose_cache(app: object, config: object) -> None:
        if config.nb_execution_mode == "cache":
            config.nb_execution_cache_path = str(folder)

    execution_cache.choose_cache = choose_cache


def _glue_in_translations() -> None:
    """Let a translated paragraph glue its own notebook's values, in this process only.

    Sphinx parses each translated message as a small document of its own. myst-nb's glue roles
    (``{glue:text}`key```) look for the notebook's renderer on that document, where it is absent,
    so a same-page key would be "not found" and the number lost. The renderer of the page being
    read is recorded, and handed to the translated messages read for that page.
    """
    from myst_nb import sphinx_ as myst_nb_sphinx

    renderers: dict[str, object] = {}  # docname -> the renderer of its notebook
    reading = {"docname": ""}  # the page whose notebook is being parsed
    load_renderer, parse = myst_nb_sphinx.load_renderer, myst_nb_sphinx.Parser.parse

    def recording_load_renderer(name: str):  # noqa: ANN202 - returns myst-nb's renderer class, wrapped
        renderer_class = load_renderer(name)

        def create(mdit_renderer, logger):  # noqa: ANN001, ANN202
            renderer = renderer_class(mdit_renderer, logger)
            renderers[reading["docname"]] = renderer
            return renderer

        return create

    def translation_aware_parse(self, inputstring: str, document) -> None:  # noqa: ANN001
        env = getattr(document.settings, "env", None)
        if env is not None and not document.current_source.endswith("<translated>"):
            reading["docname"] = env.docname
        elif env is not None and "nb_renderer" not in document.attributes and env.docname in renderers:
            document.attributes["nb_renderer"] = renderers[env.docname]  # the roles resolve during the parse
            try:
                return parse(self, inputstring, document)
            finally:
                document.attributes.pop("nb_renderer")  # as myst-nb does: a renderer is not pickled
        return parse(self, inputstring, document)

    myst_nb_sphinx.load_renderer = recording_load_renderer
    myst_nb_sphinx.Parser.parse = translation_aware_parse


def _build_translated(path_output: Path, builder: str, overrides: dict, strict: bool = False,
                      keep_going: bool = False) -> tuple[int, list[str], list[str], float]:
    """Run Sphinx's ``builder`` in Chinese into ``path_output/_build/zh/<builder>``, executing nothing.

    The notebooks' outputs come from the execution cache the English build under ``path_output``
    used (else the current key's), a notebook it lacks is read without outputs, and translated
    paragraphs glue their page's values.

    Returns:
        ``(status, missed, executed, seconds)``: Sphinx's status, the notebooks the cache lacked,
        the notebooks executed all the same (none should be), and the build's duration.
    """
    work = Path(path_output).resolve() / "_build" / FOLDER
    english = english_cache_folder(Path(path_output).resolve())
    if english is not None:
        _reuse_folder(english)
        print(f"zh edition: the English build's execution cache, {english.name}")
    missed: list[str] = []
    _reuse_cache_only(missed)  # a notebook the English build did not cache (it failed there) is not run again
    _glue_in_translations()
    start = time.time()
    doctrees = work / (".doctrees" if builder == "html" else f".doctrees-{builder}")
    status = _sphinx(work / builder, doctrees, builder, {"language": LANGUAGE, **overrides}, strict, keep_going)
    executed = sorted(set(executed_since(ROOT / "_build" / "jupyter-cache", start)))
    return status, missed, executed, time.time() - start


def build_edition(path_output: Path = ROOT, strict: bool = False, keep_going: bool = False) -> int:
    """Build the Chinese edition into ``path_output/_build/html/zh``; return 0 when it built and ran nothing.

    Its notebooks' outputs come from the execution cache the English build under ``path_output``
    used, so both editions show the numbers of the same run, even when the key changed since
    (an edit of tlcourse/, a package installed in between). Without an English build there, the
    cache is chosen by the current key, as for the English build.
    """
    base = Path(path_output).resolve() / "_build"
    status, missed, executed, seconds = _build_translated(path_output, "html", {"html_title": TITLE}, strict,
                                                          keep_going)
    for path in missed:
        print(f"zh edition: {Path(path).relative_to(ROOT)} is not in the English build's execution cache "
              "(did it fail there?); its page is shown without outputs", file=sys.stderr)
    if status != 0:
        print(f"zh edition: the Sphinx build failed (status {status}) after {seconds:.0f} s", file=sys.stderr)
        return status
    site = base / "html" / FOLDER
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(base / FOLDER / "html", site)
    print(f"zh edition: built in {seconds:.0f} s -> {site}")
    if executed:
        print(f"zh edition: {len(executed)} notebooks were executed, none should have been "
              f"(the English build's execution cache was not reused): {', '.join(executed)}", file=sys.stderr)
        return 1
    if missed:
        return 1
    print("zh edition: no notebook executed (every chapter came from the execution cache)")
    return 0


def build_pdf(path_output: Path = ROOT) -> int:
    """Typeset the Chinese edition as ``path_output/_build/zh/latex/book.pdf``; return 0 when it built and ran nothing."""
    from jupyter_book import sphinx as jupyter_book_sphinx

    # the title page: jupyter-book applies _config.yml's (English) title to latex_documents
    update_latex_documents = jupyter_book_sphinx.update_latex_documents
    jupyter_book_sphinx.update_latex_documents = lambda documents, overrides: update_latex_documents(
        documents, {**overrides, "title": TITLE})
    status, missed, executed, _ = _build_translated(path_output, "latex", {})
    if status != 0 or missed:
        print(f"zh pdf: the LaTeX build failed (status {status}) or lacked executed notebooks: {missed}",
              file=sys.stderr)
        return status or 1
    if executed:
        print(f"zh pdf: {len(executed)} notebooks were executed, none should have been: {', '.join(executed)}",
              file=sys.stderr)
        return 1
    start = time.time()
    work = Path(path_output).resolve() / "_build" / FOLDER / "latex"
    result = subprocess.run(["make", "all-pdf"], cwd=work, check=False, stdout=subprocess.DEVNULL)
    pdf = work / "book.pdf"
    if result.returncode != 0 or not pdf.is_file():
        print(f"zh pdf: xelatex failed (status {result.returncode}); its log: {work / 'book.log'}", file=sys.stderr)
        return result.returncode or 1
    print(f"zh pdf: {pdf} ({pdf.stat().st_size / 1e6:.1f} MB), typeset in {time.time() - start:.0f} s")
    return 0


def _reuse_cache_only(missed: list[str]) -> None:
    """Make myst-nb's cache mode use cached outputs but never execute, in this process only.

    The outputs matter to the catalogues: a figure made by a code cell carries its caption (a
    message) only when the cell has its output. A notebook the cache does not hold is read without
    outputs instead of being executed, and its path is appended to ``missed``.
    """
    from myst_nb.core.execute import cache as cache_module

    original = cache_module.NotebookClientCache.start_client

    def start_client(self: cache_module.NotebookClientCache) -> None:
        store = cache_module.get_cache(self.nb_config.execution_cache_path or ".jupyter_cache")
        try:
            store.match_cache_notebook(self.notebook)
        except KeyError:
            missed.append(str(self.path))
            return  # as nb_execution_mode: off
        original(self)

    cache_module.NotebookClientCache.start_client = start_client


def extract_messages(pot_folder: Path = POT_FOLDER, english_build: Path = ROOT) -> int:
    """The English messages, one ``book/<page>.pot`` per page, without executing any notebook.

    The notebooks' outputs come from the execution cache the English build under
    ``english_build`` used (else the current key's, as the build would choose it) where it holds
    them; a notebook it lacks is read without outputs, and named: its code-made figures'
    captions are then missing from the catalogue until a build has executed it.
    """
    from jupyter_book.sphinx import build_sphinx

    missed: list[str] = []
    _reuse_cache_only(missed)
    english = english_cache_folder(Path(english_build).resolve())
    if english is not None:
        _reuse_folder(english)  # the outputs of the English build's run, even if the key changed since
    config = {"external_toc_path": (ROOT / "_toc.yml").as_posix(), "latex_individualpages": False}
    # freshenv: read every page again, so a paragraph removed from the English leaves the .pot
    result = build_sphinx(ROOT, pot_folder, noconfig=True, path_config=str(ROOT / "_config.yml"),
                          confoverrides=config, doctreedir=pot_folder / ".doctrees", builder="gettext",
                          freshenv=True)
    for path in missed:
        print(f"pot: {Path(path).relative_to(ROOT)} is not in the execution cache; read without its outputs "
              "(captions of figures drawn by code are left out). Build the book first, then run this again.",
              file=sys.stderr)
    return 1 if isinstance(result, Exception) else int(result or 0)


def update_catalogues(pot_folder: Path = POT_FOLDER, english_build: Path = ROOT,
                      pages: list[str] | None = None) -> int:
    """Merge the English messages into ``locales/zh_CN/LC_MESSAGES/book/<page>.po`` (sphinx-intl update).

    A new English paragraph becomes an untranslated entry, an edited one a fuzzy entry keeping the
    old translation, a removed one an obsolete entry; translated entries are kept.

    Args:
        pot_folder: where the English messages are extracted to.
        english_build: the ``--path-output`` of the English build whose outputs to read.
        pages: docnames such as ``book/concepts`` to update; every page when None.
    """
    status = extract_messages(pot_folder, english_build)
    if status != 0:
        return status
    source = pot_folder
    if pages is not None:  # only these pages' templates, in a folder of their own
        source = pot_folder.parent / "gettext-pages"
        shutil.rmtree(source, ignore_errors=True)
        for page in pages:
            template = pot_folder / f"{page}.pot"
            if not template.is_file():
                print(f"po: no page {page!r} (expected {template})", file=sys.stderr)
                return 2
            (source / page).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(template, source / f"{page}.pot")
    command = [str(Path(sys.executable).with_name("sphinx-intl")), "update", "-p", str(source),
               "-d", str(LOCALES), "-l", LANGUAGE]
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one of build, pdf, pot, po."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the Chinese edition into <path-output>/_build/html/zh")
    build.add_argument("--path-output", default=str(ROOT), help="as jupyter-book build's (default: the repository)")
    build.add_argument("-W", dest="strict", action="store_true", help="warnings are errors")
    build.add_argument("--keep-going", action="store_true", help="with -W, report every warning before failing")
    pdf = commands.add_parser("pdf", help="typeset the Chinese PDF into <path-output>/_build/zh/latex/book.pdf")
    pdf.add_argument("--path-output", default=str(ROOT), help="the English build whose outputs to use")
    for name, text in (("pot", "extract the English messages into _build/gettext"),
                       ("po", "pot, then update the catalogues under locales/zh_CN")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--path-output", default=str(ROOT),
                             help="the English build whose notebook outputs to read (default: the repository)")
        if name == "po":
            command.add_argument("--pages", nargs="+", help="only these pages, e.g. book/concepts (default: all)")
    arguments = parser.parse_args(argv)
    if arguments.command == "build":
        return build_edition(Path(arguments.path_output), arguments.strict, arguments.keep_going)
    if arguments.command == "pdf":
        return build_pdf(Path(arguments.path_output))
    if arguments.command == "pot":
        return extract_messages(POT_FOLDER, Path(arguments.path_output))
    return update_catalogues(POT_FOLDER, Path(arguments.path_output), arguments.pages)


if __name__ == "__main__":
    raise SystemExit(main())
