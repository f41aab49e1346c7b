"""The web console in a real headless browser: Debian's chromium driven by Playwright (sync API).

Playwright's own browser download cannot work here (and is never used): the system's chromium is launched by path.
A missing browser fails the test, never skips it: `make chromium` (or `apt-get install -y chromium`) installs it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = os.environ.get("STIGMER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def missing_browser() -> str | None:
    """Why no browser can run (None: it can)."""
    if not Path(CHROMIUM).exists():
        return (f"no chromium at {CHROMIUM}: the console's tests need Debian's chromium "
                "(`make chromium`, or `apt-get update && apt-get install -y chromium`)")
    return None


@contextlib.contextmanager
def launched() -> Iterator[Any]:
    """A headless chromium (``--no-sandbox``: CI runs as root)."""
    from playwright.sync_api import sync_playwright

    why = missing_browser()
    if why is not None:
        raise RuntimeError(why)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            yield browser
        finally:
            browser.close()


def login_url(base_url: str, token: str) -> str:
    """A one-time console login link, asked of the API with ``token`` (what `stigmer console` does)."""
    answer = httpx.post(f"{base_url}/v1/console/login-links", json={}, timeout=30,
                        headers={"Authorization": f"Bearer {token}"})
    answer.raise_for_status()
    return base_url + answer.json()["path"]


def open_console(browser: Any, base_url: str, token: str, **context: Any) -> Any:
    """A new page (own cookie jar), logged in to the console with a fresh link made with ``token``."""
    page = browser.new_context(**context).new_page()
    page.goto(login_url(base_url, token))
    page.wait_for_url(f"{base_url}/console/")
    page.wait_for_selector("#who:not(:empty)")
    return page
