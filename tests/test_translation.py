"""tools/check_translation.py on tiny catalogues; GNU msgfmt --statistics is the reference for the counts."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from check_translation import check_catalogue, check_catalogues, main, markup  # noqa: E402

HEADER = '''msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"

'''

ENTRIES = '''#: ../../book/page.md:3
msgid "Transfer learning reuses what a model learned on the {term}`source task`."
msgstr "迁移学习复用模型在{term}`源任务`（source task）上学到的东西。"

#: ../../book/page.md:5
msgid "See {doc}`math` for the gradients of `cpu` runs, with $x^2$."
msgstr "梯度见 {doc}`math`，`cpu` 运行，含 $x^2$。"

#: ../../book/page.md:7
msgid "A paragraph nobody translated yet, long enough to be cut when it is named in the report."
msgstr ""

#: ../../book/page.md:9
#, fuzzy
msgid "The English of this paragraph changed."
msgstr "旧的翻译。"

#: ../../book/page.md:11
msgid "Glued: {glue:text}`concepts.md::concepts_page_seconds:.0f` s."
msgstr "粘贴的值：{glue:text}`concepts_page_seconds` 秒。"

#~ msgid "An obsolete entry."
#~ msgstr ""
'''


def write(folder: Path, page: str, text: str) -> Path:
    path = folder / "LC_MESSAGES" / f"{page}.po"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + text, encoding="utf-8")
    return path


def test_counts_and_problems_name_the_page_and_the_paragraph(tmp_path):
    path = write(tmp_path, "book/page", ENTRIES)
    report = check_catalogue(path, tmp_path / "LC_MESSAGES")
    assert (report.page, report.translated, report.fuzzy, report.untranslated) == ("book/page", 3, 1, 1)
    assert report.problems == [
        'book/page: untranslated "A paragraph nobody translated yet, long enough to be cut ..." (page.md:7)',
        'book/page: fuzzy (the English changed; check and unmark) "The English of this paragraph changed." (page.md:9)',
        "book/page: markup changed in the translation of "
        '"Glued: {glue:text}`concepts.md::concepts_page_seconds:.0f..." (page.md:11): '
        "lost ['{glue:text}`concepts.md::concepts_page_seconds:.0f`'], added ['{glue:text}`concepts_page_seconds`']",
    ]


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext's msgfmt is not installed")
def test_counts_agree_with_msgfmt_statistics(tmp_path):
    path = write(tmp_path, "book/page", ENTRIES)
    result = subprocess.run(["msgfmt", "--statistics", "-o", "/dev/null", str(path)], capture_output=True,
                            text=True, env={"LC_ALL": "C"}, check=True)
    numbers = {kind: int(count) for count, kind in
               re.findall(r"(\d+) (translated|fuzzy|untranslated)", result.stderr)}
    report = check_catalogue(path)
    assert (report.translated, report.fuzzy, report.untranslated) == (
        numbers.get("translated", 0), numbers.get("fuzzy", 0), numbers.get("untranslated", 0))


def test_a_complete_catalogue_passes_and_the_command_line_says_so(tmp_path, capsys):
    write(tmp_path, "book/done", ENTRIES.split("#: ../../book/page.md:7")[0])
    assert main([str(tmp_path / "LC_MESSAGES")]) == 0
    output = capsys.readouterr().out
    assert "book/done: 2 translated messages, 0 fuzzy translations, 0 untranslated messages." in output
    assert "1 of 1 catalogues complete; 0 problems" in output
    write(tmp_path, "book/page", ENTRIES)
    assert main([str(tmp_path / "LC_MESSAGES")]) == 1


def test_a_lost_term_role_is_reported():
    assert markup("the {term}`source task` and {term}`target task`")[1] == 2
    assert markup("源任务和{term}`目标任务`")[1] == 1


def test_rejects_what_is_not_a_catalogue(tmp_path):
    with pytest.raises(ValueError, match="must be an existing .po catalogue"):
        check_catalogue(tmp_path / "absent.po")
    (tmp_path / "broken.po").write_text('a stray line\nmsgid "a"\nmsgstr "b"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="is not a valid catalogue"):
        check_catalogue(tmp_path / "broken.po")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .po catalogue found"):
        check_catalogues([tmp_path / "empty"])
    with pytest.raises(ValueError, match="no catalogue or folder"):
        check_catalogues([tmp_path / "absent"])
    with pytest.raises(TypeError, match="text must be a str"):
        markup(None)
