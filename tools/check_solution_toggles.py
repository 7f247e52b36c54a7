"""Open every page of a built site in headless Chromium and check that each solution is hidden until
its toggle is clicked, and shown after.

Usage: python tools/check_solution_toggles.py [FOLDER]   (default: _build/html)

Needs the `selenium` package and a Chromium (or Chrome) with its driver: on Debian
`apt-get install chromium chromium-driver`; GitHub's Ubuntu runners have Chrome and its driver.
The pages are opened from disk (file://), the harder of the two ways the site must work.
Exit status 0 when every toggle works and at least one solution was found, 1 otherwise.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["check_solution_toggles"]


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary:  # Debian's chromium; otherwise selenium finds Chrome itself
        options.binary_location = binary
    driver = shutil.which("chromedriver")
    service = webdriver.ChromeService(driver) if driver else webdriver.ChromeService()
    return webdriver.Chrome(options=options, service=service)


def check_solution_toggles(folder: Path) -> tuple[int, list[str]]:
    """Click every solution toggle of every page under ``folder``.

    Args:
        folder: the built site, e.g. ``_build/html``.

    Returns:
        The number of solutions checked, and one message per problem: a solution visible before
        its toggle is clicked, or still hidden after.

    Raises:
        ValueError: if ``folder`` holds no ``.html`` pages.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    folder = Path(folder).resolve()
    pages = sorted(p for p in folder.rglob("*.html") if "_static" not in p.relative_to(folder).parts)
    if not pages:
        raise ValueError(f"folder must be a built site with .html pages, got {str(folder)!r}")
    problems: list[str] = []
    checked = 0
    browser = _browser()
    try:
        for page in pages:
            if "solution" not in page.read_text(encoding="utf-8", errors="replace"):
                continue
            browser.get(page.as_uri())
            name = page.relative_to(folder).as_posix()
            for solution in browser.find_elements(By.CSS_SELECTOR, ".solution.dropdown"):
                label = solution.get_attribute("id")
                # everything but the title row is the hidden body
                body = [e for e in solution.find_elements(By.XPATH, "./*")
                        if "admonition-title" not in (e.get_attribute("class") or "")]
                if any(e.is_displayed() for e in body):
                    problems.append(f"{name}: solution {label} is visible before its toggle is clicked")
                    continue
                button = solution.find_element(By.CSS_SELECTOR, "button.toggle-button")
                browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
                button.click()
                try:
                    WebDriverWait(browser, 5).until(lambda _: all(e.is_displayed() for e in body))
                except Exception:  # selenium's TimeoutException: the body stayed hidden
                    problems.append(f"{name}: solution {label} stays hidden after its toggle is clicked")
                checked += 1
    finally:
        browser.quit()
    if not checked:
        problems.append("no solution toggles found")
    return checked, problems


def main(argv: list[str] | None = None) -> int:
    """Check the site named on the command line; print the problems; return the exit status."""
    arguments = sys.argv[1:] if argv is None else argv
    checked, problems = check_solution_toggles(Path(arguments[0] if arguments else "_build/html"))
    for problem in problems:
        print(problem)
    print(f"{checked} solution toggles clicked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
