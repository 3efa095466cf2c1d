"""Fixtures for the checks of the built website: the site folder, a loopback server, Chromium.

These tests read the quick-mode site that `make test` has just built (they never build it
themselves); run them with `make test`, or after `jupyter-book build .`, as
`pytest tests/site`.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

from sitecheck import SCREENSHOTS, SITE


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "index.html").is_file():
        message = (f"no built website at {SITE}: build it first with `make test` "
                   "(or `jupyter-book build .`), then run `pytest tests/site`.")
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return SITE


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test log readable
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A page closed while a file was still being sent (a font, the search index) is
        # normal for a browser; only other errors deserve a traceback in the log.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="session")
def server(site):
    """The site served over HTTP on 127.0.0.1 (a free port), as a reader's browser sees it."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright; no browser download ever."""
    path = chromium_path()
    if not path:
        message = ("chromium is not installed: run `make browser` (Debian/Ubuntu: "
                   "apt-get install chromium) or set CHROMIUM=/path/to/chromium")
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def visit(browser, server):
    """`visit(rel)`: the page at `rel` loaded once in Chromium (test_browser.Visit), shared by
    every test of the session."""
    from test_browser import Visit

    cache: dict = {}

    def get(rel: str):
        if rel not in cache:
            cache[rel] = Visit(browser, server, rel)
        return cache[rel]

    return get


@pytest.fixture(scope="session")
def search(browser, server):
    """`search(edition, word)`: the links the site's search page lists for `word`, in the
    edition under the folder `edition` ("" for English), with other hosts blocked."""
    def run(edition: str, word: str) -> list[str]:
        context = browser.new_context()
        page = context.new_page()
        context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(server)
                      else r.abort())
        try:
            folder = f"{edition}/" if edition else ""
            page.goto(f"{server}/{folder}search.html?q={word}", wait_until="load")
            page.wait_for_selector("#search-results li", timeout=30_000)
            return page.eval_on_selector_all("#search-results li a", "els => els.map(e => e.href)")
        finally:
            context.close()

    return run


def pytest_terminal_summary(terminalreporter):
    shots = sorted(SCREENSHOTS.glob("*.png")) if SCREENSHOTS.is_dir() else []
    if shots:
        terminalreporter.write_line(f"site screenshots ({len(shots)} pages): {SCREENSHOTS}")
