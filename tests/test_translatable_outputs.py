"""tools/translatable_outputs.py: a claim's box and an exercise's title reach the catalogue and come back translated."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from translatable_outputs import HTML_PARTS, PLAIN_LINE  # noqa: E402

LESSON = "fine-tuning beats <feature> extraction"
PHRASE = "an MLP fine-tuned on 96 digits"
TRANSLATIONS = {LESSON: "微调胜过<特征>提取", "Checked": "已验证", "measured": "测得", "mean": "均值",
                "interval": "区间", "Where the parameters are": "参数在哪里", PHRASE: "在 96 个数字上微调的 MLP",
                "The numbers come from {glue:text}`models:s`.": "数字来自 {glue:text}`models:s`。"}


def glue_output(name: str, value) -> dict:
    """The display_data output myst_nb.glue(name, value, display=False) writes."""
    from myst_nb.ext.glue import GLUE_PREFIX

    return {"output_type": "display_data", "data": {GLUE_PREFIX + "text/plain": repr(value)},
            "metadata": {"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}}}


def claim_bundle(monkeypatch) -> dict:
    """The display bundle tlcourse.claims.expect shows for a claim that holds, with an interval."""
    import IPython
    import IPython.display

    from tlcourse.claims import expect
    from tlcourse.metrics import paired_difference
    from tlcourse.profiles import get_profile

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda bundle, raw: shown.append(bundle))
    difference = paired_difference([0.9, 0.92, 0.91], [0.8, 0.83, 0.8])
    expect(LESSON, difference.low, above=0.0, interval=difference, profile=get_profile("cpu"))
    return shown[0]


def write_project(folder: Path, bundle: dict) -> None:
    cell = {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": "expect(...)",
            "outputs": [{"output_type": "display_data", "metadata": {}, "data": bundle},
                        glue_output("models", PHRASE), glue_output("count", 96)]}
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Page\n\nA paragraph.\n\n"
         "```{exercise} Where the parameters are\n:label: ex-one\n\nCount them.\n```"}, cell,
        {"cell_type": "markdown", "metadata": {}, "source": "The numbers come from {glue:text}`models:s`."}]}
    (folder / "index.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    (folder / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'tools')!r})\n"
        "extensions = ['myst_nb', 'sphinx_exercise', 'translatable_outputs']\n"
        "nb_execution_mode = 'off'\nmyst_enable_extensions = ['colon_fence']\n"
        "locale_dirs = ['locales/']\ngettext_compact = False\nexclude_patterns = ['_build']\n", encoding="utf-8")


def sphinx(folder: Path, builder: str, language: str = "en") -> Path:
    from sphinx.cmd.build import build_main

    output = folder / "_build" / f"{builder}-{language}"
    status = build_main(["-q", "-b", builder, "-D", f"language={language}", str(folder), str(output),
                         "-d", str(output / ".doctrees")])
    assert status == 0
    return output


def test_the_patterns_match_what_claims_writes(monkeypatch):
    bundle = claim_bundle(monkeypatch)
    parts = HTML_PARTS.fullmatch(bundle["text/html"])
    assert parts and parts["title"] == "Checked" and parts["lesson"] == "fine-tuning beats &lt;feature&gt; extraction"
    assert parts["detail"].startswith("(measured ") and "95% interval [" in parts["detail"]
    line = PLAIN_LINE.fullmatch(bundle["text/plain"])
    assert line and line["outcome"] == "claim holds" and line["lesson"] == LESSON
    assert line["detail"].startswith("measured ")


def test_messages_are_extracted_and_the_chinese_page_shows_them(tmp_path, monkeypatch):
    pytest.importorskip("myst_nb")
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po

    bundle = claim_bundle(monkeypatch)
    write_project(tmp_path, bundle)
    english = (sphinx(tmp_path, "html") / "index.html").read_text(encoding="utf-8")
    assert bundle["text/html"] in english  # the English page shows the output exactly as it ran

    pot = sphinx(tmp_path, "gettext") / "index.pot"
    with pot.open("rb") as handle:
        messages = {message.id for message in read_po(handle) if message.id}
    assert {LESSON, "Checked", "measured", "mean", "interval", "Where the parameters are", PHRASE} <= messages
    assert "96" not in messages  # a pasted number is not a message

    catalogue = Catalog(locale="zh_CN")
    for message in messages:
        catalogue.add(message, TRANSLATIONS.get(message, ""))
    target = tmp_path / "locales" / "zh_CN" / "LC_MESSAGES" / "index.po"
    target.parent.mkdir(parents=True)
    with target.open("wb") as handle:
        write_po(handle, catalogue)
    from myst_nb import sphinx_ as myst_nb_sphinx
    from zh_edition import _glue_in_translations

    # the Chinese edition's build lets translated paragraphs paste their page's glue; undone after the test
    monkeypatch.setattr(myst_nb_sphinx, "load_renderer", myst_nb_sphinx.load_renderer)
    monkeypatch.setattr(myst_nb_sphinx.Parser, "parse", myst_nb_sphinx.Parser.parse)
    _glue_in_translations()
    chinese = (sphinx(tmp_path, "html", "zh_CN") / "index.html").read_text(encoding="utf-8")
    assert "微调胜过&lt;特征&gt;提取" in chinese and ">已验证<" in chinese
    assert "(测得 " in chinese and "均值 0.1" in chinese and "95% 区间 [" in chinese
    assert "参数在哪里" in chinese and "Where the parameters are" not in chinese
    assert LESSON.replace("<", "&lt;").replace(">", "&gt;") not in chinese
    assert "数字来自 <span class=\"pasted-text\">在 96 个数字上微调的 MLP</span>。" in chinese and PHRASE not in chinese
    latex = "".join(path.read_text(encoding="utf-8") for path in sphinx(tmp_path, "latex", "zh_CN").glob("*.tex"))
    assert "已验证: 微调胜过\\PYGZlt{}特征\\PYGZgt{}提取 (测得 " in latex  # the plain line, as the PDF shows it
