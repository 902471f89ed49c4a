"""Playwright driving Debian's chromium (no browser download): the fixtures the web tests import."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless chromium per test module.

    Not per session: Playwright's sync API keeps an asyncio loop running in the main thread while it
    is open, and later modules that call asyncio.run() would then fail.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser):  # type: ignore[no-untyped-def]
    """Pages in fresh browser contexts (each its own cookies), closed after the test."""
    contexts: list = []

    def make(**options):  # type: ignore[no-untyped-def]
        context = browser.new_context(**options)
        context.set_default_timeout(15000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def sign_in(page, base: str, username: str, password: str, then: str = "/agent") -> None:  # type: ignore[no-untyped-def]
    """Log in through the real form, then open a page."""
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{base}{then}")
