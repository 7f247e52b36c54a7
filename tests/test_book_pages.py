"""The book's pages as a course: table of contents, glossary, run times, exercises with solutions.

These read the MyST sources; the strict book build (``jupyter-book build -W``) checks that every
role and link resolves, and tools/check_site.py that the built site serves every link.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from toc_notebooks import course_chapters, read_course_chapters, toc_files  # noqa: E402

from tests.test_references import PROSE_CITATION  # noqa: E402

CJK = re.compile(r"[\u4e00-\u9fff]")


def page_text(name: str) -> str:
    return (ROOT / f"{name}.md").read_text(encoding="utf-8")


def is_notebook(name: str) -> bool:
    text = page_text(name)
    return text.startswith("---") and "kernelspec:" in text.split("---", 2)[1]


def glossary_entries(text: str) -> list[tuple[list[str], str]]:
    """The (terms, definition) pairs of the first ``{glossary}`` directive of a MyST page.

    Args:
        text: the page's source.

    Returns:
        One pair per entry: its term lines, and its indented definition joined into one string.
    """
    body = text.split("```{glossary}", 1)[1].split("\n```", 1)[0]
    entries: list[tuple[list[str], str]] = []
    for block in re.split(r"\n\s*\n", body):
        lines = [line for line in block.splitlines() if line.strip() and not line.startswith(":")]
        terms = [line for line in lines if not line.startswith(" ")]
        definition = " ".join(line.strip() for line in lines if line.startswith(" "))
        if terms:
            entries.append((terms, definition))
    return entries


def test_glossary_entries_parses_terms_and_definitions():
    text = "```{glossary}\n:sorted:\n\nfine-tuning\n微调\n  Training more.\n  Two lines.\n\nhead\n  The top.\n```\n"
    assert glossary_entries(text) == [(["fine-tuning", "微调"], "Training more. Two lines."), (["head"], "The top.")]


def test_every_page_in_book_is_in_the_table_of_contents():
    # only_build_toc_files is on: a page missing from _toc.yml is silently left out of the site.
    listed = set(toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))))
    pages = {f"book/{path.stem}" for path in (ROOT / "book").glob("*.md")}
    assert pages <= listed, f"not in _toc.yml: {sorted(pages - listed)}"


def test_every_glossary_term_is_in_english_and_chinese_and_links_to_the_book():
    entries = glossary_entries(page_text("book/glossary"))
    assert len(entries) >= 40
    for terms, definition in entries:
        assert len(terms) == 2 and not CJK.search(terms[0]) and CJK.search(terms[1]), f"{terms}: English, then Chinese"
        assert re.search(r"\{(doc|ref|numref|eq)\}`", definition), f"{terms[0]}: no link to where the book defines it"
    required = {"transfer learning": "迁移学习", "source task": "源任务", "target task": "目标任务",
                "shared layers": "共享层", "task-specific layers": "特定层", "pretraining": "预训练",
                "fine-tuning": "微调", "fusion": "融合", "average fusion": "平均融合", "weighted fusion": "加权融合"}
    found = {terms[0]: terms[1] for terms, _ in entries}
    for english, chinese in required.items():
        assert found.get(english) == chinese, f"{english}: expected {chinese}, found {found.get(english)}"
    for english in ("linear probe", "catastrophic forgetting", "negative transfer"):
        assert english in found


def readme_cpu_seconds() -> dict[str, str]:
    """Each chapter's cpu-profile seconds from the README's timing table (``| math | 17 | 1.03 GB |``)."""
    rows = re.findall(r"^\| (\w+) \| (\d+) \| [\d.]+ GB \|$", (ROOT / "README.md").read_text(encoding="utf-8"), re.M)
    return {chapter: seconds for chapter, seconds in rows}


def test_run_times_on_the_pages_are_the_readme_measurements():
    substitutions = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["parse"]["myst_substitutions"]
    on_pages = {key.removeprefix("runtime_cpu_"): value for key, value in substitutions.items()
                if key.startswith("runtime_cpu_")}
    measured = readme_cpu_seconds()
    assert measured, "the README's cpu timing table was not found"
    assert on_pages == {chapter: f"{seconds} s" for chapter, seconds in measured.items()}


def test_every_runtime_used_on_a_page_is_defined():
    substitutions = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["parse"]["myst_substitutions"]
    for path in (ROOT / "book").glob("*.md"):
        for key in re.findall(r"\{\{\s*(\w+)\s*\}\}", path.read_text(encoding="utf-8")):
            assert key in substitutions, f"{path.name} uses {{{{ {key} }}}}, not defined in _config.yml"


# The chapters that open with objectives and close with a summary, key points in Chinese and exercises:
# the numbered part of _toc.yml (adding a chapter there is what adds it here).
COURSE_CHAPTERS = read_course_chapters()


def test_course_chapters_are_the_numbered_part_of_the_toc():
    toc = {"root": "book/intro", "parts": [{"chapters": [{"file": "book/how_to_use"}]},
                                           {"numbered": 1, "chapters": [{"file": "book/a"}, {"file": "book/b"}]}]}
    assert course_chapters(toc) == ["a", "b"]
    with pytest.raises(ValueError, match="exactly one part with numbered"):
        course_chapters({"root": "book/intro", "chapters": [{"file": "book/a"}]})
    assert "concepts" in COURSE_CHAPTERS and "glossary" not in COURSE_CHAPTERS
EXERCISE = re.compile(r"```\{exercise\}[^\n]*\n:label: ([\w-]+)")
SOLUTION = re.compile(r"`{3,4}\{solution(?:-start)?\} ([\w-]+)\n:class: dropdown")
CODE_SOLUTION = re.compile(r"\{solution-start\}.*?```\{code-cell\}.*?\{solution-end\}", re.S)


def prose(text: str) -> str:
    """A MyST page without its code cells (code may quote anything)."""
    return re.sub(r"```\{code-cell\}.*?\n```", "", text, flags=re.S)


@pytest.mark.parametrize("chapter", COURSE_CHAPTERS)
def test_chapter_opens_with_objectives_prerequisites_and_run_time(chapter):
    text = page_text(f"book/{chapter}")
    opening = text[: text.index("\n## ")]  # everything before the first section
    assert "You will be able to" in opening or "After this chapter you can" in opening, f"{chapter}: no objectives"
    # the README's measured cpu time where it has one, and always this build's own time
    readme = [f"runtime_cpu_{chapter}"] if chapter in readme_cpu_seconds() else []
    for part in ["**Prerequisites.**", "**Run time.**", f"{chapter}_page_seconds", f"{chapter}_page_profile"] + readme:
        assert part in opening, f"{chapter}: the opening lacks {part!r}"
    for key in (f"{chapter}_page_seconds", f"{chapter}_page_profile"):
        assert f'glue("{key}"' in text, f"{chapter}: {key} is shown but never glued"


@pytest.mark.parametrize("chapter", COURSE_CHAPTERS)
def test_chapter_closes_with_summary_key_points_and_exercises_with_hidden_solutions(chapter):
    text = page_text(f"book/{chapter}")
    assert "\n## Summary\n" in text and "\n### 本章要点\n" in text
    key_points = text.split("\n### 本章要点\n", 1)[1].split("\n#", 1)[0]
    assert len(re.findall(r"^- .*[\u4e00-\u9fff]", key_points, re.M)) >= 4, f"{chapter}: fewer than 4 key points"
    exercises = EXERCISE.findall(text)
    assert len(exercises) >= 4, f"{chapter}: {len(exercises)} exercises"
    assert sorted(SOLUTION.findall(text)) == sorted(exercises), f"{chapter}: each exercise needs one hidden solution"
    assert CODE_SOLUTION.search(text), f"{chapter}: no solution runs code"


@pytest.mark.parametrize("chapter", COURSE_CHAPTERS)
def test_chapter_cites_with_roles_not_prose(chapter):
    found = PROSE_CITATION.findall(prose(page_text(f"book/{chapter}")))
    assert not found, f"{chapter}: prose citations left: {found}"


# A glue role that pastes another page's value: {glue:text}`vgg16.md::vgg16_page_seconds:.0f`.
CROSS_PAGE_GLUE = re.compile(r"\{glue(?::[a-z]+)?\}`([\w/.-]+\.md)::(\w+)(:[^`]+)?`")
# A time typed into prose: "about 4.7 s", "5 minutes", "88 seconds" (measured times come from code).
TYPED_TIME = re.compile(r"\b\d+(?:\.\d+)?\s*(?:s|sec|seconds?|min|minutes?)\b")


def test_typed_time_pattern_finds_numbers_but_not_glue_or_substitutions():
    assert TYPED_TIME.search("takes about 4.7 s per step") and TYPED_TIME.search("in 5 minutes")
    assert not TYPED_TIME.search("{glue:text}`x.md::x_page_seconds:.0f` s and {{ runtime_cpu_x }}")
    assert not TYPED_TIME.search("five sessions of about two hours, 4 GB, 2 cores")


def test_landing_page_offers_three_paths_a_named_figure_and_the_chapter_map():
    text = page_text("book/intro")
    assert is_notebook("book/intro")  # its figure is drawn by tlcourse.plotting when the book is built
    for page in ("how_to_use", "course", "instructor", "glossary", "bibliography"):
        assert re.search(rf"\{{doc\}}`(?:[^`<]*<)?{page}>?`", text), f"intro does not link {page}"
    assert "plot_transfer_story()" in text and "name: fig-transfer-story" in text and "caption:" in text
    assert "{numref}`fig-transfer-story`" in text
    rows = {match.group(1): match.group(0) for match in re.finditer(r"^\| \{doc\}`(\w+)` \|.*$", text, re.M)}
    # A new chapter may join the map later: the map lists course chapters, in the book's order.
    assert list(rows) == [chapter for chapter in COURSE_CHAPTERS if chapter in rows], f"the chapter map lists {list(rows)}"
    assert len(rows) >= 6, f"the chapter map lists {list(rows)}"
    measured = readme_cpu_seconds()
    for chapter, row in rows.items():
        # the README's cpu measurement where it has one, and this build's own time, both from code
        if chapter in measured:
            assert f"{{{{ runtime_cpu_{chapter} }}}}" in row, f"{chapter}: no cpu run time"
        assert f"{chapter}.md::{chapter}_page_seconds" in row, f"{chapter}: no time of this build"


def test_course_plan_gives_each_session_its_run_times():
    text = page_text("book/course")
    rows = {match.group(1): match.group(0) for match in re.finditer(r"^\| [\w ,]+ \| \{doc\}`(\w+)` \|.*$", text, re.M)}
    assert set(rows) <= set(COURSE_CHAPTERS) and len(rows) >= 6, f"the course table lists {sorted(rows)}"
    measured = readme_cpu_seconds()
    for chapter, row in rows.items():
        assert f"{chapter}.md::{chapter}_page_seconds" in row, chapter
        if chapter in measured:
            assert f"{{{{ runtime_cpu_{chapter} }}}}" in row, chapter


def test_pages_for_readers_and_teachers_type_no_measured_times():
    for name in ("intro", "how_to_use", "course", "instructor"):
        # fenced blocks (commands, code cells) may quote anything: only the prose is searched
        found = TYPED_TIME.findall(re.sub(r"^(`{3,}).*?^\1", "", page_text(f"book/{name}"), flags=re.S | re.M))
        assert not found, f"{name}: typed times {found}: glue them or use a runtime substitution"


def test_every_cross_page_glue_names_a_key_its_page_glues():
    for path in sorted((ROOT / "book").glob("*.md")):
        for target, key, format_spec in CROSS_PAGE_GLUE.findall(path.read_text(encoding="utf-8")):
            source = (path.parent / target).read_text(encoding="utf-8")
            assert f'glue("{key}"' in source, f"{path.name} pastes {key!r}, which {target} never glues"
            # without one, myst-nb splits page::key at its last colon and finds no key "page:"
            assert format_spec, f"{path.name} pastes {target}::{key} without a format spec (add :s or :.0f)"


def test_how_to_use_sends_classrooms_to_the_instructor_page():
    text = page_text("book/how_to_use")
    offline = text.split("\n## Offline classrooms\n", 1)[1].split("\n## ", 1)[0]
    assert "{doc}`instructor`" in offline and "{doc}`course`" in offline


def test_exercises_are_numbered_per_chapter():
    # sphinx numbers an exercise <chapter>.<n> only inside a numbered toctree (numfig_secnum_depth 1):
    # a page with exercises outside the numbered part would count across the book instead.
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    (numbered,) = [part for part in toc["parts"] if part.get("numbered")]
    assert numbered["numbered"] == 1, "number chapters only, so sections keep plain titles"
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["sphinx"]["config"]
    assert config.get("numfig") is True and config.get("numfig_secnum_depth", 1) == 1
    for path in sorted((ROOT / "book").glob("*.md")):
        if EXERCISE.search(path.read_text(encoding="utf-8")):
            assert path.stem in COURSE_CHAPTERS, f"{path.name} has exercises but is not a numbered chapter"


def test_landing_page_names_the_stand_ins_and_says_gpu_is_not_measured():
    from tlcourse.assets import ASSETS

    text = prose(page_text("book/intro"))
    standins = {asset.standin for asset in ASSETS.values() if asset.canonical and asset.standin}
    assert standins == {"efficientnet-lite0-imagenet", "mnist-5k", "minilm-l6", "rotten-tomatoes-snippets"}, standins
    for name in ("EfficientNet-Lite0", "MNIST", "MiniLM-L6", "Rotten Tomatoes"):
        assert name in text, f"intro does not name the stand-in {name}"
    assert "has not been\nmeasured on a GPU" in text or "has not been measured on a GPU" in text
    assert "runs on a GPU" not in text
