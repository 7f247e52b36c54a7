"""tools/check_offline.py: formulas render and nothing is fetched from outside, with the network off."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from check_offline import find_browser, main, outside_requests, unrendered_formulas  # noqa: E402

PAGE = """<html><head><script defer src="{mathjax}"></script></head><body>
<p>Inline <span class="math notranslate nohighlight">\\(\\mathcal{{D}} = (\\mathcal{{X}}, P(X))\\)</span>.</p>
<div class="math notranslate nohighlight">\\[f(x) = h(g(x))\\]</div></body></html>"""


def test_unrendered_formulas_finds_raw_tex_but_not_typeset_math():
    raw = '<span class="math notranslate nohighlight">\\(x^2\\)</span><div class="math">\\[y\\]</div>'
    typeset = '<span class="math notranslate nohighlight"><mjx-container jax="CHTML">x</mjx-container></span>'
    assert unrendered_formulas(raw) == ["\\(x^2\\)", "\\[y\\]"]
    assert unrendered_formulas(typeset) == []
    assert unrendered_formulas('<span class="mathematics">\\(no\\)</span>') == []  # not a math element


def test_outside_requests_keeps_the_page_s_requests_not_the_browser_s():
    log = {"constants": {"logEventTypes": {"URL_REQUEST_START_JOB": 7, "OTHER": 8}},
           "events": [{"type": 7, "params": {"url": "https://cdn.example/m.js", "initiator": "null"}},
                      {"type": 7, "params": {"url": "https://accounts.google.com/x", "initiator": "not an origin"}},
                      {"type": 7, "params": {"url": "file:///site/_static/a.js", "initiator": "null"}},
                      {"type": 8, "params": {"url": "https://other.example/"}}]}
    assert outside_requests(log) == ["https://cdn.example/m.js"]


@pytest.fixture
def site(tmp_path):
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None:
        pytest.skip("sphinx-mathjax-offline is not installed")
    shutil.copytree(Path(spec.origin).parent / "static" / "mathjax", tmp_path / "_static" / "mathjax")
    (tmp_path / "index.html").write_text(PAGE.format(mathjax="_static/mathjax/tex-chtml.js"))
    return tmp_path


@pytest.mark.skipif(find_browser() is None, reason="no Chromium here (Debian: apt-get install chromium)")
def test_a_site_with_local_mathjax_passes_offline(site, capsys):
    assert main([str(site), "--require-browser"]) == 0
    assert "1 pages opened from disk" in capsys.readouterr().out


@pytest.mark.skipif(find_browser() is None, reason="no Chromium here (Debian: apt-get install chromium)")
def test_a_page_that_needs_a_cdn_fails_offline(site, capsys):
    (site / "cdn.html").write_text(PAGE.format(mathjax="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"))
    assert main([str(site)]) == 1
    out = capsys.readouterr().out
    assert "cdn.html: formula not rendered: \\(\\mathcal{D}" in out
    assert "cdn.html: requests a resource outside the site: https://cdn.jsdelivr.net/" in out
    assert "index.html" not in out.replace("index.html is missing", "")


def test_without_a_browser_the_check_says_it_was_skipped(site, capsys, monkeypatch):
    monkeypatch.setattr("check_offline.find_browser", lambda: None)
    assert main([str(site)]) == 0
    assert "SKIPPED the offline check" in capsys.readouterr().out
    assert main([str(site), "--require-browser"]) == 1
