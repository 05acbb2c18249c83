"""What the browser tests share: starting ``liubai serve``, finding Chromium, and a page wrapper.

The server is the ``liubai`` console script in a subprocess on a free loopback port. Chromium is
``/usr/bin/chromium`` (or ``LIUBAI_CHROMIUM``); Playwright's own browser download is never used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests._real import missing
from tests.serving import free_port, liubai_command, serving

__all__ = ["CHROMIUM_ARGS", "Ui", "chromium_path", "free_port", "liubai_command", "new_ui", "serving"]

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    # A foreign name that resolves to loopback, as after DNS rebinding (tests/browser/test_cross_origin.py).
    "--host-resolver-rules=MAP rebound.example 127.0.0.1",
]
VIEWPORT = {"width": 1440, "height": 900}


def chromium_path() -> str:
    path = os.environ.get("LIUBAI_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        missing("browser", f"no Chromium at {path} (run scripts/setup-browser)")
    return path


class Ui:
    """One page of the web UI plus what it reported (console errors, dialogs, page errors)."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.console_errors: list[str] = []
        self.dialogs: list[str] = []
        self.page_errors: list[str] = []
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

        def on_dialog(d: Any) -> None:
            self.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", on_dialog)
        self.graph = page.locator("#graph")

    def open(self, fragment: str = "") -> Any:
        """Navigate to the UI (``fragment`` is a ``#…`` or ``?…`` suffix); returns the page's response."""
        return self.page.goto(f"{self.base}/{fragment}")

    def wait_ready(self, timeout: float = 30_000) -> None:
        """Wait until the graph finished loading and drawing (``data-state`` leaves ``loading``)."""
        self.page.wait_for_function(
            "() => ['ready', 'error', 'empty'].includes(document.getElementById('graph').dataset.state)",
            timeout=timeout,
        )
        state = self.graph.get_attribute("data-state")
        assert state == "ready", f"graph state {state}: {self.page.locator('#status').text_content()}"

    def attr(self, name: str) -> str:
        value = self.graph.get_attribute(f"data-{name}")
        assert value is not None, f"#graph has no data-{name}"
        return value

    def count(self, name: str = "node-count") -> int:
        return int(self.attr(name))

    def node_point(self, node_id: str) -> tuple[float, float]:
        """Page coordinates of a drawn node, from the node list beside the canvas."""
        item = self.page.locator(f'#node-list [data-node-id="{css_escape(node_id)}"]')
        item.wait_for(state="attached")
        box = self.graph.bounding_box()
        assert box is not None
        x, y = item.get_attribute("data-x"), item.get_attribute("data-y")
        assert x and y, f"{node_id} has no drawn position"
        return box["x"] + float(x), box["y"] + float(y)

    def click_node(self, node_id: str, *, shift: bool = False) -> None:
        """A real mouse click on the node's spot of the canvas (shift held where asked)."""
        x, y = self.node_point(node_id)
        if shift:
            self.page.keyboard.down("Shift")
        try:
            self.page.mouse.click(x, y)
        finally:
            if shift:
                self.page.keyboard.up("Shift")

    def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The same GraphQL endpoint the page uses, asked directly."""
        r = httpx.post(
            f"{self.base}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        r.raise_for_status()
        body = r.json()
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def assert_clean(self) -> None:
        assert not self.dialogs, f"a dialog fired: {self.dialogs}"
        assert not self.page_errors, f"uncaught page errors: {self.page_errors}"
        assert not self.console_errors, f"console errors: {self.console_errors}"


def css_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@contextlib.contextmanager
def new_ui(browser: Any, base: str) -> Iterator[Ui]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield Ui(page, base)
    finally:
        context.close()
