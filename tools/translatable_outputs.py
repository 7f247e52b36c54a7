"""Sphinx extension: claims' boxes, exercises' titles and glued phrases go through the page's catalogue.

Sphinx translates the paragraphs of a page, but three kinds of text on the book's pages are not
paragraphs:

- a claim's box is a cell output (``tlcourse.claims.expect`` displays it as HTML, with a plain line
  for other formats), so Sphinx treats it as code;
- an exercise's title (``{exercise} Where VGG16's parameters are``) is a node sphinx-exercise
  builds without a source line, so Sphinx skips it;
- a phrase a code cell glued (``glue("fusion_models_and_data", f"an MLP with ...")``, pasted by
  ``{glue:text}`fusion_models_and_data:s```) is inserted into the translated paragraph as it ran,
  in English.

A claim's box becomes a :class:`claim_box` node, one of Sphinx's ``translatable`` nodes: its
messages (the outcome, e.g. "Checked"; the lesson; the words "measured", "mean", "interval") go
into the page's catalogue with ``make pot``/``make po``, and the Chinese edition shows them
translated. The measured numbers stay as they ran. Exercise titles get their node's source
line, so they are extracted and translated like any paragraph. A pasted phrase (words and spaces, not a number or a single
name) is extracted as a message of its own, and the Chinese edition pastes its translation. The
phrase comes from the run, so a changed setting (another count of digits) changes the message,
and the catalogue check asks for a new translation. In an English build nothing changes.

Registered under ``sphinx: local_extensions:`` in ``_config.yml``.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.nodes import get_node_line, get_node_source

__all__ = ["claim_box", "ClaimMessages", "ExerciseTitleSource", "PastedPhraseMessages", "PastedPhraseTranslation", "ExerciseTitlesForCatalogue", "ClaimOutputs", "setup"]

# the HTML tlcourse.claims writes: the title paragraph, the lesson and the measured detail
HTML_PARTS = re.compile(r'(?P<head>.*?tl-claim-title">)(?P<title>.*?)(?P<middle></p>\s*<p><span class="tl-claim-lesson">)'
                        r'(?P<lesson>.*?)(?P<between></span>\s*<span class="tl-claim-measured">)(?P<detail>.*?)'
                        r'(?P<tail></span>.*)', re.DOTALL)
# its plain line: "claim holds: <lesson> (<detail>)", detail starting with "measured"
PLAIN_LINE = re.compile(r"(?P<outcome>claim holds|claim does not hold|claim not checked in the \w+ profile): "
                        r"(?P<lesson>.*) \((?P<detail>measured .*)\)\s*", re.DOTALL)
TITLES = {"claim holds": "Checked", "claim does not hold": "Claim failed"}  # else "Not checked"
DETAIL_WORDS = ("measured", "mean", "interval", "and")
DETAIL_WORD = re.compile(r"\b(" + "|".join(DETAIL_WORDS) + r")\b")
PHRASE = re.compile(r"[A-Za-z]{3,}\S*\s+\S*[A-Za-z]{2,}")  # two words at least: not a number, not a name


def _pasted_phrases(document: nodes.document) -> list[nodes.inline]:
    return [node for node in document.findall(nodes.inline)
            if "pasted-text" in node["classes"] and PHRASE.search(node.astext())]


class claim_box(nodes.Element, addnodes.translatable):
    """A claim's output: ``title``, ``lesson`` and ``detail`` (numbers) are kept apart to be translated."""

    def preserve_original_messages(self) -> None:
        self.setdefault("translations", {})

    def extract_original_messages(self) -> list[str]:
        words = [word for word in DETAIL_WORDS if re.search(rf"\b{word}\b", self["detail"])]
        return [self["title"], self["lesson"], *words]

    def apply_translated_message(self, original_message: str, translated_message: str) -> None:
        self.setdefault("translations", {})[original_message] = translated_message

    def translated(self, message: str) -> str:
        return self.get("translations", {}).get(message, message)

    def translated_detail(self) -> str:
        return DETAIL_WORD.sub(lambda match: self.translated(match.group(1)), self["detail"])


def _located(node: nodes.Node, document: nodes.document) -> tuple[str, int]:
    try:
        source = get_node_source(node)
    except ValueError:
        source = document["source"]
    try:
        line = get_node_line(node)
    except ValueError:
        line = 0
    return source, line


class ExerciseTitleSource(SphinxTransform):
    """Give sphinx-exercise's title nodes the exercise's source line, so they are translated."""

    default_priority = 9  # before Sphinx's ApplySourceWorkaround (10) and Locale (20)

    def apply(self, **kwargs: Any) -> None:
        from sphinx_exercise.nodes import exercise_subtitle

        for node in self.document.findall(exercise_subtitle):
            if not node.source:
                node.source, node.line = _located(node, self.document)
            node.rawsource = node.rawsource or node.astext()


class PastedPhraseMessages(SphinxTransform):
    """For the catalogue builder: each glued phrase pasted into a paragraph is a message too."""

    default_priority = 9

    def apply(self, **kwargs: Any) -> None:
        if self.app.builder.name != "gettext":
            return
        for node in _pasted_phrases(self.document):
            node["translatable"] = True
            node.rawsource = node.astext()
            if not node.source:
                node.source, node.line = _located(node, self.document)


class PastedPhraseTranslation(SphinxTransform):
    """In a translated build, paste each glued phrase's translation (after Locale re-parsed the paragraphs)."""

    default_priority = 21  # Locale is 20: the translated paragraphs' glue roles have pasted by then

    def apply(self, **kwargs: Any) -> None:
        if (self.config.language or "en").startswith("en"):
            return
        from sphinx.locale import init as init_locale
        from sphinx.util.i18n import docname_to_domain

        dirs = [str(Path(self.env.srcdir) / directory) for directory in self.config.locale_dirs]
        catalogue, found = init_locale(dirs, self.config.language,
                                       docname_to_domain(self.env.docname, self.config.gettext_compact))
        if not found:
            return
        for node in _pasted_phrases(self.document):
            translated = catalogue.gettext(node.astext())
            if translated and translated != node.astext():
                node.children = []
                node += nodes.Text(translated)


class ClaimMessages(SphinxTransform):
    """Replace each claim output (HTML or plain) with a :class:`claim_box` holding its messages."""

    default_priority = 9  # before Sphinx's PreserveTranslatableMessages (10) and Locale (20)

    def apply(self, **kwargs: Any) -> None:
        english = (self.config.language or "en").startswith("en")
        if english and self.app.builder.name != "gettext":
            return  # nothing to translate: the outputs stay exactly as they ran
        for node in list(self.document.findall(nodes.raw)):
            parts = HTML_PARTS.fullmatch(node.astext()) if "tl-claim-lesson" in node.astext() else None
            if parts:
                self._replace(node, "html", html.unescape(parts["title"]), html.unescape(parts["lesson"]),
                              html.unescape(parts["detail"]).strip()[1:-1])
        for node in list(self.document.findall(nodes.literal_block)):
            parts = PLAIN_LINE.fullmatch(node.astext()) if node.astext().startswith("claim ") else None
            if parts:
                self._replace(node, "text", TITLES.get(parts["outcome"], "Not checked"), parts["lesson"],
                              parts["detail"])

    def _replace(self, node: nodes.Element, kind: str, title: str, lesson: str, detail: str) -> None:
        box = claim_box(kind=kind, title=title, lesson=lesson, detail=detail, original=node.astext(),
                        output=node.deepcopy())  # the output node, with its format, language and classes
        box.source, box.line = _located(node, self.document)
        node.replace_self(box)


class ExerciseTitlesForCatalogue(SphinxPostTransform):
    """For the catalogue builder only: keep each exercise title as its own node.

    sphinx-exercise's ``ResolveTitlesInExercises`` (priority 20) merges it into a new title that
    the catalogue builder would not read; the translation itself happens earlier, at reading.
    """

    default_priority = 19
    builders = ("gettext",)

    def run(self, **kwargs: Any) -> None:
        from sphinx_exercise.nodes import exercise_subtitle

        for subtitle in list(self.document.findall(exercise_subtitle)):
            title = subtitle.parent
            title.remove(subtitle)
            title.parent.insert(title.parent.index(title) + 1, subtitle)


class ClaimOutputs(SphinxPostTransform):
    """Write each :class:`claim_box` back as the output it was, in the page's language."""

    default_priority = 5

    def run(self, **kwargs: Any) -> None:
        if self.app.builder.name == "gettext":
            return  # the catalogue builder reads the boxes' messages
        for box in list(self.document.findall(claim_box)):
            lesson, title, detail = box.translated(box["lesson"]), box.translated(box["title"]), box.translated_detail()
            if box["kind"] == "html":
                parts = HTML_PARTS.fullmatch(box["original"])
                text = (f'{parts["head"]}{html.escape(title)}{parts["middle"]}{html.escape(lesson)}'
                        f'{parts["between"]}({html.escape(detail)}){parts["tail"]}')
            else:
                text = f"{title}: {lesson} ({detail})"
            output = box["output"].deepcopy()
            output.rawsource = text
            output.children = []
            output += nodes.Text(text)
            box.replace_self(output)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_node(claim_box)
    app.add_transform(ExerciseTitleSource)
    app.add_transform(ClaimMessages)
    app.add_transform(PastedPhraseMessages)
    app.add_transform(PastedPhraseTranslation)
    app.add_post_transform(ExerciseTitlesForCatalogue)
    app.add_post_transform(ClaimOutputs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
