"""The Chinese edition's tools: the language switch, its site check, the Chinese-prose check, the cache count."""

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from check_chinese import check_edition, check_page, cjk_share, glossary_terms, prose_text, terms_used  # noqa: E402
from check_site import check_language_switch  # noqa: E402
from language_switch import switch_href, switch_html  # noqa: E402
from zh_edition import executed_since  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def article(body: str) -> str:
    return f'<html><nav>Contents</nav><article class="bd-article">{body}</article></html>'


def write_site(site: Path, pages: list[str], book: Path) -> None:
    """A site whose pages link to each other exactly as tools/language_switch.py writes them."""
    (book / "_toc.yml").write_text("root: " + pages[0] + "\nchapters:\n" +
                                   "".join(f"  - file: {page}\n" for page in pages[1:]), encoding="utf-8")
    for page in pages:
        for translation, path in ((False, site / f"{page}.html"), (True, site / "zh" / f"{page}.html")):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(article(switch_html(f"{page}.html", translation)), encoding="utf-8")


@pytest.mark.parametrize("page", ["intro", "book/concepts", "a/b/c"])
def test_the_switch_leads_to_the_same_page_and_back(page):
    from urllib.parse import urljoin

    english = f"http://site/{page}.html"
    chinese = urljoin(english, switch_href(f"{page}.html", translation=False))
    assert chinese == f"http://site/zh/{page}.html"
    assert urljoin(chinese, switch_href(f"{page}.html", translation=True)) == english


def test_switch_rejects_absolute_or_empty_pages():
    for bad in ["", "/book/a.html", "https://e.org/a.html", None]:
        with pytest.raises(ValueError, match="target_uri must be"):
            switch_href(bad, translation=False)
    with pytest.raises(ValueError, match="folder must be one folder name"):
        switch_href("a.html", translation=False, folder="zh/cn")


def test_site_check_passes_both_directions_and_names_each_broken_one(tmp_path):
    site, book = tmp_path / "site", tmp_path / "book"
    book.mkdir()
    write_site(site, ["book/intro", "book/concepts"], book)
    assert check_language_switch(site, book) == []
    (site / "zh" / "book" / "concepts.html").write_text(
        article('<a class="language-switch" href="../../book/intro.html">English</a>'), encoding="utf-8")
    (site / "book" / "intro.html").write_text(article("<p>no switch</p>"), encoding="utf-8")
    assert check_language_switch(site, book) == [
        'book/intro.html: no language switch (<a class="language-switch">)',
        "zh/book/concepts.html: its language switch leads to book/intro.html, not book/concepts.html",
    ]
    (site / "zh" / "book" / "intro.html").unlink()
    assert "zh/book/intro.html: the page is missing from the site" in check_language_switch(site, book)
    with pytest.raises(ValueError, match="holding _toc.yml"):
        check_language_switch(site, tmp_path / "absent")


def test_prose_leaves_out_code_math_outputs_and_the_switch():
    html = article('<div class="language-switch"><a>English</a></div><p>迁移学习 <code>fit</code></p>'
                   '<div class="cell_input"><pre>import torch</pre></div><span class="math">\\(x\\)</span>'
                   '<div class="output"><pre>0.93</pre></div><p>复用<br>权重</p>')
    assert prose_text(html) == "迁移学习 复用权重"
    assert prose_text("<p>outside any article</p>") == ""


def test_cjk_share_counts_ideographs_against_latin_letters():
    assert cjk_share("微调 BERT") == pytest.approx(2 / 6)
    assert cjk_share("1, 2, 3 — ") == 0.0
    assert cjk_share("全是中文，标点不算。") == 1.0


def test_glossary_pairs_come_from_the_book_page():
    pairs = dict(glossary_terms(ROOT / "book" / "glossary.md"))
    # the terms the issue names, with the Chinese the glossary gives them
    assert {english: pairs[english] for english in ["transfer learning", "source task", "target task", "fine-tuning",
                                                    "shared layers", "task-specific layers", "pretraining",
                                                    "fusion", "average fusion", "weighted fusion"]} == {
        "transfer learning": "迁移学习", "source task": "源任务", "target task": "目标任务", "fine-tuning": "微调",
        "shared layers": "共享层", "task-specific layers": "特定层", "pretraining": "预训练", "fusion": "融合",
        "average fusion": "平均融合", "weighted fusion": "加权融合"}


def test_glossary_without_a_chinese_term_is_rejected(tmp_path):
    page = tmp_path / "glossary.md"
    page.write_text("```{glossary}\n:sorted:\n\nadapter\n  A small module.\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'adapter' needs its Chinese term"):
        glossary_terms(page)
    page.write_text("no directive", encoding="utf-8")
    with pytest.raises(ValueError, match="has no"):
        glossary_terms(page)


def test_terms_are_whole_words_and_names_keep_their_case():
    terms = [("task", "任务"), ("LoRA", "低秩适配"), ("head", "输出头")]
    assert terms_used("multi-task heads; the LoRA rank", terms) == [("LoRA", "低秩适配"), ("head", "输出头")]
    assert terms_used("a lora file, ahead", terms) == []


def test_a_page_left_english_or_missing_a_term_fails():
    terms = [("source task", "源任务"), ("fine-tuning", "微调")]
    english = article("<p>Fine-tuning starts from the source task.</p>")
    assert check_page(english, article("<p>微调从源任务开始。</p>"), terms, "book/a") == []
    assert check_page(english, article("<p>微调从 source task 开始。</p>"), terms, "book/a",
                      min_share=0.3) == [
        "zh/book/a.html: the English page uses 'source task', the Chinese page lacks its term '源任务'"]
    assert check_page(english, english, terms, "book/a")[0].startswith(
        "zh/book/a.html: 0.00 of its prose letters are Chinese, below 0.40")


def test_edition_check_needs_the_chinese_folder(tmp_path):
    with pytest.raises(ValueError, match="Chinese edition in zh/"):
        check_edition(tmp_path)
    (tmp_path / "zh").mkdir()
    with pytest.raises(ValueError, match="min_share must be"):
        check_edition(tmp_path, ROOT, ["book/intro"], min_share=2)
    assert check_edition(tmp_path, ROOT, ["book/intro"]) == ["zh/searchindex.js: missing from the site",
                                                              "book/intro.html: missing from the site",
                                                              "zh/book/intro.html: missing from the site"]


def test_executed_since_counts_records_added_after_the_start(tmp_path):
    from jupyter_cache import get_cache
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    notebook.cells[0].outputs = []
    path = tmp_path / "a.ipynb"
    nbformat.write(notebook, str(path))
    cache = get_cache(str(tmp_path / "cache" / "key"))
    before = time.time() - 1
    cache.cache_notebook_file(str(path), check_validity=False)
    assert executed_since(tmp_path / "cache", before) == [str(path)]
    assert executed_since(tmp_path / "cache", time.time() + 1) == []
    assert executed_since(tmp_path / "absent", before) == []
    with pytest.raises(TypeError, match="start must be"):
        executed_since(tmp_path / "cache", "now")


def test_search_index_without_chinese_words_is_named():
    # Sphinx writes Search.setIndex({...}); without jieba the Chinese text is not split into words
    from check_chinese import search_problems

    terms = [("fine-tuning", "微调")]
    assert search_problems('Search.setIndex({"terms": {"微调": 1, "model": 2}})', terms) == []
    assert "no Chinese word is indexed" in search_problems('Search.setIndex({"terms": {"model": 2}})', terms)[0]
    assert "none of the glossary" in search_problems('Search.setIndex({"terms": {"一个": 2}})', terms)[0]


def test_claims_and_exercise_titles_left_in_english_are_named():
    from check_chinese import untranslated_boxes

    page = ('<p class="admonition-title"><span class="caption-number">练习 1 </span> (参数在哪里)</p>'
            '<p class="admonition-title"><span class="caption-number">练习 2 </span> (A permuted copy)</p>'
            '<span class="tl-claim-lesson">微调胜过特征提取</span>'
            '<span class="tl-claim-lesson">LP-FT beats <em>scratch</em></span>'
            '<span class="pasted-text">an MLP fine-tuned on 96 digits</span><span class="pasted-text">0.93</span>'
            '<span class="pasted-text">all-MiniLM-L6-v2</span><span class="pasted-text">在 96 个数字上</span>')
    assert untranslated_boxes(page) == ["LP-FT beats scratch", "A permuted copy", "an MLP fine-tuned on 96 digits"]
    assert untranslated_boxes("<p>no claim, no exercise</p>") == []
