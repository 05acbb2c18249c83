"""What the browser tests share: starting ``liubai serve``, finding Chromium, and a page wrapper.

The server is the ``liubai`` console script in a subprocess on a free loopback port. Chromium is
``/usr/bin/chromium`` (or ``LIUBAI_CHROMIUM``); Playwright's own browser download is never used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests._real import missing

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def liubai_command() -> list[str]:
    script = Path(sys.executable).with_name("liubai")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from liubai.api.cli.main import main; main()"]


@contextlib.contextmanager
def serving(store_url: str, port: int, log_path: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``liubai serve`` over ``store_url`` on a loopback port until the block ends; yields its base URL.
    ``env`` adds to the environment (e.g. ``LIUBAI_AUTH``)."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                *liubai_command(),
                "--store",
                store_url,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"liubai serve exited with {proc.returncode}; see {log_path}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"liubai serve did not answer /healthz within 60 s; see {log_path}")
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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
