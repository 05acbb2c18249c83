"""The README's first command: ``liubai demo`` ends with the UI's URL, and opening it shows the demo's lineage.

The demo runs for real (``--replay`` so that it needs no kernel tracing, ``--no-serve`` so that the test
controls the server); the URL it prints is opened as printed, in real Chromium.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.browser.harness import free_port, liubai_command, new_ui, serving

pytestmark = pytest.mark.browser

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the UI URL the demo printed, its base) with ``liubai serve`` running over the demo's store."""
    root = tmp_path_factory.mktemp("demo")
    port = free_port()
    out = subprocess.run(
        [
            *liubai_command(),
            "demo",
            "--dir",
            str(root / "demo"),
            "--no-serve",
            "--replay",
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"},
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ui_url = re.search(r"web UI\s+(http://\S+)", out.stdout)
    store = re.search(r"store\s+(sqlite:///\S+)", out.stdout)
    assert ui_url and store, f"the demo did not end with the UI's URL and its store:\n{out.stdout[-1500:]}"
    with serving(store.group(1), port, root / "serve.log") as base:
        yield ui_url.group(1), base


def test_the_url_liubai_demo_prints_opens_the_demo_lineage(browser: Any, demo: tuple[str, str]) -> None:
    url, base = demo
    assert url.startswith(base + "/")
    with new_ui(browser, base) as ui:
        ui.page.goto(url)
        ui.wait_ready()
        fragment = dict(p.split("=", 1) for p in unquote(url.split("#", 1)[1]).split("&"))
        root = fragment["node"]
        assert ui.attr("root") == root
        depth = int(fragment.get("depth", "2"))
        direction = fragment.get("direction", "downstream").upper()
        data = ui.gql(
            "query($id: ID!, $dir: Direction!, $depth: Int!) { lineage(from: $id, direction: $dir, depth: $depth)"
            " { nodes { id kind } } }",
            {"id": root, "dir": direction, "depth": depth},
        )["lineage"]["nodes"]
        assert ui.count() == len(data)
        kinds = {n["kind"] for n in data}
        assert {"Commit", "Workload", "PipelineRun", "Process", "LogEvent"} <= kinds, kinds
        drawn_kinds = set(
            ui.page.eval_on_selector_all("#node-list [data-kind]", "els => els.map(e => e.dataset.kind)")
        )
        assert {"Workload", "PipelineRun", "Process", "LogEvent"} <= drawn_kinds
        ui.page.wait_for_function("id => document.getElementById('details').dataset.nodeId === id", arg=root)
        ui.screenshot("demo")
        # For the README: a log line's details (commit and run details name this machine's temp paths).
        log = ui.page.locator('#node-list [data-kind="LogEvent"]').first
        log_id = log.get_attribute("data-node-id")
        log.click()
        ui.page.wait_for_function(
            "id => document.getElementById('details').dataset.nodeId === id", arg=log_id
        )
        ui.screenshot("readme")
        # The README's picture: written when missing or on request, so test runs leave the checkout alone.
        if not DOCS_SCREENSHOT.exists() or os.environ.get("LIUBAI_UPDATE_SCREENSHOT") == "1":
            DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
            ui.page.screenshot(path=str(DOCS_SCREENSHOT))
        ui.assert_clean()
