"""The Colab path: launch buttons from one repository setting that open the notebooks published with the site,
an install cell that keeps Colab's torch."""
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CELL = ROOT / "tools" / "colab_install_cell.py"


def _run_cell(monkeypatch) -> list[list[str]]:
    commands: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: commands.append(command))
    path_before = list(sys.path)
    exec(compile(CELL.read_text(), str(CELL), "exec"), {"__name__": "__main__"})
    monkeypatch.setattr(sys, "path", path_before)
    return commands


def test_the_install_cell_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert _run_cell(monkeypatch) == []


def test_in_colab_the_install_cell_never_installs_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    commands = _run_cell(monkeypatch)
    assert commands[0][:2] == ["git", "clone"]
    installs = [c for c in commands if c[1:4] == ["-m", "pip", "install"]]
    assert installs and all("requirements.txt" not in " ".join(c) and "torch" not in " ".join(c) for c in installs)
    assert any("--no-deps" in c and "-e" in c for c in installs)  # tlcourse itself without its torch dependency
    requirements = [line.split("#")[0].strip() for line in (ROOT / "requirements-colab.txt").read_text().splitlines()]
    names = {re.split(r"[<>=!~ ]", line)[0].lower() for line in requirements if line}
    assert not names & {"torch", "torchvision", "jupyter-book", "nbval", "pytest", "jupytext"}, names


def test_one_repository_setting_drives_the_launch_buttons_and_the_cell():
    config = (ROOT / "_config.yml").read_text()
    url = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", config, re.MULTILINE).group(1)
    assert re.search(r"^launch_buttons:\s*\n(\s+.*\n)*?\s+colab_url:\s*\"?https://colab.research.google.com", config,
                     re.MULTILINE)
    assert f'REPOSITORY = "{url}"' in CELL.read_text()
    for chapter in (ROOT / "book").glob("*.md"):  # chapters that carry the cell carry this one
        text = chapter.read_text()
        if '"google.colab" in sys.modules' in text:
            assert CELL.read_text().strip() in text, chapter.name


# --- the Colab button opens the notebook generated at build time and published with the site --------

def _colab_links():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import colab_links
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return colab_links


def _theme_context(colab_url: str) -> dict:
    """A page context as sphinx-book-theme leaves it: the notebook copied to _sources, the Colab link to the .md."""
    return {"ipynb_source": "book/vgg16.ipynb", "header_buttons": [
        {"type": "group", "label": "download-buttons", "buttons": [
            {"type": "link", "text": ".ipynb", "url": "../_sources/book/vgg16.ipynb",
             "label": "download-notebook-button"}]},
        {"type": "group", "label": "launch-buttons", "buttons": [
            {"type": "link", "text": "Colab", "url": f"{colab_url}/github/org/book/blob/main/book/vgg16.md"}]}]}


def _app(**theme_options) -> types.SimpleNamespace:
    options = {"repository_url": "https://github.com/org/book",
               "launch_buttons": {"colab_url": "https://colab.research.google.com"}, **theme_options}
    return types.SimpleNamespace(config=types.SimpleNamespace(colab_published_branch="gh-pages",
                                                              html_theme_options=options))


def test_the_colab_button_is_pointed_at_the_published_notebook():
    colab_links = _colab_links()
    context = _theme_context("https://colab.research.google.com")
    colab_links.retarget_colab_button(_app(), "book/vgg16", "page.html", context, None)
    download, launch = (group["buttons"][0]["url"] for group in context["header_buttons"])
    assert launch == "https://colab.research.google.com/github/org/book/blob/gh-pages/_sources/book/vgg16.ipynb"
    assert download == "../_sources/book/vgg16.ipynb"  # the same file, relative to the page; left as it was


def test_pages_without_a_notebook_or_without_colab_are_left_alone():
    colab_links = _colab_links()
    context = _theme_context("https://colab.research.google.com")
    del context["ipynb_source"]  # a plain Markdown page
    colab_links.retarget_colab_button(_app(), "book/intro", "page.html", context, None)
    assert context["header_buttons"][1]["buttons"][0]["url"].endswith("/blob/main/book/vgg16.md")
    context = _theme_context("https://colab.research.google.com")
    colab_links.retarget_colab_button(_app(launch_buttons={}), "book/vgg16", "page.html", context, None)
    assert context["header_buttons"][1]["buttons"][0]["url"].endswith("/blob/main/book/vgg16.md")


def test_colab_notebook_url_rejects_what_colab_cannot_open():
    url_for = _colab_links().colab_notebook_url
    colab = "https://colab.research.google.com"
    assert url_for(colab, "https://github.com/a/b", "pages", "x.ipynb") == f"{colab}/github/a/b/blob/pages/x.ipynb"
    with pytest.raises(ValueError, match=r"repository_url must be https://github.com/<owner>/<repo> .*got 'https://gitl"):
        url_for(colab, "https://gitlab.com/a/b", "pages", "x.ipynb")
    with pytest.raises(ValueError, match="notebook must be a path ending in .ipynb .*got 'book/x.md'"):
        url_for(colab, "https://github.com/a/b", "main", "book/x.md")
    with pytest.raises(ValueError, match="branch must be a non-empty branch name, got ''"):
        url_for(colab, "https://github.com/a/b", "", "x.ipynb")


def test_the_extension_runs_after_the_theme_s_launch_buttons():
    colab_links = _colab_links()
    import sphinx_book_theme

    registered = []
    recorder = types.SimpleNamespace(
        add_config_value=lambda *args, **kwargs: None, add_js_file=lambda *args, **kwargs: None,
        connect=lambda event, handler, priority=500: registered.append((event, handler.__name__, priority)))
    colab_links.setup(recorder)
    # the theme's own registration, read from its source: add_launch_buttons and its priority
    theme_source = Path(sphinx_book_theme.__file__).read_text()
    theme_priority = int(re.search(r'connect\("html-page-context", add_launch_buttons, priority=(\d+)\)',
                                   theme_source).group(1))
    assert registered == [("html-page-context", "retarget_colab_button", colab_links.PRIORITY)]
    assert colab_links.PRIORITY > theme_priority


def test_config_registers_the_extension_and_the_workflow_publishes_to_its_branch():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["local_extensions"]["colab_links"] == "tools"
    branch = config["sphinx"]["config"]["colab_published_branch"]
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    build_steps, deploy_steps = workflow["jobs"]["build"]["steps"], workflow["jobs"]["deploy"]["steps"]
    uploaded = [step["with"]["path"] for step in build_steps
                if step.get("uses", "").startswith("actions/upload-artifact") and step["with"]["name"] == "site"]
    assert uploaded == ["_build/html"]  # the built site, _sources/<page>.ipynb included
    [publish] = [step for step in deploy_steps if step.get("uses", "").startswith("peaceiris/actions-gh-pages")]
    assert publish["with"]["publish_branch"] == branch
    [download] = [step for step in deploy_steps if step.get("uses", "").startswith("actions/download-artifact")]
    assert download["with"]["name"] == "site" and publish["with"]["publish_dir"].strip("./") == download["with"]["path"]
    assert workflow["jobs"]["deploy"]["permissions"] == {"contents": "write"}
