"""Headless Chromium for the browser tests: Debian's `chromium` package driven by Playwright's Python API
(a browser downloaded at run time does not work on these machines, so `playwright install` is never used).

`bash bootstrap.sh test` installs the package where apt-get may be used. Without it the browser tests
say so in one line and are skipped, except under CI=true, where they fail: CI must run them.
"""

import os
import shutil
from contextlib import contextmanager

import pytest

CHROMIUM = os.environ.get("GENLAB_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_browser():
    """The browser's path, or one line (skip; fail under CI=true) saying what is missing."""
    path = CHROMIUM if os.path.isfile(CHROMIUM) else shutil.which("chromium")
    problem = None
    if not path:
        problem = (f"no Chromium at {CHROMIUM}: the browser tests need Debian's chromium "
                   "(`apt-get install chromium`, which `bash bootstrap.sh test` does as root)")
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the browser tests need the playwright package: run `bash bootstrap.sh install`"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem + " (CI=true: the browser tests must run)")
        pytest.skip(problem)
    return path


@contextmanager
def browser_page(tmp_path):
    """(page, errors): a fresh headless browser (its own new profile) and a list that collects every
    console error and uncaught page exception."""
    path = require_browser()
    from playwright.sync_api import sync_playwright
    errors = []
    with sync_playwright() as p:
        # launch() starts the browser with a new temporary profile (--user-data-dir) of its own.
        browser = p.chromium.launch(executable_path=path, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(60_000)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page exception: {e}"))
            yield page, errors
        finally:
            browser.close()
