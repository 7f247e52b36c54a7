"""Open a built site's pages from disk in headless Chromium, offline, and check they need no network.

Usage: python tools/check_offline.py [FOLDER]   (default: _build/html)

A classroom without a network opens the site from disk. Each page is loaded from ``file://`` with
every host name unresolvable, and two things are checked:

- every formula is rendered: no ``math`` element still holds its raw LaTeX (``\\(``, ``\\[``, ``$$``)
  after MathJax (served from the site's ``_static/mathjax``) had its time;
- the page asks for nothing outside the site: no request to ``http:`` or ``https:`` comes from it
  (a link the reader may click, such as the Colab button, is not a request).

The browser is Debian's ``chromium``. Without it the check prints that it was skipped and why, and
exits with status 0; ``--require-browser`` makes a missing browser an error. Exit status 1, with
one line per problem, when a page fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["find_browser", "outside_requests", "unrendered_formulas", "check_page", "main"]

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# The flags Chromium needs as root in a container, and no background traffic of its own.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=20000"]
MATH_ELEMENT = re.compile(r'<(span|div)\b[^>]*class="[^"]*\bmath\b[^"]*"[^>]*>\s*([^<]{0,40})')
RAW_TEX = re.compile(r"^(\\\(|\\\[|\$\$|\\begin\{)")
BROWSER_OWN = "not an origin"  # the initiator Chromium gives its own requests in the net log


def find_browser() -> str | None:
    """The path of a headless-capable Chromium, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def unrendered_formulas(dom: str) -> list[str]:
    """The raw LaTeX of each math element that MathJax did not typeset in a rendered page."""
    return [text.strip() for _, text in MATH_ELEMENT.findall(dom) if RAW_TEX.match(text.strip())]


def outside_requests(net_log: dict) -> list[str]:
    """The http(s) addresses a page itself requested, from a Chromium net log."""
    start = {value: name for name, value in net_log["constants"]["logEventTypes"].items()}
    addresses = []
    for event in net_log["events"]:
        params = event.get("params", {})
        if start.get(event["type"]) != "URL_REQUEST_START_JOB" or params.get("initiator") == BROWSER_OWN:
            continue
        url = params.get("url", "")
        if url.startswith(("http:", "https:")) and url not in addresses:
            addresses.append(url)
    return addresses


def check_page(browser: str, page: Path) -> list[str]:
    """Load one page from disk, offline; return its problems, one line each."""
    with tempfile.TemporaryDirectory() as profile:
        log = Path(profile) / "net-log.json"
        result = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}/user", f"--log-net-log={log}",
                                 "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0 or not result.stdout:
            return [f"{page}: the browser could not open it (exit {result.returncode})"]
        problems = [f"{page}: formula not rendered: {tex}" for tex in unrendered_formulas(result.stdout)]
        try:
            net_log = json.loads(log.read_text())
        except json.JSONDecodeError:  # Chromium may leave the closing brackets off when it stops
            net_log = json.loads(log.read_text().rstrip().rstrip(",") + "]}")
        problems += [f"{page}: requests a resource outside the site: {url}" for url in outside_requests(net_log)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--require-browser", action="store_true", help="fail, not skip, without Chromium")
    arguments = parser.parse_args(argv)
    if not (arguments.folder / "index.html").is_file():
        print(f"no built site in {arguments.folder} (index.html is missing)")
        return 1
    browser = find_browser()
    if browser is None:
        print("SKIPPED the offline check: no Chromium found (Debian: apt-get install chromium); "
              "the site's math and outside requests were NOT checked")
        return 1 if arguments.require_browser else 0
    pages = sorted(path for path in arguments.folder.rglob("*.html")
                   if not path.relative_to(arguments.folder).parts[0].startswith(("_", "reports")))
    problems = [problem for page in pages for problem in check_page(browser, page)]
    for problem in problems:
        print(problem)
    print(f"offline check: {len(pages)} pages opened from disk in {Path(browser).name}, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
