"""Fixtures: real headless Chromium against a real ``liubai serve`` over the scenario store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from liubai.lineage.store import open_store
from tests._real import missing
from tests.browser import scenario
from tests.browser.harness import CHROMIUM_ARGS, Ui, chromium_path, free_port, new_ui, serving


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of ``liubai serve`` over the scenario store."""
    db = tmp_path_factory.mktemp("browser-store") / "lineage.db"
    store = open_store(f"sqlite:///{db}")
    try:
        scenario.load(store)
    finally:
        store.close()
    with serving(f"sqlite:///{db}", free_port(), db.with_name("serve.log")) as base:
        yield base


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for the browser tests, stopped when they end: Playwright's sync API keeps an event
    loop running in the main thread while it is open, which other packages' asyncio tests cannot share."""
    chromium = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing("browser", f"playwright for Python is not installed: {exc}")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def ui(browser: Any, server: str) -> Iterator[Ui]:
    with new_ui(browser, server) as page:
        yield page
