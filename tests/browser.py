"""Headless Chromium for the dashboard's test and benchmark: the distribution's ``chromium`` package,
driven by Playwright for Python.

Playwright's own browser download (``playwright install``) is never used: the browser is the one
the system installs (``apt-get install chromium``, done by ``.ci/run``), so the test runs offline
and against the browser a Debian user has. Like the servers of :mod:`servers`, a missing browser
skips the test, and fails it under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any, Final

from servers import missing_binary

#: No sandbox (the tests may run as root in a container), no GPU, and nothing that would reach
#: beyond loopback on its own (QUIC, background updates, sync, first-run pages).
CHROMIUM_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    """The path of the system's Chromium, Playwright importable; else skip (fail under CI)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing_binary("playwright is not installed (pip install playwright; it is in the test extra)")
    executable = find_chromium()
    if executable is None:
        missing_binary("chromium not found (apt-get install chromium)")
    assert executable is not None
    return executable


@contextlib.contextmanager
def chromium(executable: str) -> Iterator[Any]:
    """A running headless Chromium (a Playwright ``Browser``), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()
